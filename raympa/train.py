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
has not decreased (by more than ``min_delta``, relative; :func:`improves`) for ``patience`` epochs,
and keeps the model of the best validation loss. The two-step head reads the embedding standardised
with the training recordings' mean and sd (``head_norm``, ours; :class:`raympa.models.HeadScaler`). An
epoch is one pass over the training recordings with ``chunks_per_recording`` random chunks each
(paper: one), or over all fixed windows (``chunking="fixed"``, original code). Validation is on
the full-length validation recordings (the original code's ``vef``); the validation loss is the
stage's loss on them (contrastive terms over all validation pairs). Evaluation
(:mod:`raympa.evaluate`) reports R² of predictions clipped to [0, 1], on full-length recordings
and on windows of ``chunk_frames`` with hop ``chunk_hop``.

:func:`fit` trains one run; :func:`fit_members` trains K runs (the seeds of a configuration, or
configurations differing in :data:`raympa.members.MEMBER_FIELDS`) as one stacked model, each
member computing what its single run computes. When members stop (early stopping, a non-finite
loss), the stacked model shrinks to the running ones (parameters, BatchNorm statistics, momentum
and learning rates sliced), so a stopped member costs nothing while the others go on; when every
member has finished a stage, all that have not failed start the next one together.
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
from raympa.members import MemberProgress, improves, member_loss, to_cpu  # noqa: F401 (improves is public here too)
from raympa.runfolder import TrainResult, save_checkpoint, write_run  # noqa: F401 (public here too)

if TYPE_CHECKING:
    import torch

Callback = Callable[[dict[str, Any], Callable[[], dict[str, Any]]], None]
MembersCallback = Callable[[list["dict[str, Any] | None"], Callable[[], dict[str, Any]]], None]


STATE_FORMAT = "raympa.train-state/4"
AT_END_FRACTION = 0.05  # ours: a best epoch in the last 5% of a stage's epochs is flagged (still improving)


def _draw(trainer: "Trainer", batches: list[Any]) -> tuple[Any, ...]:
    """Running members' batches of one step: which, starts (batch, n), shift (batch, n, 1), pairs (pairs, n), frames."""
    import torch

    from raympa.losses import pair_up

    size = len(batches[0].which)
    parts: list[list[Any]] = [[], [], [], [], []]
    for k, batch in zip(trainer.slots, batches):
        m = trainer.members[k]
        shift = torch.zeros(size, 1)
        if m.cfg.pitch_shift > 0:  # as raympa.dataset.pitch_shift
            u = torch.rand((size, 1), generator=m.generator, dtype=torch.float32)
            shift = (u * 2 - 1) * m.cfg.pitch_shift
        pairs = pair_up(size, m.cfg.pairing, generator=m.generator)
        if not trainer.stage.pairs:
            pairs = (None, None)
        for lst, t in zip(parts, (batch.which, batch.starts, shift, *pairs)):
            lst.append(t)
    out = [None if p[0] is None else torch.stack(p, dim=1).to(trainer.device) for p in parts]
    return (*out, batches[0].n_frames)


def _splits(data: ContourSet, criterion: str, device: "torch.device", *, band: str | None) -> dict[str, DeviceSplit]:
    """The train, val and test recordings rated on ``criterion`` on the device (ValueError if unusable)."""
    import torch

    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        midi = torch.from_numpy(data.midi).to(device)  # (total_frames,) zero-copy on the CPU
    splits = {s: DeviceSplit(data, data.indices(band=band, split=s, criterion=criterion), criterion, midi)
              for s in ("train", "val", "test")}
    if splits["train"].n < 2:
        raise ValueError(f"need at least 2 training recordings rated on {criterion}, have {splits['train'].n}")
    if splits["val"].n < 1:
        raise ValueError("no validation recordings: early stopping and model selection need a 'val' split")
    if splits["test"].n < 2:
        warnings.warn(f"{splits['test'].n} test recordings: test metrics will be NaN", stacklevel=4)
    return splits


def _initial_model(cfg: TrainConfig, data: ContourSet, train: np.ndarray) -> "torch.nn.Module":
    """A run's model before its first stage: its seeded initial weights; a reference-informed model then
    starts at the linear model on the training recordings' alignment features (raympa.informed)."""
    from raympa.informed import needs_reference
    from raympa.models import build_model

    model = build_model(cfg.model)
    if needs_reference(cfg.model):
        model.warm_start(None if data.side is None else data.side[train], data.ratings[cfg.criterion][train])
    return model


class Trainer:
    """K members (K >= 1) trained as one stacked model: stages, steps, validation, early stopping.

    The model holds the running members only: ``slots[s]`` is the member in its slot s (its
    slice of every model tensor, ``raympa.members``). ``best`` holds every member's best state
    (all K, in member order); a member that stops (or fails) leaves the model (:meth:`_regroup`),
    its best state stays in ``best``, and it comes back from there for the next stage.
    """

    def __init__(self, cfgs: Sequence[TrainConfig], data: ContourSet, device: "torch.device", *,
                 band: str | None = None) -> None:
        import torch

        from raympa.members import stack_members

        self.cfgs, self.k, self.device, self.band = list(cfgs), len(cfgs), device, band
        cfg = self.cfgs[0]
        self.splits = _splits(data, cfg.criterion, device, band=band)
        singles = []
        train = data.indices(band=band, split="train", criterion=cfg.criterion)
        for c in self.cfgs:  # each member's initial weights: its single run's
            seed_everything(c.seed)
            singles.append(_initial_model(c, data, train))
        model = singles[0] if self.k == 1 else stack_members(cfg.model, [m.state_dict() for m in singles])
        self.model = model.to(device)
        if cfg.chunk_frames < self.model.min_frames:
            raise ValueError(f"chunk_frames={cfg.chunk_frames} is shorter than {cfg.model}'s "
                             f"minimum input of {self.model.min_frames} frames")
        self._install(self.model, list(range(self.k)))
        self.members = [MemberProgress(c, torch.Generator().manual_seed(c.seed)) for c in self.cfgs]
        self.stages = STAGES[cfg.model]
        self.stage_index = 0
        self.optimizer: Any = None
        self.best: dict[str, torch.Tensor] | None = None  # every member's best state, (K, ...) layout

    def _install(self, model: "torch.nn.Module", slots: list[int]) -> None:
        """Train ``model``, whose slot s holds member ``slots[s]``."""
        from raympa.losses import LossParams

        self.model, self.slots = model, slots
        self.live = model.state_dict()  # views of the model's tensors
        self.params = LossParams.from_configs([self.cfgs[k] for k in slots])

    def _regroup(self, members: list[int]) -> None:
        """The model := these members, running ones as they are, stopped ones at their best state.

        Every state tensor holds the members back to back along its first axis, and so does each
        momentum buffer: both are sliced, so each member goes on computing what it computed.
        """
        from raympa.members import restack

        n, old = len(self.slots), self.slots
        model = restack(self.cfgs[0].model, [(self.live, n, old.index(k)) if self.members[k].active
                                             else (self.best, self.k, k) for k in members], self.device)
        for new, was in zip(model.modules(), self.model.modules()):
            new.training = was.training
        momentum = None if self.optimizer is None else self.optimizer.momentum_buffers()
        self._install(model, list(members))
        if momentum is not None:  # within a stage: every member is a running one
            self._start_stage()
            index = [old.index(k) for k in members]
            self.optimizer.set_momentum_buffers([None if b is None else b.reshape(n, -1)[index].reshape(p.shape)
                                                 for b, p in zip(momentum, self.optimizer.params)])

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
        lrs = [getattr(self.cfgs[k], stage.lr_field) for k in self.slots]
        self.optimizer = MemberSGD(list(part.parameters()), lrs, members=len(self.slots), momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        if self.best is None:
            self.best = {k: v.detach().clone() for k, v in self.live.items()}

    def train_epoch(self) -> list[float]:
        """One epoch of every running member; each member's mean training loss (NaN for the others)."""
        import torch

        from raympa.dataset import normalize
        from raympa.sampling import epoch_batches

        if self.optimizer is None:
            self._start_stage()
            self.stage.begin(self.model, self.splits["train"], self.cfgs[0])  # once, at the stage's first epoch
        self.model.train()
        if self.stage.frozen_encoder:
            self.model.encoder.eval()  # frozen: BatchNorm running statistics must not move
        cfg, tr, stage = self.cfgs[0], self.splits["train"], self.stage
        plans = {k: epoch_batches(tr.lengths_np, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames,
                                  chunk_hop=cfg.chunk_hop, chunks_per_recording=cfg.chunks_per_recording,
                                  batch_size=cfg.batch_size, min_steps=cfg.min_steps_per_epoch,
                                  generator=self.members[k].generator) for k in self.slots}
        total, count = [0.0] * self.k, [0] * self.k
        shifting = any(c.pitch_shift > 0 for c in self.cfgs)
        for step in range(min(len(p) for p in plans.values())):
            n = len(self.slots)
            which, starts, shift, i, j, frames = _draw(self, [plans[k][step] for k in self.slots])  # (batch, n)
            x = tr.chunks(which.reshape(-1), starts.reshape(-1), frames)  # (batch * n, [2,] frames)
            x = x.view(-1, n, *x.shape[1:])  # (batch, n, [2,] frames)
            if shifting:  # every channel by the member's shift (a reference keeps its interval)
                x = torch.where(x > 0, x + shift.view(*shift.shape[:2], *([1] * (x.dim() - 2))), x)
            pred, z = stage.forward(self.model, normalize(x, cfg.pitch_norm))
            losses = member_loss(stage.loss, self.params, pred=pred, z=z, y=tr.y[which], i=i, j=j)  # (n,)
            values = losses.detach().cpu().tolist()
            live = [s for s, v in enumerate(values) if math.isfinite(v)]
            for s, k in enumerate(self.slots):
                m = self.members[k]
                if s in live:
                    total[k] += values[s] * which.shape[0]
                    count[k] += which.shape[0]
                else:
                    lr = getattr(m.cfg, stage.lr_field)
                    m.error, m.active = (f"non-finite training loss ({values[s]}) in epoch {m.epoch + 1}, stage "
                                         f"{stage.name} (lr={lr}); lower the learning rate"), False
            if not live:
                break
            self.optimizer.zero_grad()
            (losses[live].sum() if n > 1 else losses[0]).backward()
            self.optimizer.step()
            if len(live) < n:  # the failed members leave the model
                self._regroup([self.slots[s] for s in live])
        return [t / c if c else math.nan for t, c in zip(total, count)]

    def full_length(self, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Predictions (n, slots) and latents (n, slots, 16) of whole contours (padded to a chunk if shorter)."""
        from raympa.evaluate import forward_full_length

        sp = self.splits[split]
        pred, z = forward_full_length(self.model, sp.midi, sp.begin, sp.lengths, pitch_norm=self.cfgs[0].pitch_norm,
                                      min_frames=self.cfgs[0].chunk_frames, reference=sp.reference)
        return (pred[:, None], z[:, None]) if pred.dim() == 1 else (pred, z)

    def val_loss(self, pred: "torch.Tensor", z: "torch.Tensor") -> "torch.Tensor":
        """The stage's loss on the full-length validation recordings, all pairs, one per slot."""
        import torch

        from raympa.losses import pair_up

        y = self.splits["val"].y[:, None].expand(-1, len(self.slots))  # (recordings, slots)
        kind = self.stage.loss
        if len(y) < 2 and kind != "mse":  # no pair: the contrastive term is 0
            if kind == "contrastive":
                return torch.zeros(len(self.slots))
            kind = "mse"
        i, j = pair_up(len(y), "all", device=y.device) if len(y) >= 2 else (None, None)
        return member_loss(kind, self.params, pred=pred, z=z, y=y, i=i, j=j)

    def run_epoch(self) -> list[dict[str, Any] | None]:
        """Train one epoch, validate, early-stop; each member's epoch metrics (None: did not train)."""
        from raympa.members import copy_member

        t0 = time.perf_counter()
        stage = self.stage
        train_loss = self.train_epoch()
        pred, z = self.full_length("val")  # (recordings, slots)
        val = self.splits["val"]
        val_loss = self.val_loss(pred, z).double().cpu().tolist()
        out: list[dict[str, Any] | None] = [None] * self.k
        for s, k in enumerate(self.slots):
            m = self.members[k]
            if not m.active:  # failed in this epoch
                continue
            m.stage_epoch += 1
            m.epoch += 1
            if not math.isfinite(val_loss[s]):
                m.error, m.active = (f"non-finite validation loss in epoch {m.epoch} ({stage.name}); "
                                     "lower the learning rate"), False
                continue
            if improves(val_loss[s], m.best_val, min_delta=m.cfg.min_delta):
                m.best_val, m.best_stage_epoch, m.best_epoch = val_loss[s], m.stage_epoch, m.epoch
                copy_member(self.best, self.k, k, self.live, len(self.slots), s)
            out[k] = {
                "epoch": m.epoch, "stage": stage.name, "stage_epoch": m.stage_epoch,
                "train_loss": train_loss[k], "val_loss": val_loss[s],
                "val_r2_full": r2(val.y_np, pred[:, s].cpu().numpy()) if stage.predicts else float("nan"),
                "best_val_loss": m.best_val, "best_epoch": m.best_epoch,
                "epoch_seconds": time.perf_counter() - t0,
            }
            m.history.append(out[k])
            if (m.stage_epoch >= getattr(m.cfg, stage.epochs_field)
                    or m.stage_epoch - m.best_stage_epoch >= m.cfg.patience):
                m.stop(stage.name, at_end_fraction=AT_END_FRACTION)
        running = [k for k in self.slots if self.members[k].active]
        if not running:
            self._end_stage()
        elif len(running) < len(self.slots):  # the stopped members leave the model
            self._regroup(running)
        return out

    def _end_stage(self) -> None:
        """Every member has finished the stage: all that have not failed start the next one, at their best state."""
        self.stage_index += 1
        self.optimizer = None
        keep = [k for k, m in enumerate(self.members) if m.error is None]
        if keep:
            self._regroup(keep)  # every member is stopped: each comes from its best state
        for k in keep:
            m = self.members[k]
            m.stage_epoch, m.active = 0, True
            if not self.done:
                m.best_val, m.best_stage_epoch = math.inf, 0

    def get_state(self) -> dict[str, Any]:
        """A ``torch.save``-able snapshot of every member that :meth:`load_state` continues exactly."""
        return {
            "format": STATE_FORMAT,
            "configs": [c.to_dict() for c in self.cfgs],
            "stage_index": self.stage_index,
            "slots": list(self.slots),
            "model": to_cpu(self.live),  # the members in the model's slots
            "optimizer": None if self.optimizer is None else to_cpu(self.optimizer.state_dict()),
            "best": None if self.best is None else to_cpu(self.best),
            "members": [m.state() for m in self.members],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        from raympa.members import restack

        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a training state this raympa resumes (format {state.get('format')!r}, expected "
                             f"{STATE_FORMAT!r}: states of other versions do not carry over); start the run anew")
        if len(state["configs"]) != self.k or any(s != c.to_dict() for s, c in zip(state["configs"], self.cfgs)):
            diff = [{f: (v, s.get(f)) for f, v in c.to_dict().items() if s.get(f) != v}
                    for s, c in zip(state["configs"], self.cfgs)]
            raise ValueError(f"resume state was made with a different TrainConfig: {diff}")
        n = len(state["slots"])
        self._install(restack(self.cfgs[0].model, [(state["model"], n, s) for s in range(n)], self.device),
                      list(state["slots"]))
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
