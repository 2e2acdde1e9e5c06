"""The study on Ray Tune: the trainable and the study runner.

A study is many runs of :func:`raympa.train.fit` (Seshadri & Lerch 2021, section 4) scheduled by
Ray Tune. The pieces:

* :func:`trainable` -- the one top-level Tune function. Its flat config dict becomes a
  :class:`~raympa.config.TrainConfig` in exactly one place (:func:`split_config`, which handles the
  non-TrainConfig keys ``band`` and ``__trial_index__`` and then calls ``TrainConfig.from_dict``).
  The :class:`~raympa.dataset.ContourSet` reaches it once, through the object store
  (``tune.with_parameters``). It reports every epoch with ``tune.report``, checkpoints, and
  resumes from ``tune.get_checkpoint()``.
* :func:`run_study` -- builds the ``tune.Tuner`` (or restores it), runs it, and writes the study
  folder (:mod:`raympa.studyfolder`). An Optuna search writes its trials to the folder's journal
  while it runs (``optuna-dashboard <study>/optuna.journal``); a grid's journal is written at the
  end.

The search spaces live in :mod:`raympa.search` (re-exported here). Metric: ``val_r2_full`` (R² of
full-length validation recordings, higher is better); the paper selects by validation loss with
early stopping, which :func:`raympa.train.fit` does inside a run.

Cheap to import: torch, ray and optuna are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from raympa import constants as C
from raympa import studyfolder as SF
from raympa.cluster import init_ray  # noqa: F401  (re-exported: scripts and tests start Ray through it)
from raympa.config import TrainConfig
from raympa.progress import trial_lines
from raympa.search import (  # noqa: F401  (re-exported: the search spaces' old home)
    INFORMED_REFERENCE, Param, SearchSpace, complete_journal, describe_param_space, export_optuna, grid_distributions,
    margin_sweep_space, optuna_search, paper_grid)
from raympa.studyfolder import (  # noqa: F401  (METRIC, MODE, RESULT_COLUMNS, error_message: public here too)
    FINAL_FILE, LATENTS_FILE, MEMBERS_KEY, METRIC, MODE, MODEL_FILE, RESULT_COLUMNS, STATE_FILE, error_message,
    member_folder)

if TYPE_CHECKING:  # heavy imports stay out of module import time
    from raympa.dataset import ContourSet

TRIAL_INDEX = "__trial_index__"  # Ray's Repeater sets it (index of the repeat); read for configs that carry it
SEEDS = "seeds"  # config key: the seeds one trial trains together (one batched model)
EXTRA_KEYS = ("band", SEEDS, INFORMED_REFERENCE)  # config keys that are not TrainConfig fields (split_config, split_members)
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
    informed = params.pop(INFORMED_REFERENCE, None)  # paper grid: only reference-informed models get it
    if informed is not None and params.get("model") in C.REFERENCE_MODELS:
        params["reference"] = informed
    if TRIAL_INDEX in params:
        params["seed"] = int(params.get("seed", 0)) + int(params.pop(TRIAL_INDEX))
    return TrainConfig.from_dict(params), (None if band is None else str(band))


# ----------------------------------------------------------------------------- the trainable
def split_members(config: Mapping[str, Any]) -> tuple[list[TrainConfig], str | None]:
    """A trial's member configurations and band: one per seed of ``seeds``, else just one.

    ``seeds`` (a list of ints, not a TrainConfig field) makes one trial train all the seeds of
    a configuration at once (:func:`raympa.train.fit_members`); the rest goes through
    :func:`split_config`.
    """
    params = dict(config)
    seeds = params.pop(SEEDS, None)
    cfg, band = split_config(params)
    if seeds is None:
        return [cfg], band
    return [dataclasses.replace(cfg, seed=int(s)) for s in seeds], band


def trainable(
    config: dict[str, Any],
    data: "ContourSet",
    fit: FitFn | None = None,
    threads: int = 1,
    checkpoint_every: int = 1,
    checkpoint_s: float = 0.0,
    fit_members: FitFn | None = None,
) -> None:
    """One Tune trial: train ``config`` (all its seeds) on ``data``, report every epoch, checkpoint, resume.

    Args:
        config: flat dict of TrainConfig fields plus ``band`` and optionally ``seeds``.
        data: the study's contours and ratings, shared through the object store.
        fit: training function with :func:`raympa.train.fit`'s signature (default: that one),
            for a config without ``seeds``.
        threads: torch intra-op threads (the trial's CPU share).
        checkpoint_every: at least this many epochs between checkpoints.
        checkpoint_s: and at least this many seconds (0 = epochs alone decide).
        fit_members: with :func:`raympa.train.fit_members`'s signature (default: that one), for
            a config with ``seeds``: the seeds train as one batched model.

    Each epoch reports the members' mean metric. The last report carries the final metrics
    (their mean over members, ``final=True``) and a checkpoint holding ``final.json`` and, per
    member, ``latents.npz`` and the trained model ``checkpoint.pt`` (in ``seed-<k>/`` with
    ``seeds``). A member whose loss goes non-finite fails alone; when every member fails (or
    ``fit`` raises), the trial is ERROR with the message and the study goes on.
    """
    import torch
    from ray import tune

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    cfgs, band = split_members(config)
    torch.set_num_threads(max(1, int(threads)))

    resume = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            final = Path(d) / FINAL_FILE
            if final.is_file():  # finished before a restart: report the same end again
                with tempfile.TemporaryDirectory() as tmp:
                    shutil.copytree(d, tmp, dirs_exist_ok=True)
                    metrics = {k: v for k, v in json.loads(final.read_text()).items() if k != MEMBERS_KEY}
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
                return
            if (Path(d) / STATE_FILE).is_file():
                resume = torch.load(Path(d) / STATE_FILE, weights_only=False)  # our own file

    since = {"epochs": 0, "t": time.monotonic()}
    last: dict[int, float] = {}

    def on_epoch(metrics: list[dict[str, Any] | None], get_state: Callable[[], dict]) -> None:
        since["epochs"] += 1
        for k, m in enumerate(metrics):
            if m is not None:
                last[k] = float(m.get(METRIC, float("nan")))
        current = [m for m in metrics if m is not None]
        row = _scalars(current[0]) if len(cfgs) == 1 and current else {}
        row[METRIC] = _mean(last.values())  # Tune requires the metric in every report
        row["final"] = False
        if since["epochs"] < max(1, checkpoint_every) or time.monotonic() - since["t"] < checkpoint_s:
            tune.report(row)
            return
        since.update(epochs=0, t=time.monotonic())
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(get_state(), Path(tmp) / STATE_FILE)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))

    if cfgs[0].reference == "none":  # a paper model reads the contour alone
        data = data.with_reference(None)
    if SEEDS in config:
        if fit_members is None:
            from raympa.train import fit_members
        results = fit_members(cfgs, data, band=band, callback=on_epoch, resume=resume)
    else:
        if fit is None:
            from raympa.train import fit
        single = lambda m, get_state: on_epoch([m], get_state)  # noqa: E731
        results = [fit(cfgs[0], data, band=band, callback=single, resume=resume)]
    _report_final(cfgs, results, batched=SEEDS in config)


def _mean(values: Any) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _report_final(cfgs: Sequence[TrainConfig], results: Sequence[Any], *, batched: bool) -> None:
    """The trial's last report: mean final metrics, and a checkpoint with each member's latents and model."""
    import numpy as np
    from ray import tune

    ok = [r for r in results if not isinstance(r, BaseException)]
    if not ok:
        raise results[0]
    finals = [_scalars(r.metrics) for r in ok]
    final = dict(finals[0])
    for k, v in finals[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            final[k] = _mean(float(f.get(k, float("nan"))) for f in finals)
    final.setdefault(METRIC, float("nan"))
    final["final"] = True
    members = []
    with tempfile.TemporaryDirectory() as tmp:
        for cfg, r in zip(cfgs, results):
            folder = Path(tmp) / member_folder(cfg.seed) if batched else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            if isinstance(r, BaseException):
                members.append({"seed": cfg.seed, "error": f"{type(r).__name__}: {r}"})
                continue
            members.append({"seed": cfg.seed, "metrics": _scalars(r.metrics)})
            latents = getattr(r, "latents", None) or {}
            np.savez(folder / LATENTS_FILE, **{k: np.asarray(v) for k, v in latents.items()})
            if getattr(r, "checkpoint", None):  # a stand-in fit may have no model
                from raympa.train import save_checkpoint

                save_checkpoint(r, folder / MODEL_FILE)
        (Path(tmp) / FINAL_FILE).write_text(json.dumps({**final, MEMBERS_KEY: members} if batched else final))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-scalar entries of a metrics dict (numpy scalars turned into Python ones)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        v = SF.plain(v)
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[str(k)] = v
    return out


# ----------------------------------------------------------------------------- the runner
@dataclass(frozen=True)
class StudySettings:
    """How a study runs (everything but the data and the search space).

    Attributes:
        name: study name (folder name, Optuna study name).
        question: the question the study answers (goes to study.json and the report).
        num_samples: configurations drawn by the searcher (a grid runs once: 1).
        repeats: seeds per configuration, trained together in one trial as one batched model
            (seeds ``seed`` .. ``seed + repeats - 1``; the searcher sees their mean each epoch).
        asha: stop poor trials early (``ASHAScheduler`` on the metric, per reported epoch).
        asha_grace: epochs before ASHA may stop a trial.
        cpus_per_trial, gpus_per_trial: resources of one trial (0.25 GPU = four trials per GPU).
        max_concurrent: at most this many trials at once (None = as resources allow).
        max_failures: retries of a failed trial from its last checkpoint (node loss, OOM ...).
        reuse_actors: reuse trial processes (saves about 2 s of process start per trial).
        checkpoint_every: at least this many epochs between trial checkpoints.
        checkpoint_s: and at least this many seconds. Tune forces an experiment snapshot each
            time a trial has saved ``num_to_keep`` (:data:`CHECKPOINTS_KEPT`) checkpoints since the last one, so
            checkpointing every fraction-of-a-second epoch makes Tune snapshot (and warn)
            continuously. Every 30 s with three kept, a trial forces a snapshot at most once a
            minute, and Tune's own periodic snapshots come first (ours; a resumed trial loses
            at most 30 s of training).
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
    checkpoint_s: float = 30.0  # ours
    sampler_seed: int = 0


