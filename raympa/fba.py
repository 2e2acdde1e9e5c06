"""The real FBA layout (MIG-FbaData annotations, private audio, lab pitch tracks) -> ratings table.

Reads a checkout of the public MIG-FbaData annotation repository (GPL-3.0,
github.com/GTCMT/MIG-FbaData; its README describes the layout) and writes one row per audition in
the ratings-table format (docs/data.md; columns ``constants.RATINGS_COLUMNS`` plus ``note`` and ``usable``):

* ratings come from ``normalized_student_scores.csv`` (already in [0, 1]; -1 = missing) in every
  year: ``<segment>_musicality_tempo_style``, ``_note_accuracy``, ``_rhythmic_accuracy``,
  ``_tone_quality``;
* the segment (start, duration in seconds into the whole-audition recording) comes from
  ``FBA<year>/<band>/assessments/<id>/<id>_segment.txt``: a ``//`` header, then one
  ``start duration`` row per segment, separated by a tab (2013-2016) or spaces (2017-2018); the
  technical etude is the 2nd data row (lyrical etude, technical etude, chromatic scale, major
  scales, sight reading);
* audio, when ``audio`` is given, is looked up at the original code's layout
  ``<audio>/<year>-<year+1>/<band>/<id>/<id>.mp3`` (2013: band folder ``<band>scores``; any of
  ``constants.AUDIO_EXTENSIONS``), then anywhere under ``audio`` as ``<id>.<ext>``; ``audio`` may
  also be a CSV/parquet table with ``student_id`` (or ``recording_id``) and ``audio_path``;
* precomputed pitch tracks ``<id>_pyin_pitchtrack.txt`` are looked up anywhere under
  ``pitchtracks``.
* ``piece_id`` is ``<year>/<band>/<instrument>/<segment>`` (one etude per year, band and
  instrument); ``reference_path`` is the piece's MIDI score where one exists: the checkout's own
  middle-school alto sax technical etudes (``FBA<year>/middleschool/musicalscores/altosax/*tech*.mid``),
  or, first, a file in ``scores`` named as :func:`score_file_name` says.

A row is *usable* when its ratings for the study's three criteria are valid, a segment row exists
to cut the etude from the audition, and the student is not one of the original code's bad ids.
Every other row is counted under its first failing reason and, with ``keep_unusable``, kept with
the reasons in ``note``. Nothing is dropped silently.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raympa import constants as C
from raympa.ratings import assign_splits, validate_ratings, write_ratings

SCORES_CSV = "normalized_student_scores.csv"

# Row of each segment in <id>_segment.txt (MIG-FbaData README: lyricalEtude, technicalEtude,
# scalesChromatic, scalesMajor, sightReading).
SEGMENT_ROWS = {"lyrical_etude": 0, "technical_etude": 1, "sight_reading": 4}

# Scores-CSV column suffix of each ratings-table criterion.
CSV_CRITERIA = {
    "musicality": "musicality_tempo_style",
    "note_accuracy": "note_accuracy",
    "rhythm_accuracy": "rhythmic_accuracy",
    "tone_quality": "tone_quality",
}

# Students the original code excludes (pseshadri9/contrastive-music-performance-assessment).
BAD_IDS = {
    "middleschool": frozenset({29429, 32951, 42996, 43261, 44627, 56948, 39299, 39421, 41333, 42462,
                               43811, 44319, 61218, 29266, 33163}),
    "symphonicband": frozenset({33026, 33476, 35301, 41602, 52950, 53083, 46038, 33368, 42341, 51598,
                                56778, 56925, 30430, 55642, 60935}),
}

# Removal reasons, in the order they are checked (the first failing one is counted).
REASONS = (
    "missing_rating",  # a study criterion is -1 or empty in the scores CSV
    "rating_out_of_range",  # a study criterion outside [0, 1]
    "no_annotation_folder",  # FBA<year>/<band>/assessments/<id>/ does not exist
    "no_segment_file",  # the folder holds no <id>_segment.txt
    "bad_segment",  # segment file malformed, too few rows, or a non-positive duration
    "bad_id",  # excluded by the original code
)


@dataclass(frozen=True)
class IndexOptions:
    """What ``build_index`` selects (defaults: the paper's study, Seshadri & Lerch 2021, section 4.1)."""

    years: tuple[int, ...] = (2013, 2014, 2015, 2016, 2017, 2018)  # paper: FBA 2013-2018
    bands: tuple[str, ...] = C.STUDY_BANDS  # paper leaves out concertband
    instruments: tuple[str, ...] = C.INSTRUMENTS  # paper: alto sax, Bb clarinet, flute
    segment: str = "technical_etude"  # paper: the technical etude
    split_seed: int = 0  # code: a fixed shuffle seed, separate from training seeds
    keep_unusable: bool = False


def parse_years(text: str) -> tuple[int, ...]:
    """'2013-2018' or '2013,2015' (or a mix, '2013-2014,2016') -> sorted tuple of years."""
    years: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d{4})\s*-\s*(\d{4})", part)
        try:
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ValueError
                years.update(range(lo, hi + 1))
            else:
                years.add(int(part))
        except ValueError:
            raise ValueError(f"years {text!r}: use e.g. 2013-2018 or 2013,2015") from None
    if not years:
        raise ValueError(f"years {text!r}: no year given")
    return tuple(sorted(years))


