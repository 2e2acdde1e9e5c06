"""The study on Ray Tune: the trainable, the search spaces, and the study runner.

A study is many runs of :func:`raympa.train.fit` (Seshadri & Lerch 2021, section 4) scheduled by
Ray Tune. The pieces:

* :func:`trainable` -- the one top-level Tune function. Its flat config dict becomes a
  :class:`~raympa.config.TrainConfig` in exactly one place (:func:`split_config`, which handles the
  non-TrainConfig keys ``band`` and ``__trial_index__`` and then calls ``TrainConfig.from_dict``).
  The :class:`~raympa.dataset.ContourSet` reaches it once, through the object store
  (``tune.with_parameters``). It reports every epoch with ``tune.report`` and a checkpoint, and
  resumes from ``tune.get_checkpoint()``.
* :class:`SearchSpace` -- a declarative, conditional search space used both as Optuna's
  define-by-run function (``OptunaSearch``) and to export the finished study to an Optuna journal
  file; :func:`margin_sweep_space` (the sweep of s, C, lambda, lr and the contrastive term) and
  :func:`paper_grid` (3 models x 3 criteria x 2 bands x 5 seeds, paper section 4.2).
* :func:`run_study` -- builds the ``tune.Tuner`` (or restores it), runs it, and writes the study
  folder of docs/architecture.md: ``study.json``, ``trials.csv``, ``latents/<trial_id>.npz``,
  ``tune/`` and ``optuna.journal``.

Metric: ``val_r2_full`` (R² of full-length validation recordings, higher is better); the paper
selects by validation loss with early stopping, which :func:`raympa.train.fit` does inside a run.

This module is imported by the study scripts at parse time: torch, ray and optuna are imported
inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from raympa import constants as C
from raympa.config import TrainConfig

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import pandas as pd

    from raympa.dataset import ContourSet

METRIC = "val_r2_full"  # what the searcher optimises (validation R², full recordings)
MODE = "max"
TRIAL_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater: index of the repeat, 0..k-1
EXTRA_KEYS = ("band",)  # config keys that are not TrainConfig fields (handled in split_config)
RESULT_COLUMNS = ("val_r2_full", "test_r2_full", "test_r2_chunk", "val_r2_chunk", "epochs_run", "best_epoch")
STATE_FILE = "state.pt"  # per-epoch checkpoint: fit's get_state() dict
FINAL_FILE = "final.json"  # last checkpoint of a finished trial: its final metrics
LATENTS_FILE = "latents.npz"
# keys Tune adds to every result (kept out of trials.csv except training_iteration, time_total_s)
_TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
    "should_checkpoint", "experiment_tag", "epoch", "stage", "stage_epoch", "train_loss", "val_loss",
    "epoch_seconds",
})

FitFn = Callable[..., Any]  # raympa.train.fit or a stand-in with the same signature


# ----------------------------------------------------------------------------- config boundary
def split_config(config: Mapping[str, Any]) -> tuple[TrainConfig, str | None]:
    """Turn a Tune config dict into ``(TrainConfig, band)``: the one boundary.

    ``band`` (not a TrainConfig field) is taken out first; ``None``, ``""`` and ``"all"`` mean
    every band. ``__trial_index__`` (set by ``Repeater``) is added to ``seed``, so repeat k of a
    configuration trains with seed ``seed + k``. Every other key goes to ``TrainConfig.from_dict``,
    which rejects unknown keys.
    """
    params = dict(config)
    band = params.pop("band", None)
    if band in ("", "all"):
        band = None
    if TRIAL_INDEX in params:
        params["seed"] = int(params.get("seed", 0)) + int(params.pop(TRIAL_INDEX))
    return TrainConfig.from_dict(params), (None if band is None else str(band))


# ----------------------------------------------------------------------------- the trainable
def trainable(
    config: dict[str, Any],
    data: "ContourSet",
    fit: FitFn | None = None,
    threads: int = 1,
    checkpoint_every: int = 1,
) -> None:
    """One Tune trial: train ``config`` on ``data``, report every epoch, checkpoint, resume.

    Args:
        config: flat dict of TrainConfig fields plus ``band`` (and Tune's ``__trial_index__``).
        data: the study's contours and ratings, shared through the object store.
        fit: training function with :func:`raympa.train.fit`'s signature (default: that one).
        threads: torch intra-op threads (the trial's CPU share).
        checkpoint_every: epochs between checkpoints (1 = every epoch).

    The last report carries the final metrics (``TrainResult.metrics``, ``final=True``) and a
    checkpoint holding ``latents.npz`` and ``final.json``. A non-finite loss
    (``FloatingPointError`` from fit) or any other exception fails the trial; Tune records it as
    ERROR with the message and the study goes on.
    """
    import numpy as np
    import torch
    from ray import tune

    cfg, band = split_config(config)
    if fit is None:
        from raympa.train import fit
    torch.set_num_threads(max(1, int(threads)))

    resume = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            final = Path(d) / FINAL_FILE
            if final.is_file():  # finished before a restart: report the same end again
                with tempfile.TemporaryDirectory() as tmp:
                    for f in Path(d).iterdir():
                        shutil.copy(f, tmp)
                    tune.report(json.loads(final.read_text()), checkpoint=tune.Checkpoint.from_directory(tmp))
                return
            if (Path(d) / STATE_FILE).is_file():
                resume = torch.load(Path(d) / STATE_FILE, weights_only=False)  # our own file

    n_reports = 0

    def on_epoch(metrics: dict[str, Any], get_state: Callable[[], dict]) -> None:
        nonlocal n_reports
        n_reports += 1
        row = _scalars(metrics)
        row.setdefault(METRIC, float("nan"))  # Tune requires the metric in every report
        row["final"] = False
        if n_reports % max(1, checkpoint_every):
            tune.report(row)
            return
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(get_state(), Path(tmp) / STATE_FILE)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))

    result = fit(cfg, data, band=band, callback=on_epoch, resume=resume)
    final = _scalars(result.metrics)
    final.setdefault(METRIC, float("nan"))
    final["final"] = True
    with tempfile.TemporaryDirectory() as tmp:
        latents = getattr(result, "latents", None) or {}
        np.savez(Path(tmp) / LATENTS_FILE, **{k: np.asarray(v) for k, v in latents.items()})
        (Path(tmp) / FINAL_FILE).write_text(json.dumps(final))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-scalar entries of a metrics dict (numpy scalars turned into Python ones)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[str(k)] = v
    return out


# ----------------------------------------------------------------------------- search spaces
@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        name: TrainConfig field.
        kind: ``float`` / ``int`` (``low``..``high``, ``log`` scale) or ``categorical`` (``choices``).
        when: condition ``(other_param, allowed_values)``: searched only when it holds.
        note: where the range comes from (goes to study.json).
    """

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, tuple[Any, ...]] | None = None
    note: str = ""

    def active(self, values: Mapping[str, Any]) -> bool:
        return self.when is None or values.get(self.when[0]) in self.when[1]

    def distribution(self) -> Any:
        """The matching ``optuna.distributions`` object."""
        from optuna import distributions as D

        if self.kind == "categorical":
            return D.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return D.IntDistribution(int(self.low), int(self.high), log=self.log)
        return D.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
        if self.when:
            d["when"] = {self.when[0]: list(self.when[1])}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class SearchSpace:
    """Searched parameters (in suggestion order) plus constant TrainConfig fields."""

    params: tuple[Param, ...]
    constants: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run: suggest the active parameters, return the constants."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "categorical":
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
        return dict(self.constants)

    def distributions(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna distributions of the parameters active for ``values`` (a trial's config)."""
        return {p.name: p.distribution() for p in self.params if p.active(values) and p.name in values}

    def describe(self) -> dict[str, Any]:
        return {
            "searched": {p.name: p.describe() for p in self.params},
            "constants": dict(self.constants),
        }


def margin_sweep_space(
    *,
    models: Sequence[str] = ("contrastive", "contrastive-jl"),
    terms: Sequence[str] = ("weighted", "rnc"),
    **constants: Any,
) -> SearchSpace:
    """The margin sweep: s, C, lambda, lr and the contrastive term, for the two contrastive models.

    Ranges (all around the paper's values, section 3.2/4.2):

    * ``margin`` s: 0.05-4, log (paper s = 0.5). The target distance of two embeddings is
      s * |bin_i - bin_j|, so with C = 5 the largest is 4 s; embeddings are means of ReLU
      features with distances of order 1, and the range spans "collapsed" to "far apart".
    * ``n_bins`` C: 2-10 (paper C = 5): from a good/bad split to 0.1-wide rating bins (the FBA
      ratings are quantised to about 0.1).
    * ``rnc_temperature`` tau: 0.5-4, log (Zha et al. 2023 default tau = 2), for Rank-N-Contrast.
    * ``jl_lambda`` lambda: 0.1-10, log (paper: 1, L = L_MSE + L_C); only for the joint model.
    * ``lr``: 5e-4 - 5e-2, log (paper 0.005 for the joint model and the two-step head; the
      two-step encoder keeps the paper's 0.1, ``encoder_lr``).

    Args:
        models: TrainConfig models searched (default both contrastive models).
        terms: contrastive terms searched (``weighted`` = paper, ``rnc`` = Rank-N-Contrast).
        **constants: fixed TrainConfig fields (criterion, epochs ...) and ``band``.
    """
    weighted = ("contrastive", ("weighted",))
    return SearchSpace(
        params=(
            Param("model", "categorical", choices=tuple(models), note="joint (contrastive-jl) or two-step (contrastive)"),
            Param("contrastive", "categorical", choices=tuple(terms), note="paper: weighted; rnc = Zha et al. 2023"),
            Param("margin", "float", 0.05, 4.0, log=True, when=weighted, note="paper s = 0.5"),
            Param("n_bins", "int", 2, 10, when=weighted, note="paper C = 5"),
            Param("rnc_temperature", "float", 0.5, 4.0, log=True, when=("contrastive", ("rnc",)),
                  note="Zha et al. 2023: tau = 2"),
            Param("jl_lambda", "float", 0.1, 10.0, log=True, when=("model", ("contrastive-jl",)),
                  note="paper: 1 (L = L_MSE + L_C)"),
            Param("lr", "float", 5e-4, 5e-2, log=True, note="paper 0.005"),
        ),
        constants=dict(constants),
    )


def paper_grid(
    *,
    models: Sequence[str] = ("pcconvnet", "contrastive", "contrastive-jl"),
    criteria: Sequence[str] = C.CRITERIA,
    bands: Sequence[str] = C.STUDY_BANDS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    **constants: Any,
) -> dict[str, Any]:
    """Tune ``param_space`` of the paper's grid (section 4.2): models x criteria x bands x seeds.

    The other TrainConfig fields keep their (paper) defaults unless given in ``constants``.
    """
    from ray import tune

    return {
        "model": tune.grid_search(list(models)),
        "criterion": tune.grid_search(list(criteria)),
        "band": tune.grid_search(list(bands)),
        "seed": tune.grid_search([int(s) for s in seeds]),
        **constants,
    }


def _grid_distributions(param_space: Mapping[str, Any]) -> dict[str, Any]:
    """Categorical Optuna distributions for the ``grid_search`` entries of a param space."""
    from optuna.distributions import CategoricalDistribution

    out = {}
    for k, v in param_space.items():
        if isinstance(v, dict) and set(v) == {"grid_search"}:
            out[k] = CategoricalDistribution(list(v["grid_search"]))
    return out


def _describe_param_space(param_space: Mapping[str, Any]) -> dict[str, Any]:
    searched = {k: {"grid": list(v["grid_search"])} for k, v in param_space.items()
                if isinstance(v, dict) and set(v) == {"grid_search"}}
    constants = {k: v for k, v in param_space.items() if k not in searched}
    return {"searched": searched, "constants": constants}


# ----------------------------------------------------------------------------- the runner
@dataclass(frozen=True)
class StudySettings:
    """How a study runs (everything but the data and the search space).

    Attributes:
        name: study name (folder name, Optuna study name).
        question: the question the study answers (goes to study.json and the report).
        num_samples: configurations drawn by the searcher (a grid runs once: 1).
        repeats: seeds per configuration (``Repeater``; repeat k trains with seed + k).
        asha: stop poor trials early (``ASHAScheduler`` on the metric, per reported epoch).
        asha_grace: epochs before ASHA may stop a trial.
        cpus_per_trial, gpus_per_trial: resources of one trial (0.25 GPU = four trials per GPU;
            without CUDA the trial trains on CPU).
        max_concurrent: at most this many trials at once (None = as resources allow).
        max_failures: retries of a failed trial from its last checkpoint (node loss, OOM ...).
        reuse_actors: reuse trial processes (saves ~2 s per trial, DESIGN.md section 8).
        checkpoint_every: epochs between trial checkpoints.
        sampler_seed: seed of Optuna's TPE sampler.
    """

    name: str
    question: str = ""
    num_samples: int = 1
    repeats: int = 1
    asha: bool = False
    asha_grace: int = 10  # ours
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2  # ours
    reuse_actors: bool = True
    checkpoint_every: int = 1
    sampler_seed: int = 0


def init_ray(address: str | None = None, *, dashboard: bool = False, **kwargs: Any) -> None:
    """Start or join Ray unless it is already initialised (tests, notebooks).

    A local instance has token auth off and its dashboard (if any) bound to 127.0.0.1 only; with
    ``address`` (e.g. ``"auto"`` on a ``ray up`` head node) the running cluster is joined as is.
    """
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, **kwargs)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(include_dashboard=dashboard, dashboard_host="127.0.0.1", **kwargs)


def _trial_dirname(trial: Any) -> str:
    """Trial folder name: ``trial_<trial_id>`` (so the id is recoverable from a Result's path)."""
    return f"trial_{trial.trial_id}"


def _is_uri(path: str | os.PathLike | None) -> bool:
    return path is not None and "://" in str(path)


def run_study(
    settings: StudySettings,
    data: "ContourSet",
    *,
    study_dir: str | os.PathLike,
    search: SearchSpace | None = None,
    param_space: Mapping[str, Any] | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    data_info: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    fit: FitFn | None = None,
) -> Path:
    """Run (or resume) a study and write its folder; return the study folder.

    Args:
        settings: how the study runs.
        data: contours and ratings (put into the object store once).
        study_dir: local study folder (made absolute): study.json, trials.csv, latents/,
            optuna.journal, and tune/ unless ``storage_path`` is given.
        search: Optuna search space (OptunaSearch, with ``Repeater`` when repeats > 1).
        param_space: Tune param space (grid) instead of ``search``.
        storage_path: Tune's experiment storage (local folder or ``s3://...``); default
            ``study_dir``. The experiment is ``<storage_path>/tune``.
        resume: continue an interrupted study (finished trials are not re-run; errored and
            unfinished ones resume from their last checkpoint; the Optuna state is restored).
        overwrite: replace an existing study folder instead of refusing to start.
        data_info: description of the data for study.json.
        argv: the command line, for study.json (default ``sys.argv``).
        fit: training function (default :func:`raympa.train.fit`).
    """
    from ray import tune

    if (search is None) == (param_space is None):
        raise ValueError("give exactly one of search (Optuna) or param_space (grid)")
    study_dir = Path(study_dir).expanduser().resolve()
    storage = str(storage_path) if storage_path else str(study_dir)
    if not _is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())
    tune_path = f"{storage.rstrip('/')}/tune"

    if study_dir.exists() and not resume:
        if not overwrite and any(study_dir.iterdir()):
            raise FileExistsError(
                f"{study_dir} exists: pass --resume to continue that study, --overwrite to replace it, "
                "or choose another --name / --storage-path"
            )
        shutil.rmtree(study_dir, ignore_errors=True)
    study_dir.mkdir(parents=True, exist_ok=True)

    meta_path = study_dir / "study.json"
    meta = json.loads(meta_path.read_text()) if resume and meta_path.is_file() else {}
    argv = list(sys.argv if argv is None else argv)
    meta.update(
        name=settings.name,
        question=settings.question,
        command=meta.get("command") or shlex.join(["python", *argv]),
        argv=meta.get("argv") or argv,
        started=meta.get("started") or _now(),
        finished=None,
        versions=_versions(),
        data=dict(data_info or {"n_recordings": len(data)}),
        search_space=search.describe() if search is not None else _describe_param_space(param_space),
        metric=METRIC,
        mode=MODE,
        settings=dataclasses.asdict(settings),
        tune_path=tune_path,
    )
    if resume:
        meta.setdefault("resumed", []).append({"at": _now(), "argv": argv})
    _write_json(meta_path, meta)

    train_fn = tune.with_parameters(
        trainable,
        data=data,
        fit=fit,
        threads=max(1, int(settings.cpus_per_trial)),
        checkpoint_every=settings.checkpoint_every,
    )
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial:
        resources["gpu"] = settings.gpus_per_trial
    train_fn = tune.with_resources(train_fn, resources)

    if resume and tune.Tuner.can_restore(tune_path):
        tuner = tune.Tuner.restore(tune_path, trainable=train_fn, resume_errored=True)
    else:
        if resume:
            print(f"[raympa] nothing to resume at {tune_path}; starting the study", file=sys.stderr)
        tuner = tune.Tuner(
            train_fn,
            param_space=dict(param_space) if param_space is not None else None,
            tune_config=_tune_config(settings, search),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                verbose=1,
            ),
        )
    results = tuner.fit()

    trials = collect_results(results, study_dir)
    if search is not None:
        dists: Callable[[Mapping[str, Any]], dict] = search.distributions
    else:
        grid = _grid_distributions(param_space)
        dists = lambda values: {k: d for k, d in grid.items() if k in values}  # noqa: E731
    export_optuna(trials, study_dir / "optuna.journal", study_name=settings.name, distributions=dists)

    meta["finished"] = _now()
    meta["n_trials"] = int(len(trials))
    meta["status_counts"] = {str(k): int(v) for k, v in trials["status"].value_counts().items()} if len(trials) else {}
    _write_json(meta_path, meta)
    if _is_uri(storage):
        _upload_summary(study_dir, storage)
    _maybe_report(study_dir)
    return study_dir


