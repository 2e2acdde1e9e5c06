"""raympa.pitch.pyin against librosa.pyin, the reference it must reproduce.

Agreement bar (ours, see docs/pitch.md): voicing decisions agree on >= 99.5% of frames and,
where both call a frame voiced, f0 agrees within 1 cent on >= 99% of them. In practice the
decoded path is identical; only voiced_prob may differ in the last bits (librosa sums the
threshold prior with a BLAS dot product).
"""

from __future__ import annotations

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from raympa import constants as C  # noqa: E402
from raympa import pitch  # noqa: E402


def _agreement(ours, ref) -> tuple[float, float]:
    f, v, _ = ours
    F, V, _ = ref
    voicing = float(np.mean(v == V))
    both = v & V
    if not both.any():
        return voicing, 1.0
    cents = 1200 * np.abs(np.log2(f[both] / F[both]))
    return voicing, float(np.mean(cents <= 1.0))


def _assert_matches(y, **kw):
    ours = pitch.pyin(y, **kw)
    ref = librosa.pyin(y, **kw)
    assert ours[0].shape == ref[0].shape and ours[1].dtype == ref[1].dtype == bool
    assert ours[0].dtype == ref[0].dtype and ours[2].dtype == ref[2].dtype
    voicing, pitch_ok = _agreement(ours, ref)
    assert voicing >= 0.995, f"voicing agreement {voicing:.4f}"
    assert pitch_ok >= 0.99, f"pitch within 1 cent on {pitch_ok:.4f} of both-voiced frames"
    np.testing.assert_allclose(ours[2], ref[2], rtol=0, atol=1e-9)
    unvoiced_ok = np.isnan(ours[0][~ours[1]]) if kw.get("fill_na", np.nan) is not None else True
    assert np.all(unvoiced_ok)
    return ours, ref


# ----------------------------------------------------------------------------- synthetic audio
def _harmonic(f0_track: np.ndarray, sr: int, *, n_harmonics: int = 8, rolloff: float = 0.6) -> np.ndarray:
    """A harmonic tone following ``f0_track`` (Hz per sample), odd harmonics stronger (clarinet-like)."""
    phase = 2 * np.pi * np.cumsum(f0_track) / sr
    y = np.zeros_like(f0_track)
    for h in range(1, n_harmonics + 1):
        amp = rolloff ** (h - 1) * (1.0 if h % 2 else 0.5)
        y += amp * np.sin(h * phase) * (h * f0_track < sr / 2)
    return y


def _wind_melody(sr: int, seed: int = 0) -> np.ndarray:
    """A rendered etude-like phrase: notes with attack/release, vibrato, breath noise, rests."""
    rng = np.random.default_rng(seed)
    midi = [62, 64, 66, 67, 69, 71, 73, 74, 81, 79, 76, 74]
    pieces = []
    for i, m in enumerate(midi):
        dur = rng.choice([0.09, 0.14, 0.2])
        n = int(dur * sr)
        t = np.arange(n) / sr
        f0 = 440.0 * 2 ** ((m - 69) / 12) * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * t))
        env = np.minimum(1, t / 0.02) * np.minimum(1, (dur - t) / 0.03)
        tone = 0.3 * env * _harmonic(f0, sr) + 0.003 * rng.standard_normal(n)
        pieces.append(tone)
        if i % 4 == 3:
            pieces.append(0.002 * rng.standard_normal(int(0.06 * sr)))  # a breath
    return np.concatenate(pieces).astype(np.float32)


SR = 22050  # small clips at a low rate keep librosa's reference quick


def _t(seconds: float, sr: int = SR) -> np.ndarray:
    return np.arange(int(seconds * sr)) / sr


