"""A paired bootstrap over test recordings: does one model's test R² beat another's on this test set?

The seed-level tests (:mod:`raympa.analysis.significance`) resample training runs: with 3 seeds a
Wilcoxon test cannot go below p = 0.25. This test resamples the *test recordings* instead: each
model's prediction of a recording is the mean over its seeds (the seeds' ensemble), both models'
R² are computed on the same resample of recordings, and the spread of the difference over
resamples gives a percentile interval and a two-sided p. It answers "on recordings like these
test recordings, do these trained models differ?", not "would new training seeds differ?". Ours
(the paper reports no tests); percentile bootstrap as in Efron & Tibshirani (1993), ch. 13 and 16.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from raympa.analysis.load import Notes, Study

BOOTSTRAP_RESAMPLES = 10_000  # ours: resamples of the test recordings
BOOTSTRAP_SEED = 0  # ours: seed of the resampling, so a report is reproducible
BOOTSTRAP_LEVEL = 0.95  # two-sided level of the percentile interval
BOOTSTRAP_KEYS = ["n_recordings", "boot_r2_config", "boot_r2_baseline", "boot_diff", "boot_ci_low", "boot_ci_high",
                  "boot_p"]


def r2_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R² = 1 - SS_res / SS_tot of each row, (B, n) -> (B,); NaN where the row's ratings are all equal."""
    ss_res = ((y - pred) ** 2).sum(axis=-1)
    ss_tot = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


def paired_bootstrap_r2(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = BOOTSTRAP_LEVEL,
    indices: np.ndarray | None = None,
) -> dict[str, Any]:
    """R²(a) - R²(b) on the n recordings, with a percentile interval and p over paired resamples.

    Args:
        y, pred_a, pred_b: ratings and the two models' predictions, (n,) each, the same recordings.
        resamples, seed: number and seed of the resamples (n recordings drawn with replacement).
        level: two-sided level of the interval.
        indices: the resamples themselves, (B, n) row indices (tests); overrides resamples and seed.

    Returns:
        ``n_recordings``, ``boot_r2_config`` / ``boot_r2_baseline`` (R² of a and b on all n),
        ``boot_diff`` (their difference), ``boot_ci_low`` / ``boot_ci_high`` (percentiles of the
        resampled differences, numpy's linear interpolation), ``boot_p`` (two-sided:
        2 x min((1 + #{d* <= 0}) / (1 + B), (1 + #{d* >= 0}) / (1 + B)), at most 1; resamples with
        all-equal ratings have no R² and are left out of B). NaN where n < 2.
    """
    y, a, b = (np.asarray(v, dtype=np.float64) for v in (y, pred_a, pred_b))
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError(f"y, pred_a and pred_b must be (n,) arrays of one length; got {y.shape}, {a.shape}, {b.shape}")
    n = len(y)
    out: dict[str, Any] = dict.fromkeys(BOOTSTRAP_KEYS, np.nan)
    out["n_recordings"] = n
    if n < 2:
        return out
    out["boot_r2_config"], out["boot_r2_baseline"] = float(r2_rows(y, a)), float(r2_rows(y, b))
    out["boot_diff"] = out["boot_r2_config"] - out["boot_r2_baseline"]
    idx = np.asarray(indices) if indices is not None else np.random.default_rng(seed).integers(0, n, (resamples, n))
    d = r2_rows(y[idx], a[idx]) - r2_rows(y[idx], b[idx])  # (B,)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return out
    tail = (1 - level) / 2
    out["boot_ci_low"], out["boot_ci_high"] = (float(v) for v in np.percentile(d, [100 * tail, 100 * (1 - tail)]))
    low, high = (1 + np.sum(d <= 0)) / (1 + len(d)), (1 + np.sum(d >= 0)) / (1 + len(d))
    out["boot_p"] = float(min(1.0, 2 * min(low, high)))
    return out


def seed_mean_predictions(study: Study, trial_ids: Sequence[str]) -> tuple[pd.DataFrame | None, Notes]:
    """Each test recording's rating and its prediction averaged over ``trial_ids`` (one per seed).

    Reads ``pred``, ``y`` and ``recording_id`` of each trial's latents file (full-length test
    recordings); only recordings every trial predicted are kept.

    Returns:
        a table indexed by recording_id with columns ``y`` and ``pred``, or None with a note
        (a missing or older latents file without ``pred``, or ratings that disagree between trials).
    """
    preds, ys = [], []
    for tid in trial_ids:
        path = study.latents_path(tid)
        if not path.is_file():
            return None, [f"trial {tid}: no latents file; no bootstrap over test recordings."]
        with np.load(path, allow_pickle=False) as f:
            if not {"pred", "y", "recording_id"} <= set(f.files):
                return None, [f"trial {tid}: its latents file holds no per-recording predictions (pred); "
                              "no bootstrap over test recordings."]
            rid = np.asarray(f["recording_id"]).astype(str)
            preds.append(pd.Series(np.asarray(f["pred"], dtype=np.float64), index=rid))
            ys.append(pd.Series(np.asarray(f["y"], dtype=np.float64), index=rid))
    if not preds:
        return None, ["no trials: no bootstrap over test recordings."]
    pred = pd.concat(preds, axis=1, join="inner")
    y = pd.concat(ys, axis=1, join="inner")
    if not np.allclose(y.to_numpy(), y.iloc[:, :1].to_numpy(), atol=1e-6):
        return None, ["the trials' test ratings disagree for the same recordings: no bootstrap over test recordings."]
    return pd.DataFrame({"y": y.iloc[:, 0], "pred": pred.mean(axis=1)}), []


def compare_on_recordings(study: Study, config_trials: Sequence[str], baseline_trials: Sequence[str],
                          **kwargs: Any) -> tuple[dict[str, Any], Notes]:
    """:func:`paired_bootstrap_r2` of a configuration's seed-mean predictions against the baseline's,
    on the test recordings both predicted (NaN values with a note where predictions are missing)."""
    a, notes_a = seed_mean_predictions(study, config_trials)
    b, notes_b = seed_mean_predictions(study, baseline_trials)
    if a is None or b is None:
        return dict.fromkeys(BOOTSTRAP_KEYS, np.nan), notes_a + notes_b
    both = a.join(b, how="inner", lsuffix="_a", rsuffix="_b")
    if not np.allclose(both["y_a"], both["y_b"], atol=1e-6):
        return dict.fromkeys(BOOTSTRAP_KEYS, np.nan), ["configuration and baseline have different test ratings: "
                                                       "no bootstrap over test recordings."]
    return paired_bootstrap_r2(both["y_a"].to_numpy(), both["pred_a"].to_numpy(), both["pred_b"].to_numpy(),
                               **kwargs), []
