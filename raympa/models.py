"""PCConvNet (Pati et al. 2018) and ContrastiveCNN (Seshadri & Lerch 2021, section 3.1).

Both models share the same fully convolutional encoder: three blocks of
``Conv1d(kernel 7, stride 3, no padding) -> BatchNorm1d -> ReLU`` with 1 -> 4 -> 8 -> 16 channels
(paper section 3.1.1; Pati et al.'s PCConvNet, "mode 0"). Every model exposes the same latent
vector for the analysis: ``latent(x)`` = the (batch, 16) mean over time of the third block's
output. For ContrastiveCNN that is the embedding the contrastive loss acts on; for PCConvNet it is
the same point of the network (before its final convolution), as the paper's t-SNE of the
baseline.

* :class:`PCConvNet` (baseline, about 1.8k parameters): encoder, then
  ``Conv1d(16 -> 1, kernel 35) -> BatchNorm1d -> ReLU`` and the mean over time. Minimum input
  997 frames (a 1000-frame chunk gives 332 -> 109 -> 35 -> 1 frames).
* :class:`ContrastiveCNN` (about 1.4k parameters): encoder, mean over time -> 16-d embedding,
  head ``Linear(16, 8) -> Linear(8, 1)`` (no activation between, as the original code) -> sigmoid.
  Minimum input 79 frames (the encoder's receptive field).

Inputs are normalised pitch contours, (batch, n_frames) float32. Because the networks are fully
convolutional, a batch of contours of different lengths can be zero-padded to a common length
and given ``lengths``: the time means are then taken over each contour's own valid output
frames, which gives exactly the result of running each contour alone (in eval mode).

Members. Every model is built with ``members=K`` (default 1): K independent copies of the
network stacked into one, so K training runs take one step together (:mod:`raympa.members`).
Its layers are :class:`GroupConv1d` (``Conv1d(K*c_in, K*c_out, groups=K)``),
:class:`GroupBatchNorm1d` (``BatchNorm1d(K*c)``: per-member statistics, per-member batch
counter) and :class:`GroupLinear`; at K = 1 they are the plain torch layers, with the same
initialisation. The conv blocks run through :class:`GroupBlocks`: the same modules and state dict
as ``nn.Sequential``, computed as batched matrix products over unfolded windows in a member-major
layout (on a CPU faster than torch's grouped convolution and BatchNorm at K = 1 and more so at K > 1). Shapes with K members: input (batch, K, n_frames), or (batch, n_frames) shared by
every member; prediction (batch, K); latent (batch, K, 16). With K = 1 and a 2-d input the
outputs are (batch,) and (batch, 16), as a plain model. Every tensor of the state dict holds the
members back to back along its first axis, so ``t.view(K, -1)[k]`` is member k's
(:func:`raympa.members.member_state`).

Adding a model: a subclass of :class:`_Base` built from these layers, taking ``members``, with
``encoder`` (and ``head``, ``head_scaler``, ``head_input`` and ``predict_from_head_input`` when a stage
trains the head alone on the frozen encoder) as attributes, registered in
:data:`MODEL_CLASSES` under a name of :data:`raympa.constants.MODELS`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from raympa import constants as C

KERNEL = 7  # paper / Pati et al.: kernel size of the three conv blocks
STRIDE = 3  # paper / Pati et al.: stride of the three conv blocks
CHANNELS = (1, 4, 8, 16)  # paper / Pati et al.: channels of the three conv blocks
FINAL_KERNEL = 35  # Pati et al.: PCConvNet's last conv covers the 35 frames left of a 1000 chunk
HEAD_HIDDEN = 8  # original code (pseshadri9/contrastive-music-performance-assessment): Linear(16, 8) -> Linear(8, 1)
assert CHANNELS[-1] == C.LATENT_DIM
MATMUL_MAX_FRAMES = 4  # ours: a convolution with at most this many output frames always runs as a matmul
UNFOLD_MAX_RATIO = 4  # ours: else as a matmul only when the unfolded windows are at most 4x its input (kernel/stride)


def _out_len(n: torch.Tensor | int, kernel: int, stride: int) -> torch.Tensor | int:
    """Output frames of an unpadded Conv1d for ``n`` input frames (may be <= 0: too short)."""
    return (n - kernel) // stride + 1


def masked_time_mean(h: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last (time) axis, counting only the first ``valid[b]`` frames of row b.

    Args:
        h: (batch, channels, time) feature map.
        valid: (batch,) int64 valid output frames per row, or None for the plain mean.

    Returns:
        (batch, channels).
    """
    if valid is None:
        return h.mean(dim=2)
    t = torch.arange(h.shape[2], device=h.device)  # (time,)
    mask = (t[None, :] < valid[:, None]).to(h.dtype)  # (batch, time)
    return (h * mask[:, None, :]).sum(dim=2) / valid.clamp(min=1).to(h.dtype)[:, None]


