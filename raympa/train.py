"""One training run: PCConvNet, two-step ContrastiveCNN, or joint-loss ContrastiveCNN-JL.

Seshadri & Lerch 2021, sections 3.1 and 4.2, with the original code's choices as options
(docs/divergences.md):

* ``pcconvnet``: PCConvNet on MSE (paper: 300 epochs, lr 0.005).
* ``contrastive`` (two-step, after Khosla et al. 2020): stage ``encoder`` trains the encoder on
  the contrastive loss (paper: 150 epochs, lr 0.1); stage ``head`` freezes it (no gradients, and
  eval mode so its BatchNorm running statistics stay put) and trains the head on MSE (paper:
  300 epochs, lr 0.005).
* ``contrastive-jl``: ``MSE(out1, y1) + MSE(out2, y2) + lambda * L_C`` on the two halves of the
  batch (original code's "mixed" loss; the paper writes L = L_MSE + L_C, lambda = 1). With
  ``pairing="all"`` the MSE term is the MSE over the batch.

Every stage uses SGD (momentum 0.9, weight decay 1e-5), early stopping when the validation loss
has not decreased for ``patience`` epochs, and keeps the model of the best validation loss. An
epoch is one pass over the training recordings with ``chunks_per_recording`` random chunks each
(paper: one), or over all fixed windows (``chunking="fixed"``, original code). Validation is on
the full-length validation recordings (the original code's ``vef``); the validation loss is the
stage's loss on them (contrastive terms over all validation pairs). Evaluation reports
scikit-learn's R² of predictions clipped to [0, 1], on full-length recordings and on windows of
``chunk_frames`` with hop ``chunk_hop`` (each window labelled with its recording's rating).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from raympa.config import ExtractConfig, TrainConfig
from raympa.constants import LATENT_DIM
from raympa.dataset import ContourSet

if TYPE_CHECKING:
    import argparse

    import torch

CHECKPOINT_FORMAT = "raympa.checkpoint/1"
STATE_FORMAT = "raympa.train-state/1"
EVAL_FRAME_BUDGET = 1 << 21  # ours: frames per evaluation batch (about 8 MB of input)

# model -> stages: (stage name, TrainConfig field with its epochs, field with its learning rate)
STAGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "pcconvnet": (("regression", "epochs", "lr"),),
    "contrastive": (("encoder", "encoder_epochs", "encoder_lr"), ("head", "epochs", "lr")),
    "contrastive-jl": (("joint", "epochs", "lr"),),
}

Callback = Callable[[dict[str, Any], Callable[[], dict[str, Any]]], None]


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
    """

    metrics: dict[str, Any]
    latents: dict[str, np.ndarray]
    history: list[dict[str, Any]]
    checkpoint: dict[str, Any]
    config: TrainConfig


def resolve_device(name: str) -> "torch.device":
    """``"auto"`` -> CUDA when torch sees a GPU, else CPU; other names as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (and make cuDNN deterministic)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn R² of predictions clipped to [0, 1] (paper, Eq. 4); NaN with < 2 samples."""
    from sklearn.metrics import r2_score

    if len(y) < 2:
        return float("nan")
    return float(r2_score(np.asarray(y, np.float64), np.clip(np.asarray(pred, np.float64), 0.0, 1.0)))