def read_segment_file(path: str | Path) -> np.ndarray:
    """Read an FBA ``<id>_segment.txt``: ``(n_segments, 2)`` float64 of (start_sec, duration_sec).

    Lines starting with ``//`` and blank lines are skipped; fields are separated by tabs, spaces
    or commas. Raises ValueError naming the file and line for anything else.
    """
    rows: list[tuple[float, float]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        fields = [f for f in re.split(r"[\s,]+", text) if f]
        try:
            if len(fields) != 2:
                raise ValueError
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise ValueError(f"{path}: line {lineno} is not 'start_sec duration_sec': {line!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def audio_candidates(root: Path, year: int, band: str, student_id: str) -> list[Path]:
    """Paths where the original code's layout puts one student's audition audio."""
    folders = [f"{band}scores", band] if year == 2013 else [band, f"{band}scores"]
    return [root / f"{year}-{year + 1}" / folder / student_id / f"{student_id}{ext}"
            for folder in folders for ext in C.AUDIO_EXTENSIONS]


def piece_id(year: int, band: str, instrument: str, segment: str) -> str:
    """The ``piece_id`` of an FBA audition: everyone of one year, band and instrument plays the
    same etude, so e.g. ``2013/middleschool/Alto Saxophone/technical_etude``."""
    return f"{year}/{band}/{instrument}/{segment}"


def score_file_name(year: int, band: str, instrument: str, segment: str) -> str:
    """The file name ``--scores DIR`` expects for one piece's MIDI score:
    ``<year>_<band>_<instrument>_<segment>.mid``, the instrument in lower case with everything but
    letters and digits removed, e.g. ``2014_symphonicband_bbclarinet_technical_etude.mid``."""
    slug = re.sub(r"[^a-z0-9]", "", instrument.lower())
    return f"{year}_{band}_{slug}_{segment}.mid"


def annotation_scores(annotations: str | Path) -> dict[int, Path]:
    """The MIDI scores in a MIG-FbaData checkout: year -> the middle-school alto sax technical
    etude (``FBA<year>/middleschool/musicalscores/altosax/*tech*.mid``; 2013-2015 there)."""
    found = {}
    for p in sorted(Path(annotations).glob("FBA*/middleschool/musicalscores/altosax/*tech*.mid")):
        found[int(p.parts[-5][3:])] = p
    return found


def _user_scores(scores: str | Path | None) -> dict[str, Path]:
    """Lower-case file name (``.midi`` read as ``.mid``) -> path, of the files in ``scores``."""
    if scores is None:
        return {}
    root = Path(scores)
    if not root.is_dir():
        raise FileNotFoundError(f"score folder {root} does not exist")
    return {p.name.lower().replace(".midi", ".mid"): p.resolve() for p in sorted(root.iterdir()) if p.is_file()}


class _FileFinder:
    """Finds files by student id under a root: fixed layouts first, then one recursive scan."""

    def __init__(self, root: Path, suffixes: tuple[str, ...], pattern: str) -> None:
        self.root, self.suffixes, self.pattern = root, suffixes, pattern
        self._by_id: dict[str, list[Path]] | None = None

    def scan(self, student_id: str) -> list[Path]:
        if self._by_id is None:
            self._by_id = {}
            for p in sorted(self.root.rglob(self.pattern)):
                name = p.name
                for suf in self.suffixes:
                    if name.lower().endswith(suf):
                        self._by_id.setdefault(name[: len(name) - len(suf)], []).append(p)
                        break
        return self._by_id.get(student_id, [])


def _read_audio_table(path: Path) -> dict[str, str]:
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
    key = "recording_id" if "recording_id" in df.columns else "student_id"
    if key not in df.columns or "audio_path" not in df.columns:
        raise ValueError(f"audio table {path}: needs columns student_id (or recording_id) and audio_path; "
                         f"has {list(df.columns)}")
    base = path.resolve().parent
    out = {}
    for k, v in zip(df[key].astype(str), df["audio_path"].fillna("").astype(str)):
        if v:
            q = Path(v).expanduser()
            out[k.strip()] = str(q if q.is_absolute() else base / q)
    return out


def read_scores(annotations: str | Path, segment: str) -> pd.DataFrame:
    """Read the scores CSV; raise a clear error for a missing folder, file or column."""
    root = Path(annotations)
    if not root.is_dir():
        raise FileNotFoundError(f"annotation folder {root} does not exist (pass a MIG-FbaData checkout)")
    csv = root / SCORES_CSV
    if not csv.is_file():
        raise FileNotFoundError(f"{root} holds no {SCORES_CSV}: is it a MIG-FbaData checkout?")
    df = pd.read_csv(csv, dtype={"student_id": str, "band": str, "instrument": str})
    needed = ["student_id", "year", "band", "instrument"] + [f"{segment}_{CSV_CRITERIA[c]}" for c in C.CRITERIA]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{csv}: missing column(s) {missing} needed for segment {segment!r}")
    tone = f"{segment}_tone_quality"
    if tone not in df.columns:
        warnings.warn(f"{csv}: no {tone} column; tone_quality left empty", stacklevel=2)
        df[tone] = np.nan
    df["student_id"] = df["student_id"].astype(str).str.strip()
    df["year"] = pd.to_numeric(df["year"], errors="raise").astype(int)
    return df


@dataclass(frozen=True)
class _Sources:
    """Where audio and pitch tracks are looked up (see :func:`build_index`)."""

    audio_root: Path | None = None
    audio_table: dict[str, str] | None = None  # recording or student id -> audio path
    audio_finder: _FileFinder | None = None
    pitchtracks: Path | None = None
    track_finder: _FileFinder | None = None
    annotation_scores: dict[str, Path] | None = None  # piece_id -> the annotation folder's MIDI score
    user_scores: dict[str, Path] | None = None  # score_file_name -> the user's MIDI score

    @classmethod
    def open(cls, annotations: Path, audio: str | Path | None, pitchtracks: str | Path | None,
             scores: str | Path | None) -> "_Sources":
        audio_root = Path(audio) if audio is not None else None
        audio_table, audio_finder = None, None
        if audio_root is not None:
            if audio_root.is_file():
                audio_table = _read_audio_table(audio_root)
            elif audio_root.is_dir():
                audio_finder = _FileFinder(audio_root, C.AUDIO_EXTENSIONS, "*.*")
            else:
                raise FileNotFoundError(f"audio root {audio_root} does not exist")
        track_root, track_finder = None, None
        if pitchtracks is not None:
            track_root = Path(pitchtracks)
            if not track_root.is_dir():
                raise FileNotFoundError(f"pitch-track root {pitchtracks} does not exist")
            track_finder = _FileFinder(track_root, ("_pyin_pitchtrack.txt",), "*_pyin_pitchtrack.txt")
        own = {piece_id(year, "middleschool", "Alto Saxophone", "technical_etude"): p.resolve()
               for year, p in annotation_scores(annotations).items()}
        return cls(audio_root, audio_table, audio_finder, track_root, track_finder, own, _user_scores(scores))

    def audio(self, rid: str, year: int, band: str, sid: str, notes: list[str]) -> str:
        """The audio path of one audition ("" with a note when there is none)."""
        if self.audio_table is not None:
            path = self.audio_table.get(rid) or self.audio_table.get(sid) or ""
            if path and Path(path).is_file():
                return path
            notes.append(f"no audio for this student in {self.audio_root}" if not path
                         else f"audio file {path} does not exist")
            return ""
        if self.audio_root is None or self.audio_finder is None:
            return ""
        found = [p for p in audio_candidates(self.audio_root, year, band, sid) if p.is_file()]
        if not found:
            found = self.audio_finder.scan(sid)
            if len(found) > 1:
                notes.append(f"{len(found)} audio files named {sid}.*; took {found[0]}")
        if found:
            return str(found[0].resolve())
        notes.append(f"no audio file {sid}.* under {self.audio_root}")
        return ""

    def score(self, year: int, band: str, instrument: str, segment: str) -> str:
        """The MIDI score of one piece ("" when there is none): the user's, else the annotations'."""
        found = (self.user_scores or {}).get(score_file_name(year, band, instrument, segment))
        if found is None:
            found = (self.annotation_scores or {}).get(piece_id(year, band, instrument, segment))
        return str(found) if found is not None else ""

    def pitchtrack(self, sid: str, notes: list[str]) -> str:
        """The pitch-track path of one student ("" with a note when there is none)."""
        if self.track_finder is None:
            return ""
        found = self.track_finder.scan(sid)
        if found:
            return str(found[0].resolve())
        notes.append(f"no {sid}_pyin_pitchtrack.txt under {self.pitchtracks}")
        return ""


def _ratings_of(rec, segment: str, row: dict, reasons: list[str], notes: list[str]) -> None:
    """Fill ``row``'s rating columns from a scores-CSV record (-1 or out of range -> NaN)."""
    for crit, suffix in CSV_CRITERIA.items():
        v = float(getattr(rec, f"{segment}_{suffix}"))
        row[crit] = np.nan if (np.isnan(v) or v == -1) else v
        if crit in C.CRITERIA:
            if np.isnan(v) or v == -1:
                reasons.append("missing_rating")
            elif not 0.0 <= v <= 1.0:
                reasons.append("rating_out_of_range")
                notes.append(f"{crit}={v} outside [0, 1]")
        if not np.isnan(row[crit]) and not 0.0 <= row[crit] <= 1.0:
            row[crit] = np.nan


def _segment_of(folder: Path, sid: str, segment: str, row: dict, reasons: list[str], notes: list[str]) -> None:
    """Fill ``row``'s segment columns from ``<id>_segment.txt`` (or record why it cannot)."""
    seg_row = SEGMENT_ROWS[segment]
    seg_file = folder / f"{sid}_segment.txt"
    row["segment_start"] = row["segment_duration"] = np.nan
    if not folder.is_dir():
        reasons.append("no_annotation_folder")
        return
    if not seg_file.is_file():
        reasons.append("no_segment_file")
        return
    try:
        seg = read_segment_file(seg_file)
        if len(seg) <= seg_row:
            raise ValueError(f"{seg_file.name} has {len(seg)} segment rows; {segment} is row {seg_row + 1}")
        start, dur = seg[seg_row]
        if not (dur > 0 and start >= 0):
            raise ValueError(f"{segment} segment start {start} s, duration {dur} s")
        row["segment_start"], row["segment_duration"] = float(start), float(dur)
    except ValueError as err:
        reasons.append("bad_segment")
        notes.append(str(err))


def _index_row(rec, root: Path, options: IndexOptions, sources: _Sources) -> dict:
    """One ratings-table row (with ``usable``, ``reason``, ``note``) from a scores-CSV record."""
    sid, year, band = str(rec.student_id), int(rec.year), str(rec.band)
    rid = f"{year}/{band}/{sid}"
    row = {"recording_id": rid, "student_id": sid, "year": year, "band": band, "instrument": rec.instrument}
    reasons: list[str] = []
    notes: list[str] = []
    _ratings_of(rec, options.segment, row, reasons, notes)
    reasons = list(dict.fromkeys(reasons))  # one entry per reason, in order
    _segment_of(root / f"FBA{year}" / band / "assessments" / sid, sid, options.segment, row, reasons, notes)
    if band in BAD_IDS and sid.isdigit() and int(sid) in BAD_IDS[band]:
        reasons.append("bad_id")
    row["audio_path"] = sources.audio(rid, year, band, sid, notes)
    row["pitchtrack_path"] = sources.pitchtrack(sid, notes)
    row["piece_id"] = piece_id(year, band, str(rec.instrument), options.segment)
    row["reference_path"] = sources.score(year, band, str(rec.instrument), options.segment)
    row["usable"] = not reasons
    row["reason"] = reasons[0] if reasons else ""
    row["note"] = "; ".join(reasons + notes)
    return row


def _select(root: Path, options: IndexOptions) -> pd.DataFrame:
    """The scores-CSV rows of the selected years, bands and instruments (checks the layout)."""
    if options.segment not in SEGMENT_ROWS:
        raise ValueError(f"segment {options.segment!r}; choose one of {sorted(SEGMENT_ROWS)}")
    unknown_bands = sorted(set(options.bands) - set(C.BANDS))
    if unknown_bands:
        raise ValueError(f"bands {unknown_bands}; choose from {list(C.BANDS)}")
    scores = read_scores(root, options.segment)
    year_dirs = sorted(p.name for p in root.glob("FBA[0-9][0-9][0-9][0-9]") if p.is_dir())
    if not year_dirs:
        raise FileNotFoundError(f"{root} holds no FBA<year> folders: is it a MIG-FbaData checkout?")
    unknown_inst = sorted(set(options.instruments) - set(scores["instrument"].dropna().unique()))
    if unknown_inst:
        warnings.warn(f"instruments {unknown_inst} do not occur in the scores CSV", stacklevel=3)
    sel = scores[scores["year"].isin(options.years) & scores["band"].isin(options.bands)
                 & scores["instrument"].isin(options.instruments)].copy()
    absent = sorted({int(y) for y in sel["year"]} - {int(d[3:]) for d in year_dirs})
    if absent:
        warnings.warn(f"{root} has no FBA<year> folder for {absent}: those rows count as "
                      "no_annotation_folder", stacklevel=3)
    return sel


def build_index(
    annotations: str | Path,
    *,
    audio: str | Path | None = None,
    pitchtracks: str | Path | None = None,
    scores: str | Path | None = None,
    options: IndexOptions = IndexOptions(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index the FBA auditions of an annotation checkout.

    Args:
        annotations: MIG-FbaData checkout (``normalized_student_scores.csv`` + ``FBA<year>/``).
        audio: audio root (or a table of paths); None = no audio paths.
        pitchtracks: root searched for ``<id>_pyin_pitchtrack.txt``; None = no pitch tracks.
        scores: folder of the user's MIDI scores named as :func:`score_file_name` says; they fill
            ``reference_path`` (beside, and before, the annotation folder's own scores).
        options: selection, split seed, and whether unusable rows are kept.

    Returns:
        ``(index, counts)``: the ratings table (``constants.RATINGS_COLUMNS`` + ``note``,
        ``usable``), and a per-band table of how many rows each step removed.
    """
    root = Path(annotations)
    sel = _select(root, options)
    sources = _Sources.open(root, audio, pitchtracks, scores)
    rows = [_index_row(rec, root, options, sources) for rec in sel.itertuples(index=False)]
    table = pd.DataFrame(rows, columns=[*C.RATINGS_COLUMNS, "usable", "reason", "note"])
    counts = _count_table(table, options, with_audio=audio is not None,
                          with_tracks=pitchtracks is not None)
    table["split"] = ""
    for usable in (True, False):
        mask = table["usable"] == usable
        if mask.any():
            with warnings.catch_warnings():
                if not usable:
                    warnings.simplefilter("ignore")
                table.loc[mask, "split"] = assign_splits(table[mask], seed=options.split_seed).to_numpy()
    if not options.keep_unusable:
        table = table[table["usable"]]
    table = table.drop(columns="reason").reset_index(drop=True)
    table = validate_ratings(table, source="FBA index")
    return table, counts


def _count_table(table: pd.DataFrame, options: IndexOptions, *, with_audio: bool,
                 with_tracks: bool) -> pd.DataFrame:
    """Rows per band: selected, removed by each reason (first failing), usable; audio/track notes."""
    out = {}
    for band in options.bands:
        t = table[table["band"] == band]
        col = {"selected (years, band, instruments)": len(t)}
        remaining = len(t)
        for reason in REASONS:
            n = int((t["reason"] == reason).sum())
            remaining -= n
            col[f"- {reason}"] = n
            col[f"= after {reason}"] = remaining
        col["usable"] = int(t["usable"].sum())
        u = t[t["usable"]]
        if with_audio:
            col["usable without audio file"] = int((u["audio_path"] == "").sum())
        if with_tracks:
            col["usable without pitch track"] = int((u["pitchtrack_path"] == "").sum())
        out[band] = col
    counts = pd.DataFrame(out)
    counts["total"] = counts.sum(axis=1)
    return counts
