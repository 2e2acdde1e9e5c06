"""The Ray Data engine: one function from an input row to a contour, run over many rows.

:func:`map_rows` takes the rows (dicts with ``recording_id`` and ``path``, plus whatever the row
function reads) and a *row function* ``row -> (midi, metadata)``, and runs that function on Ray
Data: one ``map_batches`` stage of Ray tasks, 1 CPU each, over every CPU of the local machine or
of a cluster. What it guarantees, whatever the row function:

* every row comes back exactly once, in input order, as a contour row or an error row;
* an exception raised for one row becomes that row's one-line ``error``, the other rows go on;
* a worker process that dies (a crash, the OOM killer, a lost node) costs only a retry: Ray Data
  re-runs the task; a row that was running each time its worker died is attempted at most
  ``MAX_RETRIES + 1`` times and then becomes an error row, so one bad input cannot hang the run
  or take innocent rows of its task with it (attempts are counted per row by a small actor);
* rows of a task that still fails for another reason are redone one per task, and any row left
  after that is an error row: nothing is dropped silently.

Results come back as Arrow tables (``midi`` as ``list<float32>``), schema :func:`arrow_schema`.
Ray is started or joined through :func:`raympa.cluster.ray_session`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from raympa.audio import AudioError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

RowFn = Callable[[dict[str, Any]], "tuple[np.ndarray, dict[str, Any]]"]  # row -> ((n_frames,) MIDI, metadata)
MetaTypes = Sequence[tuple[str, str]]  # metadata column name -> Arrow type alias ("int32", "string", ...)

MAX_RETRIES = 3  # attempts of a row beyond the first after its worker process died, ours
MAX_ROWS_PER_TASK = 8  # rows per Ray task in large runs (see auto_rows_per_task), ours
ERROR_MAX_CHARS = 300  # longest error text of a row
LOST_TEXT = f"worker process died while processing this input ({MAX_RETRIES + 1} attempts)"
FAILED_TEXT = "its Ray task failed outside the per-input error handling (see the Ray log)"


def auto_rows_per_task(n_items: int, n_cpus: float) -> int:
    """Rows per Ray task: 1 for small runs (all CPUs busy), up to ``MAX_ROWS_PER_TASK`` for large ones.

    A task costs the driver and raylet some 10-30 ms; at about 0.2 CPU-s per 30-s audition
    (fast backend) that is 5-15 % of the work with one row per task, under 2 % with eight.
    Four tasks per CPU at least keep the load balanced at the end of the run.
    """
    return int(min(MAX_ROWS_PER_TASK, max(1, n_items // max(1, int(4 * n_cpus)))))


def arrow_schema(meta_types: MetaTypes) -> "pa.Schema":
    """Output schema: the engine's columns around the row function's metadata columns."""
    import pyarrow as pa

    return pa.schema([
        ("_index", pa.int64()),
        ("recording_id", pa.string()),
        ("midi", pa.list_(pa.float32())),
        *[(name, pa.type_for_alias(alias)) for name, alias in meta_types],
        ("source_path", pa.string()),
        ("node_id", pa.string()),
        ("cpu_seconds", pa.float64()),
        ("worker_peak_mb", pa.float64()),
        ("error", pa.string()),
    ])


def rows_to_arrow(rows: list[dict[str, Any]], meta_types: MetaTypes) -> "pa.Table":
    """Rows (dicts; missing keys are null) -> an Arrow table of :func:`arrow_schema`."""
    import pyarrow as pa

    schema = arrow_schema(meta_types)
    cols: dict[str, Any] = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if f.name == "midi":
            offsets = np.zeros(len(rows) + 1, np.int32)
            arrays = [np.asarray(v if v is not None else [], np.float32) for v in vals]
            np.cumsum([len(a) for a in arrays], out=offsets[1:])
            flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
            cols[f.name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))
        else:
            cols[f.name] = pa.array(vals, type=f.type)
    return pa.Table.from_pydict(cols, schema=schema)


# ============================================================================ in the Ray tasks
class _Attempts:
    """Counts attempts of tasks and rows whose worker died (a Ray actor, one per run).

    A task's first attempt runs its rows without per-row marks (no round trip per row). Only a
    task that was started before, so its worker died, marks each row before running it and
    clears the mark after: a row whose mark is still set counts one more death.
    """

    def __init__(self) -> None:
        self.tasks: dict[tuple[int, ...], int] = {}
        self.running: dict[int, int] = {}

    def begin(self, indices: tuple[int, ...]) -> int:
        self.tasks[indices] = self.tasks.get(indices, 0) + 1
        return self.tasks[indices]

    def start(self, index: int) -> int:
        self.running[index] = self.running.get(index, 0) + 1
        return self.running[index]

    def done(self, index: int) -> None:
        self.running.pop(index, None)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux/macOS; 0 where unknown)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return 0.0


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = text if isinstance(e, AudioError) else f"{type(e).__name__}: {text}".rstrip(": ")
    return msg[:ERROR_MAX_CHARS]


def process_row(row: dict[str, Any], row_fn: RowFn) -> dict[str, Any]:
    """One row -> its output row (for :func:`rows_to_arrow`), outside Ray: a failure becomes the
    row's one-line ``error``, and the row carries its CPU seconds and the worker's peak memory,
    exactly as in :func:`map_rows`. ``row`` needs ``_index``, ``recording_id`` and ``path``."""
    return _process_row(row, row_fn, None)


def _process_row(row: dict[str, Any], row_fn: RowFn, attempts: Any | None) -> dict[str, Any]:
    """One row -> its output row; ``attempts`` (the actor) only on a task's retries."""
    base = {"_index": row["_index"], "recording_id": row["recording_id"], "source_path": row["path"]}
    # the first attempt's death is not marked on any row: MAX_RETRIES marked deaths make MAX_RETRIES + 1
    if attempts is not None:
        import ray

        if ray.get(attempts.start.remote(row["_index"])) > MAX_RETRIES:
            return {**base, "error": LOST_TEXT}
    t0 = time.process_time()
    try:
        midi, meta = row_fn(row)
        res = {**base, **meta, "midi": midi,
               "cpu_seconds": time.process_time() - t0,  # CPU of this worker process for the row
               "worker_peak_mb": _peak_rss_mb()}
    except Exception as e:  # every failure of one input becomes its error row
        res = {**base, "error": _one_line(e)}
    if attempts is not None:
        attempts.done.remote(row["_index"])
    return res


