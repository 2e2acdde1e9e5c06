"""Frozen configuration dataclasses.

Each default says where it comes from: "paper" = Seshadri & Lerch 2021 (section given);
"code" = the authors' original repository (pseshadri9/contrastive-music-performance-assessment);
"ours" = this project's choice where neither states a value. Where paper and code disagree the
default is the paper's and the code's choice is a value of the same field (docs/divergences.md
lists every such case).

Ray Tune's flat ``param_space`` dict is turned into a :class:`TrainConfig` in exactly one place,
:meth:`TrainConfig.from_dict`, which rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from raympa import constants as C

ModelName = Literal["pcconvnet", "contrastive", "contrastive-jl", "si-pcconvnet", "si-contrastive", "si-contrastive-jl",
                    "joint-embed", "joint-embed-contrastive", "joint-embed-jl"]  # for type checkers; the names are C.MODELS
Reference = Literal["none", "table", "peers"]
Criterion = Literal["musicality", "note_accuracy", "rhythm_accuracy"]
ContrastiveTerm = Literal["weighted", "rnc"]
Pairing = Literal["halves", "all"]
Chunking = Literal["random", "fixed", "code"]
PitchNorm = Literal["midi127", "midi36_72"]
Backend = Literal["fast", "librosa"]
HeadNorm = Literal["auto", "standardize", "none"]
PAPER_ENCODER_LR = 0.1  # paper (sec. 4.2): the two-step encoder's learning rate (original code: 0.005)
# ours: the reference-informed two-step encoder's; at 0.1 its contrastive loss diverges (the fused latent is a
# linear layer on the time means and the standardised alignment features, no BatchNorm after it), at 0.01 it
# decreases (docs/references.md)
INFORMED_ENCODER_LR = 0.01
assert get_args(ModelName) == C.MODELS, "ModelName must list raympa.constants.MODELS"
assert get_args(Reference) == C.REFERENCE_MODES, "Reference must list raympa.constants.REFERENCE_MODES"


@dataclass(frozen=True)
class ExtractConfig:
    """Pitch-contour extraction parameters (they are part of the cache key)."""

    sample_rate: int = C.SAMPLE_RATE  # Hz, paper
    frame_length: int = C.FRAME_LENGTH  # samples, paper
    hop_length: int = C.HOP_LENGTH  # samples, paper
    fmin: float = C.FMIN  # Hz, ours (covers alto sax, clarinet, flute)
    fmax: float = C.FMAX  # Hz, ours
    resolution: float = 0.1  # semitones per pYIN pitch bin, librosa's default
    backend: Backend = "fast"  # "fast" = raympa.pitch.pyin; "librosa" = librosa.pyin reference

    def key(self) -> dict[str, Any]:
        """The parameters as a plain dict (stable order), for cache keys and metadata."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs besides the data.

    Field names are a contract shared by ``raympa train``, the Tune trainable and the report.
    """

    # --- what to train ---
    model: ModelName = "pcconvnet"  # paper: the baseline (sec. 3.1.1)
    criterion: Criterion = "note_accuracy"  # ours (the paper trains each of its three criteria)
    seed: int = 0  # paper (sec. 4.2): seeds 0-4; code: torch.manual_seed(1)
    # --- contrastive term ---
    contrastive: ContrastiveTerm = "weighted"  # paper (Eq. 2-3): weighted contrastive; "rnc" = Rank-N-Contrast
    n_bins: int = 5  # paper (sec. 3.2, its example) and code (num_labels = 5): C = 5 rating bins
    margin: float = 0.5  # code: s = 0.5 (the paper names s but gives no value)
    rnc_temperature: float = 2.0  # Zha et al. 2023 default tau = 2
    jl_lambda: float = 1.0  # paper (Eq. 1) L = L_MSE + L_C, i.e. 1; a weight other than 1 is ours
    pairing: Pairing = "halves"  # code: a shuffled batch split in halves, paired element-wise; "all" = all pairs
    # --- input ---
    chunk_frames: int = C.CHUNK_FRAMES  # paper (sec. 4.1.1): 1000-frame chunks ("random" and "fixed")
    # paper (sec. 4.1.1): random chunks; "fixed" = windows of chunk_frames at chunk_hop (ours: one
    # window set); "code" = the original code's three window sets mixed, 1000/500, 1500/500 and
    # 2000/1000 frames/hop (raympa.sampling.CODE_WINDOWS; chunk_frames and chunk_hop then unused)
    chunking: Chunking = "random"
    chunk_hop: int = 500  # frames, code: the hop of its 1000-frame windows ("fixed" only)
    pitch_norm: PitchNorm = "midi127"  # paper (sec. 3.1.4): MIDI/127; "midi36_72" = code's (MIDI-36)/72
    pitch_shift: float = 0.0  # semitones, code: +-2 random shift on voiced frames; 0 = off (paper: none)
    # ours: the reference a reference-informed model reads (raympa.references): "table" = each row's
    # reference_path, "peers" = the top-rated training recordings of the same piece_id, "none" = the paper's
    reference: Reference = "none"
    reference_peers: int = 3  # ours: training peers merged into one reference ("peers")
    chunks_per_recording: int = 1  # paper (sec. 4.1.1, implied): one random chunk per recording per epoch
    # ours: an epoch repeats its pass (chunks per recording, or the windows) until it has at least
    # this many SGD steps (raympa.sampling.epoch_batches); 0 = off, the paper's epoch. 64 is about
    # one pass over the paper's middle-school training set at batch 32 (0.8 x 2610 / 32 = 65); the
    # original code's epoch is 120 steps at any data size
    min_steps_per_epoch: int = 64
    # --- optimisation ---
    batch_size: int = 32  # ours (the paper states none; the code cuts each window set in 10 batches)
    # paper (sec. 4.2): joint and head learning rate; PCConvNet's is in neither (ours: the same)
    lr: float = 0.005
    # two-step encoder learning rate; 0 = auto: the paper's 0.1 (sec. 4.2; code: 0.005) for the paper's model,
    # INFORMED_ENCODER_LR for the reference-informed ones (``encoder_rate`` resolves it)
    encoder_lr: float = 0.0
    # paper (sec. 4.2) and code: joint and head epochs; PCConvNet's is in neither (ours: the same)
    epochs: int = 300
    encoder_epochs: int = 150  # paper (sec. 4.2) and code: two-step encoder epochs
    patience: int = 75  # paper (sec. 4.2): early stopping (code: 100 regression, 250 encoder)
    # a new best validation loss must be below the best by more than this fraction of it (relative; as the
    # min_delta of Keras' EarlyStopping, which is absolute); 0 = any decrease (paper and code)
    min_delta: float = 0.0
    # ours: "standardize" = the two-step head stage standardises what the head reads with the training
    # recordings' mean and sd (computed once when the stage starts, kept in the model: raympa.models.HeadScaler);
    # "none" = the paper's and the code's head on the raw embedding (its small spread around a large mean makes
    # SGD crawl); "auto" = standardize for the paper's models, none for the reference-informed ones (measured:
    # benchmarks/results/stopping.md)
    head_norm: HeadNorm = "auto"
    momentum: float = 0.9  # paper (sec. 4.2) and code
    weight_decay: float = 1e-5  # paper (sec. 4.2) and code
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    threads: int = 0  # ours: torch CPU threads during fit; 0 = leave torch's setting (raympa train: 1)

    @property
    def encoder_rate(self) -> float:
        """The two-step encoder stage's learning rate, ``encoder_lr`` with 0 (auto) resolved per model."""
        if self.encoder_lr > 0:
            return self.encoder_lr
        return INFORMED_ENCODER_LR if self.model in C.REFERENCE_MODELS else PAPER_ENCODER_LR

    @property
    def standardizes_head(self) -> bool:
        """A two-step head stage of this run standardises the head's input (``head_norm``, "auto" resolved)."""
        return self.head_norm == "standardize" or (self.head_norm == "auto" and self.model not in C.REFERENCE_MODELS)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TrainConfig":
        """Build a config from a flat dict (Tune's ``param_space``), rejecting unknown keys.

        Keys that start with ``_`` or ``__`` (Tune's bookkeeping such as ``__trial_index__``)
        are ignored.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        clean = {k: v for k, v in params.items() if not str(k).startswith("_")}
        unknown = sorted(set(clean) - set(names))
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; known: {sorted(names)}")
        typed: dict[str, Any] = {}
        for k, v in clean.items():
            default = names[k].default
            if isinstance(default, bool):
                typed[k] = bool(v)
            elif isinstance(default, int):
                typed[k] = int(v)
            elif isinstance(default, float):
                typed[k] = float(v)
            else:
                typed[k] = v
        cfg = cls(**typed)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError with an actionable message for an impossible configuration."""
        choices = {
            "model": C.MODELS,
            "criterion": C.CRITERIA,
            "contrastive": ("weighted", "rnc"),
            "pairing": ("halves", "all"),
            "chunking": ("random", "fixed", "code"),
            "pitch_norm": ("midi127", "midi36_72"),
            "reference": C.REFERENCE_MODES,
            "head_norm": ("auto", "standardize", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; choose one of {list(allowed)}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins={self.n_bins}; need at least 2 rating bins")
        if self.margin < 0 or self.jl_lambda < 0:
            raise ValueError("margin and jl_lambda must be >= 0")
        if self.chunk_frames < 1 or self.chunk_hop < 1 or self.batch_size < 2:
            raise ValueError("chunk_frames and chunk_hop must be >= 1 and batch_size >= 2")
        if self.lr <= 0 or self.encoder_lr < 0:
            raise ValueError("learning rates must be > 0 (encoder_lr: >= 0, 0 = automatic per model)")
        if self.chunks_per_recording < 1 or self.patience < 1 or self.epochs < 1 or self.encoder_epochs < 1:
            raise ValueError("chunks_per_recording, patience, epochs and encoder_epochs must be >= 1")
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"min_delta={self.min_delta}; need 0 <= min_delta < 1 (a fraction of the best loss)")
        if self.min_steps_per_epoch < 0:
            raise ValueError(f"min_steps_per_epoch={self.min_steps_per_epoch}; need >= 0 (0 = off)")
        if self.pitch_shift < 0 or self.rnc_temperature <= 0:
            raise ValueError("pitch_shift must be >= 0 and rnc_temperature > 0")
        if (self.model in C.REFERENCE_MODELS) != (self.reference != "none"):
            need = "needs reference='table' or 'peers'" if self.model in C.REFERENCE_MODELS else "reads no reference"
            raise ValueError(f"model={self.model!r} {need} (reference={self.reference!r})")
        if self.reference_peers < 1:
            raise ValueError(f"reference_peers={self.reference_peers}; need >= 1")
