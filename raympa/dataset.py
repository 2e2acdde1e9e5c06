"""Contours + ratings -> model input: :class:`ContourSet`, normalisation, chunks, augmentation.

A :class:`ContourSet` holds every contour of a study in flat numpy arrays (one float32 MIDI
array, int64 offsets, fixed-width string arrays), so it goes through Ray's object store once and
is read zero-copy by every trial. Contours stay in MIDI (0 = unvoiced) until the model input:

* normalisation (:func:`normalize`): ``midi127`` = MIDI / 127 (paper, section 3.1.4) or
  ``midi36_72`` = (MIDI - 36) / 72 on voiced frames, 0 stays 0 (original code);
* chunks: which chunks an epoch and the chunk-level evaluation see is :mod:`raympa.sampling`'s
  job (``random_starts`` and ``fixed_windows`` are re-exported here); :func:`gather_chunks` cuts
  them out; a contour shorter than a chunk is zero-padded (unvoiced) at its end, never an error;
* augmentation: a random pitch shift, uniform in +-``pitch_shift`` semitones per chunk, on voiced
  frames only (original code: +-2 semitones; the paper states none).

:func:`gather_chunks` does the batching in one vectorised indexing operation on the device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence

import numpy as np

from raympa import constants as C
from raympa.sampling import fixed_windows, random_starts

__all__ = ["ContourSet", "DeviceSplit", "ReferenceInput", "extraction_metadata", "fixed_windows", "gather_chunks",
           "gather_inputs", "normalize", "pitch_shift", "side_channels",
           "random_starts", "synthetic_set"]

# ours: alignment features ride along as constant input channels (side_channels), offset into the
# range of MIDI numbers so that every transform of the input (normalisation, shift on values > 0)
# is affine on them; values are clipped to [SIDE_MIN - SIDE_LOW, SIDE_MAX]
SIDE_LOW, SIDE_HIGH = 32.0, 96.0  # MIDI-like values of the two calibration channels
SIDE_MIN, SIDE_MAX = 16.0, 1000.0  # smallest channel value (above any shift of up to 16 semitones), largest feature value

if TYPE_CHECKING:  # torch is imported lazily: this module is imported by the CLI
    import pandas as pd
    import torch


@dataclass(frozen=True)
class ContourSet:
    """All contours of a study, flat.

    Attributes:
        midi: (total_frames,) float32 MIDI per frame, 0 = unvoiced, contours back to back.
        offsets: (n + 1,) int64; contour i is ``midi[offsets[i]:offsets[i + 1]]``.
        recording_id, split, band, instrument: (n,) fixed-width unicode arrays.
        ratings: criterion -> (n,) float32 in [0, 1], NaN where missing.
        extract: extraction parameters of the contours (plain dict; may be empty), saved in
            checkpoints so ``raympa predict`` extracts new audio the same way.
        reference: (total_frames,) float32 MIDI or None: each recording's reference aligned onto
            its own frame grid (same offsets as ``midi``, 0 = unvoiced; see raympa.references).
        side: (n, F) float32 or None: each recording's alignment features against its reference
            (``raympa.align.ALL_FEATURES``, raw units), read by the reference-informed models.
    """

    midi: np.ndarray
    offsets: np.ndarray
    recording_id: np.ndarray
    split: np.ndarray
    band: np.ndarray
    instrument: np.ndarray
    ratings: dict[str, np.ndarray]
    extract: dict[str, Any] = field(default_factory=dict)
    reference: np.ndarray | None = None
    side: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.recording_id)
        if self.midi.dtype != np.float32 or self.midi.ndim != 1:
            raise ValueError("midi must be a 1-d float32 array")
        if self.offsets.shape != (n + 1,) or self.offsets.dtype != np.int64:
            raise ValueError(f"offsets must be int64 of shape ({n + 1},), got {self.offsets.shape}")
        if n and (self.offsets[0] != 0 or self.offsets[-1] != len(self.midi) or np.any(np.diff(self.offsets) < 0)):
            raise ValueError("offsets must start at 0, be non-decreasing and end at len(midi)")
        for name in ("split", "band", "instrument"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} recordings")
        if self.reference is not None and (self.reference.shape != self.midi.shape
                                           or self.reference.dtype != np.float32):
            raise ValueError(f"reference must be float32 of shape {self.midi.shape}")
        if self.side is not None and (self.reference is None or self.side.ndim != 2 or self.side.shape[0] != n
                                      or self.side.dtype != np.float32 or not np.all(np.isfinite(self.side))):
            raise ValueError(f"side must be finite float32 of shape ({n}, features), with a reference")
        for crit, r in self.ratings.items():
            if r.shape != (n,):
                raise ValueError(f"ratings[{crit!r}] has shape {r.shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.recording_id)

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 contour lengths in frames."""
        return np.diff(self.offsets)

    def contour(self, i: int) -> np.ndarray:
        """Contour i as a (n_frames,) float32 view (MIDI, 0 = unvoiced)."""
        return self.midi[self.offsets[i] : self.offsets[i + 1]]

    def take(self, index: Sequence[int] | np.ndarray) -> "ContourSet":
        """A new set with the recordings at ``index``, in that order (contours copied)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        pieces = [self.midi[self.offsets[i] : self.offsets[i + 1]] for i in index]  # views
        midi = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return ContourSet(
            midi=np.ascontiguousarray(midi, dtype=np.float32),
            offsets=offsets,
            recording_id=self.recording_id[index],
            split=self.split[index],
            band=self.band[index],
            instrument=self.instrument[index],
            ratings={k: v[index] for k, v in self.ratings.items()},
            extract=dict(self.extract),
            reference=None if self.reference is None else np.ascontiguousarray(
                np.concatenate([self.reference[self.offsets[i] : self.offsets[i + 1]] for i in index])
                if len(index) else np.zeros(0, np.float32)),
            side=None if self.side is None else np.ascontiguousarray(self.side[index]),
        )

    def with_reference(self, reference: np.ndarray | None, *, side: np.ndarray | None = None) -> "ContourSet":
        """The same set carrying ``reference`` ((total_frames,) float32, aligned references) and
        ``side`` ((n, F) float32 alignment features), or neither."""
        import dataclasses

        return dataclasses.replace(self, reference=reference, side=None if reference is None else side)

    def indices(
        self,
        band: str | Iterable[str] | None = None,
        split: str | Iterable[str] | None = None,
        criterion: str | None = None,
    ) -> np.ndarray:
        """(k,) int64 indices of the recordings :meth:`select` keeps (no contour is copied)."""
        keep = np.ones(len(self), dtype=bool)
        for values, column in ((band, self.band), (split, self.split)):
            if values is not None:
                values = [values] if isinstance(values, str) else list(values)
                keep &= np.isin(column, values)
        if criterion is not None:
            if criterion not in self.ratings:
                raise KeyError(f"no ratings for {criterion!r}; have {sorted(self.ratings)}")
            keep &= np.isfinite(self.ratings[criterion])
        return np.flatnonzero(keep).astype(np.int64)

    def select(
        self,
        band: str | Iterable[str] | None = None,
        split: str | Iterable[str] | None = None,
        criterion: str | None = None,
    ) -> "ContourSet":
        """Subset by band(s) and/or split(s); with ``criterion``, only recordings rated on it."""
        return self.take(self.indices(band=band, split=split, criterion=criterion))

    @classmethod
    def from_arrays(
        cls,
        contours: Sequence[np.ndarray],
        *,
        recording_id: Sequence[str],
        split: Sequence[str],
        ratings: dict[str, Sequence[float]],
        band: Sequence[str] | None = None,
        instrument: Sequence[str] | None = None,
        extract: dict[str, Any] | None = None,
    ) -> "ContourSet":
        """Build a set from a list of MIDI contours (NaN is turned into 0 = unvoiced)."""
        n = len(contours)
        lengths = np.array([len(c) for c in contours], dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        midi = (
            np.concatenate([np.asarray(c, dtype=np.float32).ravel() for c in contours])
            if n
            else np.zeros(0, np.float32)
        )
        midi = np.nan_to_num(midi, nan=0.0).astype(np.float32, copy=False)
        if np.any(midi < 0):
            raise ValueError("contours must be MIDI numbers >= 0 (0 = unvoiced)")
        empty = [""] * n
        rat: dict[str, np.ndarray] = {}
        for crit, values in ratings.items():
            r = np.asarray(values, dtype=np.float32).copy()
            r[r == -1] = np.nan  # FBA: -1 = missing
            bad = np.isfinite(r) & ((r < 0) | (r > 1))
            if bad.any():
                raise ValueError(f"{crit} ratings must be in [0, 1] (or -1/NaN = missing); "
                                 f"got {r[bad][:5].tolist()}")
            rat[crit] = r
        splits = np.asarray(list(split), dtype=str)
        unknown = sorted(set(splits.tolist()) - set(C.SPLITS))
        if unknown:
            raise ValueError(f"unknown split values {unknown}; expected {list(C.SPLITS)}")
        return cls(
            midi=midi,
            offsets=offsets,
            recording_id=np.asarray([str(r) for r in recording_id], dtype=str),
            split=splits if n else np.zeros(0, dtype="<U5"),
            band=np.asarray(list(band) if band is not None else empty, dtype=str),
            instrument=np.asarray(list(instrument) if instrument is not None else empty, dtype=str),
            ratings=rat,
            extract=dict(extract or {}),
        )

    @classmethod
    def from_tables(cls, ratings_df: "pd.DataFrame", contours_df: "pd.DataFrame") -> "ContourSet":
        """Join a ratings table (constants.RATINGS_COLUMNS) and a contours table on recording_id.

        Recordings present in only one of the tables are left out with a warning. The ratings
        table needs ``recording_id`` and ``split`` (``raympa.ratings.read_ratings`` adds it);
        band, instrument and criteria columns are optional. The contour table's extraction
        columns (sample_rate, hop_length, backend, and any other ExtractConfig field present) go
        to :attr:`extract`.
        """
        for col in ("recording_id", "split"):
            if col not in ratings_df.columns:
                hint = " (read the table with raympa.ratings.read_ratings, which assigns splits)" if col == "split" else ""
                raise ValueError(f"ratings table has no {col!r} column{hint}")
        for col in ("recording_id", "midi"):
            if col not in contours_df.columns:
                raise ValueError(f"contours table has no {col!r} column")
        rid = ratings_df["recording_id"].astype(str).to_numpy()
        if len(set(rid)) != len(rid):
            raise ValueError("ratings table has duplicate recording_id values")
        c_ids = contours_df["recording_id"].astype(str).to_numpy()
        by_id = dict(zip(c_ids, range(len(c_ids))))
        rows = [i for i, r in enumerate(rid) if r in by_id]
        missing = len(rid) - len(rows)
        if missing:
            warnings.warn(f"{missing} of {len(rid)} rated recordings have no contour; left out", stacklevel=2)
        extra = len(set(c_ids) - set(rid))
        if extra:
            warnings.warn(f"{extra} contours have no rating row; left out", stacklevel=2)
        df = ratings_df.iloc[rows]
        midi_col = contours_df["midi"].to_numpy()
        contours = [np.asarray(midi_col[by_id[r]], dtype=np.float32) for r in df["recording_id"].astype(str)]

        def col(name: str) -> list[str] | None:
            if name not in df.columns:
                return None
            return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in df[name]]

        ratings = {c: df[c].astype("float64").to_numpy() for c in C.RATED_COLUMNS if c in df.columns}
        return cls.from_arrays(
            contours,
            recording_id=df["recording_id"].astype(str).tolist(),
            split=col("split") or [],
            ratings=ratings,
            band=col("band"),
            instrument=col("instrument"),
            extract=extraction_metadata(contours_df),
        )


class DeviceSplit:
    """One split of a ContourSet on a device: offsets into the shared MIDI tensor (no contour copied), ratings."""

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
        # aligned references (flat, midi's offsets) with this split's alignment features, or None
        self.reference: "ReferenceInput | torch.Tensor | None" = None
        if data.reference is not None:
            with warnings.catch_warnings():  # read-only arrays from Ray's object store; never written
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                aligned = torch.from_numpy(data.reference).to(device)
            self.reference = aligned if data.side is None else ReferenceInput(
                aligned, torch.from_numpy(data.side[index]).to(device))

    def chunks(self, which: "torch.Tensor", starts: "torch.Tensor", frames: int) -> "torch.Tensor":
        """MIDI chunks (n, frames), or (n, C, frames) with the reference channels (:func:`gather_inputs`)."""
        return gather_inputs(self.midi, self.reference, self.begin, self.end, which, starts, frames)


def extraction_metadata(contours_df: "pd.DataFrame") -> dict[str, Any]:
    """ExtractConfig fields found as columns of a contours table (first row's values)."""
    from raympa.config import ExtractConfig
    import dataclasses

    out: dict[str, Any] = {}
    if len(contours_df) == 0:
        return out
    for f in dataclasses.fields(ExtractConfig):
        if f.name in contours_df.columns:
            values = contours_df[f.name].dropna().unique()
            if len(values) > 1:
                warnings.warn(f"contours mix several {f.name} values {values[:4].tolist()}; "
                              f"recording the first", stacklevel=3)
            if len(values):
                v = values[0]
                out[f.name] = v.item() if hasattr(v, "item") else v
    return out


# ----------------------------------------------------------------------------- model input
def normalize(midi: "torch.Tensor", pitch_norm: str) -> "torch.Tensor":
    """Normalise MIDI pitch for the model (unvoiced 0 stays 0).

    Args:
        midi: MIDI numbers, any shape.
        pitch_norm: ``"midi127"`` (paper: MIDI / 127) or ``"midi36_72"`` (original code:
            (MIDI - 36) / 72 on voiced frames).
    """
    import torch

    if pitch_norm == "midi127":
        return midi / C.MIDI_MAX
    if pitch_norm == "midi36_72":
        return torch.where(midi > 0, (midi - C.MIDI_OFFSET_CODE) / C.MIDI_RANGE_CODE, torch.zeros_like(midi))
    raise ValueError(f"pitch_norm={pitch_norm!r}; choose 'midi127' or 'midi36_72'")


def gather_chunks(
    midi: "torch.Tensor",
    begin: "torch.Tensor",
    end: "torch.Tensor",
    which: "torch.Tensor",
    starts: "torch.Tensor",
    chunk_frames: int,
) -> "torch.Tensor":
    """Chunks of ``chunk_frames`` frames, zero-padded past each contour's end.

    Args:
        midi: (total_frames,) flat contours (any values; padding is 0).
        begin, end: (n,) int64 first frame and end (exclusive) of each contour in ``midi``
            (``ContourSet.offsets[:-1]`` and ``[1:]``, or any subset of them).
        which: (batch,) int64 contour index (into ``begin``/``end``) of each chunk.
        starts: (batch,) int64 first frame of each chunk within its contour.

    Returns:
        (batch, chunk_frames) on ``midi``'s device.
    """
    import torch

    n, zero = midi.numel(), torch.zeros((), dtype=midi.dtype, device=midi.device)
    t = torch.arange(chunk_frames, device=midi.device)  # (chunk,)
    first = begin[which] + starts  # (batch,)
    end_w = end[which]  # (batch,)
    if n < chunk_frames:
        idx = first[:, None] + t[None, :]  # (batch, chunk)
        if n == 0:
            return torch.zeros(idx.shape, dtype=midi.dtype, device=midi.device)
        return torch.where(idx < end_w[:, None], midi[idx.clamp(max=n - 1)], zero)
    vals = midi.unfold(0, chunk_frames, 1)[first.clamp(max=n - chunk_frames)]  # (batch, chunk): rows of a view
    short = end_w - first < chunk_frames  # (batch,) chunks that run past their contour's end
    if bool(short.any()):
        idx = first[short, None] + t[None, :]  # (short, chunk)
        vals[short] = torch.where(idx < end_w[short, None], midi[idx.clamp(max=n - 1)], zero)
    return vals


class ReferenceInput(NamedTuple):
    """What a reference-informed model reads besides the performance: ``aligned`` (total_frames,)
    aligned reference MIDI with the contours' offsets, ``side`` (n, F) alignment features of the
    recordings that ``which`` indexes (raw units)."""

    aligned: "torch.Tensor"
    side: "torch.Tensor"


def side_channels(side: "torch.Tensor", frames: int) -> "torch.Tensor":
    """(batch, F) alignment features -> (batch, 2 + F, frames) constant input channels.

    Channels: :data:`SIDE_LOW`, :data:`SIDE_HIGH`, then ``SIDE_LOW + value`` per feature. Every
    input channel goes through the same pitch transforms (normalisation, the random shift on
    values > 0), all affine with a positive slope, so the model recovers each value exactly as
    ``(c - low) / (high - low) * (SIDE_HIGH - SIDE_LOW)`` (:func:`raympa.informed.decode_side`).
    """
    import torch

    value = side.clamp(min=SIDE_MIN - SIDE_LOW, max=SIDE_MAX)  # positive after the offset; see SIDE_MIN
    calib = torch.tensor([SIDE_LOW, SIDE_HIGH], dtype=side.dtype, device=side.device).expand(len(side), 2)
    return torch.cat([calib, SIDE_LOW + value], dim=1)[:, :, None].expand(-1, -1, frames)


def gather_inputs(
    midi: "torch.Tensor",
    reference: "ReferenceInput | torch.Tensor | None",
    begin: "torch.Tensor",
    end: "torch.Tensor",
    which: "torch.Tensor",
    starts: "torch.Tensor",
    chunk_frames: int,
) -> "torch.Tensor":
    """Model input chunks: :func:`gather_chunks` of ``midi``, (batch, chunk_frames); with a
    ``reference`` its aligned chunks as a second channel, (batch, 2, chunk_frames), and with
    alignment features (a :class:`ReferenceInput`) their :func:`side_channels` after them,
    (batch, 4 + F, chunk_frames)."""
    import torch

    x = gather_chunks(midi, begin, end, which, starts, chunk_frames)
    if reference is None:
        return x
    aligned = reference.aligned if isinstance(reference, ReferenceInput) else reference
    x = torch.stack([x, gather_chunks(aligned, begin, end, which, starts, chunk_frames)], dim=1)
    if not isinstance(reference, ReferenceInput):
        return x
    return torch.cat([x, side_channels(reference.side[which].to(x.dtype), chunk_frames)], dim=1)


def pitch_shift(
    chunks: "torch.Tensor", max_semitones: float, *, generator: "torch.Generator"
) -> "torch.Tensor":
    """Shift each chunk's voiced frames by one uniform random amount in +-max_semitones (MIDI)."""
    import torch

    if max_semitones <= 0:
        return chunks
    u = torch.rand((chunks.shape[0], 1), generator=generator, dtype=torch.float32)
    shift = ((u * 2 - 1) * max_semitones).to(chunks.device)  # (batch, 1) semitones
    return torch.where(chunks > 0, chunks + shift, chunks)


# ----------------------------------------------------------------------------- synthetic data
def synthetic_set(
    n: int,
    *,
    seed: int = 0,
    n_frames: tuple[int, int] = (1200, 2400),
    short_fraction: float = 0.0,
    splits: tuple[float, float, float] = C.SPLIT_FRACTIONS,
) -> ContourSet:
    """Synthetic contours whose note-accuracy rating is set by their wrong notes.

    Each recording is a one-octave melody on a major scale (notes of 15-40 frames with short
    unvoiced gaps). A fraction ``p`` in [0, 0.5] of its notes is replaced by a wrong note, a jump
    13 to 17 semitones up (off the scale, like a slip of register); its ratings are
    ``note_accuracy = 1 - 2 p`` (quantised to 0.05), musicality and rhythm noisy copies of it.
    Meant for tests and benchmarks: a model learns it in a few epochs.

    Args:
        n: recordings.
        seed: numpy seed.
        n_frames: (min, max) contour length in frames.
        short_fraction: share of recordings made shorter than a 1000-frame chunk (300-900 frames).
        splits: train/val/test fractions (rounded; at least one val and one test when n >= 10).
    """
    rng = np.random.default_rng(seed)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    contours, na = [], []
    for _ in range(n):
        length = int(rng.integers(n_frames[0], n_frames[1] + 1))
        if rng.random() < short_fraction:
            length = int(rng.integers(300, 900))
        p = rng.uniform(0.0, 0.5)
        tonic = 60 + int(rng.integers(-3, 4))
        out = np.zeros(length, np.float32)
        pos, degree = 0, int(rng.integers(0, 7))
        while pos < length:
            dur = int(rng.integers(15, 41))
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 7))  # one octave
            pitch = tonic + 12 * (degree // 7) + scale[degree % 7]
            if rng.random() < p:
                pitch += int(rng.integers(13, 18))  # off the scale and above the octave
            pitch += rng.normal(0, 0.1, size=min(dur, length - pos))  # intonation jitter
            out[pos : pos + dur] = pitch
            gap = int(rng.integers(0, 4))
            out[pos + dur - gap : pos + dur] = 0.0
            pos += dur
        contours.append(out)
        na.append(np.round((1 - 2 * p) * 20) / 20)
    na_arr = np.clip(np.array(na), 0, 1)
    mus = np.clip(np.round((na_arr + rng.normal(0, 0.1, n)) * 20) / 20, 0, 1)
    rhy = np.clip(np.round((na_arr + rng.normal(0, 0.1, n)) * 20) / 20, 0, 1)
    n_val = max(1, round(n * splits[1])) if n >= 10 else 0
    n_test = max(1, round(n * splits[2])) if n >= 10 else 0
    split = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
    rng.shuffle(split)
    return ContourSet.from_arrays(
        contours,
        recording_id=[f"syn{i:05d}" for i in range(n)],
        split=split.tolist(),
        ratings={"musicality": mus, "note_accuracy": na_arr, "rhythm_accuracy": rhy},
        band=["middleschool"] * n,
        instrument=[C.INSTRUMENTS[i % 3] for i in range(n)],
        extract={"sample_rate": C.SAMPLE_RATE, "hop_length": C.HOP_LENGTH},
    )
