"""A stand-in for ``raympa.train.fit`` for the study's Tune-mechanics tests (not in the package).

It has fit's signature and contract (callback each epoch with ``get_state``, ``resume=`` state,
``FloatingPointError`` for a "non-finite loss", ``TrainResult``-like metrics and latents) but
trains nothing: the validation "R²" is a known function of the config, so tests can check that
values travel from the trial to trials.csv and the Optuna journal. Each call and epoch appends a
line to ``log`` (an absolute path), so tests can see which trials ran and when.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class StandInResult:
    metrics: dict
    latents: dict


def score(cfg) -> float:
    """The stand-in's validation R² for a config: best at margin 0.5, lr 0.005."""
    return float(0.8 - 0.1 * abs(np.log(cfg.margin / 0.5)) - 0.05 * abs(np.log10(cfg.lr / 0.005)))


def standin_fit(cfg, data, *, band=None, callback=None, resume=None, out_dir=None,
                log: str | None = None, sleep: float = 0.0, fail_lr: float = 0.5,
                fail_at: int = 1):
    """Pretend to train ``cfg.epochs`` epochs; raise FloatingPointError when lr >= fail_lr."""
    start = int(resume["epoch"]) if resume else 0
    sub = data.select(band=band, split="test")

    def note(event: str, epoch: int) -> None:
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), "epoch": epoch,
                                    "seed": cfg.seed, "lr": cfg.lr, "margin": cfg.margin, "band": band,
                                    "model": cfg.model}) + "\n")

    note("start", start)
    for epoch in range(start, cfg.epochs):
        if sleep:
            time.sleep(sleep)
        if cfg.lr >= fail_lr and epoch >= fail_at:
            note("fail", epoch)
            raise FloatingPointError(f"non-finite loss at epoch {epoch} (stand-in, lr={cfg.lr})")
        val = score(cfg) * (epoch + 1) / cfg.epochs
        note("epoch", epoch)
        if callback is not None:
            callback({"epoch": epoch, "stage": "joint", "train_loss": 1.0 / (epoch + 1), "val_loss": 1.0 - val,
                      "val_r2_full": val}, lambda e=epoch: {"epoch": e + 1})
    note("end", cfg.epochs)
    n = len(sub)
    y = sub.ratings[cfg.criterion].astype(np.float32)
    rng = np.random.default_rng(cfg.seed)
    latents = {"z": rng.normal(size=(n, 16)).astype(np.float32), "y": y,
               "bins": np.minimum((y * cfg.n_bins).astype(np.int64), cfg.n_bins - 1),
               "recording_id": sub.recording_id}
    metrics = {"val_r2_full": score(cfg), "test_r2_full": score(cfg) - 0.05, "test_r2_chunk": score(cfg) - 0.1,
               "val_r2_chunk": score(cfg) - 0.08, "epochs_run": cfg.epochs, "best_epoch": cfg.epochs - 1}
    return StandInResult(metrics=metrics, latents=latents)


def register() -> None:
    """Let Ray workers unpickle this module's functions by value (tests/ is not importable there)."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def read_log(log: Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(log).read_text().splitlines() if ln.strip()] if Path(log).exists() else []


def standin_fit_members(cfgs, data, *, band=None, callback=None, resume=None, out_dirs=None,
                        log: str | None = None, sleep: float = 0.0, fail_lr: float = 0.5, fail_at: int = 1,
                        fail_seeds: tuple = ()):
    """:func:`standin_fit` for K members in lockstep, with ``raympa.train.fit_members``'s contract.

    A member that "diverges" (lr >= fail_lr, or its seed in ``fail_seeds``) gets its
    FloatingPointError in its slot and reports None from then on.
    """

    epochs = max(c.epochs for c in cfgs)
    queues = []
    for cfg in cfgs:  # each member's epochs, recorded through standin_fit's own callback
        events = []
        try:
            result = standin_fit(cfg, data, band=band, callback=lambda m, s, ev=events: ev.append(m),
                                 resume=resume, log=log, sleep=0.0, fail_at=fail_at,
                                 fail_lr=0.0 if cfg.seed in fail_seeds else fail_lr)
        except FloatingPointError as e:
            result = e
        queues.append((events, result))
    start = int(resume["epoch"]) if resume else 0
    for i, epoch in enumerate(range(start, epochs)):
        if sleep:
            time.sleep(sleep)
        row = [ev[i] if i < len(ev) else None for ev, _ in queues]
        if all(m is None for m in row):
            break
        if callback is not None:
            callback(row, lambda e=epoch: {"epoch": e + 1})
    return [r for _, r in queues]
