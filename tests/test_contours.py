"""Pitch contours: accuracy on synthetic tones and glides, blockwise tracking, and `raympa extract` /
`import-pitchtracks` on Ray Data (bad inputs, cache, 2 nodes, the librosa backend from a cold cache).

Pitch-track parsing is in test_pitchtracks.py, input tables in test_inputs.py, the Ray Data engine
(worker deaths, retries) in test_raydata.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from contour_signals import HOP, SR, glide, notes_track, tone_file, write_track

from raympa import contours
from raympa.config import ExtractConfig
from raympa.contours import (
    contour_from_audio,
    extract,
    hz_to_midi,
    import_pitchtracks,
    load_contours,
    track_blocks,
)

def cents_error(midi: np.ndarray, f_true: np.ndarray, sr: int) -> np.ndarray:
    """|contour - truth| in cents on frames 5..n-5 (frame k is centred on sample k * HOP at 44.1 kHz)."""
    times = np.arange(len(midi)) * HOP / SR
    truth = 69 + 12 * np.log2(np.interp(times, np.arange(len(f_true)) / sr, f_true) / 440)
    inner = slice(5, len(midi) - 5)
    assert np.all(midi[inner] > 0), "a steady tone must be voiced throughout"
    return 100 * np.abs(midi[inner] - truth[inner])


# ============================================================================ accuracy
@pytest.mark.parametrize("f0", [196.0, 440.0, 1046.5])
def test_tone_contour_within_cents(f0):
    y, f = glide(f0, f0, 0.7)
    midi = contour_from_audio(y, SR)
    assert midi.dtype == np.float32 and len(midi) == 1 + len(y) // HOP
    err = cents_error(midi, f, SR)
    # pYIN's pitch grid is 10 cents (resolution 0.1): a few cents, one grid step at worst
    assert np.median(err) < 6 and err.max() < 16, (np.median(err), err.max())


def test_glide_contour_within_cents():
    y, f = glide(261.63, 392.0, 1.5)  # C4 -> G4, 4.7 semitones/s
    err = cents_error(contour_from_audio(y, SR), f, SR)
    assert np.median(err) < 10 and np.percentile(err, 95) < 20 and err.max() < 30


def test_stereo_and_other_rate_in_memory():
    y, f = glide(440.0, 440.0, 0.7, sr=22_050)
    midi = contour_from_audio(np.stack([y, 0.5 * y]), 22_050)  # (channels, n) like librosa
    assert len(midi) == 1 + int(round(len(y) * SR / 22_050)) // HOP
    assert cents_error(midi, f, 22_050).max() < 10


def test_silence_is_unvoiced_zero():
    midi = contour_from_audio(np.zeros(SR // 2, np.float32), SR)
    assert len(midi) == 1 + (SR // 2) // HOP and np.all(midi == 0)


# ============================================================================ blockwise tracking
def test_blocks_line_up_with_a_whole_run(monkeypatch):
    """Frame k of every block is the frame centred on sample k*hop, whatever the pieces."""

    def fake(y, config):  # "pitch" of frame j = the sample at its centre (a position ramp)
        n = 1 + len(y) // config.hop_length
        return y[np.minimum(np.arange(n) * config.hop_length, len(y) - 1)].astype(np.float32)

    monkeypatch.setattr(contours, "_pyin_midi", fake)
    cfg = ExtractConfig()
    for n in (1, 255, 256, 257, 100 * HOP, 100 * HOP + 7, 12_345 * 3):
        y = np.arange(n, dtype=np.float32)
        whole = fake(y, cfg)
        for block, ctx in ((7, 3), (10, 0), (50, 20), (10_000, 1_000)):
            for piece in (1000, 4096, n):
                pieces = [y[i : i + piece] for i in range(0, n, piece)]
                got = track_blocks(pieces, cfg, block_frames=block, context_frames=ctx)
                assert np.array_equal(got, whole), (n, block, ctx, piece)


def test_blocks_match_whole_run_with_real_pyin():
    y, _ = glide(220.0, 660.0, 2.0)
    y[SR // 2 : SR] = 0  # a rest, so the Viterbi path crosses voiced/unvoiced inside blocks
    cfg = ExtractConfig()
    whole = contours._pyin_midi(y, cfg)
    blocked = track_blocks([y[i : i + 5000] for i in range(0, len(y), 5000)], cfg, block_frames=80, context_frames=40)
    assert len(blocked) == len(whole)
    assert np.mean(np.abs(blocked - whole) < 0.01) > 0.99


# ============================================================================ inputs
def test_duplicate_ids_refused_before_any_work(tmp_path, capsys):
    from raympa.cli import main

    table = tmp_path / "t.csv"
    pd.DataFrame({"recording_id": ["a", "b", "a"], "audio_path": ["x.wav", "y.wav", "z.wav"]}).to_csv(table, index=False)
    with pytest.raises(ValueError, match="duplicate recording_id.*'a'"):
        extract(table, tmp_path / "out")
    assert main(["extract", "--table", str(table), "--out", str(tmp_path / "out")]) == 2
    assert "duplicate recording_id" in capsys.readouterr().err
    assert not (tmp_path / "out" / "contours.parquet").exists()
    bad = tmp_path / "nocol.csv"
    pd.DataFrame({"recording_id": ["a"], "path": ["x.wav"]}).to_csv(bad, index=False)
    assert main(["extract", "--table", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "audio_path" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [dict(fmin=3000.0), dict(fmax=30_000.0), dict(hop_length=0), dict(fmin=40.0),
                                 dict(backend="crepe")])
def test_impossible_parameters_refused_up_front(tmp_path, bad):
    tone_file(tmp_path / "in" / "a.wav", 0.2)
    with pytest.raises(ValueError):
        extract(tmp_path / "in", tmp_path / "out", config=ExtractConfig(**bad))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["extract", "import-pitchtracks"])
def test_cli_missing_or_malformed_input_is_one_line_and_exit_2(tmp_path, capsys, command):
    from raympa.cli import main

    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 20)
    (tmp_path / "nocol.csv").write_text("recording_id,other\na,b\n")
    (tmp_path / "empty.parquet").write_bytes(b"")
    cases = [[str(tmp_path / "nope")], ["--table", str(tmp_path / "nope.csv")], ["--table", str(tmp_path / "binary.csv")],
             ["--table", str(tmp_path / "nocol.csv")], ["--table", str(tmp_path / "empty.parquet")]]
    if command == "extract":
        tone_file(tmp_path / "in" / "a.wav", 0.2)
        cases += [[str(tmp_path / "in"), "--backend", "crepe"], [str(tmp_path / "in"), "--fmin", "10"]]
    for argv in cases:
        assert main([command, *argv, "--out", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"raympa {command}: ") and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "out").exists()


# ============================================================================ Ray Data runs
@pytest.fixture()
def audio_table(tmp_path):
    """A table mixing good inputs with every kind of bad one; relative paths."""
    d = tmp_path / "data"
    tone_file(d / "tone.wav", 0.6, 440.0)
    tone_file(d / "stereo22k.flac", 0.6, 330.0, sr=22_050, channels=2)
    tone_file(d / "long.wav", 3.0, 523.25)
    sf.write(d / "silent.wav", np.zeros(SR // 2, np.float32), SR)
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("not audio at all\n")
    data = (d / "tone.wav").read_bytes()
    (d / "trunc.wav").write_bytes(data[: len(data) // 2])
    rows = [
        ("tone", "tone.wav", None, None),
        ("stereo", "stereo22k.flac", None, None),
        ("seg", "long.wav", 1.0, 1.2),
        ("seg_over", "long.wav", 2.5, 2.0),
        ("silent", "silent.wav", None, None),
        ("empty", "empty.wav", None, None),
        ("text", "text.mp3", None, None),
        ("trunc", "trunc.wav", None, None),
        ("missing", "nope.wav", None, None),
        ("outside", "long.wav", 10.0, 1.0),
        ("nopath", "", None, None),
    ]
    table = d / "index.csv"
    pd.DataFrame(rows, columns=["recording_id", "audio_path", "segment_start", "segment_duration"]).assign(
        musicality=0.5).to_csv(table, index=False)
    return table


def test_extract_end_to_end_with_cache(ray_local, audio_table, tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    res = extract(audio_table, out, cache_dir=cache)
    ok, errors = load_contours(out), pd.read_csv(out / "errors.csv", dtype=str)
    # every input in exactly one of the two files
    assert sorted(ok.recording_id) == ["seg", "seg_over", "silent", "stereo", "tone"]
    assert sorted(errors.recording_id) == ["empty", "missing", "nopath", "outside", "text", "trunc"]
    assert list(errors.columns) == ["recording_id", "audio_path", "error"]
    reason = dict(zip(errors.recording_id, errors.error))
    for rid, text in [("empty", "empty file"), ("missing", "missing file"), ("text", "not a readable audio"),
                      ("trunc", "truncated"), ("outside", "outside the file"), ("nopath", "no path")]:
        assert text in reason[rid], (rid, reason[rid])
    assert res.n_ok == 5 and res.n_errors == 6 and res.n_computed == 5 and res.n_cached == 0

    # schema: list<float32> contours plus the contract's columns
    schema = pq.read_schema(out / "contours.parquet")
    assert schema.field("midi").type == pa.list_(pa.float32())
    assert schema.field("recording_id").type == pa.string()
    assert set(contours.CONTOUR_COLUMNS) <= set(schema.names)
    row = ok.set_index("recording_id")
    assert (row.sample_rate == SR).all() and (row.hop_length == HOP).all() and (row.backend == "fast").all()
    assert all(len(m) == n and m.dtype == np.float32 for m, n in zip(row.midi, row.n_frames))
    # values: tones at the right pitch, segment cut, stereo 22.05 kHz converted
    assert np.median(row.midi["tone"][5:-5]) == pytest.approx(69.0, abs=0.1)
    assert np.median(row.midi["stereo"][5:-5]) == pytest.approx(64.0, abs=0.1)  # 330 Hz ~ E4
    assert row.n_frames["seg"] == 1 + int(1.2 * SR) // HOP and row.segment_start["seg"] == pytest.approx(1.0)
    assert np.median(row.midi["seg"]) == pytest.approx(72.0, abs=0.1)
    assert row.segment_duration["seg_over"] == pytest.approx(0.5)
    # flags, kept rows
    assert row["flags"]["silent"] == "unvoiced;short" and row.voiced_fraction["silent"] == 0
    assert row["flags"]["tone"] == "short" and "truncated" in row["flags"]["seg_over"]
    sha = __import__("hashlib").sha1((audio_table.parent / "tone.wav").read_bytes()).hexdigest()
    assert row.source_sha1["tone"] == sha

    # second run: nothing computed, same contours
    res2 = extract(audio_table, tmp_path / "out2", cache_dir=cache)
    assert (res2.n_cached, res2.n_computed, res2.n_ok) == (5, 0, 5)
    again = load_contours(tmp_path / "out2").set_index("recording_id")
    assert all(np.array_equal(again.midi[r], row.midi[r]) for r in row.index)
    # a corrupt entry is detected and recomputed; the others still hit
    entries = sorted((cache / "contours").rglob("*.rmc"))
    assert len(entries) == 5
    data = bytearray(entries[0].read_bytes())
    data[-2] ^= 0x55
    entries[0].write_bytes(bytes(data))
    res3 = extract(audio_table, tmp_path / "out3", cache_dir=cache)
    assert (res3.n_cached, res3.n_computed, res3.n_corrupt) == (4, 1, 1)
    assert "4 of 5 from cache, 1 computed, 1 corrupt" in res3.summary()
    assert not list((cache / "contours").rglob("*.tmp-*"))
    # a changed parameter recomputes
    res4 = extract(audio_table, tmp_path / "out4", cache_dir=cache, config=ExtractConfig(fmax=2000.0))
    assert (res4.n_cached, res4.n_computed) == (0, 5)


def test_extract_matches_contour_from_audio(ray_local, tmp_path):
    path = tone_file(tmp_path / "in" / "a" / "x.ogg", 0.8, 392.0, sr=32_000, channels=2)
    extract(tmp_path / "in", tmp_path / "out", use_cache=False)
    got = load_contours(tmp_path / "out")
    assert got.recording_id.tolist() == ["a/x"]  # id = relative path without extension
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    ref = contour_from_audio(y.T, sr)  # what `predict` computes for the same file
    assert len(got.midi[0]) == len(ref)
    assert np.mean(np.abs(got.midi[0] - ref) < 0.05) > 0.95


def test_contours_record_their_pitch_range(ray_local, tmp_path):
    """A low voice extracted with --fmin 90: the table says so, and training/predict read it back."""
    from raympa.config import ExtractConfig
    from raympa.dataset import extraction_metadata

    tone_file(tmp_path / "in" / "low.wav", 0.8, 110.0)  # A2: below the default fmin (128 Hz)
    extract(tmp_path / "in", tmp_path / "out", config=ExtractConfig(fmin=90.0, fmax=1000.0), use_cache=False)
    got = load_contours(tmp_path / "out")
    assert got.fmin[0] == 90.0 and got.fmax[0] == 1000.0 and got.frame_length[0] == ExtractConfig.frame_length
    assert np.median(got.midi[0][got.midi[0] > 0]) == pytest.approx(45.0, abs=0.1)  # tracked at A2
    meta = extraction_metadata(got)
    assert meta["fmin"] == 90.0 and meta["fmax"] == 1000.0
    assert ExtractConfig(**meta).fmin == 90.0  # what a checkpoint records for raympa predict


def test_import_pitchtracks(ray_local, tmp_path):
    times, f0 = notes_track(1200)
    d = tmp_path / "tracks"
    (d / "2013").mkdir(parents=True)
    write_track(d / "2013" / "111_pyin_pitchtrack.txt", times, f0)
    write_track(d / "222_pyin_pitchtrack.txt", times, f0, sep=" ", header=False)
    (d / "333_pyin_pitchtrack.txt").write_text("")
    (d / "notes.txt").write_text("ignored: not a pitch track name")
    res = import_pitchtracks(d, tmp_path / "out", hop_length=128, use_cache=False)
    assert res.n_ok == 2 and res.n_errors == 1
    ok = load_contours(tmp_path / "out").set_index("recording_id")
    assert sorted(ok.index) == ["2013/111", "222"]
    assert (ok.n_frames == 2400).all() and (ok.hop_length == 128).all() and (ok.backend == "import").all()
    assert ok.fmin.isna().all()  # no pYIN range for imported tracks
    assert "empty file" in pd.read_csv(tmp_path / "out" / "errors.csv").error[0]
    # from a table with segments and other columns
    table = tmp_path / "idx.csv"
    pd.DataFrame({"recording_id": ["s1", "s2"], "pitchtrack_path": ["tracks/222_pyin_pitchtrack.txt", "tracks/x.txt"],
                  "segment_start": [200 * HOP / SR, 0], "segment_duration": [400 * HOP / SR, 1], "band": "x"}
                 ).to_csv(table, index=False)
    res = import_pitchtracks(table, tmp_path / "out2", cache_dir=tmp_path / "cache")
    seg = load_contours(tmp_path / "out2")
    assert seg.recording_id.tolist() == ["s1"] and res.n_errors == 1
    np.testing.assert_allclose(seg.midi[0], hz_to_midi(f0[200:601]), atol=1e-5)
    assert "short" in seg["flags"][0]
    res = import_pitchtracks(table, tmp_path / "out3", cache_dir=tmp_path / "cache")
    assert res.n_cached == 1 and res.n_computed == 0


def test_cli_extract_folder(ray_local, tmp_path, capsys):
    from raympa.cli import main

    tone_file(tmp_path / "in" / "a.wav", 0.3)
    (tmp_path / "in" / "bad.flac").write_bytes(b"fLaC" + b"\0" * 50)
    rc = main(["extract", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    assert "1 of 2 contours written" in capsys.readouterr().out
    assert load_contours(tmp_path / "out").recording_id.tolist() == ["a"]
    assert pd.read_csv(tmp_path / "out" / "errors.csv").recording_id.tolist() == ["bad"]


@pytest.mark.slow
def test_twenty_minute_file_in_bounded_memory(no_shared_ray, tmp_path):
    """A 20-minute audition (22.05 kHz, resampled) goes through in blocks: the worker stays small.

    Whole-file pYIN would hold its (states x frames) observation matrix, about 1.7 GB for
    206,000 frames, next to the 212 MB signal; blockwise it is about 100 MB.
    """
    sr_in, minutes = 22_050, 20
    path = tmp_path / "in" / "long.flac"
    path.parent.mkdir()
    y, _ = glide(300.0, 600.0, 60.0, sr=sr_in)
    with sf.SoundFile(path, "w", samplerate=sr_in, channels=1, format="FLAC") as f:
        for _ in range(minutes):
            f.write(y)
    res = extract(tmp_path / "in", tmp_path / "out", use_cache=False, num_workers=1)
    assert res.n_ok == 1, pd.read_csv(tmp_path / "out" / "errors.csv").to_dict()
    got = load_contours(tmp_path / "out")
    assert got.n_frames[0] == 1 + int(round(minutes * 60 * SR)) // HOP
    assert got.voiced_fraction[0] > 0.95
    assert res.worker_peak_mb < 1000, res.worker_peak_mb


# ============================================================================ 2-node cluster (own Ray)
def test_two_node_cluster_both_nodes_work(no_shared_ray, tmp_path):
    """A local 2-node ray.cluster_utils.Cluster: rows are computed on both nodes."""
    from ray.cluster_utils import Cluster

    for i in range(6):
        tone_file(tmp_path / "in" / f"t{i}.wav", 1.0, 250.0 + 40 * i)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        res = extract(tmp_path / "in", tmp_path / "out", address=cluster.address, use_cache=False)
        assert res.n_ok == 6
        nodes = set(load_contours(tmp_path / "out").node_id)
        assert len(nodes) == 2, nodes
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


# ============================================================================ numba caches (own Ray)
@pytest.mark.slow
def test_librosa_backend_on_two_workers_from_an_empty_numba_cache(tmp_path):
    """librosa's cached gufuncs are compiled once in the driver, then loaded by both workers.

    Two workers compiling them at once can leave a corrupt cache that crashes every later run;
    a fresh process with an empty NUMBA_CACHE_DIR (its own Ray, as a user's first run) must
    finish, and leave the compiled kernels in that folder.
    """
    for i in range(4):
        tone_file(tmp_path / "in" / f"t{i}.wav", 0.5, 300.0 + 50 * i)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "raympa", "extract", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
         "--backend", "librosa", "--num-workers", "2", "--no-cache"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 of 4 contours written" in proc.stdout, proc.stdout
    assert (load_contours(tmp_path / "out").backend == "librosa").all()
    assert list((tmp_path / "numba").rglob("*.nbi")), "no numba cache written"


# ============================================================================ demo: render and extract fused
def test_demo_fused_contours_equal_two_step_extract(ray_local, tmp_path):
    """``make_demo(contours=...)`` writes the audio of a plain ``make_demo`` and the contours folder and
    cache entries ``raympa extract --table ratings.csv`` writes from it (node_id aside: no Ray)."""
    from raympa.demo import make_demo
    from raympa.demo.folder import ContourOutput

    cache = tmp_path / "cache"
    fused = tmp_path / "fused"
    make_demo(fused, n=6, seed=3, duration_s=2.0, jobs=2, contours=ContourOutput(fused / "contours", cache_dir=cache))
    plain = tmp_path / "plain"
    make_demo(plain, n=6, seed=3, duration_s=2.0, jobs=1)
    wavs = sorted(p.relative_to(fused) for p in (fused / "audio").rglob("*.wav"))
    assert len(wavs) == 6 and wavs == sorted(p.relative_to(plain) for p in (plain / "audio").rglob("*.wav"))
    assert all((fused / w).read_bytes() == (plain / w).read_bytes() for w in wavs)

    res = extract(fused / "ratings.csv", tmp_path / "two_step", use_cache=False)
    assert res.n_ok == 6 and res.n_computed == 6
    got = pq.read_table(fused / "contours" / "contours.parquet").to_pandas()
    ref = pq.read_table(tmp_path / "two_step" / "contours.parquet").to_pandas()
    assert list(got.columns) == list(ref.columns) == list(contours.CONTOUR_COLUMNS)
    assert (got.node_id == "").all() and (ref.node_id != "").all()
    got, ref = got.drop(columns="node_id"), ref.drop(columns="node_id")
    assert got.recording_id.tolist() == ref.recording_id.tolist()
    for col in got.columns:
        if col == "midi":
            assert all(np.array_equal(a, b) for a, b in zip(got.midi, ref.midi))
        else:
            pd.testing.assert_series_equal(got[col], ref[col], check_exact=True)
    assert pd.read_csv(fused / "contours" / "errors.csv").empty
    # the fused run filled the cache: a later extract computes nothing
    hit = extract(fused / "ratings.csv", tmp_path / "from_cache", cache_dir=cache)
    assert (hit.n_cached, hit.n_computed) == (6, 0)


def test_demo_contours_need_audio(tmp_path):
    from raympa.demo import make_demo

    with pytest.raises(ValueError, match="contours need the audio"):
        make_demo(tmp_path / "d", n=2, duration_s=1.0, render_audio=False, contours=tmp_path / "c")
    assert not (tmp_path / "d").exists()
