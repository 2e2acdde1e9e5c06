"""Reference contours: MIDI rendering, pitch-track and audio references, peers without leakage, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raympa import references as R
from raympa.config import ExtractConfig
from raympa.constants import FRAME_RATE
from raympa.dataset import ContourSet

SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def _write_midi(path: Path, tracks: list[list[tuple[int, float, float]]], *, bpm: float = 120.0,
                names: list[str] | None = None, tempo_change: tuple[float, float] | None = None) -> Path:
    """tracks: per track, notes (pitch, start beat, beats)."""
    import mido

    tpb = 480
    mid = mido.MidiFile(ticks_per_beat=tpb)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=int(60e6 / bpm), time=0))
    if tempo_change is not None:
        beat, new_bpm = tempo_change
        meta.append(mido.MetaMessage("set_tempo", tempo=int(60e6 / new_bpm), time=int(beat * tpb)))
    mid.tracks.append(meta)
    for t, notes in enumerate(tracks):
        tr = mido.MidiTrack()
        if names:
            tr.append(mido.MetaMessage("track_name", name=names[t], time=0))
        events = []
        for p, s, d in notes:
            events += [(int(s * tpb), 1, "note_on", p), (int((s + d) * tpb), 0, "note_off", p)]
        now = 0
        for tick, _, kind, p in sorted(events):
            tr.append(mido.Message(kind, note=p, velocity=80 if kind == "note_on" else 0, time=tick - now))
            now = tick
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def test_render_midi_tempo_rests_and_grid(tmp_path):
    path = _write_midi(tmp_path / "a.mid", [[(60, 0, 1), (64, 2, 1), (67, 3, 1)]], bpm=120)
    contour, note = R.render_midi(path)
    assert note == ""
    fr = FRAME_RATE
    assert contour.dtype == np.float32
    assert len(contour) == pytest.approx(2.0 * fr, abs=2)  # 4 beats at 120 bpm = 2 s
    assert contour[int(0.2 * fr)] == 60
    assert contour[int(0.75 * fr)] == 0  # the rest in beat 2
    assert contour[int(1.2 * fr)] == 64 and contour[int(1.7 * fr)] == 67


def test_render_midi_follows_tempo_changes(tmp_path):
    path = _write_midi(tmp_path / "t.mid", [[(60, 0, 2), (62, 2, 2)]], bpm=120, tempo_change=(2, 60))
    contour, _ = R.render_midi(path)
    # 2 beats at 120 bpm (1 s) then 2 beats at 60 bpm (2 s)
    assert len(contour) == pytest.approx(3.0 * FRAME_RATE, abs=2)
    assert contour[int(0.9 * FRAME_RATE)] == 60 and contour[int(2.5 * FRAME_RATE)] == 62


def test_render_midi_chooses_and_names_the_melody_track(tmp_path):
    melody = [(SCALE[i % 8] + 12, i * 0.5, 0.5) for i in range(16)]
    chords = [(p, s, 2) for s in (0, 2, 4, 6) for p in (48, 52, 55)]  # polyphonic, more notes
    bass = [(36, s, 1) for s in range(8)]
    path = _write_midi(tmp_path / "m.mid", [chords, melody, bass], names=["Piano", "Alto Sax", "Bass"])
    contour, note = R.render_midi(path)
    assert "Alto Sax" in note and "3 tracks" in note
    assert contour[int(0.1 * FRAME_RATE)] == SCALE[0] + 12


def test_render_midi_errors(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    with pytest.raises(ValueError, match="unreadable MIDI"):
        R.render_midi(bad)
    empty = _write_midi(tmp_path / "empty.mid", [[]])
    with pytest.raises(ValueError, match="no notes"):
        R.render_midi(empty)


def _melody_contour(rng, shift: int = 0, n: int = 24, wrong: float = 0.0) -> np.ndarray:
    out = []
    for _ in range(n):
        p = SCALE[int(rng.integers(0, 8))] + shift + (3 if rng.random() < wrong else 0)
        d = int(rng.integers(30, 60))
        out += [p] * (d - 4) + [0] * 4
    return np.array(out, np.float32)


def _table(tmp_path: Path, refs: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"recording_id": [f"r{i}" for i in range(len(refs))], "reference_path": refs})


def test_table_references_score_pitchtrack_and_errors(tmp_path, ray_local):
    score = _write_midi(tmp_path / "s.mid", [[(SCALE[i % 8], i * 0.5, 0.5) for i in range(16)]])
    ref, _ = R.render_midi(score)
    track = tmp_path / "track.csv"
    times = np.arange(len(ref)) / FRAME_RATE
    hz = np.where(ref > 0, 440.0 * 2 ** ((ref - 69) / 12), 0.0)
    pd.DataFrame({"time_sec": times, "f0_hz": hz}).to_csv(track, index=False)
    (tmp_path / "junk.mid").write_bytes(b"junk")
    table = _table(tmp_path, [str(score), str(track), str(tmp_path / "nope.mid"), str(tmp_path / "junk.mid"), ""])
    perf = np.where(ref > 0, ref + 5, 0).astype(np.float32)  # the piece a fourth up
    contours = {f"r{i}": perf for i in range(5)}
    refs = R.table_references(table, contours, config=ExtractConfig(), cache_dir=tmp_path / "cache")
    notes = refs.notes.set_index("recording_id")
    assert list(notes["status"]) == ["ok", "ok", "error", "error", "error"]
    assert "not found" in notes.loc["r2", "note"]
    assert "unreadable" in notes.loc["r3", "note"]
    assert "no reference_path" in notes.loc["r4", "note"]
    feats = refs.features.set_index("recording_id")
    assert feats.loc["r0", "within_50c"] > 0.95 and feats.loc["r1", "within_50c"] > 0.9
    np.testing.assert_allclose(refs.aligned["r0"][perf > 0], perf[perf > 0], atol=0.3)  # in the performer's key
    with pytest.raises(ValueError, match="reference_path"):
        R.table_references(table.drop(columns="reference_path"), contours, config=ExtractConfig())


def _peer_table(n_per_piece: int = 6) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    rows, contours = [], {}
    for piece in ("A", "B"):
        for k in range(n_per_piece):
            rid = f"{piece}{k}"
            split = "train" if k < n_per_piece - 2 else ("val" if k == n_per_piece - 2 else "test")
            rows.append({"recording_id": rid, "piece_id": piece, "split": split, "note_accuracy": (k + 1) / 10})
            # one melody per piece (same seed), transposed, with more wrong notes for lower ratings
            contours[rid] = _melody_contour(np.random.default_rng(ord(piece)), shift=int(rng.integers(-3, 4)),
                                            wrong=0.3 - 0.05 * k)
    return pd.DataFrame(rows), contours


def test_peers_use_only_training_recordings_of_the_piece():
    table, contours = _peer_table()
    refs = R.peer_references(table, contours, criterion="note_accuracy", peers=2)
    src = refs.notes.set_index("recording_id")["source"]
    train = set(table.loc[table["split"] == "train", "recording_id"])
    for rid, s in src.items():
        peers = s.split(";")
        assert set(peers) <= train and rid not in peers
        assert all(p[0] == rid[0] for p in peers)  # same piece
    # the best-rated training recordings of A are A3 and A2 (A4/A5 are val/test, better rated)
    assert src["A5"] == "A3;A2" and src["A3"] == "A2;A1"
    assert refs.features.set_index("recording_id").loc["A5", "within_50c"] > 0.5


def test_peers_ignore_validation_and_test_ratings():
    table, contours = _peer_table()
    base = R.peer_references(table, contours, criterion="note_accuracy", peers=2)
    changed = table.copy()
    held = changed["split"] != "train"
    changed.loc[held, "note_accuracy"] = 1.0 - changed.loc[held, "note_accuracy"]
    again = R.peer_references(changed, contours, criterion="note_accuracy", peers=2)
    pd.testing.assert_frame_equal(base.notes, again.notes)
    for rid in base.aligned:
        np.testing.assert_array_equal(base.aligned[rid], again.aligned[rid])


def test_peers_fallback_and_no_peer_error():
    table, contours = _peer_table()
    contours["A3"] = np.zeros_like(contours["A3"])  # the best A peer is unusable: fall back
    table = pd.concat([table, pd.DataFrame([{"recording_id": "C0", "piece_id": "C", "split": "test",
                                             "note_accuracy": 0.5}])], ignore_index=True)
    contours["C0"] = contours["A0"]
    refs = R.peer_references(table, contours, criterion="note_accuracy", peers=2)
    notes = refs.notes.set_index("recording_id")
    assert notes.loc["A5", "status"] == "fallback" and "A3" in notes.loc["A5", "note"]
    assert notes.loc["A5", "source"] == "A2;A1"
    assert notes.loc["C0", "status"] == "error" and "no usable training recording" in notes.loc["C0", "note"]
    assert "C0" not in refs.aligned
    with pytest.raises(ValueError, match="piece_id"):
        R.peer_references(table.drop(columns="piece_id"), contours, criterion="note_accuracy")


def test_attach_carries_references_through_take_and_drops_error_rows():
    table, contours = _peer_table()
    table = pd.concat([table, pd.DataFrame([{"recording_id": "C0", "piece_id": "C", "split": "train",
                                             "note_accuracy": 0.5}])], ignore_index=True)
    contours["C0"] = contours["A0"]
    ids = table["recording_id"].tolist()
    data = ContourSet.from_arrays([contours[r] for r in ids], recording_id=ids, split=table["split"].tolist(),
                                  ratings={"note_accuracy": table["note_accuracy"].to_numpy()})
    refs = R.build_references("peers", table, data, criterion="note_accuracy", peers=2)
    with pytest.warns(UserWarning, match="1 of 13 recordings have no reference"):
        out = R.attach(data, refs)
    assert len(out) == 12 and out.reference is not None and out.reference.shape == out.midi.shape
    sub = out.take([3, 1])
    np.testing.assert_array_equal(sub.reference[: sub.lengths[0]], refs.aligned[str(out.recording_id[3])])
    feats = refs.features.set_index("recording_id")
    assert out.side.shape == (12, len(R.ALL_FEATURES)) and np.isfinite(out.side).all()
    np.testing.assert_allclose(sub.side[1], feats.loc[str(out.recording_id[1]), list(R.ALL_FEATURES)], rtol=1e-6)
    assert out.with_reference(None).side is None  # no features without a reference
    with pytest.raises(ValueError, match="side"):
        out.with_reference(out.reference, side=np.zeros((3, 2), np.float32))
    assert R.build_references("none", table, data, criterion="note_accuracy") is None
    with pytest.raises(ValueError, match="reference="):
        R.build_references("score", table, data, criterion="note_accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "12 of 13" in refs.summary()


def test_reference_for_one_performance(tmp_path):
    score = _write_midi(tmp_path / "s.mid", [[(SCALE[i % 8], i * 0.5, 0.5) for i in range(12)]])
    ref, _ = R.render_midi(score)
    perf = np.r_[np.zeros(100), np.where(ref > 0, ref - 12, 0)].astype(np.float32)  # an octave down, late start
    aligned, feats = R.reference_for(perf, score)
    assert aligned.shape == perf.shape
    assert dict(zip(R.FEATURES, feats))["within_50c"] > 0.95
    same, feats2 = R.reference_for(perf, ref)
    np.testing.assert_array_equal(same, aligned)
    with pytest.raises(ValueError, match="not found"):
        R.reference_for(perf, tmp_path / "missing.mid")


def _training_folder(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table, contours = _peer_table()
    ratings = tmp_path / "ratings.csv"
    table.to_csv(ratings, index=False)
    folder = tmp_path / "contours"
    folder.mkdir()
    ids = list(contours)
    pq.write_table(pa.table({"recording_id": ids, "midi": [contours[r].astype(np.float32) for r in ids]}),
                   folder / "contours.parquet")
    return ratings, folder, contours


def test_peers_for_new_recordings_match_training(tmp_path):
    ratings, folder, contours = _training_folder(tmp_path)
    table, _ = _peer_table()
    trained = R.peer_references(table, contours, criterion="note_accuracy", peers=2)
    (aligned, feats), = R.peers_for([contours["A5"]], ratings=ratings, contours=folder, piece="A",
                                    criterion="note_accuracy", peers=2)  # A5 is a test recording: same peers
    np.testing.assert_array_equal(aligned, trained.aligned["A5"])
    np.testing.assert_allclose(feats, trained.features.set_index("recording_id").loc["A5", list(R.ALL_FEATURES)])
    with pytest.raises(ValueError, match="no training recording"):
        R.peers_for([contours["A5"]], ratings=ratings, contours=folder, piece="Z", criterion="note_accuracy")
