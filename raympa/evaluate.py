"""Evaluation: R², full-length and chunk-level forward passes (used by training and prediction).

* :func:`resolve_device`: ``"auto"`` -> CUDA when torch sees a GPU, else the CPU.
* :func:`r2`: scikit-learn's R² of predictions clipped to [0, 1], the rating scale (Seshadri &
  Lerch 2021, Eq. 4).
* :func:`forward_full_length`: whole contours through the fully convolutional model, batched by
  length; the masked time means make a batch equal to running each contour alone.
* :func:`forward_windows`: windows of a fixed length (the chunk-level evaluation; which windows
  each protocol scores is :func:`raympa.sampling.eval_windows`), each labelled with its
  recording's rating by the caller;
* :func:`chunk_level`: a trainer's members on the windows of a chunk-level protocol;
* :func:`evaluate_members`: the final metrics, latents and checkpoint of each trained member.

The passes work on a single model and on a model of K stacked members (:mod:`raympa.models`):
outputs then carry a member axis, ``(n, K)`` and ``(n, K, 16)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from raympa.config import TrainConfig
    from raympa.dataset import ContourSet
    from raympa.runfolder import TrainResult
    from raympa.train import Trainer

EVAL_FRAME_BUDGET = 1 << 21  # ours: frames per evaluation batch and member (about 8 MB of input for one member)


def _frame_budget(model: "torch.nn.Module") -> int:
    """Input frames per evaluation batch: the budget shared by the model's members (K members' layers are K times larger)."""
    return max(1, EVAL_FRAME_BUDGET // getattr(model, "members", 1))


def resolve_device(name: str) -> "torch.device":
    """``"auto"`` -> CUDA when torch sees a GPU, else CPU; other names as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but this torch ({torch.__version__}) sees no CUDA device; "
                         "use device 'auto' or 'cpu', or install a CUDA build of torch on this node")
    return dev


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
    reference: "torch.Tensor | None" = None,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Whole contours through the fully convolutional model, in eval mode, batched by length.

    A contour shorter than ``max(min_frames, model.min_frames)`` is zero-padded (unvoiced) to it,
    as training pads short chunks. Contours are sorted by length and batched up to
    ``EVAL_FRAME_BUDGET`` frames (shared by a stacked model's members); the masked time means
    make the result equal to running each contour alone.

    Args:
        model: a model of :mod:`raympa.models` (single or stacked members).
        midi: (total_frames,) flat MIDI contours on the model's device.
        begin: (n,) int64 first frame of each contour in ``midi``, on the same device.
        lengths: (n,) int64 contour lengths on the CPU.
        pitch_norm: ``TrainConfig.pitch_norm``.
        min_frames: pad shorter contours to this many frames (the training chunk length).
        reference: (total_frames,) aligned reference MIDI with ``midi``'s offsets (a second input
            channel), or None.

    Returns:
        Predictions (n,) or (n, K) (not clipped) and latents (n, 16) or (n, K, 16), on the device.
    """
    import torch

    from raympa.dataset import gather_inputs, normalize

    n, device = len(lengths), midi.device
    end = begin + lengths.to(device)  # (n,)
    eff = lengths.clamp(min=max(min_frames, model.min_frames))  # (n,)
    order = torch.argsort(eff)
    preds, latents, rows = [], [], []
    budget = _frame_budget(model)
    model.eval()
    with torch.no_grad():
        b = 0
        while b < n:
            size = max(1, budget // int(eff[order[b]]))
            idx = order[b : b + size]
            longest = int(eff[idx].max())
            if len(idx) * longest > budget and len(idx) > 1:  # lengths grow in the batch
                size = max(1, budget // longest)
                idx = order[b : b + size]
                longest = int(eff[idx].max())
            which = idx.to(device)
            x = gather_inputs(midi, reference, begin, end, which, torch.zeros_like(which), longest)  # (batch, [2,] longest)
            p, z = model.forward_latent(normalize(x, pitch_norm), eff[idx].to(device))
            preds.append(p)
            latents.append(z)
            rows.append(which)
            b += len(idx)
    if not rows:
        k = getattr(model, "members", 1)
        shape = () if k == 1 else (k,)
        return torch.zeros((0, *shape), device=device), torch.zeros((0, *shape, model.latent_dim), device=device)
    where = torch.cat(rows)
    pred = torch.empty_like(torch.cat(preds))
    z = torch.empty_like(torch.cat(latents))
    pred[where], z[where] = torch.cat(preds), torch.cat(latents)
    return pred, z


def forward_windows(
    model: "torch.nn.Module",
    midi: "torch.Tensor",
    begin: "torch.Tensor",
    end: "torch.Tensor",
    which: np.ndarray,
    starts: np.ndarray,
    n_frames: int,
    *,
    pitch_norm: str,
    reference: "torch.Tensor | None" = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and latents of windows of ``n_frames`` (the chunk-level evaluation), in eval mode.

    Args:
        model: a model of :mod:`raympa.models` (single or stacked members), on ``midi``'s device.
        midi: (total_frames,) flat MIDI contours.
        begin, end: (n,) int64 first frame and end (exclusive) of each contour, on the device.
        which, starts: (windows,) int64 contour index and first frame of each window (numpy;
            ``raympa.sampling.eval_windows`` gives them per protocol).
        reference: as :func:`forward_full_length`.

    Returns:
        Predictions (windows,) or (windows, K) float32 (not clipped) and latents (windows, [K,] 16),
        numpy.
    """
    import torch

    from raympa.dataset import gather_inputs, normalize

    device = midi.device
    which_t, starts_t = torch.from_numpy(which).to(device), torch.from_numpy(starts).to(device)
    size = max(1, _frame_budget(model) // n_frames)
    preds, latents = [], []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(which), size):
            x = gather_inputs(midi, reference, begin, end, which_t[b : b + size], starts_t[b : b + size], n_frames)
            p, z = model.forward_latent(normalize(x, pitch_norm))  # (batch, [K]), (batch, [K,] 16)
            preds.append(p.cpu())
            latents.append(z.cpu())
    if not preds:
        return np.zeros(0, np.float32), np.zeros((0, model.latent_dim), np.float32)
    return torch.cat(preds).numpy(), torch.cat(latents).numpy()


