"""Key- and octave-invariant DTW alignment, its six features, the rhythm features of its path and the onset timing."""

from __future__ import annotations

import numpy as np
import pytest

from raympa import align as A


def _melody(rng: np.random.Generator, n_notes: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    notes = 60 + rng.choice([0, 2, 4, 5, 7, 9, 11, 12], n_notes)
    durs = rng.integers(20, 60, n_notes)
    return _render(notes, durs), notes, durs


def _render(notes, durs, *, stretch: float = 1.0, noise: float = 0.0, rng=None) -> np.ndarray:
    out: list[float] = []
    for p, d in zip(notes, durs):
        d = int(d * stretch)
        jitter = rng.normal(0, noise, d - 3) if noise else np.zeros(d - 3)
        out += list(p + jitter) + [0.0] * 3
    return np.array(out)


def _feats(perf, ref) -> dict[str, float]:
    return dict(zip(A.ALL_FEATURES, A.alignment_features(perf, ref)))


def test_transposition_and_octave_slips_cost_nothing():
    rng = np.random.default_rng(0)
    ref, notes, durs = _melody(rng)
    octave = np.where(np.arange(len(notes)) % 5 == 0, 12, 0)
    perf = _render(notes + 7 + octave, durs, stretch=1.3, noise=0.05, rng=rng)
    f = _feats(perf, ref)
    assert f["within_50c"] > 0.9
    assert f["median_deviation"] < 0.2
    assert f["length_ratio"] == pytest.approx((len(perf) - 3) / (len(ref) - 3))  # trailing rests trimmed


def test_wrong_notes_lower_the_match_in_proportion():
    rng = np.random.default_rng(1)
    ref, notes, durs = _melody(rng)
    shares = []
    for frac in (0.0, 0.2, 0.5):
        wrong = notes.copy()
        k = int(len(notes) * frac)
        wrong[5 : 5 + k] += 3  # a minor third off, not an octave
        shares.append(_feats(_render(wrong, durs), ref)["within_50c"])
    assert shares[0] > shares[1] > shares[2]
    assert shares[2] < 0.7


def test_aligned_reference_follows_tempo_changes_in_performers_register():
    rng = np.random.default_rng(2)
    ref, notes, durs = _melody(rng)
    slow = np.r_[np.full(20, 1.0), np.full(len(notes) - 20, 1.6)]
    perf = np.concatenate([_render([p], [d], stretch=s) for p, d, s in zip(notes - 12, durs, slow)])
    a = A.align(perf, ref)
    aref = A.aligned_reference(perf, ref, a)
    assert aref.shape == perf.shape and aref.dtype == np.float32
    both = (perf > 0) & (aref > 0)
    assert both.mean() > 0.8
    assert np.median(np.abs(perf[both] - aref[both])) < 0.01  # same register, not just pitch class
    assert np.all(np.diff(a.path, axis=0) >= 0)  # monotone path
    n_p, n_r = -(-(len(perf) - 3) // a.factor), -(-(len(ref) - 3) // a.factor)  # voiced spans
    assert tuple(a.path[0]) == (0, 0) and tuple(a.path[-1]) == (n_p - 1, n_r - 1)


def test_key_offset_ignores_a_few_wrong_notes():
    rng = np.random.default_rng(3)
    ref, notes, durs = _melody(rng)
    wrong = notes + 5
    wrong[::6] += 2  # every sixth note a tone off: the median may move, the key must not
    perf = _render(wrong, durs)
    p_rel, p_med = A.relative_pitch(perf)
    r_rel, r_med = A.relative_pitch(ref)
    off = A.key_offset(p_rel, r_rel)
    # the reference, shifted by medians and offset, lands on the true transposition (+5)
    assert A.fold(p_med - r_med + off - 5) == pytest.approx(0.0, abs=0.11)
    assert _feats(perf, ref)["within_50c"] > 0.7  # the right notes still match


def test_leading_silence_is_not_aligned():
    rng = np.random.default_rng(7)
    ref, notes, durs = _melody(rng)
    perf = np.r_[np.zeros(400), _render(notes + 2, durs), np.zeros(300)]
    a = A.align(perf, ref)
    assert a.perf_span == (400, 400 + len(ref) - 3)
    f = _feats(perf, ref)
    assert f["within_50c"] > 0.95 and f["length_ratio"] == pytest.approx(1.0)
    assert f["unvoiced_share"] > 700 / len(perf)


def test_unvoiced_share_and_silence():
    rng = np.random.default_rng(4)
    ref, _, _ = _melody(rng)
    silent = np.zeros(500)
    f = _feats(silent, ref)
    assert f["unvoiced_share"] == 1.0
    assert f["within_50c"] == 0.0 and f["median_deviation"] == A.WORST_DEVIATION  # never NaN
    assert all(np.isfinite(v) for v in f.values())
    with pytest.raises(ValueError, match="empty"):
        A.align(np.zeros(0), ref)


def test_downsample_voicing_rule():
    rel = np.array([1.0, 1.0, 1.0, np.nan, np.nan, np.nan, np.nan, 2.0, 3.0])
    out = A.downsample(rel, 4)
    assert out[0] == pytest.approx(1.0)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(3.0)  # last block of one voiced frame


def test_band_one_equals_unbanded_cost_and_band_never_lowers_it():
    rng = np.random.default_rng(5)
    ref, notes, durs = _melody(rng, 20)
    perf = _render(notes + 2, durs, stretch=1.5)
    wide = A.align(perf, ref, band=1.0)
    narrow = A.align(perf, ref, band=0.05)
    assert narrow.cost >= wide.cost - 1e-9


def test_align_many_threads_match_single():
    rng = np.random.default_rng(6)
    pairs = [_melody(rng, 15)[0] for _ in range(6)]
    perfs = [p + 3 for p in pairs]
    perfs = [np.where(p > 3, p, 0.0) for p in perfs]
    f1, r1 = A.align_many(perfs, pairs, threads=1)
    f2, r2 = A.align_many(perfs, pairs, threads=2)
    np.testing.assert_array_equal(f1, f2)
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        A.align_many(perfs, pairs[:2])


def test_steady_tempo_has_no_spread_whatever_the_tempo():
    rng = np.random.default_rng(7)
    ref, notes, durs = _melody(rng, 60)
    for stretch in (0.8, 1.0, 1.25):  # a tempo chosen by the performer is not a rhythm error
        f = _feats(_render(notes, durs, stretch=stretch), ref)
        assert f["tempo_spread"] < 0.08 and abs(f["tempo_drift"]) < 0.1, (stretch, f)
        assert f["longest_hold_s"] < 0.3


def test_uneven_tempo_drift_and_hesitation_are_measured():
    rng = np.random.default_rng(8)
    ref, notes, durs = _melody(rng, 60)
    steady = _feats(_render(notes, durs), ref)
    uneven = np.concatenate([_render(notes[i:i + 1], durs[i:i + 1], stretch=s)
                             for i, s in enumerate(rng.choice([0.6, 1.5], len(notes)))])
    f = _feats(uneven, ref)
    assert f["tempo_spread"] > steady["tempo_spread"] + 0.1
    assert f["stall_share"] > steady["stall_share"]
    slowing = np.concatenate([_render(notes[i:i + 1], durs[i:i + 1], stretch=0.7 + 0.8 * i / len(notes))
                              for i in range(len(notes))])
    assert _feats(slowing, ref)["tempo_drift"] < -0.3  # dragging: the reference advances ever more slowly
    held = np.concatenate([_render(notes[:30], durs[:30]), np.full(int(1.5 * A.FRAME_RATE), notes[29] + 0.0),
                           _render(notes[30:], durs[30:])])  # a note held 1.5 s too long
    assert 1.0 < _feats(held, ref)["longest_hold_s"] < 2.0


def test_path_features_units_and_short_paths():
    path = np.stack([np.arange(100), np.arange(100)], axis=1)
    spread, drift, stall, hold = A.path_features(path, factor=4, frame_rate=172.0)
    assert spread == 0.0 and drift == 0.0 and stall == 0.0 and hold == 0.0
    held = np.concatenate([path[:50], np.stack([np.arange(50, 60), np.full(10, 49)], 1),
                           np.stack([np.arange(60, 110), np.arange(50, 100)], 1)])
    assert A.path_features(held, factor=4, frame_rate=172.0)[3] == pytest.approx(10 * 4 / 172.0)
    assert np.all(A.path_features(np.zeros((1, 2), np.int64)) == 0.0)  # one frame: nothing to measure


def test_uneven_onsets_are_measured_and_steady_ones_are_not():
    rng = np.random.default_rng(9)
    notes = 60 + np.cumsum(rng.choice([-2, -1, 1, 2], 50))  # every note differs from the previous
    durs = rng.integers(30, 50, 50)
    ref = _render(notes, durs)
    steady = _feats(_render(notes, durs, stretch=1.1), ref)
    assert steady["onset_deviation_s"] < 0.03 and steady["onset_error_share"] < 0.05
    shifted = durs.copy()
    shifted[::2] += 35  # every other onset 0.2 s late, the next one back on time
    shifted[1::2] -= 25
    f = _feats(_render(notes, np.maximum(shifted, 6)), ref)
    assert f["onset_deviation_s"] > steady["onset_deviation_s"] + 0.05 and f["onset_error_share"] > 0.3
    r = np.full(10, np.nan)
    assert np.all(A.onset_features(np.stack([np.arange(10), np.arange(10)], 1), r) == 0.0)  # no onset


def _phrased(notes, durs, *, per: int, factors=None, shift=None, rest: int = 40, key: float = 0.0) -> np.ndarray:
    """Contour of phrases of ``per`` connected notes with ``rest`` unvoiced frames between: note k lasts
    durs[k] / factors[k] frames and its onset is moved by shift[k] frames (the previous note ends there)."""
    n = len(notes)
    factors = np.ones(n) if factors is None else np.asarray(factors, float)
    shift = np.zeros(n) if shift is None else np.asarray(shift, float)
    onset, t = np.zeros(n), 0.0
    for k in range(n):
        t += rest if k and k % per == 0 else 0
        onset[k], t = t, t + durs[k] / factors[k]
    start = onset + shift
    out = np.zeros(int(t) + 5)
    for k in range(n):
        stop = start[k + 1] if k + 1 < n and (k + 1) % per else onset[k] + durs[k] / factors[k]
        out[int(round(start[k])):int(round(stop))] = notes[k] + key
    return out


def _score(seed: int = 4, phrases: int = 6, per: int = 10):
    rng = np.random.default_rng(seed)
    notes = 60 + np.cumsum(rng.choice([-4, -2, -1, 1, 2, 5], phrases * per))  # each note differs from the last
    return notes, rng.integers(30, 60, phrases * per).astype(float), np.arange(phrases * per) // per


def _timing(perf, ref) -> dict[str, float]:
    f = _feats(perf, ref)
    return {k: f[k] for k in ("phrase_tempo_spread", "phrase_tempo_drift", "onset_jitter_s", "misread_share")}


def test_timing_of_a_steady_performance_in_its_own_tempo_and_key_is_clean():
    notes, durs, _ = _score()
    ref = _phrased(notes, durs, per=10)
    f = _timing(_phrased(notes, durs, per=10, factors=np.full(len(notes), 1 / 1.15), key=5), ref)
    assert f["phrase_tempo_spread"] < 0.02 and f["phrase_tempo_drift"] < 0.03
    assert f["onset_jitter_s"] < 0.01 and f["misread_share"] < 0.05


def test_rushed_and_dragged_phrases_and_drift_of_either_sign_are_measured():
    notes, durs, phrase = _score()
    ref = _phrased(notes, durs, per=10)
    uneven = _timing(_phrased(notes, durs, per=10, factors=np.where(phrase % 2, 1.25, 0.8)), ref)
    assert uneven["phrase_tempo_spread"] > 0.15 and uneven["onset_jitter_s"] < 0.02
    pos = phrase / phrase.max()
    for factors in (1 + 0.5 * pos, 1 / (1 + 0.5 * pos)):  # accelerando, ritardando
        f = _timing(_phrased(notes, durs, per=10, factors=factors), ref)
        assert f["phrase_tempo_drift"] > 0.25 and f["phrase_tempo_spread"] < 0.05


def test_uneven_and_misread_onsets_are_measured_against_the_phrase_tempo():
    notes, durs, phrase = _score()
    ref = _phrased(notes, durs, per=10)
    rng = np.random.default_rng(1)
    inner = np.arange(len(notes)) % 10 > 0
    jitter = np.where(inner, rng.normal(0, 4.0, len(notes)), 0.0)  # sd 4 frames: 23 ms
    f = _timing(_phrased(notes, durs, per=10, shift=jitter), ref)
    assert 0.008 < f["onset_jitter_s"] < 0.04  # measured 0.014 (the true sd is 0.023 s)
    shorter = np.minimum(durs, np.r_[durs[0], durs[:-1]])
    misread = inner & (np.arange(len(notes)) % 4 == 1)  # a quarter of the notes, 0.4 of a note late
    g = _timing(_phrased(notes, durs, per=10, shift=np.where(misread, 0.4 * shorter, 0.0)), ref)
    assert g["misread_share"] == pytest.approx(misread.mean(), abs=0.06) and g["onset_jitter_s"] < 0.02


def test_timing_numbers_are_zero_without_onsets_to_fit():
    notes, durs, _ = _score(phrases=1, per=3)
    ref = _phrased(notes, durs, per=3)
    assert np.all(np.array(list(_timing(ref, ref).values())) == 0.0)  # three onsets: nothing to fit
    silent = _feats(np.zeros(400), _phrased(*_score()[:2], per=10))
    assert all(np.isfinite(v) for v in silent.values()) and silent["onset_jitter_s"] == 0.0


def test_reference_notes_ignore_slides_dropouts_and_vibrato():
    """A recorded reference (or the peers) gives the notes of its score: a slide between two notes,
    a two-frame tracker dropout and vibrato make no note and no rest of their own."""
    from raympa.rhythm import reference_onsets

    notes, durs, _ = _score()
    clean = _phrased(notes, durs, per=10)
    onsets, pitch, previous = reference_onsets(clean, A.align(clean, clean))
    assert len(onsets) == len(notes) and np.isnan(previous[::10]).all() and np.isfinite(previous[1:10]).all()
    rough = clean + 0.3 * np.sin(np.arange(len(clean)) * 2 * np.pi / 30) * (clean > 0)  # vibrato, +-30 cents
    for o in np.flatnonzero(np.isfinite(previous)):  # the onsets inside phrases
        start = onsets[o] + 1  # the span starts at frame 0 here
        rough[start:start + 4] = np.linspace(clean[start - 1], clean[start + 4], 6)[1:5]  # a 4-frame slide
        rough[start + 12:start + 14] = 0.0  # a dropout
    got, got_pitch, got_previous = reference_onsets(rough, A.align(rough, rough))
    assert len(got) == len(onsets) and np.abs(got - onsets).max() <= 4
    np.testing.assert_array_equal(np.isnan(got_previous), np.isnan(previous))
