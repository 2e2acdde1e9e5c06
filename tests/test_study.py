"""Tests of raympa.study: config boundary, search spaces, the runner and the study folder.

Tune mechanics run against ``tests/study_standin.py`` (a fake fit with fit's contract) on the
shared ``ray_local`` instance; the study scripts' smoke tests run the real training.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raympa import constants as C
from raympa import study
from raympa.config import TrainConfig

import study_standin


def test_split_config_handles_band_and_repeat_index():
    cfg, band = study.split_config({"model": "contrastive", "seed": 3, "band": "symphonicband",
                                    "__trial_index__": 2, "margin": 1.0})
    assert isinstance(cfg, TrainConfig)
    assert (cfg.model, cfg.seed, cfg.margin, band) == ("contrastive", 5, 1.0, "symphonicband")
    assert study.split_config({"band": "all"})[1] is None
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        study.split_config({"margn": 0.5})


def test_margin_space_is_conditional_and_exportable():
    import optuna

    space = study.margin_sweep_space(criterion="note_accuracy", epochs=3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = s.ask()
        constants = space(trial)
        p = trial.params
        assert constants == {"criterion": "note_accuracy", "epochs": 3}
        assert ("margin" in p) == ("n_bins" in p) == (p["contrastive"] == "weighted")
        assert ("rnc_temperature" in p) == (p["contrastive"] == "rnc")
        assert ("jl_lambda" in p) == (p["model"] == "contrastive-jl")
        assert 5e-4 <= p["lr"] <= 5e-2
        assert set(space.distributions(p)) == set(p)
        TrainConfig.from_dict({**constants, **p})  # every suggestion is a valid config
        seen.add((p["model"], p["contrastive"]))
        s.tell(trial, 0.0)
    assert len(seen) == 4
    assert space.describe()["searched"]["margin"]["when"] == {"contrastive": ["weighted"]}


def test_error_message_unwraps_ray_errors():
    class Wrapper(Exception):
        def __init__(self, cause):
            super().__init__("ray.exceptions.RayTaskError(FloatingPointError): traceback ...\nFloatingPointError: boom")
            self.cause = cause

    msg = study.error_message(Wrapper(FloatingPointError("non-finite loss at epoch 3")))
    assert msg == "FloatingPointError: non-finite loss at epoch 3"
    assert study.error_message(None) == ""


@pytest.fixture()
def tiny_data():
    from raympa.dataset import synthetic_set

    return synthetic_set(30, seed=0, n_frames=(200, 300))


def test_grid_study_writes_the_study_folder(ray_local, tiny_data, tmp_path):
    """A grid with one diverging configuration: it ends as ERROR with its message, the rest finish."""
    study_standin.register()
    log = tmp_path / "log.jsonl"
    fit = functools.partial(study_standin.standin_fit, log=str(log))
    space = {"lr": {"grid_search": [0.005, 0.9]}, "margin": {"grid_search": [0.5, 2.0]},
             "model": "contrastive-jl", "epochs": 3, "band": "middleschool"}
    settings = study.StudySettings(name="grid", question="does the runner work?", max_failures=0)
    out = study.run_study(settings, tiny_data, study_dir=tmp_path / "grid", param_space=space,
                          fit=fit, argv=["test"], data_info={"kind": "synthetic"})

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4
    assert sorted(trials["status"]) == ["ERROR", "ERROR", "TERMINATED", "TERMINATED"]
    bad = trials[trials["status"] == "ERROR"]
    assert (bad["lr"] == 0.9).all()
    assert bad["error"].str.contains("FloatingPointError").all()
    assert bad["error"].str.contains("non-finite loss").all()
    good = trials[trials["status"] == "TERMINATED"].set_index("margin")
    for margin, row in good.iterrows():
        cfg = TrainConfig(model="contrastive-jl", lr=0.005, margin=margin, epochs=3)
        assert row["val_r2_full"] == pytest.approx(study_standin.score(cfg))
        assert row["band"] == "middleschool" and row["model"] == "contrastive-jl" and row["final"]
        z = np.load(out / "latents" / f"{row['trial_id']}.npz")
        n_test = len(tiny_data.select(band="middleschool", split="test"))
        assert z["z"].shape == (n_test, 16) and z["recording_id"].shape == (n_test,)
    assert len(list((out / "latents").glob("*.npz"))) == 2

    meta = json.loads((out / "study.json").read_text())
    assert meta["question"] == "does the runner work?" and meta["finished"]
    assert meta["status_counts"] == {"TERMINATED": 2, "ERROR": 2}
    assert meta["search_space"]["searched"]["lr"] == {"grid": [0.005, 0.9]}
    assert (out / "tune").is_dir()
    assert not any(Path(p).is_absolute() for p in trials["trial_path"])  # paths relative to the folder
    assert all((out / p).is_dir() for p in trials["trial_path"])

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    s = optuna.load_study(study_name="grid", storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal"))))
    states = sorted(t.state.name for t in s.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    assert s.best_trial.params == {"lr": 0.005, "margin": 0.5}
    assert s.best_value == pytest.approx(0.8)

    with pytest.raises(FileExistsError, match="--resume"):
        study.run_study(settings, tiny_data, study_dir=out, param_space=space, fit=fit)


def test_optuna_sweep_with_repeats_then_resume(ray_local, tiny_data, tmp_path):
    """Optuna, seeds 0..k-1 of a configuration in one trial; an errored study resumes without re-running."""
    study_standin.register()
    log = tmp_path / "log.jsonl"
    space = study.margin_sweep_space(models=("contrastive-jl",), terms=("weighted",), epochs=4)
    settings = study.StudySettings(name="sweep", num_samples=2, repeats=2, max_failures=0, checkpoint_s=0)
    # first attempt: every trial "diverges" at epoch 2 (after two checkpoints), like an interruption
    failing = functools.partial(study_standin.standin_fit_members, log=str(log), fail_lr=0.0, fail_at=2)
    out = study.run_study(settings, tiny_data, study_dir=tmp_path / "sweep", search=space, fit_members=failing)
    first = pd.read_csv(out / "trials.csv")
    assert len(first) == 4 and (first["status"] == "ERROR").all()
    assert sorted(first["seed"]) == [0, 0, 1, 1]
    # same configuration for both repeats of a group
    assert first.groupby("margin")["seed"].apply(sorted).map(tuple).tolist() == [(0, 1), (0, 1)]

    n_before = len(study_standin.read_log(log))
    ok = functools.partial(study_standin.standin_fit_members, log=str(log))
    out = study.run_study(settings, tiny_data, study_dir=out, search=space, fit_members=ok, resume=True)
    second = pd.read_csv(out / "trials.csv")
    assert (second["status"] == "TERMINATED").all() and len(second) == 4
    assert set(second["trial_id"]) == set(first["trial_id"])  # the same trials, continued
    assert second["tune_trial_id"].nunique() == 2  # one Tune trial per configuration, one row per seed
    resumed = study_standin.read_log(log)[n_before:]
    starts = [e for e in resumed if e["event"] == "start"]
    assert len(starts) == 4 and all(e["epoch"] == 2 for e in starts)  # from the epoch-2 checkpoint
    meta = json.loads((out / "study.json").read_text())
    assert len(meta["resumed"]) == 1
    for row in second.itertuples():
        assert math.isfinite(row.val_r2_full)

    # the searcher wrote its Optuna study to the folder's journal; the resumed run continued it
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["sweep"]
    s = optuna.load_study(study_name="sweep", storage=storage)
    complete = [t for t in s.trials if t.state.name == "COMPLETE"]
    assert complete, [t.state.name for t in s.trials]
    for t in complete:  # conditional space: no rnc_temperature for the weighted term
        assert "margin" in t.params and "rnc_temperature" not in t.params
        assert t.value == pytest.approx(second[second["margin"] == t.params["margin"]]["val_r2_full"].mean())


def test_batched_trial_keeps_one_row_per_seed_and_a_failed_member_alone(ray_local, tiny_data, tmp_path):
    """One trial trains seeds 0-2 together; seed 1 diverges: its row is ERROR, the others finish."""
    study_standin.register()
    fit_members = functools.partial(study_standin.standin_fit_members, log=str(tmp_path / "log.jsonl"), fail_seeds=(1,))
    space = {"margin": {"grid_search": [0.5]}, "seeds": [0, 1, 2], "epochs": 3, "band": "middleschool"}
    out = study.run_study(study.StudySettings(name="batched", max_failures=0), tiny_data, study_dir=tmp_path / "b",
                          param_space=space, fit_members=fit_members)
    trials = pd.read_csv(out / "trials.csv").set_index("seed")
    assert trials["tune_trial_id"].nunique() == 1 and sorted(trials.index) == [0, 1, 2]
    assert trials.loc[1, "status"] == "ERROR" and "non-finite" in trials.loc[1, "error"]
    assert (trials.loc[[0, 2], "status"] == "TERMINATED").all()
    cfg = TrainConfig(margin=0.5, epochs=3)
    assert trials.loc[[0, 2], "val_r2_full"].tolist() == pytest.approx([study_standin.score(cfg)] * 2)
    assert sorted(p.name for p in (out / "latents").glob("*.npz")) == sorted(
        f"{trials.loc[s, 'trial_id']}.npz" for s in (0, 2))


# ----------------------------------------------------------------------------- the study scripts
def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "studies" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"studies_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory):
    """One demo data folder and contour cache shared by both scripts' smoke tests."""
    root = tmp_path_factory.mktemp("smoke")
    return root / "data", root / "cache"


