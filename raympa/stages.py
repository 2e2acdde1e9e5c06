"""The training stages: what each trains, on which loss, for how long, at which rate.

A model is a sequence of stages (:data:`STAGES`, one entry per model of
``raympa.constants.MODELS``); :class:`raympa.train.Trainer` runs them in order. Adding a stage
is one :class:`Stage` row: its epochs and learning-rate fields of ``TrainConfig``, the model part
whose parameters train, its loss (a kind of :func:`raympa.losses.stage_loss`, the same in
training and validation), and whether the encoder is frozen.
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
    lr_field: str  # TrainConfig field with its learning rate
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


REGRESSION = Stage("regression", "epochs", "lr", trains="all", loss="mse")
ENCODER = Stage("encoder", "encoder_epochs", "encoder_lr", trains="encoder", loss="contrastive")
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
