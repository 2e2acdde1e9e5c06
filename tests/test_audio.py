"""Decoding for extraction: bad inputs get one-line reasons, segments, stereo, resampling, streaming."""

from __future__ import annotations

import math
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from raympa import audio
from raympa.audio import AudioError

SR = 44_100


def _tone(seconds: float, sr: int = SR, f0: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_bad_inputs_have_one_line_reasons(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(1.0), SR)
    data = good.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.mp3").write_bytes(os.urandom(4000))
    (tmp_path / "text.wav").write_text("hello, I am not audio\n")
    (tmp_path / "trunc.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "header_only.wav").write_bytes(data[:30])
    cases = {
        "missing.wav": "missing file",
        "empty.wav": "empty file",
        "noise.mp3": "not a readable audio file",
        "text.wav": "not a readable audio file",
        "trunc.wav": "truncated file",
        "header_only.wav": "not a readable audio file",
    }
    for name, reason in cases.items():
        with pytest.raises(AudioError) as e:
            audio.probe(tmp_path / name)
        msg = str(e.value)
        assert reason in msg and "\n" not in msg, (name, msg)
    assert audio.probe(good).n_samples == SR


def test_truncated_flac_fails_while_decoding(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _tone(2.0), SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="corrupt or truncated"):
        audio.load_segment(path, sample_rate=SR)


def test_segments(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.arange(SR * 2, dtype=np.float32) / (SR * 2), SR)  # a ramp: sample value = position
    info = audio.probe(path)
    seg = audio.plan_segment(info, start=0.5, duration=1.0)
    assert (seg.start, seg.n_samples, seg.truncated) == (SR // 2, SR, False)
    y = audio.load_segment(path, sample_rate=SR, start=0.5, duration=1.0)
    assert len(y) == SR and y[0] == pytest.approx(0.25, abs=1e-4)  # cut at 0.5 s of a 2 s ramp
    whole = audio.plan_segment(info, start=math.nan, duration=math.nan)
    assert (whole.start, whole.n_samples) == (0, 2 * SR)
    over = audio.plan_segment(info, start=1.5, duration=1.0)  # runs past the end: cut and flagged
    assert over.n_samples == SR // 2 and over.truncated
    for start, dur in [(2.0, 1.0), (5.0, None), (-1.0, 1.0), (0.0, 0.0)]:
        with pytest.raises(AudioError, match="segment"):
            audio.plan_segment(info, start=start, duration=dur)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_stereo_and_other_rates_become_mono_at_44k1(tmp_path, fmt):
    sr_in = 22_050
    left, right = _tone(1.0, sr_in, 440.0), _tone(1.0, sr_in, 440.0) * 0.5
    path = tmp_path / f"s.{fmt}"
    sf.write(path, np.stack([left, right], axis=1), sr_in)
    info = audio.probe(path)
    assert info.channels == 2 and info.sample_rate == sr_in
    y = audio.load_segment(path, sample_rate=SR)
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - SR) <= SR * 0.06  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(y[: SR // 2]))
    assert np.argmax(spectrum) * 2 == pytest.approx(440, abs=4)  # 2 Hz bins: still a 440 Hz tone
    assert np.max(np.abs(y)) == pytest.approx(0.375, rel=0.1)  # channel mean of 0.5 and 0.25


def test_streaming_resample_matches_one_shot(tmp_path):
    import soxr

    sr_in = 48_000
    x = _tone(3.0, sr_in, 300.0) + 0.1 * np.random.default_rng(0).standard_normal(3 * sr_in).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, x, sr_in, subtype="FLOAT")
    seg = audio.plan_segment(audio.probe(path))
    y = np.concatenate(list(audio.iter_segment(path, seg, sample_rate=SR, read_block=10_000)))
    ref = soxr.resample(x, sr_in, SR, quality="HQ")
    assert len(y) == len(ref)
    assert np.max(np.abs(y - ref)) < 1e-4


def test_long_file_streams_in_bounded_memory(tmp_path):
    """A 20-minute audition is decoded and resampled in pieces, never as one array."""
    sr_in, minutes = 22_050, 20
    path = tmp_path / "long.flac"
    block = _tone(60.0, sr_in, 330.0)
    with sf.SoundFile(path, "w", samplerate=sr_in, channels=1, format="FLAC") as f:
        for _ in range(minutes):
            f.write(block)
    seg = audio.plan_segment(audio.probe(path))
    tracemalloc.start()
    total, biggest = 0, 0
    for piece in audio.iter_segment(path, seg, sample_rate=SR):
        total += len(piece)
        biggest = max(biggest, len(piece))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == pytest.approx(minutes * 60 * SR, abs=SR * 0.01)
    whole_file = minutes * 60 * SR * 4  # bytes of the whole signal as float32 (212 MB)
    assert peak < whole_file / 20, f"peak {peak / 1e6:.1f} MB"
    assert biggest <= 2 * audio.READ_BLOCK * SR / sr_in + 1000


def test_relative_id():
    from pathlib import Path

    root = Path("/data")
    assert audio.relative_id(Path("/data/a/b.wav"), root) == "a/b"
    assert audio.relative_id(Path("/data/x/1_pyin_pitchtrack.txt"), root, suffix="_pyin_pitchtrack.txt") == "x/1"