CHECKPOINTS_KEPT = 3  # per trial (ours): also the trial checkpoints that force a Tune snapshot


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
    fit_members: FitFn | None = None,
) -> Path:
    """Run (or resume) a study and write its folder; return the study folder.

    Args:
        settings: how the study runs.
        data: contours and ratings (put into the object store once).
        study_dir: local study folder (made absolute): study.json, trials.csv, latents/,
            optuna.journal, and tune/ unless ``storage_path`` is given.
        search: Optuna search space (OptunaSearch; ``seeds`` added when repeats > 1).
        param_space: Tune param space (grid) instead of ``search``.
        storage_path: Tune's experiment storage (local folder or ``s3://...``); default
            ``study_dir``. The experiment is ``<storage_path>/tune``.
        resume: continue an interrupted study (finished trials are not re-run; errored and
            unfinished ones resume from their last checkpoint; the Optuna study continues).
        overwrite: replace an existing study folder instead of refusing to start.
        data_info: description of the data for study.json.
        argv: the command line, for study.json (default ``sys.argv``).
        fit: training function (default :func:`raympa.train.fit`).
        fit_members: batched training function (default :func:`raympa.train.fit_members`),
            for trials with ``seeds`` (``settings.repeats`` > 1 adds them to a search's constants).

    Raises:
        FileExistsError: the folder holds a study and neither ``resume`` nor ``overwrite``.
    """
    if (search is None) == (param_space is None):
        raise ValueError("give exactly one of search (Optuna) or param_space (grid)")
    study_dir = Path(study_dir).expanduser().resolve()
    storage = str(storage_path) if storage_path else str(study_dir)
    if not _is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())
    if search is not None and settings.repeats > 1:  # every seed of a configuration in one trial
        first = int(search.constants.get("seed", 0))
        search = dataclasses.replace(search, constants={**search.constants, SEEDS: list(range(first, first + settings.repeats))})
    _prepare_folder(study_dir, resume=resume, overwrite=overwrite)
    meta = _start_meta(settings, study_dir, search=search, param_space=param_space, storage=storage,
                       resume=resume, data_info=data_info or {"n_recordings": len(data)}, argv=argv)
    tuner = _make_tuner(settings, data, study_dir, search=search, param_space=param_space, storage=storage,
                        resume=resume, fit=(fit, fit_members))
    results = tuner.fit()
    from raympa.collect import collect_results

    trials = collect_results(results, study_dir)
    if search is None:  # a searched study's journal is written live by OptunaSearch
        grid = grid_distributions(param_space)
        export_optuna(trials, SF.journal_path(study_dir), study_name=settings.name,
                      distributions=lambda values: {k: d for k, d in grid.items() if k in values})
    elif resume and len(trials):
        complete_journal(trials, SF.journal_path(study_dir), study_name=settings.name,
                         distributions=search.distributions)
    meta["finished"] = _now()
    meta["n_trials"] = int(len(trials))
    meta["status_counts"] = {str(k): int(v) for k, v in trials["status"].value_counts().items()} if len(trials) else {}
    SF.write_study_json(study_dir, meta)
    if _is_uri(storage):
        SF.upload_summary(study_dir, storage)
    _maybe_report(study_dir)
    return study_dir


