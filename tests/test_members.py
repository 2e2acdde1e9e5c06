"""K members trained as one stacked model: each member computes what its single run computes."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from raympa.config import TrainConfig
from raympa.dataset import synthetic_set
from raympa.members import check_members, member_state, stack_members
from raympa.models import build_model
from raympa.train import fit, fit_members

FAST = dict(batch_size=16, chunks_per_recording=2, min_steps_per_epoch=0, threads=1)
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    return synthetic_set(40, seed=1, short_fraction=0.25, n_frames=(1000, 1300))


@pytest.fixture
def float64(monkeypatch):
    """Models and their input in float64: the comparison is then free of float32 rounding.

    In float32 a member and its single run round differently (grouped kernels); the contrastive
    term's gradient ``(z1 - z2) / d`` amplifies that where two latents are close, so after a few
    steps at a high learning rate they drift apart by more than 1e-5 while computing the same
    thing (float64 keeps them within 1e-12).
    """
    import raympa.dataset
    import raympa.models

    normalize, build = raympa.dataset.normalize, raympa.models.build_model
    monkeypatch.setattr(raympa.dataset, "normalize", lambda x, norm: normalize(x, norm).double())
    monkeypatch.setattr(raympa.models, "build_model", lambda name, *, members=1: build(name, members=members).double())


def _slice(state: dict, k: int, like: dict) -> dict:
    """Member k's tensors of a training state, shaped as the single model's ``like``: from the stacked
    model while it trains, else (it stopped and left the model) its best state, where it stopped."""
    slots = state["slots"]
    if k in slots:
        return {n: t.reshape(len(slots), -1)[slots.index(k)].reshape(like[n].shape) for n, t in state["model"].items()}
    members = len(state["configs"])
    return {n: t.reshape(members, -1)[k].reshape(like[n].shape) for n, t in state["best"].items()}


def _record(per_epoch: list):
    def keep(metrics, get_state):
        per_epoch.append((metrics, get_state()))
    return keep


def _assert_close_states(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b)
    for n in a:
        if n.endswith("num_batches_tracked"):
            assert int(a[n]) == int(b[n]), (what, n)
        else:
            torch.testing.assert_close(a[n].double(), b[n].double(), **TOL, msg=f"{what}: {n}")


def _compare(cfgs, data, *, epochs_checked: int | None = None):
    """Run the members together and each alone; compare epoch by epoch and at the end."""
    together: list = []
    results = fit_members(cfgs, data, callback=_record(together))
    for m, cfg in enumerate(cfgs):
        alone: list = []
        single = fit(cfg, data, callback=_record(alone))
        mine = [(ms[m], st) for ms, st in together if ms[m] is not None]
        assert [e["epoch"] for e, _ in mine] == [e["epoch"] for e, _ in alone], f"member {m}: epochs"
        assert [e["stage"] for e, _ in mine] == [e["stage"] for e, _ in alone]
        for (e1, s1), (e2, s2) in list(zip(mine, alone))[:epochs_checked]:
            assert e1["train_loss"] == pytest.approx(e2["train_loss"], rel=1e-5, abs=1e-6), (m, e1, e2)
            assert e1["val_loss"] == pytest.approx(e2["val_loss"], rel=1e-5, abs=1e-6), (m, e1, e2)
            _assert_close_states(_slice(s1, m, s2["model"]), s2["model"], f"member {m} epoch {e1['epoch']}")
        r = results[m]
        for key in ("epochs_run", "best_epoch", "n_test_chunks"):
            assert r.metrics[key] == single.metrics[key], (m, key)
        for key in ("best_val_loss", "val_r2_full", "test_r2_full", "test_r2_chunk"):
            assert r.metrics[key] == pytest.approx(single.metrics[key], rel=1e-4, abs=1e-5), (m, key)
        _assert_close_states(r.checkpoint["model_state"], single.checkpoint["model_state"], f"member {m} final")
        np.testing.assert_allclose(r.latents["z"], single.latents["z"], rtol=1e-4, atol=1e-5)
    return results


@pytest.mark.parametrize("model,kw", [
    ("pcconvnet", dict(pitch_shift=2.0)),
    ("contrastive-jl", dict(pairing="halves")),
    ("contrastive-jl", dict(pairing="all", contrastive="rnc")),
    ("contrastive", dict(pairing="halves")),
])
def test_seeds_together_equal_seeds_alone(tiny, float64, model, kw):
    """Seeds 0-2 step by step: losses and parameters of every epoch, then the final state."""
    base = TrainConfig(model=model, epochs=3, encoder_epochs=2, patience=10, lr=0.05, encoder_lr=0.05, **FAST, **kw)
    _compare([dataclasses.replace(base, seed=s) for s in (0, 1, 2)], tiny)


def test_members_differing_in_numbers(tiny, float64):
    """Learning rates, margins, bins, lambda, pitch shift per member (the per-member SGD)."""
    base = TrainConfig(model="contrastive-jl", epochs=3, patience=10, **FAST)
    cfgs = [dataclasses.replace(base, seed=0, lr=0.05, margin=0.5, n_bins=5, jl_lambda=1.0),
            dataclasses.replace(base, seed=0, lr=0.01, margin=1.0, n_bins=3, jl_lambda=0.5, pitch_shift=1.0),
            dataclasses.replace(base, seed=4, lr=0.1, margin=0.2, n_bins=7, jl_lambda=2.0)]
    _compare(cfgs, tiny)


@pytest.mark.parametrize("model", ["pcconvnet", "contrastive"])
def test_each_member_stops_and_restores_its_best_where_its_single_run_does(tiny, float64, model):
    """Members with different patience stop at different epochs; a two-step member that ends its
    encoder stage early leaves the model and starts the head with the others, at its best state."""
    base = TrainConfig(model=model, epochs=12, encoder_epochs=8, lr=0.2, encoder_lr=0.2, **FAST)
    cfgs = [dataclasses.replace(base, seed=s, patience=p) for s, p in ((0, 1), (1, 2), (2, 4))]
    results = _compare(cfgs, tiny, epochs_checked=2)
    runs = [r.metrics["epochs_run"] for r in results]
    assert len(set(runs)) > 1, runs  # the members did stop at different epochs


def _widths(states: list) -> list[int]:
    return [len(st["slots"]) for _, st in states]


@pytest.mark.parametrize("model,kw", [
    ("pcconvnet", dict(pitch_shift=2.0)),
    ("contrastive", dict(pairing="halves")),
    ("contrastive-jl", dict(pairing="all")),
])
def test_stopped_members_leave_the_model_and_the_others_still_match_their_single_runs(tiny, float64, model, kw):
    """Members end their stages at different epochs (their own epochs); after each stop the model
    shrinks to the running members, which match their single runs at every epoch, both stages of
    the two-step model included. Member 0's other learning rate leaves with it, so the survivors
    go on under torch's SGD with the momentum of the per-member one."""
    base = TrainConfig(model=model, patience=20, lr=0.1, encoder_lr=0.1, **FAST, **kw)
    cfgs = [dataclasses.replace(base, seed=0, epochs=1, encoder_epochs=1, lr=0.05),
            dataclasses.replace(base, seed=1, epochs=4, encoder_epochs=3),
            dataclasses.replace(base, seed=2, epochs=2, encoder_epochs=2)]
    together: list = []
    fit_members(cfgs, tiny, callback=_record(together))
    # members in the model after each epoch; at a stage's end all come back (the head stage, the evaluation)
    assert _widths(together) == ([2, 1, 3, 2, 1, 1, 3] if model == "contrastive" else [2, 1, 1, 3])
    _compare(cfgs, tiny)


