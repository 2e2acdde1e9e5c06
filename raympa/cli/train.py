"""`raympa train`: one training run (or one per seed, trained together) from a ratings table and its contours."""

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
    p.add_argument("--out", required=True, help="run folder: metrics.json, checkpoint.pt, latents.npz "
                   "(with --seeds: OUT/seed-<k>/ each, and OUT/seeds.csv)")
    p.add_argument("--seeds", default=None, help="train these seeds together as one batched model, e.g. 0-4 or "
                   "0,2,7 (overrides --seed); each seed's folder is what a single run writes")
    p.add_argument("--split-seed", type=int, default=0, help="split seed when the table has no split column")
    p.add_argument("--band", default=None, help="train on this band only (default: every band in the table)")
    p.add_argument("--log-every", type=int, default=10, help="print progress every N epochs (default %(default)s)")
    p.add_argument("--fmin", type=float, default=None, help="Hz: the pitch range the contours were extracted with "
                   "(raympa extract --fmin), when not the default; audio references are extracted with it and the "
                   "checkpoint records it for raympa predict (default: the contours' recorded range, else extract's)")
    p.add_argument("--fmax", type=float, default=None, help="Hz: as --fmin, the top of the range")
    notes = {  # what each flag is, and where its default comes from: docs/divergences.md
        "model": "pcconvnet = the baseline; contrastive = two-step; contrastive-jl = joint loss; si-* and "
                 "joint-embed* read a reference (--reference)",
        "criterion": "the rating the model regresses",
        "seed": "weights, batches and pairs of the run (the split has its own --split-seed)",
        "n_bins": "C, rating bins of the weighted contrastive loss (paper and original code: 5)",
        "rnc_temperature": "tau of Rank-N-Contrast (Zha et al. 2023: 2)",
        "chunk_frames": "frames per training chunk: a number, or auto = the paper's 1000 (about 5.8 s) where the "
                        "training recordings allow, else the 10%% length quantile, never below the model's "
                        "minimum input (ours; raympa.informed.auto_chunk_frames)",
        "batch_size": "chunks per SGD step (ours; the paper states none)",
        "lr": "learning rate of the joint, head and baseline stages (paper: 0.005 for the joint and head)",
        "epochs": "most epochs of the joint, head and baseline stages (paper: 300 for the joint and head)",
        "encoder_epochs": "most epochs of the two-step encoder stage (paper: 150)",
        "momentum": "SGD momentum (paper and original code)",
        "weight_decay": "SGD weight decay (paper and original code)",
        "device": "auto = CUDA when present, else CPU; cuda fails clearly on a torch without CUDA",
        "contrastive": "weighted = the paper's loss; rnc = Rank-N-Contrast",
        "jl_lambda": "weight of the contrastive term in contrastive-jl",
        "margin": "s (original code 0.5; the paper gives none)",
        "min_steps_per_epoch": "repeat an epoch's pass until it has this many SGD steps (ours; 0 = paper)",
        "pairing": "halves = original code; all = every pair in the batch",
        "chunking": "random = paper; fixed = windows of chunk_frames at chunk_hop; code = the original code's "
                    "three window sets mixed",
        "chunk_hop": "frames between the fixed training windows",
        "pitch_norm": "midi127 = paper; midi36_72 = original code",
        "pitch_shift": "max random shift in semitones (original code: 2; paper: 0 = off)",
        "chunks_per_recording": "random chunks per training recording per epoch (paper: 1)",
        "encoder_lr": "two-step encoder learning rate; 0 = auto: the paper's 0.1 for the paper's model (code 0.005), 0.01 "
                      "for the reference-informed ones (ours)",
        "patience": "early-stopping patience in epochs (paper 75)",
        "min_delta": "a new best validation loss must beat the best by this fraction of it (ours; 0 = paper)",
        "head_norm": "standardize = the two-step head reads the embedding standardised with the training set's "
                     "mean and sd (ours); none = the raw embedding (paper); auto = standardize for the paper's "
                     "models, none for the reference-informed ones (ours)",
        "threads": "torch CPU threads (0 = torch's default)",
        "reference": "none = the paper's; table = each row's reference_path; peers = top-rated training "
                     "recordings of the same piece_id (ours)",
        "reference_peers": "training peers merged per recording with --reference peers (ours)",
    }
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        choices = typing.get_args(hints[f.name]) or None
        default = 1 if f.name == "threads" else f.default  # one thread: fastest for this tiny model
        kind = type(f.default)
        if f.name == "chunk_frames":  # a number or "auto", resolved from the training lengths in run_train
            default, kind = "auto", str
        text = (notes.get(f.name, "") + " (default %(default)s)").strip()
        p.add_argument(flag, type=kind, default=default, choices=choices, help=text)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    _add_train(sub)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,7"`` and mixes such as ``"0-2,9"`` too."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            lo, _, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected a range such as 0-4 or a list such as 0,2,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: need at least one seed and no repeats")
    return seeds


