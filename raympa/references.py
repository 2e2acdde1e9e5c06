"""Reference contours: what each performance is compared with, on its own frame grid.

A judge rates a performance against the piece. A reference is a contour of that piece on the
performance contours' hop grid (MIDI per frame, 0 = unvoiced), from one of three sources, chosen
by ``TrainConfig.reference`` (:data:`MODES`):

* ``table``: the row's ``reference_path`` in the ratings table: a MIDI score (rendered at the
  score's tempo, rests unvoiced, the melody track chosen when there are several), a pitch track
  (``time_sec,f0_hz``, re-gridded by :func:`raympa.contours.import_pitchtracks`) or an audio file
  (pYIN through :func:`raympa.contours.extract`); tracks and audio go through the contour cache.
* ``peers``: no score needed: the top-rated *training* recordings of the same ``piece_id``
  (never the recording itself; the validation and test ratings are never read), each aligned to
  the performance, and their frame-wise median taken.
* ``none``: no reference (the paper's setting).

Every reference is aligned to its performance (:mod:`raympa.align`, key and octave invariant)
and stored as the aligned reference on the performance's grid, with the six alignment features.
Problems are rows of :attr:`ReferenceSet.notes` (``status`` ok / fallback / error), never
exceptions: a missing or unreadable reference is an error row (with ``peers``, the next peer is
taken and the row says so), a piece without training peers an error row, a MIDI file with several
tracks a note naming the melody track.
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raympa import constants as C
from raympa.align import ALL_FEATURES, FEATURES  # noqa: F401 (FEATURES: the six, public here too)

if TYPE_CHECKING:
    import pandas as pd

    from raympa.config import ExtractConfig
    from raympa.dataset import ContourSet

MODES = ("none", "table", "peers")
PEERS = 3  # ours: training recordings of the piece whose median is a recording's peer reference
SCORE_EXTENSIONS = (".mid", ".midi")
PITCHTRACK_EXTENSIONS = (".csv", ".txt")
NOTE_COLUMNS = ("recording_id", "status", "source", "note")
DRUM_CHANNEL = 9  # General MIDI percussion (channel 10, zero-based 9): never a melody


# ----------------------------------------------------------------------------- MIDI scores
def _tempo_map(midi: Any) -> tuple[np.ndarray, np.ndarray]:
    """(tick, seconds) at each tempo change, from every track (the MIDI default is 120 bpm)."""
    changes: list[tuple[int, int]] = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort()
    ticks, secs, tempo, last_tick, last_sec = [0], [0.0], 500_000, 0, 0.0
    for tick, new in changes:
        last_sec += (tick - last_tick) * tempo / 1e6 / midi.ticks_per_beat
        ticks.append(tick)
        secs.append(last_sec)
        tempo, last_tick = new, tick
    tempos = [500_000] + [t for _, t in changes]
    return np.array(ticks), np.array(secs), np.array(tempos, dtype=np.float64) / 1e6 / midi.ticks_per_beat


def _track_notes(midi: Any) -> list[tuple[str, np.ndarray]]:
    """Per track with notes: its name and (n, 3) int64 (start tick, end tick, pitch), drums left out."""
    out = []
    for i, track in enumerate(midi.tracks):
        tick, name, active, notes = 0, "", {}, []
        for msg in track:
            tick += msg.time
            if msg.type == "track_name":
                name = msg.name
            elif msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    if key in active:  # re-struck without a note-off: end the old one
                        notes.append((active.pop(key), tick, msg.note))
                    active[key] = tick
                elif key in active:
                    on = active.pop(key)
                    if tick > on:
                        notes.append((on, tick, msg.note))
        if notes:
            out.append((name or f"track {i}", np.array(sorted(notes), dtype=np.int64)))
    return out


def _polyphony(notes: np.ndarray) -> float:
    """Share of notes that start while an earlier note still sounds."""
    if len(notes) < 2:
        return 0.0
    ends = np.maximum.accumulate(notes[:, 1])
    return float(np.mean(notes[1:, 0] < ends[:-1]))


def render_midi(path: str | Path, *, sample_rate: int = C.SAMPLE_RATE,
                hop_length: int = C.HOP_LENGTH) -> tuple[np.ndarray, str]:
    """A MIDI score as a MIDI-number contour on the hop grid, at the score's tempo.

    The melody is the track with the most notes among the monophonic ones (at most 10 % of notes
    overlapping an earlier one), or among all tracks when none is; ties go to the higher mean
    pitch. Where notes overlap, the later one sounds. Frame ``k`` (time ``k * hop_length /
    sample_rate`` s after the first note) holds the sounding note, 0 in rests.

    Returns:
        (n_frames,) float32 contour and a note ("" or which track was taken and why).

    Raises:
        ValueError: the file is not a MIDI file or has no notes.
    """
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"unreadable MIDI file ({type(e).__name__}: {e})") from None
    tracks = _track_notes(midi)
    if not tracks:
        raise ValueError("the MIDI file has no notes")
    mono = [t for t in tracks if _polyphony(t[1]) <= 0.1] or tracks
    name, notes = max(mono, key=lambda t: (len(t[1]), float(t[1][:, 2].mean())))
    note = ""
    if len(tracks) > 1:
        among = "the monophonic tracks" if mono is not tracks else "all tracks (none is monophonic)"
        note = f"{len(tracks)} tracks with notes; melody: '{name}' ({len(notes)} notes, the most of {among})"
    ticks, secs, sec_per_tick = _tempo_map(midi)

    def seconds(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(ticks, t, side="right") - 1
        return secs[k] + (t - ticks[k]) * sec_per_tick[k]

    on, off = seconds(notes[:, 0]), seconds(notes[:, 1])
    on, off = on - on[0], off - on[0]
    frame_s = hop_length / sample_rate
    n_frames = 1 + int(np.ceil(off.max() / frame_s))
    contour = np.zeros(n_frames, np.float32)
    for a, b, p in zip(np.ceil(on / frame_s).astype(int), np.ceil(off / frame_s).astype(int), notes[:, 2]):
        contour[a:b] = p  # in start order: a later note overwrites an overlapping earlier one
    return contour, note


# ----------------------------------------------------------------------------- reference files
def _kind(path: str) -> str:
    ext = Path(path).suffix.lower()
    if ext in SCORE_EXTENSIONS:
        return "score"
    if ext in PITCHTRACK_EXTENSIONS:
        return "pitchtrack"
    if ext in C.AUDIO_EXTENSIONS:
        return "audio"
    return "unknown"


def load_reference_files(paths: list[str], *, config: "ExtractConfig", cache_dir: str | Path | None = None,
                         address: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Contours of reference files: scores rendered here, pitch tracks and audio through the contour pipeline.

    Args:
        paths: reference files (each read once however many rows share it).
        config: the performance contours' extraction parameters (the hop grid; pYIN settings).
        cache_dir: the contour cache (None = the pipeline's default).
        address: a running Ray cluster for audio and pitch tracks (None = local).

    Returns:
        path -> (n,) float32 MIDI contour, and path -> note ("" when none) or error reason
        (the paths missing from the first dict).
    """
    import pandas as pd

    from raympa.contours import extract, import_pitchtracks, load_contours

    contours: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    by_kind: dict[str, list[str]] = {"score": [], "pitchtrack": [], "audio": []}
    for p in sorted(set(paths)):
        kind = _kind(p)
        if not Path(p).is_file():
            notes[p] = f"reference file not found: {p}"
        elif kind == "unknown":
            notes[p] = f"unknown reference type {Path(p).suffix!r} (MIDI, audio or a time_sec,f0_hz track)"
        else:
            by_kind[kind].append(p)
    for p in by_kind["score"]:
        try:
            contours[p], notes[p] = render_midi(p, sample_rate=config.sample_rate, hop_length=config.hop_length)
        except ValueError as e:
            notes[p] = f"{p}: {e}"
    for kind, column in (("pitchtrack", "pitchtrack_path"), ("audio", "audio_path")):
        if not by_kind[kind]:
            continue
        ids = {f"ref{i:06d}": p for i, p in enumerate(by_kind[kind])}
        table = pd.DataFrame({"recording_id": list(ids), column: list(ids.values())})
        with tempfile.TemporaryDirectory() as out:
            if kind == "audio":
                res = extract(table, out, config=config, cache_dir=cache_dir, address=address)
            else:
                res = import_pitchtracks(table, out, sample_rate=config.sample_rate,
                                         hop_length=config.hop_length, cache_dir=cache_dir, address=address)
            done = load_contours(out) if res.n_ok else pd.DataFrame(columns=["recording_id", "midi"])
            errors = pd.read_csv(res.errors_path) if res.n_errors else pd.DataFrame(columns=["recording_id", "error"])
        for rid, midi in zip(done["recording_id"].astype(str), done["midi"]):
            contours[ids[rid]], notes[ids[rid]] = np.asarray(midi, np.float32), ""
        for rid, err in zip(errors["recording_id"].astype(str), errors["error"].astype(str)):
            notes[ids[rid]] = f"{ids[rid]}: {err}"
    return contours, notes


