"""`raympa predict`: score recordings with trained checkpoints."""

from __future__ import annotations

import argparse


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score new recordings with a trained checkpoint")
    p.set_defaults(handler=run_predict)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", action="append",
                       help="checkpoint.pt of a trained model; repeat the flag for several criteria")
    which.add_argument("--study", default=None,
                       help="a finished study folder: score with every seed of its best configuration per "
                            "criterion and average them (columns <criterion> and <criterion>_sd)")
    p.add_argument("--band", default=None, help="with --study: the band whose best configuration scores (default: "
                                                "the study's only band)")
    p.add_argument("audio", nargs="+", help="audio files (any format librosa reads)")
    p.add_argument("--out", default=None, help="write predictions to this CSV instead of printing")
    p.add_argument("--reference", default=None, help="the piece's reference (MIDI score, audio or time_sec,f0_hz "
                   "track) for a reference-informed checkpoint, aligned to each recording; or 'peers': the piece's "
                   "top-rated training recordings, as in training (needs --ratings, --contours, --piece)")
    p.add_argument("--ratings", default=None, help="with --reference peers: the training ratings table")
    p.add_argument("--contours", default=None, help="with --reference peers: the training contours folder")
    p.add_argument("--piece", default=None, help="with --reference peers: the piece_id the recordings play")
    p.add_argument("--fmin", type=float, default=None, help="Hz: extract the recordings (and audio references) "
                   "with this lowest pitch instead of the checkpoint's (e.g. a checkpoint trained before the range "
                   "was recorded); default: the checkpoint's")
    p.add_argument("--fmax", type=float, default=None, help="Hz: as --fmin, the highest pitch")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_predict(sub)


def run_predict(args: argparse.Namespace) -> int:
    """``raympa predict``: print (or write with --out) predicted ratings per audio file."""
    import sys
    from pathlib import Path

    from raympa.predict import predict_files

    try:
        from raympa.cli.train import pitch_range

        common = {"device": args.device, "reference": args.reference, "extract": pitch_range(args.fmin, args.fmax),
                  "peers": {"ratings": args.ratings, "contours": args.contours, "piece": args.piece}}
        if args.study:
            from raympa.export import predict_study

            df = predict_study(args.study, args.audio, band=args.band, **common)
        else:
            df = predict_files(args.checkpoint, args.audio, **common)
    except (ValueError, OSError) as e:  # a missing or foreign checkpoint, a device torch does not have
        print("raympa predict: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
        print(f"{len(df)} recordings -> {args.out}", file=sys.stderr)
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for a, n in zip(df["audio_path"], df["note"]):
        if n:
            print(f"note: {a}: {n}", file=sys.stderr)
    value_cols = [c for c in df.columns if c not in ("audio_path", "note") and not c.endswith("_sd")]
    return 0 if df[value_cols].notna().any(axis=None) else 1
