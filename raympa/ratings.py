"""Ratings tables: read, validate, and split 8:1:1 by student.

A ratings table is the contract between the data stage (``raympa fba-index``, ``raympa
demo-data``) and everything after it (docs/architecture.md, "Ratings table"). Its columns are
``constants.RATINGS_COLUMNS``; ratings are floats in [0, 1] (NaN = missing); ``segment_start``
and ``segment_duration`` are seconds into the audio file (NaN = the whole file); ``audio_path``,
``pitchtrack_path``, ``piece_id`` and ``reference_path`` may be empty, and relative paths resolve
against the table's folder. ``piece_id`` names the piece a row plays (rows of one piece share it);
``reference_path`` is one reference of that piece: a MIDI score, an audio file, or a pitch track
in the ``time_sec,f0_hz`` format.

Split (Seshadri & Lerch 2021, section 4.2: 8:1:1; the original code shuffles with a fixed seed,
so the split is the same for every training seed): :func:`assign_splits` puts each student
(``student_id``, or ``recording_id`` when there is none) in exactly one of ``train``, ``val``,
``test``, stratified by band and instrument, deterministically for a ``seed`` that is separate from the
training seed. Method (systematic stratified sampling): groups are ordered by band and instrument, then in
a seeded random order within each instrument; the ordered list is cut into blocks of 10, and each
block receives a seeded random permutation of 8 x train, 1 x val, 1 x test. Every instrument thus
gets 8:1:1 up to one group per block boundary, and the whole table gets 8:1:1 exactly for
multiples of 10 groups.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from raympa import constants as C

RATING_COLUMNS = C.RATED_COLUMNS  # kept for callers of the old name
STRING_COLUMNS = ("recording_id", "student_id", "band", "instrument", "audio_path", "pitchtrack_path", "split",
                  "piece_id", "reference_path")
FLOAT_COLUMNS = (*C.RATED_COLUMNS, "segment_start", "segment_duration")
PATH_COLUMNS = ("audio_path", "pitchtrack_path", "reference_path")  # relative: against the table's folder
_BLOCK = 10  # groups per block of the systematic split: 8 train, 1 val, 1 test (paper: 8:1:1)


def _block_labels() -> np.ndarray:
    counts = [round(f * _BLOCK) for f in C.SPLIT_FRACTIONS]  # [8, 1, 1]
    return np.repeat(np.array(C.SPLITS, dtype=object), counts)


def _stable_int(text: str) -> int:
    """A process-independent 32-bit integer for a string (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "little")


