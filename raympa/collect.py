"""Tune's results into the study folder: ``trials.csv`` (one row per seed) and the latents.

A trial that trained several seeds at once (``seeds`` in its config, :mod:`raympa.study`) gives
one row per seed: ``trial_id`` ``<tune id>_s<seed>``, ``tune_trial_id`` the Tune trial, its own
status, error, metrics and latents; the rest of the row is the trial's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raympa import studyfolder as SF
from raympa.config import TrainConfig
from raympa.study import SEEDS, TRIAL_INDEX, split_members

if TYPE_CHECKING:
    import pandas as pd

# keys Tune adds to every result (kept out of trials.csv except training_iteration, time_total_s)
_TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
    "should_checkpoint", "experiment_tag", "epoch", "stage", "stage_epoch", "train_loss", "val_loss",
    "epoch_seconds",
})


def collect_results(results: Any, study_dir: Path) -> "pd.DataFrame":
    """Write ``trials.csv`` and ``latents/<trial_id>.npz`` from a Tune ``ResultGrid``."""
    import pandas as pd

    SF.latents_dir(study_dir).mkdir(parents=True, exist_ok=True)
    rows = [row for i in range(len(results)) for row in _trial_rows(results[i], study_dir)]
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("trial_id").reset_index(drop=True)
    SF.write_trials(study_dir, df)
    return df


def _config_row(config: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The TrainConfig columns and band of a trial's config, and its seeds."""
    row: dict[str, Any] = {}
    try:
        cfgs, band = split_members(config)
        row.update(cfgs[0].to_dict())
        seeds = [c.seed for c in cfgs]
    except (ValueError, TypeError):  # a bad config: keep what was asked for
        band = config.get("band")
        row.update({f.name: config.get(f.name) for f in dataclasses.fields(TrainConfig) if f.name in config})
        seeds = [int(s) for s in config.get(SEEDS, [config.get("seed", 0)])]
    row["band"] = band or "all"
    return row, seeds


def _metrics_row(metrics: dict[str, Any]) -> dict[str, Any]:
    row = {k: metrics.get(k, float("nan")) for k in SF.RESULT_COLUMNS}
    if "device" in metrics:  # the device the trial really used ("cuda"/"cpu"), not the config's "auto"
        row["device"] = metrics["device"]
    return row


def _trial_rows(r: Any, study_dir: Path) -> list[dict[str, Any]]:
    """The trials.csv rows of one Tune ``Result`` (one per seed), its latents copied into the folder."""
    metrics = dict(r.metrics or {})
    tune_id = str(metrics.get("trial_id") or Path(str(r.path)).name.removeprefix("trial_"))
    config = dict(r.config or {})
    base, seeds = _config_row(config)
    base.update(status=SF.FAILED if r.error else SF.FINISHED, error=SF.error_message(r.error))
    base.update(_metrics_row(metrics))
    for k, v in metrics.items():  # the run's other metrics (n_train, seconds ...)
        if k not in base and k not in _TUNE_KEYS and isinstance(v, (bool, int, float, str)):
            base[k] = v
    base.update(final=bool(metrics.get("final", False)), training_iteration=metrics.get("training_iteration"),
                time_total_s=metrics.get("time_total_s"), trial_path=SF.relative_to(study_dir, str(r.path)))
    batched = SEEDS in config
    members: dict[int, dict[str, Any]] = {}
    ckpt_dir = None
    if base["final"] and not r.error and r.checkpoint is not None:
        ckpt_dir = r.checkpoint.to_directory()  # a local copy (Tune's may be remote)
        final = Path(ckpt_dir) / SF.FINAL_FILE
        if batched and final.is_file():
            members = {int(m["seed"]): m for m in json.loads(final.read_text()).get(SF.MEMBERS_KEY, [])}
    rows = []
    for k, seed in enumerate(seeds):
        row = dict(base, trial_id=f"{tune_id}_s{seed}" if batched else tune_id, tune_trial_id=tune_id, seed=seed,
                   repeat=k if batched else int(config.get(TRIAL_INDEX, 0)))
        member = members.get(seed)
        if member is not None and "error" in member:
            row.update(status=SF.FAILED, error=member["error"][:500], final=False,
                       **{c: float("nan") for c in SF.RESULT_COLUMNS})
        elif member is not None:
            row.update(_metrics_row(member["metrics"]))
            row.update({k: v for k, v in member["metrics"].items() if k not in _TUNE_KEYS and k not in row})
        if ckpt_dir is not None and row["final"]:
            src = Path(ckpt_dir) / (SF.member_folder(seed) if batched else "") / SF.LATENTS_FILE
            if src.is_file():
                shutil.copy(src, SF.latents_path(study_dir, row["trial_id"]))
        rows.append({"trial_id": row["trial_id"], "status": row["status"], "error": row["error"], **row})
    if ckpt_dir is not None:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return rows
