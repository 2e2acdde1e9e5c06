"""Which configuration stands for a model, and test R² over seeds (paper Figures 2-3).

Where a model was run in several configurations (a sweep), the per-model views show, for each
criterion x band, the configuration with the best mean *selection* metric over seeds (among those
with the most seeds, ``study.json`` "metric", a validation metric) and report its *test* R², so
the choice never looks at the test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raympa.analysis.load import AnalysisConfig, Notes, Study
from raympa.constants import MODEL_LABELS

# test protocols: trials.csv column -> (short name, what it scores); raympa.sampling defines the windows
TEST_PROTOCOLS = {
    "test_r2_full": ("full-length", "whole test recordings, one prediction each (the paper's test)"),
    "test_r2_chunk1000": ("chunk-1000", "every 1000-frame window at hop 500 of the test recordings, one R² over "
                                        "all windows (ours; the paper's chunk length)"),
    "test_r2_chunkmix": ("three-window (original code)", "every window of the original code's three sets "
                         "(1000/500, 1500/500, 2000/1000 frames/hop) together, one R² over all (its test protocol)"),
    "test_r2_chunk": ("chunk-1000", "every 1000-frame window at hop 500 of the test recordings (older column name "
                                    "of test_r2_chunk1000)"),
}
R2_PROTOCOLS = tuple(TEST_PROTOCOLS)
LATE_FRACTION = 0.05  # a best epoch in the last 5% of the epochs run: the run was still improving (ours)
SELECTED_COLUMNS = ["model", "criterion", "band", "config_id", "n_configs", "n_seeds", "selection_mean"]
_KEYS = ["model", "criterion", "band", "config_id"]


def label(model: str) -> str:
    """The paper's name of a model (``constants.MODEL_LABELS``), or the name itself."""
    return MODEL_LABELS.get(model, model)


def r2_protocols(columns: Any) -> list[str]:
    """The test-protocol columns present, in ``TEST_PROTOCOLS`` order; the older ``test_r2_chunk``
    only when ``test_r2_chunk1000`` is absent (it is an alias)."""
    present = [p for p in TEST_PROTOCOLS if p in set(columns)]
    if "test_r2_chunk1000" in present and "test_r2_chunk" in present:
        present.remove("test_r2_chunk")
    return present


def protocol_name(column: str) -> str:
    """Short name of a test protocol column (``full-length``, ``chunk-1000`` ...)."""
    return TEST_PROTOCOLS.get(column, (column, ""))[0]