def assign_splits(df: pd.DataFrame, seed: int = 0) -> pd.Series:
    """The 8:1:1 split of a ratings table, by student, stratified by band and instrument.

    Args:
        df: ratings table; uses ``student_id`` (or ``recording_id`` when ``student_id`` is absent
            or empty for a row) and ``instrument`` (optional).
        seed: split seed, independent of any training seed.

    Returns:
        A string Series aligned with ``df.index`` holding ``train``, ``val`` or ``test``. Rows of
        one student always share a split. The result depends only on the set of (student,
        instrument) pairs and ``seed``, not on row order.
    """
    if "recording_id" not in df.columns and "student_id" not in df.columns:
        raise ValueError("assign_splits needs a student_id or recording_id column")
    if len(df) == 0:
        return pd.Series([], index=df.index, dtype=object, name="split")
    group = _group_keys(df)
    if "instrument" in df.columns:
        instrument = df["instrument"].astype(object).where(df["instrument"].notna(), "").astype(str)
    else:
        instrument = pd.Series("", index=df.index)
    if "band" in df.columns:  # bands are trained apart: keep each band 8:1:1 too
        band = df["band"].astype(object).where(df["band"].notna(), "").astype(str)
        instrument = (band + "|" + instrument).where(band != "", instrument)
    # A student's stratum is their most frequent instrument (ties: alphabetical), so a student
    # who appears with two instruments still lands in one split.
    strata = (
        pd.DataFrame({"group": group.values, "instrument": instrument.values})
        .groupby(["group", "instrument"]).size().rename("n").reset_index()
        .sort_values(["group", "n", "instrument"], ascending=[True, False, True])
        .drop_duplicates("group")
    )
    ordered: list[str] = []
    for inst in sorted(strata["instrument"].unique()):
        members = np.sort(strata.loc[strata["instrument"] == inst, "group"].to_numpy(dtype=str))
        rng = np.random.default_rng([seed, _stable_int(inst)])
        ordered.extend(members[rng.permutation(len(members))].tolist())
    rng = np.random.default_rng([seed, _stable_int("blocks")])
    labels = np.empty(len(ordered), dtype=object)
    base = _block_labels()
    for start in range(0, len(ordered), _BLOCK):
        block = base[rng.permutation(_BLOCK)]
        stop = min(start + _BLOCK, len(ordered))
        if stop - start < _BLOCK:
            # A short last block: keep its labels proportional to what the table still lacks.
            block = _short_block(labels[:start], stop - start, rng)
        labels[start:stop] = block[: stop - start]
    mapping = dict(zip(ordered, labels))
    out = pd.Series(group.map(mapping).to_numpy(dtype=object), index=df.index, name="split")
    counts = out.value_counts()
    empty = [s for s in C.SPLITS if counts.get(s, 0) == 0]
    if empty:
        warnings.warn(
            f"split: {len(ordered)} students give no {'/'.join(empty)} rows; "
            "use at least 10 students for a usable 8:1:1 split",
            stacklevel=2,
        )
    return out


