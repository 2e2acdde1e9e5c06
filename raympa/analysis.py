"""Study analysis: the tables behind the report's figures.

Reads a study folder (docs/architecture.md, "Study folder": ``study.json``, ``trials.csv``,
``latents/<trial_id>.npz``) and returns tidy pandas tables, one per figure of
Seshadri & Lerch, "Improving Music Performance Assessment with Contrastive Learning"
(ISMIR 2021), and the views the paper lacked:

* R² per model x criterion x band over seeds, for both test protocols (paper Figures 2-3);
* t-SNE of the test-set latent vectors, coloured by rating bin (Figure 4);
* the C x C matrix of Euclidean distances between rating-bin centroids in latent space (Figure 5);
* the Davies-Bouldin index of the latent space per trial (Figure 6), and its relation to R²;
* sweep views (metric against each swept parameter), parameter importance (Optuna's fANOVA
  evaluator), the best configurations with mean and spread over seeds;
* paired Wilcoxon signed-rank tests between models across seeds, with effect sizes.

Conventions: ratings and R² are unitless; latent vectors are the encoder's 16-d embeddings
(``constants.LATENT_DIM``); rating bins cut [0, 1] into C equal bins with inclusive lower bounds
(paper, section 3.1.3), 1.0 in bin C-1. Metrics come from scikit-learn (``r2_score`` is applied
by training; ``davies_bouldin_score``, ``TSNE``, ``pairwise_distances`` here) and scipy
(``wilcoxon``, ``spearmanr``, ``rankdata``, ``false_discovery_control``).

A "configuration" is a trial's TrainConfig without its seed (and criterion, band, which are the
groups): trials of one configuration differ only by seed. Where a model was run in several
configurations (a sweep), the per-model views show, for each criterion x band, the configuration
with the best mean *selection* metric over seeds (among those with the most seeds) (``study.json`` "metric", a validation metric)
and report its *test* R², so the choice never looks at the test set.

Every function returns ``(table, notes)``: notes are plain sentences about degenerate inputs
(one rating bin, one seed, missing latents ...) for the report; nothing here raises on them.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_ORDER = ("pcconvnet", "contrastive", "contrastive-jl")
MODEL_LABELS = {  # the paper's names (section 3)
    "pcconvnet": "PCConvNet",
    "contrastive": "ContrastiveCNN",
    "contrastive-jl": "ContrastiveCNN-JL",
}
R2_PROTOCOLS = ("test_r2_full", "test_r2_chunk")  # full-length recordings / overlapping chunks
GROUP_COLUMNS = ("criterion", "band")  # figures and tests are split by these
FINISHED = "TERMINATED"
METRIC_COLUMNS = (
    "val_r2_full", "test_r2_full", "test_r2_chunk", "val_r2_chunk", "epochs_run", "best_epoch",
)

Notes = list[str]


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the analysis (not of training)."""

    n_bins: int = 5  # paper: C = 5 rating bins, for t-SNE colours, centroids and Davies-Bouldin
    metric: str | None = None  # selection metric; None = study.json "metric", else "val_r2_full"
    mode: str | None = None  # "max" | "min"; None = study.json "mode", else "max"
    tsne_perplexity: float = 30.0  # sklearn's default; lowered to (n - 1) / 3 for small test sets
    tsne_max_iter: int = 1000  # sklearn's default
    tsne_threads: int | None = 1  # ours: OpenMP threads of t-SNE's gradient; None = all cores.
    # OpenMP threads spin-wait when cores are shared: one thread was ~23x faster on 2 busy cores
    # (benchmarks/results/report_speed.md); on a quiet machine the gap is small.
    seed: int = 0  # random state of t-SNE and of the fANOVA forest
    top_k: int = 10  # best configurations listed per criterion x band
    min_importance_configs: int = 3  # ours: fewer distinct configurations -> no parameter importance