def _process_batch(batch: "pa.Table", *, row_fn: RowFn, meta_types: MetaTypes, attempts: Any) -> "pa.Table":
    """Ray Data map function: rows in, as many rows out (pyarrow in and out)."""
    import ray

    rows = batch.to_pylist()
    retried = ray.get(attempts.begin.remote(tuple(r["_index"] for r in rows))) > 1
    node = _node_id()
    out = [_process_row(row, row_fn, attempts if retried else None) | {"node_id": node} for row in rows]
    return rows_to_arrow(out, meta_types)


# ============================================================================ driver
@contextlib.contextmanager
def _data_context(**settings: Any) -> Iterator[None]:
    """Set DataContext fields while a Dataset is built (the Dataset copies the context)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    old = {k: getattr(ctx, k) for k in settings}
    for k, v in settings.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(ctx, k, v)


def _execute(items: list[dict[str, Any]], row_fn: RowFn, meta_types: MetaTypes, *, attempts: Any,
             num_workers: int | None, rows_per_task: int) -> Iterator["pa.Table"]:
    """One Ray Data pass: ``rows_per_task`` rows per block and per task. Yields Arrow tables."""
    import ray
    from ray.data import TaskPoolStrategy

    n_blocks = math.ceil(len(items) / rows_per_task)
    # Ray Data retries a task whose worker died without bound (its default); _Attempts bounds it
    # per row. A block whose task raises (not a row: those are caught) is skipped, not fatal: the
    # caller finds its rows missing (max_errored_blocks = every block).
    # Ray Data reserves part of the CPUs per operator (op_resource_reservation); with a single map
    # operator that only idles CPUs (on 2 cores the map ran on one: 1.15x for 2 workers), so the
    # reservation is off and the map may use every CPU.
    with _data_context(max_errored_blocks=n_blocks, op_resource_reservation_enabled=False):
        ds = ray.data.from_items(items, override_num_blocks=n_blocks)
        ds = ds.map_batches(
            _process_batch,
            batch_size=rows_per_task,
            batch_format="pyarrow",
            fn_kwargs={"row_fn": row_fn, "meta_types": tuple(meta_types), "attempts": attempts},
            compute=TaskPoolStrategy(size=num_workers),
            num_cpus=1,
        )
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")


def warm_up_nodes(warmup: Callable[[], None]) -> None:
    """Run ``warmup`` in this process, then once on every other alive node, before fanning out.

    For compiled-kernel caches (numba): the first compile on a node writes its cache once, so
    the many workers started next load it instead of compiling (and writing) it all at once.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    warmup()
    here = ray.get_runtime_context().get_node_id()
    others = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["NodeID"] != here]
    remote = ray.remote(num_cpus=0)(_call)
    ray.get([remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(warmup)
             for n in others])


