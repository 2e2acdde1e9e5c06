"""Paired significance tests between models across seeds, with effect sizes.

Tests come from scipy (``wilcoxon``, ``rankdata``, ``false_discovery_control``). The paper
reports no tests; these are ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raympa.analysis.load import Notes, Study
from raympa.analysis.selection import r2_by_model
from raympa.constants import MODELS

SIGNIFICANCE_COLUMNS = ["protocol", "scope", "model_a", "model_b", "n_pairs", "mean_a", "mean_b", "mean_diff",
                        "median_diff", "wilcoxon_w", "p_value", "p_bh", "rank_biserial", "cohen_dz", "note"]


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
