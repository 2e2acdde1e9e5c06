"""Pitch contours at scale: pYIN extraction on Ray Data, pitch-track import, loading.

The paper (Seshadri & Lerch 2021, section 3.1.4) feeds its models pYIN pitch contours of the
audition audio at 44.1 kHz, block 1024, hop 256 (``raympa.config.ExtractConfig`` defaults).
Stored contours are MIDI note numbers per frame, float32, 0 = unvoiced; frame ``k`` is centred
on sample ``k * hop_length`` of the segment (librosa's ``center=True``), so a segment of ``n``
samples has ``1 + n // hop_length`` frames.

Two producers write the same output folder::

    OUT/contours.parquet   one row per recording (columns: ``CONTOUR_COLUMNS``)
    OUT/errors.csv         recording_id, audio_path, error   (one line per failed input)

Every input lands in exactly one of the two. The work runs as one Ray Data ``map_batches``
stage (Ray tasks, one input per task, every CPU of the local machine or of a cluster with
``address="auto"``); each task catches its own errors (a bad file becomes an error row), a task
whose worker process dies is retried by Ray (``max_retries``), and an input whose task still
fails is reported in ``errors.csv`` rather than lost. Long files are decoded and tracked in
overlapping blocks (``BLOCK_FRAMES`` + ``CONTEXT_FRAMES`` either side), so memory stays bounded.
Results are cached by content (``raympa.cache``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from raympa import constants as C
from raympa.audio import AudioError, check_file
from raympa.config import ExtractConfig

log = logging.getLogger(__name__)

CACHE_FORMAT = "contours-1"  # bump when the contour computation changes (invalidates the cache)
BLOCK_FRAMES = 10_000  # frames kept per pYIN block (58 s at hop 256), ours: FBA etudes fit one block
CONTEXT_FRAMES = 1_000  # frames of context on each side of a block (5.8 s), ours: Viterbi paths merge well within it
MAX_RETRIES = 3  # Ray task retries after a worker process dies, ours
MAX_ROWS_PER_TASK = 8  # inputs per Ray task in large runs (see _auto_rows_per_task), ours
PITCHTRACK_SUFFIX = "_pyin_pitchtrack.txt"  # FBA pitch-track file names (DESIGN.md section 3)
ERROR_MAX_CHARS = 300  # longest reason written to errors.csv

# contours.parquet columns, in order (docs/architecture.md "Contours" is the contract)
CONTOUR_COLUMNS = (
    "recording_id",
    "midi",
    "sample_rate",
    "hop_length",
    "n_frames",
    "source_sha1",
    "backend",
    "voiced_fraction",
    "flags",
    "segment_start",
    "segment_duration",
    "source_path",
    "node_id",
    "cached",
)
ERROR_COLUMNS = ("recording_id", "audio_path", "error")


# ============================================================================ pitch tracking
def _backend_version(backend: str) -> str:
    """Identify the pitch code, for the cache key: librosa's version, or raympa.pitch's source hash."""
    if backend == "librosa":
        import librosa

        return f"librosa-{librosa.__version__}"
    if backend == "fast":
        import raympa.pitch

        src = Path(raympa.pitch.__file__).read_bytes()
        return f"raympa.pitch-{hashlib.sha1(src).hexdigest()[:12]}"
    raise ValueError(f"backend={backend!r}; choose 'fast' or 'librosa'")


def _pyin_midi(y: np.ndarray, config: ExtractConfig) -> np.ndarray:
    """pYIN of a mono signal -> MIDI per frame (float32, 0 = unvoiced). y: (n_samples,)."""
    kwargs = dict(
        sr=config.sample_rate,
        fmin=config.fmin,
        fmax=config.fmax,
        frame_length=config.frame_length,
        hop_length=config.hop_length,
        resolution=config.resolution,
    )
    if config.backend == "fast":
        from raympa.pitch import pyin
    elif config.backend == "librosa":
        from librosa import pyin
    else:
        raise ValueError(f"backend={config.backend!r}; choose 'fast' or 'librosa'")
    if len(y) < config.frame_length:  # pYIN needs one full frame; zero-pad (frame count unchanged)
        y = np.pad(y, (0, config.frame_length - len(y)))
    f0, voiced, _ = pyin(y, **kwargs)  # (n_frames,) each
    return hz_to_midi(np.where(voiced, f0, np.nan))


def hz_to_midi(f0: np.ndarray) -> np.ndarray:
    """f0 in Hz -> MIDI float32; NaN, 0 and negative values (unvoiced) -> 0."""
    f0 = np.asarray(f0, dtype=np.float64)
    midi = np.zeros(f0.shape, dtype=np.float32)
    ok = np.isfinite(f0) & (f0 > 0)
    midi[ok] = 69.0 + 12.0 * np.log2(f0[ok] / 440.0)
    return midi


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


# ============================================================================ pitch tracks
_SPLIT = re.compile(r"[,;\s]+")


def read_pitchtrack(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``time_sec,f0_hz`` pitch track (comma or whitespace separated; header lines skipped).

    Returns:
        times (n,) float64 seconds, non-decreasing; f0 (n,) float64 Hz (<= 0 or NaN = unvoiced).

    Raises:
        AudioError: missing, empty, no data lines, or times going backwards.
    """
    path = Path(path)
    check_file(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise AudioError("not a text pitch track (binary content)") from None
    times: list[float] = []
    f0s: list[float] = []
    for line in text.splitlines():
        parts = _SPLIT.split(line.strip())
        if len(parts) < 2:
            continue
        try:
            t, f = float(parts[0]), float(parts[1])
        except ValueError:
            continue  # header or comment line
        times.append(t)
        f0s.append(f)
    if not times:
        raise AudioError("no 'time_sec,f0_hz' lines in pitch track")
    t_arr = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(t_arr)):
        raise AudioError("pitch track has non-finite timestamps")
    back = np.flatnonzero(np.diff(t_arr) < 0)
    if len(back):
        raise AudioError(f"pitch track timestamps go backwards after {t_arr[back[0]]:g} s")
    return t_arr, np.asarray(f0s, dtype=np.float64)