def _tune_config(settings: StudySettings, search: SearchSpace | None) -> Any:
    from ray import tune

    search_alg = None
    num_samples = settings.num_samples
    if search is not None:
        import optuna
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(space=search, metric=METRIC, mode=MODE, sampler=optuna.samplers.TPESampler(seed=settings.sampler_seed))
        if settings.repeats > 1:
            search_alg = Repeater(search_alg, repeat=settings.repeats)
            num_samples = settings.num_samples * settings.repeats
    elif settings.repeats > 1:
        raise ValueError("repeats apply to an Optuna search; put seeds in the grid instead")
    scheduler = None
    if settings.asha:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=settings.asha_grace,
                                  max_t=100_000, reduction_factor=3)
    return tune.TuneConfig(
        metric=METRIC,
        mode=MODE,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=settings.max_concurrent,
        reuse_actors=settings.reuse_actors,
        trial_dirname_creator=_trial_dirname,
    )


# ----------------------------------------------------------------------------- study folder
def error_message(error: BaseException | None) -> str:
    """One-line message of a trial's error (the original exception, not Ray's wrapper)."""
    if error is None:
        return ""
    cause = error
    for _ in range(5):  # RayTaskError / TuneError wrap the trainable's exception
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    name = type(cause).__name__
    if name.startswith(("RayTaskError", "TuneError")):  # no cause attached: Ray's text ends "Type: message"
        typed = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b[^:]*: ", ln)]
        if typed:
            return typed[-1][:500]
    return f"{name}: {lines[0] if lines else ''}"[:500]


