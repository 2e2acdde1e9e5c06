"""Latent-space views of the test set: t-SNE (paper Figure 4), distances between rating-bin
centroids (Figure 5), the Davies-Bouldin index (Figure 6) and its relation to R².

Metrics come from scikit-learn (``davies_bouldin_score``, ``TSNE``, ``pairwise_distances``) and
scipy (``spearmanr``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from raympa.analysis.load import AnalysisConfig, Latents, Notes, Study, dedupe, load_latents
from raympa.analysis.selection import r2_protocols, representative_trials, selected_configs

TRIAL_COLUMNS = ["trial_id", "model", "criterion", "band", "seed", "config_id"]


def _trial_info(row: pd.Series, study: Study) -> dict[str, Any]:
    info = {c: row[c] for c in TRIAL_COLUMNS}
    info["selection_metric"] = row[study.metric]
    for p in r2_protocols(row.index):
        info[p] = row[p]
    return info


def _centroid_distances(lat: Latents, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The (C, C) Euclidean distances between bin centroids (NaN for empty bins) and bin counts."""
    from sklearn.metrics import pairwise_distances

    bins = lat.bins
    n_bins = max(n_bins, int(bins.max()) + 1 if len(bins) else n_bins)
    centroids = np.full((n_bins, lat.z.shape[1]), np.nan)  # (C, LATENT_DIM)
    counts = np.bincount(bins, minlength=n_bins)
    for b in np.unique(bins):
        centroids[b] = lat.z[bins == b].mean(axis=0)
    dist = np.full((n_bins, n_bins), np.nan)  # (C, C)
    occupied = counts > 0
    if occupied.any():
        dist[np.ix_(occupied, occupied)] = pairwise_distances(centroids[occupied], metric="euclidean")
    return dist, counts


def _order_rho(dist: np.ndarray) -> float:
    """Spearman's rho of centroid distance against bin gap |i - j| (NaN when undefined)."""
    from scipy.stats import spearmanr

    iu = np.triu_indices(len(dist), k=1)
    gaps, d = (iu[1] - iu[0]).astype(float), dist[iu]
    ok = np.isfinite(d)
    if ok.sum() >= 3 and np.unique(gaps[ok]).size > 1 and np.ptp(d[ok]) > 0:
        return float(spearmanr(gaps[ok], d[ok]).statistic)
    return np.nan


def latent_metrics(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Notes]:
    """Davies-Bouldin index and bin-centroid distances of every finished trial's latents.

    Davies-Bouldin (sklearn ``davies_bouldin_score``, labels = rating bins; paper Figure 6) is
    undefined with fewer than 2 occupied bins or as many bins as points: NaN and a note.
    Centroid distances (paper Figure 5) are Euclidean distances between the mean latent vector of
    each pair of bins (NaN for an empty bin). ``centroid_order_rho`` (ours) is Spearman's rho of
    those distances against the bin gap |i - j|: 1 when farther rating bins lie farther apart.

    Returns:
        ``(davies_bouldin, centroid_distances, notes)``; the first has one row per trial, the
        second one row per trial x bin pair (``bin_i, bin_j, distance, n_i, n_j``).
    """
    from sklearn.metrics import davies_bouldin_score

    cfg = config or AnalysisConfig()
    notes: Notes = []
    db_rows, cd_rows = [], []
    for _, row in study.finished.iterrows():
        lat, n = load_latents(study, row["trial_id"], n_bins=cfg.n_bins, chunks=cfg.chunk_latents)
        notes += n
        if lat is None:
            continue
        info = _trial_info(row, study)
        present = np.unique(lat.bins)
        db = np.nan
        if 2 <= len(present) <= len(lat.bins) - 1:
            db = float(davies_bouldin_score(lat.z, lat.bins))
        else:
            notes.append(
                f"trial {row['trial_id']}: {len(present)} occupied rating bin(s) among {len(lat.bins)} test points; "
                "Davies-Bouldin index undefined."
            )
        dist, counts = _centroid_distances(lat, cfg.n_bins)
        for i in range(len(dist)):
            for j in range(len(dist)):
                cd_rows.append({**info, "bin_i": i, "bin_j": j, "distance": dist[i, j],
                                "n_i": int(counts[i]), "n_j": int(counts[j])})
        db_rows.append({**info, "davies_bouldin": db, "n_test": len(lat.bins), "points": lat.points,
                        "n_recordings": len(np.unique(lat.recording_id)), "n_bins_occupied": len(present),
                        "centroid_order_rho": _order_rho(dist)})
    db_cols = [*TRIAL_COLUMNS, "selection_metric", *r2_protocols(study.trials.columns),
               "davies_bouldin", "n_test", "points", "n_recordings", "n_bins_occupied", "centroid_order_rho"]
    cd_cols = [*TRIAL_COLUMNS, "bin_i", "bin_j", "distance", "n_i", "n_j"]
    return pd.DataFrame(db_rows, columns=db_cols), pd.DataFrame(cd_rows, columns=cd_cols), dedupe(notes)