@dataclass(frozen=True)
class Regridded:
    """A pitch track on the hop grid of one segment."""

    midi: np.ndarray  # (n_frames,) float32, 0 = unvoiced
    segment_start: float  # s
    segment_duration: float  # s (after truncation)
    truncated: bool  # the requested segment ran past the end of the track


def regrid_pitchtrack(
    times: np.ndarray,
    f0: np.ndarray,
    *,
    sample_rate: int,
    hop_length: int,
    start: float | None = None,
    duration: float | None = None,
) -> Regridded:
    """Re-grid a pitch track to frames ``k * hop_length / sample_rate`` after ``start``.

    Each target frame takes the f0 of the source frame nearest in time (ties: the earlier one);
    a target frame farther than one source spacing from any source frame is unvoiced. The track
    covers ``[0, times[-1] + spacing / 2]``; a segment of ``d`` s gets
    ``1 + round(d * sample_rate) // hop_length`` frames, as audio extraction does.

    Raises:
        AudioError: the segment starts outside the track, or has a non-positive duration.
    """
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else hop_length / sample_rate
    spacing = spacing if spacing > 0 else hop_length / sample_rate
    end = float(times[-1]) + spacing / 2
    start_s = 0.0 if start is None or math.isnan(start) else float(start)
    if start_s < 0 or start_s >= end:
        raise AudioError(f"segment starts at {start_s:g} s, outside the pitch track (0-{end:.2f} s)")
    truncated = False
    if duration is None or math.isnan(duration):
        dur = end - start_s
    elif duration <= 0:
        raise AudioError(f"segment duration {duration:g} s is not positive")
    else:
        dur = float(duration)
        if start_s + dur > end + 0.01:  # a rounding-size overshoot (< 10 ms) is not worth a flag
            truncated = True
            dur = end - start_s
    n_frames = 1 + int(round(dur * sample_rate)) // hop_length
    t = start_s + np.arange(n_frames) * (hop_length / sample_rate)  # (n_frames,) s
    right = np.clip(np.searchsorted(times, t), 1, len(times) - 1) if len(times) > 1 else np.zeros(n_frames, int)
    left = np.maximum(right - 1, 0)
    d_left = np.abs(t - times[left])
    d_right = np.abs(times[right] - t)
    nearest = np.where(d_left <= d_right, left, right)
    dist = np.minimum(d_left, d_right)
    hz = np.where(dist <= spacing * (1 + 1e-6), f0[nearest], 0.0)
    return Regridded(midi=hz_to_midi(hz), segment_start=start_s, segment_duration=dur, truncated=truncated)


