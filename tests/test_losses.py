"""Weighted contrastive loss (paper Eq. 2-3), rating bins, Rank-N-Contrast, pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raympa.config import TrainConfig
from raympa.losses import (
    LossParams,
    batch_mse,
    contrastive_term,
    pair_up,
    paired_mse,
    rank_n_contrast_loss,
    rating_bins,
    stage_loss,
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


# ----------------------------------------------------------------------------- stage losses
# y, pred: squared errors 0.01, 0, 0.16, 0.09 (and 0.49 for a fifth item)
Y5 = [0.1, 0.3, 0.5, 0.9, 0.7]
PRED5 = [0.2, 0.3, 0.1, 0.6, 0.0]
Z5 = [[0.0], [0.0], [1.0], [0.25], [3.0]]


def _joint(n, i, j, lam):
    return stage_loss("joint", pred=_t(PRED5[:n]), z=_t(Z5[:n]), y=_t(Y5[:n]), i=torch.tensor(i),
                      j=torch.tensor(j), params=LossParams(jl_lambda=lam))


def test_joint_loss_halves_even_hand_computed():
    # pairs (0, 2), (1, 3). MSE over both members: (0.01 + 0 + 0.16 + 0.09) / 4 = 0.065
    # L_C: (0, 2) bins 0 / 2, m = 1, d = 1 -> 0; (1, 3) bins 1 / 4, m = 1.5, d = 0.25 -> 0.5 * 1.25^2
    expected = 0.065 + 0.5 * (0.0 + 0.5 * 1.25**2) / 2
    assert math.isclose(float(_joint(4, [0, 1], [2, 3], 0.5)), expected, rel_tol=1e-12)


def test_joint_loss_halves_odd_leaves_the_unpaired_item_out():
    # item 4 (squared error 0.49) is in no pair: the MSE term is still 0.065, not 0.75 / 5
    expected = 0.065 + 1.0 * (0.5 * 1.25**2) / 2
    got = float(_joint(5, [0, 1], [2, 3], 1.0))
    assert math.isclose(got, expected, rel_tol=1e-12)
    assert not math.isclose(got, 0.75 / 5 + (0.5 * 1.25**2) / 2, rel_tol=1e-3)


def test_joint_loss_all_pairs_hand_computed():
    # pairs (0, 1), (0, 2), (1, 2): each item in two pairs, so the MSE term is the batch MSE 0.17 / 3
    # L_C: (0, 1) bins 0 / 1, m = 0.5, d = 0 -> 0.125; (0, 2) m = 1, d = 1 -> 0; (1, 2) m = 0.5, d = 1 -> 0
    i, j = pair_up(3, "all")
    got = _joint(3, i.tolist(), j.tolist(), 2.0)
    assert math.isclose(float(got), 0.17 / 3 + 2.0 * 0.125 / 3, rel_tol=1e-12)


@pytest.mark.parametrize("n", [8, 9])
def test_joint_mse_term_is_one_mse_under_every_pairing(n):
    """The effective lambda does not change with the pairing: the MSE term is one MSE, not two."""
    g = torch.Generator().manual_seed(n)
    pred, y = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    i, j = pair_up(n, "halves", generator=g)
    used = torch.cat([i, j])
    torch.testing.assert_close(paired_mse(pred, y, i, j), batch_mse(pred[used], y[used]))
    i, j = pair_up(n, "all")
    torch.testing.assert_close(paired_mse(pred, y, i, j), batch_mse(pred, y))
    z = torch.zeros(n, 2, dtype=torch.float64)
    no_c = LossParams(jl_lambda=0.0)
    torch.testing.assert_close(stage_loss("joint", pred=pred, z=z, y=y, i=i, j=j, params=no_c),
                               stage_loss("mse", pred=pred, z=None, y=y, params=no_c))


def test_stage_loss_kinds_and_errors():
    pred, z, y = _t(PRED5[:4]), _t(Z5[:4]), _t(Y5[:4])
    i, j = torch.tensor([0, 1]), torch.tensor([2, 3])
    assert math.isclose(float(stage_loss("mse", pred=pred, z=None, y=y)), 0.065, rel_tol=1e-12)
    c = stage_loss("contrastive", pred=None, z=z, y=y, i=i, j=j)
    torch.testing.assert_close(c, weighted_contrastive_loss(z[i], z[j], y[i], y[j]))
    with pytest.raises(ValueError, match="kind"):
        stage_loss("mixed", pred=pred, z=z, y=y, i=i, j=j)
    with pytest.raises(ValueError, match="pairs"):
        stage_loss("joint", pred=pred, z=z, y=y)


@pytest.mark.parametrize("kind", ["weighted", "rnc"])
def test_stage_loss_members_equal_single_runs(kind):
    g = torch.Generator().manual_seed(1)
    n, k = 10, 3
    pred = torch.rand(n, k, generator=g, dtype=torch.float64)
    z = torch.randn(n, k, 4, generator=g, dtype=torch.float64)
    y = torch.rand(n, k, generator=g, dtype=torch.float64)
    pairs = [pair_up(n, "halves", generator=g) for _ in range(k)]
    i, j = torch.stack([p[0] for p in pairs], dim=1), torch.stack([p[1] for p in pairs], dim=1)  # (P, K)
    cfgs = [TrainConfig(contrastive=kind, margin=m, n_bins=c, jl_lambda=lam, rnc_temperature=t)
            for m, c, lam, t in ((0.5, 5, 1.0, 2.0), (0.7, 3, 0.5, 1.0), (1.1, 10, 2.0, 0.5))]
    params = LossParams.from_configs(cfgs)
    for loss in ("joint", "contrastive"):
        got = stage_loss(loss, pred=pred, z=z, y=y, i=i, j=j, params=params)
        assert got.shape == (k,)
        for m in range(k):
            one = stage_loss(loss, pred=pred[:, m], z=z[:, m], y=y[:, m], i=i[:, m], j=j[:, m],
                             params=LossParams.from_configs(cfgs[m]))
            torch.testing.assert_close(got[m], one)
    # shared validation ratings and pairs broadcast over the members
    iv, jv = pair_up(n, "all")
    got = stage_loss("joint", pred=pred, z=z, y=y[:, 0], i=iv, j=jv, params=params)
    one = stage_loss("joint", pred=pred[:, 2], z=z[:, 2], y=y[:, 0], i=iv, j=jv,
                     params=LossParams.from_configs(cfgs[2]))
    torch.testing.assert_close(got[2], one)
