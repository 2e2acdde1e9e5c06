"""Reference-informed models: shapes, members, masking of short inputs, configuration rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raympa import constants as C
from raympa.config import TrainConfig
from raympa.informed import INFORMED, MIN_FRAMES, auto_chunk_frames
from raympa.members import member_state, stack_members
from raympa.models import build_model
from raympa.stages import STAGES

NAMES = list(C.REFERENCE_MODELS)


def _x(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.1 * torch.rand(batch, 2, frames, generator=g)
    x[:, :, ::9] = 0.0  # some unvoiced frames
    return x


def test_every_reference_model_is_registered_with_stages():
    assert set(NAMES) == set(INFORMED) and NAMES
    for name in NAMES:
        assert name in C.MODEL_LABELS and name in STAGES
    losses = {tuple(s.loss for s in STAGES[n]) for n in NAMES}
    assert losses == {("mse",), ("contrastive", "mse"), ("joint",)}  # every loss option


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_head_encoder_split(name):
    model = build_model(name).eval()
    x = _x(5, 400)
    pred, z = model.forward_latent(x)
    assert pred.shape == (5,) and z.shape == (5, C.LATENT_DIM)
    assert torch.all((pred > 0) & (pred < 1))
    torch.testing.assert_close(model.predict_from_latent(z), pred)
    enc = {id(p) for p in model.encoder.parameters()}
    head = {id(p) for p in model.head.parameters()}
    assert enc and head and not enc & head
    assert len(enc | head) == len(list(model.parameters()))


@pytest.mark.parametrize("name", ["si-pcconvnet", "joint-embed"])
def test_reference_changes_the_prediction(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = _x(3, 500)
    y = x.clone()
    y[:, 1] = torch.where(y[:, 1] > 0, y[:, 1] + 3 / 127, y[:, 1])  # reference a minor third off
    assert not torch.allclose(model(x), model(y))


@pytest.mark.parametrize("name", ["si-contrastive-jl", "joint-embed"])
def test_members_compute_what_single_models_compute(name):
    torch.manual_seed(1)
    singles = [build_model(name).eval() for _ in range(3)]
    stacked = stack_members(name, [m.state_dict() for m in singles]).eval()
    x = _x(4, 300, seed=2)
    xs = torch.stack([x, x.flip(0), x * 0.9], dim=1)  # (batch, K, 2, frames), each member its own data
    pred, z = stacked.forward_latent(xs)
    assert pred.shape == (4, 3) and z.shape == (4, 3, C.LATENT_DIM)
    for k, m in enumerate(singles):
        p, zz = m.forward_latent(xs[:, k])
        torch.testing.assert_close(pred[:, k], p, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(z[:, k], zz, atol=1e-5, rtol=1e-5)
        single_state = m.state_dict()
        for key, t in member_state(stacked, k).items():
            torch.testing.assert_close(t, single_state[key])


@pytest.mark.parametrize("name", ["si-pcconvnet", "joint-embed-jl"])
def test_short_recordings_padded_with_lengths_equal_alone(name):
    model = build_model(name).eval()
    a, b = _x(1, 520, seed=3), _x(1, 1200, seed=4)  # 3 s and 7 s at 172 frames/s
    batch = torch.zeros(2, 2, 1200)
    batch[0, :, :520], batch[1] = a[0], b[0]
    pred = model(batch, torch.tensor([520, 1200]))
    torch.testing.assert_close(pred[0], model(a)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred[1], model(b)[0], atol=1e-5, rtol=1e-5)


def test_input_checks():
    model = build_model("si-pcconvnet")
    with pytest.raises(ValueError, match="aligned reference"):
        model(torch.rand(2, 500))  # a contour without its reference
    with pytest.raises(ValueError, match=f"at least {MIN_FRAMES}"):
        model(torch.rand(2, 2, MIN_FRAMES - 1))
    model(torch.rand(2, 2, MIN_FRAMES))


def test_config_pairs_models_with_references():
    TrainConfig(model="si-contrastive-jl", reference="peers").validate()
    TrainConfig(model="pcconvnet").validate()
    with pytest.raises(ValueError, match="needs reference"):
        TrainConfig(model="joint-embed").validate()
    with pytest.raises(ValueError, match="reads no reference"):
        TrainConfig(model="contrastive", reference="table").validate()
    with pytest.raises(ValueError, match="reference="):
        TrainConfig.from_dict({"model": "si-pcconvnet", "reference": "score"})


def test_auto_chunk_frames_follows_the_data():
    assert auto_chunk_frames(np.array([5000, 6000, 8000])) == C.CHUNK_FRAMES  # long etudes: the paper's
    short = np.linspace(516, 1206, 50)  # 3-7 s
    chunk = auto_chunk_frames(short)
    assert MIN_FRAMES <= chunk < C.CHUNK_FRAMES
    assert np.mean(short >= chunk) >= 0.9
    assert auto_chunk_frames(np.array([50, 60])) == MIN_FRAMES


def _peer_data(n: int = 40):
    import pandas as pd

    from raympa import references as R
    from raympa.dataset import synthetic_set

    data = synthetic_set(n, seed=0, n_frames=(500, 1200))  # 3-7 s recordings
    table = pd.DataFrame({"recording_id": data.recording_id, "split": data.split, "piece_id": "p",
                          "note_accuracy": data.ratings["note_accuracy"]})
    return data, R.attach(data, R.build_references("peers", table, data, criterion="note_accuracy", peers=2))


@pytest.mark.parametrize("name", ["si-contrastive", pytest.param("joint-embed-jl", marks=pytest.mark.slow)])
def test_training_with_references_and_batched_seeds(name):
    from raympa.train import fit_members

    plain, data = _peer_data()
    cfgs = [TrainConfig(model=name, reference="peers", seed=s, epochs=2, encoder_epochs=1, chunk_frames=400,
                        min_steps_per_epoch=0, batch_size=8) for s in (0, 1)]
    results = fit_members(cfgs, data)
    assert all(np.isfinite(r.metrics["val_r2_full"]) for r in results)
    assert results[0].latents["z"].shape[1] == C.LATENT_DIM
    assert results[0].checkpoint["train_config"]["reference"] == "peers"  # predict knows what it needs
    from raympa.predict import predict_contours

    ref0 = data.reference[data.offsets[0] : data.offsets[1]]
    pred, _ = predict_contours(results[0].checkpoint, [data.contour(0)], references=[ref0])
    assert 0 <= pred[0] <= 1
    with pytest.raises(ValueError, match="reference"):
        predict_contours(results[0].checkpoint, [data.contour(0)])  # no reference given
    with pytest.raises(ValueError, match="reference"):
        fit_members(cfgs[:1], plain)  # the same model on contours without references