def test_stopped_members_leave_reference_informed_models_too(float64):
    from test_informed import _peer_data

    _, data = _peer_data()
    base = TrainConfig(model="si-contrastive", reference="peers", chunk_frames=400, batch_size=8,
                       min_steps_per_epoch=0, threads=1, patience=20, lr=0.05, encoder_lr=0.05)
    cfgs = [dataclasses.replace(base, seed=0, encoder_epochs=1, epochs=2),
            dataclasses.replace(base, seed=1, encoder_epochs=2, epochs=1)]
    together: list = []
    fit_members(cfgs, data, callback=_record(together))
    assert _widths(together) == [1, 2, 1, 2]
    _compare(cfgs, data)


def test_members_run_folders_unchanged_by_shrinking(tiny, float64, tmp_path):
    """Every member's run folder is its single run's (files, config, metrics, history, latents,
    checkpoint), but for wall-clock times."""
    base = TrainConfig(model="contrastive-jl", patience=20, lr=0.1, **FAST)
    cfgs = [dataclasses.replace(base, seed=s, epochs=e) for s, e in ((0, 3), (1, 1), (2, 2))]
    fit_members(cfgs, tiny, out_dirs=[tmp_path / f"m{k}" for k in range(3)])
    for k, cfg in enumerate(cfgs):
        fit(cfg, tiny, out_dir=tmp_path / f"s{k}")
        a, b = tmp_path / f"m{k}", tmp_path / f"s{k}"
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert (a / "config.json").read_text() == (b / "config.json").read_text()
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        assert ma.keys() == mb.keys() and ma["epochs_run"] == mb["epochs_run"] == cfg.epochs
        for key in set(ma) - {"seconds"}:
            if isinstance(ma[key], float):
                assert ma[key] == pytest.approx(mb[key], rel=1e-6, abs=1e-9, nan_ok=True), (k, key)
            else:
                assert ma[key] == mb[key], (k, key)
        ha, hb = (pd.read_csv(d / "history.csv").drop(columns="epoch_seconds") for d in (a, b))
        pd.testing.assert_frame_equal(ha, hb, rtol=1e-6, atol=1e-9)
        with np.load(a / "latents.npz") as la, np.load(b / "latents.npz") as lb:
            assert sorted(la.files) == sorted(lb.files)
            for name in la.files:
                if la[name].dtype.kind == "f":
                    np.testing.assert_allclose(la[name], lb[name], rtol=1e-5, atol=1e-6, err_msg=name)
                else:
                    assert np.array_equal(la[name], lb[name]), name
        ca, cb = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (a, b))
        _assert_close_states(ca["model_state"], cb["model_state"], f"member {k} checkpoint")