@dataclass
class Study:
    """A study folder read into memory.

    Attributes:
        path: the study folder.
        meta: ``study.json`` as a dict (empty when the file is absent).
        trials: every row of ``trials.csv``, plus ``config_id`` and ``finished`` columns.
        config_columns: TrainConfig fields found in ``trials.csv`` (seed included).
        swept: configuration columns that vary among finished trials (seed, criterion excluded).
        metric, mode: the selection metric and its direction.
        notes: what was odd while reading.
    """

    path: Path
    meta: dict[str, Any]
    trials: pd.DataFrame
    config_columns: list[str]
    swept: list[str]
    metric: str
    mode: str
    notes: Notes = field(default_factory=list)

    @property
    def log_params(self) -> set[str]:
        """Parameters that ``study.json``'s search space samples on a log scale."""
        space = self.meta.get("search_space") or {}
        searched = space.get("searched", space) if isinstance(space, dict) else {}
        if not isinstance(searched, dict):
            return set()
        return {k for k, v in searched.items() if isinstance(v, dict) and v.get("log") is True}

    @property
    def finished(self) -> pd.DataFrame:
        """Trials that ended without error."""
        return self.trials[self.trials["finished"]]

    @property
    def failed(self) -> pd.DataFrame:
        """Trials that ended in an error (or any status other than TERMINATED)."""
        return self.trials[~self.trials["finished"]]

    def latents_path(self, trial_id: str) -> Path:
        return self.path / "latents" / f"{trial_id}.npz"


@dataclass(frozen=True)
class Latents:
    """Test-set latents of one trial (``TrainResult.latents``)."""

    z: np.ndarray  # (n, LATENT_DIM) float32
    y: np.ndarray  # (n,) float32 ratings in [0, 1]
    bins: np.ndarray  # (n,) int64 rating bins used by the analysis
    recording_id: np.ndarray  # (n,) str


# ----------------------------------------------------------------------------- reading
def _config_fields() -> list[str]:
    from raympa.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def load_study(study_dir: str | Path, config: AnalysisConfig | None = None) -> Study:
    """Read ``study.json`` and ``trials.csv`` of a study folder.

    Args:
        study_dir: folder written by ``raympa.study``.
        config: analysis settings (selection metric override).

    Raises:
        FileNotFoundError: when the folder or its ``trials.csv`` is missing.
    """
    cfg = config or AnalysisConfig()
    path = Path(study_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"study folder {path} does not exist")
    trials_csv = path / "trials.csv"
    if not trials_csv.is_file():
        raise FileNotFoundError(f"{trials_csv} is missing; is {path} a study folder written by raympa.study?")
    notes: Notes = []
    meta: dict[str, Any] = {}
    meta_path = path / "study.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            notes.append(f"study.json could not be parsed ({e}); command and versions are unknown.")
    else:
        notes.append("study.json is missing; command, versions and data description are unknown.")

    trials = pd.read_csv(trials_csv, dtype={"trial_id": str})
    if "trial_id" not in trials.columns:
        raise ValueError(f"{trials_csv} has no trial_id column; columns: {list(trials.columns)}")
    if "status" not in trials.columns:
        trials["status"] = FINISHED
    trials["status"] = trials["status"].fillna("UNKNOWN").astype(str)
    for col, default in (("model", "pcconvnet"), ("criterion", "note_accuracy"), ("band", "all"), ("seed", 0)):
        if col not in trials.columns:
            notes.append(f"trials.csv has no {col!r} column; all trials taken as {col}={default!r}.")
            trials[col] = default
    trials["band"] = trials["band"].fillna("all").astype(str)
    trials["model"] = trials["model"].astype(str)
    trials["criterion"] = trials["criterion"].astype(str)
    for col in METRIC_COLUMNS:
        if col in trials.columns:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")

    metric = cfg.metric or str(meta.get("metric") or "val_r2_full")
    mode = cfg.mode or str(meta.get("mode") or "max")
    if mode not in ("max", "min"):
        raise ValueError(f"mode={mode!r}; choose 'max' or 'min'")
    if metric not in trials.columns:
        fallback = next((m for m in ("val_r2_full", "test_r2_full") if m in trials.columns), None)
        notes.append(f"selection metric {metric!r} is not a trials.csv column; using {fallback!r}.")
        if fallback is None:
            raise ValueError(f"{trials_csv} has neither {metric!r} nor val_r2_full / test_r2_full")
        metric, mode = fallback, "max"
    trials[metric] = pd.to_numeric(trials[metric], errors="coerce")

    done = trials["status"] == FINISHED
    if "final" in trials.columns:  # raympa.study: False for trials stopped early (ASHA) or cut short
        final = trials["final"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
        early = done & ~final
        if early.any():
            notes.append(f"{int(early.sum())} trial(s) stopped before their final report (early stopping by the "
                         "scheduler): left out, listed with the failed trials.")
            trials.loc[early, "status"] = "STOPPED_EARLY"
            done = done & final
    trials["finished"] = done & trials[metric].notna()
    odd = trials[done & trials[metric].isna()]
    if len(odd):
        notes.append(f"{len(odd)} finished trial(s) without {metric}: left out ({', '.join(odd['trial_id'])}).")

    config_columns = [c for c in _config_fields() if c in trials.columns]
    fin = trials[trials["finished"]]
    swept = [
        c for c in config_columns
        if c not in ("seed", "criterion") and fin[c].astype(str).nunique() > 1
    ]
    key_cols = ["model"] + [c for c in swept if c != "model"]
    trials["config_id"] = [
        ", ".join(f"{c}={_fmt(row[c])}" for c in key_cols) for _, row in trials[key_cols].iterrows()
    ]
    return Study(path, meta, trials, config_columns, swept, metric, mode, notes)


def _rating_bins(y: np.ndarray, n_bins: int) -> np.ndarray | None:
    """Bins from ``raympa.losses.rating_bins`` (the training code's definition), or None."""
    try:
        from raympa.losses import rating_bins
    except ImportError:
        return None
    try:
        out = rating_bins(y, n_bins)
    except TypeError:  # a torch-only implementation
        import torch

        out = rating_bins(torch.as_tensor(y), n_bins)
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.int64)


