"""`raympa train`: one training run from a ratings table and its contours."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def _add_train(sub: argparse._SubParsersAction) -> None:
    from raympa.config import TrainConfig

    p = sub.add_parser("train", help="train one model on one criterion (paper settings by default)")
    p.set_defaults(handler=run_train)
    p.add_argument("--ratings", required=True, help="ratings table (FBA index or demo ratings.csv)")
    p.add_argument("--contours", required=True, help="folder (or file) with contours.parquet")
    p.add_argument("--out", required=True, help="run folder: metrics.json, checkpoint.pt, latents.npz")
    p.add_argument("--split-seed", type=int, default=0, help="split seed when the table has no split column")
    p.add_argument("--band", default=None, help="train on this band only (default: every band in the table)")
    p.add_argument("--log-every", type=int, default=10, help="print progress every N epochs (default %(default)s)")
    notes = {  # where each default comes from: docs/divergences.md
        "contrastive": "weighted = the paper's loss; rnc = Rank-N-Contrast",
        "jl_lambda": "weight of the contrastive term in contrastive-jl",
        "pairing": "halves = original code; all = every pair in the batch",
        "chunking": "random = paper; fixed = original code's windows",
        "chunk_hop": "frames between fixed windows and chunk-level test windows",
        "pitch_norm": "midi127 = paper; midi36_72 = original code",
        "pitch_shift": "max random shift in semitones (original code: 2; paper: 0 = off)",
        "chunks_per_recording": "random chunks per training recording per epoch (paper: 1)",
        "encoder_lr": "two-step encoder learning rate (paper 0.1; code 0.005)",
        "patience": "early-stopping patience in epochs (paper 75)",
        "threads": "torch CPU threads (0 = torch's default)",
    }
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        choices = typing.get_args(hints[f.name]) or None
        default = 1 if f.name == "threads" else f.default  # one thread: fastest for this tiny model
        text = (notes.get(f.name, "") + " (default %(default)s)").strip()
        p.add_argument(flag, type=type(f.default), default=default, choices=choices, help=text)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_train(sub)


def run_train(args: argparse.Namespace) -> int:
    from raympa.train import cli_train

    return int(cli_train(args) or 0)
