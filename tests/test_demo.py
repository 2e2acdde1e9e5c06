"""Simulated auditions: judge directions, determinism, output format, etudes and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raympa import constants as C
from raympa import demo
from raympa.demo import etudes
from raympa.ratings import read_ratings


@pytest.fixture(scope="module")
def judge() -> demo.JudgeModel:
    return demo.calibrate_judge("middleschool", n_mc=4000)


def test_each_deviation_lowers_its_rating(judge: demo.JudgeModel) -> None:
    """Raise one deviation with the others and the judge noise fixed: its criteria go down."""
    rng = np.random.default_rng(0)
    base = demo.sample_amounts(rng, 200, skill_loading=judge.skill_loading)
    noise = rng.standard_normal((200, len(C.RATED_COLUMNS) + 1))
    lat0, rate0 = judge.latent(base, noise), judge.rate(base, noise)
    for name, dev in demo.DEVIATIONS.items():
        worse = base.copy()
        worse[name] = worse[name] + 0.5 * (dev.hi - dev.lo)
        lat1, rate1 = judge.latent(worse, noise), judge.rate(worse, noise)
        for crit in C.RATED_COLUMNS:
            if name in demo.JUDGE_WEIGHTS[crit]:
                assert (lat1[crit] < lat0[crit]).all(), (name, crit)
                assert (rate1[crit] <= rate0[crit]).all(), (name, crit)
                assert (rate1[crit] < rate0[crit]).mean() > 0.3, (name, crit)  # the grid is coarse
            else:
                assert np.allclose(lat1[crit], lat0[crit]), (name, crit)
    assert set().union(*demo.JUDGE_WEIGHTS.values()) == set(demo.DEVIATIONS)  # every deviation is heard


def test_ratings_follow_fba_marginals_and_correlation(judge: demo.JudgeModel) -> None:
    rng = np.random.default_rng(1)
    amounts = demo.sample_amounts(rng, 4000, skill_loading=judge.skill_loading)
    ratings = judge.rate(amounts, rng.standard_normal((4000, len(C.RATED_COLUMNS) + 1)))
    for crit in C.RATED_COLUMNS:
        counts = demo.FBA_MARGINALS["middleschool"][crit]
        assert set(ratings[crit].unique()) <= set(counts)
        vals = np.array(list(counts))
        real_mean = float(np.average(vals, weights=list(counts.values())))
        assert ratings[crit].mean() == pytest.approx(real_mean, abs=0.03)
    corr = ratings.corr().to_numpy()[np.triu_indices(4, 1)].mean()
    assert corr == pytest.approx(demo.FBA_MEAN_CORRELATION["middleschool"], abs=0.06)


def test_perform_realises_the_deviations() -> None:
    et = etudes.generate_etude(np.random.default_rng(0), instrument="Flute", level="middleschool")
    clean = {k: d.lo for k, d in demo.DEVIATIONS.items()}
    sloppy = dict(clean, missed_notes=0.3, wrong_notes=0.3)
    ev0, real0, _ = demo.perform(et, clean, np.random.default_rng(1), pitch_range=etudes.RANGES["Flute"])
    ev1, real1, _ = demo.perform(et, sloppy, np.random.default_rng(1), pitch_range=etudes.RANGES["Flute"])
    assert len(ev0.onset) == len(et.pitch) and real0["wrong_notes"] == 0 and real0["missed_notes"] == 0
    assert len(ev1.onset) < len(ev0.onset) and 0.15 < real1["missed_notes"] < 0.45
    assert real1["wrong_notes"] > 0.1
    lo, hi = etudes.RANGES["Flute"]
    assert ev1.midi.min() >= lo - 1 and ev1.midi.max() <= hi + 1  # +-1: intonation offsets in cents
    assert np.all(np.diff(ev1.onset) > 0) and np.all(ev1.onset[:-1] + ev1.dur[:-1] <= ev1.onset[1:] + 1e-9)


@pytest.mark.parametrize("level", ["middleschool", "symphonicband"])
def test_generated_etudes_fit_ranges(level: str) -> None:
    for k, inst in enumerate(C.INSTRUMENTS):
        et = etudes.generate_etude(np.random.default_rng(k), instrument=inst, level=level)
        lo, hi = etudes.REGISTERS[level][inst]
        assert lo <= et.pitch.min() and et.pitch.max() <= hi
        assert et.seconds == pytest.approx(etudes.TARGET_SECONDS[level], rel=0.25)
    sym = etudes.generate_etude(np.random.default_rng(0), instrument="Flute", level="symphonicband")
    mid = etudes.generate_etude(np.random.default_rng(0), instrument="Flute", level="middleschool")
    assert len(sym.pitch) / sym.seconds > len(mid.pitch) / mid.seconds  # harder: more notes per second


def test_demo_is_deterministic_and_in_index_format(tmp_path: Path) -> None:
    import soundfile as sf

    kw = dict(n=4, seed=5, duration_s=2.5)
    t1 = demo.make_demo(tmp_path / "a", jobs=1, **kw)
    t2 = demo.make_demo(tmp_path / "b", jobs=2, **kw)
    pd.testing.assert_frame_equal(t1, t2)
    for name in ("ratings.csv", "deviations.csv", "etudes.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    df = read_ratings(tmp_path / "a")
    assert list(df.columns[: len(C.RATINGS_COLUMNS)]) == list(C.RATINGS_COLUMNS)
    for rel_a, abs_a in zip(t1["audio_path"], df["audio_path"]):
        assert not Path(rel_a).is_absolute()
        y, sr = sf.read(abs_a)
        assert sr == C.SAMPLE_RATE and y.ndim == 1 and 2.0 < len(y) / sr < 6.0
        assert (tmp_path / "b" / rel_a).read_bytes() == Path(abs_a).read_bytes()
    assert df[list(C.CRITERIA)].notna().all().all() and df["segment_start"].isna().all()
    dev = pd.read_csv(tmp_path / "a" / "deviations.csv")
    assert list(dev["recording_id"]) == list(df["recording_id"])
    assert set(demo.DEVIATIONS) <= set(dev.columns)
    for row in df.itertuples():  # each etude as MIDI: the score the row plays
        score = etudes.read_midi_etude(row.reference_path)
        notes = pd.read_csv(tmp_path / "a" / "etudes.csv")
        played = notes[(notes["year"] == row.year) & (notes["instrument"] == row.instrument)]
        assert np.array_equal(score.pitch, played["midi"]) and np.allclose(score.start, played["start_beat"])
        assert score.tempo_bpm == pytest.approx(played["tempo_bpm"].iloc[0], rel=1e-4)
        assert row.piece_id == f"{row.year}/{row.band}/{row.instrument}/technical_etude"
    t3 = demo.make_demo(tmp_path / "c", n=4, seed=6, duration_s=2.5, render_audio=False)
    assert not t3[list(C.CRITERIA)].equals(t1[list(C.CRITERIA)])


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        demo.make_demo(tmp_path, n=0)
    with pytest.raises(ValueError, match="band"):
        demo.make_demo(tmp_path, n=2, band="concertband")
    with pytest.raises(FileNotFoundError):
        demo.make_demo(tmp_path, n=2, fba_annotations=tmp_path / "missing", render_audio=False)


def test_with_fba_annotations(shared_fba: Path, tmp_path: Path) -> None:
    table = demo.make_demo(tmp_path, n=30, seed=0, fba_annotations=shared_fba, render_audio=False)
    dev = pd.read_csv(tmp_path / "deviations.csv")
    assert set(dev["etude"]) <= {"fba2013_tech", "fba2014_tech", "fba2015_tech"}
    et = etudes.read_midi_etude(etudes.fba_etude_midis(shared_fba)[2013])
    assert len(et.pitch) == 130 and et.pitch.min() == 55 and et.pitch.max() == 77
    assert set(table["note_accuracy"].unique()) <= {round(0.1 * k, 1) for k in range(11)}