def _call(fn: Callable[[], None]) -> None:
    fn()


def map_rows(
    rows: Sequence[Mapping[str, Any]],
    row_fn: RowFn,
    *,
    meta_types: MetaTypes,
    address: str | None = None,
    num_workers: int | None = None,
    rows_per_task: int | None = None,
    warmup: Callable[[], None] | None = None,
) -> "pa.Table":
    """Run ``row_fn`` over ``rows`` on Ray Data; one output row per input row, in input order.

    Args:
        rows: dicts with ``recording_id`` and ``path`` (both strings) and what ``row_fn`` reads.
        row_fn: ``row -> (midi, metadata)``: (n_frames,) float32 MIDI and a dict with the keys of
            ``meta_types``; it raises for a bad input. Must pickle (Ray ships it to the workers).
        meta_types: the metadata columns and their Arrow types.
        address: Ray address (``"auto"`` joins a running cluster); None = the running instance,
            or a new local one (with ``num_workers`` CPUs, default every CPU).
        num_workers: at most this many concurrent tasks (None: one per CPU).
        rows_per_task: rows per Ray task (None: :func:`auto_rows_per_task`).
        warmup: run once in the driver and once per other node first (:func:`warm_up_nodes`).

    Returns:
        An Arrow table of :func:`arrow_schema`; error rows have ``error`` set and no contour.
    """
    import pyarrow as pa

    from raympa.cluster import ray_session

    items = [{**dict(r), "_index": i} for i, r in enumerate(rows)]
    tables: list[pa.Table] = []
    if items:
        with ray_session(address, num_cpus=num_workers):
            tables = _run_on_ray(items, row_fn, meta_types, num_workers=num_workers,
                                 rows_per_task=rows_per_task, warmup=warmup)
    table = pa.concat_tables(tables) if tables else rows_to_arrow([], meta_types)
    done = set(table.column("_index").to_pylist())
    lost = [{"_index": it["_index"], "recording_id": it["recording_id"], "source_path": it["path"],
             "error": FAILED_TEXT} for it in items if it["_index"] not in done]
    if lost:
        table = pa.concat_tables([table, rows_to_arrow(lost, meta_types)])
    return table.sort_by("_index")


def _run_on_ray(items: list[dict[str, Any]], row_fn: RowFn, meta_types: MetaTypes, *, num_workers: int | None,
                rows_per_task: int | None, warmup: Callable[[], None] | None) -> list["pa.Table"]:
    import ray

    if warmup is not None:
        warm_up_nodes(warmup)
    attempts = ray.remote(num_cpus=0)(_Attempts).remote()
    try:
        k = rows_per_task or auto_rows_per_task(len(items), num_workers or ray.cluster_resources().get("CPU", 1))
        run = dict(attempts=attempts, num_workers=num_workers)
        tables = list(_execute(items, row_fn, meta_types, rows_per_task=k, **run))
        done = {i for t in tables for i in t.column("_index").to_pylist()}
        lost = [it for it in items if it["_index"] not in done]
        if lost and k > 1:  # a failed block may hold one culprit and k - 1 innocent rows
            log.warning("%d input(s) lost with their Ray task; retrying them one per task", len(lost))
            tables.extend(_execute(lost, row_fn, meta_types, rows_per_task=1, **run))
        return tables
    finally:
        ray.kill(attempts)


__all__ = ["MAX_RETRIES", "MAX_ROWS_PER_TASK", "arrow_schema", "auto_rows_per_task", "map_rows",
           "process_row", "rows_to_arrow", "warm_up_nodes"]
