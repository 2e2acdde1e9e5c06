"""Pitch contours at scale: the public extract / import / load API and block-wise pYIN.

The paper (Seshadri & Lerch 2021, section 3.1.4) feeds its models pYIN pitch contours of the
audition audio at 44.1 kHz, block 1024, hop 256 (``raympa.config.ExtractConfig`` defaults).
Stored contours are MIDI note numbers per frame, float32, 0 = unvoiced; frame ``k`` is centred
on sample ``k * hop_length`` of the segment (librosa's ``center=True``), so a segment of ``n``
samples has ``1 + n // hop_length`` frames.

Two producers write the same output folder::

    OUT/contours.parquet   one row per recording (columns: ``CONTOUR_COLUMNS``)
    OUT/errors.csv         recording_id, audio_path, error   (one line per failed input)

Every input lands in exactly one of the two. :func:`extract` (audio) and
:func:`import_pitchtracks` (``time_sec,f0_hz`` tracks, :mod:`raympa.pitchtracks`) differ only in
their row function, one input row -> (contour, metadata), which :mod:`raympa.raydata` runs over
every input on Ray Data (error rows, retries of lost rows); inputs come from
:mod:`raympa.inputs`. Long files are decoded and tracked in overlapping blocks
(``BLOCK_FRAMES`` + ``CONTEXT_FRAMES`` either side), so memory stays bounded. Results are cached
by content (:mod:`raympa.cache`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from raympa import constants as C
from raympa import raydata
from raympa.audio import AudioError
from raympa.config import ExtractConfig
from raympa.contourfolder import (
    CONTOUR_COLUMNS,
    ERROR_COLUMNS,
    ExtractResult,
    flags,
    load_contours,
    write_outputs,
)
from raympa.inputs import jobs, jobs_from_dir, jobs_from_table
from raympa.pitchtracks import PITCHTRACK_SUFFIX, Regridded, hz_to_midi, read_pitchtrack, regrid_pitchtrack

log = logging.getLogger(__name__)

CACHE_FORMAT = "contours-1"  # bump when the contour computation changes (invalidates the cache)
BLOCK_FRAMES = 10_000  # frames kept per pYIN block (58 s at hop 256), ours: FBA etudes fit one block
CONTEXT_FRAMES = 1_000  # frames of context on each side of a block (5.8 s), ours: Viterbi paths merge well within it

# what a row function adds to the engine's columns (raydata.arrow_schema), with Arrow types
META_TYPES = (
    ("sample_rate", "int32"),
    ("hop_length", "int32"),
    ("frame_length", "int32"),  # pYIN frame (samples); null for imported pitch tracks
    ("fmin", "float64"),  # pYIN's pitch range (Hz); null for imported pitch tracks
    ("fmax", "float64"),
    ("n_frames", "int64"),
    ("source_sha1", "string"),
    ("backend", "string"),
    ("voiced_fraction", "float32"),
    ("flags", "string"),
    ("segment_start", "float64"),
    ("segment_duration", "float64"),
    ("cached", "bool"),
    ("cache_status", "string"),
)


# ============================================================================ pitch tracking
def _librosa_pyin() -> Callable[..., Any]:
    import librosa

    return librosa.pyin


def _librosa_version() -> str:
    import librosa

    return f"librosa-{librosa.__version__}"


def _fast_pyin() -> Callable[..., Any]:
    from raympa.pitch import pyin

    return pyin


def _fast_version() -> str:
    import raympa.pitch

    return f"raympa.pitch-{hashlib.sha1(Path(raympa.pitch.__file__).read_bytes()).hexdigest()[:12]}"


@dataclass(frozen=True)
class _Backend:
    pyin: Callable[[], Callable[..., Any]]  # () -> its pyin, with librosa.pyin's signature
    version: Callable[[], str]  # () -> its code version, part of the cache key


BACKENDS = {"fast": _Backend(_fast_pyin, _fast_version), "librosa": _Backend(_librosa_pyin, _librosa_version)}


def _backend(name: str) -> _Backend:
    """A backend by name; the one place a backend name is checked (ValueError)."""
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r}; choose {' or '.join(repr(b) for b in BACKENDS)}")
    return BACKENDS[name]


def _pyin_midi(y: np.ndarray, config: ExtractConfig) -> np.ndarray:
    """pYIN of a mono signal -> MIDI per frame (float32, 0 = unvoiced). y: (n_samples,)."""
    pyin = _backend(config.backend).pyin()
    if len(y) < config.frame_length:  # pYIN needs one full frame; zero-pad (frame count unchanged)
        y = np.pad(y, (0, config.frame_length - len(y)))
    f0, voiced, _ = pyin(y, sr=config.sample_rate, fmin=config.fmin, fmax=config.fmax,
                         frame_length=config.frame_length, hop_length=config.hop_length,
                         resolution=config.resolution)  # (n_frames,) each
    return hz_to_midi(np.where(voiced, f0, np.nan))


def warm_up(config: ExtractConfig) -> None:
    """Compile (or load from numba's disk cache) the backend's kernels in this process.

    Both backends cache numba code on disk (librosa's gufuncs, ``raympa.pitch``'s kernels); one
    call here before workers start means the cache is written once, not by every worker at once.
    """
    t = np.arange(4 * config.frame_length) / config.sample_rate
    _pyin_midi((0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), config)


def track_blocks(
    pieces: Iterable[np.ndarray],
    config: ExtractConfig,
    *,
    block_frames: int = BLOCK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
) -> np.ndarray:
    """pYIN over a stream of mono pieces, block by block, with context; returns MIDI per frame.

    Block ``k`` keeps frames ``[k*B, (k+1)*B)`` of a pYIN run over the samples of frames
    ``[k*B - ctx, (k+1)*B + ctx)``: frame centres line up with a whole-signal run because every
    cut is a multiple of the hop, and the context lets the Viterbi path settle. The last run
    keeps everything that is left (at most ``B + ctx + 1`` frames), so a signal of up to
    ``B + ctx`` frames is a single whole-signal run. The result depends only on the signal, not
    on how it is split into pieces. Memory: about ``(B + 2*ctx) * hop`` samples plus one piece.

    Args:
        pieces: consecutive mono float32 pieces at ``config.sample_rate``, each (n,).
        config: extraction parameters.
        block_frames, context_frames: B and ctx above, in frames.

    Returns:
        (1 + n_samples // hop,) float32 MIDI, 0 = unvoiced.
    """
    hop, B, ctx = config.hop_length, int(block_frames), int(context_frames)
    if B < 1 or ctx < 0:
        raise ValueError("block_frames must be >= 1 and context_frames >= 0")
    buf = np.zeros(0, np.float32)  # samples [buf_start, buf_start + len(buf)) of the signal
    buf_start = 0
    total = 0
    out: list[np.ndarray] = []
    k = 0

    def run(k: int, stop: int) -> np.ndarray:  # MIDI of frames k*B - ctx ... from samples [a, stop)
        a = max(0, (k * B - ctx) * hop)
        midi = _pyin_midi(buf[a - buf_start : stop - buf_start], config)  # frames a // hop ...
        return midi[k * B - a // hop :]

    for piece in pieces:
        piece = np.asarray(piece, np.float32)
        buf = np.concatenate([buf, piece]) if len(buf) else piece
        total += len(piece)
        while total > ((k + 1) * B + ctx) * hop:  # block k and its right context are in
            out.append(run(k, ((k + 1) * B + ctx) * hop)[:B])
            k += 1
            drop = max(0, (k * B - ctx) * hop) - buf_start
            if drop > 0:
                buf = buf[drop:]
                buf_start += drop
    n_frames = 1 + total // hop
    if k * B < n_frames:
        out.append(run(k, total))  # the rest, to the end of the signal
    midi = np.concatenate(out) if out else np.zeros(0, np.float32)
    assert len(midi) == n_frames, (len(midi), n_frames)
    return midi

def contour_from_audio(y: np.ndarray, sr: int, config: ExtractConfig | None = None) -> np.ndarray:
    """The contour of an in-memory signal, exactly as ``extract`` computes it from a file.

    Args:
        y: (n_samples,) mono or (channels, n_samples) (librosa layout) audio, any float dtype.
        sr: its sample rate in Hz; resampled to ``config.sample_rate`` (soxr HQ, as librosa.load).
        config: extraction parameters (default: the paper's).

    Returns:
        (1 + n // hop_length,) float32 MIDI per frame, 0 = unvoiced.
    """
    config = config or ExtractConfig()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0, dtype=np.float32)  # (n_samples,), librosa.to_mono
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"expected a non-empty (n,) or (channels, n) signal, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("signal holds NaN or infinite samples")
    if int(sr) != config.sample_rate:
        import soxr

        y = soxr.resample(y, int(sr), config.sample_rate, quality="HQ").astype(np.float32)
    return track_blocks([y], config)



# ============================================================================ row functions
def _through_cache(cache_dir: str | None, key: str,
                   compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]) -> tuple[np.ndarray, dict[str, Any], str]:
    """(midi, meta, cache status): from the cache when it holds ``key``, else computed and stored."""
    from raympa.cache import ContourCache

    cache = ContourCache(cache_dir) if cache_dir else None
    status = "miss"
    if cache is not None:
        entry, status = cache.lookup(key)
        if entry is not None:
            return entry[0], entry[1], status
    midi, meta = compute()
    if cache is not None:
        try:
            cache.put(key, midi, meta)
        except OSError as e:  # a full or read-only cache must not fail the row
            log.warning("contour cache: cannot write %s: %s", cache.path(key), e)
    return midi, meta, status


def _metadata(midi: np.ndarray, meta: dict[str, Any], status: str, **columns: Any) -> dict[str, Any]:
    """The row's metadata columns (``META_TYPES``) from its contour and segment."""
    n_frames = int(len(midi))
    voiced_fraction = float(np.count_nonzero(midi) / n_frames) if n_frames else 0.0
    return {
        **columns,
        "n_frames": n_frames,
        "voiced_fraction": voiced_fraction,
        "flags": flags(n_frames, voiced_fraction, bool(meta["truncated"])),
        "segment_start": float(meta["segment_start"]),
        "segment_duration": float(meta["segment_duration"]),
        "cached": status == "hit",
        "cache_status": status,
    }


def _no_nan(x: float | None) -> float | None:
    return None if x is None or x != x else float(x)


@dataclass(frozen=True)
class AudioRows:
    """The row function of :func:`extract`: one audio input -> (contour, metadata), through the cache."""

    config: ExtractConfig
    code_version: str  # part of the cache key: cache format, backend version, block sizes
    cache_dir: str | None = None  # None = no cache

    @classmethod
    def of(cls, config: ExtractConfig, *, cache_dir: str | None = None) -> AudioRows:
        """Row function for ``config`` (raises ValueError for an unknown backend)."""
        version = f"{CACHE_FORMAT}/{_backend(config.backend).version()}/{BLOCK_FRAMES}+{CONTEXT_FRAMES}"
        return cls(config=config, code_version=version, cache_dir=cache_dir)

    def __call__(self, row: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        from raympa import audio
        from raympa.cache import cache_key

        path, cfg = row["path"], self.config
        if not path:
            raise AudioError("no path given (empty path column)")
        info = audio.probe(path)
        seg = audio.plan_segment(info, start=row["segment_start"], duration=row["segment_duration"])
        sha1 = audio.file_sha1(path)
        key = cache_key(kind="audio", source_sha1=sha1, segment=[seg.start, seg.n_samples, info.sample_rate],
                        config=cfg.key(), code=self.code_version)

        def compute() -> tuple[np.ndarray, dict[str, Any]]:
            midi = track_blocks(audio.iter_segment(path, seg, sample_rate=cfg.sample_rate), cfg)
            return midi, {"segment_start": seg.start / info.sample_rate,
                          "segment_duration": seg.n_samples / info.sample_rate, "truncated": seg.truncated}

        midi, meta, status = _through_cache(self.cache_dir, key, compute)
        return midi, _metadata(midi, meta, status, sample_rate=cfg.sample_rate, hop_length=cfg.hop_length,
                               frame_length=cfg.frame_length, fmin=float(cfg.fmin), fmax=float(cfg.fmax),
                               source_sha1=sha1, backend=cfg.backend)


@dataclass(frozen=True)
class PitchtrackRows:
    """The row function of :func:`import_pitchtracks`: one pitch track -> (contour, metadata)."""

    sample_rate: int  # Hz of the target grid
    hop_length: int  # samples of the target grid
    cache_dir: str | None = None  # None = no cache
    code_version: str = CACHE_FORMAT

    def __call__(self, row: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        from raympa import audio
        from raympa.cache import cache_key

        path = row["path"]
        if not path:
            raise AudioError("no path given (empty path column)")
        start, duration = row["segment_start"], row["segment_duration"]
        audio.check_file(path)
        sha1 = audio.file_sha1(path)
        grid = {"sample_rate": int(self.sample_rate), "hop_length": int(self.hop_length)}
        key = cache_key(kind="pitchtrack", source_sha1=sha1, segment=[_no_nan(start), _no_nan(duration)],
                        config=grid, code=self.code_version)

        def compute() -> tuple[np.ndarray, dict[str, Any]]:
            rg: Regridded = regrid_pitchtrack(*read_pitchtrack(path), **grid, start=start, duration=duration)
            return rg.midi, {"segment_start": rg.segment_start, "segment_duration": rg.segment_duration,
                             "truncated": rg.truncated}

        midi, meta, status = _through_cache(self.cache_dir, key, compute)
        return midi, _metadata(midi, meta, status, **grid, source_sha1=sha1, backend="import")


# ============================================================================ runs
def resolve_cache_dir(cache_dir: str | Path | None, use_cache: bool) -> str | None:
    """The cache folder a run uses (absolute), or None when ``use_cache`` is False."""
    from raympa.cache import default_cache_dir

    if not use_cache:
        return None
    return str(Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir())


def _validate_config(config: ExtractConfig) -> None:
    """Refuse impossible extraction parameters before any work starts (ValueError)."""
    _backend(config.backend)
    if config.sample_rate <= 0 or config.frame_length <= 0 or config.hop_length <= 0:
        raise ValueError("sample_rate, frame_length and hop_length must be positive")
    if not 0 < config.fmin < config.fmax <= config.sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax <= sample_rate / 2, got fmin={config.fmin}, fmax={config.fmax}")
    if config.sample_rate / config.fmin >= config.frame_length // 2:
        raise ValueError(f"fmin={config.fmin} Hz has a period of {config.sample_rate / config.fmin:.0f} samples, "
                         f"longer than half a frame ({config.frame_length // 2}); raise fmin or frame_length")
    if config.resolution <= 0:
        raise ValueError("resolution must be > 0 semitones")


def run_rows(
    job_table: pd.DataFrame,
    out: str | Path,
    row_fn: raydata.RowFn,
    *,
    address: str | None = None,
    num_workers: int | None = None,
    rows_per_task: int | None = None,
    warmup: Callable[[], None] | None = None,
) -> ExtractResult:
    """Run a row function (:class:`AudioRows`, :class:`PitchtrackRows`, or one wrapping them) over
    jobs (:mod:`raympa.inputs`) on Ray Data and write ``OUT/contours.parquet`` + ``errors.csv``.

    Args: as :func:`extract`; ``warmup`` runs before the workers start (see :func:`warm_up`).
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"recording_id": str(r.recording_id), "path": str(r.path),
             "segment_start": float(r.segment_start), "segment_duration": float(r.segment_duration)}
            for r in job_table.itertuples(index=False)]
    table = raydata.map_rows(rows, row_fn, meta_types=META_TYPES, address=address, num_workers=num_workers,
                             rows_per_task=rows_per_task, warmup=warmup)
    return write_outputs(table, out_dir, n_inputs=len(rows))


def extract(
    source: str | Path | pd.DataFrame,
    out: str | Path,
    *,
    config: ExtractConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    address: str | None = None,
    num_workers: int | None = None,
    rows_per_task: int | None = None,
) -> ExtractResult:
    """Extract pYIN contours of audio files on Ray Data; write ``OUT/contours.parquet`` + ``errors.csv``.

    Args:
        source: a folder of audio files (recursive; id = relative path without extension), or a
            table (CSV/parquet path or DataFrame) with ``recording_id, audio_path`` and optional
            ``segment_start, segment_duration`` in seconds.
        out: output folder.
        config: extraction parameters (default: the paper's, ``ExtractConfig()``).
        cache_dir: contour cache (default ``$RAYMPA_CACHE`` or ``~/.cache/raympa``).
        use_cache: False = neither read nor write the cache.
        address: Ray address (``"auto"`` joins a running cluster); None = the running instance,
            or a new local one on every CPU.
        num_workers: at most this many concurrent tasks (None: one per CPU).
        rows_per_task: inputs per Ray task (None: 1 for small runs, up to
            ``raydata.MAX_ROWS_PER_TASK`` for large ones, where it saves per-task overhead).

    Raises:
        ValueError: impossible parameters, duplicate recording ids or missing columns (before any
            work starts). FileNotFoundError: no such folder or table.
    """
    config = config or ExtractConfig()
    _validate_config(config)
    job_table = jobs(source, path_column="audio_path")
    row_fn = AudioRows.of(config, cache_dir=resolve_cache_dir(cache_dir, use_cache))
    log.info("extracting %d recording(s) with backend %r", len(job_table), config.backend)
    return run_rows(job_table, out, row_fn, address=address, num_workers=num_workers, rows_per_task=rows_per_task,
                    warmup=functools.partial(warm_up, config))


def import_pitchtracks(
    source: str | Path | pd.DataFrame,
    out: str | Path,
    *,
    sample_rate: int = C.SAMPLE_RATE,
    hop_length: int = C.HOP_LENGTH,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    address: str | None = None,
    num_workers: int | None = None,
    rows_per_task: int | None = None,
) -> ExtractResult:
    """Import FBA-style pitch tracks (``time_sec,f0_hz``) onto the hop grid; same outputs as ``extract``.

    Args:
        source: a folder of ``*_pyin_pitchtrack.txt`` files (recursive; id = relative path without
            that suffix), or a table with ``recording_id, pitchtrack_path`` (+ optional segment
            columns, seconds).
        sample_rate, hop_length: the target frame grid (Hz, samples); frames are
            ``hop_length / sample_rate`` s apart.
        Others: as :func:`extract`.
    """
    if sample_rate <= 0 or hop_length <= 0:
        raise ValueError("sample_rate and hop_length must be positive")
    job_table = jobs(source, path_column="pitchtrack_path", suffix=PITCHTRACK_SUFFIX)
    row_fn = PitchtrackRows(sample_rate=int(sample_rate), hop_length=int(hop_length),
                            cache_dir=resolve_cache_dir(cache_dir, use_cache))
    log.info("importing %d pitch track(s) onto hop %d at %d Hz", len(job_table), hop_length, sample_rate)
    return run_rows(job_table, out, row_fn, address=address, num_workers=num_workers, rows_per_task=rows_per_task)



__all__ = [
    "extract",
    "import_pitchtracks",
    "load_contours",
    "contour_from_audio",
    "track_blocks",
    "warm_up",
    "run_rows",
    "AudioRows",
    "PitchtrackRows",
    "META_TYPES",
    "resolve_cache_dir",
    "hz_to_midi",
    "read_pitchtrack",
    "regrid_pitchtrack",
    "jobs_from_table",
    "jobs_from_dir",
    "ExtractResult",
    "CONTOUR_COLUMNS",
    "ERROR_COLUMNS",
]
