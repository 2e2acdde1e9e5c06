"""Note-level timing of a performance against its reference: the rhythm numbers a judge hears.

A judge of rhythm listens against the student's own tempo: phrases rushed or dragged, a tempo
drifting over the piece, uneven onsets and misread rhythms, not the tempo the student chose. The
DTW path of :mod:`raympa.align` runs at a reduced rate (about 23 ms a step) and bends to every
error; these numbers read the onsets themselves at the contours' full rate (about 6 ms) and fit
the student's tempo to them (ours):

1. The reference's notes (:func:`reference_onsets`: its relative pitch smoothed and rounded to
   semitones; a note holds at least :data:`MIN_NOTE_S`, a rest at least :data:`MIN_REST_S`, so a
   recorded reference or the training peers give the notes a listener hears) are placed in the
   performance where the path puts them, then refined within :data:`SEARCH_S` seconds: the onset
   is the frame that best splits the window into frames nearer the previous note's pitch and
   frames nearer the new one's (folded relative pitch, so key and octave do not matter); after a
   rest, frames voiced within :data:`NEAR_SEMITONES` of the new note.
2. Phrases are the reference's stretches between rests; in each with at least
   :data:`MIN_PHRASE_ONSETS` onsets a line ``performance time = a + b * reference time`` is fitted
   robustly (Theil-Sen: the median of the pairwise slopes), so a misread or late note does not
   move it. ``log(b / b_all)`` is the phrase's tempo against the student's own
   (``b_all`` from all onsets), clipped to +-:data:`PHRASE_LOG_CLIP`.

The four numbers (:data:`TIMING_FEATURES`, appended to :data:`raympa.align.RHYTHM_FEATURES`):

* ``phrase_tempo_spread``: standard deviation of the phrases' log tempi after removing their
  linear trend over the piece (phrases rushed or dragged against the student's own tempo); 0 with
  fewer than two phrases (with two, no trend is removed);
* ``phrase_tempo_drift``: absolute least-squares slope of the phrases' log tempi against their
  position (0 at the first phrase, 1 at the last): an accelerando or ritardando of either sign;
  0 with fewer than three phrases;
* ``onset_jitter_s``: robust standard deviation (1.4826 median absolute deviation) of the onsets'
  residuals from their phrase's line, seconds (uneven onsets);
* ``misread_share``: share of those onsets whose residual exceeds :data:`MISREAD_SHARE` of the
  shorter of its two inter-onset intervals (a misread rhythm moves an onset by a quarter to half
  of a note).

All are 0 when too few onsets are found (fewer than :data:`MIN_PHRASE_ONSETS` in every phrase),
and never NaN. Units: contours are MIDI per frame, 0 = unvoiced; times in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from raympa import constants as C
from raympa.align import RHYTHM_FEATURES, Alignment, fold

TIMING_FEATURES = RHYTHM_FEATURES[-4:]  # the names live with the others in raympa.align
SMOOTH_FRAMES = 5  # ours: median filter of the reference's pitch before its notes are read (29 ms)
MIN_NOTE_S = 0.045  # ours: a shorter run of one pitch in the reference is not a note of its own
MIN_REST_S = 0.08  # ours: a shorter unvoiced gap in the reference is not a rest
NOTE_STEP = 0.6  # ours: semitones from the note before that a new note of the reference needs
UNVOICED = -100.0  # stands for an unvoiced frame in the median filter (semitones, far below any note)
SEARCH_S = 0.12  # ours: an onset is looked for this far (s) either side of where the path puts it
NEAR_SEMITONES = 1.5  # ours: after a rest, a voiced frame this close to the new note (folded) is the note
MIN_PHRASE_ONSETS = 4  # ours: onsets a phrase needs for its tempo line
PHRASE_LOG_CLIP = 0.4  # ours: a phrase's log tempo ratio is clipped to +-0.4 (a factor of 1.5)
MISREAD_SHARE = 0.2  # ours: residual / shorter adjacent inter-onset interval above which an onset is misread
MAD_TO_SD = 1.4826  # the median absolute deviation of a normal variable times this is its standard deviation


def reference_onsets(ref: np.ndarray, alignment: Alignment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's notes within its voiced span, in the performance's key.

    The relative pitch (with the key offset), median-filtered over :data:`SMOOTH_FRAMES` frames, is
    rounded to semitones around the reference's own tuning (the circular mean of its fractions of a
    semitone, so vibrato around a note does not cross a rounding boundary); a note starts where the rounded pitch changes, holds for at least
    :data:`MIN_NOTE_S` and lies at least :data:`NOTE_STEP` semitones from the mean of the note
    before (shorter runs, a slide or a crack in a recorded reference, and vibrato across a rounding
    boundary belong to the note before), or after a rest of at least :data:`MIN_REST_S` (shorter
    unvoiced gaps are tracker dropouts). A MIDI score gives its notes exactly; a recording or the training peers, the
    notes a listener would hear.

    Returns:
        (k,) int64 onset frames (full rate, from the span's start), (k,) each note's mean pitch
        (semitones, relative, with the key offset), (k,) the previous note's (NaN after a rest).
    """
    r0, r1 = alignment.ref_span
    ref = np.asarray(ref, np.float64)[r0:r1]
    voiced = ref > 0
    smooth = median_filter(np.where(voiced, ref - alignment.ref_median + alignment.key_offset, UNVOICED),
                           size=SMOOTH_FRAMES, mode="nearest")
    sounding = voiced & (smooth > UNVOICED / 2)
    angle = 2 * np.pi * smooth[sounding]  # the notes' centres sit at this fraction of a semitone (tuning)
    centre = float(np.arctan2(np.sin(angle).sum(), np.cos(angle).sum()) / (2 * np.pi)) if sounding.any() else 0.0
    key = np.where(sounding, np.rint(smooth - centre), np.inf)  # (n,) rounded to the reference's own tuning
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])  # runs of one rounded pitch or of silence
    lengths = np.diff(np.r_[starts, len(key)])
    frame_rate = C.FRAME_RATE  # frames/s
    min_note, min_rest = MIN_NOTE_S * frame_rate, MIN_REST_S * frame_rate
    onsets, pitch, rested, frames = [], [], [], []
    gap = np.inf  # the span starts after a rest
    for start, length in zip(starts, lengths):
        if not np.isfinite(key[start]):
            gap = length if not np.isfinite(gap) else gap + length
            continue
        mean = float(smooth[start:start + length].mean())
        after_rest = gap >= min_rest
        gap = 0
        if not after_rest and pitch and (length < min_note or abs(mean - pitch[-1]) < NOTE_STEP):
            # too short to be a note, or vibrato across a rounding boundary: part of the note before
            pitch[-1] = (pitch[-1] * frames[-1] + mean * length) / (frames[-1] + length)
            frames[-1] += length
            continue
        onsets.append(start)
        pitch.append(mean)
        rested.append(after_rest)
        frames.append(length)
    previous = np.r_[np.nan, pitch[:-1]] if pitch else np.zeros(0)
    previous[np.asarray(rested, bool)] = np.nan
    return np.asarray(onsets, np.int64), np.asarray(pitch, np.float64), previous