class HeadScaler(nn.Module):
    """``(h - shift) / scale`` per member and dimension of what a head reads: (batch, [K,] d) -> the same.

    The identity (shift 0, scale 1) unless the two-step head stage sets it (``TrainConfig.head_norm``
    ``"standardize"``, ours): the mean and standard deviation of the training recordings' head inputs,
    computed once when the stage starts. They are buffers, so a checkpoint carries them and prediction
    computes what validation did. A state dict without them (written before they existed) loads as
    the identity, which is what that model computed.
    """

    def __init__(self, dim: int, *, members: int = 1) -> None:
        super().__init__()
        self.members, self.dim = members, dim
        self.register_buffer("shift", torch.zeros(members * dim))  # (K*d,) member-major
        self.register_buffer("scale", torch.ones(members * dim))  # (K*d,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        shape = (self.members, self.dim) if h.dim() == 3 else (self.dim,)
        return (h - self.shift.view(shape)) / self.scale.view(shape)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        missing = [n for n in ("shift", "scale") if prefix + n not in state_dict]
        super()._load_from_state_dict(state_dict, prefix, *args)
        missing_keys = args[2]  # (local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        for n in missing:
            if prefix + n in missing_keys:
                missing_keys.remove(prefix + n)
            getattr(self, n).fill_(0.0 if n == "shift" else 1.0)


