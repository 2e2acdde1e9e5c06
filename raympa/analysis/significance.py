"""Paired significance tests between models across seeds, with effect sizes.

Tests come from scipy (``wilcoxon``, ``rankdata``, ``false_discovery_control``). The paper
reports no tests; these are ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raympa.analysis.bootstrap import BOOTSTRAP_KEYS, compare_on_recordings
from raympa.analysis.load import Notes, Study
from raympa.analysis.selection import r2_by_model, r2_protocols, selected_configs
from raympa.constants import BASELINE_MODEL, MODELS

SIGNIFICANCE_COLUMNS = ["protocol", "scope", "model_a", "model_b", "n_pairs", "mean_a", "mean_b", "mean_diff",
                        "median_diff", "wilcoxon_w", "p_value", "p_bh", "rank_biserial", "cohen_dz", "note"]


BASELINE_COLUMNS = ["protocol", "criterion", "band", "config_id", "model", "selected", "n_pairs", "mean_config",
                    "mean_baseline", "mean_diff", "ci_low", "ci_high", "p_value", "p_bh", "n_comparisons",
                    "n_recordings", "boot_r2_config", "boot_r2_baseline", "boot_diff", "boot_ci_low", "boot_ci_high",
                    "boot_p", "boot_p_bh", "rank_biserial", "cohen_dz", "selection_mean", "baseline_config", "note"]
BOOTSTRAP_PROTOCOL = "test_r2_full"  # the protocol whose per-recording predictions the latents files hold
CI_LEVEL = 0.95  # two-sided confidence level of the paired difference


def ordered_models(values: Any) -> list[str]:
    """The models present in ``values``, in ``constants.MODELS`` order, then any others sorted."""
    present = set(values)
    return [m for m in MODELS if m in present] + sorted(present - set(MODELS))


def _paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Wilcoxon signed-rank test of paired samples, with effect sizes.

    Effect sizes: the matched-pairs rank-biserial correlation r = (W+ - W-) / (W+ + W-) over the
    non-zero differences (Kerby 2014; +1 = a beats b in every pair), and Cohen's d_z =
    mean(a - b) / std(a - b).
    """
    from scipy.stats import rankdata, wilcoxon

    d = a - b
    out: dict[str, Any] = {
        "n_pairs": len(d), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)),
        "mean_diff": float(np.mean(d)), "median_diff": float(np.median(d)),
        "wilcoxon_w": np.nan, "p_value": np.nan, "rank_biserial": np.nan, "cohen_dz": np.nan, "note": "",
    }
    if len(d) >= 2 and np.std(d, ddof=1) > 0:
        out["cohen_dz"] = float(np.mean(d) / np.std(d, ddof=1))
    nz = d[d != 0]
    if len(d) < 2:
        out["note"] = "fewer than 2 paired seeds: no test"
        return out
    if len(nz) == 0:
        out["note"] = "all paired differences are zero: no test"
        return out
    ranks = rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    out["rank_biserial"] = float((w_plus - w_minus) / (w_plus + w_minus))
    res = wilcoxon(a, b, zero_method="wilcox", alternative="two-sided", method="auto")
    out["wilcoxon_w"], out["p_value"] = float(res.statistic), float(res.pvalue)
    if len(nz) < 6:
        out["note"] = f"{len(nz)} non-zero pairs: smallest possible two-sided p is {2 / 2 ** len(nz):.3g}"
    return out


def bh_adjust(rows: list[dict[str, Any]], *, key: str = "p_value", out: str = "p_bh") -> None:
    """Benjamini-Hochberg adjusted p-values (scipy ``false_discovery_control``) over ``rows``, in place;
    rows without a finite p get NaN and do not count."""
    from scipy.stats import false_discovery_control

    ps = np.array([r[key] for r in rows], dtype=float)
    ok = np.isfinite(ps)
    adj = np.full_like(ps, np.nan)
    if ok.any():
        adj[ok] = false_discovery_control(ps[ok], method="bh")
    for r, p in zip(rows, adj):
        r[out] = float(p)


