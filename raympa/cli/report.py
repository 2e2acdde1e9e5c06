"""`raympa report`: the HTML report of a study folder."""

from __future__ import annotations

import argparse


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report (and CSV tables) of a study directory")
    p.set_defaults(handler=run_report)
    p.add_argument("study_dir", help="study folder written by studies/*.py")
    p.add_argument("--out", default=None, help="report folder (default STUDY_DIR/report)")
    p.add_argument("--n-bins", type=int, default=5,
                   help="rating bins for t-SNE colours, centroids, Davies-Bouldin (default %(default)s, paper C)")
    p.add_argument("--metric", default=None,
                   help="selection metric for 'best configuration' (default: study.json metric, else val_r2_full)")
    p.add_argument("--mode", choices=("max", "min"), default=None, help="direction of --metric (default: study.json)")
    p.add_argument("--perplexity", type=float, default=30.0,
                   help="t-SNE perplexity, lowered to (n-1)/3 for small test sets (default %(default)s, sklearn)")
    p.add_argument("--seed", type=int, default=0, help="random state of t-SNE and fANOVA (default %(default)s)")
    p.add_argument("--inline", action="store_true",
                   help="embed plotly.js in report.html (default: plotly.min.js beside it); both work offline")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_report(sub)


def run_report(args: argparse.Namespace) -> int:
    from raympa.report import cli_report

    return int(cli_report(args) or 0)