# ----------------------------------------------------------------------------- aligned references
@dataclass
class ReferenceSet:
    """Every recording's reference on its own frame grid, its alignment features and notes.

    Attributes:
        mode: ``table`` or ``peers``.
        aligned: recording_id -> (n_frames,) float32 MIDI, the reference aligned to the
            performance (in the performance's register, 0 = unvoiced); error rows have none.
        features: one row per aligned recording: recording_id and :data:`raympa.align.ALL_FEATURES`
            (the six alignment numbers, then the six rhythm numbers).
        notes: one row per recording: :data:`NOTE_COLUMNS`; status ``ok``, ``fallback`` (peers:
            a peer was unusable and the next one taken) or ``error`` (no reference).
    """

    mode: str
    aligned: dict[str, np.ndarray]
    features: "pd.DataFrame"
    notes: "pd.DataFrame"

    def summary(self) -> str:
        counts = self.notes["status"].value_counts().to_dict()
        return (f"references ({self.mode}): {len(self.aligned)} of {len(self.notes)} recordings aligned"
                + "".join(f", {n} {s}" for s, n in sorted(counts.items()) if s != "ok"))


def _finish(mode: str, rows: list[tuple[str, str, str, str]], aligned: dict[str, np.ndarray],
            features: dict[str, np.ndarray]) -> ReferenceSet:
    import pandas as pd

    feats = pd.DataFrame([[rid, *f] for rid, f in features.items()], columns=["recording_id", *ALL_FEATURES])
    return ReferenceSet(mode, aligned, feats, pd.DataFrame(rows, columns=list(NOTE_COLUMNS)))