# ============================================================================ inputs
def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _to_seconds(col: pd.Series, name: str) -> pd.Series:
    s = col.astype(object).map(lambda v: np.nan if v is None or (isinstance(v, str) and not v.strip()) else v)
    out = pd.to_numeric(s, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any():
        raise ValueError(f"column {name!r} has non-numeric values, e.g. {s[bad].iloc[0]!r} (seconds expected)")
    return out.astype(float)


def jobs_from_table(table: str | Path | pd.DataFrame, *, path_column: str, root: Path | None = None) -> pd.DataFrame:
    """Validate a table of inputs into jobs: ``recording_id, path, segment_start, segment_duration``.

    Other columns are ignored. Relative paths resolve against the table's folder (or ``root``).

    Raises:
        ValueError: a required column is missing, or recording ids repeat (they name the rows).
    """
    if isinstance(table, pd.DataFrame):
        df, base = table.copy(), (root or Path.cwd())
        source = "table"
    else:
        tpath = Path(table)
        df, base = _read_table(tpath), (root or tpath.resolve().parent)
        source = str(tpath)
    missing = [c for c in ("recording_id", path_column) if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; need recording_id and {path_column}")
    ids = df["recording_id"].astype(str).str.strip()
    if (ids == "").any():
        raise ValueError(f"{source}: {(ids == '').sum()} row(s) with an empty recording_id")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        names = sorted(set(dup))
        raise ValueError(
            f"{source}: duplicate recording_id(s) {names[:10]}{' ...' if len(names) > 10 else ''} "
            f"({len(dup)} rows); every recording_id must be unique"
        )

    def resolve(p: Any) -> str:
        if p is None or (not isinstance(p, str) and pd.isna(p)) or not str(p).strip():
            return ""
        q = Path(str(p).strip()).expanduser()
        return str(q if q.is_absolute() else base / q)

    jobs = pd.DataFrame({"recording_id": ids.to_numpy(dtype=object), "path": df[path_column].map(resolve).to_numpy(dtype=object)})
    for name in ("segment_start", "segment_duration"):
        jobs[name] = _to_seconds(df[name], name).to_numpy() if name in df.columns else np.nan
    return jobs


def jobs_from_dir(root: str | Path, *, extensions: tuple[str, ...] = C.AUDIO_EXTENSIONS, suffix: str | None = None) -> pd.DataFrame:
    """Jobs for every matching file under ``root`` (recursive); id = relative path without extension.

    Args:
        extensions: lower-case file extensions to take (audio).
        suffix: instead, take files whose name ends with this (pitch tracks); id drops it.

    Raises:
        ValueError: ``root`` is not a folder, or two files give the same id (``a.wav`` + ``a.mp3``).
    """
    from raympa.audio import is_audio_path, relative_id

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"not a folder: {root}")
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and (p.name.endswith(suffix) if suffix else is_audio_path(p, extensions))
    )
    ids = [relative_id(p, root, suffix=suffix) for p in files]
    seen: dict[str, Path] = {}
    for rid, p in zip(ids, files):
        if rid in seen:
            raise ValueError(f"two files give the recording id {rid!r}: {seen[rid].name} and {p.name}; keep one")
        seen[rid] = p
    return pd.DataFrame({
        "recording_id": pd.Series(ids, dtype=object),
        "path": pd.Series([str(p) for p in files], dtype=object),
        "segment_start": np.full(len(files), np.nan),
        "segment_duration": np.full(len(files), np.nan),
    })


# ============================================================================ per-row work (Ray tasks)
@dataclass(frozen=True)
class _Task:
    """What a Ray task needs besides the row (plain, picklable)."""

    kind: str  # "audio" | "pitchtrack"
    config: dict[str, Any]  # ExtractConfig fields (audio) or {sample_rate, hop_length} (pitchtrack)
    code_version: str
    cache_dir: str | None  # None = no cache
    # fault injection for tests: {"once_marker": path} kills the worker of the first task that finds
    # no file at path (and creates it); {"always_ids": [...]} kills the worker of every attempt at those ids
    faults: dict[str, Any] | None = None


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:
        return ""


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux/macOS; 0 where unknown)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return 0.0


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = text if isinstance(e, AudioError) else f"{type(e).__name__}: {text}".rstrip(": ")
    return msg[:ERROR_MAX_CHARS]