def selected_configs(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Per model x criterion x band, the configuration with the best mean selection metric.

    Among the configurations with the most seeds (so a lucky single-seed run cannot win); where a
    model ran in one configuration, that one.

    Returns:
        columns ``model, criterion, band, config_id, n_configs, n_seeds, selection_mean``.
    """
    fin = study.finished
    notes: Notes = []
    if fin.empty:
        return pd.DataFrame(columns=SELECTED_COLUMNS), ["no finished trials: nothing to analyse."]
    per = (
        fin.groupby(_KEYS, sort=False)
        .agg(selection_mean=(study.metric, "mean"), n_seeds=("seed", "nunique"))
        .reset_index()
    )
    rows = []
    for (model, crit, band), g in per.groupby(["model", "criterion", "band"], sort=False):
        # most seeds first (a lucky single-seed configuration must not win), then best mean
        g = g.sort_values(["n_seeds", "selection_mean"], ascending=[False, not study.maximize], kind="stable")
        best = g.iloc[0]
        rows.append({
            "model": model, "criterion": crit, "band": band, "config_id": best["config_id"],
            "n_configs": len(g), "n_seeds": int(best["n_seeds"]), "selection_mean": best["selection_mean"],
        })
        if len(g) > 1:
            notes.append(
                f"{label(model)} / {crit} / {band}: {len(g)} configurations; per-model views "
                f"use the best by mean {study.metric} over seeds among those with the most seeds ({best['config_id']})."
            )
    return pd.DataFrame(rows), notes


def selected_trials(study: Study, selected: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of the selected configurations."""
    return study.finished.merge(selected[_KEYS], on=_KEYS, how="inner")


def r2_by_model(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Test R² of each seed, per model x criterion x band x protocol (paper Figures 2-3).

    Returns:
        long table ``trial_id, model, criterion, band, seed, config_id, protocol, r2``.
    """
    selected, notes = selected_configs(study)
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id", "protocol", "r2"]
    if selected.empty:
        return pd.DataFrame(columns=cols), notes
    trials = selected_trials(study, selected)
    protocols = r2_protocols(trials.columns)
    if not protocols:
        return pd.DataFrame(columns=cols), notes + ["trials.csv holds no test R² column (test_r2_full / test_r2_chunk)."]
    long = trials.melt(
        id_vars=["trial_id", "model", "criterion", "band", "seed", "config_id"],
        value_vars=protocols, var_name="protocol", value_name="r2",
    )
    long = long.dropna(subset=["r2"])
    single = selected[selected["n_seeds"] < 2]
    for _, r in single.iterrows():
        notes.append(f"{label(r['model'])} / {r['criterion']} / {r['band']}: one seed only; no spread.")
    return long[cols].reset_index(drop=True), notes


def r2_summary(r2_long: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1), median, min and max of R² over seeds."""
    if r2_long.empty:
        return pd.DataFrame(columns=["model", "criterion", "band", "protocol", "n", "mean", "std", "median", "min", "max"])
    return (
        r2_long.groupby(["model", "criterion", "band", "protocol"], sort=False)["r2"]
        .agg(n="count", mean="mean", std="std", median="median", min="min", max="max")
        .reset_index()
    )


def representative_trials(study: Study) -> pd.DataFrame:
    """Per model x criterion x band (selected configuration), the seed with the median selection
    metric among those with a latents file: the run drawn in t-SNE plots."""
    selected, _ = selected_configs(study)
    if selected.empty:
        return study.finished.iloc[0:0]
    trials = selected_trials(study, selected)
    has = trials["trial_id"].map(lambda t: study.latents_path(t).is_file())
    trials = trials[has]
    picks = []
    for _, g in trials.groupby(["model", "criterion", "band"], sort=False):
        med = g[study.metric].median()
        g = g.assign(_gap=(g[study.metric] - med).abs()).sort_values(["_gap", "seed"], kind="stable")
        picks.append(g.iloc[0].drop(labels="_gap"))
    return pd.DataFrame(picks).reset_index(drop=True) if picks else trials.iloc[0:0]


def best_configs(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """Configurations ranked by mean selection metric over seeds, with spread, per criterion x band.

    Returns:
        ``criterion, band, rank, config_id, model, <swept params>, n_seeds, n_runs (trials, more than
        n_seeds when a searcher proposed a configuration twice), <metric>_mean/_std/_min/_max``
        for the selection metric and each test R² protocol; std has ddof=1 (NaN for one seed).
    """
    cfg = config or AnalysisConfig()
    fin = study.finished
    metrics = list(dict.fromkeys([study.metric, *r2_protocols(fin.columns)]))
    params = [c for c in study.swept if c != "model"]
    if fin.empty:
        return pd.DataFrame(columns=["criterion", "band", "rank", "config_id", "model", *params, "n_seeds", "n_runs"]), []
    keys = ["criterion", "band", "config_id", "model", *params]
    agg = fin.groupby(keys, sort=False, dropna=False).agg(
        n_seeds=("seed", "nunique"),
        n_runs=("trial_id", "count"),
        **{f"{m}_{s}": (m, s) for m in metrics for s in ("mean", "std", "min", "max")},
    ).reset_index()
    out = []
    for _, g in agg.groupby(["criterion", "band"], sort=False):
        g = g.sort_values(f"{study.metric}_mean", ascending=not study.maximize, kind="stable").head(cfg.top_k)
        out.append(g.assign(rank=np.arange(1, len(g) + 1)))
    res = pd.concat(out, ignore_index=True)
    return res[["criterion", "band", "rank", "config_id", "model", *params, "n_seeds", "n_runs",
                *[c for c in res.columns if any(c.startswith(m + "_") for m in metrics)]]], []


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0")


def late_best_epochs(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Flag each finished trial whose best epoch is in the last 5% of its epochs (still improving).

    Uses trials.csv's ``best_epoch_at_end`` where training wrote it (any stage's best epoch late in
    that stage), else computes ``best_epoch > 0.95 * epochs_run``.

    Returns:
        ``trial_id, model, criterion, band, seed, config_id, best_epoch, epochs_run, best_epoch_at_end``.
    """
    fin = study.finished
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id", "best_epoch", "epochs_run",
            "best_epoch_at_end"]
    out = fin.reindex(columns=cols[:-1]).copy()
    if "best_epoch_at_end" in fin.columns:
        out["best_epoch_at_end"] = fin["best_epoch_at_end"].map(_truthy)
    elif {"best_epoch", "epochs_run"} <= set(fin.columns):
        out["best_epoch_at_end"] = fin["best_epoch"] > (1 - LATE_FRACTION) * fin["epochs_run"]
    else:
        return out.assign(best_epoch_at_end=pd.Series(dtype=bool)).iloc[0:0], [
            "trials.csv has no best_epoch / epochs_run: cannot tell whether training stopped short."]
    notes: Notes = []
    n, k = len(out), int(out["best_epoch_at_end"].sum())
    if n:
        notes.append(f"{k} of {n} finished trials ({100 * k / n:.0f}%) have their best epoch in the last "
                     f"{100 * LATE_FRACTION:.0f}% of their epochs: still improving when training stopped.")
    return out[cols].reset_index(drop=True), notes