@pytest.mark.parametrize("script, n_trials, models", [
    ("margin_sweep", 3, {"pcconvnet", "contrastive", "contrastive-jl"}),  # 2 searched + the baseline
    ("paper_replication", 3, {"pcconvnet", "contrastive", "contrastive-jl"}),
])
def test_study_script_smoke_test(ray_local, smoke_dirs, tmp_path, monkeypatch, script, n_trials, models):
    data_dir, cache = smoke_dirs
    monkeypatch.setenv("RAYMPA_CACHE", str(cache))
    module = _script(script)
    assert module.main(["--smoke-test", "--data-dir", str(data_dir), "--storage-path", str(tmp_path)]) == 0
    out = tmp_path / f"{script}_smoke"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == n_trials and (trials["status"] == "TERMINATED").all(), trials[["status", "error"]]
    assert trials["final"].all() and trials["val_r2_full"].notna().all()
    assert trials["epochs_run"].max() <= 3 + 2
    if script == "margin_sweep":
        assert set(trials["model"]) <= models
        assert (trials["model"] == "pcconvnet").sum() == 1  # the baseline beside the searched configurations
    else:
        assert set(trials["model"]) == models
    for tid in trials["trial_id"]:
        z = np.load(out / "latents" / f"{tid}.npz")
        assert z["z"].ndim == 2 and z["z"].shape[1] == 16 and len(z["y"]) == len(z["z"]) > 0
    meta = json.loads((out / "study.json").read_text())
    assert meta["data"]["kind"] == "demo" and meta["data"]["n_recordings"] == 24
    assert meta["command"].startswith(f"python studies/{script}.py --smoke-test")
    assert (out / "optuna.journal").stat().st_size > 0
    assert not any(Path(p).is_absolute() for p in trials["trial_path"])

    # the best configuration's model scores a recording (raympa predict --study's function)
    from raympa.export import predict_study

    audio = sorted(data_dir.rglob("*.wav"))[:2]
    scores = predict_study(out, audio)
    assert list(scores.columns) == ["audio_path", "note_accuracy", "note_accuracy_sd", "note"]
    assert len(scores) == 2 and scores["note_accuracy"].notna().all()
    from raympa.cli import main

    assert main(["predict", "--study", str(out), str(audio[0]), "--out", str(tmp_path / "scores.csv")]) == 0
    assert pd.read_csv(tmp_path / "scores.csv")["note_accuracy"].tolist() == pytest.approx(scores["note_accuracy"][:1])


