"""Shortcuts in the simulated auditions: how much of each rating global contour statistics explain.

For each band: render ``raympa demo-data --n N --seed S``, extract the pitch contours, and write,
per criterion, the 5-fold cross-validated R² of a linear model (ridge on standardised features)
and of gradient boosting on global contour statistics (``raympa.demo.shortcuts.FEATURES``), beside the
simulator's ceiling (``raympa.demo.ceiling``: ratings from the true deviation amounts) and
PCConvNet's test R² (``raympa.train.fit``, ``raympa train``'s defaults unless ``--epochs``).
Goals (at 600 auditions): global statistics <= 0.15 on every criterion; ceiling >= 0.5 on note
and rhythm accuracy and >= 0.4 on musicality; PCConvNet >= 0.25 on note accuracy.

``--probe`` also asks what PCConvNet can learn from these contours at all: it trains it (same seeds and
epochs) on stand-in targets computed from each contour (``raympa.demo.shortcuts.probe_statistics``: a
voicing pattern and a pitch shape of about a semitone), ranked and put on note accuracy's 0.1 grid.
``--probe-deviations`` does the same with realised deviation amounts from ``deviations.csv`` (which
deviations a contour-only model can learn at all), beside what the global statistics explain of each.

    python benchmarks/bench_shortcuts.py --n 600 --seed 7 --train-seeds 0,1,2
    python benchmarks/bench_shortcuts.py --n 120 --train-seeds ''     # statistics only, quick
    python benchmarks/bench_shortcuts.py --n 600 --seed 7 --train-seeds 0,1,2 --probe --bands middleschool
    python benchmarks/bench_shortcuts.py --n 600 --seed 7 --bands middleschool --probe-deviations fluffed_notes,legato,skill
    python benchmarks/bench_shortcuts.py --smoke-test
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raympa import constants as C
from raympa.contours import extract, load_contours
from raympa.demo import ceiling, make_demo
from raympa.demo.folder import ContourOutput
from raympa.demo.judge import DEVIATIONS
from raympa.demo.shortcuts import (FEATURES, contour_statistics, deviation_targets, probe_statistics, rank_to_grid,
                                   shortcut_r2)
from raympa.ratings import read_ratings

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BandData:
    """One band's rendered folder, loaded once: the ratings, the contours and their global statistics."""

    folder: Path
    ratings: pd.DataFrame  # read_ratings(folder)
    contours: pd.DataFrame  # load_contours(folder / "contours")
    features: pd.DataFrame  # (recordings, FEATURES) indexed by recording_id


def pcconvnet_r2(band: BandData, *, seeds: list[int], epochs: int | None,
                 target: pd.Series | None = None) -> dict[str, float]:
    """PCConvNet's test R² on note accuracy (full-length), one value per seed; ``target`` (by
    recording_id) replaces the note-accuracy ratings (a probe)."""
    from raympa.dataset import ContourSet
    from raympa.train import TrainConfig, fit

    ratings = band.ratings.copy()
    if target is not None:
        ratings["note_accuracy"] = target.reindex(ratings["recording_id"].astype(str)).to_numpy()
    data = ContourSet.from_tables(ratings, band.contours)
    out = {}
    for s in seeds:
        kw = {"epochs": epochs} if epochs else {}
        res = fit(TrainConfig(model="pcconvnet", criterion="note_accuracy", seed=s, **kw), data)
        out[f"seed {s}"] = float(res.metrics["test_r2_full"])
    return out


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _seed_cells(r2: dict[str, float]) -> str:
    """Markdown cells "per seed | mean" of one probe's test R²."""
    vals = list(r2.values())
    return f"{' / '.join(f'{v:.3f}' for v in vals)} | {np.mean(vals) if vals else float('nan'):.3f}"


def probe_targets(table: pd.DataFrame) -> pd.DataFrame:
    """(recordings, probes): each probe statistic of each contour, ranked to (0, 1] and rounded to 0.1
    (note accuracy's grid), indexed by recording_id."""
    stats = pd.DataFrame([probe_statistics(np.asarray(m)) for m in table["midi"]],
                         index=table["recording_id"].astype(str).to_numpy())
    return rank_to_grid(stats)


def run_probes(band: BandData, args: argparse.Namespace, seeds: list[int]) -> list[str]:
    """Markdown rows: PCConvNet's test R² on each probe target of one band's contours."""
    targets = probe_targets(band.contours)
    return [f"| {name} | {_seed_cells(pcconvnet_r2(band, seeds=seeds, epochs=args.epochs, target=targets[name]))} |"
            for name in targets.columns]


def run_deviation_probes(band: BandData, names: list[str], args: argparse.Namespace, seeds: list[int]) -> list[str]:
    """Markdown rows: for each named realised deviation (``--probe-deviations``), what the global
    statistics explain of it (linear / boosting, 5-fold) and PCConvNet's test R² when trained on it."""
    dev = pd.read_csv(band.folder / "deviations.csv", dtype={"recording_id": str})
    targets = deviation_targets(dev, names).loc[band.features.index]
    glob = shortcut_r2(band.features, targets, criteria=tuple(names)).set_index("criterion")
    return [f"| {name} | {glob.loc[name, 'linear_global']:.3f} / {glob.loc[name, 'boosting_global']:.3f} | "
            f"{_seed_cells(pcconvnet_r2(band, seeds=seeds, epochs=args.epochs, target=targets[name]))} |"
            for name in names]