def db_vs_r2(db: pd.DataFrame, *, r2: str = "test_r2_full") -> tuple[pd.DataFrame, Notes]:
    """Spearman correlation of the Davies-Bouldin index with test R² across trials.

    The paper (section 5.2.3) observes that lower DB goes with higher R²; a negative rho says so.
    """
    from scipy.stats import spearmanr

    rows, notes = [], []
    for (crit, band), g in db.groupby(["criterion", "band"], sort=False):
        g = g.dropna(subset=["davies_bouldin", r2])
        row = {"criterion": crit, "band": band, "r2": r2, "n_trials": len(g), "spearman_rho": np.nan, "p_value": np.nan}
        if len(g) >= 3 and g["davies_bouldin"].nunique() > 1 and g[r2].nunique() > 1:
            res = spearmanr(g["davies_bouldin"], g[r2])
            row["spearman_rho"], row["p_value"] = float(res.statistic), float(res.pvalue)
        else:
            notes.append(f"{crit} / {band}: {len(g)} trial(s) with a defined DB index; no correlation computed.")
        rows.append(row)
    return pd.DataFrame(rows, columns=["criterion", "band", "r2", "n_trials", "spearman_rho", "p_value"]), notes


def tsne_table(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """2-D t-SNE (sklearn ``TSNE``) of the test latents of each representative trial (Figure 4).

    Perplexity is ``min(config.tsne_perplexity, (n - 1) / 3)``: sklearn needs perplexity < n, and
    (n - 1) / 3 keeps its 3 * perplexity + 1 nearest neighbours within the n points.

    Returns:
        ``trial_id, model, criterion, band, seed, recording_id, rating, bin, tsne_x, tsne_y,
        perplexity``.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    cfg = config or AnalysisConfig()
    notes: Notes = []
    parts = []
    for _, row in representative_trials(study).iterrows():
        lat, n = load_latents(study, row["trial_id"], n_bins=cfg.n_bins, chunks=cfg.chunk_latents)
        notes += n
        if lat is None:
            continue
        n_pts = len(lat.z)
        if n_pts < 5:
            notes.append(f"trial {row['trial_id']}: {n_pts} test points; too few for t-SNE.")
            continue
        perplexity = float(min(cfg.tsne_perplexity, (n_pts - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, max_iter=cfg.tsne_max_iter, init="pca",
                    learning_rate="auto", random_state=cfg.seed)
        with warnings.catch_warnings(), threadpool_limits(limits=cfg.tsne_threads):
            warnings.simplefilter("ignore", category=FutureWarning)
            xy = tsne.fit_transform(lat.z.astype(np.float64))  # (n, 2)
        parts.append(pd.DataFrame({
            **{c: row[c] for c in TRIAL_COLUMNS if c != "config_id"}, "recording_id": lat.recording_id,
            "rating": lat.y, "bin": lat.bins, "tsne_x": xy[:, 0], "tsne_y": xy[:, 1], "perplexity": perplexity,
            "points": lat.points,
        }))
    cols = [*TRIAL_COLUMNS[:-1], "recording_id", "rating", "bin", "tsne_x", "tsne_y", "perplexity", "points"]
    if not parts:
        return pd.DataFrame(columns=cols), dedupe(notes + ["no trial with latents: no t-SNE."])
    return pd.concat(parts, ignore_index=True)[cols], dedupe(notes)


def mean_centroid_distances(study: Study, centroids: pd.DataFrame) -> pd.DataFrame:
    """Centroid distance matrices averaged over the seeds of each selected configuration."""
    selected, _ = selected_configs(study)
    keys = ["model", "criterion", "band", "config_id"]
    if centroids.empty or selected.empty:
        return pd.DataFrame(columns=[*keys, "bin_i", "bin_j", "distance", "n_seeds"])
    sel = centroids.merge(selected[keys], on=keys, how="inner")
    return (
        sel.groupby([*keys, "bin_i", "bin_j"], sort=False)["distance"]
        .agg(distance="mean", n_seeds="count")
        .reset_index()
    )


MIN_LATENT_POINTS = 100  # ours: fewer test points per trial make the latent views anecdotal


def latent_points_note(db: pd.DataFrame) -> Notes:
    """One sentence saying what the latent views were computed on (chunks or recordings, how many)."""
    if db.empty:
        return []
    parts = []
    for points, g in db.groupby("points", sort=False):
        parts.append(f"{len(g)} trial(s) on test-set {points} (median {int(g['n_test'].median())} points from "
                     f"{int(g['n_recordings'].median())} recordings per trial)")
    text = "Latent-space views computed on " + "; ".join(parts) + "."
    if db["n_test"].median() < MIN_LATENT_POINTS:
        text += f" Fewer than {MIN_LATENT_POINTS} points per trial: read these views as anecdotes."
    return [text]