def pitch_range(fmin: float | None, fmax: float | None) -> dict[str, float]:
    """``--fmin``/``--fmax`` as extraction parameters (only those given); ValueError for an impossible range."""
    from raympa.config import ExtractConfig

    given = {k: float(v) for k, v in (("fmin", fmin), ("fmax", fmax)) if v is not None}
    lo, hi = given.get("fmin", ExtractConfig.fmin), given.get("fmax", ExtractConfig.fmax)
    if not 0 < lo < hi:
        raise ValueError(f"--fmin {lo} / --fmax {hi}: need 0 < fmin < fmax (Hz)")
    lowest = 2 * ExtractConfig.sample_rate / ExtractConfig.frame_length  # two periods in pYIN's frame
    if lo <= lowest:
        raise ValueError(f"--fmin {lo}: pYIN's {ExtractConfig.frame_length}-sample frame holds two periods only "
                         f"above {lowest:.1f} Hz")
    return given


def _auto_chunk(cfg: object, data: object, band: str | None) -> int:
    """``--chunk-frames auto``: :func:`raympa.informed.auto_chunk_frames` of the training recordings' lengths."""
    from raympa.informed import auto_chunk_frames
    from raympa.models import build_model

    lengths = data.lengths[data.indices(band=band, split="train", criterion=cfg.criterion)]
    return auto_chunk_frames(lengths, min_frames=build_model(cfg.model).min_frames)


def _error(text: object, code: int = 2) -> int:
    import sys

    print("raympa train: error: " + " ".join(str(text).split()), file=sys.stderr)
    return code


def run_train(args: argparse.Namespace) -> int:
    """``raympa train``: one run, or one per seed trained together; writes the run folder(s)."""
    import sys

    from raympa.config import TrainConfig
    from raympa.runfolder import seed_folder, write_seeds
    from raympa.train import fit_members, load_training_data, resolve_device

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        chunk = str(args.chunk_frames).strip().lower()
        if chunk != "auto" and not chunk.isdigit():
            raise ValueError(f"--chunk-frames {args.chunk_frames!r}: a number of frames or auto")
        given = {k: v for k, v in vars(args).items() if k in names and not (k == "chunk_frames" and chunk == "auto")}
        cfg = TrainConfig.from_dict(given)
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [cfg.seed]
        resolve_device(cfg.device)  # a GPU asked for where torch has none: say so before loading data
        extract = pitch_range(args.fmin, args.fmax)
        if cfg.reference == "none":
            data = load_training_data(args.ratings, args.contours, split_seed=args.split_seed)
            data = dataclasses.replace(data, extract={**data.extract, **extract})
        else:  # reference-informed: the references are read, aligned and attached here
            from raympa.references import load_referenced_data

            data, refs = load_referenced_data(args.ratings, args.contours, reference=cfg.reference,
                                              criterion=cfg.criterion, peers=cfg.reference_peers,
                                              split_seed=args.split_seed, extract=extract)
            print(refs.summary(), file=sys.stderr)
        if chunk == "auto":
            cfg = dataclasses.replace(cfg, chunk_frames=_auto_chunk(cfg, data, args.band))
            print(f"chunk frames: auto -> {cfg.chunk_frames}", file=sys.stderr)
    except (ValueError, OSError, KeyError) as e:  # missing or malformed table, bad flag values
        return _error(e)
    every = max(1, int(args.log_every))

    def log(metrics: list, _get_state: object) -> None:
        for seed, m in zip(seeds, metrics):
            if m is not None and (m["epoch"] == 1 or m["epoch"] % every == 0):
                print(f"seed {seed} epoch {m['epoch']:4d} {m['stage']:10s} train_loss {m['train_loss']:.4f} "
                      f"val_loss {m['val_loss']:.4f} val_r2_full {m['val_r2_full']:.3f}", file=sys.stderr)

    cfgs = [dataclasses.replace(cfg, seed=s) for s in seeds]
    out_dirs = [args.out] if args.seeds is None else [seed_folder(args.out, s) for s in seeds]
    try:
        results = fit_members(cfgs, data, band=args.band, callback=log, out_dirs=out_dirs)
    except ValueError as e:  # unusable data or configuration
        return _error(e)
    if args.seeds is not None:
        write_seeds(results, seeds, args.out)
    failed = 0
    for seed, r, d in zip(seeds, results, out_dirs):
        if isinstance(r, BaseException):
            failed += 1
            _error(f"seed {seed}: {r}", 1)
            continue
        m = r.metrics
        print(f"{cfg.model} {cfg.criterion} seed {seed}: test R² full {m['test_r2_full']:.3f}, "
              f"chunk {m['test_r2_chunk']:.3f}; val R² full {m['val_r2_full']:.3f}; "
              f"{m['epochs_run']} epochs (best {m['best_epoch']}), {m['seconds']:.0f} s on {m['device']} -> {d}")
    return 1 if failed else 0
