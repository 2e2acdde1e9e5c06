"""Reference-informed models: the performance read together with its aligned reference.

After Huang, Hung, Pati, Gururani & Lerch, "Score-informed networks for music performance
assessment", ISMIR 2020 (code: biboamy/FBA-Fall19), whose SIConvNet reads the performance and its
DTW-aligned score as input channels, and whose JointEmbedNet encodes performance and score
separately and regresses the rating from their joint embedding. Here the reference comes from
:mod:`raympa.references` (a score, a recording of the piece, or the top-rated training peers),
aligned key- and octave-invariantly onto the performance's frame grid (:mod:`raympa.align`).

Input: (batch, K, C, n_frames), or (batch, C, n_frames) shared by every member, C = 4 + F
(:data:`IN_CHANNELS`): channel 0 the normalised performance, channel 1 the normalised aligned
reference (both 0 where unvoiced), then the recording's F alignment features
(:data:`raympa.align.ALL_FEATURES`: the six alignment numbers and ten rhythm numbers of its DTW
path and onsets) as constant side channels (:func:`raympa.dataset.side_channels`), read at the first frame.

Wide and deep (ours): the features, standardised with the training recordings' mean and variance
(fixed buffers; a checkpoint carries them), enter the 16-d latent through a trainable fusion with
the CNN's time mean(s), and reach the head directly: the head is ContrastiveCNN's
``Linear(16, 8) -> Linear(8, 1)`` on the latent (the deep part) plus a direct ``Linear(16 + F, 1)``
on the latent and the features (the wide part), and its output is the rating itself (no sigmoid:
evaluation and predict clip to [0, 1]), so the linear model on the alignment features is one layer
away. Before training, :meth:`_Informed.warm_start` puts every member at that linear model: the
standardisation from the training recordings, the wide part's feature weights a ridge fit on them
(:func:`fit_wide`), its latent weights and the deep part's last layer 0, so the network starts from
the linear solution and training adds what the contours give (also in the two-step head stage,
which reads :meth:`_Informed.head_input`). Measured on 300 short recordings (3-7 s, 5 folds):
trained from a random start the networks stayed 0.04-0.1 below the linear model on their own
features; a sigmoid output bent the linear model's extrapolation (ridge out of fold 0.14-0.17
against 0.19-0.20 linear); standardising with batch statistics and a trainable scale let the
contrastive loss of the JL and two-step models rescale the features under the wide part.
The contrastive loss shapes the latent, every dimension of which is trainable: with the fixed
standardised features inside the latent (the first version) their pairwise distances (about
2F squared for random pairs) dominated the loss and its early stopping on short recordings.

* :class:`SIConvNet` (``si-*`` models): the encoder's conv blocks (kernel 7, stride 3, 4 -> 8 ->
  16 channels, as PCConvNet's) read three channels: performance, reference, and their difference
  where both are voiced (which is where note errors show); their masked time mean is fused with
  the features ``Linear(16 + F, 16)``. The time mean instead of
  PCConvNet's final kernel-35 convolution is ours: it takes recordings of any length from 79
  frames (0.46 s) on, so short recordings (a few seconds) are read whole.
* :class:`JointEmbedNet` (``joint-embed*``): two encoders of PCConvNet's shape, one for the
  performance and one for the reference; their 16-d time means, concatenated with their
  difference and the features, go through ``Linear(48 + F, 16)``; the same latent and head.

Every one of them trains with each loss the project has (:data:`INFORMED`): MSE alone
(``si-pcconvnet``, ``joint-embed``), two-step contrastive (``si-contrastive``,
``joint-embed-contrastive``) and MSE + λ·contrastive on the latent (``si-contrastive-jl``,
``joint-embed-jl``); the contrastive term is the weighted contrastive loss or Rank-N-Contrast as
``TrainConfig.contrastive`` says.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raympa import constants as C
from raympa.align import ALL_FEATURES
from raympa.dataset import SIDE_HIGH, SIDE_LOW, SIDE_MAX, SIDE_MIN
from raympa.models import (CHANNELS, HEAD_HIDDEN, KERNEL, STRIDE, ConvEncoder, GroupBatchNorm1d, GroupBlocks,
                           GroupConv1d, GroupLinear, HeadScaler, masked_time_mean)

DIFF_SCALE = 10.0  # ours: the difference channel is small after pitch normalisation; the conv BatchNorm rescales anyway
MIN_FRAMES = 79  # the encoder's receptive field (79 -> 25 -> 7 -> 1 frames)
SHORT_CHUNK_QUANTILE = 0.1  # ours: auto chunk length = this quantile of the training lengths, when shorter than the paper's
N_SIDE = len(ALL_FEATURES)  # alignment features per recording
IN_CHANNELS = 4 + N_SIDE  # performance, reference, two calibration channels, the features
HEAD_IN = C.LATENT_DIM + N_SIDE  # what the head reads: the latent, then the standardised features
SIDE_EPS = 1e-5  # added to the features' variance before the square root (as torch's BatchNorm)
WIDE_RIDGE = 0.15  # ours: ridge penalty of the wide part's starting fit per training recording (standardised features)


def fit_wide(z: np.ndarray, y: np.ndarray, *, ridge: float = WIDE_RIDGE) -> tuple[np.ndarray, float]:
    """The wide part's starting point: ridge regression of ``y`` on ``z``, penalty ``ridge * n``.

    Measured on the two demo sets (300 recordings of 3-7 s and 240 of 30 s, 5 folds, note and rhythm
    accuracy): out of fold, 0.15 per recording was within 0.01 of the best fixed penalty on each, and
    better than choosing it by leave-one-out within each training split.

    Args:
        z: (n, F) standardised features.
        y: (n,) ratings.

    Returns:
        (F,) weights and the intercept (rating units).
    """
    n, f = z.shape
    zc = z - z.mean(axis=0)
    w = np.linalg.solve(zc.T @ zc + ridge * n * np.eye(f), zc.T @ (y - y.mean()))
    return w, float(y.mean() - z.mean(axis=0) @ w)


def decode_side(x: torch.Tensor) -> torch.Tensor:
    """(batch, K, C, n) input -> (batch, K, F) alignment features in their own units (see
    :func:`raympa.dataset.side_channels`): exact whatever affine pitch transform the input went through."""
    first = x[..., 0]  # (batch, K, C)
    low, high = first[..., 2:3], first[..., 3:4]
    return (first[..., 4:] - low) / (high - low) * (SIDE_HIGH - SIDE_LOW)


class _Side(nn.Module):
    """(batch, K, C, n) -> (batch, K, F) features standardised with the training recordings' mean and
    variance: buffers ``mean`` and ``var`` (K*F, member-major) that :meth:`_Informed.warm_start` sets and
    nothing else moves (the same map in training, evaluation and predict; a checkpoint carries them)."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members
        self.register_buffer("mean", torch.zeros(members * N_SIDE))
        self.register_buffer("var", torch.ones(members * N_SIDE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.members
        mean, var = self.mean.view(k, N_SIDE), self.var.view(k, N_SIDE)
        return (decode_side(x) - mean) / torch.sqrt(var + SIDE_EPS)  # (batch, K, F)


def _blocks(c_in: int, members: int) -> GroupBlocks:
    """PCConvNet's three conv blocks on ``c_in`` input channels per member (as batched matmuls, raympa.models)."""
    layers: list[nn.Module] = []
    for a, b in zip((c_in, *CHANNELS[1:-1]), CHANNELS[1:]):
        layers += [GroupConv1d(a, b, KERNEL, STRIDE, members=members), GroupBatchNorm1d(b, members=members), nn.ReLU()]
    return GroupBlocks(*layers)


def _pool(h: torch.Tensor, lengths: torch.Tensor | None, batch: int, members: int) -> torch.Tensor:
    """(batch, K*16, t') -> (batch, K, 16) masked time mean."""
    valid = None if lengths is None else ConvEncoder.out_len(lengths)
    return masked_time_mean(h, valid).view(batch, members, C.LATENT_DIM)


class _SIEncoder(nn.Module):
    """(batch, K, C, n) -> (batch, K, 16 + F): three channels (performance, reference, difference)
    in one encoder, fused with the standardised alignment features into the 16-d latent; then the
    features."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members
        self.blocks = _blocks(3, members)
        self.side = _Side(members)
        self.fuse = GroupLinear(C.LATENT_DIM + N_SIDE, C.LATENT_DIM, members=members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        p, r = x[:, :, 0], x[:, :, 1]  # (batch, K, n) each
        diff = torch.where((p != 0) & (r != 0), (p - r) * DIFF_SCALE, torch.zeros_like(p))
        h = torch.stack([p, r, diff], dim=2).flatten(1, 2)  # (batch, K*3, n), member-major
        z = _pool(self.blocks(h), lengths, x.shape[0], self.members)  # (batch, K, 16)
        side = self.side(x)  # (batch, K, F)
        return torch.cat([self.fuse(torch.cat([z, side], dim=2)), side], dim=2)  # (batch, K, 16 + F)


class _JointEncoder(nn.Module):
    """(batch, K, C, n) -> (batch, K, 16 + F): a performance and a reference encoder, fused linearly
    with the standardised alignment features into the 16-d latent; then the features."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members
        self.perf = _blocks(1, members)
        self.ref = _blocks(1, members)
        self.side = _Side(members)
        self.fuse = GroupLinear(3 * C.LATENT_DIM + N_SIDE, C.LATENT_DIM, members=members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        b, k = x.shape[0], self.members
        zp = _pool(self.perf(x[:, :, 0].contiguous()), lengths, b, k)  # (batch, K, 16)
        zr = _pool(self.ref(x[:, :, 1].contiguous()), lengths, b, k)  # (batch, K, 16)
        side = self.side(x)  # (batch, K, F)
        return torch.cat([self.fuse(torch.cat([zp, zr, zp - zr, side], dim=2)), side], dim=2)  # (batch, K, 16 + F)


class _WideHead(nn.Module):
    """(batch, K, 16 + F) latent and features -> (batch, K, 1) logit: ContrastiveCNN's
    ``Linear(16, 8) -> Linear(8, 1)`` on the latent plus a direct ``Linear(16 + F, 1)`` on the latent
    and the standardised features (the wide part: a linear model on the features in one layer)."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.deep = nn.Sequential(GroupLinear(C.LATENT_DIM, HEAD_HIDDEN, members=members),
                                  GroupLinear(HEAD_HIDDEN, 1, members=members))
        self.wide = GroupLinear(HEAD_IN, 1, members=members)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.deep(h[..., : C.LATENT_DIM]) + self.wide(h)


class _Informed(nn.Module):
    """Shared API of the models (as raympa.models'): forward, latent, forward_latent; the head reads the latent
    and the features (head_input, predict_from_head_input)."""

    min_frames = MIN_FRAMES
    latent_dim = C.LATENT_DIM
    in_channels = IN_CHANNELS  # performance, aligned reference, calibration, alignment features
    encoder_class: type[nn.Module]

    def __init__(self, *, members: int = 1) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members={members}; need at least 1")
        self.members = members
        self.encoder = self.encoder_class(members)
        self.head = _WideHead(members)
        self.head_scaler = HeadScaler(HEAD_IN, members=members)

    def _input(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        """Check ``x`` and bring it to (batch, K, C, n); True when outputs lose the member axis."""
        k, c = self.members, self.in_channels
        if x.dim() == 3 and x.shape[1] == c:
            squeeze, x = k == 1, x.unsqueeze(1).expand(-1, k, -1, -1)  # shared by every member
        elif x.dim() == 4 and x.shape[1] == k and x.shape[2] == c:
            squeeze = False
        else:
            raise ValueError(f"{type(self).__name__} expects (batch, {c}, n_frames) or (batch, {k}, {c}, n_frames): "
                             f"performance, aligned reference and alignment features; got {tuple(x.shape)} "
                             "(train with a reference: raympa.references.attach gives both)")
        shortest = x.shape[-1] if lengths is None else int(lengths.min())
        if shortest < self.min_frames:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_frames} frames per contour, got {shortest}")
        return x, squeeze

    def warm_start(self, side: np.ndarray | None, y: np.ndarray) -> None:
        """Start every member at the linear model on the training recordings' alignment features.

        The features' standardisation gets their mean and variance (fixed from then on); the wide
        part's feature weights and bias are :func:`fit_wide` on the features so standardised, its
        latent weights 0; the deep head's last layer is 0, so the deep part starts as a residual
        of 0 and the network adds what the contours give to the linear model (ours: trained from
        a random start the networks fell below the linear model on their own features on short
        recordings).

        Args:
            side: (n, F) the training recordings' alignment features (raw units).
            y: (n,) their ratings.
        """
        if side is None or len(side) < 2:
            raise ValueError(f"{type(self).__name__} starts from its training recordings' alignment features; none "
                             "given (train with a reference: raympa.references.attach gives them)")
        side = np.clip(np.asarray(side, np.float64), SIDE_MIN - SIDE_LOW, SIDE_MAX)  # as the model reads them
        y = np.asarray(y, np.float64)
        ok = np.isfinite(y)
        mean, var = side[ok].mean(axis=0), side[ok].var(axis=0, ddof=1)
        z = (side[ok] - mean) / np.sqrt(var + SIDE_EPS)
        w, b = fit_wide(z, y[ok])
        k, standard = self.members, self.encoder.side
        with torch.no_grad():
            standard.mean.copy_(torch.from_numpy(np.tile(mean, k)))
            standard.var.copy_(torch.from_numpy(np.tile(var, k)))
            wide = self.head.wide
            wide.weight.zero_()
            wide.weight[:, C.LATENT_DIM:] = torch.from_numpy(w).to(wide.weight.dtype)
            wide.bias.fill_(b)
            last = self.head.deep[-1]
            last.weight.zero_()
            last.bias.zero_()

    def head_input(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, [K,] 16 + F): the latent, then the standardised features (what the head reads;
        the two-step head stage trains on it with the encoder frozen)."""
        x, squeeze = self._input(x, lengths)
        h = self.encoder(x, lengths)  # (batch, K, 16 + F)
        return h[:, 0] if squeeze else h

    def predict_from_head_input(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, [K,] 16 + F) head input -> (batch, [K]) rating, through ``head_scaler`` first (linear: the
        wide part is a linear model; evaluation and predict clip to [0, 1])."""
        h = self.head_scaler(h)
        return self.head(h.unsqueeze(1))[:, 0, 0] if h.dim() == 2 else self.head(h)[..., 0]

    def latent(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, [K,] 16) latent (the one the contrastive loss shapes; every dimension trainable)."""
        return self.head_input(x, lengths)[..., : C.LATENT_DIM]

    def forward_latent(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction (batch, [K]) and latent (batch, [K,] 16) from one pass."""
        h = self.head_input(x, lengths)  # (batch, [K,] 16 + F)
        return self.predict_from_head_input(h), h[..., : C.LATENT_DIM]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_latent(x, lengths)[0]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SIConvNet(_Informed):
    """Performance, reference and their difference as input channels (after Huang et al.'s SIConvNet)."""

    encoder_class = _SIEncoder


class JointEmbedNet(_Informed):
    """A performance and a reference encoder, rating from the joint latent (after Huang et al.'s JointEmbedNet)."""

    encoder_class = _JointEncoder


# model name -> (class, name of its stage sequence in raympa.stages); the labels live in constants.MODEL_LABELS
INFORMED: dict[str, tuple[type[_Informed], str]] = {
    "si-pcconvnet": (SIConvNet, "mse"),
    "si-contrastive": (SIConvNet, "two-step"),
    "si-contrastive-jl": (SIConvNet, "joint"),
    "joint-embed": (JointEmbedNet, "mse"),
    "joint-embed-contrastive": (JointEmbedNet, "two-step"),
    "joint-embed-jl": (JointEmbedNet, "joint"),
}
MODEL_CLASSES: dict[str, type[_Informed]] = {name: cls for name, (cls, _) in INFORMED.items()}


def needs_reference(model: str) -> bool:
    """True for the models of this module (they cannot run without a reference)."""
    return model in INFORMED


def auto_chunk_frames(lengths: np.ndarray, *, paper: int = C.CHUNK_FRAMES, min_frames: int = MIN_FRAMES) -> int:
    """Training chunk length for recordings of these lengths (frames).

    The paper's 1000 frames where the recordings allow (the shortest tenth at least that long);
    otherwise the 10 % quantile of the lengths (so nine in ten chunks are all signal, not
    padding), never below the model's receptive field.
    """
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return paper
    q = int(np.quantile(lengths, SHORT_CHUNK_QUANTILE))
    return paper if q >= paper else max(min_frames, q)