def test_study_script_help_imports_nothing_heavy():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import runpy, sys; sys.argv = ['x', '--help']\n"
            "try:\n    runpy.run_path(sys.argv_path, run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'librosa') if m in sys.modules))")
    for script in ("margin_sweep", "paper_replication"):
        src = code.replace("sys.argv_path", repr(str(root / "studies" / f"{script}.py")))
        out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "[]"
        assert "--gpus-per-trial" in out and "--storage-path" in out


_INTERRUPTED_DRIVER = """
import functools, sys
sys.path.insert(0, {tests!r})
import study_standin
from raympa import constants as C
from raympa import study
from raympa.dataset import synthetic_set
study.init_ray(num_cpus=2)
study_standin.register()
fit = functools.partial(study_standin.standin_fit, log={log!r}, sleep=0.4)
space = {{"seed": {{"grid_search": list(range(6))}}, "epochs": 10}}
study.run_study(study.StudySettings(name="cut"), synthetic_set(20, n_frames=(200, 300)),
                study_dir={out!r}, param_space=space, fit=fit)
"""


def test_resume_after_ctrl_c(ray_local, tmp_path):
    """A study interrupted with SIGINT (Ctrl-C) resumes: finished trials are not run again."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    log, out = tmp_path / "log.jsonl", tmp_path / "cut"
    src = _INTERRUPTED_DRIVER.format(tests=str(Path(__file__).parent), log=str(log), out=str(out))
    env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="1", RAY_AUTH_MODE="disabled")
    proc = subprocess.Popen([sys.executable, "-c", src], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len([e for e in study_standin.read_log(log) if e["event"] == "end"]) < 2:
            time.sleep(0.2)
        time.sleep(1.5)  # let Tune save its experiment state with those trials finished
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = {e["seed"] for e in study_standin.read_log(log) if e["event"] == "end"}
    assert 2 <= len(done_before) < 6
    n_before = len(study_standin.read_log(log))

    study_standin.register()
    fit = functools.partial(study_standin.standin_fit, log=str(log))
    from raympa.dataset import synthetic_set

    study.run_study(study.StudySettings(name="cut"), synthetic_set(20, n_frames=(200, 300)), study_dir=out, resume=True, fit=fit,
                    param_space={"seed": {"grid_search": list(range(6))}, "epochs": 10})
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and (trials["status"] == "TERMINATED").all()
    rerun = {e["seed"] for e in study_standin.read_log(log)[n_before:] if e["event"] == "start"}
    assert rerun and not (rerun & done_before)  # only the unfinished trials ran again


# ----------------------------------------------------------------------------- from a study to scores
def _fake_study(root, rows):
    """A study folder with trials.csv and, per trial, a Tune folder whose last checkpoint has a model file."""
    from raympa import studyfolder

    root.mkdir(parents=True, exist_ok=True)
    for r in rows:
        for k in (0, 1):  # two checkpoints: the export takes the last
            d = root / "tune" / f"trial_{r['trial_id']}" / f"checkpoint_00000{k}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "checkpoint.pt").write_text(f"{r['trial_id']}-{k}")
    base = TrainConfig().to_dict()
    table = pd.DataFrame([{**base, "status": "TERMINATED", "final": True, "band": "middleschool",
                           "trial_path": f"tune/trial_{r['trial_id']}", **r} for r in rows])
    studyfolder.write_trials(root, table)
    studyfolder.write_study_json(root, {"metric": "val_r2_full", "mode": "max"})
    return root


def test_export_takes_the_best_mean_over_seeds_and_never_a_missing_metric(tmp_path):
    from raympa.export import best_trials, export_best

    nan = float("nan")
    rows = [
        {"trial_id": "a0", "margin": 0.5, "seed": 0, "val_r2_full": 0.5},
        {"trial_id": "a1", "margin": 0.5, "seed": 1, "val_r2_full": 0.7},  # mean 0.6
        {"trial_id": "b0", "margin": 2.0, "seed": 0, "val_r2_full": 0.9},
        {"trial_id": "b1", "margin": 2.0, "seed": 1, "val_r2_full": 0.1},  # mean 0.5
        {"trial_id": "c0", "margin": 1.0, "seed": 0, "val_r2_full": nan},  # no metric: never chosen
        {"trial_id": "c1", "margin": 1.0, "seed": 1, "val_r2_full": 0.95, "status": "ERROR"},
    ]
    study_dir = _fake_study(tmp_path / "s", rows)
    best = best_trials(study_dir)
    assert list(best["trial_id"]) == ["a0", "a1"] and best["config_mean"].iloc[0] == pytest.approx(0.6)
    written = export_best(study_dir, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "note_accuracy/seed-0/checkpoint.pt", "note_accuracy/seed-1/checkpoint.pt"]
    assert [p.read_text() for p in written] == ["a0-1", "a1-1"]  # each trial's last checkpoint
    assert (tmp_path / "out" / "best.csv").is_file()


def test_export_with_several_bands_asks_for_one(tmp_path, capsys):
    from raympa.cli import main

    rows = [{"trial_id": "m0", "seed": 0, "val_r2_full": 0.2},
            {"trial_id": "s0", "seed": 0, "val_r2_full": 0.3, "band": "symphonicband"}]
    study_dir = _fake_study(tmp_path / "s", rows)
    assert main(["export", str(study_dir), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--band" in err and "middleschool, symphonicband" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(study_dir), "--out", str(tmp_path / "out"), "--band", "symphonicband"]) == 0
    assert (tmp_path / "out" / "note_accuracy" / "seed-0" / "checkpoint.pt").read_text() == "s0-1"


def test_address_without_storage_path_is_refused(capsys):
    from raympa.cli import main

    assert main(["study", "margin-sweep", "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--storage-path" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_margin_sweep_smoke_test_with_references(ray_local, smoke_dirs, tmp_path, monkeypatch):
    """--reference table: the data carries the demo's MIDI references and informed trials train on them."""
    data_dir, cache = smoke_dirs
    monkeypatch.setenv("RAYMPA_CACHE", str(cache))
    module = _script("margin_sweep")
    assert module.main(["--smoke-test", "--data-dir", str(data_dir), "--storage-path", str(tmp_path),
                        "--reference", "table", "--models", "si-contrastive-jl"]) == 0
    out = tmp_path / "margin_sweep_smoke"
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["status"] == "TERMINATED").all(), trials[["status", "error"]]
    assert (trials["model"] == "pcconvnet").sum() == 1  # the baseline kept, without a reference
    informed = trials[trials["model"].isin(C.REFERENCE_MODELS)]
    assert len(informed) >= 1 and informed["val_r2_full"].notna().all()
    assert set(trials["reference"]) == {"none", "table"}
    meta = json.loads((out / "study.json").read_text())
    assert meta["data"]["reference"] == "table"


