"""Which chunks an epoch trains on, and which windows the chunk-level evaluation scores.

Training chunkings (``TrainConfig.chunking``), each a way to draw one pass over the training
recordings:

* ``"random"`` (paper, section 4.1.1): ``chunks_per_recording`` chunks of ``chunk_frames`` per
  recording at uniform random starts (:func:`random_starts`);
* ``"fixed"``: every window of ``chunk_frames`` at hop ``chunk_hop`` (:func:`fixed_windows`);
* ``"code"``: the original code's three window sets mixed, :data:`CODE_WINDOWS` (its
  ``create_split_data(1000, 500)``, ``(1500, 500)`` and ``(2000, 1000)``, concatenated into one
  training set). Each batch holds windows of one set, as in the code.

An epoch (:func:`epoch_batches`) is that pass repeated until it has at least ``min_steps`` SGD
steps (:func:`epoch_repeats`; ours). The paper defines no epoch size; with one chunk per
recording an epoch of a 192-recording training set at batch 32 is 6 steps, while the original
code's epoch is 120 steps at any data size (10 batches per window set, three sets, each batch
also pitch-shifted twice). Windows are shuffled within their set every pass, by the run's
generator, and the sets' batches are interleaved in an order that depends only on the batch
counts (so K stacked members, each with its own generator, always train on the same window
size at the same step); the code builds its batches once and visits the sets one after another.

Chunk-level evaluation protocols (:data:`WINDOW_SETS`): ``chunk1000`` scores every 1000-frame
window at hop 500; ``chunkmix`` scores the windows of all three of the code's sets together (one
R² over all of them), as the original code's test. A contour shorter than a window gets one
window at 0, zero-padded (unvoiced), as in the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# (window frames, hop frames) of the original code's three training and test window sets
CODE_WINDOWS: tuple[tuple[int, int], ...] = ((1000, 500), (1500, 500), (2000, 1000))

# chunk-level evaluation protocol -> its window sets; metrics are named ``<split>_r2_<protocol>``
WINDOW_SETS: dict[str, tuple[tuple[int, int], ...]] = {
    "chunk1000": ((1000, 500),),  # ours: 1000-frame windows (the paper's chunk length), hop 500
    "chunkmix": CODE_WINDOWS,  # code: the test windows of all three sets, one R² over them
}


@dataclass(frozen=True)
class Batch:
    """One training batch: which contours, where each chunk starts, how long the chunks are.

    Attributes:
        which: (batch,) int64 index of each chunk's contour among the training recordings.
        starts: (batch,) int64 first frame of each chunk within its contour.
        n_frames: chunk length in frames (the same for every chunk of the batch).
    """

    which: "torch.Tensor"
    starts: "torch.Tensor"
    n_frames: int


def random_starts(
    lengths: "torch.Tensor", chunk_frames: int, *, generator: "torch.Generator"
) -> "torch.Tensor":
    """Uniform random chunk starts, (n,) int64: in [0, length - chunk_frames], 0 when shorter."""
    import torch

    room = (lengths - chunk_frames + 1).clamp(min=1)  # (n,) number of possible starts
    u = torch.rand(lengths.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * room).to(torch.int64), room - 1)


def fixed_windows(lengths: np.ndarray, chunk_frames: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of ``chunk_frames`` with hop ``hop`` that fit each contour (original code).

    A contour shorter than a chunk gets one window at 0 (zero-padded when gathered).

    Returns:
        (windows,) int64 contour index and (windows,) int64 start frame.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = np.where(lengths >= chunk_frames, (lengths - chunk_frames) // hop + 1, 1)  # (n,)
    which = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    starts = (np.arange(len(which), dtype=np.int64) - first) * hop
    return which, starts


def n_batches(n_items: int, batch_size: int) -> int:
    """Batches of ``batch_size`` from ``n_items`` items; a last batch of one item is dropped."""
    full, rest = divmod(n_items, batch_size)
    return full + (1 if rest >= 2 else 0)  # BatchNorm and pairs need 2 items


def epoch_repeats(steps_per_pass: int, min_steps: int) -> int:
    """Passes over the training sample one epoch makes so it has at least ``min_steps`` steps."""
    if min_steps <= 0 or steps_per_pass <= 0:
        return 1
    return max(1, math.ceil(min_steps / steps_per_pass))


def _split(which: "torch.Tensor", starts: "torch.Tensor", n_frames: int, batch_size: int) -> list[Batch]:
    out = []
    for b in range(0, len(which), batch_size):
        if len(which[b : b + batch_size]) >= 2:
            out.append(Batch(which[b : b + batch_size], starts[b : b + batch_size], n_frames))
    return out


def _interleave(per_set: list[list[Batch]]) -> list[Batch]:
    """Batches of several sets in a fixed order: set s's b-th batch at position (b + 0.5) / n_s."""
    keyed = [((b + 0.5) / len(batches), s, batch) for s, batches in enumerate(per_set)
             for b, batch in enumerate(batches)]
    return [batch for _, _, batch in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _window_pass(lengths: np.ndarray, sets: tuple[tuple[int, int], ...], batch_size: int,
                 generator: "torch.Generator") -> list[Batch]:
    import torch

    per_set = []
    for frames, hop in sets:
        which, starts = fixed_windows(lengths, frames, hop)
        perm = torch.randperm(len(which), generator=generator)
        per_set.append(_split(torch.from_numpy(which)[perm], torch.from_numpy(starts)[perm], frames, batch_size))
    return _interleave(per_set)


def _random_pass(lengths: "torch.Tensor", chunk_frames: int, chunks_per_recording: int, batch_size: int,
                 generator: "torch.Generator") -> list[Batch]:
    import torch

    n = len(lengths)
    which_all = torch.cat([torch.randperm(n, generator=generator) for _ in range(chunks_per_recording)])
    out = []
    for b in range(0, len(which_all), batch_size):
        which = which_all[b : b + batch_size]
        if len(which) >= 2:
            out.append(Batch(which, random_starts(lengths[which], chunk_frames, generator=generator), chunk_frames))
    return out


def steps_per_pass(
    lengths: np.ndarray, *, chunking: str, chunk_frames: int, chunk_hop: int, chunks_per_recording: int,
    batch_size: int,
) -> int:
    """SGD steps in one pass over the training sample (before :func:`epoch_repeats`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if chunking == "random":
        return n_batches(len(lengths) * chunks_per_recording, batch_size)
    sets = CODE_WINDOWS if chunking == "code" else ((chunk_frames, chunk_hop),)
    if chunking not in ("fixed", "code"):
        raise ValueError(f"chunking={chunking!r}; choose 'random', 'fixed' or 'code'")
    return sum(n_batches(len(fixed_windows(lengths, f, h)[0]), batch_size) for f, h in sets)


def epoch_batches(
    lengths: np.ndarray,
    *,
    chunking: str,
    chunk_frames: int,
    chunk_hop: int,
    chunks_per_recording: int,
    batch_size: int,
    min_steps: int,
    generator: "torch.Generator",
) -> list[Batch]:
    """The batches of one training epoch, drawn from ``generator``.

    Args:
        lengths: (n,) int64 contour lengths of the training recordings, in frames.
        chunking: ``"random"``, ``"fixed"`` or ``"code"`` (module docstring).
        chunk_frames, chunk_hop: chunk length and window hop in frames (``"code"``: unused).
        chunks_per_recording: random chunks per recording per pass (``"random"`` only).
        batch_size: chunks per batch (a last batch of one chunk is dropped).
        min_steps: the epoch repeats its pass until it has at least this many batches; 0 = one pass.
        generator: the run's torch generator (CPU).

    Returns:
        The epoch's batches in training order. The number of batches, their sizes and chunk
        lengths depend only on ``lengths`` and the numbers, never on the generator.
    """
    import torch

    lengths = np.asarray(lengths, dtype=np.int64)
    steps = steps_per_pass(lengths, chunking=chunking, chunk_frames=chunk_frames, chunk_hop=chunk_hop,
                           chunks_per_recording=chunks_per_recording, batch_size=batch_size)
    out: list[Batch] = []
    for _ in range(epoch_repeats(steps, min_steps)):
        if chunking == "random":
            out += _random_pass(torch.from_numpy(lengths), chunk_frames, chunks_per_recording, batch_size, generator)
        else:
            sets = CODE_WINDOWS if chunking == "code" else ((chunk_frames, chunk_hop),)
            out += _window_pass(lengths, sets, batch_size, generator)
    return out


def eval_windows(lengths: np.ndarray, protocol: str) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """The windows a chunk-level protocol scores: per window set, (which, starts, n_frames).

    Args:
        lengths: (n,) contour lengths in frames.
        protocol: a key of :data:`WINDOW_SETS`.

    Returns:
        One ``((windows,) int64 contour index, (windows,) int64 start, window frames)`` per set;
        the protocol's R² is one R² over the windows of all its sets together.
    """
    if protocol not in WINDOW_SETS:
        raise ValueError(f"chunk protocol {protocol!r}; choose one of {list(WINDOW_SETS)}")
    return [(*fixed_windows(lengths, frames, hop), frames) for frames, hop in WINDOW_SETS[protocol]]
