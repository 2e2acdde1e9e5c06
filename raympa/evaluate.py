"""Evaluation: R², full-length and chunk-level forward passes (used by training and prediction).

* :func:`resolve_device`: ``"auto"`` -> CUDA when torch sees a GPU, else the CPU.
* :func:`r2`: scikit-learn's R² of predictions clipped to [0, 1], the rating scale (Seshadri &
  Lerch 2021, Eq. 4).
* :func:`forward_full_length`: whole contours through the fully convolutional model, batched by
  length; the masked time means make a batch equal to running each contour alone.
* :func:`forward_chunks`: every window of ``chunk_frames`` with hop ``chunk_hop`` of each contour
  (the chunk-level evaluation), each labelled with its recording's rating by the caller.

Both passes work on a single model and on a model of K stacked members (:mod:`raympa.models`):
outputs then carry a member axis, ``(n, K)`` and ``(n, K, 16)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

EVAL_FRAME_BUDGET = 1 << 21  # ours: frames per evaluation batch (about 8 MB of input)


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
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Whole contours through the fully convolutional model, in eval mode, batched by length.

    A contour shorter than ``max(min_frames, model.min_frames)`` is zero-padded (unvoiced) to it,
    as training pads short chunks. Contours are sorted by length and batched up to
    ``EVAL_FRAME_BUDGET`` frames; the masked time means make the result equal to running each
    contour alone.

    Args:
        model: a model of :mod:`raympa.models` (single or stacked members).
        midi: (total_frames,) flat MIDI contours on the model's device.
        begin: (n,) int64 first frame of each contour in ``midi``, on the same device.
        lengths: (n,) int64 contour lengths on the CPU.
        pitch_norm: ``TrainConfig.pitch_norm``.
        min_frames: pad shorter contours to this many frames (the training chunk length).

    Returns:
        Predictions (n,) or (n, K) (not clipped) and latents (n, 16) or (n, K, 16), on the device.
    """
    import torch

    from raympa.dataset import gather_chunks, normalize

    n, device = len(lengths), midi.device
    end = begin + lengths.to(device)  # (n,)
    eff = lengths.clamp(min=max(min_frames, model.min_frames))  # (n,)
    order = torch.argsort(eff)
    preds, latents, rows = [], [], []
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


def forward_chunks(
    model: "torch.nn.Module",
    midi: "torch.Tensor",
    begin: "torch.Tensor",
    end: "torch.Tensor",
    lengths: np.ndarray,
    *,
    chunk_frames: int,
    chunk_hop: int,
    pitch_norm: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of all windows (``chunk_frames``, hop ``chunk_hop``) of some contours.

    Args:
        model: a model of :mod:`raympa.models` (single or stacked members), on ``midi``'s device.
        midi: (total_frames,) flat MIDI contours.
        begin, end: (n,) int64 first frame and end (exclusive) of each contour, on the device.
        lengths: (n,) int64 contour lengths (numpy).

    Returns:
        Predictions (windows,) or (windows, K) float32 (numpy, not clipped) and the contour index
        (windows,) int64 of each window.
    """
    import torch

    from raympa.dataset import fixed_windows, gather_chunks, normalize

    device = midi.device
    which, starts = fixed_windows(lengths, chunk_frames, chunk_hop)
    which_t, starts_t = torch.from_numpy(which).to(device), torch.from_numpy(starts).to(device)
    size = max(1, EVAL_FRAME_BUDGET // chunk_frames)
    preds = []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(which), size):
            x = gather_chunks(midi, begin, end, which_t[b : b + size], starts_t[b : b + size], chunk_frames)
            preds.append(model(normalize(x, pitch_norm)).cpu())  # (batch,) or (batch, K)
    pred = torch.cat(preds).numpy() if preds else np.zeros(0, np.float32)
    return pred, which
