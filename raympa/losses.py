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
* :func:`stage_loss`: the loss of a training stage (``LOSS_KINDS``: MSE, contrastive, or the joint
  ``L = MSE + lambda * L_C`` of the paper's Eq. 1 with lambda = 1), the same function for training
  and validation under every pairing. Its MSE term is the mean over both members of every pair
  (:func:`paired_mse`); the original code sums the two members' MSEs, twice this.

Every loss takes either one model's outputs or K stacked members' (a member axis after the batch
axis, :mod:`raympa.models`), then returns one loss per member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

BIN_TOLERANCE = 1e-5  # ours, in bin units: a rating within this of a bin's lower bound is in it
_TINY = 1e-12  # ours: floor under squared distances so sqrt has a finite gradient at d = 0


def rating_bins(y: torch.Tensor | np.ndarray, n_bins: int = 5) -> torch.Tensor | np.ndarray:
    """Rating bin index of each rating, as the paper (section 3.2).

    Bins are [0, 1/C), [1/C, 2/C), ..., [(C-1)/C, 1] with inclusive lower bounds: for C = 5 a
    rating of exactly 0.2, 0.4, 0.6 or 0.8 is in the upper bin and 1.0 is in bin C-1. The product
    ``y * C`` is taken in float64 with a tolerance of ``BIN_TOLERANCE`` bins, so a float32 0.6
    (0.60000002) and a float64 0.6 (0.59999999999999998) both land in bin 3. The original code's
    ``floor(y / (1/C))`` on float32 torch tensors gives the same bins (0.6 -> 3); the same
    expression in float64 would put 0.6 in bin 2.

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
        margin: s, the margin per bin of distance (the paper gives no value; the original
            code's is 0.5).

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


# ----------------------------------------------------------------------------- stage losses
LOSS_KINDS = ("mse", "contrastive", "joint")  # the losses a training stage can use


@dataclass(frozen=True)
class LossParams:
    """Parameters of the contrastive and joint losses, one value or one per member.

    Attributes:
        contrastive: ``"weighted"`` (paper, Eq. 2-3) or ``"rnc"`` (Rank-N-Contrast).
        n_bins, margin, temperature, jl_lambda: C, s, tau and lambda (the weight of L_C in the
            joint loss); each a number, or a sequence of K numbers for K stacked members.
    """

    contrastive: str = "weighted"
    n_bins: int | Sequence[int] = 5
    margin: float | Sequence[float] = 0.5
    temperature: float | Sequence[float] = 2.0
    jl_lambda: float | Sequence[float] = 1.0

    @classmethod
    def from_configs(cls, cfgs: Any) -> "LossParams":
        """From one ``TrainConfig`` (numbers) or a sequence of K members' (sequences)."""
        if not isinstance(cfgs, (list, tuple)):
            return cls(cfgs.contrastive, cfgs.n_bins, cfgs.margin, cfgs.rnc_temperature, cfgs.jl_lambda)
        kinds = {c.contrastive for c in cfgs}
        if len(kinds) != 1:
            raise ValueError(f"members must share the contrastive loss, got {sorted(kinds)}")
        return cls(kinds.pop(), tuple(c.n_bins for c in cfgs), tuple(c.margin for c in cfgs),
                   tuple(c.rnc_temperature for c in cfgs), tuple(c.jl_lambda for c in cfgs))

    def member(self, k: int) -> "LossParams":
        """Member k's parameters as numbers (numbers stay as they are)."""
        def pick(v: Any) -> Any:
            return v[k] if isinstance(v, (list, tuple)) else v

        return LossParams(self.contrastive, pick(self.n_bins), pick(self.margin), pick(self.temperature),
                          pick(self.jl_lambda))


def _member_view(y: torch.Tensor, members: int) -> torch.Tensor:
    """(n,) shared or (n, K) per-member values -> (n, K)."""
    return y[:, None].expand(-1, members) if y.dim() == 1 else y


def _pairs_view(i: torch.Tensor, members: int) -> torch.Tensor:
    """(P,) shared or (P, K) per-member pair indices -> (P, K)."""
    return i[:, None].expand(-1, members) if i.dim() == 1 else i


def paired_mse(pred: torch.Tensor, y: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Mean squared error over both members of every pair: ``(MSE(i) + MSE(j)) / 2``.

    Args:
        pred: (n,) predictions, or (n, K) for K members.
        y: (n,) ratings, or (n, K) per member.
        i, j: (P,) pair indices, or (P, K) per member.

    Returns:
        Scalar, or (K,).
    """
    if pred.dim() == 1:
        return 0.5 * ((pred[i] - y[i]).pow(2).mean() + (pred[j] - y[j]).pow(2).mean())
    k = pred.shape[1]
    err = (pred - _member_view(y, k).to(pred.dtype)).pow(2)  # (n, K)
    return 0.5 * (err.gather(0, _pairs_view(i, k)).mean(dim=0) + err.gather(0, _pairs_view(j, k)).mean(dim=0))


def batch_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the batch: scalar for (n,) predictions, (K,) for (n, K)."""
    if pred.dim() == 1:
        return (pred - y).pow(2).mean()
    return (pred - _member_view(y, pred.shape[1]).to(pred.dtype)).pow(2).mean(dim=0)


def members_contrastive(
    z: torch.Tensor, y: torch.Tensor, i: torch.Tensor, j: torch.Tensor, params: LossParams
) -> torch.Tensor:
    """:func:`contrastive_term` of every member: z (n, K, D) -> (K,); z (n, D) -> scalar."""
    if z.dim() == 2:
        return contrastive_term(z, y, i, j, kind=params.contrastive, n_bins=int(params.n_bins),
                                margin=float(params.margin), temperature=float(params.temperature))
    k = z.shape[1]
    yk, ik, jk = _member_view(y, k), _pairs_view(i, k), _pairs_view(j, k)
    if params.contrastive == "weighted":
        return _weighted_members(z, yk, ik, jk, params)
    out = []
    for m in range(k):
        p = params.member(m)
        out.append(contrastive_term(z[:, m], yk[:, m], ik[:, m], jk[:, m], kind=p.contrastive,
                                    n_bins=int(p.n_bins), margin=float(p.margin), temperature=float(p.temperature)))
    return torch.stack(out)


def _per_member(value: Any, k: int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A number or K numbers -> (K,) tensor on ``like``'s device."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * k
    if len(values) != k:
        raise ValueError(f"{len(values)} per-member values for {k} members")
    return torch.tensor(values, dtype=dtype, device=like.device)


def _weighted_members(z: torch.Tensor, y: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                      params: LossParams) -> torch.Tensor:
    """:func:`weighted_contrastive_loss` of K members at once: z (n, K, D), y/i/j (., K) -> (K,)."""
    k, dim = z.shape[1], z.shape[2]
    zi = z.gather(0, i[:, :, None].expand(-1, -1, dim))  # (P, K, D)
    zj = z.gather(0, j[:, :, None].expand(-1, -1, dim))  # (P, K, D)
    c = _per_member(params.n_bins, k, z, torch.float64)  # (K,)
    if (c < 1).any():
        raise ValueError(f"n_bins={params.n_bins}; need at least 1")

    def bins(yy: torch.Tensor) -> torch.Tensor:  # (P, K) -> (P, K), as rating_bins per member
        b = torch.floor(yy.detach().to(torch.float64) * c + BIN_TOLERANCE).clamp(min=0)
        return torch.minimum(b, c - 1)

    bi, bj = bins(y.gather(0, i)), bins(y.gather(0, j))  # (P, K)
    d2 = (zi - zj).pow(2).sum(dim=2)  # (P, K)
    d = _safe_sqrt(d2)
    m = _per_member(params.margin, k, z, d.dtype) * (bi - bj).abs().to(d.dtype)  # (P, K), Eq. (3)
    per_pair = torch.where(bi == bj, 0.5 * d2, 0.5 * torch.relu(m - d).pow(2))
    return per_pair.mean(dim=0)


def _lambda(params: LossParams, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(params.jl_lambda, (list, tuple)):
        return torch.tensor(params.jl_lambda, dtype=like.dtype, device=like.device)  # (K,)
    return float(params.jl_lambda)


_T = torch.Tensor


def _mse_loss(pred: _T, z: _T | None, y: _T, i: _T | None, j: _T | None, params: LossParams) -> _T:
    return batch_mse(pred, y)


def _contrastive_loss(pred: _T | None, z: _T, y: _T, i: _T, j: _T, params: LossParams) -> _T:
    return members_contrastive(z, y, i, j, params)


def _joint_loss(pred: _T, z: _T, y: _T, i: _T, j: _T, params: LossParams) -> _T:
    c = members_contrastive(z, y, i, j, params)
    return paired_mse(pred, y, i, j) + _lambda(params, c) * c


# kind -> loss(pred, z, y, i, j, params); the one definition of each stage loss
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": _mse_loss,
    "contrastive": _contrastive_loss,
    "joint": _joint_loss,
}


def stage_loss(
    kind: str,
    *,
    pred: torch.Tensor | None,
    z: torch.Tensor | None,
    y: torch.Tensor,
    i: torch.Tensor | None = None,
    j: torch.Tensor | None = None,
    params: LossParams = LossParams(),
) -> torch.Tensor:
    """The loss of a training stage, the same in training and in validation.

    * ``"mse"``: MSE over the batch (pairs unused).
    * ``"contrastive"``: the contrastive term over the pairs (i, j) (``pred`` unused).
    * ``"joint"``: ``paired_mse + jl_lambda * contrastive`` (paper, Eq. 1: L = L_MSE + L_C).

    Training passes the pairs of ``TrainConfig.pairing`` (:func:`pair_up`), validation all pairs
    (``pair_up(n, "all")``, where :func:`paired_mse` is the plain MSE of the validation set).

    Args:
        kind: one of :data:`LOSS_KINDS`.
        pred: (n,) or (n, K) predictions.
        z: (n, D) or (n, K, D) latents.
        y: (n,) ratings, or (n, K) per member.
        i, j: (P,) or (P, K) pair indices.
        params: the contrastive loss and its numbers (:meth:`LossParams.from_configs`).

    Returns:
        Scalar, or (K,) per-member losses (sum them for one backward pass).
    """
    if kind not in LOSSES:
        raise ValueError(f"loss kind {kind!r}; choose one of {list(LOSS_KINDS)}")
    if kind != "mse" and (i is None or j is None or z is None):
        raise ValueError(f"the {kind} loss needs latents z and pairs (i, j)")
    if kind != "contrastive" and pred is None:
        raise ValueError(f"the {kind} loss needs predictions")
    return LOSSES[kind](pred, z, y, i, j, params)