def head_rating(head: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A stacked head on (batch, [K,] d) inputs -> (batch, [K]) rating in (0, 1) (sigmoid of its output)."""
    if h.dim() == 2:
        return torch.sigmoid(head(h.unsqueeze(1)))[:, 0, 0]
    return torch.sigmoid(head(h))[..., 0]


class GroupConv1d(nn.Conv1d):
    """K members' ``Conv1d(c_in, c_out)`` as one grouped convolution: (batch, K*c_in, t) -> (batch, K*c_out, t')."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, members: int = 1) -> None:
        super().__init__(members * c_in, members * c_out, kernel, stride, groups=members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, (kernel,), (stride,) = self.groups, self.kernel_size, self.stride
        frames = (x.shape[-1] - kernel) // stride + 1
        if k == 1 or frames > MATMUL_MAX_FRAMES:
            return super().forward(x)
        # few output frames (PCConvNet's last layer on a training chunk): one batched matrix product,
        # faster than the grouped convolution kernel on a CPU
        b, c_in, c_out = x.shape[0], self.in_channels // k, self.out_channels // k
        if frames == 1:  # the kernel covers the first frames: a view, no unfold
            u = x[..., :kernel].reshape(b, k, 1, c_in * kernel)
        else:
            u = x.reshape(b, k, c_in, -1).unfold(3, kernel, stride)  # (batch, K, c_in, frames, kernel)
            u = u.permute(0, 1, 3, 2, 4).reshape(b, k, frames, c_in * kernel)
        y = torch.einsum("bktc,koc->bkot", u, self.weight.view(k, c_out, c_in * kernel))  # (batch, K, c_out, frames)
        return (y + self.bias.view(1, k, c_out, 1)).reshape(b, k * c_out, frames)


class GroupBatchNorm1d(nn.BatchNorm1d):
    """K members' ``BatchNorm1d(c)``: statistics per member and channel, one batch counter per member."""

    def __init__(self, c: int, *, members: int = 1) -> None:
        super().__init__(members * c)
        if members > 1:
            self.num_batches_tracked = torch.zeros(members, dtype=torch.long)  # (K,)


class GroupLinear(nn.Linear):
    """K members' ``Linear(c_in, c_out)``: (batch, K, c_in) -> (batch, K, c_out)."""

    def __init__(self, c_in: int, c_out: int, *, members: int = 1) -> None:
        super().__init__(c_in, members * c_out)
        self.members, self.c_out = members, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.members == 1:
            return F.linear(x, self.weight, self.bias)  # (batch, 1, c_out)
        k = self.members
        w = self.weight.view(k, self.c_out, -1).transpose(1, 2)  # (K, c_in, c_out)
        out = torch.baddbmm(self.bias.view(k, 1, self.c_out), x.transpose(0, 1), w)  # (K, batch, c_out)
        return out.transpose(0, 1)  # (batch, K, c_out)


def _unfold_windows(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """(K, c, batch, t) any strides -> (K or 1, c*kernel, batch*t') windows (im2col); one copy when the
    member axis has stride 0 (an input shared by every member)."""
    k, c, b, t = x.shape
    frames = (t - kernel) // stride + 1
    u = (x[:1] if k > 1 and x.stride(0) == 0 else x).unfold(3, kernel, stride)  # (K or 1, c, batch, t', kernel)
    return u.permute(0, 1, 4, 2, 3).reshape(u.shape[0], c * kernel, b * frames)


def _conv_windows(cols: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> torch.Tensor:
    """K members' convolution of unfolded windows (K or 1, c_in*kernel, n) -> (K, c_out, n)."""
    w = weight.view(k, -1, cols.shape[1])  # (K, c_out, c_in*kernel)
    if cols.shape[0] == 1 and k > 1:  # shared windows: (K*c_out, c_in*kernel) @ (c_in*kernel, n)
        return torch.addmm(bias.view(-1, 1), w.reshape(-1, cols.shape[1]), cols[0]).view(k, w.shape[1], -1)
    return torch.baddbmm(bias.view(k, -1, 1), w, cols)


class _ConvBatchNormReLU(torch.autograd.Function):
    """One training-mode block ``ReLU(BatchNorm(Conv1d(x)))`` of K members in the member-major layout.

    x (K, c_in, batch, t) (any strides) -> (K, c_out, batch*t') contiguous, with the batch mean and
    biased variance of each channel (K*c_out,) for the running statistics. The convolution is one
    batched matrix product over unfolded windows (im2col); its backward two more and a scatter-add
    of the windows' gradient onto the frames (one strided add per tap); BatchNorm's backward is
    torch's own kernel on the contiguous (1, K*c_out, batch*t') view. On a CPU it is faster than
    torch's grouped convolution and BatchNorm, most of all backward (a whole training step of five
    members 1.2x: benchmarks/results/blocks.md).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor,
                beta: torch.Tensor, stride: int, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = x.shape[0]
        cols = _unfold_windows(x, weight.shape[2], stride)  # (K or 1, c_in*kernel, n)
        z = _conv_windows(cols, weight, bias, k)  # (K, c_out, n)
        mean = z.mean(dim=2, keepdim=True)  # (K, c_out, 1)
        zc = z - mean
        var = (zc * zc).mean(dim=2, keepdim=True)  # biased, as BatchNorm normalises
        invstd = torch.rsqrt(var + eps)
        y = (zc * (invstd * gamma.view(k, -1, 1)) + beta.view(k, -1, 1)).relu_()  # (K, c_out, n)
        ctx.save_for_backward(cols, weight, gamma, zc, invstd, y)
        ctx.geometry, ctx.eps = (x.shape, stride), eps
        ctx.mark_non_differentiable(mean, var)
        return y, mean.view(-1), var.view(-1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        cols, weight, gamma, zc, invstd, y = ctx.saved_tensors
        (k, c_in, b, t), stride = ctx.geometry
        c, n = zc.shape[0] * zc.shape[1], zc.shape[2]
        g = torch.ops.aten.threshold_backward(grad.contiguous(), y, 0)  # (K, c_out, n)
        need = ctx.needs_input_grad
        gz, ggamma, gbeta = torch.ops.aten.native_batch_norm_backward(
            g.view(1, c, n), zc.view(1, c, n), gamma, None, None, zc.new_zeros(c), invstd.view(c), True, ctx.eps,
            [True, need[3], need[4]])
        gz = gz.view_as(zc)  # (K, c_out, n)
        gw = torch.matmul(gz, cols.transpose(1, 2)).view_as(weight) if need[1] else None
        gb = gz.sum(dim=2).view(-1) if need[2] else None
        gx = None
        if need[0]:
            kernel = weight.shape[2]
            frames = (t - kernel) // stride + 1
            gcols = torch.matmul(weight.view(k, -1, c_in * kernel).transpose(1, 2), gz)  # (K, c_in*kernel, n)
            g5 = gcols.view(k, c_in, kernel, b, frames)
            gx = gz.new_zeros(k, c_in, b, t)
            for j in range(kernel):  # tap j of window f lands on frame f*stride + j
                gx[..., j : j + stride * (frames - 1) + 1 : stride].add_(g5[:, :, j])
        return gx, gw, gb, ggamma, gbeta, None, None


class GroupBlocks(nn.Sequential):
    """``GroupConv1d -> GroupBatchNorm1d -> ReLU`` blocks of K members: (batch, K*c_in, t) -> (batch, K*c_out, t').

    The same modules and state dict as ``nn.Sequential`` of them, and the same values up to float
    rounding, but each block runs in the member-major layout (K, c, batch, t): in training as one
    :class:`_ConvBatchNormReLU`, in eval mode as a batched matmul and an affine map. A block whose
    unfolded windows would exceed ``UNFOLD_MAX_RATIO`` times its input (a long kernel on many
    frames, e.g. PCConvNet's last layer on a whole recording) runs as :func:`_conv_taps` in eval
    mode with several members, else as its modules.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self[0].groups
        xm = x.unflatten(1, (k, -1)).permute(1, 2, 0, 3)  # (K, c_in, batch, t), a view
        return self.forward_major(xm).permute(2, 0, 1, 3).flatten(1, 2)  # (batch, K*c_out, t'), a view

    def forward_major(self, x: torch.Tensor) -> torch.Tensor:
        """(K, c_in, batch, t) any strides -> (K, c_out, batch, t')."""
        mods = list(self)
        for conv, bn, act in zip(mods[0::3], mods[1::3], mods[2::3]):
            x = _block(conv, bn, act, x)
        return x


def _conv_taps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, frames: int) -> torch.Tensor:
    """K members' convolution without unfolding: (K, c_in, batch, t) -> (K, c_out, batch, t').

    Every tap's weights times every frame in one batched matmul, (K, kernel*c_out, batch*t), then
    the sum of the taps shifted onto the output frames: memory ``kernel*c_out / c_in`` times the
    input (not ``kernel`` times, as unfolded windows), for long kernels.
    """
    k, c_in, b, t = x.shape
    c_out, kernel = weight.shape[0] // k, weight.shape[2]
    w = weight.view(k, c_out, c_in, kernel).permute(0, 3, 1, 2).reshape(k, kernel * c_out, c_in)
    p = torch.matmul(w, x.reshape(k, c_in, b * t)).view(k, kernel, c_out, b, t)
    span = stride * (frames - 1) + 1
    y = p[:, 0, :, :, :span:stride] + bias.view(k, c_out, 1, 1)
    for j in range(1, kernel):
        y += p[:, j, :, :, j : j + span : stride]
    return y  # (K, c_out, batch, t')


def _block(conv: nn.Conv1d, bn: nn.BatchNorm1d, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One conv block of :class:`GroupBlocks` on (K, c_in, batch, t) -> (K, c_out, batch, t')."""
    k, _, b, t = x.shape
    (kernel,), (stride,) = conv.kernel_size, conv.stride
    frames = (t - kernel) // stride + 1
    fast = kernel <= UNFOLD_MAX_RATIO * stride or frames <= MATMUL_MAX_FRAMES
    standard = (isinstance(act, nn.ReLU) and conv.padding == (0,) and conv.dilation == (1,) and frames >= 1
                and bn.affine and bn.track_running_stats)
    if standard and not bn.training and (fast or k > 1):  # running statistics: convolution, affine map, ReLU
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (K*c_out,)
        if fast:
            z = _conv_windows(_unfold_windows(x, kernel, stride), conv.weight, conv.bias, k).view(k, -1, b, frames)
        else:  # a long kernel on many frames (one member: torch's convolution is faster still)
            z = _conv_taps(x, conv.weight, conv.bias, stride, frames)
        shift = bn.bias - bn.running_mean * scale
        return torch.relu_(z * scale.view(k, -1, 1, 1) + shift.view(k, -1, 1, 1))  # (K, c_out, batch, t')
    if not (standard and fast and bn.momentum is not None and b * frames > 1):
        h = act(bn(conv(x.permute(2, 0, 1, 3).flatten(1, 2))))  # (batch, K*c_out, t'): torch's modules
        return h.unflatten(1, (k, -1)).permute(1, 2, 0, 3)
    y, mean, var = _ConvBatchNormReLU.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, stride, bn.eps)
    with torch.no_grad():  # as nn.BatchNorm1d: momentum update, unbiased variance in the running estimate
        n, m = b * frames, bn.momentum
        bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
        bn.running_var.mul_(1 - m).add_(var * (n / max(n - 1, 1)), alpha=m)
        bn.num_batches_tracked.add_(1)
    return y.view(k, -1, b, frames)


class ConvEncoder(nn.Module):
    """The three conv blocks shared by both models: (batch, K, n_frames) -> (batch, K*16, frames')."""

    def __init__(self, *, members: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(CHANNELS[:-1], CHANNELS[1:]):
            layers += [GroupConv1d(c_in, c_out, KERNEL, STRIDE, members=members),
                       GroupBatchNorm1d(c_out, members=members), nn.ReLU()]
        self.blocks = GroupBlocks(*layers)

    @staticmethod
    def out_len(n: torch.Tensor | int) -> torch.Tensor | int:
        """Output frames of the encoder for ``n`` input frames."""
        for _ in range(len(CHANNELS) - 1):
            n = _out_len(n, KERNEL, STRIDE)
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)  # (batch, K, n_frames) -> (batch, K*16, frames')


class _Base(nn.Module):
    """Shared API: ``forward(x, lengths=None)``, ``latent(x, lengths=None)``, ``forward_latent``."""

    min_frames: int  # shortest input the model accepts, frames
    latent_dim: int = C.LATENT_DIM

    def __init__(self, *, members: int = 1) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members={members}; need at least 1")
        self.members = members
        self.encoder = ConvEncoder(members=members)

    def _input(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        """Check ``x`` and bring it to (batch, K, n_frames); True when outputs lose the member axis."""
        if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[1] != self.members):
            raise ValueError(f"expected (batch, n_frames) or (batch, {self.members}, n_frames) input, "
                             f"got shape {tuple(x.shape)}")
        shortest = x.shape[-1] if lengths is None else int(lengths.min())
        if shortest < self.min_frames:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_frames} frames per contour, "
                f"got {shortest}; pad short contours (raympa.dataset pads them to a chunk)"
            )
        squeeze = x.dim() == 2 and self.members == 1
        if x.dim() == 2:
            x = x.unsqueeze(1).expand(-1, self.members, -1)  # (batch, K, n_frames), shared input
        return x, squeeze

    def _latent(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder map (batch, K*16, frames') and latent (batch, K, 16) of a (batch, K, n_frames) input."""
        h = self.encoder(x)  # (batch, K*16, frames')
        valid = None if lengths is None else self.encoder.out_len(lengths)
        return h, masked_time_mean(h, valid).view(x.shape[0], self.members, self.latent_dim)

    def latent(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, [K,] 16) time mean after the third conv block (the analysis' latent vector).

        Args:
            x: (batch, n_frames) or (batch, K, n_frames) normalised pitch, zero-padded when
                ``lengths`` is given.
            lengths: (batch,) int64 true lengths in frames, or None when all rows are full.
        """
        x, squeeze = self._input(x, lengths)
        _, z = self._latent(x, lengths)
        return z[:, 0] if squeeze else z

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, [K,] n_frames) -> (batch, [K]) rating."""
        return self.forward_latent(x, lengths)[0]

    def forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction (batch, [K]) and latent (batch, [K,] 16) from one encoder pass."""
        x, squeeze = self._input(x, lengths)
        pred, z = self._forward_latent(x, lengths)  # (batch, K), (batch, K, 16)
        return (pred[:, 0], z[:, 0]) if squeeze else (pred, z)

    def _forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class PCConvNet(_Base):
    """Pati et al.'s PCConvNet, the paper's baseline (section 3.1.1); regresses the rating."""

    min_frames = 997  # 997 -> 331 -> 109 -> 35 -> 1 output frame

    def __init__(self, *, members: int = 1) -> None:
        super().__init__(members=members)
        self.final = GroupBlocks(
            GroupConv1d(CHANNELS[-1], 1, FINAL_KERNEL, 1, members=members),
            GroupBatchNorm1d(1, members=members), nn.ReLU()
        )

    def _forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, z = self._latent(x, lengths)  # (batch, K*16, frames'), (batch, K, 16)
        o = self.final(h)  # (batch, K, frames'')
        valid = None if lengths is None else _out_len(self.encoder.out_len(lengths), FINAL_KERNEL, 1)
        return masked_time_mean(o, valid), z  # (batch, K): >= 0 after the ReLU; clipped at evaluation


class ContrastiveCNN(_Base):
    """Seshadri & Lerch's ContrastiveCNN (section 3.1.2): encoder -> 16-d embedding -> head."""

    min_frames = 79  # 79 -> 25 -> 7 -> 1 encoder frame

    def __init__(self, *, members: int = 1) -> None:
        super().__init__(members=members)
        self.head = nn.Sequential(
            GroupLinear(C.LATENT_DIM, HEAD_HIDDEN, members=members),
            GroupLinear(HEAD_HIDDEN, 1, members=members),
        )
        self.head_scaler = HeadScaler(C.LATENT_DIM, members=members)

    def head_input(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, [K,] 16) what the head reads: the embedding (the two-step head stage trains on it)."""
        return self.latent(x, lengths)

    def predict_from_head_input(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, [K,] 16) embedding -> (batch, [K]) rating in (0, 1) (through ``head_scaler`` first)."""
        return head_rating(self.head, self.head_scaler(z))

    def _forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, z = self._latent(x, lengths)  # (batch, K, 16)
        return self.predict_from_head_input(z), z


# model name -> class (pcconvnet: Pati et al. 2018; the contrastive two: Seshadri & Lerch 2021)
MODEL_CLASSES: dict[str, type[_Base]] = {
    "pcconvnet": PCConvNet,
    "contrastive": ContrastiveCNN,
    "contrastive-jl": ContrastiveCNN,
}
assert tuple(MODEL_CLASSES) == C.PAPER_MODELS, "MODEL_CLASSES must cover raympa.constants.PAPER_MODELS"


def build_model(name: str, *, members: int = 1) -> _Base:
    """Model for a ``TrainConfig.model`` value (one of ``constants.MODELS``), with K ``members``.

    The reference-informed models live in :mod:`raympa.informed` (imported here, since it builds
    on this module's layers).
    """
    from raympa.informed import MODEL_CLASSES as INFORMED_CLASSES

    classes = {**MODEL_CLASSES, **INFORMED_CLASSES}
    if name not in classes:
        raise ValueError(f"unknown model {name!r}; choose one of {list(C.MODELS)}")
    return classes[name](members=members)
