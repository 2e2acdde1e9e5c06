"""What every study shares: its options (the flags of ``raympa study ...``) and the common run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from raympa.search import SearchSpace


@dataclass(frozen=True)
class StudyOptions:
    """Options every study has (the study modules subclass it with their own).

    Attributes:
        name: study name and folder name (default: the study's, ``_smoke`` added for a smoke test).
        smoke_test: tiny data and few epochs (each study's ``smoke`` says what).
        storage_path: where the study folder goes: a local folder (default ``results_dir``) or
            ``s3://BUCKET/PREFIX`` (Tune's files go there, the summary also to ``results_dir``).
        results_dir: local folder of study folders.
        address: Ray cluster to join (``"auto"`` on a ``ray up`` head node); None = local Ray.
        data: ``"demo"`` (simulated auditions, built under ``data_dir`` if missing) or a ratings table.
        contours: contours folder for a ratings table.
        data_dir: where demo data and its contours are built.
        demo_n: demo auditions per band; demo_duration: etude length, s (None = the demo's).
        epochs: joint / head / baseline epochs; encoder_epochs: two-step encoder epochs.
        chunks_per_recording: random chunks per training recording per epoch (paper: 1).
        resume: continue an interrupted study; overwrite: replace an existing study folder.
        cpus_per_trial, gpus_per_trial: resources of one trial (0.25 GPU = four trials per GPU).
        max_concurrent: at most this many trials at once; max_failures: retries of a failed trial.
        dashboard: start Ray's dashboard (local runs: on 127.0.0.1 only).
        reference: ``none`` (the paper's setting), ``table`` (each row's ``reference_path``) or
            ``peers`` (top-rated training recordings of the piece): the data carries references
            and the study adds the reference-informed models (:mod:`raympa.references`).
    """

    name: str | None = None
    smoke_test: bool = False
    storage_path: str | None = None
    results_dir: str = "results"
    address: str | None = None
    data: str = "demo"
    contours: str | None = None
    data_dir: str = "data"
    demo_n: int = 240  # ours: the demo's learnable size
    demo_duration: float | None = None  # the demo's etude length (raympa.demo: 30 s middle school, 48 s symphonic)
    epochs: int = 150  # ours, a fallback: each study's Options sets its own (margin sweep; paper grid: the paper's 300)
    encoder_epochs: int = 75  # ours, a fallback, as epochs (paper grid: the paper's 150)
    chunks_per_recording: int = 1  # paper
    resume: bool = False
    overwrite: bool = False
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2  # ours
    dashboard: bool = False
    reference: str = "none"  # paper: no reference

    def smoke(self, **study_fields: Any) -> "StudyOptions":
        """The smoke-test variant: 3 epochs (two-step encoder 2) on 24 short demo auditions."""
        changes: dict[str, Any] = dict(epochs=3, encoder_epochs=2, overwrite=self.overwrite or not self.resume)
        if self.data == "demo":
            changes.update(demo_n=24, demo_duration=8.0)
        return dataclasses.replace(self, **changes, **study_fields)


def check_location(options: StudyOptions) -> None:
    """Refuse a cluster run whose results would stay on the head node's disk.

    Raises:
        ValueError: ``address`` without ``storage_path``.
    """
    if options.address and not options.storage_path:
        raise ValueError("--address needs --storage-path (a shared folder such as /mnt/shared/results, or "
                         "s3://BUCKET/PREFIX): without it the results stay on the head node's disk")


def study_location(options: StudyOptions, name: str) -> tuple[Path, str | None]:
    """``(study_dir, storage_path)`` (see :func:`raympa.study.run_study`)."""
    storage = options.storage_path
    if storage and "://" in storage:
        return Path(options.results_dir).resolve() / name, f"{storage.rstrip('/')}/{name}"
    base = storage or (str(Path(options.results_dir) / "_scratch") if options.smoke_test else options.results_dir)
    return Path(base).expanduser().resolve() / name, None


def run_defined_study(
    options: StudyOptions,
    *,
    name: str,
    question: str,
    command: Sequence[str],
    bands: Sequence[str],
    criterion: str,
    search: "SearchSpace | None" = None,
    param_space: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Path:
    """The common run of every study: Ray, the data, the settings, the study; returns its folder.

    Args:
        options: the study's options.
        name: the study's name (``options.name`` wins).
        question: the question it answers (study.json, the report).
        command: the command line, for study.json.
        bands: bands whose data the study needs.
        criterion: the rating that ranks peers (``reference="peers"``).
        search / param_space: as :func:`raympa.study.run_study`.
        **settings: further :class:`raympa.study.StudySettings` fields (num_samples, repeats ...).

    Raises:
        ValueError, FileNotFoundError: unusable options or data (the message says which).
        FileExistsError: the study folder holds a study (neither resume nor overwrite).
    """
    from raympa.cluster import init_ray
    from raympa.study import StudySettings, run_study
    from raympa.studies.data import load_study_data

    check_location(options)
    init_ray(options.address, dashboard=options.dashboard)
    data, info = load_study_data(data=options.data, contours=options.contours, data_dir=options.data_dir,
                                 bands=bands, demo_n=options.demo_n, demo_duration=options.demo_duration,
                                 reference=options.reference, criterion=criterion)
    study_settings = StudySettings(
        name=name, question=question, cpus_per_trial=options.cpus_per_trial, gpus_per_trial=options.gpus_per_trial,
        max_concurrent=options.max_concurrent, max_failures=options.max_failures, **settings)
    study_dir, storage = study_location(options, name)
    out = run_study(study_settings, data, study_dir=study_dir, search=search, param_space=param_space,
                    storage_path=storage, resume=options.resume, overwrite=options.overwrite, data_info=info,
                    argv=list(command))
    print(f"study folder: {out}")
    return out
