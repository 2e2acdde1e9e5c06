"""The contours folder, the output of ``raympa extract`` and ``raympa import-pitchtracks``.

The one owner of its file names and columns, for writing and for reading::

    OUT/contours.parquet   one row per recording (columns: ``CONTOUR_COLUMNS``; ``midi`` is
                           list<float32>, MIDI per frame, 0 = unvoiced)
    OUT/errors.csv         ``ERROR_COLUMNS``: one line per input that failed, with its reason

Both files are written once, atomically (temporary file + ``os.replace``). ``flags`` holds
``;``-joined names from ``FLAG_TEXT``; flagged rows are kept, and the run logs one warning per
flag. docs/contours.md describes every column.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from raympa import constants as C

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

CONTOURS_FILE = "contours.parquet"
ERRORS_FILE = "errors.csv"
# CONTOURS_FILE columns, in order (docs/architecture.md "Contours" is the contract)
CONTOUR_COLUMNS = (
    "recording_id",
    "midi",
    "sample_rate",
    "hop_length",
    "frame_length",
    "fmin",
    "fmax",
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
FLAG_TEXT = {
    "unvoiced": "have no voiced frame (silent or all-unvoiced)",
    "short": f"are shorter than one model chunk ({C.CHUNK_FRAMES} frames)",
    "truncated": "have a segment running past the end of the file (cut at the end)",
}


def flags(n_frames: int, voiced_fraction: float, truncated: bool) -> str:
    """The ``flags`` value of a contour row (names of ``FLAG_TEXT``, ``;``-joined)."""
    names = []
    if voiced_fraction == 0.0:
        names.append("unvoiced")
    if n_frames < C.CHUNK_FRAMES:
        names.append("short")
    if truncated:
        names.append("truncated")
    return ";".join(names)


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


def write_outputs(table: "pa.Table", out_dir: Path, *, n_inputs: int) -> ExtractResult:
    """Write the folder from the engine's rows (``raympa.raydata.arrow_schema``); log a summary."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    is_err = pc.is_valid(table.column("error"))
    ok = table.filter(pc.invert(is_err))
    err = table.filter(is_err)
    contours_path = out_dir / CONTOURS_FILE
    errors_path = out_dir / ERRORS_FILE
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
    row_flags = ok.column("flags").to_pylist()
    ids = ok.column("recording_id").to_pylist()
    computed = [s != "hit" for s in status]
    audio_s = float(sum(d for d, c in zip(ok.column("segment_duration").to_pylist(), computed) if c))
    cpu_s = float(sum(t or 0.0 for t, c in zip(ok.column("cpu_seconds").to_pylist(), computed) if c))
    flagged: dict[str, list[str]] = {}
    for rid, fl in zip(ids, row_flags):
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


def _warn_flags(flagged: dict[str, list[str]]) -> None:
    for name, ids in sorted(flagged.items()):
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        log.warning("%d recording(s) %s, flag %r: %s", len(ids), FLAG_TEXT.get(name, name), name, shown)


def load_contours(path: str | Path) -> pd.DataFrame:
    """Read ``contours.parquet`` (or the folder holding it); ``midi`` as float32 numpy arrays."""
    import pyarrow.parquet as pq

    p = Path(path)
    if p.is_dir():
        p = p / CONTOURS_FILE
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


__all__ = ["CONTOURS_FILE", "CONTOUR_COLUMNS", "ERRORS_FILE", "ERROR_COLUMNS", "FLAG_TEXT", "ExtractResult",
           "flags", "load_contours", "write_outputs"]