def test_search_spaces_add_informed_models():
    from raympa.search import INFORMED_REFERENCE, margin_sweep_space, paper_grid
    from raympa.study import split_config

    space = margin_sweep_space(reference="peers")
    assert {"si-contrastive", "si-contrastive-jl"} <= set(space.params[0].choices)
    grid = paper_grid(reference="peers", criteria=["note_accuracy"], bands=["middleschool"])
    assert set(grid["model"]["grid_search"]) == {*C.PAPER_MODELS, *C.REFERENCE_MODELS}
    for model in grid["model"]["grid_search"]:
        cfg, _ = split_config({"model": model, INFORMED_REFERENCE: "peers"})
        assert cfg.reference == ("peers" if model in C.REFERENCE_MODELS else "none")
    assert INFORMED_REFERENCE not in paper_grid()


def test_smoke_study_console_is_short(tmp_path):
    """A smoke study run as a user runs it prints at most 250 lines and no repeated Tune warning."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAYMPA_CACHE=str(tmp_path / "cache"))
    env.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)  # as a user runs it: Tune writes its result files
    run = subprocess.run([sys.executable, str(root / "studies" / "margin_sweep.py"), "--smoke-test",
                          "--storage-path", str(tmp_path), "--data-dir", str(tmp_path / "data")],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = (run.stdout + run.stderr).splitlines()
    assert len(lines) <= 250, len(lines)
    assert sum("snapshotting has been triggered" in ln for ln in lines) == 0
    assert sum(ln.startswith("[raympa] trial ") for ln in lines) == 3  # one line per finished trial
    assert (tmp_path / "margin_sweep_smoke" / "tune").is_dir()
    assert list((tmp_path / "margin_sweep_smoke" / "tune").glob("trial_*/result.json"))  # Tune's files stay


def test_margin_sweep_texts_state_its_real_defaults():
    """The script's and the module's docstrings name the defaults the code uses (they went stale once)."""
    import runpy
    from pathlib import Path

    from raympa.studies import margin_sweep

    o = margin_sweep.Options()
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "studies" / "margin_sweep.py"))["__doc__"]
    for doc in (script, margin_sweep.__doc__):
        text = " ".join(doc.split())
        assert f"{o.demo_n} simulated" in text and f"{o.num_samples} configurations" in text
        assert f"{o.repeats} seeds" in text and f"{o.epochs} epochs" in text
        assert f"{o.encoder_epochs} encoder" in text and f"patience {o.patience}" in text
        assert f"{o.demo_duration:g} s etude" in text
