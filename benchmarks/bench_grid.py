"""The paper's grid at FBA size: per-seed runs against the seeds of a configuration trained together.

The grid is 3 paper models x 3 criteria x 2 bands x 5 seeds = 90 runs at the paper's settings
(``TrainConfig`` defaults: batch 32, at least 64 steps per epoch, 300 epochs, the two-step
encoder 150, patience 75). Running all 90 on a shared 2-core machine takes hours, so this
benchmark measures what one run of each (model, band) costs and derives the grid from it:

* one process per arm and (model, band), one torch thread; a run of ``--epochs`` epochs per stage
  (patience above, so every member runs them all) of K = 1 (one seed: today's per-seed trial)
  and of K = 5 (the five seeds together), timed in **CPU seconds** of the process (user + system;
  on a shared machine wall time is noise). A callback reads the CPU clock after every epoch: the
  median of each stage's later epochs is its cost per epoch, the rest of the run (model set-up,
  the first epoch's extra, the final evaluation, run folders with checkpoints) its fixed cost.
* the start of a trial process (``import raympa.train`` and loading the data) is timed apart.
* a run is ``start + fixed + sum(stage epochs x cost per epoch)``. Criteria cost the same (same
  data, another rating column), so the grid is ``3 x`` that per (model, band): 5 runs of K = 1
  before, 1 run of K = 5 after. Wall time on 2 cores assumes two trials at a time, one per core.

Epochs are not known before a run stops early, so the table gives the grid at the paper's
maximum (every run to its last epoch: an upper bound) and, with ``--epochs-from`` (a study's
trials.csv at paper settings), at the epochs its runs took: a per-seed trial costs its own
epochs. A trial of five seeds is given two ways: as the earlier trainer ran it (a member that
stopped early stayed in the stacked model, frozen, until the last one stopped: every epoch of a
stage cost five members, for the most epochs of its seeds) and as it runs now (stopped members
leave the model: each epoch costs the members still running). An epoch of k running members is
priced between the measured K = 1 and K = 5 epochs, linearly in k (ours: a cost per step shared by
the members plus a cost per member, as benchmarks/results/members.md measures).

The measurements are kept in a JSON file beside the table; ``--from-json`` re-derives the table
from them (for example with other epochs) without measuring again.

Data: simulated sets of FBA size (middle school 2,616 auditions of about 30 s = 5,200 frames,
split 2,093/262/261; symphonic band 3,036 of about 45 s), from :func:`raympa.dataset.synthetic_set`,
or a ratings table + contours folder per band (``--data-middleschool`` / ``--data-symphonic``).

    python benchmarks/bench_grid.py                 # full run (minutes)
    python benchmarks/bench_grid.py --smoke-test    # seconds; checks the script works
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANDS = {  # band -> (auditions, frames range): FBA sizes (2,616 middle school, 3,036 symphonic)
    "middleschool": (2616, (4400, 6000)),  # about 30 s at 172 frames/s
    "symphonic": (3036, (6900, 8600)),  # about 45 s
}
PAPER_EPOCHS = {"regression": 300, "joint": 300, "encoder": 150, "head": 300}  # TrainConfig defaults (paper)
CRITERIA = 3  # musicality, note accuracy, rhythm accuracy
SEEDS = 5


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _contours(folder: Path) -> Path:
    """A band folder's contours: ``contours/`` (raympa extract) or ``contours.parquet``."""
    return folder / "contours" if (folder / "contours").exists() else folder / "contours.parquet"


def _simulate(band: str, folder: Path, *, smoke: bool) -> None:
    """A simulated set of the band's FBA size written as ratings.csv + contours.parquet (as a trial reads them)."""
    from raympa.dataset import synthetic_set

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_members import write_inputs

    n, frames = BANDS[band]
    if smoke:
        n, frames = 60, (1200, 1600)
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(synthetic_set(n, seed=0, n_frames=frames), folder)


def child(args: argparse.Namespace) -> dict:
    """One arm in this (fresh) process: start-up, then a K-member run with per-epoch CPU times."""
    import torch

    from raympa.config import TrainConfig
    from raympa.train import fit_members

    from raympa.train import load_training_data

    torch.set_num_threads(1)
    folder = Path(args.folder)
    data = load_training_data(folder / "ratings.csv", _contours(folder))
    start = _cpu()  # the process so far: interpreter, imports, data
    cfg = TrainConfig(model=args.model, criterion="note_accuracy", epochs=args.epochs, encoder_epochs=args.epochs,
                      patience=args.epochs + 1, threads=1, device="cpu")
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(args.members)]
    marks: list[tuple[str, float]] = []

    def keep(metrics: list, get_state) -> None:
        stage = next(m["stage"] for m in metrics if m is not None)
        marks.append((stage, _cpu()))

    with tempfile.TemporaryDirectory() as tmp:
        t1 = _cpu()
        fit_members(cfgs, data, callback=keep, out_dirs=[Path(tmp) / f"seed-{c.seed}" for c in cfgs])
        total = _cpu() - t1
    per_epoch, prev, times = {}, t1, {}
    for stage, t in marks:
        times.setdefault(stage, []).append(t - prev)
        prev = t
    for stage, ts in times.items():  # the first epoch of a stage carries its set-up: left out
        per_epoch[stage] = statistics.median(ts[1:] if len(ts) > 1 else ts)
    fixed = total - sum(per_epoch[s] * len(ts) for s, ts in times.items())
    return {"start": start, "fixed": fixed, "per_epoch": per_epoch, "total": total,
            "n": int(len(data.recording_id)), "frames": float(data.lengths.mean())}


