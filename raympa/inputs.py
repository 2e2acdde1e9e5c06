"""Input tables: the jobs of an extraction or import, from a table or a folder.

A job is one row ``recording_id, path, segment_start, segment_duration`` (segment in seconds,
NaN = from the start / to the end). A table names its path column (``audio_path`` for audio,
``pitchtrack_path`` for pitch tracks) and may carry any other columns (the FBA index and the demo
``ratings.csv`` work as they are); a folder gives one job per matching file, named by its path
relative to the folder without the extension (or suffix). Everything a user can get wrong is
refused here, before any work starts: a missing table or folder, missing columns, empty or
repeated recording ids, non-numeric segment times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raympa import constants as C

JOB_COLUMNS = ("recording_id", "path", "segment_start", "segment_duration")


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV (every column as text) or parquet table; ValueError when it cannot be parsed."""
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as e:  # pandas' and pyarrow's parse errors are ValueErrors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a readable CSV or parquet table ({first})") from None


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



def jobs(source: str | Path | pd.DataFrame, *, path_column: str, suffix: str | None = None) -> pd.DataFrame:
    """Jobs from a DataFrame, a table file (CSV or parquet) or a folder (see :func:`jobs_from_dir`).

    Raises:
        FileNotFoundError: ``source`` is neither a folder nor a file.
        ValueError: as :func:`jobs_from_table` / :func:`jobs_from_dir`.
    """
    if isinstance(source, pd.DataFrame):
        return jobs_from_table(source, path_column=path_column)
    p = Path(source)
    if p.is_dir():
        return jobs_from_dir(p, suffix=suffix)
    if p.is_file():
        return jobs_from_table(p, path_column=path_column)
    raise FileNotFoundError(f"no such folder or table: {p}")


__all__ = ["JOB_COLUMNS", "jobs", "jobs_from_dir", "jobs_from_table"]