def collect_results(results: Any, study_dir: Path) -> "pd.DataFrame":
    """Write ``trials.csv`` and ``latents/<trial_id>.npz`` from a Tune ``ResultGrid``."""
    import pandas as pd

    latents_dir = study_dir / "latents"
    latents_dir.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    rows = []
    for i in range(len(results)):
        r = results[i]
        metrics = dict(r.metrics or {})
        trial_id = str(metrics.get("trial_id") or Path(str(r.path)).name.removeprefix("trial_"))
        config = dict(r.config or {})
        row: dict[str, Any] = {"trial_id": trial_id, "status": "ERROR" if r.error else "TERMINATED",
                               "error": error_message(r.error)}
        try:
            cfg, band = split_config(config)
            row.update(cfg.to_dict())
        except (ValueError, TypeError):  # a bad config: keep what was asked for
            band = config.get("band")
            row.update({k: config.get(k) for k in fields if k in config})
        row["band"] = band or "all"
        row["repeat"] = int(config.get(TRIAL_INDEX, 0))
        for k in RESULT_COLUMNS:
            row[k] = metrics.get(k, float("nan"))
        if "device" in metrics:  # the device the trial really used ("cuda"/"cpu"), not the config's "auto"
            row["device"] = metrics["device"]
        for k, v in metrics.items():  # the run's other metrics (n_train, seconds ...)
            if k not in row and k not in _TUNE_KEYS and isinstance(v, (bool, int, float, str)):
                row[k] = v
        row["final"] = bool(metrics.get("final", False))
        row["training_iteration"] = metrics.get("training_iteration")
        row["time_total_s"] = metrics.get("time_total_s")
        row["trial_path"] = str(r.path)
        if row["final"] and not r.error and r.checkpoint is not None:
            with r.checkpoint.as_directory() as d:
                src = Path(d) / LATENTS_FILE
                if src.is_file():
                    shutil.copy(src, latents_dir / f"{trial_id}.npz")
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("trial_id").reset_index(drop=True)
    df.to_csv(study_dir / "trials.csv", index=False)
    return df


