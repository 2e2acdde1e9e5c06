"""Reference-informed models: shapes, members, masking of short inputs, configuration rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raympa import constants as C
from raympa.config import TrainConfig
from raympa.dataset import normalize, side_channels
from raympa.informed import (IN_CHANNELS, INFORMED, MIN_FRAMES, N_SIDE, WIDE_RIDGE, auto_chunk_frames,
                             decode_side)
from raympa.members import member_state, stack_members
from raympa.models import build_model
from raympa.stages import STAGES

NAMES = list(C.REFERENCE_MODELS)


def _x(batch: int, frames: int, seed: int = 0, side: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised model input (batch, C, frames): performance, reference and alignment features."""
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.1 * torch.rand(batch, 2, frames, generator=g)
    x[:, :, ::9] = 0.0  # some unvoiced frames
    side = torch.rand(batch, N_SIDE, generator=g) if side is None else side
    return torch.cat([x, side_channels(side, frames) / C.MIDI_MAX], dim=1)  # midi127, as normalize does


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
    assert torch.isfinite(pred).all()  # the rating itself (no sigmoid; evaluation clips to [0, 1])
    h = model.head_input(x)  # the latent, then the standardised features
    assert h.shape == (5, C.LATENT_DIM + N_SIDE)
    torch.testing.assert_close(h[:, : C.LATENT_DIM], z)
    torch.testing.assert_close(model.predict_from_head_input(h), pred)
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


@pytest.mark.parametrize("norm", ["midi127", "midi36_72"])
def test_side_features_survive_normalisation_and_shift(norm):
    g = torch.Generator().manual_seed(5)
    side = torch.randn(4, N_SIDE, generator=g)
    side[:, -1] = 30 * side[:, -1].abs()  # longest_hold_s: seconds, can be large
    pitch = 60 + 12 * torch.rand(4, 2, 300, generator=g)
    x = torch.cat([pitch, side_channels(side, 300)], dim=1)  # MIDI, as gather_inputs gives it
    shift = torch.tensor([-2.0, 0.5, 1.5, 0.0]).view(4, 1, 1)
    seen = normalize(torch.where(x > 0, x + shift, x), norm)  # what training does to every channel
    torch.testing.assert_close(decode_side(seen[:, None])[:, 0], side, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["si-pcconvnet", "joint-embed"])
