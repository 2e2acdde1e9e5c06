"""Reference-informed models against PCConvNet on the demo, and the share of the simulator's ceiling they close.

For each criterion and each model row (PCConvNet without a reference; the reference-informed
models with ``table`` and with ``peers`` references), every recording is predicted out of fold:
5 folds (``--folds``), each fold's recordings the test set of models trained on the others (an
eighth of them the validation set of early stopping; peers come from the fold's training
recordings only), the seeds of a fold trained as one batched run (``raympa.train.fit_members``)
with the automatic chunk length. Reported per row: mean and sd over seeds of the out-of-fold R²,
the paired t-test against PCConvNet over the seeds, the share of the gap between PCConvNet and the
simulator's ceiling (``raympa.demo.ceiling``, cross-validated) that the row closes, the share of
runs whose best epoch is at the end of the budget, and for ``peers`` its gain as a share of
``table``'s; then the alignment features alone (the six and all sixteen, linear and boosting) on the same
folds. A demo folder with MIDI scores (``raympa demo-data``, ``--duration 4`` for short
recordings) and its contours (``raympa extract``) are the input.

    raympa demo-data --out DEMO --n 240 --seed 7 && raympa extract --table DEMO/ratings.csv --out DEMO/contours
    python benchmarks/bench_references.py --demo DEMO --seeds 5 --epochs 30 --patience 10 --criteria note_accuracy
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

ROWS = (("pcconvnet", "none"), ("si-pcconvnet", "table"), ("si-pcconvnet", "peers"), ("joint-embed", "table"),
        ("si-contrastive-jl", "table"), ("si-contrastive-jl", "peers"))
VAL_SHARE = 0.125  # ours: share of each fold's training recordings held out for early stopping


def fold_splits(n: int, folds: int, fold: int) -> np.ndarray:
    """(n,) split of fold ``fold``: its recordings ``test``, an eighth of the rest ``val``, the others ``train``."""
    fold_of = np.empty(n, np.int64)
    fold_of[np.random.default_rng(0).permutation(n)] = np.arange(n) % folds
    split = np.where(fold_of == fold, "test", "train").astype("<U5")
    rest = np.flatnonzero(split == "train")
    split[np.random.default_rng(1000 + fold).choice(rest, size=max(2, int(len(rest) * VAL_SHARE)), replace=False)] = "val"
    return split


def fold_data(demo: Path, reference: str, criterion: str, fold: int, folds: int, cache: dict):
    """The demo's ContourSet with fold ``fold``'s splits, and references built on them (peers from its training split)."""
    import pandas as pd

    from raympa.contours import load_contours
    from raympa.dataset import ContourSet
    from raympa.ratings import read_ratings
    from raympa.references import attach, build_references

    key = (reference, criterion if reference == "peers" else "", fold)
    if key not in cache:
        if "contours" not in cache:
            cache["table"] = read_ratings(demo / "ratings.csv")
            cache["contours"] = load_contours(demo / "contours")
        table = cache["table"].copy()
        table["split"] = fold_splits(len(table), folds, fold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data = ContourSet.from_tables(table, cache["contours"])
            if reference != "none":
                data = attach(data, build_references(reference, table, data, criterion=criterion))
        cache[key] = data
    return cache[key]


def run_row(demo: Path, model: str, reference: str, criterion: str, *, seeds: int, epochs: int, patience: int,
            folds: int, cache: dict, jl_lambda: float = 1.0) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-fold test R² per seed (every recording predicted by the fold that held it out), and run facts."""
    from raympa.evaluate import r2
    from raympa.informed import auto_chunk_frames
    from raympa.models import build_model

    preds: dict[int, dict[str, float]] = {s: {} for s in range(seeds)}
    truth: dict[str, float] = {}
    t0, at_end, chunk = time.perf_counter(), [], 0
    for fold in range(folds):
        data = fold_data(demo, reference, criterion, fold, folds, cache)
        train = data.indices(split="train", criterion=criterion)
        chunk = auto_chunk_frames(data.lengths[train], min_frames=build_model(model).min_frames)
        cfgs = [TrainConfig(model=model, criterion=criterion, reference=reference, seed=s, epochs=epochs,
                            encoder_epochs=max(1, epochs // 2), patience=patience, threads=1, chunk_frames=chunk,
                            jl_lambda=jl_lambda)
                for s in range(seeds)]
        for s, r in enumerate(fit_members(cfgs, data)):
            if isinstance(r, BaseException):
                continue
            at_end.append(bool(r.metrics["best_epoch_at_end"]))
            lat = r.latents
            preds[s].update(zip(lat["recording_id"].astype(str), lat["pred"].astype(float)))
            truth.update(zip(lat["recording_id"].astype(str), lat["y"].astype(float)))
    ids = sorted(truth)
    y = np.array([truth[i] for i in ids])
    scores = np.array([r2(y, np.array([preds[s].get(i, np.nan) for i in ids])) if len(preds[s]) == len(ids)
                       else np.nan for s in range(seeds)])
    return scores, {"seconds": time.perf_counter() - t0, "at_end": float(np.mean(at_end)) if at_end else np.nan,
                    "chunk": chunk}


def features_oof(demo: Path, reference: str, criterion: str, folds: int, cache: dict) -> dict[str, float]:
    """Out-of-fold R² of the alignment features alone on the same folds (fitted on each fold's train and val)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    from raympa.align import FEATURES
    from raympa.evaluate import r2

    out: dict[str, float] = {}
    for name, n_feat in (("six", len(FEATURES)), ("sixteen", None)):
        for est_name, make in (("linear", LinearRegression), ("boosting", lambda: HistGradientBoostingRegressor(
                max_iter=200, learning_rate=0.05, random_state=0))):
            ys, ps = [], []
            for fold in range(folds):
                data = fold_data(demo, reference, criterion, fold, folds, cache)
                x, y = data.side[:, :n_feat], data.ratings[criterion]
                fit, test = np.isfinite(y) & (data.split != "test"), np.isfinite(y) & (data.split == "test")
                ys.append(y[test])
                ps.append(make().fit(x[fit], y[fit]).predict(x[test]))
            out[f"{name} {est_name}"] = r2(np.concatenate(ys), np.concatenate(ps))
    return out


def features_table(demo: Path, criteria: list[str]) -> list[str]:
    """R² of the alignment features alone (the six; all sixteen with the rhythm ones), linear and boosting,
    per reference mode and criterion: 5-fold cross-validated over every recording, and fitted on the
    training and validation recordings, scored on the test split (the models' test set)."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_score

    from raympa.align import ALL_FEATURES, FEATURES

    ratings = pd.read_csv(demo / "ratings.csv", dtype={"recording_id": str})
    lines = ["| reference | criterion | features | R² linear (CV) | R² boosting (CV) | R² linear (test split) | "
             "R² boosting (test split) | n |", "|---|---|---|---|---|---|---|---|"]
    for mode in ("table", "peers"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data, refs = load_referenced_data(demo / "ratings.csv", demo / "contours", reference=mode,
                                              criterion=criteria[0])
        split = pd.DataFrame({"recording_id": data.recording_id.astype(str), "_split": data.split})
        df = refs.features.merge(ratings, on="recording_id").merge(split, on="recording_id")
        test = (df["_split"] == "test").to_numpy()
        for crit in criteria:
            for name, cols in (("six", FEATURES), ("sixteen", ALL_FEATURES)):
                x, y = df[list(cols)].to_numpy(), df[crit].to_numpy()
                cv = KFold(5, shuffle=True, random_state=0)
                scores = []
                for est in (LinearRegression(), HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05,
                                                                               random_state=0)):
                    scores.append(cross_val_score(est, x, y, cv=cv, scoring="r2").mean())
                for est in (LinearRegression(), HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05,
                                                                               random_state=0)):
                    scores.append(r2_score(y[test], est.fit(x[~test], y[~test]).predict(x[test])))
                lines.append(f"| {mode} | {crit} | {name} | " + " | ".join(f"{v:.3f}" for v in scores)
                             + f" | {len(df)} |")
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
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=list(dict.fromkeys(m for m, _ in ROWS)))
    ap.add_argument("--references", nargs="+", default=["table", "peers"], choices=["table", "peers"])
    ap.add_argument("--jl-lambda", type=float, default=1.0, help="lambda of the joint loss (paper: 1)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke-test", action="store_true")
    ap.add_argument("--features-only", action="store_true", help="only the alignment features' R² (no training)")
    args = ap.parse_args(argv)
    if args.features_only:
        ceil = ceiling(args.demo).set_index("criterion")["r2_linear"]
        lines = ["# The alignment features alone, on the demo", "",
                 f"Command: `python benchmarks/bench_references.py --demo {args.demo.name} --features-only --criteria "
                 f"{' '.join(args.criteria)}`", "",
                 "R² of predicting each rating from the six alignment numbers (raympa.align.FEATURES), and from "
                 "all sixteen with the ten rhythm numbers of the DTW path and the onsets (raympa.align.ALL_FEATURES), "
                 "of each "
                 "recording against its reference: 5-fold cross-validated over all recordings, and fitted on the "
                 "train and val splits and scored on the test split; simulator's ceiling (linear, "
                 "true deviations): " + ", ".join(f"{c} {ceil[c]:.3f}" for c in args.criteria) + ".", "",
                 *features_table(args.demo, args.criteria)]
        return _emit(lines, args.out)
    if args.smoke_test:
        args.seeds, args.epochs, args.patience, args.criteria, args.folds = 2, 2, 2, args.criteria[:1], 2
    rows = [r for r in ROWS if r[0] in args.models and r[1] in args.references + ["none"]]
    ceil = ceiling(args.demo).set_index("criterion")["r2_linear"]
    cache: dict = {}
    lines = [f"# Reference-informed models on `{args.demo.name}`", "",
             f"Command: `python benchmarks/bench_references.py --demo {args.demo.name} --seeds {args.seeds} "
             f"--epochs {args.epochs} --patience {args.patience} --folds {args.folds} --criteria "
             f"{' '.join(args.criteria)} --models {' '.join(args.models)} --references {' '.join(args.references)}"
             + (f" --jl-lambda {args.jl_lambda:g}" if args.jl_lambda != 1.0 else "") + "`",
             "", f"Out-of-fold R² ({args.folds} folds: each recording is predicted by the models trained without it; "
             "in each fold an eighth of the training recordings is the validation set of early stopping), mean ± sd "
             f"over seeds 0-{args.seeds - 1} (the seeds of one fold train as one batched run); p: paired t-test "
             "against PCConvNet over the seeds; gap closed: (R² - PCConvNet) / (ceiling - PCConvNet), ceiling = the "
             "linear model on the true deviation amounts (raympa.demo.ceiling, cross-validated); at end: share of "
             "runs whose best epoch is in the last 5 % of the budget; chunk: training chunk frames "
             "(raympa.informed.auto_chunk_frames).", "",
             "| criterion | model | reference | R² (out of fold) | p vs PCConvNet | gap closed | at end | chunk | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for crit in args.criteria:
        base, gains = None, {}
        for model, ref in rows:
            r2, facts = run_row(args.demo, model, ref, crit, seeds=args.seeds, epochs=args.epochs,
                                patience=args.patience, folds=args.folds, cache=cache, jl_lambda=args.jl_lambda)
            base = r2 if base is None and model == "pcconvnet" else base
            b = base if base is not None else np.full_like(r2, np.nan)
            p = float(stats.ttest_rel(r2, b).pvalue) if model != "pcconvnet" and len(r2) > 1 else float("nan")
            gains[(model, ref)] = gain = float(np.nanmean(r2) - np.nanmean(b))
            closed = gain / (ceil[crit] - np.nanmean(b)) if model != "pcconvnet" else float("nan")
            lines.append(f"| {crit} | {MODEL_LABELS[model]} | {ref} | {np.nanmean(r2):.3f} ± {np.nanstd(r2):.3f} | "
                         f"{p:.3g} | {closed:.2f} | {facts['at_end']:.2f} | {facts['chunk']} | {facts['seconds']:.0f} |")
            print(lines[-1], flush=True)
        for ref in args.references:
            feats = features_oof(args.demo, ref, crit, args.folds, cache)
            for name, v in feats.items():
                closed = (v - np.nanmean(base)) / (ceil[crit] - np.nanmean(base)) if base is not None else np.nan
                lines.append(f"| {crit} | alignment features alone ({name}) | {ref} | {v:.3f} | | {closed:.2f} | | | |")
        lines.append(f"| {crit} | ceiling (linear, true deviations) | | {ceil[crit]:.3f} | | 1.00 | | | |")
        for model in dict.fromkeys(m for m, r in rows if r == "peers"):
            t, pe = gains.get((model, "table"), np.nan), gains[(model, "peers")]
            lines.append(f"| {crit} | {MODEL_LABELS[model]}: peers' gain / table's gain | | "
                         f"{pe / t if t > 0 else float('nan'):.2f} | | | | | |")
    return _emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