def export_optuna(
    trials: "pd.DataFrame",
    path: Path,
    *,
    study_name: str,
    distributions: Callable[[Mapping[str, Any]], dict],
    metric: str = METRIC,
) -> Path:
    """Write the finished study to an Optuna journal file (``optuna-dashboard PATH`` browses it).

    One Optuna trial per Tune trial: COMPLETE with ``metric`` as value, FAIL for ERROR trials,
    PRUNED for trials stopped before their final report (ASHA). The trial id, seed, band and test
    metrics go to user attributes. The file is rewritten from scratch (one writer, at the end).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    path = Path(path)
    if path.exists():
        path.unlink()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize" if MODE == "max" else "minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is marked experimental
        study.set_metric_names([metric])
    for row in trials.to_dict("records"):
        values = {k: _plain(v) for k, v in row.items()}
        dists = distributions(values)
        params = {k: values[k] for k in dists}
        value = values.get(metric)
        if row["status"] == "ERROR":
            state, value = TrialState.FAIL, None
        elif not row.get("final") or value is None or not math.isfinite(float(value)):
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.COMPLETE, float(value)
        attrs = {k: values.get(k) for k in ("trial_id", "seed", "band", "criterion", "error", *RESULT_COLUMNS)}
        attrs = {k: v for k, v in attrs.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        study.add_trial(optuna.trial.create_trial(state=state, value=value, params=params,
                                                  distributions=dists, user_attrs=attrs))
    return path


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    return v


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("raympa", "ray", "torch", "optuna", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def _upload_summary(study_dir: Path, storage: str) -> None:
    """Copy study.json, trials.csv, latents/ and optuna.journal next to Tune's folder (s3://...)."""
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(storage)
    for item in ("study.json", "trials.csv", "optuna.journal", "latents"):
        src = study_dir / item
        if src.exists():
            pyarrow.fs.copy_files(str(src), f"{root.rstrip('/')}/{item}", destination_filesystem=fs)