def significance(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Paired Wilcoxon signed-rank tests between every two models (scipy ``wilcoxon``).

    Each model's selected configuration; pairs matched by criterion, band and seed. One test per
    criterion x band (n = seeds) and one pooled over all criteria x bands x seeds ("all"), for each
    test protocol. ``p_bh`` is the Benjamini-Hochberg adjusted p-value (scipy
    ``false_discovery_control``) over all tests of one protocol. Positive differences and effect
    sizes mean model_a has the higher R².
    """
    r2, notes = r2_by_model(study)
    notes = [n for n in notes if "configurations" not in n]  # said once by r2_by_model already
    models = ordered_models(r2["model"])
    if len(models) < 2:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS), ["fewer than two models: no paired tests between models."]
    rows = []
    for protocol, gp in r2.groupby("protocol", sort=False):
        wide = gp.pivot_table(index=["criterion", "band", "seed"], columns="model", values="r2", aggfunc="mean")
        scopes = [("all", wide)] + [(f"{c} / {b}", g) for (c, b), g in wide.groupby(level=["criterion", "band"], sort=False)]
        block = []
        for scope, w in scopes:
            for i, ma in enumerate(models):
                for mb in models[i + 1:]:
                    if ma not in w.columns or mb not in w.columns:
                        continue
                    pair = w[[ma, mb]].dropna()
                    res = _paired_test(pair[ma].to_numpy(float), pair[mb].to_numpy(float))
                    block.append({"protocol": protocol, "scope": scope, "model_a": ma, "model_b": mb, **res})
        bh_adjust(block)
        rows += block
    df = pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)
    if not df.empty and df["p_value"].isna().all():
        notes.append("no paired test could be computed (one seed per model, or identical results).")
    return df, notes


def mean_ci(d: np.ndarray, *, level: float = CI_LEVEL) -> tuple[float, float]:
    """Student-t confidence interval of the mean of paired differences ``d`` (NaN for fewer than 2)."""
    from scipy.stats import t

    if len(d) < 2:
        return np.nan, np.nan
    half = float(t.ppf(0.5 + level / 2, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d)))
    return float(np.mean(d)) - half, float(np.mean(d)) + half


def _best_searched(study: Study, trials: pd.DataFrame) -> str | None:
    """The configuration (any model but the baseline) with the most seeds, then the best mean
    selection metric: chosen on validation, never on the test set."""
    per = trials.groupby("config_id", sort=False).agg(m=(study.metric, "mean"), n=("seed", "nunique"))
    if per.empty:
        return None
    return str(per.sort_values(["n", "m"], ascending=[False, not study.maximize], kind="stable").index[0])


def _trial_ids(trials: pd.DataFrame, seeds: set[Any]) -> list[str]:
    """One trial per seed in ``seeds`` (the first, where a searcher proposed a configuration twice)."""
    return trials[trials["seed"].isin(seeds)].drop_duplicates("seed")["trial_id"].astype(str).tolist()


def baseline_comparison(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Every configuration against the baseline (``constants.BASELINE_MODEL``, PCConvNet), paired by seed.

    Per criterion x band x test protocol, each configuration of the other models is paired with
    the baseline's selected configuration on the seeds both ran; the paired difference of test R²
    (configuration minus baseline) gets its mean with a 95% Student-t interval, a two-sided
    Wilcoxon signed-rank p, and ``p_bh``, Benjamini-Hochberg adjusted over all comparisons of one
    protocol (``n_comparisons``). ``selected`` marks the configuration a user would pick: the most
    seeds, then the best mean selection metric (validation).

    These tests resample seeds (n = shared seeds). For the full-length protocol a second test
    resamples the test recordings (:mod:`raympa.analysis.bootstrap`): the seed-mean predictions of
    the configuration and the baseline on the same seeds, R² difference ``boot_diff`` with its 95%
    percentile interval and ``boot_p``; ``boot_p_bh`` is Benjamini-Hochberg adjusted over the same
    comparisons. Other protocols leave these columns NaN (the latents files hold per-recording
    predictions of whole recordings only).
    """
    fin = study.finished
    notes: Notes = []
    sel, _ = selected_configs(study)
    base = sel[sel["model"] == BASELINE_MODEL]
    if base.empty or (fin["model"] == BASELINE_MODEL).all():
        what = "no baseline" if base.empty else "only baseline"
        return pd.DataFrame(columns=BASELINE_COLUMNS), [
            f"the study has {what} ({BASELINE_MODEL}) trials: no comparison of configurations with the baseline."]
    rows = []
    for protocol in r2_protocols(fin.columns):
        block = []
        for (crit, band), g in fin.groupby(["criterion", "band"], sort=False):
            b = base[(base["criterion"] == crit) & (base["band"] == band)]
            if b.empty:
                continue
            bt = g[g["config_id"] == b["config_id"].iloc[0]].groupby("seed")[protocol].mean()
            others = g[g["model"] != BASELINE_MODEL]
            best = _best_searched(study, others)
            for cid, c in others.groupby("config_id", sort=False):
                ct = c.groupby("seed")[protocol].mean()
                pair = pd.concat([ct, bt], axis=1, keys=["c", "b"]).dropna()
                res = _paired_test(pair["c"].to_numpy(float), pair["b"].to_numpy(float))
                lo, hi = mean_ci(pair["c"].to_numpy(float) - pair["b"].to_numpy(float))
                boot = dict.fromkeys(BOOTSTRAP_KEYS, np.nan)
                if protocol == BOOTSTRAP_PROTOCOL and len(pair):
                    seeds = set(pair.index)
                    boot, boot_notes = compare_on_recordings(
                        study, _trial_ids(c, seeds), _trial_ids(g[g["config_id"] == b["config_id"].iloc[0]], seeds))
                    notes += boot_notes
                block.append({
                    "protocol": protocol, "criterion": crit, "band": band, "config_id": cid,
                    "model": c["model"].iloc[0], "selected": cid == best, "n_pairs": res["n_pairs"],
                    "mean_config": res["mean_a"], "mean_baseline": res["mean_b"], "mean_diff": res["mean_diff"],
                    "ci_low": lo, "ci_high": hi, "p_value": res["p_value"], "rank_biserial": res["rank_biserial"],
                    "cohen_dz": res["cohen_dz"], "selection_mean": float(c[study.metric].mean()),
                    "baseline_config": b["config_id"].iloc[0], "note": res["note"], **boot,
                })
        bh_adjust(block)
        bh_adjust(block, key="boot_p", out="boot_p_bh")
        n_tests = int(np.isfinite([r["p_value"] for r in block]).sum()) if block else 0
        rows += [dict(r, n_comparisons=n_tests) for r in block]
    df = pd.DataFrame(rows, columns=BASELINE_COLUMNS)
    if not df.empty and (df["n_pairs"] < 2).all():
        notes.append("no configuration shares two or more seeds with the baseline: no paired test.")
    return df, notes