def _flags(n_frames: int, voiced_fraction: float, truncated: bool) -> str:
    flags = []
    if voiced_fraction == 0.0:
        flags.append("unvoiced")
    if n_frames < C.CHUNK_FRAMES:
        flags.append("short")
    if truncated:
        flags.append("truncated")
    return ";".join(flags)


def _compute_row(row: dict[str, Any], task: _Task) -> dict[str, Any]:
    from raympa import audio
    from raympa.cache import ContourCache, cache_key

    path = row["path"]
    if not path:
        raise AudioError("no path given (empty path column)")
    seg_start, seg_dur = row["segment_start"], row["segment_duration"]
    cache = ContourCache(task.cache_dir) if task.cache_dir else None
    if task.kind == "audio":
        cfg = ExtractConfig(**task.config)
        info = audio.probe(path)
        seg = audio.plan_segment(info, start=seg_start, duration=seg_dur)
        out_start = seg.start / info.sample_rate
        out_dur = seg.n_samples / info.sample_rate
        truncated = seg.truncated
        sample_rate, hop, backend = cfg.sample_rate, cfg.hop_length, cfg.backend
        segment_key: Any = [seg.start, seg.n_samples, info.sample_rate]
    else:
        sample_rate, hop, backend = int(task.config["sample_rate"]), int(task.config["hop_length"]), "import"
        segment_key = [None if seg_start is None or math.isnan(seg_start) else float(seg_start),
                       None if seg_dur is None or math.isnan(seg_dur) else float(seg_dur)]
        audio.check_file(path)
    sha1 = audio.file_sha1(path)
    key = cache_key(kind=task.kind, source_sha1=sha1, segment=segment_key, config=task.config,
                    code=task.code_version)
    status, midi, meta = "miss", None, {}
    if cache is not None:
        entry, status = cache.lookup(key)
        if entry is not None:
            midi, meta = entry
    if midi is None:
        if task.kind == "audio":
            pieces = audio.iter_segment(path, seg, sample_rate=sample_rate)
            midi = track_blocks(pieces, cfg)
            meta = {"segment_start": out_start, "segment_duration": out_dur, "truncated": truncated}
        else:
            times, f0 = read_pitchtrack(path)
            rg = regrid_pitchtrack(times, f0, sample_rate=sample_rate, hop_length=hop,
                                   start=seg_start, duration=seg_dur)
            midi = rg.midi
            meta = {"segment_start": rg.segment_start, "segment_duration": rg.segment_duration,
                    "truncated": rg.truncated}
        if cache is not None:
            try:
                cache.put(key, midi, meta)
            except OSError as e:  # a full or read-only cache must not fail the row
                log.warning("contour cache: cannot write %s: %s", cache.path(key), e)
    n_frames = int(len(midi))
    voiced_fraction = float(np.count_nonzero(midi) / n_frames) if n_frames else 0.0
    return {
        "recording_id": row["recording_id"],
        "midi": midi,
        "sample_rate": sample_rate,
        "hop_length": hop,
        "n_frames": n_frames,
        "source_sha1": sha1,
        "backend": backend,
        "voiced_fraction": voiced_fraction,
        "flags": _flags(n_frames, voiced_fraction, bool(meta["truncated"])),
        "segment_start": float(meta["segment_start"]),
        "segment_duration": float(meta["segment_duration"]),
        "source_path": path,
        "cached": status == "hit",
        "cache_status": status,
        "error": None,
    }