def _prepare_folder(study_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Make the study folder; an existing study is replaced only with ``overwrite``."""
    if study_dir.exists() and not resume:
        if not overwrite and any(study_dir.iterdir()):
            raise FileExistsError(
                f"{study_dir} exists: pass --resume to continue that study, --overwrite to replace it, "
                "or choose another --name / --storage-path"
            )
        shutil.rmtree(study_dir, ignore_errors=True)
    study_dir.mkdir(parents=True, exist_ok=True)


def _start_meta(
    settings: StudySettings,
    study_dir: Path,
    *,
    search: SearchSpace | None,
    param_space: Mapping[str, Any] | None,
    storage: str,
    resume: bool,
    data_info: Mapping[str, Any],
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    """study.json at the start (kept and extended on resume); written before Tune starts."""
    meta: dict[str, Any] = {}
    if resume and SF.study_json_path(study_dir).is_file():
        meta = SF.read_study_json(study_dir)
    argv = list(sys.argv if argv is None else argv)
    tune_path = SF.tune_path(storage)
    meta.update(
        name=settings.name,
        question=settings.question,
        command=meta.get("command") or shlex.join(["python", *argv] if argv[0].endswith(".py") else argv),
        argv=meta.get("argv") or argv,
        started=meta.get("started") or _now(),
        finished=None,
        versions=SF.versions(),
        data=dict(data_info),
        search_space=search.describe() if search is not None else describe_param_space(param_space),
        metric=METRIC,
        mode=MODE,
        settings=dataclasses.asdict(settings),
        tune_path=tune_path if _is_uri(tune_path) else SF.relative_to(study_dir, tune_path),
    )
    if resume:
        meta.setdefault("resumed", []).append({"at": _now(), "argv": argv})
    SF.write_study_json(study_dir, meta)
    return meta


def _make_tuner(
    settings: StudySettings,
    data: "ContourSet",
    study_dir: Path,
    *,
    search: SearchSpace | None,
    param_space: Mapping[str, Any] | None,
    storage: str,
    resume: bool,
    fit: tuple[FitFn | None, FitFn | None],
) -> Any:
    """A new ``tune.Tuner``, or the interrupted one restored (``resume``)."""
    from ray import tune

    train_fn = tune.with_parameters(
        trainable,
        data=data,
        fit=fit[0],
        fit_members=fit[1],
        threads=max(1, int(settings.cpus_per_trial)),
        checkpoint_every=settings.checkpoint_every,
        checkpoint_s=settings.checkpoint_s,
    )
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial:
        resources["gpu"] = settings.gpus_per_trial
    train_fn = tune.with_resources(train_fn, resources)

    tune_path = SF.tune_path(storage)
    if resume and tune.Tuner.can_restore(tune_path):
        return tune.Tuner.restore(tune_path, trainable=train_fn, resume_errored=True)
    if resume:
        print(f"[raympa] nothing to resume at {tune_path}; starting the study", file=sys.stderr)
    return tune.Tuner(
        train_fn,
        param_space=dict(param_space) if param_space is not None else None,
        tune_config=_tune_config(settings, search, journal=SF.journal_path(study_dir)),
        run_config=tune.RunConfig(
            name=SF.TUNE_DIR,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
            callbacks=[trial_lines(METRIC)],
            verbose=0,
        ),
    )


def _tune_config(settings: StudySettings, search: SearchSpace | None, *, journal: Path) -> Any:
    """Searcher (TPE writing to ``journal``), scheduler and trial counts of a new study."""
    from ray import tune

    search_alg = None
    num_samples = settings.num_samples
    if search is not None:
        search_alg = optuna_search(search, journal=journal, study_name=settings.name, seed=settings.sampler_seed)
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


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _maybe_report(study_dir: Path) -> None:
    """Write the HTML report; a report failure is printed, never hides the study's results."""
    from raympa.report import write_report

    try:
        write_report(study_dir)
    except Exception as exc:  # the study's results are written; a report failure must not hide them
        print(f"[raympa] report failed: {type(exc).__name__}: {exc}", file=sys.stderr)
