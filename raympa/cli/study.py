"""`raympa study margin-sweep|paper-replication`: the project's studies, on Ray Tune.

The same flags drive ``studies/margin_sweep.py`` and ``studies/paper_replication.py``
(:func:`script_main`). Defaults come from each study's ``Options`` dataclass
(:mod:`raympa.studies`), so they are written once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

from raympa import constants as C

_COMMA = "comma-separated"


def _add_common(p: argparse.ArgumentParser, defaults: Any, *, name: str) -> None:
    """The flags every study shares (the Ray Tune example shape)."""
    p.add_argument("--smoke-test", action="store_true", help="tiny data and few epochs: two or more trials in a minute or so")
    p.add_argument("--storage-path", default=None,
                   help="where the study folder goes: a local folder (default results/) or s3://BUCKET/PREFIX "
                        "(then Tune's files go there and the summary also to --results-dir)")
    p.add_argument("--results-dir", default=defaults.results_dir,
                   help="local folder for the summary when --storage-path is s3:// (default %(default)s)")
    p.add_argument("--name", default=None, help=f"study name / folder (default {name}; {name}_smoke with --smoke-test)")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto' on a ray up head node; needs "
                                                   "--storage-path); default: a local Ray")
    p.add_argument("--data", default=defaults.data,
                   help="'demo' (simulated auditions, built under --data-dir if missing) or a ratings table "
                        "(FBA index from raympa fba-index) used with --contours")
    p.add_argument("--contours", default=None, help="contours folder (contours.parquet) for --data TABLE")
    p.add_argument("--data-dir", default=defaults.data_dir, help="where demo data and its contours are built "
                   "(default %(default)s; on a cluster a shared folder, e.g. /mnt/shared/data)")
    p.add_argument("--demo-n", type=int, default=defaults.demo_n, help="demo auditions per band (default %(default)s)")
    p.add_argument("--demo-duration", type=float, default=defaults.demo_duration,
                   help="demo etude length in seconds (default %(default)s; None: the demo's)")
    p.add_argument("--reference", choices=C.REFERENCE_MODES, default=defaults.reference,
                   help="none (the paper's setting), table (each row's reference_path) or peers (top-rated training "
                        "recordings of the piece): adds the reference-informed models (default %(default)s)")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="joint / head / baseline epochs (default %(default)s)")
    p.add_argument("--encoder-epochs", type=int, default=defaults.encoder_epochs,
                   help="two-step encoder epochs (default %(default)s)")
    p.add_argument("--chunks-per-recording", type=int, default=defaults.chunks_per_recording,
                   help="random chunks per recording per epoch (default %(default)s, paper)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study (finished trials are kept)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing study folder")
    p.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial, help="CPUs per trial (default %(default)s)")
    p.add_argument("--gpus-per-trial", type=float, default=defaults.gpus_per_trial,
                   help="GPU share per trial, e.g. 0.25 = four trials per GPU (default %(default)s)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once")
    p.add_argument("--max-failures", type=int, default=defaults.max_failures,
                   help="retries of a failed trial from its checkpoint (default %(default)s)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard (local runs: on 127.0.0.1 only)")


def _add_margin_sweep(p: argparse.ArgumentParser) -> None:
    from raympa.studies.margin_sweep import NAME, Options

    d = Options()
    _add_common(p, d, name=NAME)
    p.add_argument("--num-samples", type=int, default=d.num_samples,
                   help="configurations drawn by the searcher (default %(default)s)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="seeds per configuration (default %(default)s; paper: 5)")
    p.add_argument("--criterion", default=d.criterion, help="rated criterion (default %(default)s)")
    p.add_argument("--band", default=d.band, help="band, or 'all' (default %(default)s)")
    p.add_argument("--models", default=",".join(d.models), help=f"models searched, {_COMMA} (default %(default)s)")
    p.add_argument("--terms", default=",".join(d.terms), help=f"contrastive terms searched (default %(default)s)")
    p.add_argument("--asha", action="store_true", help="stop poor trials early (ASHA on validation R² per epoch)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the TPE sampler (default %(default)s)")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs (default %(default)s, paper)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="leave out the PCConvNet baseline trial (by default the first trial, same seeds and data)")


def _add_paper_replication(p: argparse.ArgumentParser) -> None:
    from raympa.studies.paper_replication import NAME, Options

    d = Options()
    _add_common(p, d, name=NAME)
    p.add_argument("--models", default=",".join(d.models), help=f"{_COMMA} (default %(default)s)")
    p.add_argument("--criteria", default=",".join(d.criteria), help=f"{_COMMA} (default %(default)s)")
    p.add_argument("--bands", default=",".join(d.bands), help=f"{_COMMA} (default %(default)s)")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help=f"{_COMMA} (default %(default)s, paper)")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (default %(default)s, paper)")


# CLI name -> (module of raympa.studies, flags, one-line help)
_STUDIES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {
    "margin-sweep": ("margin_sweep", _add_margin_sweep,
                     "how much do the contrastive loss's s, C, lambda and term matter? (Optuna TPE)"),
    "paper-replication": ("paper_replication", _add_paper_replication,
                          "the paper's grid: 3 models x 3 criteria x 2 bands x 5 seeds"),
}


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a finished study's best configuration's checkpoints (one per seed)",
                       description="Write the checkpoints of the configuration with the best mean validation metric "
                                   "over seeds, per criterion, as OUT/<criterion>/seed-<k>/checkpoint.pt (what "
                                   "raympa predict --checkpoint reads), and OUT/best.csv.")
    p.set_defaults(handler=run_export)
    p.add_argument("study_dir", help="study folder (trials.csv, study.json, tune/)")
    p.add_argument("--out", required=True, help="folder for the checkpoints")
    p.add_argument("--band", default=None, help="the band whose best configuration to export (default: the study's "
                                                "only band; required when it has several)")


def run_export(args: argparse.Namespace) -> int:
    """``raympa export``: copy the best configuration's checkpoints; print where they went."""
    from raympa.export import export_best

    try:
        written = export_best(args.study_dir, args.out, band=args.band)
    except (ValueError, FileNotFoundError) as e:
        print(f"raympa export: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``raympa study`` (and its subcommands) and ``raympa export``."""
    _add_export(sub)
    p = sub.add_parser("study", help="run one of the project's studies on Ray Tune")
    studies = p.add_subparsers(dest="study", required=True, metavar="STUDY")
    for cli_name, (_, add_flags, text) in _STUDIES.items():
        q = studies.add_parser(cli_name, help=text, description=text)
        add_flags(q)
        q.set_defaults(handler=run_study_command, study_module=_STUDIES[cli_name][0],
                       command=["raympa", "study", cli_name])


def _options(module: Any, args: argparse.Namespace) -> Any:
    """The study's ``Options`` from the parsed flags (comma lists become tuples)."""
    import dataclasses

    values: dict[str, Any] = {}
    for f in dataclasses.fields(module.Options):
        v = getattr(args, f.name, f.default)
        if isinstance(f.default, tuple) and isinstance(v, str):
            parts = [s.strip() for s in v.split(",") if s.strip()]
            v = tuple(int(s) for s in parts) if f.name == "seeds" else tuple(parts)
        values[f.name] = v
    return module.Options(**values)


def _flags_given(args: argparse.Namespace) -> list[str]:
    """The flags after ``raympa study NAME`` on this process's command line."""
    words = sys.argv[1:]
    name = args.command[-1]
    return words[words.index(name) + 1:] if name in words else words


def run_study_command(args: argparse.Namespace, *, argv: Sequence[str] | None = None) -> int:
    """``raympa study NAME``: run the study; a user's error is one line on stderr and exit code 2."""
    import importlib

    module = importlib.import_module(f"raympa.studies.{args.study_module}")
    prog = " ".join(args.command)
    try:
        options = _options(module, args)
        module.run(options, command=[*args.command, *(_flags_given(args) if argv is None else argv)])
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


def script_main(study: str, argv: Sequence[str] | None, *, script: str, doc: str) -> int:
    """``main(argv)`` of ``studies/<study>.py``: the same flags as ``raympa study <study>``.

    Args:
        study: the CLI name (``"margin-sweep"``).
        argv: the flags (None = ``sys.argv[1:]``).
        script: the script's path as a user runs it (for study.json's command line).
        doc: the script's docstring (its first paragraph is the help's description).
    """
    module_name, add_flags, _ = _STUDIES[study]
    p = argparse.ArgumentParser(prog=script, description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p)
    flags = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(flags)
    args.study_module, args.command = module_name, [script]
    return run_study_command(args, argv=flags)