def test_alignment_features_reach_the_prediction_and_latent(name):
    torch.manual_seed(3)
    model = build_model(name)
    side = torch.rand(8, N_SIDE, generator=torch.Generator().manual_seed(1))
    x = _x(8, 300, seed=1, side=side)
    model.warm_start(side.numpy(), np.linspace(0.2, 0.9, 8))
    with torch.no_grad():  # a trained deep part (warm_start leaves its last layer at 0)
        model.head.deep[-1].weight.normal_()
    model.eval()
    worse = _x(8, 300, seed=1, side=torch.rand(8, N_SIDE) + 2.0)  # same contours, other features
    z, z2 = model.latent(x), model.latent(worse)
    assert not torch.allclose(z, z2) and not torch.allclose(model(x), model(worse))
    state = model.state_dict()  # the training statistics travel with the checkpoint
    assert state["encoder.side.mean"].shape == (N_SIDE,)
    torch.testing.assert_close(state["encoder.side.mean"], side.double().mean(0).float(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["si-pcconvnet", "joint-embed-contrastive", "si-contrastive-jl"])
def test_warm_start_is_the_linear_model_on_the_features(name):
    """After warm_start every member predicts what a ridge fit on the standardised training features
    predicts, whatever the contours (the deep part and the latent weights start at 0); training moves
    the standardisation no more."""
    rng = np.random.default_rng(0)
    side = rng.normal(size=(40, N_SIDE)) * rng.uniform(0.1, 5, N_SIDE) + rng.uniform(0, 3, N_SIDE)
    y = np.clip(0.6 + 0.1 * side[:, 0] - 0.05 * side[:, 3] + 0.02 * rng.normal(size=40), 0, 1)
    mean, sd = side.mean(0), side.std(0, ddof=1)
    z = (side - mean) / np.sqrt(sd**2 + 1e-5)
    zc = z - z.mean(0)
    w = np.linalg.solve(zc.T @ zc + WIDE_RIDGE * 40 * np.eye(N_SIDE), zc.T @ (y - y.mean()))
    expected = y.mean() + (z - z.mean(0)) @ w
    for members in (1, 3):
        torch.manual_seed(members)
        model = build_model(name, members=members)
        model.warm_start(side, y)
        x = _x(40, 200, seed=members, side=torch.from_numpy(side).float())
        pred = model.train()(x)  # training mode: the same map
        pred = pred if members == 1 else pred[:, members - 1]
        np.testing.assert_allclose(pred.detach().numpy(), expected, atol=2e-4)
        before = model.encoder.side.mean.clone()
        model.train()(_x(8, 200, seed=9))
        assert torch.equal(model.encoder.side.mean, before)
    with pytest.raises(ValueError, match="alignment features"):
        build_model(name).warm_start(None, y)


@pytest.mark.parametrize("name", ["si-pcconvnet", "joint-embed-contrastive"])
def test_linear_model_on_the_features_is_one_layer(name):
    """The head input ends with the standardised features, and the head's wide part reads them in one
    linear layer: the linear model on the features is wide(h) with the deep part at 0 (no sigmoid)."""
    model = build_model(name).eval()
    with torch.no_grad():
        for lin in model.head.deep:
            lin.weight.zero_()
            lin.bias.zero_()
        model.head.wide.weight.zero_()
        model.head.wide.bias.fill_(0.5)
        model.head.wide.weight[0, C.LATENT_DIM + 1] = 2.0  # the second feature
    side = torch.zeros(6, N_SIDE)
    side[:, 1] = torch.linspace(-1, 1, 6)
    h = model.head_input(_x(6, 200, side=side))
    torch.testing.assert_close(h[:, C.LATENT_DIM:], side / (1 + 1e-5) ** 0.5)  # initial standardisation: mean 0, var 1
    torch.testing.assert_close(model(_x(6, 200, side=side)), 0.5 + 2 * side[:, 1] / (1 + 1e-5) ** 0.5)


@pytest.mark.parametrize("name", ["si-contrastive-jl", "joint-embed"])
def test_members_compute_what_single_models_compute(name):
    torch.manual_seed(1)
    singles = [build_model(name).eval() for _ in range(3)]
    stacked = stack_members(name, [m.state_dict() for m in singles]).eval()
    x = _x(4, 300, seed=2)
    xs = torch.stack([x, x.flip(0), x * 0.9], dim=1)  # (batch, K, C, frames), each member its own data
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
    batch = torch.zeros(2, IN_CHANNELS, 1200)
    batch[0, :, :520], batch[1] = a[0], b[0]
    pred = model(batch, torch.tensor([520, 1200]))
    torch.testing.assert_close(pred[0], model(a)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred[1], model(b)[0], atol=1e-5, rtol=1e-5)


def test_input_checks():
    model = build_model("si-pcconvnet")
    with pytest.raises(ValueError, match="aligned reference"):
        model(torch.rand(2, 500))  # a contour without its reference
    with pytest.raises(ValueError, match="alignment features"):
        model(torch.rand(2, 2, 500))  # a contour and its reference without the features
    with pytest.raises(ValueError, match=f"at least {MIN_FRAMES}"):
        model(_x(2, MIN_FRAMES - 1))
    model(_x(2, MIN_FRAMES))


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
    pred, _ = predict_contours(results[0].checkpoint, [data.contour(0)], references=[ref0], features=[data.side[0]])
    assert 0 <= pred[0] <= 1
    t = int(np.flatnonzero(data.split == "test")[0])  # predict reads what the test evaluation read
    full = results[0].latents["pred"][list(results[0].latents["recording_id"]).index(data.recording_id[t])]
    again, _ = predict_contours(results[0].checkpoint, [data.contour(t)], features=[data.side[t]],
                                references=[data.reference[data.offsets[t] : data.offsets[t + 1]]])
    assert abs(again[0] - full) < 1e-5
    with pytest.raises(ValueError, match="reference"):
        predict_contours(results[0].checkpoint, [data.contour(0)])  # no reference given
    old = dict(results[0].checkpoint, model_state={k: v for k, v in results[0].checkpoint["model_state"].items()
                                                   if ".side." not in k})
    with pytest.raises(ValueError, match="retrain"):
        predict_contours(old, [data.contour(0)], references=[ref0], features=[data.side[0]])
    state = results[0].checkpoint["model_state"]  # same names, an earlier shape (the fusion before the features)
    fuse = next(k for k in state if k.endswith("fuse.weight"))
    resized = dict(results[0].checkpoint, model_state={**state, fuse: state[fuse][:, :-1]})
    with pytest.raises(ValueError, match="retrain"):
        predict_contours(resized, [data.contour(0)], references=[ref0], features=[data.side[0]])
    with pytest.raises(ValueError, match="reference"):
        fit_members(cfgs[:1], plain)  # the same model on contours without references


def _write_training_folder(folder, data) -> tuple[str, str]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"recording_id": data.recording_id, "split": data.split, "piece_id": "p",
                          **data.ratings})
    table.to_csv(folder / "ratings.csv", index=False)
    contours = [data.contour(i) for i in range(len(data))]
    pq.write_table(pa.table({"recording_id": list(data.recording_id), "midi": contours,
                             "sample_rate": [C.SAMPLE_RATE] * len(data), "hop_length": [C.HOP_LENGTH] * len(data)}),
                   folder / "contours.parquet")
    return str(folder / "ratings.csv"), str(folder)