def _maybe_report(study_dir: Path) -> None:
    """Write the HTML report when ``raympa.report.write_report`` exists (issue 6)."""
    try:
        from raympa.report import write_report
    except ImportError:
        return
    try:
        write_report(study_dir)
    except Exception as exc:  # the study's results are written; a report failure must not hide them
        print(f"[raympa] report failed: {type(exc).__name__}: {exc}", file=sys.stderr)


# ----------------------------------------------------------------------------- study scripts
def add_study_args(
    parser: Any,
    *,
    name: str,
    num_samples: int | None,
    demo_n: int,
    epochs: int,
    encoder_epochs: int,
) -> None:
    """The flags every study script shares (Ray Tune example shape). Cheap: no heavy imports."""
    p = parser
    p.add_argument("--smoke-test", action="store_true", help="tiny data and few epochs: two or more trials in a minute or so")
    if num_samples is not None:
        p.add_argument("--num-samples", type=int, default=num_samples,
                       help="configurations drawn by the searcher (default %(default)s)")
    p.add_argument("--storage-path", default=None,
                   help="where the study folder goes: a local folder (default results/) or s3://BUCKET/PREFIX "
                        "(then Tune's files go there and the summary also to --results-dir)")
    p.add_argument("--results-dir", default="results", help="local folder for the summary when --storage-path is s3:// "
                                                            "(default %(default)s)")
    p.add_argument("--name", default=None, help=f"study name / folder (default {name}; {name}_smoke with --smoke-test)")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto' on a ray up head node); default: local Ray")
    p.add_argument("--data", default="demo",
                   help="'demo' (simulated auditions, built under --data-dir if missing) or a ratings table "
                        "(FBA index from raympa fba-index) used with --contours")
    p.add_argument("--contours", default=None, help="contours folder (contours.parquet) for --data TABLE")
    p.add_argument("--data-dir", default="data", help="where demo data and its contours are built (default %(default)s; "
                                                      "on a cluster a shared folder, e.g. /mnt/shared/data)")
    p.add_argument("--demo-n", type=int, default=demo_n, help="demo auditions per band (default %(default)s)")
    p.add_argument("--demo-duration", type=float, default=None, help="demo etude length in seconds (default: the demo's)")
    p.add_argument("--epochs", type=int, default=epochs, help="joint / head / baseline epochs (default %(default)s)")
    p.add_argument("--encoder-epochs", type=int, default=encoder_epochs,
                   help="two-step encoder epochs (default %(default)s)")
    p.add_argument("--chunks-per-recording", type=int, default=1,
                   help="random chunks per recording per epoch (default %(default)s, paper; docs/training.md "
                        "advises 4 on small data such as the demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study (finished trials are kept)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing study folder")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default %(default)s)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPU share per trial, e.g. 0.25 = four trials per GPU (default %(default)s; "
                        "without CUDA a trial still trains, on CPU)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial from its checkpoint (default %(default)s)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard (local runs: on 127.0.0.1 only)")


