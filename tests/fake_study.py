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


def _latents(rng: np.random.Generator, n: int, noise: float, *, one_bin: bool,
             chunks_per_recording: int = 0) -> dict[str, np.ndarray]:
    """Test latents of one trial; with ``chunks_per_recording`` also the chunk keys train writes
    (``z_chunk``, ``y_chunk``, ``recording_index_chunk``: every window of every test recording)."""
    y = np.full(n, 0.5, np.float32) if one_bin else rng.uniform(0, 1, n).astype(np.float32)
    y[: min(n, 5)] = y[: min(n, 5)] if one_bin else np.array([0.0, 0.2, 0.4, 0.6, 1.0], np.float32)[: min(n, 5)]
    direction = np.ones(16, np.float32) / 4.0  # unit vector in 16-d
    z = 4.0 * y[:, None] * direction[None, :] + rng.normal(0, noise, (n, 16)).astype(np.float32)  # (n, 16)
    bins = np.minimum((y * 5 + 1e-9).astype(np.int64), 4)  # inclusive lower bounds, 1.0 -> 4
    rid = np.array([f"rec{i:03d}" for i in range(n)])
    out = {"z": z.astype(np.float32), "y": y, "bins": bins, "recording_id": rid}
    if chunks_per_recording:
        index = np.repeat(np.arange(n), chunks_per_recording)  # (n_chunks,)
        z_chunk = z[index] + rng.normal(0, noise, (len(index), 16)).astype(np.float32)  # (n_chunks, 16)
        out.update(z_chunk=z_chunk.astype(np.float32), y_chunk=y[index], recording_index_chunk=index.astype(np.int64))
    return out


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
    chunks_per_recording: int = 0,
) -> Path:
    """Write a fake study folder under ``root`` and return its path.

    Trials: every model x criterion x band x seed (margin 0.5), plus contrastive-jl with each of
    ``sweep_margins`` on the first criterion and band; with ``with_failures`` one ERROR trial and
    one finished trial whose latents file is missing. The first contrastive-jl trial's best epoch
    is its last (a run still improving when it stopped). ``chunks_per_recording`` > 0 adds chunk
    latents to every latents file.
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
        if model == "contrastive-jl" and not any(r["model"] == model for r in rows):
            row["best_epoch"] = 120
        rows.append(row)
        np.savez(study / "latents" / f"{tid}.npz", **_latents(rng, n_test, noise, one_bin=one_bin,
                                                               chunks_per_recording=chunks_per_recording))
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


# the conditional search space of a margin sweep, as study.json describes it (raympa.search)
SWEEP_SPACE = {
    "model": {"kind": "categorical", "choices": ["contrastive", "contrastive-jl"]},
    "contrastive": {"kind": "categorical", "choices": ["weighted", "rnc"]},
    "margin": {"kind": "float", "low": 0.05, "high": 4.0, "log": True, "when": {"contrastive": ["weighted"]}},
    "rnc_temperature": {"kind": "float", "low": 0.5, "high": 4.0, "log": True, "when": {"contrastive": ["rnc"]}},
    "jl_lambda": {"kind": "float", "low": 0.1, "high": 10.0, "log": True, "when": {"model": ["contrastive-jl"]}},
    "lr": {"kind": "float", "low": 5e-4, "high": 5e-2, "log": True},
}
SWEEP_DEFAULTS = {"margin": 0.5, "rnc_temperature": 2.0, "jl_lambda": 1.0}  # TrainConfig's, for unused parameters


def sweep_value(model: str, term: str, params: dict[str, float]) -> float:
    """The fake validation R² of a sweep configuration: best at margin 0.5 (weighted) or tau 2
    (rnc), a small bonus for the joint model at lambda 1; the learning rate has no effect."""
    if term == "weighted":
        v = 0.40 - 0.08 * abs(np.log(params["margin"] / 0.5))
    else:
        v = 0.38 - 0.08 * abs(np.log(params["rnc_temperature"] / 2.0))
    if model == "contrastive-jl":
        v += 0.02 - 0.02 * abs(np.log(params["jl_lambda"]))
    return float(v)


def _write_journal(path: Path, rows: list[dict]) -> None:
    """An Optuna journal as raympa.study writes it: the searched trials with their active (conditional)
    parameters and distributions, the trial id in the user attributes; the baseline is not in it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    ostudy = optuna.create_study(study_name="fake_margin_sweep", storage=storage, direction="maximize")
    dists = {k: _distribution(v) for k, v in SWEEP_SPACE.items()}
    for r in rows:
        if r["model"] == "pcconvnet":
            continue
        active = [k for k, v in SWEEP_SPACE.items() if all(r[c] in a for c, a in v.get("when", {}).items())]
        ostudy.add_trial(optuna.trial.create_trial(
            params={k: r[k] for k in active}, distributions={k: dists[k] for k in active},
            value=r["val_r2_full"], user_attrs={"trial_id": r["trial_id"], "seed": r["seed"]}))


