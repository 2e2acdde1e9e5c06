"""A study folder read into memory: trials, their configurations, and test-set latents.

A "configuration" is a trial's TrainConfig without its seed (and criterion, band, which are the
groups): trials of one configuration differ only by seed. ``config_id`` names it by the model and
the parameters that vary among finished trials.

Conventions: ratings are unitless in [0, 1]; latent vectors are the encoder's 16-d embeddings
(``constants.LATENT_DIM``); rating bins cut [0, 1] into C equal bins with inclusive lower bounds
(paper, section 3.1.3), 1.0 in bin C-1 (``raympa.losses.rating_bins``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raympa import studyfolder
from raympa.studyfolder import FINISHED, RESULT_COLUMNS

Notes = list[str]
GROUP_COLUMNS = ("criterion", "band")  # figures and tests are split by these
METRIC_COLUMNS = RESULT_COLUMNS  # the numeric result columns of trials.csv (studyfolder's)


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
    chunk_latents: bool = True  # ours: latent views on the test set's chunk latents where a trial stored them
    # (z_chunk: every 1000-frame window at hop 500), else on its full-length test recordings


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
    def searched(self) -> dict[str, dict[str, Any]]:
        """``study.json``'s searched parameters (name -> description with ``log``, ``when`` ...)."""
        space = self.meta.get("search_space") or {}
        searched = space.get("searched", space) if isinstance(space, dict) else {}
        return {k: v for k, v in searched.items() if isinstance(v, dict)} if isinstance(searched, dict) else {}

    @property
    def log_params(self) -> set[str]:
        """Parameters that ``study.json``'s search space samples on a log scale."""
        return {k for k, v in self.searched.items() if v.get("log") is True}

    @property
    def maximize(self) -> bool:
        """Whether a higher selection metric is better."""
        return self.mode == "max"

    @property
    def finished(self) -> pd.DataFrame:
        """Trials that ended without error."""
        return self.trials[self.trials["finished"]]

    @property
    def failed(self) -> pd.DataFrame:
        """Trials that ended in an error (or any status other than TERMINATED)."""
        return self.trials[~self.trials["finished"]]

    def latents_path(self, trial_id: str) -> Path:
        return studyfolder.latents_path(self.path, trial_id)


CHUNK_POINTS = "chunk-1000 windows"  # what a latent point is: a test chunk (z_chunk) ...
RECORDING_POINTS = "full-length recordings"  # ... or a whole test recording (z)


@dataclass(frozen=True)
class Latents:
    """Test-set latents of one trial (``TrainResult.latents``): one point per recording or per chunk."""

    z: np.ndarray  # (n, LATENT_DIM) float32
    y: np.ndarray  # (n,) float32 ratings in [0, 1]
    bins: np.ndarray  # (n,) int64 rating bins used by the analysis
    recording_id: np.ndarray  # (n,) str, the recording each point comes from
    points: str = RECORDING_POINTS  # CHUNK_POINTS or RECORDING_POINTS


def dedupe(notes: Notes) -> Notes:
    """Notes in order, each once."""
    return list(dict.fromkeys(notes))


def condition_holds(when: Any, row: Any) -> bool:
    """Whether a search-space condition of study.json (``{param: [allowed values]}``) holds for a trial
    (a row of trials.csv); no condition always holds."""
    if not isinstance(when, dict):
        return True
    return all(str(row.get(k)) in {str(v) for v in allowed} for k, allowed in when.items())


def _config_fields() -> list[str]:
    from raympa.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _read_meta(path: Path, notes: Notes) -> dict[str, Any]:
    try:
        return studyfolder.read_study_json(path)
    except FileNotFoundError:
        notes.append(f"{studyfolder.STUDY_JSON} is missing; command, versions and data description are unknown.")
        return {}
    except ValueError as e:
        notes.append(f"study.json could not be parsed ({e}); command and versions are unknown.")
        return {}


def _read_trials(path: Path, notes: Notes) -> pd.DataFrame:
    trials = studyfolder.read_trials(path)
    trials_csv = studyfolder.trials_path(path)
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
    return trials


