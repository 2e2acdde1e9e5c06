"""Pitch tracks: reading ``time_sec,f0_hz`` files and re-gridding them onto a hop grid."""

from __future__ import annotations

import numpy as np
import pytest
from contour_signals import HOP, SR, notes_track, write_track

from raympa.audio import AudioError
from raympa.pitchtracks import hz_to_midi, read_pitchtrack, regrid_pitchtrack


def test_hz_to_midi():
    got = hz_to_midi(np.array([440.0, 880.0, 261.6256, np.nan, 0.0, -5.0]))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [69, 81, 60, 0, 0, 0], atol=1e-4)


@pytest.mark.parametrize("sep", [",", " ", "\t"])
def test_read_pitchtrack_formats(tmp_path, sep):
    times, f0 = notes_track(100)
    t, f = read_pitchtrack(write_track(tmp_path / "t.txt", times, f0, sep=sep))
    np.testing.assert_allclose(t, times, atol=1e-6)
    np.testing.assert_allclose(f, f0, atol=1e-4)


def test_read_pitchtrack_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "words.txt").write_text("time_sec,f0_hz\nno numbers here\n")
    (tmp_path / "back.txt").write_text("0.0,440\n0.1,440\n0.05,440\n")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x81" * 10)
    for name, reason in [("missing.txt", "missing"), ("empty.txt", "empty"), ("words.txt", "no 'time_sec"),
                         ("back.txt", "backwards"), ("bin.txt", "not a text")]:
        with pytest.raises(AudioError, match=reason):
            read_pitchtrack(tmp_path / name)


def test_regrid_same_hop_is_identity_and_cuts_segments():
    times, f0 = notes_track(400)
    rg = regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=HOP)
    assert len(rg.midi) == 400 and not rg.truncated
    np.testing.assert_allclose(rg.midi, hz_to_midi(f0), atol=1e-5)
    # a segment starting at frame 100 for 200 frames
    seg = regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=HOP, start=100 * HOP / SR, duration=200 * HOP / SR)
    assert len(seg.midi) == 201  # 1 + n_samples // hop, as audio extraction
    np.testing.assert_allclose(seg.midi, hz_to_midi(f0[100:301]), atol=1e-5)
    over = regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=HOP, start=300 * HOP / SR, duration=10.0)
    assert over.truncated and len(over.midi) == 100
    for start, dur in [(5.0, 1.0), (-0.1, 1.0), (0.0, -1.0)]:
        with pytest.raises(AudioError, match="segment"):
            regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=HOP, start=start, duration=dur)


def test_regrid_to_hop_128_and_512():
    times, f0 = notes_track(400)
    fine = regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=128)
    assert len(fine.midi) == 800
    np.testing.assert_allclose(fine.midi[0::2], hz_to_midi(f0), atol=1e-5)  # on the source frames
    inside = (np.arange(399) % 20) != 19  # halfway frames inside a note (not at a note change)
    np.testing.assert_allclose(fine.midi[1::2][:399][inside], hz_to_midi(f0[:399])[inside], atol=1e-5)
    coarse = regrid_pitchtrack(times, f0, sample_rate=SR, hop_length=512)
    assert len(coarse.midi) == 200
    np.testing.assert_allclose(coarse.midi, hz_to_midi(f0[0::2]), atol=1e-5)


def test_regrid_gap_in_track_is_unvoiced():
    times, f0 = notes_track(200)
    keep = (np.arange(200) < 50) | (np.arange(200) >= 150)  # 100 frames missing from the file
    rg = regrid_pitchtrack(times[keep], np.full(keep.sum(), 440.0), sample_rate=SR, hop_length=HOP)
    assert np.all(rg.midi[60:140] == 0) and np.all(rg.midi[:50] == 69) and np.all(rg.midi[150:] == 69)
