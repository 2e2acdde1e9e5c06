"""A training run's outputs: :class:`TrainResult`, the checkpoint dict, and the run folder.

A run folder (``raympa train --out RUN``) holds ``metrics.json``, ``config.json``,
``history.csv``, ``checkpoint.pt`` (loads with ``torch.load(weights_only=True)``; what
``raympa predict --checkpoint`` reads) and ``latents.npz``. Several members trained together
(``raympa train --seeds 0-4 --out DIR``) write one such folder each, ``DIR/seed-<k>/``, and
``DIR/seeds.csv`` with one row of metrics per seed. This module is the one owner of these names.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from raympa.config import ExtractConfig, TrainConfig

if TYPE_CHECKING:
    from raympa.dataset import ContourSet

CHECKPOINT_FORMAT = "raympa.checkpoint/1"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_FILE = "checkpoint.pt"
LATENTS_FILE = "latents.npz"
SEEDS_FILE = "seeds.csv"


def seed_folder(out_dir: str | Path, seed: int) -> Path:
    """``out_dir/seed-<seed>``: the run folder of one seed of a multi-seed run."""
    return Path(out_dir) / f"seed-{seed}"


@dataclass
class TrainResult:
    """What one run produced.

    Attributes:
        metrics: val_r2_full, val_r2_chunk, test_r2_full, test_r2_chunk, test_mse_full,
            epochs_run, best_epoch, best_val_loss, n_train/n_val/n_test, seconds, device ...
        latents: test set ``z`` (n, 16) float32, ``y`` (n,) float32, ``bins`` (n,) int64,
            ``recording_id`` (n,) str, ``pred`` (n,) float32 (clipped to [0, 1]).
        history: one metrics dict per epoch (what the callback received).
        checkpoint: ``torch.save``-able dict (plain types + tensors; see :func:`make_checkpoint`).
        config: the run's TrainConfig.
        data_description: n_recordings, bands and instruments used (config.json's ``data``).
    """

    metrics: dict[str, Any]
    latents: dict[str, np.ndarray]
    history: list[dict[str, Any]]
    checkpoint: dict[str, Any]
    config: TrainConfig
    data_description: dict[str, Any] | None = None


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (JSON and weights_only checkpoints)."""
    return value.item() if hasattr(value, "item") else value


def make_checkpoint(
    cfg: TrainConfig, model_state: dict[str, Any], *, min_frames: int, data: "ContourSet", metrics: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint dict: tensors and plain types only (``torch.load(weights_only=True)``).

    Args:
        cfg: the run's configuration.
        model_state: the single model's state dict (CPU tensors).
        min_frames: the model's shortest input, frames.
        data: the training contours (their extraction parameters are recorded).
        metrics: the run's final metrics (scalars are kept).
    """
    import raympa

    known = {f.name for f in dataclasses.fields(ExtractConfig)}
    extract = {k: plain(v) for k, v in data.extract.items() if k in known}
    if extract.get("backend") not in (None, "fast", "librosa"):
        extract.pop("backend")  # e.g. imported pitch tracks: predict extracts with the default
    return {
        "format": CHECKPOINT_FORMAT,
        "raympa_version": raympa.__version__,
        "model": cfg.model,
        "criterion": cfg.criterion,
        "pitch_norm": cfg.pitch_norm,
        "chunk_frames": cfg.chunk_frames,
        "min_frames": int(min_frames),
        "model_state": model_state,
        "train_config": cfg.to_dict(),
        "extract_config": ExtractConfig(**extract).key(),
        "contour_source": {k: plain(v) for k, v in data.extract.items()},
        "metrics": {k: plain(v) for k, v in metrics.items() if isinstance(plain(v), (int, float, str))},
    }


def save_checkpoint(result: TrainResult, path: str | Path) -> Path:
    """Write ``result``'s checkpoint alone (``raympa predict --checkpoint PATH`` reads it)."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.checkpoint, p)
    return p


def write_run(result: TrainResult, out_dir: str | Path, *, data_description: dict[str, Any] | None = None) -> Path:
    """Write metrics.json, config.json, history.csv, checkpoint.pt and latents.npz to ``out_dir``."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(json.dumps(json_safe(result.metrics), indent=2) + "\n")
    config = {"train_config": result.config.to_dict(),
              "extract_config": result.checkpoint["extract_config"],
              "contour_source": result.checkpoint["contour_source"]}
    described = data_description if data_description is not None else result.data_description
    if described is not None:
        config["data"] = described
    (out / CONFIG_FILE).write_text(json.dumps(json_safe(config), indent=2) + "\n")
    pd.DataFrame(result.history).to_csv(out / HISTORY_FILE, index=False)
    save_checkpoint(result, out / CHECKPOINT_FILE)
    np.savez(out / LATENTS_FILE, **result.latents)
    return out


def write_seeds(results: Sequence[TrainResult | BaseException], seeds: Sequence[int], out_dir: str | Path) -> Path:
    """``out_dir/seeds.csv``: one row per seed, its final metrics (or its error)."""
    import pandas as pd

    rows = []
    for seed, r in zip(seeds, results):
        if isinstance(r, BaseException):
            rows.append({"seed": seed, "error": str(r)})
        else:
            rows.append({"seed": seed, **{k: plain(v) for k, v in r.metrics.items() if k != "seed"}, "error": ""})
    path = Path(out_dir) / SEEDS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def json_safe(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become null (JSON has none)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    obj = plain(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def describe_data(data: ContourSet, *, band: str | None, criterion: str) -> dict[str, Any]:
    """The recordings a run uses: count, bands, instruments (config.json's ``data``)."""
    used = data.indices(band=band, criterion=criterion)
    return {
        "n_recordings": int(len(used)),
        "bands": sorted(set(data.band[used].tolist())),
        "instruments": sorted(set(data.instrument[used].tolist())),
    }
