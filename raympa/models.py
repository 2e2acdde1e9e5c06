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
"""

from __future__ import annotations

import torch
from torch import nn

from raympa import constants as C

KERNEL = 7  # paper / Pati et al.: kernel size of the three conv blocks
STRIDE = 3  # paper / Pati et al.: stride of the three conv blocks
CHANNELS = (1, 4, 8, 16)  # paper / Pati et al.: channels of the three conv blocks
FINAL_KERNEL = 35  # Pati et al.: PCConvNet's last conv covers the 35 frames left of a 1000 chunk
HEAD_HIDDEN = 8  # DESIGN.md section 2 (original code): Linear(16, 8) -> Linear(8, 1)
assert CHANNELS[-1] == C.LATENT_DIM


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


class ConvEncoder(nn.Module):
    """The three conv blocks shared by both models: (batch, n_frames) -> (batch, 16, frames')."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(CHANNELS[:-1], CHANNELS[1:]):
            layers += [nn.Conv1d(c_in, c_out, KERNEL, STRIDE), nn.BatchNorm1d(c_out), nn.ReLU()]
        self.blocks = nn.Sequential(*layers)

    @staticmethod
    def out_len(n: torch.Tensor | int) -> torch.Tensor | int:
        """Output frames of the encoder for ``n`` input frames."""
        for _ in range(len(CHANNELS) - 1):
            n = _out_len(n, KERNEL, STRIDE)
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.unsqueeze(1))  # (batch, 1, n_frames) -> (batch, 16, frames')


class _Base(nn.Module):
    """Shared API: ``forward(x, lengths=None) -> (batch,)`` and ``latent(x, lengths=None)``."""

    min_frames: int  # shortest input the model accepts, frames

    def __init__(self) -> None:
        super().__init__()
        self.encoder = ConvEncoder()

    def _check(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor | None:
        if x.dim() != 2:
            raise ValueError(f"expected (batch, n_frames) input, got shape {tuple(x.shape)}")
        shortest = x.shape[1] if lengths is None else int(lengths.min())
        if shortest < self.min_frames:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_frames} frames per contour, "
                f"got {shortest}; pad short contours (raympa.dataset pads them to a chunk)"
            )
        return lengths

    def latent(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, 16) time mean after the third conv block (the analysis' latent vector).

        Args:
            x: (batch, n_frames) normalised pitch, zero-padded when ``lengths`` is given.
            lengths: (batch,) int64 true lengths in frames, or None when all rows are full.
        """
        lengths = self._check(x, lengths)
        h = self.encoder(x)  # (batch, 16, frames')
        valid = None if lengths is None else self.encoder.out_len(lengths)
        return masked_time_mean(h, valid)  # (batch, 16)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class PCConvNet(_Base):
    """Pati et al.'s PCConvNet, the paper's baseline (section 3.1.1); regresses the rating."""

    min_frames = 997  # 997 -> 331 -> 109 -> 35 -> 1 output frame

    def __init__(self) -> None:
        super().__init__()
        self.final = nn.Sequential(
            nn.Conv1d(CHANNELS[-1], 1, FINAL_KERNEL, 1), nn.BatchNorm1d(1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, n_frames) -> (batch,) rating (>= 0 after the ReLU; clipped at evaluation)."""
        lengths = self._check(x, lengths)
        h = self.final(self.encoder(x))  # (batch, 1, frames'')
        valid = None
        if lengths is not None:
            valid = _out_len(self.encoder.out_len(lengths), FINAL_KERNEL, 1)
        return masked_time_mean(h, valid)[:, 0]  # (batch,)

    def forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction (batch,) and latent (batch, 16) from one encoder pass."""
        lengths = self._check(x, lengths)
        h = self.encoder(x)  # (batch, 16, frames')
        o = self.final(h)  # (batch, 1, frames'')
        if lengths is None:
            return o.mean(dim=2)[:, 0], h.mean(dim=2)
        v3 = self.encoder.out_len(lengths)
        return masked_time_mean(o, _out_len(v3, FINAL_KERNEL, 1))[:, 0], masked_time_mean(h, v3)


class ContrastiveCNN(_Base):
    """Seshadri & Lerch's ContrastiveCNN (section 3.1.2): encoder -> 16-d embedding -> head."""

    min_frames = 79  # 79 -> 25 -> 7 -> 1 encoder frame

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(C.LATENT_DIM, HEAD_HIDDEN), nn.Linear(HEAD_HIDDEN, 1)
        )

    def predict_from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, 16) embedding -> (batch,) rating in (0, 1)."""
        return torch.sigmoid(self.head(z))[:, 0]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, n_frames) -> (batch,) rating in (0, 1)."""
        return self.predict_from_latent(self.latent(x, lengths))

    def forward_latent(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction (batch,) and latent (batch, 16) from one encoder pass."""
        z = self.latent(x, lengths)
        return self.predict_from_latent(z), z


def build_model(name: str) -> PCConvNet | ContrastiveCNN:
    """Model for a ``TrainConfig.model`` value: pcconvnet -> PCConvNet, contrastive* -> ContrastiveCNN."""
    if name == "pcconvnet":
        return PCConvNet()
    if name in ("contrastive", "contrastive-jl"):
        return ContrastiveCNN()
    raise ValueError(f"unknown model {name!r}; choose pcconvnet, contrastive or contrastive-jl")