def _arrow_schema():
    import pyarrow as pa

    return pa.schema([
        ("_index", pa.int64()),
        ("recording_id", pa.string()),
        ("midi", pa.list_(pa.float32())),
        ("sample_rate", pa.int32()),
        ("hop_length", pa.int32()),
        ("n_frames", pa.int64()),
        ("source_sha1", pa.string()),
        ("backend", pa.string()),
        ("voiced_fraction", pa.float32()),
        ("flags", pa.string()),
        ("segment_start", pa.float64()),
        ("segment_duration", pa.float64()),
        ("source_path", pa.string()),
        ("node_id", pa.string()),
        ("cached", pa.bool_()),
        ("cache_status", pa.string()),
        ("cpu_seconds", pa.float64()),
        ("worker_peak_mb", pa.float64()),
        ("error", pa.string()),
    ])


def _rows_to_arrow(rows: list[dict[str, Any]]):
    import pyarrow as pa

    schema = _arrow_schema()
    cols: dict[str, Any] = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if f.name == "midi":
            offsets = np.zeros(len(rows) + 1, np.int32)
            arrays = [np.asarray(v if v is not None else [], np.float32) for v in vals]
            np.cumsum([len(a) for a in arrays], out=offsets[1:])
            flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
            cols[f.name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))
        else:
            cols[f.name] = pa.array(vals, type=f.type)
    return pa.Table.from_pydict(cols, schema=schema)


