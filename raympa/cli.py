"""The ``raympa`` command line: a thin argparse front over the library.

Each subcommand's arguments are declared here (cheap: ``raympa --help`` imports neither torch,
ray nor librosa); the work is done by a function of the stage module, imported only when the
subcommand runs. Each stage owns one ``_add_<command>`` function below.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import typing
from typing import Callable, Sequence

# command -> "module:function"; the function takes the parsed argparse.Namespace, returns an exit code
_HANDLERS: dict[str, str] = {
    "extract": "raympa.contours:cli_extract",
    "import-pitchtracks": "raympa.contours:cli_import_pitchtracks",
    "fba-index": "raympa.fba:cli_fba_index",
    "demo-data": "raympa.demo:cli_demo_data",
    "train": "raympa.train:cli_train",
    "predict": "raympa.predict:cli_predict",
    "report": "raympa.report:cli_report",
}


# ----------------------------------------------------------------------------- contours (issue 2)
def _add_extraction_params(p: argparse.ArgumentParser) -> None:
    from raympa.config import ExtractConfig

    d = ExtractConfig()
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz (default %(default)s, paper)")
    p.add_argument("--frame-length", type=int, default=d.frame_length, help="samples (default %(default)s, paper)")
    p.add_argument("--hop-length", type=int, default=d.hop_length, help="samples (default %(default)s, paper)")
    p.add_argument("--fmin", type=float, default=d.fmin, help="Hz (default %(default)s)")
    p.add_argument("--fmax", type=float, default=d.fmax, help="Hz (default %(default)s)")
    p.add_argument("--resolution", type=float, default=d.resolution, help="semitones per pYIN pitch bin (default %(default)s, librosa)")


def _add_run_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (gets contours.parquet and errors.csv)")
    p.add_argument("--cache-dir", default=None, help="contour cache (default $RAYMPA_CACHE or ~/.cache/raympa)")
    p.add_argument("--address", default=None, help="Ray cluster address ('auto' to join a running cluster)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the contour cache")
    p.add_argument("--num-workers", type=int, default=None, help="at most this many parallel tasks (default: one per CPU)")
    p.add_argument("--rows-per-task", type=int, default=None, help="inputs per Ray task (default: 1 for small runs, up to 8)")


def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="pYIN pitch contours from audio files, in parallel on Ray Data")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("dir", nargs="?", help="folder of audio files (wav, flac, ogg, mp3; recursive)")
    src.add_argument("--table", help="CSV or parquet with recording_id, audio_path [, segment_start, segment_duration]")
    _add_run_params(p)
    _add_extraction_params(p)
    p.add_argument("--backend", choices=("fast", "librosa"), default="fast",
                   help="pYIN implementation: fast (raympa.pitch, default) or librosa (reference)")


def _add_import_pitchtracks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-pitchtracks", help="import precomputed FBA pitch tracks (time_sec,f0_hz)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("dir", nargs="?", help="folder of *_pyin_pitchtrack.txt files (recursive)")
    src.add_argument("--table", help="CSV or parquet with recording_id, pitchtrack_path [, segment columns]")
    _add_run_params(p)
    p.add_argument("--sample-rate", type=int, default=44_100, help="Hz of the target grid (default %(default)s)")
    p.add_argument("--hop-length", type=int, default=256, help="samples of the target grid (default %(default)s)")


# ----------------------------------------------------------------------------- data (issue 3)
def _add_fba_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fba-index", help="index of FBA auditions from the MIG-FbaData annotation layout")
    p.add_argument("--annotations", required=True, help="MIG-FbaData checkout (holds FBA2013..FBA2018 and the scores CSV)")
    p.add_argument("--audio", default=None, help="audio root (<year>-<year+1>/<band>/<id>/<id>.mp3)")
    p.add_argument("--pitchtracks", default=None, help="root of <id>_pyin_pitchtrack.txt files")
    p.add_argument("--out", required=True, help="index file (.csv, or .parquet)")
    p.add_argument("--years", default="2013-2018", help="e.g. 2013-2018 or 2013,2015 (default %(default)s)")
    p.add_argument("--bands", default="middleschool,symphonicband", help="comma list (default %(default)s)")
    p.add_argument("--instruments", default="Alto Saxophone,Bb Clarinet,Flute", help="comma list (default %(default)s)")
    p.add_argument("--segment", default="technical_etude", help="audition segment (default %(default)s)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 8:1:1 student split (default %(default)s)")
    p.add_argument("--keep-unusable", action="store_true", help="keep unusable rows, with a note column saying why")


def _add_demo_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-data", help="render simulated auditions + ratings.csv (the embedded default data)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=240, help="number of auditions (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--band", choices=("middleschool", "symphonicband"), default="middleschool")
    p.add_argument("--fba-annotations", default=None, help="MIG-FbaData checkout: real etude MIDIs and rating distribution")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the 8:1:1 split (default %(default)s)")
    p.add_argument("--duration", type=float, default=None,
                   help="nominal etude length in s (default: 30 middleschool, 48 symphonicband, FBA medians)")
    p.add_argument("--jobs", type=int, default=None, help="rendering processes (default: CPU count)")


# ----------------------------------------------------------------------------- training (issue 4)
def _add_train(sub: argparse._SubParsersAction) -> None:
    from raympa.config import TrainConfig

    p = sub.add_parser("train", help="train one model on one criterion (paper settings by default)")
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


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score new recordings with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="checkpoint.pt of a trained model; repeat the flag for several criteria")
    p.add_argument("audio", nargs="+", help="audio files (any format librosa reads)")
    p.add_argument("--out", default=None, help="write predictions to this CSV instead of printing")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default %(default)s)")


# ----------------------------------------------------------------------------- report (issue 6)
def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report (and CSV tables) of a study directory")
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


_BUILDERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_extract,
    _add_import_pitchtracks,
    _add_fba_index,
    _add_demo_data,
    _add_train,
    _add_predict,
    _add_report,
]


def build_parser() -> argparse.ArgumentParser:
    from raympa import __version__

    parser = argparse.ArgumentParser(prog="raympa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"raympa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for build in _BUILDERS:
        build(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raympa`` console script."""
    args = build_parser().parse_args(argv)
    module_name, func_name = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
