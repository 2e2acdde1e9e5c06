"""Score new recordings with trained checkpoints (``raympa predict``).

A checkpoint (written by :func:`raympa.train.fit` through :mod:`raympa.runfolder`, loadable with ``torch.load(weights_only=True)``)
holds the model weights, its TrainConfig, and the extraction parameters of its training contours.
New audio is decoded and its pitch contour extracted with exactly those parameters
(:func:`raympa.contours.contour_from_audio`), then the whole contour goes through the fully
convolutional model, as the full-length evaluation in training: contours shorter than a training
chunk are padded with unvoiced frames. Predictions are clipped to [0, 1], the rating scale.

A recording with no voiced frame gets no prediction (NaN) and a note saying so; one shorter
than a chunk, or mostly unvoiced, gets a prediction and a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from raympa import constants as C

if TYPE_CHECKING:
    import pandas as pd
    import torch

MIN_VOICED_FRACTION = 0.1  # ours: below this share of voiced frames the prediction gets a warning note


@dataclass(frozen=True)
class Predictor:
    """A loaded checkpoint, ready to score contours."""

    model: "torch.nn.Module"
    checkpoint: dict[str, Any]
    device: "torch.device"

    @property
    def criterion(self) -> str:
        return str(self.checkpoint["criterion"])

    @property
    def chunk_frames(self) -> int:
        return int(self.checkpoint["chunk_frames"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a raympa checkpoint with ``torch.load(weights_only=True)`` and check its format."""
    import torch

    from raympa.runfolder import CHECKPOINT_FORMAT

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p} is not a raympa checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
                         "use the checkpoint.pt that `raympa train` writes")
    return ckpt


def make_predictor(checkpoint: dict[str, Any] | str | Path, *, device: str = "auto") -> Predictor:
    """Build the model of a checkpoint (dict or path) in eval mode on ``device``."""
    from raympa.evaluate import resolve_device
    from raympa.models import build_model

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    dev = resolve_device(device)
    model = build_model(ckpt["model"])
    want, got = model.state_dict(), ckpt["model_state"]
    optional = {k for k in want if k.startswith("head_scaler.")}  # identity when absent (models.HeadScaler)
    differ = sorted((set(want) ^ set(got)) - optional) or [k for k in want if tuple(want[k].shape) != tuple(got[k].shape)]
    if differ and getattr(model, "in_channels", 1) > 2:  # an informed model of an earlier layout
        raise ValueError(f"this {ckpt['model']} checkpoint was written for an earlier layout of its model "
                         f"({differ[0]} differs); retrain it with this version of raympa")
    model.load_state_dict(ckpt["model_state"])
    return Predictor(model=model.to(dev).eval(), checkpoint=ckpt, device=dev)


def contour_notes(contours: Sequence[np.ndarray], *, chunk_frames: int, frame_rate: float) -> list[str]:
    """One note per contour: '' when fine, else why it is not or less reliably predicted."""
    notes = []
    for c in contours:
        c = np.asarray(c)
        voiced = float(np.mean(c > 0)) if len(c) else 0.0
        if len(c) == 0:
            notes.append("empty contour: no audio frames; no prediction")
        elif voiced == 0:
            notes.append("unvoiced: no pitched frame found (silence, noise, or a pitch outside "
                         "the extraction range); no prediction")
        else:
            parts = []
            if len(c) < chunk_frames:
                parts.append(f"short: {len(c) / frame_rate:.1f} s, less than the model's "
                             f"{chunk_frames / frame_rate:.1f} s chunk; padded with silence")
            if voiced < MIN_VOICED_FRACTION:
                parts.append(f"mostly unvoiced: {voiced:.0%} of frames pitched")
            notes.append("; ".join(parts))
    return notes


