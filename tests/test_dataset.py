"""ContourSet, normalisation, chunking (random / fixed), padding, pitch-shift augmentation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from raympa.dataset import (
    ContourSet,
    fixed_windows,
    gather_chunks,
    normalize,
    pitch_shift,
    random_starts,
    synthetic_set,
)


def _ratings_df(ids, splits, na):
    return pd.DataFrame({
        "recording_id": ids, "student_id": ids, "band": "middleschool", "instrument": "Flute",
        "musicality": 0.5, "note_accuracy": na, "rhythm_accuracy": 0.5, "split": splits,
    })


def test_from_tables_joins_and_validates():
    contours = pd.DataFrame({
        "recording_id": ["a", "b", "c", "x"],
        "midi": [np.full(10, 60.0, np.float32), np.array([0, 62, np.nan], np.float32),
                 np.zeros(4, np.float32), np.ones(2, np.float32) * 70],
        "sample_rate": 44100, "hop_length": 256, "backend": "fast",
    })
    ratings = _ratings_df(["a", "b", "c", "d"], ["train", "val", "test", "train"], [0.2, -1.0, 1.0, 0.4])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = ContourSet.from_tables(ratings, contours)
    msgs = " ".join(str(x.message) for x in w)
    assert "1 of 4 rated recordings have no contour" in msgs and "1 contours have no rating" in msgs
    assert s.recording_id.tolist() == ["a", "b", "c"]
    assert s.lengths.tolist() == [10, 3, 4]
    assert s.contour(1).tolist() == [0.0, 62.0, 0.0]  # NaN -> 0 = unvoiced
    assert np.isnan(s.ratings["note_accuracy"][1])  # -1 = missing
    assert s.extract == {"sample_rate": 44100, "hop_length": 256, "backend": "fast"}
    assert len(s.select(criterion="note_accuracy")) == 2
    assert s.select(split=["val", "test"]).recording_id.tolist() == ["b", "c"]
    assert len(s.select(band="symphonicband")) == 0
    assert s.indices(split="test", criterion="note_accuracy").tolist() == [2]


def test_from_tables_errors():
    contours = pd.DataFrame({"recording_id": ["a"], "midi": [np.zeros(3, np.float32)]})
    with pytest.raises(ValueError, match="split"):
        ContourSet.from_tables(pd.DataFrame({"recording_id": ["a"]}), contours)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        ContourSet.from_tables(_ratings_df(["a"], ["train"], [3.0]), contours)
    with pytest.raises(ValueError, match="unknown split"):
        ContourSet.from_tables(_ratings_df(["a"], ["dev"], [0.3]), contours)


def test_take_preserves_contours():
    s = synthetic_set(30, seed=3)
    idx = [7, 2, 19]
    t = s.take(idx)
    for k, i in enumerate(idx):
        np.testing.assert_array_equal(t.contour(k), s.contour(i))
        assert t.recording_id[k] == s.recording_id[i]
        assert t.ratings["note_accuracy"][k] == s.ratings["note_accuracy"][i]


def test_normalize_modes():
    midi = torch.tensor([0.0, 36.0, 60.0, 127.0])
    torch.testing.assert_close(normalize(midi, "midi127"), midi / 127)
    torch.testing.assert_close(normalize(midi, "midi36_72"), torch.tensor([0.0, 0.0, 24 / 72, 91 / 72]))
    with pytest.raises(ValueError):
        normalize(midi, "hz")


def test_random_starts_in_range_and_reproducible():
    lengths = torch.tensor([1000, 1001, 5000, 300])
    a = torch.stack([random_starts(lengths, 1000, generator=torch.Generator().manual_seed(s)) for s in range(200)])
    assert (a[:, 0] == 0).all() and (a[:, 3] == 0).all()  # exactly one chunk / shorter: start 0
    assert set(a[:, 1].tolist()) == {0, 1}
    assert a[:, 2].min() >= 0 and a[:, 2].max() <= 4000 and len(set(a[:, 2].tolist())) > 150
    b = random_starts(lengths, 1000, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(b, a[5])


def test_fixed_windows():
    which, starts = fixed_windows(np.array([2600, 999, 1000]), 1000, 500)
    assert which.tolist() == [0, 0, 0, 0, 1, 2]
    assert starts.tolist() == [0, 500, 1000, 1500, 0, 0]


def test_gather_chunks_and_padding():
    s = ContourSet.from_arrays([np.arange(1, 11, dtype=np.float32), np.arange(20, 24, dtype=np.float32)],
                               recording_id=["a", "b"], split=["train", "train"], ratings={})
    midi, off = torch.from_numpy(s.midi), torch.from_numpy(s.offsets)
    x = gather_chunks(midi, off[:-1], off[1:], torch.tensor([0, 1, 0]), torch.tensor([2, 0, 8]), 6)
    assert x.tolist() == [[3, 4, 5, 6, 7, 8], [20, 21, 22, 23, 0, 0], [9, 10, 0, 0, 0, 0]]
    # a subset of contours addressed in the full array, without copying it
    x = gather_chunks(midi, off[1:2], off[2:3], torch.tensor([0]), torch.tensor([1]), 4)
    assert x.tolist() == [[21, 22, 23, 0]]


def test_pitch_shift_voiced_only_one_amount_per_chunk():
    x = torch.tensor([[0.0, 60.0, 62.0, 0.0], [70.0, 0.0, 71.0, 72.0]] * 50)
    y = pitch_shift(x, 2.0, generator=torch.Generator().manual_seed(0))
    assert (y[x == 0] == 0).all()
    d = y - x
    shift = d[:, 1:3].max(dim=1).values
    assert (d.abs() <= 2.0).all() and shift.abs().max() > 1.0 and shift.min() < 0 < shift.max()
    torch.testing.assert_close(d[::2, 1], d[::2, 2])  # one shift per chunk
    assert pitch_shift(x, 0.0, generator=torch.Generator()) is x


def test_synthetic_set_is_deterministic_and_valid():
    a, b = synthetic_set(40, seed=1, short_fraction=0.3), synthetic_set(40, seed=1, short_fraction=0.3)
    np.testing.assert_array_equal(a.midi, b.midi)
    assert set(a.split.tolist()) == {"train", "val", "test"}
    assert (a.lengths < 1000).any()
    r = a.ratings["note_accuracy"]
    assert r.min() >= 0 and r.max() <= 1