def _run_child(model: str, folder: Path, k: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", model, "--folder", str(folder), "--members", str(k),
           "--epochs", str(args.epochs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_cost(m: dict, epochs: dict[str, float]) -> float:
    """CPU seconds of one trial: start + fixed + its stages' epochs x cost per epoch."""
    return m["start"] + m["fixed"] + sum(epochs[s] * c for s, c in m["per_epoch"].items())


def epoch_cost(one: dict, five: dict, stage: str, k: int) -> float:
    """CPU seconds of one epoch of ``stage`` with k running members, linear in k between K = 1 and K = 5."""
    c1, c5 = one["per_epoch"][stage], five["per_epoch"][stage]
    return c1 + (c5 - c1) * (k - 1) / (SEEDS - 1)


def shrinking_cost(one: dict, five: dict, seeds: list[dict[str, float]]) -> float:
    """CPU seconds of one trial of these seeds (each one's epochs per stage) when stopped seeds leave the model."""
    total = five["start"] + five["fixed"]
    for stage in five["per_epoch"]:
        ends = [int(round(e[stage])) for e in seeds]
        total += sum(epoch_cost(one, five, stage, sum(end >= e for end in ends)) for e in range(1, max(ends) + 1))
    return total


def _stage_epochs(row: dict) -> dict[str, float]:
    """Epochs per stage of one run of a trials.csv row (early stopping: best + patience, capped)."""
    if row["model"] == "contrastive":
        encoder = min(row["encoder_epochs"], row["encoder_best_epoch"] + row["patience"])
        return {"encoder": encoder, "head": row["epochs_run"] - encoder}
    return {"regression" if row["model"] == "pcconvnet" else "joint": row["epochs_run"]}


def epochs_from(trials_csv: str) -> dict[tuple[str, str], list[list[dict[str, float]]]]:
    """(band, model) -> per configuration (criterion), each seed's epochs per stage."""
    import pandas as pd

    t = pd.read_csv(trials_csv)
    out: dict[tuple[str, str], list[list[dict[str, float]]]] = {}
    for (model, band, _), g in t.groupby(["model", "band", "criterion"]):
        key = next((b for b in BANDS if str(band).startswith(b)), str(band))
        out.setdefault((key, model), []).append([_stage_epochs(r) for r in g.to_dict("records")])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="pcconvnet,contrastive,contrastive-jl")
    p.add_argument("--bands", default="middleschool,symphonic")
    p.add_argument("--epochs", type=int, default=5, help="epochs per stage of each measured run (default %(default)s)")
    p.add_argument("--epochs-from", default="", help="a study's trials.csv at paper settings: the epochs its runs took")
    p.add_argument("--from-json", default="", help="re-derive the table from these measurements (no runs)")
    p.add_argument("--data-middleschool", default="", help="folder with ratings.csv and contours/ (default: simulated)")
    p.add_argument("--data-symphonic", default="", help="folder with ratings.csv and contours/ (default: simulated)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grid.md"))
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes; writes nothing unless --out is given")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="pcconvnet", help=argparse.SUPPRESS)
    p.add_argument("--folder", default="", help=argparse.SUPPRESS)
    p.add_argument("--members", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke_test:
        args.epochs, args.models = 2, args.models if "--models" in (argv or sys.argv) else "pcconvnet"
    if args.child:
        print(json.dumps(child(args)))
        return 0
    out = Path(args.out)
    if args.from_json:
        measured = json.loads(Path(args.from_json).read_text())
    else:
        measured = measure(args, argv)
        if not args.smoke_test or "--out" in (argv or sys.argv):
            out.with_suffix(".json").write_text(json.dumps(measured, indent=1) + "\n")
    text = report(measured, args, argv)
    if not args.smoke_test or "--out" in (argv or sys.argv):
        out.write_text(text)
    print(text)
    return 0


def measure(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Both arms of every (band, model), each in a fresh process, with the machine's state."""
    load0, t0 = os.getloadavg(), time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for band in args.bands.split(","):
            folder = Path(getattr(args, f"data_{band}") or Path(tmp) / band)
            if not getattr(args, f"data_{band}"):
                _simulate(band, folder, smoke=args.smoke_test)
            for model in args.models.split(","):
                one, five = _run_child(model, folder, 1, args), _run_child(model, folder, SEEDS, args)
                rows.append([band, model, one, five])
                print(band, model, one, five, file=sys.stderr)
    import torch

    return {"command": "python benchmarks/bench_grid.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "epochs": args.epochs, "load_start": load0[0], "load_end": os.getloadavg()[0],
            "wall_min": (time.perf_counter() - t0) / 60, "rows": rows,
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs visible, one torch thread per "
                       f"trial, Python {platform.python_version()}, torch {torch.__version__}"}


def report(m: dict, args: argparse.Namespace, argv: list[str] | None) -> str:
    """The results tables (markdown) from the measurements ``m`` (:func:`measure`)."""
    k = SEEDS
    command = "python benchmarks/bench_grid.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# The paper's grid at FBA size: per-seed runs against seeds trained together (cpu)", "",
        f"Command: `{command.strip()}`" + (f" (measured by `{m['command']}`)" if args.from_json else ""), "",
        f"Machine: {m['machine']}; shared with other jobs (load average {m['load_start']:.1f} at the start, "
        f"{m['load_end']:.1f} at the end; the measurement took {m['wall_min']:.1f} min of wall time). All figures "
        "are CPU seconds of the trial process (user + system), not wall time.",
        f"Measured: one run per (band, model) and arm, {m['epochs']} epochs per stage, criterion note accuracy, "
        "paper settings otherwise (batch 32, at least 64 steps per epoch). Start = importing raympa and loading "
        "the data in a fresh process; fixed = set-up, final evaluation, run folders; per epoch = median of a "
        "stage's epochs after its first (training and full-length validation).", "",
        f"| band | model | auditions | frames (mean) | start, s | fixed K=1 / K={k}, s | per epoch K=1 / K={k}, s "
        f"| one trial at paper max, K=1 / K={k}, s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    grids = {"max": [0.0, 0.0, 0.0]}  # per-seed trials, five seeds with stopped ones computed, stopped ones leaving
    epochs = epochs_from(args.epochs_from) if args.epochs_from else None
    if epochs:
        grids["run"] = [0.0, 0.0, 0.0]
    for band, model, one, five in m["rows"]:
        stages = list(one["per_epoch"])
        per = " + ".join(f"{s} {one['per_epoch'][s]:.2f} / {five['per_epoch'][s]:.2f}" for s in stages)
        t1, t5 = run_cost(one, PAPER_EPOCHS), run_cost(five, PAPER_EPOCHS)
        lines.append(f"| {band} | {model} | {one['n']:,} | {one['frames']:,.0f} | {one['start']:.1f} | "
                     f"{one['fixed']:.1f} / {five['fixed']:.1f} | {per} | {t1:,.0f} / {t5:,.0f} |")
        grids["max"][0] += CRITERIA * SEEDS * t1
        grids["max"][1] += CRITERIA * t5
        grids["max"][2] += CRITERIA * t5  # every seed runs to the end: nobody leaves
        if epochs:
            for seeds in epochs[(band, model)]:  # one configuration: its seeds' epochs per stage
                grids["run"][0] += sum(run_cost(one, e) for e in seeds)
                grids["run"][1] += run_cost(five, {s: max(e[s] for e in seeds) for s in stages})
                grids["run"][2] += shrinking_cost(one, five, seeds)
    n_bands, n_models = len({r[0] for r in m["rows"]}), len({r[1] for r in m["rows"]})
    runs = CRITERIA * SEEDS * n_bands * n_models
    lines += ["", f"The grid: {runs} runs ({n_models} models x {CRITERIA} criteria x {n_bands} bands x {SEEDS} "
              f"seeds): {runs} trials of one seed before, {runs // k} trials of {k} seeds after.", "",
              f"| epochs per run | per-seed trials: CPU h / wall on 2 cores, min | {k} seeds, stopped seeds computed "
              f"(earlier): CPU h / min | {k} seeds, stopped seeds leave (now): CPU h / min | speed-up over per-seed |",
              "|---|---|---|---|---|"]
    label = {"max": "paper maximum (300; two-step 150 + 300): upper bound",
             "run": f"the epochs of the runs in {args.epochs_from}"}
    for key, (before, frozen, after) in grids.items():
        lines.append(f"| {label[key]} | {before / 3600:.2f} / {before / 120:.0f} | {frozen / 3600:.2f} / "
                     f"{frozen / 120:.0f} | {after / 3600:.2f} / {after / 120:.0f} | {before / after:.2f}x |")
    lines += ["", "Wall time on 2 cores = CPU time / 2: two trials at a time, one per core, the cores otherwise "
              "free and the trials packed without gaps (each trial's process start and data loading are counted; "
              "Ray's own scheduling and building the contours are not)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