def _inject_faults(faults: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Kill this worker process the way a crash or the OOM killer would (fault-tolerance tests)."""
    marker = faults.get("once_marker")
    if marker and not os.path.exists(marker):
        Path(marker).write_text("crashed once\n")
        os._exit(1)
    if any(r["recording_id"] in faults.get("always_ids", ()) for r in rows):
        os._exit(1)


def _process_batch(batch, *, task: _Task):
    """Ray Data map function: one row in, one row out; errors become rows (pyarrow in and out)."""
    rows = batch.to_pylist()
    if task.faults:
        _inject_faults(task.faults, rows)
    node = _node_id()
    out = []
    for row in rows:
        t0 = time.process_time()
        try:
            res = _compute_row(row, task)
            res["cpu_seconds"] = time.process_time() - t0  # CPU of this worker process for the row
            res["worker_peak_mb"] = _peak_rss_mb()
        except Exception as e:  # every failure of one input becomes its error row
            res = {"recording_id": row["recording_id"], "source_path": row["path"], "error": _one_line(e)}
        res["_index"] = row["_index"]
        res["node_id"] = node
        out.append(res)
    return _rows_to_arrow(out)


# ============================================================================ driver
@dataclass
class ExtractResult:
    """What a run wrote and how it went."""

    out_dir: Path
    contours_path: Path
    errors_path: Path
    n_inputs: int
    n_ok: int
    n_errors: int
    n_cached: int  # rows read from the cache
    n_computed: int  # rows computed in this run
    n_corrupt: int  # corrupt cache entries found (and recomputed)
    audio_seconds: float = 0.0  # total duration of the contours computed (not cached) in this run
    cpu_seconds: float = 0.0  # worker CPU time spent on them (decode + resample + pitch tracking)
    worker_peak_mb: float = 0.0  # highest peak resident memory of a worker process (MB), this run or before
    flagged: dict[str, list[str]] = field(default_factory=dict)  # flag -> recording ids

    def summary(self) -> str:
        """One line: counts of inputs, cache use and errors."""
        return (f"{self.n_ok} of {self.n_inputs} contours written ({self.n_cached} of {self.n_ok} from cache, "
                f"{self.n_computed} computed" + (f", {self.n_corrupt} corrupt cache entries recomputed" if self.n_corrupt else "")
                + f"), {self.n_errors} errors -> {self.out_dir}")


@contextlib.contextmanager
def _ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """Use the running Ray instance, or start (and afterwards stop) one."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address is None:
        # a throwaway local instance: no token auth (Ray 2.60 turns it on by default)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False)
    else:
        ray.init(address=address, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _data_context(**settings: Any) -> Iterator[None]:
    """Set DataContext fields while a Dataset is built (the Dataset copies the context)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    old = {k: getattr(ctx, k) for k in settings}
    for k, v in settings.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(ctx, k, v)


def _auto_rows_per_task(n_items: int, n_cpus: float) -> int:
    """Inputs per Ray task: 1 for small runs (all CPUs busy), up to MAX_ROWS_PER_TASK for large ones.

    A task costs the driver and raylet some 10-30 ms; at about 0.2 CPU-s per 30-s audition
    (fast backend) that is 5-15 % of the work with one input per task, under 2 % with eight.
    Four tasks per CPU at least keep the load balanced at the end of the run.
    """
    return int(min(MAX_ROWS_PER_TASK, max(1, n_items // max(1, int(4 * n_cpus)))))


def _execute(items: list[dict[str, Any]], task: _Task, *, num_workers: int | None, rows_per_task: int):
    """One Ray Data pass: ``rows_per_task`` inputs per block and per task. Yields Arrow tables."""
    import ray
    from ray.data import TaskPoolStrategy

    n_blocks = math.ceil(len(items) / rows_per_task)
    # A lost block (its task killed its worker MAX_RETRIES + 1 times) is skipped, not fatal:
    # the caller finds its inputs missing and handles them (max_errored_blocks = every block).
    # Ray Data reserves part of the CPUs per operator (op_resource_reservation); with a single map
    # operator that only idles CPUs (on 2 cores the map ran on one: 1.15x for 2 workers), so the
    # reservation is off and the map may use every CPU.
    with _data_context(max_errored_blocks=n_blocks, op_resource_reservation_enabled=False), \
            warnings.catch_warnings():
        # max_retries has no named map_batches parameter in Ray 2.60 (only the deprecated
        # **ray_remote_args); Ray Data's own default is -1 (retry forever), which would hang the
        # run on an input that kills its worker every time.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ray.data.from_items(items, override_num_blocks=n_blocks)
        ds = ds.map_batches(
            _process_batch,
            batch_size=rows_per_task,
            batch_format="pyarrow",
            fn_kwargs={"task": task},
            compute=TaskPoolStrategy(size=num_workers),
            num_cpus=1,
            max_retries=MAX_RETRIES,
        )
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")


def _run(
    jobs: pd.DataFrame,
    out: str | Path,
    task: _Task,
    *,
    address: str | None,
    num_workers: int | None,
    rows_per_task: int | None,
) -> ExtractResult:
    import pyarrow as pa

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = jobs.reset_index(drop=True)
    items = [
        {"_index": i, "recording_id": str(r.recording_id), "path": str(r.path),
         "segment_start": float(r.segment_start), "segment_duration": float(r.segment_duration)}
        for i, r in enumerate(jobs.itertuples(index=False))
    ]
    tables: list[pa.Table] = []
    if items:
        with _ray_session(address, num_workers):
            import ray

            k = rows_per_task or _auto_rows_per_task(len(items), num_workers or ray.cluster_resources().get("CPU", 1))
            tables.extend(_execute(items, task, num_workers=num_workers, rows_per_task=k))
            done = {i for t in tables for i in t.column("_index").to_pylist()}
            lost = [it for it in items if it["_index"] not in done]
            if lost and k > 1:
                # a lost block may hold one input that kills its worker and k - 1 innocent ones:
                # redo them one per task, so only the culprit ends in errors.csv
                log.warning("%d input(s) lost with their worker; retrying them one per task", len(lost))
                tables.extend(_execute(lost, task, num_workers=num_workers, rows_per_task=1))
    table = pa.concat_tables(tables) if tables else _rows_to_arrow([])
    done = set(table.column("_index").to_pylist())
    lost = [it for it in items if it["_index"] not in done]
    if lost:  # inputs whose task failed MAX_RETRIES + 1 times: reported, never silently dropped
        table = pa.concat_tables([table, _rows_to_arrow([
            {"_index": it["_index"], "recording_id": it["recording_id"], "source_path": it["path"],
             "error": f"worker process died while processing this input ({MAX_RETRIES + 1} attempts)"}
            for it in lost
        ])])
    return _write_outputs(table.sort_by("_index"), out_dir, n_inputs=len(items))


def _write_outputs(table, out_dir: Path, *, n_inputs: int) -> ExtractResult:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    is_err = pc.is_valid(table.column("error"))
    ok = table.filter(pc.invert(is_err))
    err = table.filter(is_err)
    contours_path = out_dir / "contours.parquet"
    errors_path = out_dir / "errors.csv"
    tmp = contours_path.with_name(contours_path.name + ".tmp")
    pq.write_table(ok.select(list(CONTOUR_COLUMNS)), tmp)
    os.replace(tmp, contours_path)
    errors = pd.DataFrame({
        "recording_id": err.column("recording_id").to_pylist(),
        "audio_path": err.column("source_path").to_pylist(),
        "error": err.column("error").to_pylist(),
    }, columns=list(ERROR_COLUMNS))
    tmp = errors_path.with_name(errors_path.name + ".tmp")
    errors.to_csv(tmp, index=False)
    os.replace(tmp, errors_path)

    status = ok.column("cache_status").to_pylist()
    flags = ok.column("flags").to_pylist()
    ids = ok.column("recording_id").to_pylist()
    computed = [s != "hit" for s in status]
    audio_s = float(sum(d for d, c in zip(ok.column("segment_duration").to_pylist(), computed) if c))
    cpu_s = float(sum(t or 0.0 for t, c in zip(ok.column("cpu_seconds").to_pylist(), computed) if c))
    flagged: dict[str, list[str]] = {}
    for rid, fl in zip(ids, flags):
        for name in filter(None, (fl or "").split(";")):
            flagged.setdefault(name, []).append(rid)
    res = ExtractResult(
        out_dir=out_dir, contours_path=contours_path, errors_path=errors_path, n_inputs=n_inputs,
        n_ok=ok.num_rows, n_errors=err.num_rows, n_cached=status.count("hit"),
        n_computed=ok.num_rows - status.count("hit"), n_corrupt=status.count("corrupt"), flagged=flagged,
        audio_seconds=audio_s, cpu_seconds=cpu_s,
        worker_peak_mb=float(max([m or 0.0 for m in ok.column("worker_peak_mb").to_pylist()], default=0.0)),
    )
    log.info("%s", res.summary())
    _warn_flags(flagged)
    if res.n_errors:
        log.warning("%d input(s) failed; reasons in %s", res.n_errors, errors_path)
    return res


_FLAG_TEXT = {
    "unvoiced": "have no voiced frame (silent or all-unvoiced)",
    "short": f"are shorter than one model chunk ({C.CHUNK_FRAMES} frames)",
    "truncated": "have a segment running past the end of the file (cut at the end)",
}


def _warn_flags(flagged: dict[str, list[str]]) -> None:
    for name, ids in sorted(flagged.items()):
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        log.warning("%d recording(s) %s, flag %r: %s", len(ids), _FLAG_TEXT.get(name, name), name, shown)


def _jobs(source: str | Path | pd.DataFrame, *, path_column: str, suffix: str | None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return jobs_from_table(source, path_column=path_column)
    p = Path(source)
    if p.is_dir():
        return jobs_from_dir(p, suffix=suffix)
    if p.is_file():
        return jobs_from_table(p, path_column=path_column)
    raise FileNotFoundError(f"no such folder or table: {p}")


def _cache_dir(cache_dir: str | Path | None, use_cache: bool) -> str | None:
    from raympa.cache import default_cache_dir

    if not use_cache:
        return None
    return str(Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir())


def _validate_config(config: ExtractConfig) -> None:
    """Refuse impossible extraction parameters before any work starts (ValueError)."""
    if config.backend not in ("fast", "librosa"):
        raise ValueError(f"backend={config.backend!r}; choose 'fast' or 'librosa'")
    if config.sample_rate <= 0 or config.frame_length <= 0 or config.hop_length <= 0:
        raise ValueError("sample_rate, frame_length and hop_length must be positive")
    if not 0 < config.fmin < config.fmax <= config.sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax <= sample_rate / 2, got fmin={config.fmin}, fmax={config.fmax}")
    if config.sample_rate / config.fmin >= config.frame_length // 2:
        raise ValueError(f"fmin={config.fmin} Hz has a period of {config.sample_rate / config.fmin:.0f} samples, "
                         f"longer than half a frame ({config.frame_length // 2}); raise fmin or frame_length")
    if config.resolution <= 0:
        raise ValueError("resolution must be > 0 semitones")


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
    _faults: dict[str, Any] | None = None,
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
        rows_per_task: inputs per Ray task (None: 1 for small runs, up to ``MAX_ROWS_PER_TASK``
            for large ones, where it saves per-task overhead).

    Raises:
        ValueError: duplicate recording ids or missing columns (before any work starts).
    """
    config = config or ExtractConfig()
    _validate_config(config)
    jobs = _jobs(source, path_column="audio_path", suffix=None)
    task = _Task(kind="audio", config=config.key(),
                 code_version=f"{CACHE_FORMAT}/{_backend_version(config.backend)}/{BLOCK_FRAMES}+{CONTEXT_FRAMES}",
                 cache_dir=_cache_dir(cache_dir, use_cache), faults=_faults)
    log.info("extracting %d recording(s) with backend %r", len(jobs), config.backend)
    return _run(jobs, out, task, address=address, num_workers=num_workers, rows_per_task=rows_per_task)


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
    jobs = _jobs(source, path_column="pitchtrack_path", suffix=PITCHTRACK_SUFFIX)
    task = _Task(kind="pitchtrack", config={"sample_rate": int(sample_rate), "hop_length": int(hop_length)},
                 code_version=CACHE_FORMAT, cache_dir=_cache_dir(cache_dir, use_cache))
    log.info("importing %d pitch track(s) onto hop %d at %d Hz", len(jobs), hop_length, sample_rate)
    return _run(jobs, out, task, address=address, num_workers=num_workers, rows_per_task=rows_per_task)


def load_contours(path: str | Path) -> pd.DataFrame:
    """Read ``contours.parquet`` (or the folder holding it); ``midi`` as float32 numpy arrays."""
    import pyarrow.parquet as pq

    p = Path(path)
    if p.is_dir():
        p = p / "contours.parquet"
    table = pq.read_table(p)
    midi_col = table.column("midi")
    df = table.drop(["midi"]).to_pandas()
    arrays = []
    for chunk in midi_col.chunks:
        flat = chunk.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        offs = chunk.offsets.to_numpy()
        arrays.extend(flat[offs[i] : offs[i + 1]] for i in range(len(chunk)))
    df.insert(1, "midi", pd.Series(arrays, index=df.index, dtype=object))
    df["recording_id"] = df["recording_id"].astype(str)
    return df


# ============================================================================ CLI handlers
def _setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("raympa").setLevel(logging.INFO)


def _source(args) -> str:
    return args.table if getattr(args, "table", None) else args.dir


def cli_extract(args) -> int:
    """``raympa extract``: exit 0 when the run finished (errors.csv may list bad inputs), 2 on refused input."""
    _setup_logging()
    config = ExtractConfig(sample_rate=args.sample_rate, frame_length=args.frame_length, hop_length=args.hop_length,
                           fmin=args.fmin, fmax=args.fmax, backend=args.backend,
                           resolution=getattr(args, "resolution", ExtractConfig.resolution))
    try:
        res = extract(_source(args), args.out, config=config, cache_dir=args.cache_dir,
                      use_cache=not getattr(args, "no_cache", False), address=args.address,
                      num_workers=getattr(args, "num_workers", None), rows_per_task=getattr(args, "rows_per_task", None))
    except (ValueError, FileNotFoundError) as e:
        print(f"raympa extract: {e}", file=sys.stderr)
        return 2
    print(res.summary())
    return 0


def cli_import_pitchtracks(args) -> int:
    """``raympa import-pitchtracks``: same exit codes as ``raympa extract``."""
    _setup_logging()
    try:
        res = import_pitchtracks(_source(args), args.out, sample_rate=args.sample_rate, hop_length=args.hop_length,
                                 cache_dir=args.cache_dir, use_cache=not getattr(args, "no_cache", False),
                                 address=args.address, num_workers=getattr(args, "num_workers", None),
                                 rows_per_task=getattr(args, "rows_per_task", None))
    except (ValueError, FileNotFoundError) as e:
        print(f"raympa import-pitchtracks: {e}", file=sys.stderr)
        return 2
    print(res.summary())
    return 0


__all__ = [
    "extract",
    "import_pitchtracks",
    "load_contours",
    "contour_from_audio",
    "track_blocks",
    "hz_to_midi",
    "read_pitchtrack",
    "regrid_pitchtrack",
    "jobs_from_table",
    "jobs_from_dir",
    "ExtractResult",
    "CONTOUR_COLUMNS",
    "ERROR_COLUMNS",
]
