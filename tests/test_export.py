"""raympa.export: a study's best configuration scores new recordings (the reference passes through)."""

from __future__ import annotations

import pandas as pd

from raympa import export


def test_predict_study_passes_the_reference_to_every_checkpoint(monkeypatch, tmp_path):
    best = pd.DataFrame({"criterion": ["note_accuracy", "note_accuracy"], "seed": [0, 1]})
    monkeypatch.setattr(export, "best_trials", lambda study_dir, band=None: best)
    monkeypatch.setattr(export, "study_checkpoints", lambda study_dir, band=None: ["a.pt", "b.pt"])
    seen = {}

    def fake_predict_files(paths, audio, **kwargs):
        seen.update(kwargs, paths=list(paths))
        return pd.DataFrame({"audio_path": list(audio), "note_accuracy": [0.4], "note_accuracy_2": [0.6], "note": [""]})

    monkeypatch.setattr("raympa.predict.predict_files", fake_predict_files)
    peers = {"ratings": "t.csv", "contours": "c", "piece": "etude-1"}
    out = export.predict_study(tmp_path, ["x.wav"], reference="peers", peers=peers, extract={"fmin": 90.0})
    assert seen["paths"] == ["a.pt", "b.pt"]
    assert seen["reference"] == "peers" and seen["peers"] == peers and seen["extract"] == {"fmin": 90.0}
    assert out["note_accuracy"][0] == 0.5 and abs(out["note_accuracy_sd"][0] - 0.1414) < 1e-3