def table_references(ratings: "pd.DataFrame", contours: dict[str, np.ndarray], *, config: "ExtractConfig",
                     cache_dir: str | Path | None = None, address: str | None = None) -> ReferenceSet:
    """Each row's ``reference_path`` (resolved paths, as ``read_ratings`` gives them), aligned to its contour.

    Args:
        ratings: ratings table with ``recording_id`` and ``reference_path``.
        contours: recording_id -> performance contour (MIDI, 0 = unvoiced).
        config: the contours' extraction parameters.
        cache_dir, address: as :func:`load_reference_files`.
    """
    from raympa.align import align, aligned_reference, alignment_features

    if "reference_path" not in ratings.columns:
        raise ValueError("reference='table' needs a reference_path column in the ratings table "
                         "(or use reference='peers', which needs only piece_id)")
    ids = ratings["recording_id"].astype(str).tolist()
    paths = ["" if not isinstance(p, str) else p for p in ratings["reference_path"]]
    loaded, file_notes = load_reference_files([p for p in paths if p], config=config, cache_dir=cache_dir,
                                              address=address)
    rows, aligned, feats = [], {}, {}
    for rid, path in zip(ids, paths):
        if rid not in contours:
            continue
        if not path:
            rows.append((rid, "error", "", "no reference_path for this row"))
        elif path not in loaded:
            rows.append((rid, "error", path, file_notes.get(path, "unreadable reference")))
        else:
            perf, ref = contours[rid], loaded[path]
            a = align(perf, ref)
            aligned[rid] = aligned_reference(perf, ref, a)
            feats[rid] = alignment_features(perf, ref, a, frame_rate=config.sample_rate / config.hop_length)
            rows.append((rid, "ok", path, file_notes.get(path, "")))
    return _finish("table", rows, aligned, feats)