def load_latents(study: Study, trial_id: str, *, n_bins: int = 5) -> tuple[Latents | None, Notes]:
    """Latents of one trial, with bins recomputed for ``n_bins`` (paper: 5).

    Bins come from ``raympa.losses.rating_bins(y, n_bins)`` so every trial is binned alike, even in
    a sweep over the training C; when that function is unavailable, the file's own ``bins``.
    """
    path = study.latents_path(trial_id)
    if not path.is_file():
        return None, [f"trial {trial_id}: no latents file ({path.name}); left out of latent-space views."]
    try:
        with np.load(path, allow_pickle=False) as f:
            z = np.asarray(f["z"], dtype=np.float32)
            y = np.asarray(f["y"], dtype=np.float32)
            stored = np.asarray(f["bins"], dtype=np.int64) if "bins" in f.files else None
            rid = np.asarray(f["recording_id"]).astype(str) if "recording_id" in f.files else np.arange(len(y)).astype(str)
    except (OSError, KeyError, ValueError) as e:
        return None, [f"trial {trial_id}: latents file unreadable ({e}); left out of latent-space views."]
    if z.ndim != 2 or len(z) != len(y):
        return None, [f"trial {trial_id}: latents z {z.shape} and y {y.shape} do not match; left out."]
    notes: Notes = []
    bins = _rating_bins(y, n_bins)
    if bins is None:
        if stored is None:
            return None, [f"trial {trial_id}: no bins in the latents file and raympa.losses.rating_bins unavailable."]
        bins = stored
        notes.append("rating bins read from the latents files (raympa.losses.rating_bins unavailable).")
    return Latents(z=z, y=y, bins=bins, recording_id=rid), notes