def study_location(args: Any, name: str) -> tuple[Path, str | None]:
    """``(study_dir, storage_path)`` from the script flags (see :func:`run_study`)."""
    storage = args.storage_path
    if storage and _is_uri(storage):
        return Path(args.results_dir).resolve() / name, f"{storage.rstrip('/')}/{name}"
    base = storage or (str(Path(args.results_dir) / "_scratch") if args.smoke_test else args.results_dir)
    return Path(base).expanduser().resolve() / name, None


def run_script_study(
    args: Any,
    *,
    name: str,
    doc: str,
    script: str,
    argv: Sequence[str] | None,
    data: "ContourSet",
    info: dict[str, Any],
    search: SearchSpace | None = None,
    param_space: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Path:
    """The common tail of ``studies/*.py``: settings from the flags, run, print the folder.

    Args:
        args: the script's parsed flags (``add_study_args``).
        name: study name; doc: the script's docstring (its "Question:" paragraph is the question).
        script: the script's path as the user runs it, for the command line in study.json.
        argv: the script's ``main(argv)`` argument (None = sys.argv).
        data, info: from :func:`load_study_data`.
        search / param_space: as :func:`run_study`.
        **settings: further :class:`StudySettings` fields (num_samples, repeats, asha ...).
    """
    study_settings = StudySettings(
        name=name,
        question=" ".join(doc.split("\n\n")[1].split()).removeprefix("Question: "),
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        **settings,
    )
    study_dir, storage = study_location(args, name)
    try:
        out = run_study(study_settings, data, study_dir=study_dir, search=search, param_space=param_space,
                        storage_path=storage, resume=args.resume, overwrite=args.overwrite, data_info=info,
                        argv=[script, *(sys.argv[1:] if argv is None else argv)])
    except FileExistsError as exc:  # an earlier study is never replaced silently
        raise SystemExit(f"{Path(script).name}: {exc}") from None
    print(f"study folder: {out}")
    return out


def demo_data(
    data_dir: str | os.PathLike,
    *,
    bands: Sequence[str] = ("middleschool",),
    n: int = 120,
    seed: int = 0,
    duration_s: float | None = None,
) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, Any]]:
    """Build (if missing) and load simulated auditions and their contours, one folder per band.

    ``DATA_DIR/demo-n<n>-s<seed>[-d<duration>]/<band>/`` gets ``ratings.csv`` and ``audio/``
    (:func:`raympa.demo.make_demo`) and ``contours/`` (:func:`raympa.contours.extract`, on the
    running Ray). Returns the ratings and contours tables of all bands and a description.
    """
    import pandas as pd

    from raympa.contours import extract, load_contours
    from raympa.demo import make_demo
    from raympa.ratings import read_ratings

    tag = f"demo-n{n}-s{seed}" + (f"-d{duration_s:g}" if duration_s else "")
    root = Path(data_dir).expanduser().resolve() / tag
    ratings, contours = [], []
    for i, band in enumerate(bands):
        folder = root / band
        if not (folder / "ratings.csv").is_file():
            print(f"[raympa] rendering {n} demo auditions ({band}) into {folder}", file=sys.stderr)
            make_demo(folder, n=n, seed=seed + 1000 * i, band=band, duration_s=duration_s)
        table = read_ratings(folder / "ratings.csv")
        if not (folder / "contours" / "contours.parquet").is_file():
            print(f"[raympa] extracting contours of {len(table)} auditions into {folder / 'contours'}", file=sys.stderr)
            extract(table[["recording_id", "audio_path"]], folder / "contours")
        ratings.append(table)
        contours.append(load_contours(folder / "contours"))
    info = {"kind": "demo", "path": str(root), "bands": list(bands), "n_per_band": n, "seed": seed,
            "duration_s": duration_s, "note": "simulated auditions (raympa.demo), not real FBA recordings"}
    return pd.concat(ratings, ignore_index=True), pd.concat(contours, ignore_index=True), info


def load_study_data(args: Any, *, bands: Sequence[str]) -> tuple["ContourSet", dict[str, Any]]:
    """The study's ContourSet from the script flags: the demo, or ``--data TABLE --contours DIR``."""
    from raympa.dataset import ContourSet

    if args.data == "demo":
        ratings, contours, info = demo_data(args.data_dir, bands=bands, n=args.demo_n, duration_s=args.demo_duration)
    else:
        from raympa.contours import load_contours
        from raympa.ratings import read_ratings

        if not args.contours:
            raise SystemExit("--data TABLE needs --contours DIR (from raympa extract or raympa import-pitchtracks)")
        ratings = read_ratings(args.data)
        contours = load_contours(args.contours)
        info = {"kind": "table", "ratings": str(Path(args.data).resolve()),
                "contours": str(Path(args.contours).resolve())}
    data = ContourSet.from_tables(ratings, contours)
    if len(data) == 0:
        raise SystemExit("no recording has both a rating and a contour")
    info.update(n_recordings=len(data), bands_present=sorted(set(data.band.tolist())),
                splits={s: int((data.split == s).sum()) for s in C.SPLITS})
    return data, info