def predict_contours(
    predictor: Predictor | dict[str, Any] | str | Path,
    contours: Sequence[np.ndarray],
    *,
    device: str = "auto",
    references: Sequence[np.ndarray] | None = None,
    features: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Predicted ratings of MIDI contours (0 = unvoiced), as the checkpoint's training extracted them.

    Args:
        predictor: a :class:`Predictor`, a checkpoint dict, or a checkpoint path.
        contours: (n_frames,) float32 MIDI arrays, one per recording.
        device: used when ``predictor`` is not built yet.
        references: for a reference-informed checkpoint, each contour's aligned reference on its
            grid (``raympa.references.reference_for``), (n_frames,) float32 MIDI.
        features: for a reference-informed checkpoint, each contour's alignment features against
            that reference (``raympa.align.ALL_FEATURES``; ``reference_for`` gives both).

    Returns:
        Predictions (n,) float64 in [0, 1] (NaN for an empty or unvoiced contour) and one note
        per contour ('' when fine).
    """
    import torch

    from raympa.evaluate import forward_full_length

    pr = predictor if isinstance(predictor, Predictor) else make_predictor(predictor, device=device)
    ckpt = pr.checkpoint
    hop = ckpt["extract_config"].get("hop_length", C.HOP_LENGTH)
    sr = ckpt["extract_config"].get("sample_rate", C.SAMPLE_RATE)
    notes = contour_notes(contours, chunk_frames=pr.chunk_frames, frame_rate=sr / hop)
    ok = [i for i, c in enumerate(contours) if len(c) and np.any(np.asarray(c) > 0)]
    pred = np.full(len(contours), np.nan)
    if ok:
        arrays = [np.nan_to_num(np.asarray(contours[i], dtype=np.float32), nan=0.0) for i in ok]
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.int64)
        offsets = torch.zeros(len(arrays) + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(lengths, 0)
        midi = torch.from_numpy(np.concatenate(arrays)).to(pr.device)
        ref = None
        if getattr(pr.model, "in_channels", 1) > 1:
            from raympa.dataset import ReferenceInput

            if references is None or features is None:
                raise ValueError(f"{ckpt['model']} reads a reference and its alignment features: give a reference "
                                 "(raympa predict --reference FILE, or --reference peers)")
            aligned = np.concatenate([np.asarray(references[i], np.float32) for i in ok])
            side = np.stack([np.asarray(features[i], np.float32) for i in ok])  # (n, F)
            ref = ReferenceInput(torch.from_numpy(aligned).to(pr.device), torch.from_numpy(side).to(pr.device))
        p, _ = forward_full_length(pr.model, midi, offsets[:-1].to(pr.device), lengths,
                                   pitch_norm=ckpt["pitch_norm"], min_frames=pr.chunk_frames, reference=ref)
        pred[ok] = np.clip(p.cpu().numpy().astype(np.float64), 0.0, 1.0)
    return pred, notes


def extract_contour(path: str | Path, extract_config: dict[str, Any]) -> np.ndarray:
    """Decode an audio file and extract its contour with a checkpoint's extraction parameters."""
    from raympa.audio import load_segment
    from raympa.config import ExtractConfig
    from raympa.contours import contour_from_audio

    cfg = ExtractConfig(**extract_config)
    y = load_segment(path, sample_rate=cfg.sample_rate)  # (n_samples,) mono float32
    if len(y) == 0:
        return np.zeros(0, np.float32)
    return contour_from_audio(y, cfg.sample_rate, cfg)


def _references(ckpt: dict[str, Any], contours: list[np.ndarray], reference: str | Path | None,
                peers: dict[str, Any] | None) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Aligned references and features of a reference-informed checkpoint's recordings (None for a paper model)."""
    from raympa.config import ExtractConfig
    from raympa.references import peers_for, reference_for

    trained = ckpt["train_config"].get("reference", "none")
    if trained == "none":
        return None
    if str(reference) == "peers":
        if not peers or not all(peers.get(k) for k in ("ratings", "contours", "piece")):
            raise ValueError("--reference peers needs --ratings (the training table), --contours (its contours) "
                             "and --piece (the piece_id the recordings play)")
        pairs = peers_for(contours, ratings=peers["ratings"], contours=peers["contours"], piece=peers["piece"],
                          criterion=ckpt["criterion"], peers=int(ckpt["train_config"].get("reference_peers", 3)),
                          split_seed=int(peers.get("split_seed", 0)))
    elif reference is None:
        raise ValueError(f"{ckpt['model']} was trained with reference={trained!r}: give --reference FILE "
                         "(or --reference peers with the training table)")
    else:
        cfg = ExtractConfig(**ckpt["extract_config"])
        pairs = [reference_for(c, reference, config=cfg) for c in contours]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def predict_files(
    checkpoints: Sequence[str | Path], audio: Sequence[str | Path], *, device: str = "auto",
    reference: str | Path | None = None, peers: dict[str, Any] | None = None,
    extract: dict[str, Any] | None = None,
) -> "pd.DataFrame":
    """Score audio files with one or more checkpoints: one row per file, one column per checkpoint.

    Columns: ``audio_path``, then the criterion of each checkpoint (``criterion_2`` ... when
    two checkpoints share one), then ``note`` (why a value is missing or less reliable; audio
    that cannot be decoded is reported there too). ``reference``: the piece's reference file (MIDI,
    audio or pitch track), aligned to every recording for reference-informed checkpoints, or
    ``"peers"``: the piece's top-rated training recordings, as in training, from ``peers`` =
    ``{"ratings": training table, "contours": its contours folder, "piece": piece_id}``.
    ``extract``: extraction parameters that replace the checkpoint's (``fmin``/``fmax``).
    """
    import pandas as pd

    from raympa.audio import AudioError

    predictors = [make_predictor(c, device=device) for c in checkpoints]
    if extract:
        for p in predictors:
            p.checkpoint["extract_config"] = {**p.checkpoint["extract_config"], **extract}
    names: list[str] = []
    for p in predictors:
        name, k = p.criterion, 2
        while name in names:
            name, k = f"{p.criterion}_{k}", k + 1
        names.append(name)
    rows: dict[str, dict[str, Any]] = {str(a): {"audio_path": str(a)} for a in audio}
    notes: dict[str, list[str]] = {str(a): [] for a in audio}
    contour_cache: dict[tuple, np.ndarray | None] = {}
    for pr, name in zip(predictors, names):
        extract = dict(pr.checkpoint["extract_config"])
        key = tuple(sorted(extract.items()))
        contours, present = [], []
        for a in audio:
            ck = (key, str(a))
            if ck not in contour_cache:
                try:
                    contour_cache[ck] = extract_contour(a, extract)
                except (AudioError, FileNotFoundError, ValueError) as e:
                    contour_cache[ck] = None
                    notes[str(a)].append(f"cannot read audio: {e}")
            if contour_cache[ck] is not None:
                contours.append(contour_cache[ck])
                present.append(str(a))
        refs = _references(pr.checkpoint, contours, reference, peers) if contours else None
        values, why = predict_contours(pr, contours, references=None if refs is None else refs[0],
                                       features=None if refs is None else refs[1])
        for a in rows:
            rows[a][name] = np.nan
        for a, v, n in zip(present, values, why):
            rows[a][name] = v
            if n and n not in notes[a]:
                notes[a].append(n)
    df = pd.DataFrame(list(rows.values()), columns=["audio_path", *names])
    df["note"] = ["; ".join(notes[str(a)]) for a in audio]
    return df