def _peer_order(ratings: "pd.DataFrame", criterion: str) -> dict[str, list[str]]:
    """piece_id -> its training recordings, best rated first (ties: recording_id)."""
    train = ratings[(ratings["split"] == "train") & ratings[criterion].notna() & (ratings[criterion] >= 0)]
    train = train.assign(_rid=train["recording_id"].astype(str)).sort_values(
        [criterion, "_rid"], ascending=[False, True])
    return {str(p): g["_rid"].tolist() for p, g in train.groupby("piece_id", sort=False) if str(p)}


def _median_reference(refs: list[np.ndarray]) -> np.ndarray:
    """Frame-wise median of aligned references; voiced where most of them are."""
    stack = np.stack(refs).astype(np.float64)  # (peers, n)
    voiced = stack > 0
    with warnings.catch_warnings():  # frames where no peer is voiced: NaN, set to 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(voiced, stack, np.nan), axis=0)
    return np.where(2 * voiced.sum(axis=0) > len(refs), np.nan_to_num(med), 0.0).astype(np.float32)


def peer_references(ratings: "pd.DataFrame", contours: dict[str, np.ndarray], *, criterion: str,
                    peers: int = PEERS) -> ReferenceSet:
    """Peer references: the ``peers`` top-rated training recordings of the same piece, aligned and merged.

    Only rows with ``split == "train"`` are ever read for ratings or as peers, so validation and
    test ratings cannot leak; a recording is never its own peer. A peer without a usable contour
    (missing, or nothing voiced) is passed over for the next one (status ``fallback``); a piece
    with no usable training peer gives an error row.

    Args:
        ratings: ratings table with ``recording_id``, ``split``, ``piece_id`` and ``criterion``.
        contours: recording_id -> contour (MIDI, 0 = unvoiced).
        criterion: the rating that ranks the peers.
        peers: how many peers to merge (frame-wise median after alignment).
    """
    from raympa.align import align, aligned_reference, alignment_features

    for col in ("piece_id", "split", criterion):
        if col not in ratings.columns:
            raise ValueError(f"reference='peers' needs a {col!r} column in the ratings table")
    if peers < 1:
        raise ValueError(f"peers={peers}; need at least 1")
    order = _peer_order(ratings, criterion)
    rows, aligned, feats = [], {}, {}
    for rid, piece in zip(ratings["recording_id"].astype(str), ratings["piece_id"]):
        if rid not in contours:
            continue
        piece = "" if not isinstance(piece, str) else piece
        candidates = [p for p in order.get(piece, []) if p != rid]
        usable = [p for p in candidates if p in contours and (contours[p] > 0).any()]
        chosen = usable[:peers]
        if not piece or not chosen:
            why = "no piece_id for this row" if not piece else f"no usable training recording of piece {piece!r}"
            rows.append((rid, "error", "", why))
            continue
        perf = contours[rid]
        pairs = [(contours[p], align(perf, contours[p])) for p in chosen]
        aligned[rid] = _median_reference([aligned_reference(perf, ref, a) for ref, a in pairs])
        # features: the mean over the peers (against the merged reference, already on the
        # performance's grid, tempo and length would be lost)
        feats[rid] = np.mean([alignment_features(perf, ref, a) for ref, a in pairs], axis=0)
        skipped = [p for p in candidates[: candidates.index(chosen[-1]) + 1] if p not in usable]
        status = "fallback" if skipped else "ok"
        note = f"skipped peers without a usable contour: {', '.join(skipped)}" if status == "fallback" else ""
        if len(chosen) < peers:
            note = (note + "; " if note else "") + f"only {len(chosen)} of {peers} peers"
        rows.append((rid, status, ";".join(chosen), note))
    return _finish("peers", rows, aligned, feats)


