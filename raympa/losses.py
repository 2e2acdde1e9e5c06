"""Contrastive losses for regression.

* :func:`weighted_contrastive_loss`: Seshadri & Lerch 2021, section 3.2, Eq. (2) with the
  variable margin of Eq. (3). Ratings are cut into C equal bins with *inclusive lower bounds*
  (:func:`rating_bins`); a pair in the same bin costs ``0.5 * d**2``, a pair in bins i != j costs
  ``0.5 * max(0, s * |i - j| - d)**2``, d the Euclidean distance of the two embeddings; the loss
  is the mean over pairs.
* :func:`rank_n_contrast_loss`: Rank-N-Contrast, Zha et al., "Rank-N-Contrast: Learning
  Continuous Representations for Regression", NeurIPS 2023: for anchor i and positive j the
  negatives are all k != i with ``|y_i - y_k| >= |y_i - y_j|``; similarity ``-||v_i - v_k|| / tau``.
* :func:`pair_up`: the two ways of building pairs from a batch (original code's halves, or all).
"""

from __future__ import annotations

import numpy as np
import torch

BIN_TOLERANCE = 1e-5  # ours, in bin units: a rating within this of a bin's lower bound is in it
_TINY = 1e-12  # ours: floor under squared distances so sqrt has a finite gradient at d = 0


def rating_bins(y: torch.Tensor | np.ndarray, n_bins: int = 5) -> torch.Tensor | np.ndarray:
    """Rating bin index of each rating, as the paper (section 3.2).

    Bins are [0, 1/C), [1/C, 2/C), ..., [(C-1)/C, 1] with inclusive lower bounds: for C = 5 a
    rating of exactly 0.2, 0.4, 0.6 or 0.8 is in the upper bin and 1.0 is in bin C-1. The product
    ``y * C`` is taken in float64 with a tolerance of ``BIN_TOLERANCE`` bins, so a float32 0.6
    (0.60000002) and a float64 0.6 (0.59999999999999998) both land in bin 3, unlike the original
    code's ``floor(y / (1/C))`` (0.6 -> bin 2).

    Args:
        y: ratings in [0, 1], any shape; torch tensor or numpy array.
        n_bins: C, the number of bins (paper: 5).

    Returns:
        int64 bin indices in [0, C-1], same shape and kind (tensor on the same device, or array).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}; need at least 1")
    if isinstance(y, torch.Tensor):
        b = torch.floor(y.detach().to(torch.float64) * n_bins + BIN_TOLERANCE)
        return b.clamp_(0, n_bins - 1).to(torch.int64)
    arr = np.asarray(y, dtype=np.float64)
    return np.clip(np.floor(arr * n_bins + BIN_TOLERANCE), 0, n_bins - 1).astype(np.int64)


def _distance(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared and plain Euclidean distance of matching rows: (pairs, dim) x2 -> (pairs,) x2."""
    d2 = (z1 - z2).pow(2).sum(dim=1)  # (pairs,)
    return d2, _safe_sqrt(d2)


def _safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt with the exact value 0 at 0 and a zero (not NaN) gradient there."""
    return torch.where(d2 > 0, d2.clamp(min=_TINY).sqrt(), torch.zeros_like(d2))


def weighted_contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    y1: torch.Tensor,
    y2: torch.Tensor,
    *,
    n_bins: int = 5,
    margin: float = 0.5,
) -> torch.Tensor:
    """The paper's weighted contrastive loss, mean over the pairs (z1[k], z2[k]).

    Args:
        z1, z2: (pairs, dim) embeddings of the two members of each pair.
        y1, y2: (pairs,) their ratings in [0, 1].
        n_bins: C, rating bins (paper: 5).
        margin: s, the margin per bin of distance (paper: 0.5).

    Returns:
        Scalar tensor.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be (pairs, dim); got {tuple(z1.shape)}, {tuple(z2.shape)}")
    if y1.shape != (z1.shape[0],) or y2.shape != (z1.shape[0],):
        raise ValueError(f"y1 and y2 must be (pairs,) = ({z1.shape[0]},); got {tuple(y1.shape)}, {tuple(y2.shape)}")
    b1 = rating_bins(y1, n_bins)
    b2 = rating_bins(y2, n_bins)
    d2, d = _distance(z1, z2)  # (pairs,)
    m = margin * (b1 - b2).abs().to(d.dtype)  # (pairs,) variable margin, Eq. (3)
    same = b1 == b2
    per_pair = torch.where(same, 0.5 * d2, 0.5 * torch.relu(m - d).pow(2))
    return per_pair.mean()