def performance_onsets(perf: np.ndarray, alignment: Alignment, onsets: np.ndarray, pitch: np.ndarray,
                       previous: np.ndarray, *, frame_rate: float) -> np.ndarray:
    """(k,) int64 performance frame (full rate) of each reference onset: the path's frame, refined."""
    a, f = alignment, alignment.factor
    p = np.asarray(perf, np.float64)
    p = np.where(p > 0, p - a.perf_median, np.nan)  # (n_perf,) relative pitch
    js, first = np.unique(a.path[:, 1], return_index=True)  # first path step of each reference frame
    k = np.minimum(np.searchsorted(js, onsets // f), len(js) - 1)
    centre = a.perf_span[0] + a.path[first[k], 0] * f + f // 2  # (k,) full-rate frame the path gives
    w = max(1, int(round(SEARCH_S * frame_rate)))
    idx = centre[:, None] + np.arange(-w, w + 1)[None, :]  # (k, 2w + 1)
    inside = np.clip(idx, 0, len(p) - 1)
    x = p[inside]
    voiced = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        near_new = np.abs(fold(x - pitch[:, None]))
        near_old = np.abs(fold(x - previous[:, None]))
        new = np.where(~np.isfinite(previous)[:, None], voiced & (near_new <= NEAR_SEMITONES),
                       np.where(voiced, near_new < near_old, 0.5)).astype(np.float64)
    new = np.where(idx < 0, 0.0, np.where(idx > len(p) - 1, 1.0, new))  # before the start: old; after the end: new
    # cost of splitting before window frame t: "new" frames before it plus "old" frames from it on
    before = np.concatenate([np.zeros((len(x), 1)), np.cumsum(new, axis=1)], axis=1)  # (k, 2w + 2)
    after = (1.0 - new).sum(axis=1, keepdims=True) - np.concatenate(
        [np.zeros((len(x), 1)), np.cumsum(1.0 - new, axis=1)], axis=1)
    t = np.arange(2 * w + 2)
    cost = before + after + 1e-3 * np.abs(t - (w + 0.5))[None, :]  # ties: nearest the path's frame
    return centre - w + np.argmin(cost, axis=1)


def theil_sen(s: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Robust line ``t = a + b * s``: b the median of the pairwise slopes, a the median intercept."""
    i, j = np.triu_indices(len(s), 1)
    ds = s[j] - s[i]
    ok = ds > 0
    if not ok.any():
        return float(np.median(t)), 0.0
    b = float(np.median((t[j] - t[i])[ok] / ds[ok]))
    return float(np.median(t - b * s)), b


def timing_features(perf: np.ndarray, ref: np.ndarray, alignment: Alignment, *, frame_rate: float) -> np.ndarray:
    """The four timing numbers (:data:`TIMING_FEATURES`, in order) of one aligned performance.

    Args:
        perf, ref: MIDI contours on one hop grid, 0 = unvoiced.
        alignment: their :func:`raympa.align.align` result.
        frame_rate: contour frames per second.

    Returns:
        (4,) float64, never NaN: log tempo ratio, log tempo ratio over the piece, seconds, share.
    """
    onsets, pitch, previous = reference_onsets(ref, alignment)
    if len(onsets) < MIN_PHRASE_ONSETS or not np.isfinite(alignment.perf_median):
        return np.zeros(len(TIMING_FEATURES))
    frames = performance_onsets(perf, alignment, onsets, pitch, previous, frame_rate=frame_rate)
    s = (onsets + alignment.ref_span[0]) / frame_rate  # (k,) reference time, s
    t = frames / frame_rate  # (k,) performance time, s
    _, whole = theil_sen(s, t)
    if whole <= 0:
        return np.zeros(len(TIMING_FEATURES))
    phrase = np.cumsum(~np.isfinite(previous)) - 1  # (k,) the reference's stretches between rests
    residual = np.full(len(s), np.nan)
    slope = np.full(len(s), whole)
    logs, where = [], []
    for g in np.unique(phrase):
        m = phrase == g
        if m.sum() < MIN_PHRASE_ONSETS:
            continue
        a, b = theil_sen(s[m], t[m])
        logs.append(float(np.clip(np.log(max(b, 1e-6) / whole), -PHRASE_LOG_CLIP, PHRASE_LOG_CLIP)))
        where.append(float(s[m].mean()))
        residual[m], slope[m] = t[m] - (a + b * s[m]), b
    logs_a, where_a = np.array(logs), np.array(where)
    spread = float(np.std(logs_a)) if len(logs_a) >= 2 else 0.0
    drift = 0.0
    if len(logs_a) >= 3:
        pos = (where_a - where_a.min()) / max(where_a.max() - where_a.min(), 1e-9)
        coef = np.polyfit(pos, logs_a, 1)
        drift, spread = abs(float(coef[0])), float(np.std(logs_a - np.polyval(coef, pos)))
    fitted = np.isfinite(residual)
    if not fitted.any():
        return np.array([spread, drift, 0.0, 0.0])
    r = residual[fitted]
    jitter = MAD_TO_SD * float(np.median(np.abs(r - np.median(r))))
    ioi = np.diff(s)
    shorter = np.minimum(np.r_[np.inf, ioi], np.r_[ioi, np.inf]) * slope  # (k,) s at the phrase's tempo
    misread = float(np.mean(np.abs(residual[fitted]) > MISREAD_SHARE * shorter[fitted]))
    return np.array([spread, drift, jitter, misread])