def forward_full_length(
    model: "torch.nn.Module",
    midi: "torch.Tensor",
    begin: "torch.Tensor",
    lengths: "torch.Tensor",
    *,
    pitch_norm: str,
    min_frames: int,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Whole contours through the fully convolutional model, in eval mode, batched by length.

    A contour shorter than ``max(min_frames, model.min_frames)`` is zero-padded (unvoiced) to it,
    as training pads short chunks. Contours are sorted by length and batched up to
    ``EVAL_FRAME_BUDGET`` frames; the masked time means make the result equal to running each
    contour alone.

    Args:
        model: PCConvNet or ContrastiveCNN.
        midi: (total_frames,) flat MIDI contours on the model's device.
        begin: (n,) int64 first frame of each contour in ``midi``, on the same device.
        lengths: (n,) int64 contour lengths on the CPU.
        pitch_norm: ``TrainConfig.pitch_norm``.
        min_frames: pad shorter contours to this many frames (the training chunk length).

    Returns:
        Predictions (n,) (not clipped) and latents (n, 16), on the device.
    """
    import torch

    from raympa.dataset import gather_chunks, normalize

    n, device = len(lengths), midi.device
    end = begin + lengths.to(device)  # (n,)
    eff = lengths.clamp(min=max(min_frames, model.min_frames))  # (n,)
    order = torch.argsort(eff)
    pred = torch.zeros(n, device=device)
    z = torch.zeros(n, LATENT_DIM, device=device)
    model.eval()
    with torch.no_grad():
        b = 0
        while b < n:
            size = max(1, EVAL_FRAME_BUDGET // int(eff[order[b]]))
            idx = order[b : b + size]
            longest = int(eff[idx].max())
            if len(idx) * longest > EVAL_FRAME_BUDGET and len(idx) > 1:  # lengths grow in the batch
                size = max(1, EVAL_FRAME_BUDGET // longest)
                idx = order[b : b + size]
                longest = int(eff[idx].max())
            which = idx.to(device)
            x = gather_chunks(midi, begin, end, which, torch.zeros_like(which), longest)  # (batch, longest)
            p, zz = model.forward_latent(normalize(x, pitch_norm), eff[idx].to(device))
            pred[which], z[which] = p, zz
            b += len(idx)
    return pred, z


class _Split:
    """One split: indices into the shared contour array (no contour is copied), ratings on the device."""

    def __init__(self, data: ContourSet, index: np.ndarray, criterion: str, midi: "torch.Tensor") -> None:
        import torch

        device = midi.device
        self.n = len(index)
        self.midi = midi  # (total_frames,) the whole set's MIDI, shared by the splits
        self.begin = torch.from_numpy(data.offsets[index]).to(device)  # (n,)
        self.end = torch.from_numpy(data.offsets[index + 1]).to(device)  # (n,)
        self.lengths_np = data.lengths[index]  # (n,)
        self.lengths = torch.from_numpy(self.lengths_np)  # (n,) on the CPU (sampling)
        self.recording_id = data.recording_id[index]
        self.y_np = data.ratings[criterion][index].astype(np.float32)  # (n,)
        self.y = torch.from_numpy(self.y_np).to(device)  # (n,)


class _Run:
    """State and steps of one fit (kept together so ``get_state`` / ``resume`` are exact)."""

    def __init__(self, cfg: TrainConfig, data: ContourSet, device: "torch.device", *, band: str | None = None) -> None:
        import torch

        from raympa.models import build_model

        self.cfg = cfg
        self.device = device
        with warnings.catch_warnings():  # arrays from Ray's object store are read-only; never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            midi = torch.from_numpy(data.midi).to(device)  # (total_frames,) zero-copy on the CPU
        self.splits = {s: _Split(data, data.indices(band=band, split=s, criterion=cfg.criterion), cfg.criterion, midi)
                       for s in ("train", "val", "test")}
        if self.splits["train"].n < 2:
            raise ValueError(f"need at least 2 training recordings rated on {cfg.criterion}, "
                             f"have {self.splits['train'].n}")
        if self.splits["val"].n < 1:
            raise ValueError("no validation recordings: early stopping and model selection need a 'val' split")
        if self.splits["test"].n < 2:
            warnings.warn(f"{self.splits['test'].n} test recordings: test metrics will be NaN", stacklevel=3)
        seed_everything(cfg.seed)
        self.model = build_model(cfg.model).to(device)
        if cfg.chunk_frames < self.model.min_frames:
            raise ValueError(f"chunk_frames={cfg.chunk_frames} is shorter than {cfg.model}'s "
                             f"minimum input of {self.model.min_frames} frames")
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.stages = STAGES[cfg.model]
        self.stage_index = 0
        self.stage_epoch = 0  # epochs done in the current stage
        self.epoch = 0  # epochs done in all stages
        self.optimizer: torch.optim.Optimizer | None = None
        self.best_val = math.inf
        self.best_stage_epoch = 0
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stage_best_epochs: dict[str, int] = {}
        self.history: list[dict[str, Any]] = []
        if cfg.chunking == "fixed":
            from raympa.dataset import fixed_windows

            which, starts = fixed_windows(self.splits["train"].lengths_np, cfg.chunk_frames, cfg.chunk_hop)
            self.windows = (torch.from_numpy(which), torch.from_numpy(starts))

    # ----------------------------------------------------------------------- stages
    @property
    def done(self) -> bool:
        return self.stage_index >= len(self.stages)

    @property
    def stage(self) -> str:
        return self.stages[self.stage_index][0]

    def _stage_params(self) -> list["torch.nn.Parameter"]:
        stage = self.stage
        if stage == "encoder":
            return list(self.model.encoder.parameters())
        if stage == "head":
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
            return list(self.model.head.parameters())
        return list(self.model.parameters())

    def _make_optimizer(self) -> "torch.optim.Optimizer":
        import torch

        _, _, lr_field = self.stages[self.stage_index]
        return torch.optim.SGD(self._stage_params(), lr=getattr(self.cfg, lr_field),
                               momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay)

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.stage == "head":
            self.model.encoder.eval()  # frozen: BatchNorm running statistics must not move

    # ----------------------------------------------------------------------- one epoch
    def _batches(self) -> list[tuple["torch.Tensor", "torch.Tensor"]]:
        """(which, starts) per batch for one epoch, drawn from the run's generator."""
        import torch

        from raympa.dataset import random_starts

        cfg, g = self.cfg, self.generator
        tr = self.splits["train"]
        if cfg.chunking == "fixed":
            perm = torch.randperm(len(self.windows[0]), generator=g)
            which_all, starts_all = self.windows[0][perm], self.windows[1][perm]
        else:
            which_all = torch.cat([torch.randperm(tr.n, generator=g) for _ in range(cfg.chunks_per_recording)])
            starts_all = None
        out = []
        for b in range(0, len(which_all), cfg.batch_size):
            which = which_all[b : b + cfg.batch_size]
            if len(which) < 2:  # BatchNorm needs 2 samples; pairs need 2 items
                continue
            if starts_all is None:
                starts = random_starts(tr.lengths[which], cfg.chunk_frames, generator=g)
            else:
                starts = starts_all[b : b + cfg.batch_size]
            out.append((which, starts))
        return out

    def _loss(self, x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        import torch
        import torch.nn.functional as F

        from raympa.losses import contrastive_term, pair_up

        cfg, stage, model = self.cfg, self.stage, self.model
        if stage == "regression":
            return F.mse_loss(model(x), y)
        if stage == "head":
            with torch.no_grad():
                z = model.latent(x)  # (batch, 16), frozen encoder
            return F.mse_loss(model.predict_from_latent(z), y)
        i, j = pair_up(len(y), cfg.pairing, generator=self.generator, device=x.device)
        kw = dict(kind=cfg.contrastive, n_bins=cfg.n_bins, margin=cfg.margin, temperature=cfg.rnc_temperature)
        if stage == "encoder":
            return contrastive_term(model.latent(x), y, i, j, **kw)
        pred, z = model.forward_latent(x)  # joint
        if cfg.pairing == "halves":
            mse = F.mse_loss(pred[i], y[i]) + F.mse_loss(pred[j], y[j])
        else:
            mse = F.mse_loss(pred, y)
        return mse + cfg.jl_lambda * contrastive_term(z, y, i, j, **kw)

    def train_epoch(self) -> float:
        from raympa.dataset import gather_chunks, normalize, pitch_shift

        cfg, tr = self.cfg, self.splits["train"]
        if self.optimizer is None:
            self.optimizer = self._make_optimizer()
        self._set_train_mode()
        total, count = 0.0, 0
        for which, starts in self._batches():
            x = gather_chunks(tr.midi, tr.begin, tr.end, which.to(self.device), starts.to(self.device), cfg.chunk_frames)
            x = normalize(pitch_shift(x, cfg.pitch_shift, generator=self.generator), cfg.pitch_norm)  # (batch, chunk)
            loss = self._loss(x, tr.y[which.to(self.device)])
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"non-finite training loss ({value}) in epoch {self.epoch + 1}, stage {self.stage} "
                    f"(lr={getattr(self.cfg, self.stages[self.stage_index][2])}); lower the learning rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += value * len(which)
            count += len(which)
        return total / max(count, 1)

    # ----------------------------------------------------------------------- evaluation
    def full_length(self, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Predictions (n,) and latents (n, 16) of whole contours (padded to a chunk if shorter)."""
        sp = self.splits[split]
        return forward_full_length(self.model, sp.midi, sp.begin, sp.lengths,
                                   pitch_norm=self.cfg.pitch_norm, min_frames=self.cfg.chunk_frames)

    def chunk_level(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and ratings of all windows (chunk_frames, hop chunk_hop) of a split."""
        import torch

        from raympa.dataset import fixed_windows, gather_chunks, normalize

        sp, cfg = self.splits[split], self.cfg
        which, starts = fixed_windows(sp.lengths_np, cfg.chunk_frames, cfg.chunk_hop)
        which_t, starts_t = torch.from_numpy(which).to(self.device), torch.from_numpy(starts).to(self.device)
        size = max(1, EVAL_FRAME_BUDGET // cfg.chunk_frames)
        preds = []
        self.model.eval()
        with torch.no_grad():
            for b in range(0, len(which), size):
                x = gather_chunks(sp.midi, sp.begin, sp.end, which_t[b : b + size], starts_t[b : b + size],
                                  cfg.chunk_frames)
                preds.append(self.model(normalize(x, cfg.pitch_norm)).cpu())
        pred = torch.cat(preds).numpy() if preds else np.zeros(0, np.float32)
        return pred, sp.y_np[which]

    def val_loss(self, pred: "torch.Tensor", z: "torch.Tensor") -> float:
        """The current stage's loss on full-length validation recordings (all pairs)."""
        import torch.nn.functional as F

        from raympa.losses import contrastive_term, pair_up

        cfg, stage, y = self.cfg, self.stage, self.splits["val"].y
        if stage in ("regression", "head"):
            return float(F.mse_loss(pred, y))
        if len(y) < 2:
            c = 0.0
        else:
            i, j = pair_up(len(y), "all", device=y.device)
            c = float(contrastive_term(z, y, i, j, kind=cfg.contrastive, n_bins=cfg.n_bins,
                                       margin=cfg.margin, temperature=cfg.rnc_temperature))
        if stage == "encoder":
            return c
        return float(F.mse_loss(pred, y)) + cfg.jl_lambda * c

    # ----------------------------------------------------------------------- bookkeeping
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, early-stop; returns the epoch's metrics."""
        t0 = time.perf_counter()
        stage = self.stage
        train_loss = self.train_epoch()
        self.stage_epoch += 1
        self.epoch += 1
        pred, z = self.full_length("val")
        val_loss = self.val_loss(pred, z)
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"non-finite validation loss in epoch {self.epoch} ({stage}); lower the learning rate")
        val_r2 = float("nan") if stage == "encoder" else r2(self.splits["val"].y_np, pred.cpu().numpy())
        if val_loss < self.best_val:
            self.best_val, self.best_stage_epoch, self.best_epoch = val_loss, self.stage_epoch, self.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        metrics = {
            "epoch": self.epoch,
            "stage": stage,
            "stage_epoch": self.stage_epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_r2_full": val_r2,
            "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch,
            "epoch_seconds": time.perf_counter() - t0,
        }
        _, epochs_field, _ = self.stages[self.stage_index]
        if (self.stage_epoch >= getattr(self.cfg, epochs_field)
                or self.stage_epoch - self.best_stage_epoch >= self.cfg.patience):
            self._end_stage()
        self.history.append(metrics)
        return metrics

    def _end_stage(self) -> None:
        assert self.best_state is not None
        self.model.load_state_dict(self.best_state)
        self.stage_best_epochs[self.stage] = self.best_epoch
        self.stage_index += 1
        self.stage_epoch = 0
        self.optimizer = None
        if not self.done:
            self.best_val, self.best_stage_epoch, self.best_state = math.inf, 0, None

    def get_state(self) -> dict[str, Any]:
        """A ``torch.save``-able snapshot that :meth:`load_state` continues exactly."""
        def cpu(sd: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if sd is None else {k: v.detach().cpu().clone() for k, v in sd.items()}

        return {
            "format": STATE_FORMAT,
            "config": self.cfg.to_dict(),
            "stage_index": self.stage_index,
            "stage_epoch": self.stage_epoch,
            "epoch": self.epoch,
            "model": cpu(self.model.state_dict()),
            "optimizer": None if self.optimizer is None else _to_cpu(self.optimizer.state_dict()),
            "best_val": self.best_val,
            "best_stage_epoch": self.best_stage_epoch,
            "best_epoch": self.best_epoch,
            "best_state": cpu(self.best_state),
            "stage_best_epochs": dict(self.stage_best_epochs),
            "generator": self.generator.get_state(),
            "history": [dict(h) for h in self.history],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a raympa training state (format {state.get('format')!r})")
        if state["config"] != self.cfg.to_dict():
            diff = {k: (v, state["config"].get(k)) for k, v in self.cfg.to_dict().items() if state["config"].get(k) != v}
            raise ValueError(f"resume state was made with a different TrainConfig: {diff}")
        self.model.load_state_dict(state["model"])
        self.stage_index, self.stage_epoch, self.epoch = state["stage_index"], state["stage_epoch"], state["epoch"]
        self.best_val, self.best_stage_epoch = state["best_val"], state["best_stage_epoch"]
        self.best_epoch = state["best_epoch"]
        self.best_state = None if state["best_state"] is None else {
            k: v.to(self.device) for k, v in state["best_state"].items()}
        self.stage_best_epochs = dict(state["stage_best_epochs"])
        self.generator.set_state(state["generator"])
        self.history = [dict(h) for h in state["history"]]
        if not self.done:
            if self.stage == "head":
                self._stage_params()  # freeze the encoder again
            if state["optimizer"] is not None:
                self.optimizer = self._make_optimizer()
                self.optimizer.load_state_dict(state["optimizer"])


def _to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (JSON and weights_only checkpoints)."""
    return value.item() if hasattr(value, "item") else value


def make_checkpoint(run: _Run, data: ContourSet, metrics: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint dict: tensors and plain types only (``torch.load(weights_only=True)``)."""
    import raympa

    known = {f.name for f in dataclasses.fields(ExtractConfig)}
    extract = {k: _plain(v) for k, v in data.extract.items() if k in known}
    if extract.get("backend") not in (None, "fast", "librosa"):
        extract.pop("backend")  # e.g. imported pitch tracks: predict extracts with the default
    return {
        "format": CHECKPOINT_FORMAT,
        "raympa_version": raympa.__version__,
        "model": run.cfg.model,
        "criterion": run.cfg.criterion,
        "pitch_norm": run.cfg.pitch_norm,
        "chunk_frames": run.cfg.chunk_frames,
        "min_frames": run.model.min_frames,
        "model_state": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()},
        "train_config": run.cfg.to_dict(),
        "extract_config": ExtractConfig(**extract).key(),
        "contour_source": {k: _plain(v) for k, v in data.extract.items()},
        "metrics": {k: _plain(v) for k, v in metrics.items() if isinstance(_plain(v), (int, float, str))},
    }


def fit(
    cfg: TrainConfig,
    data: ContourSet,
    *,
    band: str | None = None,
    callback: Callback | None = None,
    resume: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
) -> TrainResult:
    """Train and evaluate one model on one criterion.

    Args:
        cfg: the run's configuration (model, criterion, seed, loss, input, optimisation).
        data: contours with ratings and a train/val/test split; recordings without a rating on
            ``cfg.criterion`` are left out.
        band: only recordings of this band (None = all).
        callback: called after every epoch as ``callback(metrics, get_state)``; ``metrics`` has
            epoch, stage, stage_epoch, train_loss, val_loss, val_r2_full (NaN in the encoder
            stage), best_val_loss, best_epoch, epoch_seconds; ``get_state()`` returns a
            ``torch.save``-able dict for ``resume``.
        resume: a ``get_state()`` dict: training continues at the next epoch, exactly as if it
            had not stopped (same config required).
        out_dir: if given, writes metrics.json, config.json, history.csv, checkpoint.pt and
            latents.npz there.

    Raises:
        FloatingPointError: a non-finite training or validation loss.
        ValueError: unusable data or configuration (message says why).
    """
    import torch

    cfg.validate()
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit(cfg, data, band=band, callback=callback, resume=resume, out_dir=out_dir)
    finally:
        torch.set_num_threads(threads)


def _fit(
    cfg: TrainConfig,
    data: ContourSet,
    *,
    band: str | None,
    callback: Callback | None,
    resume: dict[str, Any] | None,
    out_dir: str | Path | None,
) -> TrainResult:
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    run = _Run(cfg, data, device, band=band)
    if resume is not None:
        run.load_state(resume)
    while not run.done:
        metrics = run.run_epoch()
        if callback is not None:
            callback(dict(metrics), run.get_state)

    val_pred, _ = run.full_length("val")
    test_pred, test_z = run.full_length("test")
    val_chunk_pred, val_chunk_y = run.chunk_level("val")
    test_chunk_pred, test_chunk_y = run.chunk_level("test")
    test = run.splits["test"]
    test_pred_np = test_pred.cpu().numpy()
    metrics = {
        "model": cfg.model,
        "criterion": cfg.criterion,
        "seed": cfg.seed,
        "band": band if band is not None else "all",
        "val_r2_full": r2(run.splits["val"].y_np, val_pred.cpu().numpy()),
        "val_r2_chunk": r2(val_chunk_y, val_chunk_pred),
        "test_r2_full": r2(test.y_np, test_pred_np),
        "test_r2_chunk": r2(test_chunk_y, test_chunk_pred),
        "test_mse_full": float(np.mean((np.clip(test_pred_np, 0, 1) - test.y_np) ** 2)) if test.n else float("nan"),
        "epochs_run": run.epoch,
        "best_epoch": run.best_epoch,
        "best_val_loss": run.best_val,
        "n_train": run.splits["train"].n,
        "n_val": run.splits["val"].n,
        "n_test": test.n,
        "n_test_chunks": int(len(test_chunk_y)),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }
    if cfg.model == "contrastive":
        metrics["encoder_best_epoch"] = run.stage_best_epochs.get("encoder", 0)
    from raympa.losses import rating_bins

    latents = {
        "z": test_z.cpu().numpy().astype(np.float32),
        "y": test.y_np.astype(np.float32),
        "bins": np.asarray(rating_bins(test.y_np, cfg.n_bins), dtype=np.int64),
        "recording_id": test.recording_id.astype(str),
        "pred": np.clip(test_pred_np, 0, 1).astype(np.float32),
    }
    result = TrainResult(metrics=metrics, latents=latents, history=run.history,
                         checkpoint=make_checkpoint(run, data, metrics), config=cfg)
    if out_dir is not None:
        used = data.indices(band=band, criterion=cfg.criterion)
        write_run(result, out_dir, data_description={
            "n_recordings": int(len(used)),
            "bands": sorted(set(data.band[used].tolist())),
            "instruments": sorted(set(data.instrument[used].tolist())),
        })
    return result


def write_run(result: TrainResult, out_dir: str | Path, *, data_description: dict[str, Any] | None = None) -> Path:
    """Write metrics.json, config.json, history.csv, checkpoint.pt and latents.npz to ``out_dir``."""
    import pandas as pd
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_json_safe(result.metrics), indent=2) + "\n")
    config = {"train_config": result.config.to_dict(),
              "extract_config": result.checkpoint["extract_config"],
              "contour_source": result.checkpoint["contour_source"]}
    if data_description is not None:
        config["data"] = data_description
    (out / "config.json").write_text(json.dumps(_json_safe(config), indent=2) + "\n")
    pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
    torch.save(result.checkpoint, out / "checkpoint.pt")
    np.savez(out / "latents.npz", **result.latents)
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    obj = _plain(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN / inf
    return obj


# ----------------------------------------------------------------------------- CLI
def load_training_data(ratings: str | Path, contours: str | Path, *, split_seed: int = 0) -> ContourSet:
    """Ratings table + contours folder/file -> ContourSet (``raympa train``'s input)."""
    from raympa.contours import load_contours
    from raympa.ratings import read_ratings

    return ContourSet.from_tables(read_ratings(ratings, split_seed=split_seed), load_contours(contours))


def cli_train(args: "argparse.Namespace") -> int:
    """``raympa train``: one run from the command line; writes the run folder."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig.from_dict({k: v for k, v in vars(args).items() if k in names})
    data = load_training_data(args.ratings, args.contours, split_seed=args.split_seed)
    every = max(1, int(getattr(args, "log_every", 10)))

    def log(m: dict[str, Any], _get_state: Callable[[], dict[str, Any]]) -> None:
        if m["epoch"] == 1 or m["epoch"] % every == 0:
            print(f"epoch {m['epoch']:4d} {m['stage']:10s} train_loss {m['train_loss']:.4f} "
                  f"val_loss {m['val_loss']:.4f} val_r2_full {m['val_r2_full']:.3f}", file=sys.stderr)

    result = fit(cfg, data, band=args.band, callback=log, out_dir=args.out)
    m = result.metrics
    print(f"{cfg.model} {cfg.criterion} seed {cfg.seed}: test R² full {m['test_r2_full']:.3f}, "
          f"chunk {m['test_r2_chunk']:.3f}; val R² full {m['val_r2_full']:.3f}; "
          f"{m['epochs_run']} epochs (best {m['best_epoch']}), {m['seconds']:.0f} s on {m['device']} -> {args.out}")
    return 0
