"""raympa predict: checkpoint loading, contour scoring, notes, the CLI on audio files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from raympa.config import TrainConfig
from raympa.dataset import synthetic_set
from raympa.predict import load_checkpoint, make_predictor, predict_contours, predict_files
from raympa.train import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = synthetic_set(40, seed=1, short_fraction=0.25, n_frames=(1000, 1300))
    out = tmp_path_factory.mktemp("run")
    result = fit(TrainConfig(model="contrastive-jl", epochs=2, batch_size=16, threads=1), data, out_dir=out)
    return data, result, out / "checkpoint.pt"


def test_checkpoint_loads_weights_only(trained, tmp_path):
    _, result, path = trained
    ckpt = load_checkpoint(path)
    assert ckpt["criterion"] == "note_accuracy" and ckpt["model"] == "contrastive-jl"
    for k, v in result.checkpoint["model_state"].items():
        assert torch.equal(ckpt["model_state"][k], v)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a raympa checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_predict_contours_matches_training_evaluation(trained):
    data, result, path = trained
    test = data.select(split="test")
    order = {r: i for i, r in enumerate(test.recording_id)}
    contours = [test.contour(order[r]) for r in result.latents["recording_id"]]
    pred, notes = predict_contours(make_predictor(path, device="cpu"), contours)
    np.testing.assert_allclose(pred, result.latents["pred"], rtol=1e-5, atol=1e-6)
    assert all(n == "" or n.startswith("short") for n in notes)


def test_predict_contours_notes(trained):
    _, _, path = trained
    voiced = np.full(1500, 62.0, np.float32)
    short = np.full(200, 62.0, np.float32)
    sparse = np.zeros(2000, np.float32)
    sparse[:50] = 65.0
    pred, notes = predict_contours(path, [voiced, np.zeros(1500, np.float32), short,
                                          np.zeros(0, np.float32), sparse], device="cpu")
    assert np.isfinite(pred[[0, 2, 4]]).all() and np.isnan(pred[[1, 3]]).all()
    assert (pred[[0, 2, 4]] >= 0).all() and (pred[[0, 2, 4]] <= 1).all()
    assert notes[0] == ""
    assert notes[1].startswith("unvoiced") and notes[3].startswith("empty")
    assert notes[2].startswith("short: 1.2 s")
    assert "mostly unvoiced" in notes[4]


def test_cli_predict_on_audio(trained, tmp_path):
    import soundfile as sf

    from raympa.cli import main

    _, _, path = trained
    sr = 22050  # resampled to the checkpoint's 44.1 kHz on the way
    t = np.arange(int(sr * 1.5)) / sr
    tone = (0.3 * np.sin(2 * np.pi * 392.0 * t)).astype(np.float32)  # G4
    sf.write(tmp_path / "tone.wav", tone, sr)
    sf.write(tmp_path / "silence.wav", np.zeros_like(tone), sr)
    out = tmp_path / "pred.csv"
    rc = main(["predict", "--checkpoint", str(path), "--device", "cpu", "--out", str(out),
               str(tmp_path / "tone.wav"), str(tmp_path / "silence.wav"), str(tmp_path / "nope.wav")])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=True)
    assert list(df.columns) == ["audio_path", "note_accuracy", "note"]
    assert 0 <= df.loc[0, "note_accuracy"] <= 1 and "short" in df.loc[0, "note"]
    assert np.isnan(df.loc[1, "note_accuracy"]) and "unvoiced" in df.loc[1, "note"]
    assert np.isnan(df.loc[2, "note_accuracy"]) and "cannot read audio" in df.loc[2, "note"]


def test_predict_files_two_checkpoints_same_criterion(trained):
    _, _, path = trained
    df = predict_files([path, path], [], device="cpu")
    assert list(df.columns) == ["audio_path", "note_accuracy", "note_accuracy_2", "note"]