def build_references(mode: str, ratings: "pd.DataFrame", data: "ContourSet", *, criterion: str,
                     config: "ExtractConfig | None" = None, peers: int = PEERS,
                     cache_dir: str | Path | None = None) -> ReferenceSet | None:
    """References of every recording of ``data`` in the given mode (None for ``none``)."""
    from raympa.config import ExtractConfig

    if mode not in MODES:
        raise ValueError(f"reference={mode!r}; choose one of {list(MODES)}")
    if mode == "none":
        return None
    contours = {str(r): data.contour(i) for i, r in enumerate(data.recording_id)}
    if mode == "peers":
        return peer_references(ratings, contours, criterion=criterion, peers=peers)
    if config is None:
        known = {k: v for k, v in data.extract.items() if k in ExtractConfig.__dataclass_fields__}
        config = ExtractConfig(**known)
    return table_references(ratings, contours, config=config, cache_dir=cache_dir)


def attach(data: "ContourSet", refs: ReferenceSet) -> "ContourSet":
    """``data`` with its aligned references and alignment features (:attr:`ContourSet.reference`,
    :attr:`ContourSet.side`); recordings without a reference are left out."""
    keep = np.array([str(r) in refs.aligned for r in data.recording_id], dtype=bool)
    if not keep.all():
        errors = refs.notes[refs.notes["status"] == "error"]
        first = "; ".join(f"{r}: {n}" for r, n in zip(errors["recording_id"][:3], errors["note"][:3]))
        warnings.warn(f"{int((~keep).sum())} of {len(data)} recordings have no reference and are left out "
                      f"({first})", stacklevel=2)
    kept = data.take(np.flatnonzero(keep))
    reference = np.concatenate([refs.aligned[str(r)] for r in kept.recording_id]) if len(kept) else np.zeros(0, np.float32)
    by_id = refs.features.set_index(refs.features["recording_id"].astype(str))
    side = by_id.loc[[str(r) for r in kept.recording_id], list(ALL_FEATURES)].to_numpy(np.float32)
    return kept.with_reference(reference.astype(np.float32), side=side.reshape(len(kept), len(ALL_FEATURES)))


def load_referenced_data(ratings: str | Path, contours: str | Path, *, reference: str, criterion: str,
                         peers: int = PEERS, split_seed: int = 0, cache_dir: str | Path | None = None,
                         extract: dict[str, Any] | None = None) -> tuple["ContourSet", ReferenceSet | None]:
    """``raympa train``'s input with references: ratings table + contours folder -> ContourSet carrying them.

    Args:
        ratings, contours: as :func:`raympa.train.load_training_data`.
        reference: ``none`` (no reference; the set as ``load_training_data`` gives it), ``table`` or ``peers``.
        criterion: the rating that ranks peers.
        peers: training peers merged per recording (``peers``).
        split_seed: as ``raympa.ratings.read_ratings``.
        cache_dir: the contour cache for audio and pitch-track references.
        extract: extraction parameters of the contours that their table does not record (such
            as ``fmin``/``fmax``); audio references are extracted with them, and checkpoints
            record them for ``raympa predict``.

    Returns:
        The set (recordings without a reference left out, with a warning) and the ReferenceSet
        (None for ``none``).
    """
    from raympa.contours import load_contours
    from raympa.dataset import ContourSet
    from raympa.ratings import read_ratings

    table = read_ratings(ratings, split_seed=split_seed)
    data = ContourSet.from_tables(table, load_contours(contours))
    if extract:
        data = dataclasses.replace(data, extract={**data.extract, **extract})
    refs = build_references(reference, table, data, criterion=criterion, peers=peers, cache_dir=cache_dir)
    return (data, None) if refs is None else (attach(data, refs), refs)