def _selection_metric(trials: pd.DataFrame, meta: dict[str, Any], cfg: AnalysisConfig,
                      trials_csv: Path, notes: Notes) -> tuple[str, str]:
    metric = cfg.metric or str(meta.get("metric") or studyfolder.METRIC)
    mode = cfg.mode or str(meta.get("mode") or studyfolder.MODE)
    if mode not in ("max", "min"):
        raise ValueError(f"mode={mode!r}; choose 'max' or 'min'")
    if metric not in trials.columns:
        fallback = next((m for m in ("val_r2_full", "test_r2_full") if m in trials.columns), None)
        notes.append(f"selection metric {metric!r} is not a trials.csv column; using {fallback!r}.")
        if fallback is None:
            raise ValueError(f"{trials_csv} has neither {metric!r} nor val_r2_full / test_r2_full")
        metric, mode = fallback, "max"
    trials[metric] = pd.to_numeric(trials[metric], errors="coerce")
    return metric, mode


def _mark_finished(trials: pd.DataFrame, metric: str, notes: Notes) -> None:
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
    notes: Notes = []
    trials = _read_trials(path, notes)  # FileNotFoundError without trials.csv
    meta = _read_meta(path, notes)
    metric, mode = _selection_metric(trials, meta, cfg, studyfolder.trials_path(path), notes)
    _mark_finished(trials, metric, notes)

    config_columns = [c for c in _config_fields() if c in trials.columns]
    fin = trials[trials["finished"]]
    swept = [
        c for c in config_columns
        if c not in ("seed", "criterion") and fin[c].astype(str).nunique() > 1
    ]
    key_cols = ["model"] + [c for c in swept if c != "model"]
    study = Study(path, meta, trials, config_columns, swept, metric, mode, notes)
    when = {c: d.get("when") for c, d in study.searched.items()}
    trials["config_id"] = [  # a parameter the trial did not use (its condition fails) is left out
        ", ".join(f"{c}={_fmt(row[c])}" for c in key_cols if condition_holds(when.get(c), row))
        for _, row in trials.iterrows()
    ]
    return study


def _read_npz(path: Path, *, chunks: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(z, y, recording_id, points)`` of a latents file: its chunk keys when asked and present."""
    with np.load(path, allow_pickle=False) as f:
        y = np.asarray(f["y"], dtype=np.float32)
        rid = (np.asarray(f["recording_id"]).astype(str) if "recording_id" in f.files
               else np.arange(len(y)).astype(str))
        if chunks and {"z_chunk", "y_chunk"} <= set(f.files):
            index = (np.asarray(f["recording_index_chunk"], dtype=np.int64) if "recording_index_chunk" in f.files
                     else None)
            chunk_rid = rid[index] if index is not None and len(rid) else np.arange(len(f["y_chunk"])).astype(str)
            return (np.asarray(f["z_chunk"], dtype=np.float32), np.asarray(f["y_chunk"], dtype=np.float32),
                    chunk_rid, CHUNK_POINTS)
        return np.asarray(f["z"], dtype=np.float32), y, rid, RECORDING_POINTS


def load_latents(study: Study, trial_id: str, *, n_bins: int = 5,
                 chunks: bool = True) -> tuple[Latents | None, Notes]:
    """Latents of one trial, with bins recomputed for ``n_bins`` (paper: 5).

    With ``chunks`` and a file that holds them, the test set's chunk latents (``z_chunk``,
    ``y_chunk``, ``recording_index_chunk``), else one latent per full-length test recording. Bins
    come from ``raympa.losses.rating_bins(y, n_bins)`` so every trial is binned alike, even in a
    sweep over the training C.
    """
    from raympa.losses import rating_bins

    path = study.latents_path(trial_id)
    if not path.is_file():
        return None, [f"trial {trial_id}: no latents file ({path.name}); left out of latent-space views."]
    try:
        z, y, rid, points = _read_npz(path, chunks=chunks)
    except (OSError, KeyError, ValueError, IndexError) as e:
        return None, [f"trial {trial_id}: latents file unreadable ({e}); left out of latent-space views."]
    if z.ndim != 2 or len(z) != len(y):
        return None, [f"trial {trial_id}: latents z {z.shape} and y {y.shape} do not match; left out."]
    bins = np.asarray(rating_bins(y, n_bins), dtype=np.int64)
    return Latents(z=z, y=y, bins=bins, recording_id=rid, points=points), []