def test_float32_members_within_1e5_of_single_runs(tiny):
    """In float32 (the real dtype) the first epochs agree within 1e-5 too, at a moderate rate."""
    base = TrainConfig(model="pcconvnet", epochs=2, patience=10, lr=0.01, pitch_shift=1.0, **FAST)
    _compare([dataclasses.replace(base, seed=s) for s in (0, 1, 2)], tiny)
    base = TrainConfig(model="contrastive-jl", epochs=2, patience=10, lr=0.01, pairing="all", **FAST)
    _compare([dataclasses.replace(base, seed=s) for s in (0, 1, 2)], tiny)


def test_a_diverging_member_fails_alone(tiny, float64):
    base = TrainConfig(model="contrastive-jl", epochs=3, patience=10, **FAST)
    cfgs = [dataclasses.replace(base, lr=0.05), dataclasses.replace(base, seed=1, lr=1e12, margin=1e6)]
    results = fit_members(cfgs, tiny)
    assert isinstance(results[1], FloatingPointError) and "non-finite" in str(results[1])
    alone = fit(cfgs[0], tiny)
    _assert_close_states(results[0].checkpoint["model_state"], alone.checkpoint["model_state"], "survivor")
    with pytest.raises(FloatingPointError):
        fit(cfgs[1], tiny)


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_members_resume_exactly(tiny, stop_after):
    base = TrainConfig(model="contrastive", encoder_epochs=2, epochs=2, patience=5, lr=0.05, **FAST)
    cfgs = [dataclasses.replace(base, seed=s) for s in (0, 1)]
    states = {}

    def keep(metrics, get_state):
        buf = io.BytesIO()
        torch.save(get_state(), buf)
        states[len(states) + 1] = buf.getvalue()

    full = fit_members(cfgs, tiny, callback=keep)
    resumed = fit_members(cfgs, tiny, resume=torch.load(io.BytesIO(states[stop_after]), weights_only=True))
    for a, b in zip(full, resumed):
        for n, v in a.checkpoint["model_state"].items():
            assert torch.equal(v, b.checkpoint["model_state"][n]), n
        assert a.metrics["test_r2_full"] == b.metrics["test_r2_full"]