SIGNALS = {
    "tone": lambda: (0.5 * _harmonic(np.full(len(_t(0.6)), 440.0), SR)).astype(np.float32),
    "glide": lambda: (0.4 * _harmonic(220.0 * 2 ** (2 * _t(0.8) / 0.8), SR)).astype(np.float32),
    "vibrato": lambda: (0.4 * _harmonic(330 * (1 + 0.02 * np.sin(2 * np.pi * 6 * _t(0.8))), SR)).astype(np.float32),
    "silence": lambda: np.zeros(int(0.4 * SR), dtype=np.float32),
    "noise": lambda: (0.1 * np.random.default_rng(1).standard_normal(int(0.5 * SR))).astype(np.float32),
    "melody": lambda: _wind_melody(SR),
    "tone_float64": lambda: 0.5 * _harmonic(np.full(len(_t(0.5)), 523.25), SR),
    # f0 just above fmax / below fmin: candidates clipped to librosa's edge bins
    "above_fmax": lambda: (0.5 * _harmonic(np.full(len(_t(0.4)), 2040.0), SR, n_harmonics=2)).astype(np.float32),
    "below_fmin": lambda: (0.5 * _harmonic(np.full(len(_t(0.4)), 97.0), SR)).astype(np.float32),
    "octave_jumps": lambda: (0.4 * _harmonic(np.repeat([200.0, 800.0, 200.0, 1600.0], int(0.15 * SR)), SR)).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_matches_librosa_on_synthetic_audio(name):
    y = SIGNALS[name]()
    ours, _ = _assert_matches(y, sr=SR, fmin=100.0, fmax=2000.0, frame_length=1024, hop_length=256)
    if name == "silence":
        assert not ours[1].any()
    if name == "tone":
        mid = ours[0][5:-5]
        assert np.all(np.abs(1200 * np.log2(mid / 440.0)) < 20)


def test_paper_settings_44k_melody():
    """The study's extraction parameters: 44.1 kHz, frame 1024, hop 256, constants.FMIN..FMAX."""
    y = _wind_melody(C.SAMPLE_RATE, seed=3)[: int(1.2 * C.SAMPLE_RATE)]
    _assert_matches(y, sr=C.SAMPLE_RATE, fmin=C.FMIN, fmax=C.FMAX, frame_length=C.FRAME_LENGTH, hop_length=C.HOP_LENGTH)


@pytest.mark.parametrize(
    "kw",
    [
        dict(fmin=65.41, fmax=2093.0, frame_length=2048, hop_length=512),  # librosa's C2..C7 style
        dict(fmin=150.0, fmax=1000.0, frame_length=1024, hop_length=128, resolution=0.2),
        dict(fmin=100.0, fmax=2000.0, frame_length=1024, hop_length=256, resolution=0.05),
        dict(fmin=100.0, fmax=2000.0, frame_length=512 + 256, hop_length=200, resolution=0.3),
        dict(fmin=100.0, fmax=2000.0, frame_length=1024, switch_prob=0.1, no_trough_prob=0.2,
             boltzmann_parameter=1.0, beta_parameters=(1, 10), n_thresholds=50),
        dict(fmin=100.0, fmax=2000.0, frame_length=1024, max_transition_rate=10.0, fill_na=None),
        dict(fmin=100.0, fmax=2000.0, frame_length=1024, center=False),
        dict(fmin=100.0, fmax=2000.0, frame_length=1024, pad_mode="reflect"),
    ],
    ids=["c2_c7_2048", "res0.2_hop128", "res0.05", "odd_sizes", "priors", "slow_transitions_fill_none",
         "no_center", "reflect"],
)
def test_matches_librosa_with_other_parameters(kw):
    _assert_matches(_wind_melody(SR, seed=1)[: int(0.9 * SR)], sr=SR, **kw)


def test_multichannel_matches_librosa():
    y = np.stack([SIGNALS["tone"](), SIGNALS["glide"]()[: int(0.6 * SR)]])
    ours, _ = _assert_matches(y, sr=SR, fmin=100.0, fmax=2000.0, frame_length=1024)
    assert ours[0].shape[0] == 2


@pytest.mark.parametrize("n", [1, 100, 1023, 1024, 1025])
def test_very_short_input(n):
    y = (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / SR)).astype(np.float32)
    ours, ref = _assert_matches(y, sr=SR, fmin=100.0, fmax=2000.0, frame_length=1024, hop_length=256)
    assert ours[0].shape == (1 + n // 256,)


def test_shorter_than_frame_without_centering_raises_like_librosa():
    y = np.zeros(500, dtype=np.float32)
    from librosa.util.exceptions import ParameterError

    with pytest.raises(ParameterError):
        librosa.pyin(y, sr=SR, fmin=100.0, fmax=2000.0, frame_length=1024, center=False)
    with pytest.raises(ParameterError):
        pitch.pyin(y, sr=SR, fmin=100.0, fmax=2000.0, frame_length=1024, center=False)


@pytest.mark.parametrize(
    "kw", [dict(fmin=100.0, fmax=20000.0), dict(fmin=500.0, fmax=400.0), dict(fmin=10.0, fmax=400.0)]
)
def test_invalid_parameters_raise(kw):
    from librosa.util.exceptions import ParameterError

    with pytest.raises(ParameterError):
        pitch.pyin(np.zeros(4096, dtype=np.float32), sr=SR, frame_length=1024, **kw)


def test_nonfinite_audio_raises():
    y = np.zeros(4096, dtype=np.float32)
    y[10] = np.nan
    with pytest.raises(Exception, match="finite"):
        pitch.pyin(y, sr=SR, fmin=100.0, fmax=2000.0)


# ------------------------------------------------------------------------- the banded Viterbi
def _pyin_like_observations(rng, n_bins: int, n_frames: int) -> np.ndarray:
    """Random observations with pYIN's structure: sparse voiced bins, uniform unvoiced mass."""
    obs = np.zeros((2 * n_bins, n_frames))
    pitch_now = n_bins // 2
    for t in range(n_frames):
        kind = rng.random()
        if kind < 0.15:
            pitch_now = int(rng.integers(n_bins))  # far jumps: out-of-band transitions
        elif kind < 0.8:
            pitch_now = int(np.clip(pitch_now + rng.integers(-3, 4), 0, n_bins - 1))
        if rng.random() < 0.85:
            k = int(rng.integers(1, 4))
            bins = np.unique(np.clip(pitch_now + rng.integers(-n_bins // 3, n_bins // 3, k), 0, n_bins - 1))
            bins[0] = pitch_now if pitch_now not in bins else bins[0]
            p = rng.dirichlet(np.ones(len(bins))) * rng.choice([1.0, rng.random()])
            if rng.random() < 0.2:
                p[:] = p[0]  # equal probabilities: exercises tie-breaking
            obs[bins, t] = p
        vp = min(obs[:n_bins, t].sum(), 1.0)
        obs[n_bins:, t] = (1 - vp) / n_bins
    return obs


def test_banded_viterbi_equals_librosa_dense_viterbi():
    """Random pYIN-like HMMs (jumps, ties, certain voicing, edges): same path as the dense decoder,
    with both the pruned and the unpruned frame updates exercised."""
    from librosa import sequence

    eps = np.finfo(np.float64).tiny
    n_dense_total = n_frames_total = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n_bins = int(rng.integers(8, 60))
        width = min(int(rng.choice([1, 3, 5, 7, 9, 31])), n_bins)
        switch_prob = float(rng.choice([0.01, 0.3, 1e-6]))
        obs = _pyin_like_observations(rng, n_bins, int(rng.integers(1, 200)))
        dense = np.kron(sequence.transition_loop(2, 1 - switch_prob),
                        sequence.transition_local(n_bins, width, window="triangle", wrap=False))
        ref = sequence.viterbi(obs, dense, p_init=np.ones(2 * n_bins) / (2 * n_bins))

        voiced = obs[:n_bins].T
        frames, bins = np.nonzero(voiced)
        offsets = np.searchsorted(frames, np.arange(obs.shape[1] + 1))
        log_obs = np.log(voiced[frames, bins] + eps)
        log_unvoiced = np.log(obs[n_bins] + eps)
        log_init = float(np.log(np.ones(2 * n_bins) / (2 * n_bins) + eps)[0])
        band, half, log_eps = pitch._transition_band(n_bins, width, switch_prob)
        ours, n_dense = pitch._viterbi_banded(offsets, bins.astype(np.int64), log_obs, log_unvoiced, log_eps,
                                              log_init, band, half, n_bins)
        np.testing.assert_array_equal(ours, ref, err_msg=f"seed {seed}")
        n_dense_total += n_dense
        n_frames_total += obs.shape[1]
    assert 0 < n_dense_total < n_frames_total


# ------------------------------------------------------------------------- real recordings
@pytest.mark.parametrize("name", ["flute-A4.wav", "sax-phrase-short.wav"])
def test_matches_librosa_on_real_recordings(shared_audio, name):
    y, sr = librosa.load(shared_audio / name, sr=None)
    assert sr == C.SAMPLE_RATE
    _assert_matches(y, sr=sr, fmin=C.FMIN, fmax=C.FMAX, frame_length=C.FRAME_LENGTH, hop_length=C.HOP_LENGTH)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sax-phrase.wav", "oboe-A4.wav", "trumpet-A4.wav"])
def test_matches_librosa_on_longer_real_recordings(shared_audio, name):
    y, sr = librosa.load(shared_audio / name, sr=None)
    _assert_matches(y, sr=sr, fmin=C.FMIN, fmax=C.FMAX, frame_length=C.FRAME_LENGTH, hop_length=C.HOP_LENGTH)
    _assert_matches(y, sr=sr, fmin=65.41, fmax=2093.0, frame_length=2048, hop_length=C.HOP_LENGTH)


def test_too_many_pitch_states_raises():
    with pytest.raises(ValueError, match="pitch states"):
        pitch.pyin(np.zeros(4096, dtype=np.float32), sr=SR, fmin=100.0, fmax=2000.0, resolution=0.0005)