def _distribution(desc: dict):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if desc["kind"] == "categorical":
        return CategoricalDistribution(desc["choices"])
    return FloatDistribution(desc["low"], desc["high"], log=desc["log"])


def make_fake_sweep(
    root: Path,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    configs_per_leaf: int = 4,
    n_test: int = 20,
    chunks_per_recording: int = 6,
    journal: bool = True,
) -> Path:
    """A fake margin sweep: PCConvNet beside ``configs_per_leaf`` configurations of each model x
    contrastive term of ``SWEEP_SPACE``, every one with every seed (same seeds as the baseline).

    trials.csv holds TrainConfig defaults for the parameters a trial does not use (margin 0.5 for
    Rank-N-Contrast trials ...), as a real study does; the journal (``journal=True``) holds only the
    active ones. The searched configurations beat the baseline (mean test R² 0.30) by about 0.1.
    """
    rng = np.random.default_rng(7)
    study = Path(root)
    (study / "latents").mkdir(parents=True, exist_ok=True)
    rows = []
    configs = [("pcconvnet", "weighted", dict(SWEEP_DEFAULTS, lr=0.005), 0.30)]
    for model in ("contrastive", "contrastive-jl"):
        for term in ("weighted", "rnc"):
            for _ in range(configs_per_leaf):
                p = dict(SWEEP_DEFAULTS, lr=float(np.exp(rng.uniform(np.log(5e-4), np.log(5e-2)))))
                if term == "weighted":
                    p["margin"] = float(np.exp(rng.uniform(np.log(0.05), np.log(4.0))))
                else:
                    p["rnc_temperature"] = float(np.exp(rng.uniform(np.log(0.5), np.log(4.0))))
                if model == "contrastive-jl":
                    p["jl_lambda"] = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
                configs.append((model, term, p, sweep_value(model, term, p)))
    for model, term, params, value in configs:
        for seed in seeds:
            val = value + rng.normal(0, 0.01)
            rows.append({
                "trial_id": f"s{len(rows):03d}", "status": "TERMINATED", "error": "", "model": model,
                "criterion": "note_accuracy", "seed": seed, "contrastive": term, "n_bins": 5, **params,
                "band": "middleschool", "val_r2_full": val, "test_r2_full": val + rng.normal(0, 0.01),
                "test_r2_chunk": val - 0.05 + rng.normal(0, 0.01), "val_r2_chunk": val - 0.04,
                "epochs_run": 150, "best_epoch": int(rng.integers(40, 140)), "final": True,
            })
            noise = MODELS[model][1]
            np.savez(study / "latents" / f"{rows[-1]['trial_id']}.npz",
                     **_latents(rng, n_test, noise, one_bin=False, chunks_per_recording=chunks_per_recording))
    pd.DataFrame(rows).to_csv(study / "trials.csv", index=False)
    if journal:
        _write_journal(study / "optuna.journal", rows)
    (study / "study.json").write_text(json.dumps({
        "name": "fake_margin_sweep", "question": "Does contrastive learning beat PCConvNet? (fake data for tests)",
        "command": "python studies/margin_sweep.py", "metric": "val_r2_full", "mode": "max",
        "search_space": {"searched": SWEEP_SPACE, "constants": {"criterion": "note_accuracy", "band": "middleschool"}},
    }, indent=2))
    return study


def add_predictions(study: Path, *, noise: dict[str, float], seed: int = 0) -> Path:
    """Give every trial's latents file the full-length test predictions train writes (``pred``).

    The test recordings and their ratings become the same in every file (as in a real study: one
    test set); each trial predicts ``y + N(0, noise[model])``, so a model with less noise has the
    higher R² on the recordings.
    """
    rng = np.random.default_rng(seed)
    trials = pd.read_csv(study / "trials.csv")
    y = None
    for tid, model in trials[["trial_id", "model"]].itertuples(index=False):
        path = study / "latents" / f"{tid}.npz"
        if not path.is_file():
            continue
        with np.load(path) as f:
            data = dict(f)
        if y is None:
            y = rng.uniform(0, 1, len(data["y"])).astype(np.float32)
        data["y"] = y
        data["pred"] = (y + rng.normal(0, noise[model], len(y))).astype(np.float32)
        np.savez(path, **data)
    return study
