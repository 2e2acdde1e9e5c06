"""Key- and octave-invariant alignment of a performance's pitch contour to a reference contour.

A judge hears a performance against the piece; a performer may play or sing it in another key or
octave. Both contours are therefore compared in *relative* pitch: each voiced frame minus the
median of the contour's voiced frames, and the difference of two frames is folded into one octave
(``((p - r + 6) mod 12) - 6`` semitones), so a transposition by any interval and a note played an
octave off both cost nothing. Score-informed MPA aligns performance and score by DTW (Huang,
Hung, Pati, Gururani & Lerch, "Score-informed networks for music performance assessment",
ISMIR 2020); the key and octave invariance is ours.

Speed: the contours (hop 256 at 44.1 kHz, 172 frames/s) are averaged over ``factor`` frames
(default 4: about 43 frames/s) and DTW runs in a Sakoe-Chiba band around the (length-scaled)
diagonal, in one numba kernel that computes the costs on the fly (no cost matrix) and releases the
GIL, so :func:`align_many` aligns on several threads at once.

Units: contours are MIDI numbers per frame, 0 = unvoiced; deviations in semitones.

Alignment features (:data:`FEATURES`, what :func:`alignment_features` returns, in this order):

* ``cost_per_step``: DTW path cost divided by the path length (semitones per step);
* ``within_50c`` / ``within_100c``: share of the performance's voiced frames whose aligned
  reference frame is voiced and within 50 / 100 cents (folded, relative pitch);
* ``median_deviation``: median absolute folded deviation over those frames (semitones);
* ``length_ratio``: performance frames / reference frames, first to last voiced frame of each;
* ``unvoiced_share``: share of the performance's frames that are unvoiced.

Where nothing of the performance is voiced against a voiced reference frame, the shares are 0 and
the median deviation 6 (the largest folded deviation), so no feature is ever NaN.

Rhythm features (:data:`RHYTHM_FEATURES`, ours: what a judge of rhythm hears, read off the DTW
path at the reduced rate, then four of the onsets at the full rate; :data:`ALL_FEATURES` = the six,
then these ten):

* ``tempo_spread``: standard deviation over windows of :data:`TEMPO_WINDOW_S` seconds (hop half
  a window) of the natural log of the local tempo ratio (reference frames advanced per
  performance frame in the window, divided by the whole path's ratio, clipped to 1/4..4): 0 for
  a steady tempo, whatever the tempo chosen; 0 with fewer than two windows;
* ``tempo_drift``: the least-squares slope of that log ratio against the window's position in
  the performance (0 at the start, 1 at the end): the log tempo change over the piece (rushing
  > 0, dragging < 0); 0 with fewer than three windows;
* ``stall_share``: share of the path's steps that are not diagonal (one side waits);
* ``longest_hold_s``: the longest run of steps where the reference does not advance while the
  performance does (a held note, a hesitation, a restart), in seconds;
* ``onset_deviation_s``: the reference's note onsets (a voiced reduced frame after an unvoiced one
  or more than :data:`ONSET_STEP` semitones from the previous) are placed in the performance by
  the path (the first performance frame aligned to each); an inner onset's residual is its time
  minus the time interpolated between its two neighbours' at its reference position: the mean
  absolute residual in seconds (uneven onsets, misread rhythms); 0 with fewer than three onsets;
* ``onset_error_share``: share of inner onsets whose residual exceeds :data:`ONSET_ERROR_S`;
* ``phrase_tempo_spread``, ``phrase_tempo_drift``, ``onset_jitter_s``, ``misread_share``: the
  onsets found at the full rate and the student's own tempo fitted per phrase
  (:mod:`raympa.rhythm`): phrases rushed or dragged, a drift of either sign, uneven onsets and
  misread rhythms, each against the student's own tempo.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from raympa import constants as C

try:  # numba is a librosa dependency; keep the module importable without it for --help
    import numba
except ImportError:  # pragma: no cover
    numba = None

FEATURES = ("cost_per_step", "within_50c", "within_100c", "median_deviation", "length_ratio",
            "unvoiced_share")

RHYTHM_FEATURES = ("tempo_spread", "tempo_drift", "stall_share", "longest_hold_s", "onset_deviation_s",
                   "onset_error_share", "phrase_tempo_spread", "phrase_tempo_drift", "onset_jitter_s", "misread_share")
ALL_FEATURES = FEATURES + RHYTHM_FEATURES  # what alignment_features returns, in this order

FACTOR = 4  # ours: contour frames averaged per alignment frame (172.27 / 4 = 43 frames/s)
BAND = 0.25  # ours: Sakoe-Chiba half-width, as a share of the longer sequence (after scaling)
UNVOICED_COST = 3.0  # ours: semitones charged for a voiced frame against an unvoiced one
STEP_PENALTY = 0.5  # ours: semitones added to a horizontal or vertical step (discourages stalls)
HIST_CENTS = 10.0  # ours: bin width of the pitch-class histograms that fix the key offset
TEMPO_WINDOW_S = 1.0  # ours: window of the local tempo ratio (s), about a beat or two
ONSET_STEP = 0.5  # ours: semitones between reduced reference frames that mark a new note
ONSET_ERROR_S = 0.1  # ours: an onset this far (s) from where its neighbours put it counts as an error
TEMPO_CLIP = 4.0  # ours: local tempo ratios are clipped to [1 / TEMPO_CLIP, TEMPO_CLIP] of the whole path's
WORST_DEVIATION = 6.0  # semitones: the largest folded deviation, the median's value when nothing matches
FRAME_RATE = C.FRAME_RATE  # frames/s of the contours (the paper's hop: 172.27)


def _njit(fn):
    return numba.njit(cache=True, nogil=True)(fn)


@_njit
def _dtw_banded(p, r, band, unvoiced_cost, step_penalty):  # pragma: no cover (numba)
    """Banded DTW of two relative-pitch sequences (NaN = unvoiced).

    Steps (1, 1), (1, 0) and (0, 1) from (0, 0) to (n-1, m-1); a cell (i, j) is inside the band
    when ``|i * (m-1) / (n-1) - j| <= band`` (in reference frames).

    Returns:
        (total cost, path as (k, 2) int64 of (performance index, reference index)).
    """
    n, m = p.shape[0], r.shape[0]
    inf = np.inf
    acc = np.full((n, m), inf)
    back = np.zeros((n, m), np.uint8)  # 0 diagonal, 1 from (i-1, j), 2 from (i, j-1)
    scale = (m - 1) / max(n - 1, 1)
    for i in range(n):
        centre = i * scale
        lo = max(0, int(np.floor(centre - band)))
        hi = min(m - 1, int(np.ceil(centre + band)))
        pi = p[i]
        for j in range(lo, hi + 1):
            rj = r[j]
            pv, rv = not np.isnan(pi), not np.isnan(rj)
            if pv and rv:
                d = pi - rj + 6.0
                d = abs(d - 12.0 * np.floor(d / 12.0) - 6.0)
            elif pv or rv:
                d = unvoiced_cost
            else:
                d = 0.0
            if i == 0 and j == 0:
                acc[0, 0] = d
                continue
            best, arg = inf, 0
            if i > 0 and j > 0 and acc[i - 1, j - 1] < best:
                best, arg = acc[i - 1, j - 1], 0
            if i > 0 and acc[i - 1, j] + step_penalty < best:
                best, arg = acc[i - 1, j] + step_penalty, 1
            if j > 0 and acc[i, j - 1] + step_penalty < best:
                best, arg = acc[i, j - 1] + step_penalty, 2
            acc[i, j] = best + d
            back[i, j] = arg
    total = acc[n - 1, m - 1]
    path = np.empty((n + m, 2), np.int64)
    k, i, j = 0, n - 1, m - 1
    while True:
        path[k, 0], path[k, 1] = i, j
        k += 1
        if i == 0 and j == 0:
            break
        a = back[i, j]
        if a == 0:
            i, j = i - 1, j - 1
        elif a == 1:
            i -= 1
        else:
            j -= 1
    return total, path[:k][::-1].copy()


def relative_pitch(midi: np.ndarray) -> tuple[np.ndarray, float]:
    """Pitch relative to the median of the voiced frames.

    Args:
        midi: (n,) MIDI per frame, 0 (or NaN) = unvoiced.

    Returns:
        (n,) float64 semitones from the median, NaN where unvoiced; the median (MIDI; NaN when
        nothing is voiced).
    """
    x = np.asarray(midi, dtype=np.float64)
    voiced = np.isfinite(x) & (x > 0)
    if not voiced.any():
        return np.full(x.shape, np.nan), float("nan")
    med = float(np.median(x[voiced]))
    return np.where(voiced, x - med, np.nan), med


def downsample(rel: np.ndarray, factor: int) -> np.ndarray:
    """Mean of the voiced frames of each block of ``factor`` frames; NaN when half or more are unvoiced.

    Args:
        rel: (n,) relative pitch, NaN = unvoiced.
        factor: frames per block (the last block may be shorter).

    Returns:
        (ceil(n / factor),) float64.
    """
    n = len(rel)
    blocks = -(-n // factor)
    padded = np.full(blocks * factor, np.nan)
    padded[:n] = rel
    b = padded.reshape(blocks, factor)
    voiced = np.isfinite(b)
    count = voiced.sum(axis=1)
    total = np.where(voiced, b, 0.0).sum(axis=1)
    width = np.minimum(factor, n - np.arange(blocks) * factor)  # real frames per block
    return np.where(2 * count > width, total / np.maximum(count, 1), np.nan)


def key_offset(p_rel: np.ndarray, r_rel: np.ndarray) -> float:
    """Correction (semitones, [-6, 6)) to add to the reference's relative pitch so it matches the performance's key.

    The medians of two renditions of a melody differ by the transposition only when both hold
    the same notes; a few wrong notes can move a median by a scale step. The correction is the
    peak of the circular cross-correlation of the two pitch-class histograms (10-cent bins,
    smoothed over +-30 cents; the centroid around its peak), which a few wrong notes do not move.
    """
    n_bins = int(round(12.0 / HIST_CENTS * 100))

    def hist(x: np.ndarray) -> np.ndarray:
        x = x[np.isfinite(x)]
        h = np.bincount(np.rint((x % 12.0) * n_bins / 12.0).astype(np.int64) % n_bins, minlength=n_bins)
        return h.astype(np.float64)

    hp, hr = hist(p_rel), hist(r_rel)
    if hp.sum() == 0 or hr.sum() == 0:
        return 0.0
    width = 3  # bins either side (30 cents)
    raw = np.fft.irfft(np.fft.rfft(hp) * np.conj(np.fft.rfft(hr)), n=n_bins)  # (n_bins,) circular
    d = np.arange(-width, width + 1)
    smooth = np.array([raw[(k + d) % n_bins].sum() for k in range(n_bins)])
    best = int(np.argmax(smooth))
    w = np.maximum(raw[(best + d) % n_bins], 0.0)
    centre = best + float((d * w).sum() / max(w.sum(), 1e-12))  # centroid around the peak
    return float(fold(centre * 12.0 / n_bins))


def voiced_span(rel: np.ndarray) -> tuple[int, int]:
    """(first voiced frame, last voiced frame + 1); the whole contour when nothing is voiced."""
    v = np.flatnonzero(np.isfinite(rel))
    return (0, len(rel)) if len(v) == 0 else (int(v[0]), int(v[-1]) + 1)


def fold(d: np.ndarray) -> np.ndarray:
    """Fold semitone differences into one octave, [-6, 6)."""
    return (np.asarray(d) + 6.0) % 12.0 - 6.0


@dataclass(frozen=True)
class Alignment:
    """One performance aligned to one reference.

    Attributes:
        path: (k, 2) int64 (performance, reference) indices at the reduced rate, within the spans.
        cost: total DTW cost (semitones).
        factor: contour frames per alignment frame.
        n_perf, n_ref: contour lengths (frames, full rate).
        perf_span, ref_span: (first, end) frames from the first to the last voiced frame; only
            these spans are aligned (leading and trailing silence is not part of the piece), and
            ``path`` indexes them.
        perf_median, ref_median: medians of the voiced frames (MIDI; NaN when none).
        key_offset: semitones in [-6, 6) added to the reference's relative pitch (:func:`key_offset`).
        ref_position: (n_perf,) float64 reference frame (full rate) aligned to each performance frame.
    """

    path: np.ndarray
    cost: float
    factor: int
    n_perf: int
    n_ref: int
    perf_span: tuple[int, int]
    ref_span: tuple[int, int]
    perf_median: float
    ref_median: float
    key_offset: float
    ref_position: np.ndarray


def align(perf: np.ndarray, ref: np.ndarray, *, factor: int = FACTOR, band: float = BAND,
          unvoiced_cost: float = UNVOICED_COST, step_penalty: float = STEP_PENALTY) -> Alignment:
    """Align a performance contour to a reference contour (key and octave invariant).

    Args:
        perf: (n_perf,) MIDI per frame, 0 = unvoiced.
        ref: (n_ref,) MIDI per frame on the same hop grid, 0 = unvoiced.
        factor: frames averaged per alignment frame.
        band: Sakoe-Chiba half-width as a share of the longer (reduced) sequence; 1 = no band.
        unvoiced_cost: semitones charged for voiced against unvoiced.
        step_penalty: semitones added to a non-diagonal step.

    Raises:
        ValueError: an empty contour or a factor < 1.
    """
    if len(perf) == 0 or len(ref) == 0:
        raise ValueError("cannot align an empty contour")
    if factor < 1:
        raise ValueError(f"factor={factor}; need >= 1")
    p_rel, p_med = relative_pitch(perf)
    r_rel, r_med = relative_pitch(ref)
    offset = key_offset(p_rel, r_rel)
    (p0, p1), (r0, r1) = voiced_span(p_rel), voiced_span(r_rel)
    p, r = downsample(p_rel[p0:p1], factor), downsample(r_rel[r0:r1] + offset, factor)
    width = max(2.0, band * max(len(p), len(r)))
    total, path = _dtw_banded(p, r, float(width), float(unvoiced_cost), float(step_penalty))
    # reference position (full rate) of every performance frame: the mean aligned index per
    # reduced performance frame, interpolated at the frame's centre
    counts = np.bincount(path[:, 0], minlength=len(p))
    mean_j = np.bincount(path[:, 0], weights=path[:, 1], minlength=len(p)) / np.maximum(counts, 1)
    k = np.arange(len(perf)) - p0  # frames before the voiced span map to its start, after it to its end
    centre = (k + 0.5) / factor - 0.5
    pos = r0 + (np.interp(centre, np.arange(len(p)), mean_j) + 0.5) * factor - 0.5
    pos = np.clip(pos, r0, r1 - 1)
    return Alignment(path=path, cost=float(total), factor=factor, n_perf=len(perf), n_ref=len(ref),
                     perf_span=(p0, p1), ref_span=(r0, r1), perf_median=p_med, ref_median=r_med, key_offset=offset, ref_position=pos)


def aligned_reference(perf: np.ndarray, ref: np.ndarray, alignment: Alignment) -> np.ndarray:
    """The reference on the performance's frame grid, in the performance's register.

    Each performance frame gets the reference frame the alignment maps it to, transposed by the
    difference of the two medians plus the key offset (so it lies in the key and octave the
    performer chose).

    Returns:
        (n_perf,) float32 MIDI, 0 where the aligned reference frame is unvoiced.
    """
    ref = np.asarray(ref, dtype=np.float64)
    j = np.rint(alignment.ref_position).astype(np.int64)  # (n_perf,)
    r = ref[j]
    voiced = np.isfinite(r) & (r > 0)
    if not np.isfinite(alignment.perf_median):  # nothing voiced in the performance: keep the key
        shift = 0.0
    else:
        shift = alignment.perf_median - alignment.ref_median + alignment.key_offset
    return np.where(voiced, np.maximum(r + shift, 1e-3), 0.0).astype(np.float32)


def folded_deviation(perf: np.ndarray, aligned_ref: np.ndarray) -> np.ndarray:
    """(n,) float32 semitones, performance minus aligned reference folded to [-6, 6); 0 unless both voiced."""
    p = np.asarray(perf, np.float64)
    r = np.asarray(aligned_ref, np.float64)
    both = (p > 0) & (r > 0)
    return np.where(both, fold(p - r), 0.0).astype(np.float32)


def path_features(path: np.ndarray, *, factor: int = FACTOR, frame_rate: float = FRAME_RATE) -> np.ndarray:
    """The first four rhythm numbers (:data:`RHYTHM_FEATURES`, in order) of a DTW path.

    Args:
        path: (k, 2) int64 (performance, reference) indices at the reduced rate, from (0, 0).
        factor: contour frames per path frame.
        frame_rate: contour frames per second.

    Returns:
        (4,) float64: tempo_spread (log ratio), tempo_drift (log ratio over the piece),
        stall_share (share of steps), longest_hold_s (seconds).
    """
    path = np.asarray(path, np.int64)
    steps = np.diff(path, axis=0)  # (k - 1, 2)
    if len(steps) == 0:
        return np.zeros(4)
    stall = float(np.mean(~((steps[:, 0] == 1) & (steps[:, 1] == 1))))
    hold = np.concatenate([[0], (steps[:, 0] == 1) & (steps[:, 1] == 0), [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(hold))  # starts and ends of the runs of holds, alternating
    longest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    n_p, n_r = int(path[-1, 0]) + 1, int(path[-1, 1]) + 1
    counts = np.bincount(path[:, 0], minlength=n_p)
    mean_j = np.bincount(path[:, 0], weights=path[:, 1], minlength=n_p) / np.maximum(counts, 1)  # (n_p,)
    width = max(2, int(round(TEMPO_WINDOW_S * frame_rate / factor)))
    starts = np.arange(0, n_p - width, max(1, width // 2))
    spread = drift = 0.0
    if len(starts) >= 2 and n_p > 1 and n_r > 1:
        whole = (n_r - 1) / (n_p - 1)
        local = (mean_j[starts + width] - mean_j[starts]) / width / whole
        log = np.log(np.clip(local, 1.0 / TEMPO_CLIP, TEMPO_CLIP))
        spread = float(np.std(log))
        if len(starts) >= 3:
            drift = float(np.polyfit((starts + width / 2) / (n_p - 1), log, 1)[0])
    return np.array([spread, drift, stall, longest * factor / frame_rate])


def onset_features(path: np.ndarray, ref_reduced: np.ndarray, *, factor: int = FACTOR,
                   frame_rate: float = FRAME_RATE) -> np.ndarray:
    """``onset_deviation_s`` (s) and ``onset_error_share`` of a DTW path (:data:`RHYTHM_FEATURES`' last two).

    Args:
        path: (k, 2) int64 path at the reduced rate, from (0, 0), in order.
        ref_reduced: (m,) the reduced reference the path indexes (relative pitch, NaN = unvoiced).
        factor, frame_rate: as :func:`path_features`.
    """
    r = np.asarray(ref_reduced, np.float64)
    voiced = np.isfinite(r)
    prev = np.r_[np.nan, r[:-1]]
    with np.errstate(invalid="ignore"):
        onsets = np.flatnonzero(voiced & (~np.isfinite(prev) | (np.abs(r - prev) > ONSET_STEP)))
    js, first = np.unique(path[:, 1], return_index=True)  # the first path step of each reference frame
    onsets = onsets[np.isin(onsets, js)]
    if len(onsets) < 3:
        return np.zeros(2)
    tp = path[first[np.searchsorted(js, onsets)], 0].astype(np.float64)  # performance frame of each onset
    tr = onsets.astype(np.float64)
    between = tp[:-2] + (tr[1:-1] - tr[:-2]) * (tp[2:] - tp[:-2]) / (tr[2:] - tr[:-2])
    residual = np.abs(tp[1:-1] - between) * factor / frame_rate  # (onsets - 2,) seconds
    return np.array([float(residual.mean()), float(np.mean(residual > ONSET_ERROR_S))])


def alignment_features(perf: np.ndarray, ref: np.ndarray, alignment: Alignment | None = None, *,
                       frame_rate: float = FRAME_RATE) -> np.ndarray:
    """The alignment numbers (:data:`ALL_FEATURES`, in order: the six, then the ten rhythm ones) of one performance.

    Args:
        perf, ref: MIDI contours on one hop grid, 0 = unvoiced.
        alignment: a precomputed :func:`align` result of the same pair, or None to compute it.
        frame_rate: contour frames per second (for ``longest_hold_s``).

    Returns:
        (16,) float64, never NaN: with no voiced performance frame against a voiced reference
        frame the shares are 0 and the median deviation :data:`WORST_DEVIATION`.
    """
    perf = np.asarray(perf, np.float64)
    a = alignment if alignment is not None else align(perf, ref)
    aref = aligned_reference(perf, ref, a)
    dev = folded_deviation(perf, aref)
    p_voiced = perf > 0
    both = p_voiced & (aref > 0)
    n_voiced = int(p_voiced.sum())
    ad = np.abs(dev[both])
    within50 = float((ad <= 0.5).sum() / n_voiced) if n_voiced else 0.0
    within100 = float((ad <= 1.0).sum() / n_voiced) if n_voiced else 0.0
    median = float(np.median(ad)) if len(ad) else WORST_DEVIATION
    six = [a.cost / len(a.path), within50, within100, median,
           (a.perf_span[1] - a.perf_span[0]) / (a.ref_span[1] - a.ref_span[0]), 1.0 - n_voiced / len(perf)]
    r_rel, _ = relative_pitch(ref)
    r_reduced = downsample(r_rel[a.ref_span[0] : a.ref_span[1]], a.factor)  # what the path indexes
    from raympa.rhythm import timing_features  # imports this module

    return np.concatenate([six, path_features(a.path, factor=a.factor, frame_rate=frame_rate),
                           onset_features(a.path, r_reduced, factor=a.factor, frame_rate=frame_rate),
                           timing_features(perf, ref, a, frame_rate=frame_rate)])


def align_many(perfs: Sequence[np.ndarray], refs: Sequence[np.ndarray], *, threads: int = 1,
               factor: int = FACTOR, band: float = BAND) -> tuple[np.ndarray, list[np.ndarray]]:
    """Align pairs on ``threads`` threads (the DTW kernel releases the GIL).

    Args:
        perfs, refs: equally long sequences of MIDI contours (0 = unvoiced).
        threads: worker threads.
        factor, band: as :func:`align`.

    Returns:
        (n, 16) float64 features (:data:`ALL_FEATURES`) and the n aligned references (float32 MIDI on each
        performance's grid).
    """
    if len(perfs) != len(refs):
        raise ValueError(f"{len(perfs)} performances but {len(refs)} references")

    def one(k: int) -> tuple[np.ndarray, np.ndarray]:
        a = align(perfs[k], refs[k], factor=factor, band=band)
        return alignment_features(perfs[k], refs[k], a), aligned_reference(perfs[k], refs[k], a)

    if threads <= 1:
        out = [one(k) for k in range(len(perfs))]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            out = list(pool.map(one, range(len(perfs))))
    feats = np.array([o[0] for o in out]).reshape(len(out), len(ALL_FEATURES))
    return feats, [o[1] for o in out]


def warmup() -> None:
    """Compile (or load from numba's disk cache) the DTW kernel once per process."""
    x = np.array([60.0, 62.0, 0.0, 64.0] * 4)
    align(x, x)