def rank_n_contrast_loss(
    z: torch.Tensor, y: torch.Tensor, *, temperature: float = 2.0, block: int = 128
) -> torch.Tensor:
    """Rank-N-Contrast loss (Zha et al. 2023, Eq. 2) over one set of embeddings.

    For every anchor i and every j != i:
    ``-log( exp(s_ij) / sum_{k != i, |y_i - y_k| >= |y_i - y_j|} exp(s_ik) )`` with
    ``s_ik = -||z_i - z_k||_2 / temperature``; the mean over all (i, j).

    Args:
        z: (n, dim) embeddings, n >= 2.
        y: (n,) ratings.
        temperature: tau (Zha et al. default 2).
        block: anchors processed at once (bounds memory at block * n * n).

    Returns:
        Scalar tensor.
    """
    n = z.shape[0]
    if n < 2:
        raise ValueError("Rank-N-Contrast needs at least 2 embeddings")
    d2 = (z[:, None, :] - z[None, :, :]).pow(2).sum(dim=2)  # (n, n)
    logits = -_safe_sqrt(d2) / temperature  # (n, n)
    label_d = (y[:, None] - y[None, :]).abs().to(z.dtype)  # (n, n)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    total = z.new_zeros(())
    for a in range(0, n, block):
        sl = slice(a, min(a + block, n))
        lg, ld, ey = logits[sl], label_d[sl], eye[sl]  # (b, n)
        # negatives of (i, j): k != i with |y_i - y_k| >= |y_i - y_j|  -> (b, n_j, n_k)
        neg = (ld[:, None, :] >= ld[:, :, None]) & ~ey[:, None, :]
        denom = torch.logsumexp(lg[:, None, :].masked_fill(~neg, float("-inf")), dim=2)  # (b, n_j)
        per = (denom - lg).masked_fill(ey, 0.0)  # (b, n_j); j = i excluded
        total = total + per.sum()
    return total / (n * (n - 1))


def pair_up(
    n: int, pairing: str, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j) within a batch of n items.

    * ``"halves"`` (original code): a random permutation split into halves, paired element-wise
      (n // 2 pairs; with an odd n the last permuted item is left out).
    * ``"all"``: every unordered pair i < j (n * (n - 1) / 2 pairs), deterministic.

    Returns:
        Two (pairs,) int64 index tensors on ``device``.
    """
    if n < 2:
        raise ValueError(f"need at least 2 items to pair, got {n}")
    if pairing == "halves":
        perm = torch.randperm(n, generator=generator).to(device)
        h = n // 2
        return perm[:h], perm[h : 2 * h]
    if pairing == "all":
        ij = torch.triu_indices(n, n, offset=1, device=device)
        return ij[0], ij[1]
    raise ValueError(f"pairing={pairing!r}; choose 'halves' or 'all'")


def contrastive_term(
    z: torch.Tensor,
    y: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    *,
    kind: str,
    n_bins: int,
    margin: float,
    temperature: float,
) -> torch.Tensor:
    """The configured contrastive loss of a batch given its pairs.

    ``kind="weighted"`` averages :func:`weighted_contrastive_loss` over the pairs (i, j);
    ``kind="rnc"`` applies :func:`rank_n_contrast_loss` to the items that appear in a pair.
    """
    if kind == "weighted":
        return weighted_contrastive_loss(z[i], z[j], y[i], y[j], n_bins=n_bins, margin=margin)
    if kind == "rnc":
        used = torch.unique(torch.cat([i, j]))
        return rank_n_contrast_loss(z[used], y[used], temperature=temperature)
    raise ValueError(f"contrastive={kind!r}; choose 'weighted' or 'rnc'")
