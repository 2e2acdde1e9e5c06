"""Epochs (random chunks, fixed windows, the original code's three window sets), minimum steps, eval windows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from raympa.sampling import (
    CODE_WINDOWS,
    WINDOW_SETS,
    epoch_batches,
    epoch_repeats,
    eval_windows,
    fixed_windows,
    n_batches,
    steps_per_pass,
)

LENGTHS = np.array([2600, 999, 1000, 4100, 1800, 3000, 2100, 1500, 2500, 5000, 1200, 700] * 5)  # 60 contours


def _epoch(chunking, seed=0, **kw):
    args = dict(chunking=chunking, chunk_frames=1000, chunk_hop=500, chunks_per_recording=1, batch_size=16,
                min_steps=0)
    args.update(kw)
    return epoch_batches(LENGTHS, generator=torch.Generator().manual_seed(seed), **args)


def test_n_batches_and_repeats():
    assert n_batches(50, 16) == 4 and n_batches(49, 16) == 3 and n_batches(48, 16) == 3
    assert epoch_repeats(6, 64) == 11 and epoch_repeats(70, 64) == 1 and epoch_repeats(6, 0) == 1


def test_random_epoch_is_one_chunk_per_recording_per_pass():
    batches = _epoch("random")
    assert [len(b.which) for b in batches] == [16, 16, 16, 12]
    assert sorted(torch.cat([b.which for b in batches]).tolist()) == list(range(60))
    for b in batches:
        assert b.n_frames == 1000
        assert ((b.starts >= 0) & (b.starts <= torch.from_numpy(np.maximum(LENGTHS[b.which] - 1000, 0)))).all()


def test_min_steps_repeats_the_pass():
    batches = _epoch("random", min_steps=10)  # 4 steps a pass -> 3 passes
    assert len(batches) == 12
    assert Counter(torch.cat([b.which for b in batches]).tolist()) == {i: 3 for i in range(60)}
    windows = _epoch("fixed", min_steps=1)
    assert len(_epoch("fixed", min_steps=len(windows) + 1)) == 2 * len(windows)


def test_fixed_epoch_visits_every_window_once():
    which, starts = fixed_windows(LENGTHS, 1000, 500)
    batches = _epoch("fixed")
    got = sorted(zip(torch.cat([b.which for b in batches]).tolist(), torch.cat([b.starts for b in batches]).tolist()))
    assert got == sorted(zip(which.tolist(), starts.tolist()))
    assert steps_per_pass(LENGTHS, chunking="fixed", chunk_frames=1000, chunk_hop=500, chunks_per_recording=1,
                          batch_size=16) == len(batches)


def test_code_epoch_mixes_the_three_window_sets():
    batches = _epoch("code")
    for frames, hop in CODE_WINDOWS:  # every window of every set, exactly once
        which, starts = fixed_windows(LENGTHS, frames, hop)
        mine = [b for b in batches if b.n_frames == frames]
        got = sorted(zip(torch.cat([b.which for b in mine]).tolist(), torch.cat([b.starts for b in mine]).tolist()))
        assert got == sorted(zip(which.tolist(), starts.tolist()))
    sizes = [b.n_frames for b in batches]
    assert set(sizes[:6]) == {1000, 1500, 2000}  # interleaved, not one set after the other
    # the shape of an epoch does not depend on the generator (stacked members step together)
    other = _epoch("code", seed=5)
    assert [(len(b.which), b.n_frames) for b in other] == [(len(b.which), b.n_frames) for b in batches]
    assert not all(torch.equal(a.which, b.which) for a, b in zip(batches, other))


def test_short_contours_get_one_window_per_set():
    for frames, _ in CODE_WINDOWS:
        mine = [b for b in _epoch("code") if b.n_frames == frames]
        starts_of_11 = torch.cat([b.starts[b.which == 11] for b in mine]).tolist()  # 700 frames
        assert starts_of_11 == [0]


def test_eval_windows():
    sets = eval_windows(LENGTHS, "chunkmix")
    assert [n for _, _, n in sets] == [1000, 1500, 2000]
    for (which, starts, _), (frames, hop) in zip(sets, CODE_WINDOWS):
        ref = fixed_windows(LENGTHS, frames, hop)
        np.testing.assert_array_equal(which, ref[0])
        np.testing.assert_array_equal(starts, ref[1])
    assert len(eval_windows(LENGTHS, "chunk1000")) == 1 == len(WINDOW_SETS["chunk1000"])
    with pytest.raises(ValueError, match="protocol"):
        eval_windows(LENGTHS, "chunk")
    with pytest.raises(ValueError, match="chunking"):
        _epoch("windows")