def run_band(work: Path, band: str, args: argparse.Namespace, seeds: list[int],
             ) -> tuple[BandData, pd.DataFrame, dict[str, float], float]:
    folder = work / f"{band}_n{args.n}_s{args.seed}"
    t0 = time.perf_counter()
    contours = folder / "contours"
    if not (folder / "ratings.csv").is_file():  # rendered and extracted in the same workers
        make_demo(folder, n=args.n, seed=args.seed, band=band, duration_s=args.duration, jobs=args.jobs,
                  contours=ContourOutput(contours, use_cache=False))
    if not (contours / "contours.parquet").exists():
        extract(read_ratings(folder), contours, num_workers=args.jobs, use_cache=False)
    seconds = time.perf_counter() - t0
    table = load_contours(contours)
    feats = contour_statistics(table["midi"])
    feats.index = table["recording_id"].astype(str).to_numpy()
    data = BandData(folder, read_ratings(folder), table, feats)
    ratings = data.ratings.set_index(data.ratings["recording_id"].astype(str))
    res = shortcut_r2(feats, ratings.loc[feats.index, list(C.RATED_COLUMNS)])
    ceil = ceiling(folder)
    res["ceiling_linear"] = ceil["r2_linear"].to_numpy()
    res["ceiling_boosting"] = ceil["r2_boosting"].to_numpy()
    pcc = pcconvnet_r2(data, seeds=seeds, epochs=args.epochs) if seeds else {}
    return data, res, pcc, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bands", default="middleschool,symphonicband")
    p.add_argument("--duration", type=float, default=None, help="etude seconds (default: the band's)")
    p.add_argument("--train-seeds", default="0,1,2", help="PCConvNet seeds ('' = none)")
    p.add_argument("--epochs", type=int, default=None, help="PCConvNet epochs (default: raympa train's)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", default=None, help="keep the rendered folders here (default: a temp folder)")
    p.add_argument("--probe", action="store_true", help="also train PCConvNet on the probe targets")
    p.add_argument("--probe-deviations", default="",
                   help="comma-separated realised deviations (and/or 'skill') to train PCConvNet on in place of "
                        "note accuracy, e.g. fluffed_notes,legato,skill")
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "shortcuts.md"))
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.duration, args.train_seeds, args.bands = 30, 6.0, "", "middleschool"
    seeds = [int(s) for s in args.train_seeds.split(",") if s.strip()]
    probe_names = [n.strip() for n in args.probe_deviations.split(",") if n.strip()]
    unknown = sorted(set(probe_names) - set(DEVIATIONS) - {"skill"})
    if unknown:  # before any rendering or training
        p.error(f"--probe-deviations: unknown {unknown}; choose from skill, {', '.join(DEVIATIONS)}")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # this benchmark's own local Ray instance
    cmd = "python benchmarks/bench_shortcuts.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = ["# Shortcuts: global contour statistics against the simulator's ceiling", "",
             f"Command: `{cmd.strip()}`", "",
             f"Data: `raympa demo-data --n {args.n} --seed {args.seed}` per band, contours by `raympa extract`'s row function (`raympa demo-data --contours`); "
             "5-fold cross-validated R² (linear = ridge on standardised features; boosting = histogram gradient "
             f"boosting, depth 3). Global statistics: {', '.join(FEATURES)}. Ceiling: ratings from the true "
             "deviation amounts (`raympa.demo.ceiling`). PCConvNet: test R² on note accuracy, full-length, "
             f"epochs {args.epochs or 'default'}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        for band in [b.strip() for b in args.bands.split(",") if b.strip()]:
            data, res, pcc, seconds = run_band(work, band, args, seeds)
            lines += [f"## {band}", "", _markdown(res), ""]
            worst = res[["linear_global", "boosting_global"]].max().max()
            lines.append(f"Largest global-statistics R²: **{worst:.3f}** (goal <= 0.15). "
                         f"Rendering + extraction: {seconds:.0f} s.")
            if pcc:
                lines.append(f"PCConvNet note accuracy test R²: {', '.join(f'{k}: {v:.3f}' for k, v in pcc.items())}; "
                             f"mean **{np.mean(list(pcc.values())):.3f}** (goal >= 0.25).")
            lines.append("")
            if args.probe and seeds:
                lines += ["PCConvNet on probe targets (the contour's own statistic, ranked, on a 0.1 grid), "
                          "test R² (full length):", "", "| target | per seed | mean |", "|---|---|---|",
                          *run_probes(data, args, seeds), ""]
            if probe_names and seeds:
                lines += ["Deviation probes (a realised deviation amount, less = higher, ranked on a 0.1 grid, in place "
                          "of note accuracy): global statistics R² (linear / boosting, 5-fold) and PCConvNet's test "
                          "R² (full length):", "", "| target | global statistics | PCConvNet per seed | mean |",
                          "|---|---|---|---|", *run_deviation_probes(data, probe_names, args, seeds), ""]
    text = "\n".join(lines)
    print(text)
    if not args.smoke_test:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
