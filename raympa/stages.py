"""The training stages: what each trains, on which loss, for how long, at which rate.

A model is a sequence of stages (:data:`STAGES`, one entry per model of
``raympa.constants.MODELS``); :class:`raympa.train.Trainer` runs them in order. Adding a stage
is one :class:`Stage` row: its epochs and learning-rate fields of ``TrainConfig``, the model part
whose parameters train, its loss (a kind of :func:`raympa.losses.stage_loss`, the same in
training and validation), and whether the encoder is frozen. A stage with a frozen encoder may
standardise what the head reads (:func:`standardize_head_input`, ``TrainConfig.head_norm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raympa.constants import MODELS

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Stage:
    """One training stage of a model."""

    name: str
    epochs_field: str  # TrainConfig field with the stage's maximum epochs
    lr_field: str  # TrainConfig field or property with its learning rate
    trains: str  # the model part whose parameters train: "all", "encoder" or "head"
    loss: str  # raympa.losses.LOSS_KINDS: "mse", "contrastive" or "joint"
    frozen_encoder: bool = False  # encoder without gradients and in eval mode (BatchNorm statistics fixed)

    @property
    def pairs(self) -> bool:
        """The loss needs pairs within each batch (a contrastive term)."""
        return self.loss != "mse"

    @property
    def predicts(self) -> bool:
        """The model's prediction is trained (validation R² is meaningful)."""
        return self.loss != "contrastive"

    def begin(self, model: Any, train: Any, cfg: Any) -> None:
        """What the stage sets up before its first epoch: a frozen-encoder stage of a run whose ``cfg.head_norm``
        standardises (``cfg.standardizes_head``) sets the head's input statistics from ``train``
        (:func:`standardize_head_input`)."""
        if self.frozen_encoder and cfg.standardizes_head:
            standardize_head_input(model, train, pitch_norm=cfg.pitch_norm, min_frames=cfg.chunk_frames)

    def forward(self, model: Any, x: "torch.Tensor") -> tuple["torch.Tensor | None", "torch.Tensor | None"]:
        """What the loss needs of the model on a training batch: prediction and/or latent."""
        import torch

        if self.frozen_encoder:  # what the head reads: the latent (reference-informed models: and the features)
            with torch.no_grad():
                h = model.head_input(x)  # (batch, [K,] 16[ + F]), frozen encoder
            return model.predict_from_head_input(h), None
        if self.loss == "mse":
            return model(x), None
        if self.loss == "contrastive":
            return None, model.latent(x)
        return model.forward_latent(x)


HEAD_SD_FLOOR = 1e-6  # ours: a head-input dimension with a smaller sd over the training set is only centred


class _HeadInputs:
    """A model as :func:`raympa.evaluate.forward_full_length` sees it, with its head input as the "latent"."""

    def __init__(self, model: Any) -> None:
        self.model, self.members, self.min_frames = model, model.members, model.min_frames
        self.latent_dim = model.head_scaler.dim

    def eval(self) -> "_HeadInputs":
        self.model.eval()
        return self

    def forward_latent(self, x: "torch.Tensor", lengths: "torch.Tensor | None" = None) -> tuple[Any, "torch.Tensor"]:
        h = self.model.head_input(x, lengths)  # (batch, [K,] d)
        return h[..., 0], h


def standardize_head_input(model: Any, split: Any, *, pitch_norm: str, min_frames: int) -> None:
    """Set each member's ``model.head_scaler`` to the mean and sd of its head inputs over ``split``'s whole
    recordings (a :class:`raympa.dataset.DeviceSplit`; encoder in eval mode, as the head stage freezes it);
    a dimension with sd below :data:`HEAD_SD_FLOOR` keeps scale 1. Ours: ``TrainConfig.head_norm``."""
    import torch

    from raympa.evaluate import forward_full_length

    _, h = forward_full_length(_HeadInputs(model), split.midi, split.begin, split.lengths, pitch_norm=pitch_norm,
                               min_frames=min_frames, reference=split.reference)  # (recordings, [K,] d)
    h = h.reshape(h.shape[0], model.members, -1).double()  # (recordings, K, d)
    mean, sd = h.mean(dim=0), h.std(dim=0, unbiased=False)  # (K, d)
    with torch.no_grad():
        model.head_scaler.shift.copy_(mean.reshape(-1))
        model.head_scaler.scale.copy_(torch.where(sd > HEAD_SD_FLOOR, sd, torch.ones_like(sd)).reshape(-1))


REGRESSION = Stage("regression", "epochs", "lr", trains="all", loss="mse")
ENCODER = Stage("encoder", "encoder_epochs", "encoder_rate", trains="encoder", loss="contrastive")
HEAD = Stage("head", "epochs", "lr", trains="head", loss="mse", frozen_encoder=True)
JOINT = Stage("joint", "epochs", "lr", trains="all", loss="joint")

# model -> its stages, in order
STAGES: dict[str, tuple[Stage, ...]] = {
    "pcconvnet": (REGRESSION,),
    "contrastive": (ENCODER, HEAD),
    "contrastive-jl": (JOINT,),
    # reference-informed (raympa.informed): the same three stage sequences
    "si-pcconvnet": (REGRESSION,),
    "si-contrastive": (ENCODER, HEAD),
    "si-contrastive-jl": (JOINT,),
    "joint-embed": (REGRESSION,),
    "joint-embed-contrastive": (ENCODER, HEAD),
    "joint-embed-jl": (JOINT,),
}
assert tuple(STAGES) == MODELS, "STAGES must cover raympa.constants.MODELS"
