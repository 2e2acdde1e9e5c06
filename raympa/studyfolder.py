"""The study folder: its file names and result columns, for writing and for reading.

A study (:mod:`raympa.study`) writes one folder; the analysis and the report read it. This
module is the one owner of that contract::

    <study>/study.json          what ran: question, command, versions, data, search space, metric
    <study>/trials.csv          one row per trial: config, status, RESULT_COLUMNS, paths relative
                                to the study folder
    <study>/latents/<id>.npz    test-set latents of each finished trial
    <study>/optuna.journal      the Optuna study (``optuna-dashboard <study>/optuna.journal``)
    <study>/tune/               Ray Tune's experiment (result.json, progress.csv, checkpoints)
    <study>/report/             the HTML report

Paths stored inside the folder are relative to it, so a folder can be moved or committed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import pandas as pd

STUDY_JSON = "study.json"
TRIALS_CSV = "trials.csv"
LATENTS_DIR = "latents"
OPTUNA_JOURNAL = "optuna.journal"
TUNE_DIR = "tune"
REPORT_DIR = "report"
SUMMARY_ITEMS = (STUDY_JSON, TRIALS_CSV, OPTUNA_JOURNAL, LATENTS_DIR)  # what goes next to Tune's remote folder

METRIC = "val_r2_full"  # the selection metric (validation R² of full-length recordings)
MODE = "max"
RESULT_COLUMNS = (
    "val_r2_full", "test_r2_full",  # full-length recordings (Pati et al.'s test protocol)
    "test_r2_chunk", "val_r2_chunk",  # old name of the chunk1000 protocol, kept for older studies
    "test_r2_chunk1000", "val_r2_chunk1000",  # 1000-frame windows at hop 500 (ours)
    "test_r2_chunkmix", "val_r2_chunkmix",  # the original code's three window sets together
    "epochs_run", "best_epoch", "best_epoch_at_end", "steps_per_epoch",
)
FINISHED = "TERMINATED"  # trials.csv status of a trial that ran to its end
FAILED = "ERROR"
# a trial's checkpoints (tune/trial_<id>/checkpoint_<n>/)
STATE_FILE = "state.pt"  # per-epoch checkpoint: the training state (raympa.train's get_state())
FINAL_FILE = "final.json"  # last checkpoint of a finished trial: its final metrics (and its members')
LATENTS_FILE = "latents.npz"  # last checkpoint: test-set latents
MODEL_FILE = "checkpoint.pt"  # last checkpoint: the trained model, as `raympa predict --checkpoint` reads it
MEMBERS_KEY = "members"  # final.json of a trial that trained several seeds: one entry per seed
PACKAGES = ("raympa", "ray", "torch", "optuna", "numpy", "pandas")  # versions recorded in study.json


def member_folder(seed: int) -> str:
    """The folder of one seed inside the last checkpoint of a trial that trained several seeds."""
    return f"seed-{int(seed)}"


def study_json_path(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / STUDY_JSON


def trials_path(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / TRIALS_CSV


def latents_dir(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / LATENTS_DIR


def latents_path(study_dir: str | os.PathLike, trial_id: str) -> Path:
    """``<study>/latents/<trial_id>.npz``."""
    return latents_dir(study_dir) / f"{trial_id}.npz"


def journal_path(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / OPTUNA_JOURNAL


def tune_path(storage: str | os.PathLike) -> str:
    """Tune's experiment folder under a storage path (a local folder or ``s3://...``)."""
    return f"{str(storage).rstrip('/')}/{TUNE_DIR}"


def report_dir(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / REPORT_DIR


def write_study_json(study_dir: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    """Write ``study.json`` atomically (a reader never sees half a file)."""
    path = study_json_path(study_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(meta), indent=2, default=str))
    tmp.replace(path)
    return path


def read_study_json(study_dir: str | os.PathLike) -> dict[str, Any]:
    """``study.json`` as a dict.

    Raises:
        FileNotFoundError: no ``study.json`` in the folder.
        ValueError: the file is not valid JSON (``json.JSONDecodeError``).
    """
    return json.loads(study_json_path(study_dir).read_text())


def write_trials(study_dir: str | os.PathLike, trials: "pd.DataFrame") -> Path:
    """Write ``trials.csv`` (rows sorted by ``trial_id`` when there are any)."""
    if len(trials) and "trial_id" in trials.columns:
        trials = trials.sort_values("trial_id").reset_index(drop=True)
    path = trials_path(study_dir)
    trials.to_csv(path, index=False)
    return path


def read_trials(study_dir: str | os.PathLike) -> "pd.DataFrame":
    """``trials.csv`` with ``trial_id`` read as text.

    Raises:
        FileNotFoundError: no ``trials.csv`` in the folder.
    """
    import pandas as pd

    path = trials_path(study_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; is {Path(study_dir)} a study folder written by raympa.study?")
    return pd.read_csv(path, dtype={"trial_id": str})


def relative_to(study_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """``path`` relative to the study folder (POSIX separators); URIs and outside paths as given."""
    text = str(path)
    if "://" in text:
        return text
    try:
        return Path(os.path.relpath(Path(text).resolve(), Path(study_dir).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return text


def resolve(study_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """The inverse of :func:`relative_to`: a stored path made usable from anywhere."""
    text = str(path)
    if "://" in text or Path(text).is_absolute():
        return text
    return str(Path(study_dir) / text)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds; anything else unchanged."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def versions(packages: tuple[str, ...] = PACKAGES, *, missing: str | None = None) -> dict[str, str]:
    """Python's and the installed packages' versions (provenance for study.json and the report).

    Args:
        packages: distribution names to look up.
        missing: the value recorded for a package that is not installed (None = leave it out).
    """
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            if missing is not None:
                out[pkg] = missing
    return out


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


def upload_summary(study_dir: Path, storage: str) -> None:
    """Copy study.json, trials.csv, latents/ and optuna.journal next to Tune's folder (s3://...)."""
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(storage)
    for item in SUMMARY_ITEMS:
        src = study_dir / item
        if src.exists():
            pyarrow.fs.copy_files(str(src), f"{root.rstrip('/')}/{item}", destination_filesystem=fs)
