"""Weighted contrastive loss (paper Eq. 2-3), rating bins, Rank-N-Contrast, pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raympa.losses import (
    contrastive_term,
    pair_up,
    rank_n_contrast_loss,
    rating_bins,
    weighted_contrastive_loss,
)

RATINGS = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 0.99, 1.0]
BINS_C5 = [0, 0, 1, 2, 3, 4, 4, 4]  # inclusive lower bounds; 1.0 -> C-1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rating_bins_numpy_boundaries(dtype):
    y = np.array(RATINGS, dtype=dtype)
    assert rating_bins(y, 5).tolist() == BINS_C5
    # the original code's floor(y / (1/C)) puts 0.6 in bin 2: ours must not
    assert int(np.floor(np.float64(0.6) / (1 / 5))) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rating_bins_torch_boundaries(dtype):
    y = torch.tensor(RATINGS, dtype=dtype)
    b = rating_bins(y, 5)
    assert b.dtype == torch.int64 and b.tolist() == BINS_C5


def test_rating_bins_other_counts():
    assert rating_bins(np.array([0.0, 0.3, 1 / 3, 2 / 3, 0.7, 1.0]), 3).tolist() == [0, 0, 1, 2, 2, 2]
    assert rating_bins(np.array([0.1, 0.3, 0.5, 0.7, 0.9]), 10).tolist() == [1, 3, 5, 7, 9]
    assert rating_bins(np.array([0.49999, 0.5]), 2).tolist() == [0, 1]


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_weighted_loss_hand_computed():
    z1 = _t([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    z2 = _t([[3.0, 4.0], [0.6, 0.8], [3.0, 4.0], [1.0, 1.0]])
    y1 = _t([0.10, 0.0, 0.0, 0.6])
    y2 = _t([0.15, 1.0, 1.0, 0.59999])
    # pair 1: same bin 0, d = 5            -> 0.5 * 25            = 12.5
    # pair 2: bins 0 / 4, m = 4 * 0.5 = 2, d = 1 -> 0.5 * (2 - 1)^2 = 0.5
    # pair 3: bins 0 / 4, m = 2, d = 5 > m  -> 0
    # pair 4: bins 3 / 2 (0.6 is in bin 3), m = 0.5, d = 0 -> 0.5 * 0.25 = 0.125
    expected = (12.5 + 0.5 + 0.0 + 0.125) / 4
    got = weighted_contrastive_loss(z1, z2, y1, y2, n_bins=5, margin=0.5)
    assert math.isclose(float(got), expected, rel_tol=1e-9, abs_tol=1e-9)
    # float32 ratings exactly on a boundary behave the same
    got32 = weighted_contrastive_loss(z1.float(), z2.float(), y1.float(), y2.float())
    assert math.isclose(float(got32), expected, rel_tol=1e-5)


def test_weighted_loss_margin_scales_with_bin_distance():
    z1, z2 = _t([[0.0]]), _t([[0.0]])
    for b2, y2 in enumerate([0.05, 0.25, 0.45, 0.65, 0.85]):
        m = 0.7 * b2
        got = weighted_contrastive_loss(z1, z2, _t([0.05]), _t([y2]), n_bins=5, margin=0.7)
        assert math.isclose(float(got), 0.5 * m * m, abs_tol=1e-9)


def test_weighted_loss_gradient_finite_at_zero_distance():
    z = torch.zeros(3, 16, requires_grad=True)
    loss = weighted_contrastive_loss(z, z.clone(), _t([0.1, 0.5, 0.9]).float(), _t([0.9, 0.1, 0.5]).float())
    loss.backward()
    assert torch.isfinite(z.grad).all() and loss.item() > 0


def test_weighted_loss_shape_checks():
    with pytest.raises(ValueError, match="pairs"):
        weighted_contrastive_loss(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3), torch.zeros(3))


def _rnc_reference(z, y, tau):
    n = len(y)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            s = lambda k: -float(np.linalg.norm(z[i] - z[k])) / tau  # noqa: E731
            den = sum(math.exp(s(k)) for k in range(n) if k != i and abs(y[i] - y[k]) >= abs(y[i] - y[j]))
            total += -(s(j) - math.log(den))
    return total / (n * (n - 1))


def test_rank_n_contrast_against_direct_formula():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3))
    y = np.array([0.1, 0.4, 0.4, 0.7, 0.9, 0.2])
    for tau in (2.0, 0.5):
        got = rank_n_contrast_loss(torch.tensor(z), torch.tensor(y), temperature=tau, block=4)
        assert math.isclose(float(got), _rnc_reference(z, y, tau), rel_tol=1e-9)
    # two items: the positive is the only candidate -> -log(1) = 0
    assert abs(float(rank_n_contrast_loss(torch.tensor(z[:2]), torch.tensor(y[:2])))) < 1e-12


def test_pair_up():
    g = torch.Generator().manual_seed(0)
    i, j = pair_up(7, "halves", generator=g)
    assert len(i) == len(j) == 3 and len(set(i.tolist()) | set(j.tolist())) == 6
    i, j = pair_up(5, "all")
    assert sorted(zip(i.tolist(), j.tolist())) == [(a, b) for a in range(5) for b in range(a + 1, 5)]
    with pytest.raises(ValueError):
        pair_up(4, "random")


def test_contrastive_term_dispatch():
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    i, j = pair_up(6, "all")
    w = contrastive_term(z, y, i, j, kind="weighted", n_bins=5, margin=0.5, temperature=2.0)
    torch.testing.assert_close(w, weighted_contrastive_loss(z[i], z[j], y[i], y[j]))
    r = contrastive_term(z, y, i, j, kind="rnc", n_bins=5, margin=0.5, temperature=2.0)
    torch.testing.assert_close(r, rank_n_contrast_loss(z, y))
