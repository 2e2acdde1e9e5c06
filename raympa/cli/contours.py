"""`raympa extract` and `raympa import-pitchtracks`: pitch contours on Ray Data."""

from __future__ import annotations

import argparse
import logging
import sys

from raympa import constants as C


def _add_extraction_params(p: argparse.ArgumentParser) -> None:
    from raympa.config import ExtractConfig

    d = ExtractConfig()
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz (default %(default)s, paper)")
    p.add_argument("--frame-length", type=int, default=d.frame_length, help="samples (default %(default)s, paper)")
    p.add_argument("--hop-length", type=int, default=d.hop_length, help="samples (default %(default)s, paper)")
    p.add_argument("--fmin", type=float, default=d.fmin, help="Hz (default %(default)s, ours: below the alto sax's Db3)")
    p.add_argument("--fmax", type=float, default=d.fmax, help="Hz (default %(default)s, ours: above the flute's D7)")
    p.add_argument("--resolution", type=float, default=d.resolution, help="semitones per pYIN pitch bin (default %(default)s, librosa)")


def _add_run_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (gets contours.parquet and errors.csv)")
    p.add_argument("--cache-dir", default=None, help="contour cache (default $RAYMPA_CACHE or ~/.cache/raympa)")
    p.add_argument("--address", default=None, help="Ray cluster address ('auto' to join a running cluster; token auth: docs/contours.md)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the contour cache")
    p.add_argument("--num-workers", type=int, default=None, help="at most this many parallel tasks (default: one per CPU)")
    p.add_argument("--rows-per-task", type=int, default=None, help="inputs per Ray task (default, ours: 1 for small runs, up to 8)")


def _add_inputs(p: argparse.ArgumentParser, *, folder: str, table: str) -> None:
    """The inputs (a folder or a table, one of them) and the run flags both commands share."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("dir", nargs="?", help=folder)
    src.add_argument("--table", help=table)
    _add_run_params(p)


def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="pYIN pitch contours from audio files, in parallel on Ray Data")
    p.set_defaults(handler=run_extract)
    _add_inputs(p, folder="folder of audio files (wav, flac, ogg, mp3; recursive)",
                table="CSV or parquet with recording_id, audio_path [, segment_start, segment_duration]")
    _add_extraction_params(p)
    p.add_argument("--backend", default="fast",
                   help="pYIN implementation: fast (raympa.pitch, default) or librosa (the reference)")


def _add_import_pitchtracks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-pitchtracks", help="import precomputed FBA pitch tracks (time_sec,f0_hz)")
    p.set_defaults(handler=run_import_pitchtracks)
    _add_inputs(p, folder="folder of *_pyin_pitchtrack.txt files (recursive)",
                table="CSV or parquet with recording_id, pitchtrack_path [, segment columns]")
    p.add_argument("--sample-rate", type=int, default=C.SAMPLE_RATE, help="Hz of the target grid (default %(default)s)")
    p.add_argument("--hop-length", type=int, default=C.HOP_LENGTH, help="samples of the target grid (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_extract(sub)
    _add_import_pitchtracks(sub)


def _setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("raympa").setLevel(logging.INFO)


def _run_params(args: argparse.Namespace) -> dict:
    """The keyword arguments both commands pass to the library (see ``_add_run_params``)."""
    return dict(cache_dir=args.cache_dir, use_cache=not args.no_cache, address=args.address,
                num_workers=args.num_workers, rows_per_task=args.rows_per_task)


def _refused(command: str, e: BaseException) -> int:
    """A user's error (missing or malformed input, impossible parameters): one line, exit 2."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"raympa {command}: {text}", file=sys.stderr)
    return 2


def run_extract(args: argparse.Namespace) -> int:
    """``raympa extract``: exit 0 when the run finished (errors.csv may list bad inputs), 2 on refused input."""
    from raympa.config import ExtractConfig
    from raympa.contours import extract

    _setup_logging()
    config = ExtractConfig(sample_rate=args.sample_rate, frame_length=args.frame_length, hop_length=args.hop_length,
                           fmin=args.fmin, fmax=args.fmax, backend=args.backend, resolution=args.resolution)
    try:
        res = extract(args.table or args.dir, args.out, config=config, **_run_params(args))
    except (ValueError, OSError) as e:  # OSError: FileNotFoundError, an unreachable --address
        return _refused("extract", e)
    print(res.summary())
    return 0


def run_import_pitchtracks(args: argparse.Namespace) -> int:
    """``raympa import-pitchtracks``: same exit codes as ``raympa extract``."""
    from raympa.contours import import_pitchtracks

    _setup_logging()
    try:
        res = import_pitchtracks(args.table or args.dir, args.out, sample_rate=args.sample_rate,
                                 hop_length=args.hop_length, **_run_params(args))
    except (ValueError, OSError) as e:
        return _refused("import-pitchtracks", e)
    print(res.summary())
    return 0
