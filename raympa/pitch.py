"""Fast pYIN that reproduces librosa.pyin's contour.

pYIN: Mauch & Dixon, "pYIN: A fundamental frequency estimator using probabilistic threshold
distributions", ICASSP 2014; YIN: de Cheveigné & Kawahara, JASA 2002. The reference is
librosa 0.11's ``librosa.pyin`` (itself following the pYIN Vamp plugin rather than the paper):
:func:`pyin` keeps its parameters, defaults and return values, and computes the same thing.

Where the time goes in librosa.pyin, and what this module does instead:

* Viterbi decoding (~94% of librosa's time) runs over a dense ``(2 n_bins, 2 n_bins)`` transition
  matrix (``n_bins`` ~ 500 pitch states voiced + 500 unvoiced). pYIN's matrix is banded: a
  triangular local pitch transition of ``transition_width`` bins, Kronecker-multiplied by a 2x2
  voiced/unvoiced switch. Every entry outside the band is ``log(tiny)``, one constant, so the best
  out-of-band predecessor of every state is the best state overall: :func:`_viterbi_banded`
  computes, for each state, the max over its ~62 in-band predecessors and that one global
  candidate, with librosa's tie-breaking (first index of the maximum). Voiced states without an
  observation in a frame are skipped when a bound proves they cannot lie on a best path. The
  result is the same path as the dense decoder, not an approximation (tests compare the two).
* The per-frame trough/threshold probabilities (a Python loop with scipy.stats calls per frame)
  run in one numba kernel with the Boltzmann prior tabulated once per call.
* The YIN difference function uses librosa's own FFT autocorrelation, in blocks of frames, so
  peak memory stays bounded.

Units: ``sr`` in Hz, ``fmin``/``fmax`` in Hz, lengths in samples, ``resolution`` in semitones.
Numba compiles the kernels on first use and caches them on disk (``cache=True``); call
:func:`warmup` in a worker process before timing anything.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

try:  # numba is a librosa dependency; keep the module importable without it for --help
    import numba
except ImportError:  # pragma: no cover
    numba = None

__all__ = ["pyin", "warmup", "n_pitch_bins", "pitch_bin_frequencies"]

# Frames per block in the YIN stage: bounds the FFT buffers to a few MB (ours).
_BLOCK_FRAMES = 512


def _njit(fn):
    return numba.njit(cache=True, nogil=True)(fn)


# ---------------------------------------------------------------------------------- YIN stage
@_njit
def _yin_candidates(
    frames, acf, min_period, max_period, thresholds, beta_probs, beta_prefix, pmf, no_trough_prob,
    out_lag, out_period, out_prob, out_count,
):  # pragma: no cover (numba)
    """YIN troughs and their pYIN probabilities, per frame, as librosa computes them.

    Args:
        frames: (n_frames, frame_length) audio frames (float32 or float64).
        acf: (n_frames, max_period + 1) autocorrelation of each frame, same dtype.
        thresholds: (n_thresholds + 1,) float64, ``linspace(0, 1, n_thresholds + 1)``.
        beta_probs: (n_thresholds,) float64 prior mass of each threshold.
        beta_prefix: (n_thresholds + 1,) float64, ``beta_prefix[m] = sum(beta_probs[:m])``.
        pmf: (max_troughs + 1, max_troughs) float64 Boltzmann pmf ``pmf[N, k]``.
        out_lag, out_period, out_prob: (n_frames, max_troughs) outputs: lag index into the
            YIN window, refined period in samples (float64), probability; first
            ``out_count[i]`` entries of row i are valid, in increasing lag order.
    """
    n_frames = frames.shape[0]
    n_lag = max_period - min_period + 1
    n_thr = beta_probs.shape[0]
    dt = frames.dtype.type
    two = dt(2.0)
    tiny64 = np.finfo(np.float64).tiny
    diff = np.empty(max_period + 1, dtype=frames.dtype)
    yin = np.empty(n_lag, dtype=np.float64)
    trough = np.empty(n_lag, dtype=np.int64)
    height = np.empty(n_lag, dtype=np.float64)
    first_thr = np.empty(n_lag, dtype=np.int64)
    probs = np.empty(n_lag, dtype=np.float64)
    for i in range(n_frames):
        x = frames[i]
        a = acf[i]
        # difference function d(k) = 2 (r(0) - r(k)) - sum_{m<k} x(m)^2, in the input dtype.
        # librosa zeroes its energy row 0 before using it, so d(1) = 2 (r(0) - r(1)) exactly.
        energy = x[0] * x[0]
        diff[0] = dt(0.0)
        diff[1] = two * (a[0] - a[1]) - dt(0.0)
        for k in range(2, max_period + 1):
            energy = energy + x[k - 1] * x[k - 1]
            diff[k] = two * (a[0] - a[k]) - energy
        # cumulative mean normalised difference (float64, as numpy promotes the division)
        csum = dt(0.0)
        for k in range(1, max_period + 1):
            csum = csum + diff[k]
            if k >= min_period:
                yin[k - min_period] = np.float64(diff[k]) / (np.float64(csum) / np.float64(k) + tiny64)
        # troughs: librosa.util.localmin, plus the first bin when it is below the second
        n_tr = 0
        for j in range(n_lag):
            if j == 0:
                is_tr = n_lag > 1 and yin[0] < yin[1]
            elif j == n_lag - 1:
                is_tr = yin[j] < yin[j - 1]
            else:
                is_tr = yin[j] < yin[j - 1] and yin[j] <= yin[j + 1]
            if is_tr:
                trough[n_tr] = j
                height[n_tr] = yin[j]
                n_tr += 1
        out_count[i] = 0
        if n_tr == 0:
            continue
        # first threshold index each trough is below (thresholds ascend)
        for m in range(n_tr):
            f = n_thr
            for t in range(n_thr):
                if height[m] < thresholds[t + 1]:
                    f = t
                    break
            first_thr[m] = f
            probs[m] = 0.0
        # Boltzmann prior over the troughs below each threshold, weighted by the beta prior
        for t in range(n_thr):
            n_below = 0
            for m in range(n_tr):
                if first_thr[m] <= t:
                    n_below += 1
            if n_below == 0:
                continue
            pos = 0
            for m in range(n_tr):
                if first_thr[m] <= t:
                    probs[m] += pmf[n_below, pos] * beta_probs[t]
                    pos += 1
        # the global minimum takes the mass of the thresholds no trough is below
        g = 0
        for m in range(1, n_tr):
            if height[m] < height[g]:
                g = m
        probs[g] += no_trough_prob * beta_prefix[first_thr[g]]
        c = 0
        for m in range(n_tr):
            if probs[m] != 0.0:
                j = trough[m]
                # parabolic interpolation (librosa's stencil; zero at the window's edges)
                shift = 0.0
                if 0 < j < n_lag - 1:
                    aa = yin[j + 1] + yin[j - 1] - 2 * yin[j]
                    bb = (yin[j + 1] - yin[j - 1]) / 2
                    if np.abs(bb) < np.abs(aa):
                        shift = -bb / aa
                out_lag[i, c] = j
                out_period[i, c] = (min_period + j) + shift
                out_prob[i, c] = probs[m]
                c += 1
        out_count[i] = c


@_njit
def _observations(counts, bins, probs, n_bins):  # pragma: no cover (numba)
    """Per-frame voiced observations as librosa builds its dense observation matrix.

    Candidates mapped to the same bin keep the last one (numpy's fancy assignment); bin
    ``n_bins`` (librosa clips to ``n_bins``, one past the last pitch) is dropped. Returns CSR
    arrays sorted by bin and the voiced probability (sum in bin order, clipped to [0, 1]).
    """
    n_frames = counts.shape[0]
    offsets = np.zeros(n_frames + 1, dtype=np.int64)
    out_bins = np.empty(bins.shape[0], dtype=np.int64)
    out_probs = np.empty(bins.shape[0], dtype=np.float64)
    voiced_prob = np.zeros(n_frames, dtype=np.float64)
    slot = np.full(n_bins, -1, dtype=np.int64)
    start = 0
    w = 0
    for i in range(n_frames):
        stop = start + counts[i]
        first = w
        for c in range(start, stop):
            b = bins[c]
            if b >= n_bins:
                continue
            if slot[b] >= 0:
                out_probs[slot[b]] = probs[c]
            else:
                slot[b] = w
                out_bins[w] = b
                out_probs[w] = probs[c]
                w += 1
        # sort this frame's entries by bin (few entries: insertion sort)
        for p in range(first + 1, w):
            bb = out_bins[p]
            pp = out_probs[p]
            q = p - 1
            while q >= first and out_bins[q] > bb:
                out_bins[q + 1] = out_bins[q]
                out_probs[q + 1] = out_probs[q]
                q -= 1
            out_bins[q + 1] = bb
            out_probs[q + 1] = pp
        s = 0.0
        for p in range(first, w):
            s += out_probs[p]
            slot[out_bins[p]] = -1
        voiced_prob[i] = min(max(s, 0.0), 1.0)
        offsets[i + 1] = w
        start = stop
    return offsets, out_bins[:w], out_probs[:w], voiced_prob


# ------------------------------------------------------------------------------ Viterbi stage
@_njit
def _band_max(band, s, d):  # pragma: no cover (numba)
    """Largest finite log transition from block s to block d."""
    m = -np.inf
    for o in range(band.shape[2]):
        for j in range(band.shape[3]):
            if band[s, d, o, j] > m:
                m = band[s, d, o, j]
    return m

@_njit
def _viterbi_banded(offsets, bins, log_obs, log_unvoiced, log_eps, log_init, band, half_width, n_bins):  # pragma: no cover (numba)
    """Viterbi path of pYIN's HMM, identical to librosa.sequence.viterbi on the dense matrix.

    States: voiced pitch bins ``0..n_bins-1``, then unvoiced ``n_bins..2 n_bins-1``. For each
    state the predecessor is the first index of the maximum of ``value[k] + log_trans[k, j]``,
    as librosa's dense decoder picks it: the in-band candidates are enumerated in index order,
    and every out-of-band transition is ``log_eps``, so the best of those is the global best
    state (``g_arg``) whenever it lies out of band.

    Pruning (exact): a voiced state without an observation this frame has value at most
    ``upper``; when ``upper + lt_out`` is below ``max value + log_eps`` (what the global
    candidate offers every state next frame) it can never be a chosen predecessor nor the final
    state, so those states are skipped (-inf) and next frame only the observed voiced bins act
    as voiced sources. Float rounding is monotone, so the test holds for the computed values.

    Args:
        offsets, bins, log_obs: CSR voiced log-observations per frame, bins ascending (other
            voiced bins have ``log_eps``).
        log_unvoiced: (n_frames,) log-observation shared by every unvoiced state.
        log_eps: ``log(tiny)``, librosa's log of a zero probability.
        log_init: log initial probability (uniform).
        band: (2, 2, 2 half_width + 1, n_bins) ``band[s, d, o, j]`` = log transition from state
            ``s*n_bins + j + o - half_width`` to ``d*n_bins + j`` (-inf where out of range).
    Returns:
        ``(states, n_dense)``: (n_frames,) int64 state indices; frames decoded without pruning.
    """
    n_frames = log_unvoiced.shape[0]
    n_states = 2 * n_bins
    hw = half_width
    width = 2 * hw + 1
    ptr = np.zeros((n_frames, n_states), dtype=np.uint16)
    value = np.empty(n_states, dtype=np.float64)
    new_value = np.empty(n_states, dtype=np.float64)
    padded = np.full((2, n_bins + 2 * hw), -np.inf)
    best = np.empty(n_bins, dtype=np.float64)
    arg = np.empty(n_bins, dtype=np.int64)
    lpv = np.full(n_bins, log_eps)
    observed = np.zeros(n_bins, dtype=np.bool_)
    lt_vv = _band_max(band, 0, 0)
    lt_uv = _band_max(band, 1, 0)
    lt_out = max(lt_vv, _band_max(band, 0, 1))
    for p in range(offsets[0], offsets[1]):
        lpv[bins[p]] = log_obs[p]
    for j in range(n_bins):
        value[j] = lpv[j] + log_init
        value[n_bins + j] = log_unvoiced[0] + log_init
    for p in range(offsets[0], offsets[1]):
        lpv[bins[p]] = log_eps
    voiced_dense = True
    n_dense = 1
    for t in range(1, n_frames):
        g_val = -np.inf
        g_arg = 0
        max_v = -np.inf
        max_u = -np.inf
        for k in range(n_states):
            c = value[k] + log_eps
            if c > g_val:
                g_val = c
                g_arg = k
        for k in range(n_bins):
            max_v = max(max_v, value[k])
            max_u = max(max_u, value[n_bins + k])
        g_pitch = g_arg % n_bins
        for s in range(2):
            for j in range(n_bins):
                padded[s, hw + j] = value[s * n_bins + j]
        # ---- unvoiced targets
        for j in range(n_bins):
            best[j] = -np.inf
            arg[j] = 0
        if voiced_dense:
            row = padded[0]
            for o in range(width):
                lt = band[0, 1, o]
                base = o - hw
                for j in range(n_bins):
                    c = row[j + o] + lt[j]
                    if c > best[j]:
                        best[j] = c
                        arg[j] = base + j
        else:  # live voiced sources: the previous frame's observed bins, ascending
            for p in range(offsets[t - 1], offsets[t]):
                k = bins[p]
                vk = value[k]
                for j in range(max(0, k - hw), min(n_bins, k + hw + 1)):
                    c = vk + band[0, 1, k - j + hw, j]
                    if c > best[j]:
                        best[j] = c
                        arg[j] = k
        row = padded[1]
        for o in range(width):
            lt = band[1, 1, o]
            base = n_bins + o - hw
            for j in range(n_bins):
                c = row[j + o] + lt[j]
                if c > best[j]:
                    best[j] = c
                    arg[j] = base + j
        lu = log_unvoiced[t]
        v_max = -np.inf
        for j in range(n_bins):
            if abs(g_pitch - j) > hw:
                if g_val > best[j] or (g_val == best[j] and g_arg < arg[j]):
                    best[j] = g_val
                    arg[j] = g_arg
            new_value[n_bins + j] = lu + best[j]
            v_max = max(v_max, new_value[n_bins + j])
            ptr[t, n_bins + j] = arg[j]
        # ---- voiced targets with an observation
        for p in range(offsets[t], offsets[t + 1]):
            j = bins[p]
            b = -np.inf
            a = 0
            for s in range(2):
                for o in range(width):
                    c = padded[s, j + o] + band[s, 0, o, j]
                    if c > b:
                        b = c
                        a = s * n_bins + j + o - hw
            if abs(g_pitch - j) > hw:
                if g_val > b or (g_val == b and g_arg < a):
                    b = g_val
                    a = g_arg
            new_value[j] = log_obs[p] + b
            v_max = max(v_max, new_value[j])
            ptr[t, j] = a
        # ---- voiced targets without one: skipped when provably never on a best path
        bound = max(max(max_v + lt_vv, max_u + lt_uv), g_val)
        upper = log_eps + bound
        if upper + lt_out < v_max + log_eps:
            for p in range(offsets[t], offsets[t + 1]):
                observed[bins[p]] = True
            for j in range(n_bins):
                if not observed[j]:
                    new_value[j] = -np.inf
            for p in range(offsets[t], offsets[t + 1]):
                observed[bins[p]] = False
            voiced_dense = False
        else:
            n_dense += 1
            for p in range(offsets[t], offsets[t + 1]):
                lpv[bins[p]] = log_obs[p]
            for j in range(n_bins):
                best[j] = -np.inf
                arg[j] = 0
            for s in range(2):
                row = padded[s]
                for o in range(width):
                    lt = band[s, 0, o]
                    base = s * n_bins + o - hw
                    for j in range(n_bins):
                        c = row[j + o] + lt[j]
                        if c > best[j]:
                            best[j] = c
                            arg[j] = base + j
            for j in range(n_bins):
                if abs(g_pitch - j) > hw:
                    if g_val > best[j] or (g_val == best[j] and g_arg < arg[j]):
                        best[j] = g_val
                        arg[j] = g_arg
                new_value[j] = lpv[j] + best[j]
                ptr[t, j] = arg[j]
            for p in range(offsets[t], offsets[t + 1]):
                lpv[bins[p]] = log_eps
            voiced_dense = True
        for k in range(n_states):
            value[k] = new_value[k]
    states = np.empty(n_frames, dtype=np.int64)
    last = 0
    for k in range(1, n_states):
        if value[k] > value[last]:
            last = k
    states[n_frames - 1] = last
    for t in range(n_frames - 2, -1, -1):
        states[t] = ptr[t + 1, states[t + 1]]
    return states, n_dense


# ------------------------------------------------------------------------- tables (per call)
def n_pitch_bins(*, fmin: float, fmax: float, resolution: float = 0.1) -> int:
    """Number of pYIN pitch states between ``fmin`` and ``fmax`` (Hz), as librosa."""
    n_bins_per_semitone = int(np.ceil(1.0 / resolution))
    return int(np.floor(12 * n_bins_per_semitone * np.log2(fmax / fmin))) + 1


def pitch_bin_frequencies(*, fmin: float, fmax: float, resolution: float = 0.1) -> np.ndarray:
    """Centre frequency (Hz) of each pYIN pitch state, as librosa."""
    n_bins_per_semitone = int(np.ceil(1.0 / resolution))
    n = n_pitch_bins(fmin=fmin, fmax=fmax, resolution=resolution)
    return fmin * 2 ** (np.arange(n) / (12 * n_bins_per_semitone))


@functools.lru_cache(maxsize=16)
def _threshold_tables(n_thresholds: int, beta_a: float, beta_b: float) -> tuple[np.ndarray, ...]:
    import scipy.stats

    thresholds = np.linspace(0, 1, n_thresholds + 1)
    beta_cdf = scipy.stats.beta.cdf(thresholds, beta_a, beta_b)
    beta_probs = np.diff(beta_cdf)
    # np.sum of each prefix, exactly as librosa sums beta_probs[:n] (pairwise summation)
    beta_prefix = np.array([np.sum(beta_probs[:m]) for m in range(n_thresholds + 1)])
    return thresholds, beta_probs, beta_prefix


@functools.lru_cache(maxsize=16)
def _boltzmann_table(max_troughs: int, boltzmann_parameter: float) -> np.ndarray:
    """``pmf[N, k]`` = scipy.stats.boltzmann.pmf(k, boltzmann_parameter, N) for 0 <= k < N."""
    import scipy.stats

    n = np.arange(max_troughs + 1)[:, None]
    k = np.arange(max(max_troughs, 1))[None, :]
    pmf = scipy.stats.boltzmann.pmf(k, boltzmann_parameter, np.maximum(n, 1))
    pmf = np.where(k < n, pmf, 0.0)
    return np.ascontiguousarray(pmf, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _transition_band(n_bins: int, transition_width: int, switch_prob: float) -> tuple[np.ndarray, int, float]:
    """Log transition band with librosa's exact values; see :func:`_viterbi_banded`."""
    from librosa import sequence

    local = sequence.transition_local(n_bins, transition_width, window="triangle", wrap=False)
    switch = sequence.transition_loop(2, 1 - switch_prob)
    eps = np.finfo(np.float64).tiny  # librosa.util.tiny of the float64 observation matrix
    half = transition_width // 2
    width = 2 * half + 1
    # src[o, j] = j + o - half: the source pitch of target j at offset o
    src = np.arange(n_bins)[None, :] + np.arange(width)[:, None] - half
    valid = (src >= 0) & (src < n_bins)
    tgt = np.broadcast_to(np.arange(n_bins)[None, :], src.shape)
    local_band = np.where(valid, local[np.clip(src, 0, n_bins - 1), tgt], 0.0)
    band = np.empty((2, 2, width, n_bins), dtype=np.float64)
    for s in range(2):
        for d in range(2):
            # np.kron multiplies element by element, then viterbi adds tiny and takes the log
            band[s, d] = np.log(switch[s, d] * local_band + eps)
    band[:, :, ~valid] = -np.inf
    log_eps = float(np.log(np.full(4, eps))[0])
    return np.ascontiguousarray(band), half, log_eps


def _check_params(*, sr: float, fmin: float, fmax: float, frame_length: int) -> None:
    """librosa's pyin parameter checks (same conditions, same exception type)."""
    import warnings

    from librosa.util.exceptions import ParameterError

    if fmin is None or fmax is None:
        raise ParameterError('both "fmin" and "fmax" must be provided')
    if fmax > sr / 2:
        raise ParameterError(f"fmax={fmax:.3f} cannot exceed Nyquist frequency {sr / 2}")
    if fmin >= fmax:
        raise ParameterError(f"fmin={fmin:.3f} must be less than fmax={fmax:.3f}")
    if fmin <= 0:
        raise ParameterError(f"fmin={fmin:.3f} must be strictly positive")
    if sr / fmin >= frame_length - 1:
        raise ParameterError(
            f"fmin={fmin:.3f} is too small for frame_length={frame_length} and sr={sr}: "
            f"raise fmin to {sr / (frame_length - 1):.3f} or frame_length to {int(np.ceil(sr / fmin) + 1)}"
        )
    if sr / fmin >= frame_length // 2:
        warnings.warn(
            f"With fmin={fmin:.3f}, sr={sr} and frame_length={frame_length}, less than two periods of "
            "fmin fit into the frame, which can cause inaccurate pitch detection.",
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------ public
def pyin(
    y: np.ndarray,
    *,
    sr: float,
    fmin: float,
    fmax: float,
    frame_length: int = 1024,
    hop_length: int | None = None,
    n_thresholds: int = 100,
    beta_parameters: tuple[float, float] = (2, 18),
    boltzmann_parameter: float = 2,
    resolution: float = 0.1,
    max_transition_rate: float = 35.92,
    switch_prob: float = 0.01,
    no_trough_prob: float = 0.01,
    fill_na: float | None = np.nan,
    center: bool = True,
    pad_mode: Any = "constant",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN f0 estimation: librosa.pyin's parameters, results and contour, much faster.

    Defaults are librosa 0.11's (``frame_length`` 1024 is this project's, the paper's block size
    at 44.1 kHz; librosa's default is 2048).

    Args:
        y: (..., n_samples) float audio; leading dimensions are channels, each decoded apart.
        sr: sample rate in Hz.
        fmin, fmax: pitch search range in Hz.
        frame_length: YIN frame in samples. hop_length: hop in samples (default frame_length // 4).
        n_thresholds, beta_parameters: YIN threshold grid and its beta prior (librosa defaults).
        boltzmann_parameter: trough prior (smaller periods more likely).
        resolution: pitch state spacing in semitones. max_transition_rate: octaves per second.
        switch_prob: voiced/unvoiced switch probability. no_trough_prob: mass given to the
            global minimum when no trough is below a threshold.
        fill_na: f0 of unvoiced frames (None: the decoded unvoiced state's pitch).
        center, pad_mode: frame centring as librosa.

    Returns:
        ``(f0, voiced_flag, voiced_prob)``, each (..., n_frames): f0 in Hz (float64),
        voiced flag (bool), voiced probability in [0, 1] (float64).
    """
    import librosa

    _check_params(sr=sr, fmin=fmin, fmax=fmax, frame_length=frame_length)
    if hop_length is None:
        hop_length = frame_length // 4
    librosa.util.valid_audio(y)
    if center:
        padding = [(0, 0)] * y.ndim
        padding[-1] = (frame_length // 2, frame_length // 2)
        y = np.pad(y, padding, mode=pad_mode)
    lead = y.shape[:-1]
    flat = y.reshape((-1, y.shape[-1]))
    results = [
        _pyin_channel(
            channel, sr=sr, fmin=fmin, fmax=fmax, frame_length=frame_length, hop_length=hop_length,
            n_thresholds=n_thresholds, beta_parameters=tuple(beta_parameters),
            boltzmann_parameter=boltzmann_parameter, resolution=resolution,
            max_transition_rate=max_transition_rate, switch_prob=switch_prob,
            no_trough_prob=no_trough_prob, fill_na=fill_na,
        )
        for channel in flat
    ]
    f0, voiced_flag, voiced_prob = (np.stack([r[i] for r in results]).reshape(lead + (-1,)) for i in range(3))
    return f0, voiced_flag, voiced_prob


def _pyin_channel(
    y: np.ndarray, *, sr: float, fmin: float, fmax: float, frame_length: int, hop_length: int,
    n_thresholds: int, beta_parameters: tuple[float, float], boltzmann_parameter: float,
    resolution: float, max_transition_rate: float, switch_prob: float, no_trough_prob: float,
    fill_na: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN on one (already padded) channel."""
    import librosa

    frames = librosa.util.frame(y, frame_length=frame_length, hop_length=hop_length).T  # (n_frames, frame_length) view
    n_frames = frames.shape[0]
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    n_lag = max_period - min_period + 1
    max_troughs = n_lag // 2 + 1

    thresholds, beta_probs, beta_prefix = _threshold_tables(n_thresholds, *map(float, beta_parameters))
    pmf = _boltzmann_table(max_troughs, float(boltzmann_parameter))

    # YIN troughs and probabilities, in blocks of frames (bounded FFT buffers)
    lags, periods, probs, counts = [], [], [], []
    for start in range(0, n_frames, _BLOCK_FRAMES):
        block = frames[start : start + _BLOCK_FRAMES]
        acf = np.ascontiguousarray(librosa.autocorrelate(block, max_size=max_period + 1, axis=-1))
        nb = block.shape[0]
        out_lag = np.empty((nb, max_troughs), dtype=np.int64)
        out_period = np.empty((nb, max_troughs), dtype=np.float64)
        out_prob = np.empty((nb, max_troughs), dtype=np.float64)
        out_count = np.empty(nb, dtype=np.int64)
        _yin_candidates(
            np.ascontiguousarray(block), acf, min_period, max_period, thresholds, beta_probs,
            beta_prefix, pmf, float(no_trough_prob), out_lag, out_period, out_prob, out_count,
        )
        keep = np.arange(max_troughs)[None, :] < out_count[:, None]
        periods.append(out_period[keep])
        probs.append(out_prob[keep])
        counts.append(out_count)
    period = np.concatenate(periods)
    cand_prob = np.concatenate(probs)
    count = np.concatenate(counts)

    # candidate pitch bins, with librosa's arithmetic (numpy, not numba, for identical rounding)
    n_bins_per_semitone = int(np.ceil(1.0 / resolution))
    n_bins = int(np.floor(12 * n_bins_per_semitone * np.log2(fmax / fmin))) + 1
    if 2 * n_bins > np.iinfo(np.uint16).max:  # librosa's uint16 back-pointers would wrap silently
        raise ValueError(f"{2 * n_bins} pitch states (fmin={fmin}, fmax={fmax}, resolution={resolution}); "
                         "at most 65535: raise resolution or narrow fmin..fmax")
    f0_candidates = sr / period
    bin_index = 12 * n_bins_per_semitone * np.log2(f0_candidates / fmin)
    bin_index = np.clip(np.round(bin_index), 0, n_bins).astype(np.int64)
    offsets, obs_bins, obs_probs, voiced_prob = _observations(count, bin_index, cand_prob, n_bins)

    # log-observations exactly as librosa.sequence.viterbi takes them (numpy's log)
    eps = np.finfo(np.float64).tiny
    log_obs = np.log(obs_probs + eps)
    log_unvoiced = np.log((1 - voiced_prob) / n_bins + eps)
    log_init = float(np.log(np.ones(2 * n_bins) / (2 * n_bins) + eps)[0])

    max_semitones_per_frame = round(max_transition_rate * 12 * hop_length / sr)
    transition_width = max_semitones_per_frame * n_bins_per_semitone + 1
    band, half_width, log_eps = _transition_band(n_bins, transition_width, float(switch_prob))
    states, _ = _viterbi_banded(offsets, obs_bins, log_obs, log_unvoiced, log_eps, log_init, band, half_width, n_bins)

    freqs = fmin * 2 ** (np.arange(n_bins) / (12 * n_bins_per_semitone))
    f0 = freqs[states % n_bins]
    voiced_flag = states < n_bins
    if fill_na is not None:
        f0[~voiced_flag] = fill_na
    return f0, voiced_flag, voiced_prob


def warmup() -> None:
    """Compile (or load from numba's disk cache) the kernels for float32 and float64 audio."""
    for dtype in (np.float32, np.float64):
        t = np.arange(4096) / 22050.0
        y = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(dtype)
        pyin(y, sr=22050, fmin=110.0, fmax=880.0, frame_length=1024, hop_length=256)