# ----------------------------------------------------------------------------- R² over seeds
def _better(mode: str) -> bool:
    return mode == "max"


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
        return pd.DataFrame(columns=["model", "criterion", "band", "config_id", "n_configs", "n_seeds", "selection_mean"]), [
            "no finished trials: nothing to analyse."
        ]
    per = (
        fin.groupby(["model", "criterion", "band", "config_id"], sort=False)
        .agg(selection_mean=(study.metric, "mean"), n_seeds=("seed", "nunique"))
        .reset_index()
    )
    rows = []
    for (model, crit, band), g in per.groupby(["model", "criterion", "band"], sort=False):
        # most seeds first (a lucky single-seed configuration must not win), then best mean
        g = g.sort_values(["n_seeds", "selection_mean"], ascending=[False, not _better(study.mode)], kind="stable")
        best = g.iloc[0]
        rows.append({
            "model": model, "criterion": crit, "band": band, "config_id": best["config_id"],
            "n_configs": len(g), "n_seeds": int(best["n_seeds"]), "selection_mean": best["selection_mean"],
        })
        if len(g) > 1:
            notes.append(
                f"{MODEL_LABELS.get(model, model)} / {crit} / {band}: {len(g)} configurations; per-model views "
                f"use the best by mean {study.metric} over seeds among those with the most seeds ({best['config_id']})."
            )
    return pd.DataFrame(rows), notes


def _selected_trials(study: Study, selected: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "criterion", "band", "config_id"]
    return study.finished.merge(selected[keys], on=keys, how="inner")


