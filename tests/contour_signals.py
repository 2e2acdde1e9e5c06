"""Test signals and files shared by the contour tests: harmonic tones, audio files, pitch tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from raympa import constants as C

SR = C.SAMPLE_RATE
HOP = C.HOP_LENGTH


def glide(f_start: float, f_end: float, seconds: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """A harmonic tone (5 partials, 1/k amplitudes) gliding exponentially from f_start to f_end.

    Returns (signal (n,), f0 per sample (n,)). Harmonics, like the study's wind instruments: on a
    bare sine pYIN is biased by one or two 10-cent bins below 260 Hz.
    """
    t = np.arange(int(seconds * sr)) / sr
    f = f_start * (f_end / f_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    return y.astype(np.float32), f


def tone_file(path: Path, seconds: float, f0: float = 440.0, sr: int = SR, channels: int = 1) -> Path:
    """Write a steady harmonic tone to ``path`` (format from its extension)."""
    y, _ = glide(f0, f0, seconds, sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([y] * channels, axis=1) if channels > 1 else y, sr)
    return path


def write_track(path: Path, times, f0, *, sep=",", header=True) -> Path:
    """Write a ``time_sec,f0_hz`` pitch track, with FBA's header lines unless ``header=False``."""
    lines = ["// pYIN pitch track", "time_sec,f0_hz"] if header else []
    lines += [f"{t:.6f}{sep}{f:.4f}" for t, f in zip(times, f0)]
    path.write_text("\n".join(lines) + "\n")
    return path


def notes_track(n_frames: int, hop: int = HOP) -> tuple[np.ndarray, np.ndarray]:
    """FBA-like track: hop 256 at 44.1 kHz, notes of 20 frames, every 4th note a rest (0)."""
    times = np.arange(n_frames) * hop / SR
    note = np.arange(n_frames) // 20
    f0 = np.where(note % 4 == 3, 0.0, 440.0 * 2 ** ((note % 12) / 12))
    return times, f0