@pytest.mark.parametrize("model", ["pcconvnet", "contrastive"])
def test_members_resume_exactly_after_a_shrink(tiny, model):
    """A state saved after members left the model (in either stage) resumes to the same end."""
    base = TrainConfig(model=model, patience=20, lr=0.05, encoder_lr=0.05, **FAST)
    cfgs = [dataclasses.replace(base, seed=s, lr=lr, epochs=e, encoder_epochs=ee)
            for s, lr, e, ee in ((0, 0.05, 3, 2), (1, 0.02, 1, 1), (2, 0.05, 2, 2))]
    states: list = []

    def keep(metrics, get_state):
        buf = io.BytesIO()
        torch.save(get_state(), buf)
        states.append(buf.getvalue())

    full = fit_members(cfgs, tiny, callback=keep)
    loaded = [torch.load(io.BytesIO(b), weights_only=True) for b in states]
    shrunk = [n for n, st in enumerate(loaded[:-1]) if len(st["slots"]) < len(cfgs)]
    assert shrunk, [st["slots"] for st in loaded]
    for n in shrunk:
        resumed = fit_members(cfgs, tiny, resume=loaded[n])
        for a, b in zip(full, resumed):
            for name, v in a.checkpoint["model_state"].items():
                assert torch.equal(v, b.checkpoint["model_state"][name]), (n, name)
            assert a.metrics["test_r2_full"] == b.metrics["test_r2_full"]
            assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]


def test_check_members_and_stacking():
    base = TrainConfig()
    check_members([base, dataclasses.replace(base, seed=3, lr=0.1, margin=0.2)])
    with pytest.raises(ValueError, match="batch_size"):
        check_members([base, dataclasses.replace(base, batch_size=64)])
    with pytest.raises(ValueError, match="model"):
        fit_members([base, dataclasses.replace(base, model="contrastive")], synthetic_set(20, seed=0))
    singles = [build_model("contrastive") for _ in range(3)]
    stacked = stack_members("contrastive", [m.state_dict() for m in singles])
    x = torch.rand(4, 3, 900)  # (batch, K, n_frames)
    pred, z = stacked.eval().forward_latent(x)
    assert pred.shape == (4, 3) and z.shape == (4, 3, 16)
    for k, m in enumerate(singles):
        p1, z1 = m.eval().forward_latent(x[:, k])
        torch.testing.assert_close(pred[:, k], p1, **TOL)
        torch.testing.assert_close(z[:, k], z1, **TOL)
        for n, v in member_state(stacked, k).items():
            assert torch.equal(v, m.state_dict()[n]), n


def test_cli_seeds_writes_one_single_run_folder_per_seed(tiny, tmp_path):
    from raympa.cli import main
    from raympa.predict import predict_contours

    from test_train import _write_inputs

    _write_inputs(tiny, tmp_path)
    common = ["train", "--ratings", str(tmp_path / "ratings.csv"), "--contours", str(tmp_path),
              "--model", "contrastive-jl", "--epochs", "2", "--batch-size", "16", "--min-steps-per-epoch", "0"]
    assert main([*common, "--seeds", "0-2", "--out", str(tmp_path / "seeds")]) == 0
    assert main([*common, "--seed", "1", "--out", str(tmp_path / "single")]) == 0
    out = tmp_path / "seeds"
    assert sorted(p.name for p in out.iterdir()) == ["seed-0", "seed-1", "seed-2", "seeds.csv"]
    single = tmp_path / "single"
    assert sorted(p.name for p in (out / "seed-1").iterdir()) == sorted(p.name for p in single.iterdir())
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out / "seed-1", single))
    assert a.keys() == b.keys() and a["seed"] == b["seed"] == 1 and a["epochs_run"] == b["epochs_run"]
    assert a["test_r2_full"] == pytest.approx(b["test_r2_full"], rel=1e-4, abs=1e-5)
    assert (json.loads((out / "seed-1" / "config.json").read_text())
            == json.loads((single / "config.json").read_text()))
    seeds = pd.read_csv(out / "seeds.csv")
    assert seeds["seed"].tolist() == [0, 1, 2] and seeds["test_r2_full"].notna().all()
    pred, _ = predict_contours(out / "seed-2" / "checkpoint.pt", [tiny.contour(0)], device="cpu")
    assert 0 <= pred[0] <= 1 and math.isfinite(pred[0])


def test_members_differing_in_min_delta_stop_where_their_single_runs_do(tiny, float64):
    """min_delta (the improvement a new best needs) is each member's own, as in its single run."""
    base = TrainConfig(model="contrastive", epochs=10, encoder_epochs=6, patience=2, lr=0.2, encoder_lr=0.2, **FAST)
    cfgs = [dataclasses.replace(base, seed=0, min_delta=d) for d in (0.0, 0.05, 0.3)]
    results = _compare(cfgs, tiny, epochs_checked=2)
    assert len({r.metrics["epochs_run"] for r in results}) > 1  # the threshold changed where they stopped