def reference_for(perf: np.ndarray, source: "str | Path | np.ndarray", *, config: "ExtractConfig | None" = None,
                  cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One performance's aligned reference and features, for ``raympa predict --reference FILE``.

    Args:
        perf: (n,) performance contour (MIDI, 0 = unvoiced).
        source: a reference file (MIDI, audio, pitch track) or a contour on the same hop grid.
        config: the extraction parameters of the performance (the hop grid).

    Raises:
        ValueError: the reference cannot be read (the message says why).
    """
    from raympa.align import align, aligned_reference, alignment_features
    from raympa.config import ExtractConfig

    config = config or ExtractConfig()
    if isinstance(source, np.ndarray):
        ref = np.asarray(source, np.float32)
    else:
        loaded, notes = load_reference_files([str(source)], config=config, cache_dir=cache_dir)
        if str(source) not in loaded:
            raise ValueError(notes.get(str(source), f"unreadable reference {source}"))
        ref = loaded[str(source)]
    a = align(perf, ref)
    return aligned_reference(perf, ref, a), alignment_features(perf, ref, a,
                                                               frame_rate=config.sample_rate / config.hop_length)


def peers_for(perfs: "list[np.ndarray]", *, ratings: str | Path, contours: str | Path, piece: str, criterion: str,
              peers: int = PEERS, split_seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Peer references of new performances of ``piece`` (``raympa predict --reference peers``).

    The peers are what training used: the ``peers`` top-rated training recordings of the piece
    in the training table (its ``split == "train"`` rows only), their contours from the training
    contours folder, each aligned to the new performance and merged as :func:`peer_references` does.

    Args:
        perfs: new performance contours (MIDI, 0 = unvoiced), on the training contours' hop grid.
        ratings, contours: the training ratings table and contours folder.
        piece: the ``piece_id`` the new performances play.
        criterion: the rating that ranks the peers (the checkpoint's criterion).
        peers: peers merged per recording (the checkpoint's ``reference_peers``).
        split_seed: as ``raympa.ratings.read_ratings``.

    Returns:
        (aligned reference, features) per performance.

    Raises:
        ValueError: the piece has no usable training recording (the message says why).
    """
    import pandas as pd

    from raympa.contours import load_contours
    from raympa.ratings import read_ratings

    table = read_ratings(ratings, split_seed=split_seed)
    if "piece_id" not in table.columns:
        raise ValueError("--reference peers needs a piece_id column in the training table")
    train = table[(table["split"] == "train") & (table["piece_id"].astype(str) == str(piece))]
    if train.empty:
        known = sorted(table.loc[table["split"] == "train", "piece_id"].dropna().astype(str).unique())[:8]
        raise ValueError(f"piece {piece!r} has no training recording in {ratings} (pieces: {known} ...)")
    done = load_contours(contours)
    ids = set(train["recording_id"].astype(str))
    pool = {str(r): np.asarray(m, np.float32) for r, m in zip(done["recording_id"].astype(str), done["midi"]) if str(r) in ids}
    new = [f"__new{k:06d}" for k in range(len(perfs))]
    rows = pd.concat([train, pd.DataFrame({"recording_id": new, "split": "test", "piece_id": str(piece)})],
                     ignore_index=True)
    refs = peer_references(rows, {**pool, **dict(zip(new, perfs))}, criterion=criterion, peers=peers)
    notes = refs.notes.set_index("recording_id")
    feats = refs.features.set_index("recording_id")
    out = []
    for rid in new:
        if rid not in refs.aligned:
            raise ValueError(f"no peer reference for piece {piece!r}: {notes.loc[rid, 'note']}")
        out.append((refs.aligned[rid], feats.loc[rid, list(ALL_FEATURES)].to_numpy(np.float64)))
    return out