def _steps_per_epoch(cfg: "TrainConfig", lengths: np.ndarray) -> int:
    from raympa.sampling import epoch_repeats, steps_per_pass

    steps = steps_per_pass(lengths, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames, chunk_hop=cfg.chunk_hop,
                           chunks_per_recording=cfg.chunks_per_recording, batch_size=cfg.batch_size)
    return steps * epoch_repeats(steps, cfg.min_steps_per_epoch)


def chunk_level(trainer: "Trainer", split: str, protocol: str) -> tuple[np.ndarray, ...]:
    """Predictions (windows, n) and latents (windows, n, 16) of the n members in the trainer's model,
    ratings and contour index (windows,), of the windows a chunk-level protocol scores
    (``raympa.sampling.WINDOW_SETS``)."""
    from raympa.sampling import eval_windows

    sp, parts, n = trainer.splits[split], [], len(trainer.slots)
    for which, starts, frames in eval_windows(sp.lengths_np, protocol):
        pred, z = forward_windows(trainer.model, sp.midi, sp.begin, sp.end, which, starts, frames,
                                  pitch_norm=trainer.cfgs[0].pitch_norm, reference=sp.reference)
        parts.append((pred.reshape(len(which), n), z.reshape(len(which), n, -1), which))
    pred, z, which = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return pred, z, sp.y_np[which], which


def evaluate_members(trainer: "Trainer", data: "ContourSet", *, seconds: float) -> list["TrainResult | FloatingPointError"]:
    """Final evaluation of a :class:`raympa.train.Trainer`'s members (one shared pass per split and protocol),
    each member's TrainResult (or the FloatingPointError that stopped it).

    Chunk-level R² per protocol of ``raympa.sampling.WINDOW_SETS`` (``<split>_r2_<protocol>``;
    ``<split>_r2_chunk`` is ``chunk1000`` under its earlier name); the test set's ``chunk1000``
    windows' latents go to ``latents["z_chunk"]``.
    """
    from raympa.losses import rating_bins
    from raympa.members import member_state
    from raympa.runfolder import TrainResult, describe_data, make_checkpoint
    from raympa.sampling import WINDOW_SETS

    if all(m.error is not None for m in trainer.members):
        return [FloatingPointError(m.error) for m in trainer.members]
    full = {s: trainer.full_length(s) for s in ("val", "test")}
    chunks = {(s, p): chunk_level(trainer, s, p) for s in ("val", "test") for p in WINDOW_SETS}
    val, test = trainer.splits["val"], trainer.splits["test"]
    steps = _steps_per_epoch(trainer.cfgs[0], trainer.splits["train"].lengths_np)
    out: list["TrainResult | FloatingPointError"] = []
    for k, m in enumerate(trainer.members):
        if m.error is not None:
            out.append(FloatingPointError(m.error))
            continue
        slot = trainer.slots.index(k)  # the model holds the members that have not failed
        cfg, pred = m.cfg, np.clip(full["test"][0][:, slot].cpu().numpy(), 0, 1)
        chunk_r2 = {f"{s}_r2_{p}": r2(c[2], c[0][:, slot]) for (s, p), c in chunks.items()}
        test_chunk = chunks[("test", "chunk1000")]
        metrics = {
            "model": cfg.model, "criterion": cfg.criterion, "seed": cfg.seed,
            "band": trainer.band if trainer.band is not None else "all",
            "val_r2_full": r2(val.y_np, full["val"][0][:, slot].cpu().numpy()),
            "val_r2_chunk": chunk_r2["val_r2_chunk1000"],
            "test_r2_full": r2(test.y_np, pred),
            "test_r2_chunk": chunk_r2["test_r2_chunk1000"],
            **chunk_r2,
            "test_mse_full": float(np.mean((pred - test.y_np) ** 2)) if test.n else float("nan"),
            "epochs_run": m.epoch, "best_epoch": m.best_epoch, "best_epoch_at_end": any(m.stage_at_end.values()),
            "best_val_loss": m.best_val, "steps_per_epoch": steps,
            "n_train": trainer.splits["train"].n, "n_val": val.n, "n_test": test.n,
            "n_test_chunks": int(len(test_chunk[2])), "device": str(trainer.device), "seconds": seconds,
        }
        for stage in trainer.stages[:-1]:
            metrics[f"{stage.name}_best_epoch"] = m.stage_best_epochs.get(stage.name, 0)
        latents = {
            "z": full["test"][1][:, slot].cpu().numpy().astype(np.float32), "y": test.y_np.astype(np.float32),
            "bins": np.asarray(rating_bins(test.y_np, cfg.n_bins), dtype=np.int64),
            "recording_id": test.recording_id.astype(str), "pred": pred.astype(np.float32),
            "z_chunk": test_chunk[1][:, slot].astype(np.float32), "y_chunk": test_chunk[2].astype(np.float32),
            "recording_index_chunk": test_chunk[3].astype(np.int64),
        }
        ckpt = make_checkpoint(cfg, member_state(trainer.model, slot), min_frames=trainer.model.min_frames,
                               data=data, metrics=metrics)
        out.append(TrainResult(metrics=metrics, latents=latents, history=m.history, checkpoint=ckpt, config=cfg,
                               data_description=describe_data(data, band=trainer.band, criterion=cfg.criterion)))
    return out