def test_cli_short_recordings_auto_chunk_pitch_range_and_real_audio(tmp_path, shared_audio, ray_local, capsys):
    """raympa train (auto chunk, --fmin) then predict a real 3.2 s recording against an audio reference and peers."""
    import pandas as pd

    from raympa.cli import main
    from raympa.dataset import synthetic_set
    from raympa.predict import load_checkpoint

    ratings, contours = _write_training_folder(tmp_path / "train", synthetic_set(30, seed=0, n_frames=(500, 1200)))
    run = tmp_path / "run"
    rc = main(["train", "--ratings", ratings, "--contours", contours, "--out", str(run), "--model", "si-pcconvnet",
               "--reference", "peers", "--reference-peers", "2", "--epochs", "1", "--min-steps-per-epoch", "0",
               "--batch-size", "8", "--device", "cpu", "--fmin", "90"])
    assert rc == 0
    err = capsys.readouterr().err
    ckpt = load_checkpoint(run / "checkpoint.pt")
    chunk = int(err.split("chunk frames: auto -> ")[1].split()[0])
    assert MIN_FRAMES <= chunk < C.CHUNK_FRAMES and ckpt["chunk_frames"] == chunk  # 3-7 s recordings
    assert ckpt["train_config"]["chunk_frames"] == chunk and ckpt["extract_config"]["fmin"] == 90.0
    audio = str(shared_audio / "sax-phrase-short.wav")
    for extra in (["--reference", audio], ["--reference", "peers", "--ratings", ratings, "--contours", contours,
                                           "--piece", "p"]):
        out = tmp_path / "pred.csv"
        assert main(["predict", "--checkpoint", str(run / "checkpoint.pt"), "--device", "cpu", "--out", str(out),
                     *extra, audio]) == 0
        df = pd.read_csv(out)
        assert 0 <= df.loc[0, "note_accuracy"] <= 1, df
    assert main(["predict", "--checkpoint", str(run / "checkpoint.pt"), "--reference", "peers", audio]) == 2
    assert "--piece" in capsys.readouterr().err
    assert main(["train", "--ratings", ratings, "--contours", contours, "--out", str(run), "--model", "pcconvnet",
                 "--chunk-frames", "many"]) == 2


@pytest.mark.parametrize("name", ["si-contrastive-jl", pytest.param("joint-embed-contrastive", marks=pytest.mark.slow)])
def test_contrastive_loss_is_not_held_up_by_the_fixed_features(name):
    """Same-bin recordings with very different alignment features: the weighted contrastive loss on
    the latent can still be trained to about 0 (fixed standardised features inside the latent
    would leave about 0.5 * 2F of it), and the features still reach the prediction."""
    from raympa.losses import pair_up, weighted_contrastive_loss

    torch.manual_seed(0)
    model = build_model(name)
    side = 3 * torch.randn(8, N_SIDE, generator=torch.Generator().manual_seed(1))
    x = _x(8, MIN_FRAMES, seed=2, side=side)
    y = torch.full((8,), 0.9)  # one rating bin
    i, j = pair_up(8, "all")
    with torch.no_grad():
        h = model.train().head_input(x)[:, C.LATENT_DIM:]  # the standardised features
    fixed = float(weighted_contrastive_loss(h[i], h[j], y[i], y[j]))
    opt = torch.optim.Adam(model.encoder.parameters(), lr=0.05)
    for _ in range(60):
        z = model.latent(x)
        loss = weighted_contrastive_loss(z[i], z[j], y[i], y[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed > 5.0 and loss.item() < 0.02 * fixed
    model.eval()
    assert not torch.allclose(model(x), model(_x(8, MIN_FRAMES, seed=2, side=side + 1.0)))


def test_head_stage_reads_the_features_with_the_encoder_frozen():
    from raympa.stages import HEAD

    model = build_model("si-contrastive").eval()
    x = _x(5, 300, seed=4)
    pred, z = HEAD.forward(model, x)
    assert z is None
    torch.testing.assert_close(pred, model(x))
    pred.sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert float(model.head.wide.weight.grad[0, C.LATENT_DIM:].abs().sum()) > 0  # the features, one layer away