def r2_by_model(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Test R² of each seed, per model x criterion x band x protocol (paper Figures 2-3).

    Returns:
        long table ``trial_id, model, criterion, band, seed, config_id, protocol, r2``.
    """
    selected, notes = selected_configs(study)
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id", "protocol", "r2"]
    if selected.empty:
        return pd.DataFrame(columns=cols), notes
    trials = _selected_trials(study, selected)
    protocols = [p for p in R2_PROTOCOLS if p in trials.columns]
    if not protocols:
        return pd.DataFrame(columns=cols), notes + ["trials.csv holds no test R² column (test_r2_full / test_r2_chunk)."]
    long = trials.melt(
        id_vars=["trial_id", "model", "criterion", "band", "seed", "config_id"],
        value_vars=protocols, var_name="protocol", value_name="r2",
    )
    long = long.dropna(subset=["r2"])
    single = selected[selected["n_seeds"] < 2]
    for _, r in single.iterrows():
        notes.append(f"{MODEL_LABELS.get(r['model'], r['model'])} / {r['criterion']} / {r['band']}: one seed only; no spread.")
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


# ----------------------------------------------------------------------------- latent space
def _trial_info(row: pd.Series, study: Study) -> dict[str, Any]:
    info = {c: row[c] for c in ("trial_id", "model", "criterion", "band", "seed", "config_id")}
    info["selection_metric"] = row[study.metric]
    for p in R2_PROTOCOLS:
        info[p] = row[p] if p in row.index else np.nan
    return info


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
    from scipy.stats import spearmanr
    from sklearn.metrics import davies_bouldin_score, pairwise_distances

    cfg = config or AnalysisConfig()
    notes: Notes = []
    db_rows, cd_rows = [], []
    for _, row in study.finished.iterrows():
        lat, n = load_latents(study, row["trial_id"], n_bins=cfg.n_bins)
        notes += n
        if lat is None:
            continue
        info = _trial_info(row, study)
        bins = lat.bins
        present = np.unique(bins)
        db = np.nan
        if 2 <= len(present) <= len(bins) - 1:
            db = float(davies_bouldin_score(lat.z, bins))
        else:
            notes.append(
                f"trial {row['trial_id']}: {len(present)} occupied rating bin(s) among {len(bins)} test points; "
                "Davies-Bouldin index undefined."
            )
        n_bins = max(cfg.n_bins, int(bins.max()) + 1 if len(bins) else cfg.n_bins)
        centroids = np.full((n_bins, lat.z.shape[1]), np.nan)  # (C, LATENT_DIM)
        counts = np.bincount(bins, minlength=n_bins)
        for b in present:
            centroids[b] = lat.z[bins == b].mean(axis=0)
        dist = np.full((n_bins, n_bins), np.nan)  # (C, C)
        occupied = counts > 0
        if occupied.any():
            dist[np.ix_(occupied, occupied)] = pairwise_distances(centroids[occupied], metric="euclidean")
        for i in range(n_bins):
            for j in range(n_bins):
                cd_rows.append({**info, "bin_i": i, "bin_j": j, "distance": dist[i, j],
                                "n_i": int(counts[i]), "n_j": int(counts[j])})
        iu = np.triu_indices(n_bins, k=1)
        gaps, d = (iu[1] - iu[0]).astype(float), dist[iu]
        ok = np.isfinite(d)
        rho = np.nan
        if ok.sum() >= 3 and np.unique(gaps[ok]).size > 1 and np.ptp(d[ok]) > 0:
            rho = float(spearmanr(gaps[ok], d[ok]).statistic)
        db_rows.append({**info, "davies_bouldin": db, "n_test": len(bins), "n_bins_occupied": len(present),
                        "centroid_order_rho": rho})
    db_cols = ["trial_id", "model", "criterion", "band", "seed", "config_id", "selection_metric", *R2_PROTOCOLS,
               "davies_bouldin", "n_test", "n_bins_occupied", "centroid_order_rho"]
    cd_cols = ["trial_id", "model", "criterion", "band", "seed", "config_id", "bin_i", "bin_j", "distance", "n_i", "n_j"]
    db_df = pd.DataFrame(db_rows, columns=db_cols)
    cd_df = pd.DataFrame(cd_rows, columns=cd_cols)
    return db_df, cd_df, _dedupe(notes)


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


def representative_trials(study: Study) -> pd.DataFrame:
    """Per model x criterion x band (selected configuration), the seed with the median selection
    metric among those with a latents file: the run drawn in t-SNE plots."""
    selected, _ = selected_configs(study)
    if selected.empty:
        return study.finished.iloc[0:0]
    trials = _selected_trials(study, selected)
    has = trials["trial_id"].map(lambda t: study.latents_path(t).is_file())
    trials = trials[has]
    picks = []
    for _, g in trials.groupby(["model", "criterion", "band"], sort=False):
        med = g[study.metric].median()
        g = g.assign(_gap=(g[study.metric] - med).abs()).sort_values(["_gap", "seed"], kind="stable")
        picks.append(g.iloc[0].drop(labels="_gap"))
    return pd.DataFrame(picks).reset_index(drop=True) if picks else trials.iloc[0:0]


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
        lat, n = load_latents(study, row["trial_id"], n_bins=cfg.n_bins)
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
            "trial_id": row["trial_id"], "model": row["model"], "criterion": row["criterion"],
            "band": row["band"], "seed": row["seed"], "recording_id": lat.recording_id,
            "rating": lat.y, "bin": lat.bins, "tsne_x": xy[:, 0], "tsne_y": xy[:, 1], "perplexity": perplexity,
        }))
    cols = ["trial_id", "model", "criterion", "band", "seed", "recording_id", "rating", "bin", "tsne_x", "tsne_y", "perplexity"]
    if not parts:
        return pd.DataFrame(columns=cols), _dedupe(notes + ["no trial with latents: no t-SNE."])
    return pd.concat(parts, ignore_index=True)[cols], _dedupe(notes)


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


# ----------------------------------------------------------------------------- sweep
def sweep_table(study: Study) -> tuple[pd.DataFrame, Notes]:
    """One row per finished trial: swept parameters, selection metric, test R²."""
    fin = study.finished
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id",
            *[c for c in study.swept if c != "model"], study.metric,
            *[p for p in R2_PROTOCOLS if p in fin.columns and p != study.metric]]
    notes: Notes = []
    if not [c for c in study.swept if c != "model"]:
        notes.append("no training parameter other than the model varies among finished trials: no sweep views.")
    return fin[list(dict.fromkeys(cols))].reset_index(drop=True), notes


def param_importance(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """Importance of each swept parameter for the selection metric, per criterion x band.

    Uses Optuna's fANOVA evaluator (``optuna.importance.FanovaImportanceEvaluator``, a random
    forest fitted to the finished trials; Hutter et al. 2014) on an in-memory Optuna study built
    from ``trials.csv``, so it works for any study, Optuna-driven or not. Importances are
    normalised to sum to 1 within a group. Seeds are not a parameter: seed noise stays unexplained.
    """
    import optuna

    cfg = config or AnalysisConfig()
    cols = ["criterion", "band", "param", "importance", "n_trials", "n_configs", "evaluator"]
    notes: Notes = []
    params = list(study.swept)
    if not params:
        return pd.DataFrame(columns=cols), ["no swept parameter: no parameter importance."]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        rows = _importance_rows(study, cfg, params, notes)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return pd.DataFrame(rows, columns=cols), notes


def _importance_rows(study: Study, cfg: AnalysisConfig, params: list[str], notes: Notes) -> list[dict[str, Any]]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator

    rows = []
    for (crit, band), g in study.finished.groupby(["criterion", "band"], sort=False):
        varying = [p for p in params if g[p].astype(str).nunique() > 1]
        n_configs = g["config_id"].nunique()
        if n_configs < cfg.min_importance_configs or not varying:
            notes.append(f"{crit} / {band}: {n_configs} distinct configuration(s), {len(varying)} varying "
                         "parameter(s); too few for parameter importance.")
            continue
        if n_configs < 3 * len(varying):
            notes.append(f"{crit} / {band}: only {n_configs} distinct configurations for {len(varying)} parameters; "
                         "their effects are confounded, treat the importances as unreliable.")
        dists = {}
        for p in varying:
            v = g[p].dropna()
            if pd.api.types.is_bool_dtype(v) or not pd.api.types.is_numeric_dtype(v):
                dists[p] = CategoricalDistribution(sorted(v.astype(str).unique()))
            elif pd.api.types.is_integer_dtype(v):
                dists[p] = IntDistribution(int(v.min()), int(v.max()))
            else:
                log = p in study.log_params and float(v.min()) > 0
                dists[p] = FloatDistribution(float(v.min()), float(v.max()), log=log)
        ostudy = optuna.create_study(direction="maximize" if _better(study.mode) else "minimize")
        for _, r in g.iterrows():
            values = {}
            for p, d in dists.items():
                if pd.isna(r[p]):  # a conditional parameter this trial did not have
                    continue
                if isinstance(d, CategoricalDistribution):
                    values[p] = str(r[p])
                elif isinstance(d, IntDistribution):
                    values[p] = int(r[p])
                else:
                    values[p] = float(r[p])
            ostudy.add_trial(optuna.trial.create_trial(params=values, distributions={p: dists[p] for p in values},
                                                       value=float(r[study.metric])))
        imp = optuna.importance.get_param_importances(ostudy, evaluator=FanovaImportanceEvaluator(seed=cfg.seed))
        if len(varying) == 1:
            notes.append(f"{crit} / {band}: only {varying[0]} varies; its importance is 1 by construction.")
        for p, v in imp.items():
            rows.append({"criterion": crit, "band": band, "param": p, "importance": float(v), "n_trials": len(g),
                         "n_configs": n_configs,
                         "evaluator": "optuna FanovaImportanceEvaluator"})
    return rows


def best_configs(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """Configurations ranked by mean selection metric over seeds, with spread, per criterion x band.

    Returns:
        ``criterion, band, rank, config_id, model, <swept params>, n_seeds, n_runs (trials, more than
        n_seeds when a searcher proposed a configuration twice), <metric>_mean/_std/_min/_max``
        for the selection metric and each test R² protocol; std has ddof=1 (NaN for one seed).
    """
    cfg = config or AnalysisConfig()
    fin = study.finished
    metrics = list(dict.fromkeys([study.metric, *[p for p in R2_PROTOCOLS if p in fin.columns]]))
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
        g = g.sort_values(f"{study.metric}_mean", ascending=not _better(study.mode), kind="stable").head(cfg.top_k)
        out.append(g.assign(rank=np.arange(1, len(g) + 1)))
    res = pd.concat(out, ignore_index=True)
    return res[["criterion", "band", "rank", "config_id", "model", *params, "n_seeds", "n_runs",
                *[c for c in res.columns if any(c.startswith(m + "_") for m in metrics)]]], []


# ----------------------------------------------------------------------------- significance
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


def significance(study: Study) -> tuple[pd.DataFrame, Notes]:
    """Paired Wilcoxon signed-rank tests between every two models (scipy ``wilcoxon``).

    Each model's selected configuration; pairs matched by criterion, band and seed. One test per
    criterion x band (n = seeds) and one pooled over all criteria x bands x seeds ("all"), for each
    test protocol. ``p_bh`` is the Benjamini-Hochberg adjusted p-value (scipy
    ``false_discovery_control``) over all tests of one protocol. Positive differences and effect
    sizes mean model_a has the higher R².
    """
    from scipy.stats import false_discovery_control

    r2, notes = r2_by_model(study)
    cols = ["protocol", "scope", "model_a", "model_b", "n_pairs", "mean_a", "mean_b", "mean_diff", "median_diff",
            "wilcoxon_w", "p_value", "p_bh", "rank_biserial", "cohen_dz", "note"]
    notes = [n for n in notes if "configurations" not in n]  # said once by r2_by_model already
    models = [m for m in MODEL_ORDER if m in set(r2["model"])] + sorted(set(r2["model"]) - set(MODEL_ORDER))
    if len(models) < 2:
        return pd.DataFrame(columns=cols), ["fewer than two models: no paired tests between models."]
    rows = []
    for protocol, gp in r2.groupby("protocol", sort=False):
        wide = gp.pivot_table(index=["criterion", "band", "seed"], columns="model", values="r2", aggfunc="mean")
        scopes = [("all", wide)] + [(f"{c} / {b}", g) for (c, b), g in wide.groupby(level=["criterion", "band"], sort=False)]
        first = len(rows)
        for scope, w in scopes:
            for i, ma in enumerate(models):
                for mb in models[i + 1:]:
                    if ma not in w.columns or mb not in w.columns:
                        continue
                    pair = w[[ma, mb]].dropna()
                    res = _paired_test(pair[ma].to_numpy(float), pair[mb].to_numpy(float))
                    rows.append({"protocol": protocol, "scope": scope, "model_a": ma, "model_b": mb, **res})
        ps = np.array([r["p_value"] for r in rows[first:]], dtype=float)
        ok = np.isfinite(ps)
        adj = np.full_like(ps, np.nan)
        if ok.any():
            adj[ok] = false_discovery_control(ps[ok], method="bh")
        for r, p in zip(rows[first:], adj):
            r["p_bh"] = float(p)
    df = pd.DataFrame(rows, columns=cols)
    if not df.empty and df["p_value"].isna().all():
        notes.append("no paired test could be computed (one seed per model, or identical results).")
    return df, notes


# ----------------------------------------------------------------------------- everything
@dataclass
class Analysis:
    """All tables of one study; ``notes`` maps a section name to its notes."""

    study: Study
    tables: dict[str, pd.DataFrame]
    notes: dict[str, Notes]


def analyse(study_dir: str | Path, config: AnalysisConfig | None = None) -> Analysis:
    """Compute every table of the report (see the module docstring) for a study folder."""
    cfg = config or AnalysisConfig()
    study = load_study(study_dir, cfg)
    tables: dict[str, pd.DataFrame] = {}
    notes: dict[str, Notes] = {"study": list(study.notes)}
    r2, notes["r2"] = r2_by_model(study)
    tables["r2_by_model"] = r2
    tables["r2_summary"] = r2_summary(r2)
    db, cd, notes["latent"] = latent_metrics(study, cfg)
    tables["davies_bouldin"] = db
    tables["centroid_distances"] = cd
    tables["centroid_distances_mean"] = mean_centroid_distances(study, cd)
    tables["db_vs_r2"], notes["db_vs_r2"] = db_vs_r2(db)
    tables["tsne"], notes["tsne"] = tsne_table(study, cfg)
    notes["tsne"] = [n for n in notes["tsne"] if n not in notes["latent"]]
    tables["sweep"], notes["sweep"] = sweep_table(study)
    tables["param_importance"], notes["importance"] = param_importance(study, cfg)
    tables["best_configs"], notes["best"] = best_configs(study, cfg)
    tables["significance"], notes["significance"] = significance(study)
    failed = study.failed
    tables["failed_trials"] = failed[[c for c in ("trial_id", "status", "error", "model", "criterion", "band", "seed",
                                                   "config_id") if c in failed.columns]].reset_index(drop=True)
    return Analysis(study=study, tables=tables, notes={k: _dedupe(v) for k, v in notes.items()})


def _dedupe(notes: Notes) -> Notes:
    return list(dict.fromkeys(notes))
