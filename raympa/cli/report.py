"""`raympa report`: the HTML report of a study folder."""

from __future__ import annotations

import argparse


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report (and CSV tables) of a study directory")
    p.set_defaults(handler=run_report)
    p.add_argument("study_dir", help="study folder written by `raympa study` or studies/*.py")
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
    """Handler of ``raympa report STUDY_DIR [--out DIR] ...``; prints the report's path."""
    import shlex
    import sys

    from raympa.analysis import AnalysisConfig
    from raympa.report import write_report

    defaults = AnalysisConfig()
    config = AnalysisConfig(n_bins=args.n_bins, metric=args.metric, mode=args.mode,
                            tsne_perplexity=args.perplexity, seed=args.seed)
    argv = ["raympa", "report", str(args.study_dir)]
    if args.out:
        argv += ["--out", str(args.out)]
    for flag, value, default in (("--n-bins", config.n_bins, defaults.n_bins), ("--metric", config.metric, None),
                                 ("--mode", config.mode, None), ("--perplexity", config.tsne_perplexity,
                                 defaults.tsne_perplexity), ("--seed", config.seed, defaults.seed)):
        if value != default:
            argv += [flag, str(value)]
    if args.inline:
        argv.append("--inline")
    try:
        path = write_report(args.study_dir, args.out, config=config,
                            plotlyjs="inline" if args.inline else "directory", argv=[shlex.join(argv)])
    except (FileNotFoundError, ValueError) as e:
        print(f"raympa report: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
