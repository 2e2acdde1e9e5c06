"""Pitch tracks: read ``time_sec,f0_hz`` files and re-grid them onto a contour's hop grid.

The FBA data set ships one ``<id>_pyin_pitchtrack.txt`` per audition (pYIN at hop 256, 44.1 kHz,
the whole audition; see docs/contours.md, "Pitch-track import"). :func:`read_pitchtrack` reads
such a file, :func:`regrid_pitchtrack` puts it on the frames ``k * hop_length / sample_rate`` of
a segment, as MIDI per frame (float32, 0 = unvoiced), the unit every stored contour uses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raympa.audio import AudioError, check_file

PITCHTRACK_SUFFIX = "_pyin_pitchtrack.txt"  # FBA pitch-track file names
_SPLIT = re.compile(r"[,;\s]+")


def hz_to_midi(f0: np.ndarray) -> np.ndarray:
    """f0 in Hz -> MIDI float32; NaN, 0 and negative values (unvoiced) -> 0."""
    f0 = np.asarray(f0, dtype=np.float64)
    midi = np.zeros(f0.shape, dtype=np.float32)
    ok = np.isfinite(f0) & (f0 > 0)
    midi[ok] = 69.0 + 12.0 * np.log2(f0[ok] / 440.0)
    return midi


def read_pitchtrack(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``time_sec,f0_hz`` pitch track (comma or whitespace separated; header lines skipped).

    Returns:
        times (n,) float64 seconds, non-decreasing; f0 (n,) float64 Hz (<= 0 or NaN = unvoiced).

    Raises:
        AudioError: missing, empty, no data lines, or times going backwards.
    """
    path = Path(path)
    check_file(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise AudioError("not a text pitch track (binary content)") from None
    times: list[float] = []
    f0s: list[float] = []
    for line in text.splitlines():
        parts = _SPLIT.split(line.strip())
        if len(parts) < 2:
            continue
        try:
            t, f = float(parts[0]), float(parts[1])
        except ValueError:
            continue  # header or comment line
        times.append(t)
        f0s.append(f)
    if not times:
        raise AudioError("no 'time_sec,f0_hz' lines in pitch track")
    t_arr = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(t_arr)):
        raise AudioError("pitch track has non-finite timestamps")
    back = np.flatnonzero(np.diff(t_arr) < 0)
    if len(back):
        raise AudioError(f"pitch track timestamps go backwards after {t_arr[back[0]]:g} s")
    return t_arr, np.asarray(f0s, dtype=np.float64)


@dataclass(frozen=True)
class Regridded:
    """A pitch track on the hop grid of one segment."""

    midi: np.ndarray  # (n_frames,) float32, 0 = unvoiced
    segment_start: float  # s
    segment_duration: float  # s (after truncation)
    truncated: bool  # the requested segment ran past the end of the track


def _segment(end: float, start: float | None, duration: float | None) -> tuple[float, float, bool]:
    """The segment ``(start, duration, truncated)`` in s of a track covering ``[0, end]``."""
    start_s = 0.0 if start is None or math.isnan(start) else float(start)
    if start_s < 0 or start_s >= end:
        raise AudioError(f"segment starts at {start_s:g} s, outside the pitch track (0-{end:.2f} s)")
    if duration is None or math.isnan(duration):
        return start_s, end - start_s, False
    if duration <= 0:
        raise AudioError(f"segment duration {duration:g} s is not positive")
    if start_s + float(duration) > end + 0.01:  # a rounding-size overshoot (< 10 ms) is not worth a flag
        return start_s, end - start_s, True
    return start_s, float(duration), False


def regrid_pitchtrack(
    times: np.ndarray,
    f0: np.ndarray,
    *,
    sample_rate: int,
    hop_length: int,
    start: float | None = None,
    duration: float | None = None,
) -> Regridded:
    """Re-grid a pitch track to frames ``k * hop_length / sample_rate`` after ``start``.

    Each target frame takes the f0 of the source frame nearest in time (ties: the earlier one);
    a target frame farther than one source spacing from any source frame is unvoiced. The track
    covers ``[0, times[-1] + spacing / 2]``; a segment of ``d`` s gets
    ``1 + round(d * sample_rate) // hop_length`` frames, as audio extraction does.

    Args:
        times, f0: the track, as :func:`read_pitchtrack` returns it (s, Hz), each (n,).
        sample_rate, hop_length: the target grid (Hz, samples).
        start, duration: the segment in s (None or NaN: from 0, to the end).

    Raises:
        AudioError: the segment starts outside the track, or has a non-positive duration.
    """
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else hop_length / sample_rate
    spacing = spacing if spacing > 0 else hop_length / sample_rate
    start_s, dur, truncated = _segment(float(times[-1]) + spacing / 2, start, duration)
    n_frames = 1 + int(round(dur * sample_rate)) // hop_length
    t = start_s + np.arange(n_frames) * (hop_length / sample_rate)  # (n_frames,) s
    right = np.clip(np.searchsorted(times, t), 1, len(times) - 1) if len(times) > 1 else np.zeros(n_frames, int)
    left = np.maximum(right - 1, 0)
    d_left = np.abs(t - times[left])
    d_right = np.abs(times[right] - t)
    nearest = np.where(d_left <= d_right, left, right)
    dist = np.minimum(d_left, d_right)
    hz = np.where(dist <= spacing * (1 + 1e-6), f0[nearest], 0.0)
    return Regridded(midi=hz_to_midi(hz), segment_start=start_s, segment_duration=dur, truncated=truncated)


__all__ = ["PITCHTRACK_SUFFIX", "Regridded", "hz_to_midi", "read_pitchtrack", "regrid_pitchtrack"]
