"""Reference-informed models against PCConvNet on the demo, and the share of the simulator's ceiling they close.

For each criterion (note and rhythm accuracy by default) and each model row (PCConvNet without a
reference; the reference-informed models with ``table`` and with ``peers`` references), the seeds
train as one batched run (``raympa.train.fit_members``). Reported per row: mean and sd of test R²
on full-length recordings over the seeds, the paired t-test against PCConvNet over the same seeds,
the share of the gap between PCConvNet and the simulator's ceiling (``raympa.demo.ceiling``, the
linear model's cross-validated R² from the true deviation amounts) that the row closes, and for
``peers`` its gain as a share of ``table``'s. A demo folder with MIDI scores (``raympa demo-data``)
and its contours (``raympa extract``) are the input.

    raympa demo-data --out DEMO --n 240 --seed 7 && raympa extract --table DEMO/ratings.csv --out DEMO/contours
    python benchmarks/bench_references.py --demo DEMO --seeds 5 --epochs 100 --out benchmarks/results/references.md
    python benchmarks/bench_references.py --demo DEMO --features-only --criteria note_accuracy rhythm_accuracy musicality \
        --out benchmarks/results/references_features.md
    python benchmarks/bench_references.py --demo DEMO --smoke-test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from raympa.config import TrainConfig  # noqa: E402
from raympa.constants import MODEL_LABELS  # noqa: E402
from raympa.demo import ceiling  # noqa: E402
from raympa.references import load_referenced_data  # noqa: E402
from raympa.train import fit_members  # noqa: E402

ROWS = (("pcconvnet", "none"), ("si-pcconvnet", "table"), ("si-pcconvnet", "peers"),
        ("si-contrastive-jl", "table"), ("si-contrastive-jl", "peers"))


def run_row(demo: Path, model: str, reference: str, criterion: str, *, seeds: int, epochs: int,
            patience: int, cache: dict) -> tuple[np.ndarray, float]:
    """Test R² (full length) per seed, and wall seconds."""
    if (reference, criterion) not in cache:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cache[(reference, criterion)] = load_referenced_data(demo / "ratings.csv", demo / "contours",
                                                                 reference=reference, criterion=criterion)
    data, _ = cache[(reference, criterion)]
    cfgs = [TrainConfig(model=model, criterion=criterion, reference=reference, seed=s, epochs=epochs,
                        encoder_epochs=max(1, epochs // 2), patience=patience, threads=1) for s in range(seeds)]
    t0 = time.perf_counter()
    results = fit_members(cfgs, data)
    r2 = np.array([r.metrics["test_r2_full"] if not isinstance(r, BaseException) else np.nan for r in results])
    return r2, time.perf_counter() - t0


def features_table(demo: Path, criteria: list[str]) -> list[str]:
    """Cross-validated R² (5 folds) of the six alignment features alone, per reference mode and criterion."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score

    from raympa.align import FEATURES

    ratings = pd.read_csv(demo / "ratings.csv", dtype={"recording_id": str})
    lines = ["| reference | criterion | R² linear | R² boosting | n |", "|---|---|---|---|---|"]
    for mode in ("table", "peers"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _, refs = load_referenced_data(demo / "ratings.csv", demo / "contours", reference=mode,
                                           criterion=criteria[0])
        df = refs.features.merge(ratings, on="recording_id")
        x = df[list(FEATURES)].fillna(0.0).to_numpy()
        for crit in criteria:
            cv = KFold(5, shuffle=True, random_state=0)
            lin = cross_val_score(LinearRegression(), x, df[crit], cv=cv, scoring="r2").mean()
            gbm = cross_val_score(HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0),
                                  x, df[crit], cv=cv, scoring="r2").mean()
            lines.append(f"| {mode} | {crit} | {lin:.3f} | {gbm:.3f} | {len(df)} |")
    return lines


def _emit(lines: list[str], out: Path | None) -> int:
    """Print the table and write it to ``out`` when given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, required=True)
    ap.add_argument("--criteria", nargs="+", default=["note_accuracy", "rhythm_accuracy"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke-test", action="store_true")
    ap.add_argument("--features-only", action="store_true", help="only the six alignment features' R² (no training)")
    args = ap.parse_args(argv)
    if args.features_only:
        ceil = ceiling(args.demo).set_index("criterion")["r2_linear"]
        lines = ["# The six alignment features alone, on the demo", "",
                 f"Command: `python benchmarks/bench_references.py --demo DEMO --features-only --criteria "
                 f"{' '.join(args.criteria)}`", "",
                 "5-fold cross-validated R² of predicting each rating from the six alignment numbers "
                 "(raympa.align.FEATURES) of each recording against its reference; simulator's ceiling (linear, "
                 "true deviations): " + ", ".join(f"{c} {ceil[c]:.3f}" for c in args.criteria) + ".", "",
                 *features_table(args.demo, args.criteria)]
        return _emit(lines, args.out)
    if args.smoke_test:
        args.seeds, args.epochs, args.patience, args.criteria = 2, 2, 2, args.criteria[:1]
    ceil = ceiling(args.demo).set_index("criterion")["r2_linear"]
    cache: dict = {}
    lines = ["# Reference-informed models on the demo", "",
             f"Command: `python benchmarks/bench_references.py --demo DEMO --seeds {args.seeds} --epochs {args.epochs} "
             f"--patience {args.patience} --criteria {' '.join(args.criteria)}`", "",
             "Test R² on full-length recordings, mean ± sd over seeds 0-%d (one batched run per row); p: paired "
             "t-test against PCConvNet over the same seeds; gap closed: (R² - PCConvNet) / (ceiling - PCConvNet), "
             "ceiling = the linear model on the true deviation amounts (raympa.demo.ceiling)." % (args.seeds - 1), "",
             "| criterion | model | reference | test R² | p vs PCConvNet | gap closed | seconds |",
             "|---|---|---|---|---|---|---|"]
    for crit in args.criteria:
        base = None
        gains: dict[tuple[str, str], float] = {}
        for model, ref in ROWS:
            r2, secs = run_row(args.demo, model, ref, crit, seeds=args.seeds, epochs=args.epochs,
                               patience=args.patience, cache=cache)
            if base is None:
                base = r2
            p = float(stats.ttest_rel(r2, base).pvalue) if model != "pcconvnet" and len(r2) > 1 else float("nan")
            gain = float(np.nanmean(r2) - np.nanmean(base))
            gains[(model, ref)] = gain
            closed = gain / (ceil[crit] - np.nanmean(base)) if model != "pcconvnet" else float("nan")
            lines.append(f"| {crit} | {MODEL_LABELS[model]} | {ref} | {np.nanmean(r2):.3f} ± {np.nanstd(r2):.3f} | "
                         f"{p:.3g} | {closed:.2f} | {secs:.0f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {crit} | ceiling (linear, true deviations) | | {ceil[crit]:.3f} | | 1.00 | |")
        for model in ("si-pcconvnet", "si-contrastive-jl"):
            t, pe = gains[(model, "table")], gains[(model, "peers")]
            lines.append(f"| {crit} | {MODEL_LABELS[model]}: peers' gain / table's gain | | "
                         f"{pe / t if t > 0 else float('nan'):.2f} | | | |")
    return _emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
