"""From a finished study to scores: the best configuration's checkpoints, and predictions with them.

"Best" is, per rated criterion the study trained, the configuration (all TrainConfig fields but
the seed) with the best mean selection metric over its seeds (study.json's ``metric`` and
``mode``; ``val_r2_full``, higher is better, by default): a validation metric, so the test set
plays no part in the choice. Trials that did not finish or have no metric are never chosen and
do not count in a mean. With several bands, one band is chosen (``band``).

* :func:`best_trials` -- the chosen trials, one row per seed.
* :func:`study_checkpoints` -- their ``checkpoint.pt`` files (in the study's Tune folder).
* :func:`export_best` -- copies them to ``OUT/<criterion>/seed-<k>/checkpoint.pt`` (what
  ``raympa predict --checkpoint`` reads) with ``OUT/best.csv``.
* :func:`predict_study` -- scores audio files with every seed and averages: one row per file,
  a column per criterion and its spread over seeds (``<criterion>_sd``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from raympa import studyfolder as SF

if TYPE_CHECKING:
    import pandas as pd

MODEL_FILE = SF.MODEL_FILE
NOT_CONFIG = ("seed", "device", "threads")  # TrainConfig fields that do not make a configuration
BEST_CSV = "best.csv"


def _finished(trials: "pd.DataFrame", metric: str) -> "pd.DataFrame":
    ok = (trials["status"] == SF.FINISHED) & trials[metric].notna()
    if "final" in trials.columns:
        ok &= trials["final"].astype(str).str.lower().isin(("true", "1"))
    ok &= trials[metric].map(lambda v: math.isfinite(float(v)))
    return trials[ok]


def _choose_band(trials: "pd.DataFrame", band: str | None) -> str:
    bands = sorted(set(trials["band"].astype(str))) if "band" in trials.columns else ["all"]
    if band is None:
        if len(bands) != 1:
            raise ValueError(f"the study has several bands ({', '.join(bands)}): choose one with --band")
        return bands[0]
    if band not in bands:
        raise ValueError(f"band {band!r} is not in the study (bands: {', '.join(bands)})")
    return band


def best_trials(study_dir: str | os.PathLike, *, band: str | None = None) -> "pd.DataFrame":
    """The best configuration's finished trials per criterion (one row per seed).

    Adds the columns ``config_key`` (the configuration, as text) and ``config_mean`` (its mean
    metric over seeds).

    Raises:
        FileNotFoundError: not a study folder.
        ValueError: no finished trial with a metric, or a band that must be (or cannot be) chosen.
    """
    from raympa.config import TrainConfig

    meta = SF.read_study_json(study_dir) if SF.study_json_path(study_dir).is_file() else {}
    metric, mode = meta.get("metric", SF.METRIC), meta.get("mode", SF.MODE)
    trials = SF.read_trials(study_dir)
    if metric not in trials.columns:
        raise ValueError(f"{SF.trials_path(study_dir)} has no {metric!r} column")
    band = _choose_band(trials, band)
    done = _finished(trials[trials["band"].astype(str) == band] if "band" in trials.columns else trials, metric)
    if done.empty:
        raise ValueError(f"no finished trial with a {metric} in {Path(study_dir)} (band {band})")
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_CONFIG and f.name in done.columns]
    done = done.assign(config_key=done[fields].astype(str).agg(", ".join, axis=1))
    means = done.groupby(["criterion", "config_key"])[metric].mean().rename("config_mean").reset_index()
    chosen = (means.sort_values("config_mean", ascending=(mode == "min"), kind="stable")
              .groupby("criterion", sort=True).head(1))
    best = done.merge(chosen, on=["criterion", "config_key"])
    return best.sort_values(["criterion", "seed"]).reset_index(drop=True)


def _trial_checkpoint(study_dir: Path, trial_path: str, seed: int) -> Path:
    """``checkpoint.pt`` of a trial's last Tune checkpoint (its ``seed``'s, when it trained several)."""
    folder = Path(SF.resolve(study_dir, trial_path))
    if "://" in str(trial_path):
        raise ValueError(f"the trials' checkpoints are in remote storage ({trial_path}); copy the study's tune/ "
                         "folder next to trials.csv first")
    found = sorted(folder.glob(f"checkpoint_*/{SF.member_folder(seed)}/{MODEL_FILE}")) or sorted(
        folder.glob(f"checkpoint_*/{MODEL_FILE}"))
    if not found:
        raise FileNotFoundError(f"no {MODEL_FILE} in {folder} (a study run before trials kept their model?)")
    return found[-1]


def study_checkpoints(study_dir: str | os.PathLike, *, band: str | None = None) -> list[Path]:
    """The best configuration's ``checkpoint.pt`` files, per criterion, one per seed."""
    best = best_trials(study_dir, band=band)
    return [_trial_checkpoint(Path(study_dir), p, s) for p, s in zip(best["trial_path"], best["seed"])]


def export_best(study_dir: str | os.PathLike, out_dir: str | os.PathLike, *, band: str | None = None) -> list[Path]:
    """Copy the best configuration's checkpoints to ``OUT/<criterion>/seed-<k>/checkpoint.pt``.

    Also writes ``OUT/best.csv`` (the chosen trials, their metrics and configuration). Returns
    the written checkpoints.
    """
    best = best_trials(study_dir, band=band)
    out = Path(out_dir)
    written = []
    for row in best.itertuples():
        src = _trial_checkpoint(Path(study_dir), row.trial_path, row.seed)
        dst = out / str(row.criterion) / f"seed-{int(row.seed)}" / MODEL_FILE
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        written.append(dst)
    best.drop(columns=["trial_path"]).to_csv(out / BEST_CSV, index=False)
    return written


def predict_study(
    study_dir: str | os.PathLike, audio: Sequence[str | os.PathLike], *, band: str | None = None, device: str = "auto",
    reference: str | os.PathLike | None = None, peers: dict[str, Any] | None = None,
    extract: dict[str, Any] | None = None,
) -> "pd.DataFrame":
    """Score audio files with the best configuration's seeds, averaged.

    ``reference``, ``peers`` and ``extract`` are :func:`raympa.predict.predict_files`' (a study
    whose best configuration is reference-informed needs ``reference``).

    Returns:
        One row per file: ``audio_path``, per criterion its mean over seeds (``note_accuracy``
        ...) and their sample standard deviation (``note_accuracy_sd``, NaN with one seed),
        and ``note`` (why a value is missing or less reliable).
    """
    import pandas as pd

    from raympa.predict import predict_files

    best = best_trials(study_dir, band=band)
    paths = study_checkpoints(study_dir, band=band)
    scores = predict_files(paths, audio, device=device, reference=reference, peers=peers, extract=extract)
    out = scores[["audio_path"]].copy()
    value_columns = [c for c in scores.columns if c not in ("audio_path", "note")]  # one per checkpoint, in order
    for criterion in dict.fromkeys(best["criterion"].astype(str)):
        cols = [c for c, crit in zip(value_columns, best["criterion"].astype(str)) if crit == criterion]
        out[criterion] = scores[cols].mean(axis=1, skipna=False)
        out[f"{criterion}_sd"] = scores[cols].std(axis=1, ddof=1) if len(cols) > 1 else float("nan")
    out["note"] = scores["note"]
    return pd.DataFrame(out)
