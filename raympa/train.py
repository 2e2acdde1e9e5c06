"""Training: PCConvNet, two-step ContrastiveCNN, or joint-loss ContrastiveCNN-JL; one run or K at once.

Seshadri & Lerch 2021, sections 3.1 and 4.2, with the original code's choices as options
(docs/divergences.md). Each model is a sequence of stages (:data:`STAGES`):

* ``pcconvnet``: stage ``regression`` trains the whole model on MSE (``epochs``, ``lr``).
* ``contrastive`` (two-step, after Khosla et al. 2020): stage ``encoder`` trains the encoder on
  the contrastive loss (``encoder_epochs``, ``encoder_lr``); stage ``head`` freezes it (no
  gradients, and eval mode so its BatchNorm running statistics stay put) and trains the head on
  MSE (``epochs``, ``lr``).
* ``contrastive-jl``: stage ``joint``, ``MSE(out1, y1) + MSE(out2, y2) + lambda * L_C`` on the two
  halves of the batch (original code's "mixed" loss; the paper writes L = L_MSE + L_C,
  lambda = 1). With ``pairing="all"`` the MSE term is the MSE over the batch.

Every stage uses SGD (momentum 0.9, weight decay 1e-5), early stopping when the validation loss
has not decreased for ``patience`` epochs, and keeps the model of the best validation loss. An
epoch is one pass over the training recordings with ``chunks_per_recording`` random chunks each
(paper: one), or over all fixed windows (``chunking="fixed"``, original code). Validation is on
the full-length validation recordings (the original code's ``vef``); the validation loss is the
stage's loss on them (contrastive terms over all validation pairs). Evaluation
(:mod:`raympa.evaluate`) reports R² of predictions clipped to [0, 1], on full-length recordings
and on windows of ``chunk_frames`` with hop ``chunk_hop``.

:func:`fit` trains one run; :func:`fit_members` trains K runs (the seeds of a configuration, or
configurations differing in :data:`raympa.members.MEMBER_FIELDS`) as one stacked model, each
member computing what its single run computes. A member that stops early waits, frozen, until
every member has finished the stage; then all start the next stage together.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from raympa.config import TrainConfig
from raympa.dataset import ContourSet, DeviceSplit
from raympa.evaluate import evaluate_members, r2, resolve_device  # noqa: F401 (resolve_device is public here too)
from raympa.stages import STAGES, Stage  # noqa: F401 (STAGES is public)
from raympa.members import MemberProgress, member_loss, to_cpu
from raympa.runfolder import TrainResult, save_checkpoint, write_run  # noqa: F401 (public here too)

if TYPE_CHECKING:
    import torch

Callback = Callable[[dict[str, Any], Callable[[], dict[str, Any]]], None]
MembersCallback = Callable[[list["dict[str, Any] | None"], Callable[[], dict[str, Any]]], None]


STATE_FORMAT = "raympa.train-state/2"
AT_END_FRACTION = 0.05  # ours: a best epoch in the last 5% of a stage's epochs is flagged (still improving)


def _draw(trainer: "Trainer", plans: list[Any], step: int) -> tuple[Any, ...]:
    """Member batches of one step: which, starts (batch, K), shift (batch, K, 1), pairs (pairs, K), frames."""
    import torch

    from raympa.losses import pair_up

    stage, n_train = trainer.stage, trainer.splits["train"].n
    first = next(p for p in plans if p is not None)[step]
    size = len(first.which)
    parts: list[list[Any]] = [[], [], [], [], []]
    for m, plan in zip(trainer.members, plans):
        shift = torch.zeros(size, 1)
        if plan is None:  # frozen: any batch of the right shape, no draw from its generator
            which, starts = torch.arange(size) % n_train, torch.zeros(size, dtype=torch.int64)
            pairs = pair_up(size, "all") if m.cfg.pairing == "all" else (
                torch.arange(size // 2), torch.arange(size // 2, 2 * (size // 2)))
        else:
            which, starts = plan[step].which, plan[step].starts
            if m.cfg.pitch_shift > 0:  # as raympa.dataset.pitch_shift
                u = torch.rand((size, 1), generator=m.generator, dtype=torch.float32)
                shift = (u * 2 - 1) * m.cfg.pitch_shift
            pairs = pair_up(size, m.cfg.pairing, generator=m.generator)
        if not stage.pairs:
            pairs = (None, None)
        for lst, t in zip(parts, (which, starts, shift, *pairs)):
            lst.append(t)
    out = [None if p[0] is None else torch.stack(p, dim=1).to(trainer.device) for p in parts]
    return (*out, first.n_frames)


class Trainer:
    """K members (K >= 1) trained as one stacked model: stages, steps, validation, early stopping.

    Member k's slice of every model tensor is its own network (``raympa.members``); ``best``
    holds each member's best state in the same layout. A member that stops (or fails) is frozen:
    its slots are restored from ``best`` after every step and its generator is not drawn from.
    """

    def __init__(self, cfgs: Sequence[TrainConfig], data: ContourSet, device: "torch.device", *,
                 band: str | None = None) -> None:
        import torch

        from raympa.losses import LossParams
        from raympa.members import stack_members
        from raympa.models import build_model

        self.cfgs, self.k, self.device, self.band = list(cfgs), len(cfgs), device, band
        cfg = self.cfgs[0]
        with warnings.catch_warnings():  # arrays from Ray's object store are read-only; never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            midi = torch.from_numpy(data.midi).to(device)  # (total_frames,) zero-copy on the CPU
        self.splits = {s: DeviceSplit(data, data.indices(band=band, split=s, criterion=cfg.criterion),
                                      cfg.criterion, midi) for s in ("train", "val", "test")}
        if self.splits["train"].n < 2:
            raise ValueError(f"need at least 2 training recordings rated on {cfg.criterion}, "
                             f"have {self.splits['train'].n}")
        if self.splits["val"].n < 1:
            raise ValueError("no validation recordings: early stopping and model selection need a 'val' split")
        if self.splits["test"].n < 2:
            warnings.warn(f"{self.splits['test'].n} test recordings: test metrics will be NaN", stacklevel=3)
        singles = []
        for c in self.cfgs:  # each member's initial weights: its single run's
            seed_everything(c.seed)
            singles.append(build_model(c.model))
        model = singles[0] if self.k == 1 else stack_members(cfg.model, [m.state_dict() for m in singles])
        self.model = model.to(device)
        if cfg.chunk_frames < self.model.min_frames:
            raise ValueError(f"chunk_frames={cfg.chunk_frames} is shorter than {cfg.model}'s "
                             f"minimum input of {self.model.min_frames} frames")
        self.live = self.model.state_dict()  # views of the model's tensors
        self.members = [MemberProgress(c, torch.Generator().manual_seed(c.seed)) for c in self.cfgs]
        self.stages = STAGES[cfg.model]
        self.stage_index = 0
        self.optimizer: Any = None
        self.best: dict[str, torch.Tensor] | None = None
        self.params = LossParams.from_configs(self.cfgs)

    @property
    def done(self) -> bool:
        return self.stage_index >= len(self.stages) or all(m.error for m in self.members)

    @property
    def stage(self) -> Stage:
        return self.stages[self.stage_index]

    def _start_stage(self) -> None:
        from raympa.members import MemberSGD

        stage, cfg = self.stage, self.cfgs[0]
        for p in self.model.encoder.parameters():
            p.requires_grad_(not stage.frozen_encoder)
        part = self.model if stage.trains == "all" else getattr(self.model, stage.trains)
        self.optimizer = MemberSGD(list(part.parameters()), [getattr(c, stage.lr_field) for c in self.cfgs],
                                   members=self.k, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        if self.best is None:
            self.best = {k: v.detach().clone() for k, v in self.live.items()}

    def _restore(self, members: list[int]) -> None:
        """Members' slots of the model := their best state."""
        import torch

        from raympa.members import copy_slots

        if members:
            copy_slots(self.live, self.best, torch.tensor(members, device=self.device), self.k)

    def train_epoch(self) -> list[float]:
        """One epoch of every active member; their mean training losses (NaN for the others)."""
        import torch

        from raympa.dataset import normalize
        from raympa.sampling import epoch_batches

        if self.optimizer is None:
            self._start_stage()
        self.model.train()
        if self.stage.frozen_encoder:
            self.model.encoder.eval()  # frozen: BatchNorm running statistics must not move
        cfg, tr, k, stage = self.cfgs[0], self.splits["train"], self.k, self.stage
        plans = [epoch_batches(tr.lengths_np, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames,
                               chunk_hop=cfg.chunk_hop, chunks_per_recording=cfg.chunks_per_recording,
                               batch_size=cfg.batch_size, min_steps=cfg.min_steps_per_epoch,
                               generator=m.generator) if m.active else None for m in self.members]
        total, count = [0.0] * k, [0] * k
        shifting = any(c.pitch_shift > 0 for c in self.cfgs)
        for step in range(min((len(p) for p in plans if p is not None), default=0)):
            which, starts, shift, i, j, frames = _draw(self, plans, step)  # which, starts: (batch, K)
            x = tr.chunks(which.reshape(-1), starts.reshape(-1), frames)  # (batch * K, [2,] frames)
            x = x.view(-1, k, *x.shape[1:])  # (batch, K, [2,] frames)
            if shifting:  # every channel by the member's shift (a reference keeps its interval)
                x = torch.where(x > 0, x + shift.view(*shift.shape[:2], *([1] * (x.dim() - 2))), x)
            pred, z = stage.forward(self.model, normalize(x, cfg.pitch_norm))
            losses = member_loss(stage.loss, self.params, pred=pred, z=z, y=tr.y[which], i=i, j=j)  # (K,)
            values = losses.detach().cpu().tolist()
            live = []
            for n, m in enumerate(self.members):
                if m.active and not math.isfinite(values[n]):
                    lr = getattr(m.cfg, stage.lr_field)
                    self._fail(n, restore=False, message=f"non-finite training loss ({values[n]}) in epoch "
                               f"{m.epoch + 1}, stage {stage.name} (lr={lr}); lower the learning rate")
                elif m.active:
                    live.append(n)
                    total[n] += values[n] * which.shape[0]
                    count[n] += which.shape[0]
            if not live:
                self._restore([n for n, m in enumerate(self.members) if not m.active])
                break
            self.optimizer.zero_grad()
            (losses[live].sum() if k > 1 else losses[0]).backward()
            self.optimizer.step()
            self._restore([n for n, m in enumerate(self.members) if not m.active])
        return [t / c if c else math.nan for t, c in zip(total, count)]

    def _fail(self, k: int, *, message: str, restore: bool = True) -> None:
        """Member k stops for good (its slots restored now, or after the step under way)."""
        m = self.members[k]
        m.error, m.active = message, False
        if restore:
            self._restore([k])

    def full_length(self, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Predictions (n, K) and latents (n, K, 16) of whole contours (padded to a chunk if shorter)."""
        from raympa.evaluate import forward_full_length

        sp = self.splits[split]
        pred, z = forward_full_length(self.model, sp.midi, sp.begin, sp.lengths, pitch_norm=self.cfgs[0].pitch_norm,
                                      min_frames=self.cfgs[0].chunk_frames, reference=sp.reference)
        return (pred[:, None], z[:, None]) if pred.dim() == 1 else (pred, z)

    def chunk_level(self, split: str, protocol: str) -> tuple[np.ndarray, ...]:
        """Predictions (windows, K), latents (windows, K, 16), ratings and contour index (windows,)
        of the windows a chunk-level protocol scores (``raympa.sampling.WINDOW_SETS``)."""
        from raympa.evaluate import forward_windows
        from raympa.sampling import eval_windows

        sp, parts = self.splits[split], []
        for which, starts, frames in eval_windows(sp.lengths_np, protocol):
            pred, z = forward_windows(self.model, sp.midi, sp.begin, sp.end, which, starts, frames,
                                      pitch_norm=self.cfgs[0].pitch_norm, reference=sp.reference)
            parts.append((pred.reshape(len(which), self.k), z.reshape(len(which), self.k, -1), which))
        pred, z, which = (np.concatenate([p[n] for p in parts]) for n in range(3))
        return pred, z, sp.y_np[which], which

    def val_loss(self, pred: "torch.Tensor", z: "torch.Tensor") -> "torch.Tensor":
        """The stage's loss on the full-length validation recordings, all pairs, (K,)."""
        import torch

        from raympa.losses import pair_up

        y = self.splits["val"].y[:, None].expand(-1, self.k)  # (n, K)
        kind = self.stage.loss
        if len(y) < 2 and kind != "mse":  # no pair: the contrastive term is 0
            if kind == "contrastive":
                return torch.zeros(self.k)
            kind = "mse"
        i, j = pair_up(len(y), "all", device=y.device) if len(y) >= 2 else (None, None)
        return member_loss(kind, self.params, pred=pred, z=z, y=y, i=i, j=j)

    def run_epoch(self) -> list[dict[str, Any] | None]:
        """Train one epoch, validate, early-stop; each member's epoch metrics (None: did not train)."""
        import torch

        from raympa.members import copy_slots

        t0 = time.perf_counter()
        stage, was_active = self.stage, [m.active for m in self.members]
        train_loss = self.train_epoch()
        pred, z = self.full_length("val")
        val = self.splits["val"]
        val_loss = self.val_loss(pred, z).double().cpu().tolist()
        out: list[dict[str, Any] | None] = []
        for k, m in enumerate(self.members):
            if not (was_active[k] and m.active):
                out.append(None)
                continue
            m.stage_epoch += 1
            m.epoch += 1
            if not math.isfinite(val_loss[k]):
                self._fail(k, message=f"non-finite validation loss in epoch {m.epoch} ({stage.name}); "
                                      "lower the learning rate")
                out.append(None)
                continue
            if val_loss[k] < m.best_val:
                m.best_val, m.best_stage_epoch, m.best_epoch = val_loss[k], m.stage_epoch, m.epoch
                copy_slots(self.best, self.live, torch.tensor([k], device=self.device), self.k)
            out.append({
                "epoch": m.epoch, "stage": stage.name, "stage_epoch": m.stage_epoch,
                "train_loss": train_loss[k], "val_loss": val_loss[k],
                "val_r2_full": r2(val.y_np, pred[:, k].cpu().numpy()) if stage.predicts else float("nan"),
                "best_val_loss": m.best_val, "best_epoch": m.best_epoch,
                "epoch_seconds": time.perf_counter() - t0,
            })
            m.history.append(out[-1])
            if (m.stage_epoch >= getattr(m.cfg, stage.epochs_field)
                    or m.stage_epoch - m.best_stage_epoch >= m.cfg.patience):
                m.active = False
                m.stage_best_epochs[stage.name] = m.best_epoch
                m.stage_at_end[stage.name] = m.best_stage_epoch > (1 - AT_END_FRACTION) * m.stage_epoch
                self._restore([k])
        if not any(m.active for m in self.members):
            self._end_stage()
        return out

    def _end_stage(self) -> None:
        """Every member has finished the stage: all start the next one (failed members stay out)."""
        self.stage_index += 1
        self.optimizer, self.best = None, None
        for m in self.members:
            if m.error is None:
                m.stage_epoch, m.active = 0, True
                if not self.done:
                    m.best_val, m.best_stage_epoch = math.inf, 0

    def get_state(self) -> dict[str, Any]:
        """A ``torch.save``-able snapshot of every member that :meth:`load_state` continues exactly."""
        return {
            "format": STATE_FORMAT,
            "configs": [c.to_dict() for c in self.cfgs],
            "stage_index": self.stage_index,
            "model": to_cpu(self.live),
            "optimizer": None if self.optimizer is None else to_cpu(self.optimizer.state_dict()),
            "best": None if self.best is None else to_cpu(self.best),
            "members": [m.state() for m in self.members],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a raympa training state (format {state.get('format')!r})")
        if len(state["configs"]) != self.k or any(s != c.to_dict() for s, c in zip(state["configs"], self.cfgs)):
            diff = [{f: (v, s.get(f)) for f, v in c.to_dict().items() if s.get(f) != v}
                    for s, c in zip(state["configs"], self.cfgs)]
            raise ValueError(f"resume state was made with a different TrainConfig: {diff}")
        self.model.load_state_dict(state["model"])
        self.stage_index = state["stage_index"]
        self.best = None if state["best"] is None else {k: v.to(self.device) for k, v in state["best"].items()}
        for m, s in zip(self.members, state["members"]):
            m.load(s)
        if not self.done and state["optimizer"] is not None:
            self._start_stage()
            self.optimizer.load_state_dict(state["optimizer"])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (and make cuDNN deterministic)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


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
    def each(metrics: list[dict[str, Any] | None], get_state: Callable[[], dict[str, Any]]) -> None:
        if metrics[0] is not None and callback is not None:
            callback(metrics[0], get_state)

    result = fit_members([cfg], data, band=band, callback=each, resume=resume,
                         out_dirs=None if out_dir is None else [out_dir])[0]
    if isinstance(result, BaseException):
        raise result
    return result


def fit_members(
    cfgs: Sequence[TrainConfig],
    data: ContourSet,
    *,
    band: str | None = None,
    callback: MembersCallback | None = None,
    resume: dict[str, Any] | None = None,
    out_dirs: Sequence[str | Path] | None = None,
) -> list[TrainResult | FloatingPointError]:
    """Train K members at once; member k's result is what ``fit(cfgs[k], data)`` gives.

    Args:
        cfgs: one configuration per member, equal but for ``raympa.members.MEMBER_FIELDS``
            (typically the seeds of one configuration).
        data, band: as :func:`fit`.
        callback: called after every epoch as ``callback(metrics, get_state)``; ``metrics[k]``
            is member k's epoch metrics (the keys of :func:`fit`'s), or None when member k did
            not train this epoch (stopped early and waiting for the others, or failed);
            ``get_state()`` covers every member.
        resume: a ``get_state()`` dict of the same members.
        out_dirs: one run folder per member (as :func:`fit`'s ``out_dir``), or None.

    Returns:
        One entry per member: its TrainResult, or the FloatingPointError that stopped it (a
        non-finite loss); the other members go on.

    Raises:
        ValueError: unusable data, configurations that cannot train together, a device torch
            does not have.
    """
    import torch

    from raympa.members import check_members
    for c in cfgs:
        c.validate()
    check_members(cfgs)
    if out_dirs is not None and len(out_dirs) != len(cfgs):
        raise ValueError(f"{len(out_dirs)} out_dirs for {len(cfgs)} members")
    threads = torch.get_num_threads()
    if cfgs[0].threads > 0:
        torch.set_num_threads(cfgs[0].threads)
    try:
        t0 = time.perf_counter()
        trainer = Trainer(cfgs, data, resolve_device(cfgs[0].device), band=band)
        if resume is not None:
            trainer.load_state(resume)
        while not trainer.done:
            metrics = trainer.run_epoch()
            if callback is not None:
                callback([None if m is None else dict(m) for m in metrics], trainer.get_state)
        results = evaluate_members(trainer, data, seconds=time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    for r, d in zip(results, out_dirs or []):
        if not isinstance(r, BaseException):
            write_run(r, d)
    return results


def load_training_data(ratings: str | Path, contours: str | Path, *, split_seed: int = 0) -> ContourSet:
    """Ratings table + contours folder/file -> ContourSet (``raympa train``'s input)."""
    from raympa.contours import load_contours
    from raympa.ratings import read_ratings

    return ContourSet.from_tables(read_ratings(ratings, split_seed=split_seed), load_contours(contours))