def _short_block(done: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels for the last k < 10 groups: the splits furthest below their share go first."""
    n_total = len(done) + k
    have = {s: int(np.sum(done == s)) for s in C.SPLITS}
    labels: list[str] = []
    for _ in range(k):
        deficit = {s: f * n_total - have[s] for s, f in zip(C.SPLITS, C.SPLIT_FRACTIONS)}
        best = max(C.SPLITS, key=lambda s: (deficit[s], -C.SPLITS.index(s)))
        labels.append(best)
        have[best] += 1
    arr = np.array(labels, dtype=object)
    return arr[rng.permutation(k)]


def _group_keys(df: pd.DataFrame) -> pd.Series:
    """student_id where present and non-empty, else 'rec:' + recording_id."""
    rec = df["recording_id"].astype(str) if "recording_id" in df.columns else None
    if "student_id" in df.columns:
        sid = df["student_id"].astype(object)
        missing = sid.isna() | (sid.astype(str).str.strip() == "")
        sid = sid.astype(str).str.strip()
        if missing.any():
            if rec is None:
                raise ValueError(f"{int(missing.sum())} rows have no student_id and there is no recording_id")
            sid = sid.where(~missing, "rec:" + rec)
        return sid
    assert rec is not None
    return "rec:" + rec


def validate_ratings(df: pd.DataFrame, *, source: str = "ratings table") -> pd.DataFrame:
    """Check a ratings table and return it with every contract column present and typed.

    Missing optional columns are added empty (strings "" / NaN). Raises ValueError for a missing
    ``recording_id``, no criterion column at all, duplicate recording ids, ratings outside [0, 1]
    (other than -1, which the FBA files use for "missing" and which becomes NaN with a warning),
    negative segment times, or unknown split values.
    """
    if "recording_id" not in df.columns:
        raise ValueError(f"{source}: no recording_id column (columns: {list(df.columns)})")
    present = [c for c in C.CRITERIA if c in df.columns]
    if not present:
        raise ValueError(f"{source}: none of the rating columns {list(C.CRITERIA)} is present")
    out = df.copy()
    for col in STRING_COLUMNS:
        if col not in out.columns:
            out[col] = ""
        ser = out[col].astype(object)
        out[col] = ser.where(ser.notna(), "").astype(str).str.strip()
        out[col] = out[col].replace({"nan": "", "None": ""}) if col != "recording_id" else out[col]
    if (out["recording_id"] == "").any():
        raise ValueError(f"{source}: {int((out['recording_id'] == '').sum())} rows have an empty recording_id")
    dup = out["recording_id"][out["recording_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{source}: duplicate recording_id values, e.g. {dup.iloc[:3].tolist()}")
    for col in FLOAT_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
    for col in C.RATED_COLUMNS:
        minus_one = np.isclose(out[col], -1.0)
        if minus_one.any():
            warnings.warn(f"{source}: {int(minus_one.sum())} '{col}' ratings are -1 (missing); read as NaN",
                          stacklevel=2)
            out.loc[minus_one, col] = np.nan
        bad = out[col].notna() & ((out[col] < 0) | (out[col] > 1))
        if bad.any():
            ex = out.loc[bad, ["recording_id", col]].head(3).to_dict("records")
            raise ValueError(f"{source}: {int(bad.sum())} '{col}' ratings outside [0, 1], e.g. {ex}")
    for col in ("segment_start", "segment_duration"):
        if (out[col] < 0).any():
            raise ValueError(f"{source}: negative {col} values")
    if (out["segment_duration"] == 0).any():
        raise ValueError(f"{source}: segment_duration 0 (use an empty value for the whole file)")
    if "year" not in out.columns:
        out["year"] = pd.array([pd.NA] * len(out), dtype="Int64")
    else:
        out["year"] = pd.to_numeric(out["year"], errors="raise").astype("Int64")
    bad_split = ~out["split"].isin(("", *C.SPLITS))
    if bad_split.any():
        raise ValueError(f"{source}: split values {sorted(out.loc[bad_split, 'split'].unique())}; "
                         f"allowed: {list(C.SPLITS)} (or empty everywhere to compute it)")
    if (out["split"] == "").any() and (out["split"] != "").any():
        raise ValueError(f"{source}: the split column is filled for some rows only; "
                         "fill it everywhere or leave it empty everywhere")
    extra = [c for c in out.columns if c not in C.RATINGS_COLUMNS]
    return out[list(C.RATINGS_COLUMNS) + extra]


def read_ratings(path: str | Path, *, split_seed: int = 0, resolve_paths: bool = True) -> pd.DataFrame:
    """Read a ratings table (FBA index or demo ``ratings.csv``; CSV or parquet).

    Args:
        path: the table file, or a folder holding ``ratings.csv`` (a demo folder).
        split_seed: seed of :func:`assign_splits`, used only when the table has no split.
        resolve_paths: turn relative ``audio_path`` / ``pitchtrack_path`` / ``reference_path``
            into absolute paths (against the table's folder).

    Returns:
        The validated table, columns ``constants.RATINGS_COLUMNS`` first (extra columns kept),
        ``split`` always filled.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "ratings.csv"
    if not p.is_file():
        raise FileNotFoundError(f"ratings table {p} not found (run `raympa fba-index` or `raympa demo-data`)")
    if p.suffix.lower() == ".parquet":
        df = pd.read_parquet(p)
    else:
        df = pd.read_csv(p, dtype={c: str for c in STRING_COLUMNS}, keep_default_na=True)
    df = validate_ratings(df, source=str(p))
    if (df["split"] == "").all():
        df["split"] = assign_splits(df, seed=split_seed).to_numpy()
    if resolve_paths:
        root = p.resolve().parent
        for col in PATH_COLUMNS:
            df[col] = [_resolve(v, root) for v in df[col]]
    return df


def _resolve(value: str, root: Path) -> str:
    if not value:
        return ""
    q = Path(value).expanduser()
    return str(q if q.is_absolute() else (root / q))


def write_ratings(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a ratings table as CSV, or parquet when ``path`` ends in ``.parquet``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".parquet":
        df.to_parquet(p, index=False)
    else:
        df.to_csv(p, index=False, float_format="%.6g")
    return p
