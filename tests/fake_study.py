"""A small fake study folder (docs/architecture.md, "Study folder") for the analysis and report tests.

The latents have known structure: each test recording's 16-d vector sits at ``spread * rating``
along a fixed direction plus Gaussian noise of ``noise`` (per model), so rating bins form ordered
clusters whose separation the test can predict (tight for the contrastive models, loose for
PCConvNet). R² values are drawn around per-model means so paired tests have a known sign.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

# model -> (mean test R², latent noise); the contrastive models cluster better and score higher
MODELS = {"pcconvnet": (0.30, 1.0), "contrastive": (0.35, 0.25), "contrastive-jl": (0.45, 0.15)}


def _latents(rng: np.random.Generator, n: int, noise: float, *, one_bin: bool) -> dict[str, np.ndarray]:
    y = np.full(n, 0.5, np.float32) if one_bin else rng.uniform(0, 1, n).astype(np.float32)
    y[: min(n, 5)] = y[: min(n, 5)] if one_bin else np.array([0.0, 0.2, 0.4, 0.6, 1.0], np.float32)[: min(n, 5)]
    direction = np.ones(16, np.float32) / 4.0  # unit vector in 16-d
    z = 4.0 * y[:, None] * direction[None, :] + rng.normal(0, noise, (n, 16)).astype(np.float32)  # (n, 16)
    bins = np.minimum((y * 5 + 1e-9).astype(np.int64), 4)  # inclusive lower bounds, 1.0 -> 4
    rid = np.array([f"rec{i:03d}" for i in range(n)])
    return {"z": z.astype(np.float32), "y": y, "bins": bins, "recording_id": rid}


def make_fake_study(
    root: Path,
    *,
    criteria: tuple[str, ...] = ("note_accuracy", "rhythm_accuracy"),
    bands: tuple[str, ...] = ("middleschool", "symphonicband"),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    sweep_margins: tuple[float, ...] = (0.25, 1.0),
    n_test: int = 40,
    one_bin: bool = False,
    with_failures: bool = True,
) -> Path:
    """Write a fake study folder under ``root`` and return its path.

    Trials: every model x criterion x band x seed (margin 0.5), plus contrastive-jl with each of
    ``sweep_margins`` on the first criterion and band; with ``with_failures`` one ERROR trial and
    one finished trial whose latents file is missing.
    """
    rng = np.random.default_rng(123)
    study = Path(root)
    (study / "latents").mkdir(parents=True, exist_ok=True)
    rows = []

    def add(model: str, crit: str, band: str, seed: int, margin: float, jl_lambda: float, bonus: float) -> dict:
        mean, noise = MODELS[model]
        tid = f"t{len(rows):03d}"
        test_full = float(np.clip(mean + bonus + rng.normal(0, 0.03), -1, 1))
        row = {
            "trial_id": tid, "status": "TERMINATED", "error": "", "model": model, "criterion": crit,
            "seed": seed, "margin": margin, "n_bins": 5, "jl_lambda": jl_lambda, "lr": 0.005,
            "contrastive": "weighted", "band": band,
            "val_r2_full": test_full + rng.normal(0, 0.02), "test_r2_full": test_full,
            "test_r2_chunk": test_full - 0.05 + rng.normal(0, 0.02), "val_r2_chunk": test_full - 0.04,
            "epochs_run": 120, "best_epoch": 45,
        }
        rows.append(row)
        np.savez(study / "latents" / f"{tid}.npz", **_latents(rng, n_test, noise, one_bin=one_bin))
        return row

    for model in MODELS:
        for crit in criteria:
            for band in bands:
                for seed in seeds:
                    add(model, crit, band, seed, 0.5, 1.0, 0.0)
    for margin in sweep_margins:
        for seed in seeds:
            add("contrastive-jl", criteria[0], bands[0], seed, margin, 1.0, -0.1 * abs(margin - 0.5))
    if with_failures:
        missing = add("contrastive", criteria[0], bands[0], seeds[0], 2.0, 1.0, 0.0)
        (study / "latents" / f"{missing['trial_id']}.npz").unlink()
        rows.append({
            "trial_id": f"t{len(rows):03d}", "status": "ERROR", "error": "FloatingPointError: non-finite loss",
            "model": "contrastive-jl", "criterion": criteria[0], "seed": seeds[0], "margin": 4.0, "n_bins": 5,
            "jl_lambda": 1.0, "lr": 0.005, "contrastive": "weighted", "band": bands[0],
        })
    pd.DataFrame(rows).to_csv(study / "trials.csv", index=False)
    (study / "study.json").write_text(json.dumps({
        "name": "fake_sweep", "question": "Does the margin s matter? (fake data for tests)",
        "command": "python studies/margin_sweep.py --smoke-test", "argv": ["studies/margin_sweep.py", "--smoke-test"],
        "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:10:00",
        "versions": {"raympa": "0.1.0", "ray": "2.60.0", "torch": "2.13.0"},
        "data": {"kind": "demo", "n_recordings": 240, "bands": list(bands), "note": "<b>not</b> real FBA data"},
        "search_space": {"margin": [0.25, 0.5, 1.0]}, "metric": "val_r2_full", "mode": "max",
    }, indent=2))
    return study
