"""`raympa predict`: score recordings with trained checkpoints."""

from __future__ import annotations

import argparse


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score new recordings with a trained checkpoint")
    p.set_defaults(handler=run_predict)
    p.add_argument("--checkpoint", required=True, action="append",
                   help="checkpoint.pt of a trained model; repeat the flag for several criteria")
    p.add_argument("audio", nargs="+", help="audio files (any format librosa reads)")
    p.add_argument("--out", default=None, help="write predictions to this CSV instead of printing")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_predict(sub)


def run_predict(args: argparse.Namespace) -> int:
    from raympa.predict import cli_predict

    return int(cli_predict(args) or 0)
