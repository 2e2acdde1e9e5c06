"""The Ray Data engine: error rows, workers that die (retried, then reported), rows per task.

Faults are injected by wrapping the row function (:class:`CrashOnce`, :class:`Poison`), the way
a crash or the OOM killer would end a worker process.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from contour_signals import tone_file

from raympa import contours, inputs, raydata
from raympa.config import ExtractConfig
from raympa.contours import load_contours


@pytest.fixture(autouse=True, scope="module")
def _pickle_this_module_by_value():
    """Ray workers cannot import tests/ modules: ship this module's wrappers by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class CrashOnce:
    """Kill the worker of the first row that finds no file at ``marker`` (and create it)."""

    row_fn: Any
    marker: str

    def __call__(self, row):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("crashed once\n")
            os._exit(1)
        return self.row_fn(row)


@dataclass(frozen=True)
class Poison:
    """Kill the worker of every attempt at the rows with these ids."""

    row_fn: Any
    ids: tuple[str, ...]

    def __call__(self, row):
        if row["recording_id"] in self.ids:
            os._exit(1)
        return self.row_fn(row)


def audio_rows():
    return contours.AudioRows.of(ExtractConfig())


def folder_jobs(folder: Path) -> pd.DataFrame:
    return inputs.jobs(folder, path_column="audio_path")


def test_worker_killed_mid_run_is_retried(ray_local, tmp_path):
    for i in range(4):
        tone_file(tmp_path / "in" / f"t{i}.wav", 0.3, 300.0 + 50 * i)
    marker = tmp_path / "crashed"
    res = contours.run_rows(folder_jobs(tmp_path / "in"), tmp_path / "out", CrashOnce(audio_rows(), str(marker)),
                            rows_per_task=2)
    assert marker.exists()  # one worker process did die
    assert res.n_ok == 4 and res.n_errors == 0
    assert sorted(load_contours(tmp_path / "out").recording_id) == ["t0", "t1", "t2", "t3"]


def test_input_that_always_kills_its_worker_becomes_an_error_row(ray_local, tmp_path):
    """Retries exhausted: that input alone goes to errors.csv, even when it shared a task."""
    for name in ("a", "b", "poison", "d"):
        tone_file(tmp_path / "in" / f"{name}.wav", 0.3)
    res = contours.run_rows(folder_jobs(tmp_path / "in"), tmp_path / "out", Poison(audio_rows(), ("poison",)),
                            rows_per_task=2)
    assert (res.n_ok, res.n_errors) == (3, 1)
    assert sorted(load_contours(tmp_path / "out").recording_id) == ["a", "b", "d"]
    err = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert err.recording_id.tolist() == ["poison"] and "worker process died" in err.error[0]


def test_rows_after_a_poison_row_in_its_task_still_run(ray_local, tmp_path):
    for name in ("a", "b", "c", "d"):
        tone_file(tmp_path / "in" / f"{name}.wav", 0.3)
    res = contours.run_rows(folder_jobs(tmp_path / "in"), tmp_path / "out", Poison(audio_rows(), ("c",)),
                            rows_per_task=2)  # tasks [a, b], [c, d]: d comes after the poison
    assert (res.n_ok, res.n_errors) == (3, 1)
    assert sorted(load_contours(tmp_path / "out").recording_id) == ["a", "b", "d"]


def fails_on_b(row):
    if row["recording_id"] == "b":
        raise RuntimeError("bad input\nsecond line")
    return [60.0, 0.0], {"n": 2}


def test_row_errors_become_one_line_error_rows_in_input_order(ray_local):
    from ray.util.annotations import RayDeprecationWarning

    rows = [{"recording_id": r, "path": f"/x/{r}"} for r in ("c", "b", "a")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = raydata.map_rows(rows, fails_on_b, meta_types=[("n", "int64")], rows_per_task=2)
    deprecated = [str(w.message) for w in caught if issubclass(w.category, RayDeprecationWarning)]
    assert not deprecated, deprecated  # no argument Ray says it will remove
    assert table.column("recording_id").to_pylist() == ["c", "b", "a"]
    assert table.column("error").to_pylist() == [None, "RuntimeError: bad input", None]
    assert table.column("n").to_pylist() == [2, None, 2]
    assert table.column("source_path").to_pylist() == ["/x/c", "/x/b", "/x/a"]
    assert table.schema.equals(raydata.arrow_schema([("n", "int64")]))


def test_rows_per_task_auto():
    assert raydata.auto_rows_per_task(5, 2) == 1  # small runs: every CPU busy
    assert raydata.auto_rows_per_task(40, 2) == 5
    assert raydata.auto_rows_per_task(6000, 2) == raydata.MAX_ROWS_PER_TASK


def test_warmup_runs_once_in_the_driver_before_the_workers(ray_local):
    calls = []
    rows = [{"recording_id": r, "path": ""} for r in ("a", "b")]
    table = raydata.map_rows(rows, fails_on_b, meta_types=[("n", "int64")], warmup=lambda: calls.append(os.getpid()))
    assert calls == [os.getpid()]  # one node: no warm-up task elsewhere
    assert table.column("error").to_pylist() == [None, "RuntimeError: bad input"]
