"""K members trained together against K single runs one after another, and memory against K.

Two comparisons of whole runs (training, validation every epoch, final evaluation, run folders
with checkpoints), one torch thread, timed in CPU seconds (user + system: on a shared machine
wall time is noise), the ratio taken per repeat (the arms interleaved) and its median reported:

* in one process: ``fit_members`` of seeds 0..K-1 against ``fit`` of each seed in turn;
* as a user runs them: ``raympa train --seeds 0-4`` against ``raympa train --seed s`` for each
  seed, each a fresh process (start-up and data loading included), CPU time of the children.

Also the training step alone (the stacked and single trainers interleaved in one process), and
memory: one fresh process per K, its peak RSS after a short ``fit_members`` run. Writes
``benchmarks/results/members.md``.

    python benchmarks/bench_members.py                 # full run
    python benchmarks/bench_members.py --smoke-test    # seconds; checks the script works
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from raympa.config import TrainConfig
from raympa.dataset import synthetic_set
from raympa.sampling import epoch_repeats, steps_per_pass
from raympa.train import Trainer, fit, fit_members

ROOT = Path(__file__).resolve().parents[1]


def _data(n: int):
    return synthetic_set(n, seed=0, n_frames=(4000, 6000))  # about 30 s each, like FBA middle school


def _config(model: str, epochs: int, device: str) -> TrainConfig:
    # every member runs all its epochs (patience > epochs): the same work in both arms
    return TrainConfig(model=model, epochs=epochs, encoder_epochs=epochs, patience=epochs + 1, threads=1,
                       device=device)


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def time_pair(cfg: TrainConfig, data, k: int) -> tuple[float, float]:
    """CPU seconds of K single runs one after another and of the K members together (one process)."""
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = _cpu()
        for c in cfgs:
            fit(c, data, out_dir=Path(tmp) / "single" / f"seed-{c.seed}")
        singles = _cpu() - t0
        t0 = _cpu()
        fit_members(cfgs, data, out_dirs=[Path(tmp) / "members" / f"seed-{c.seed}" for c in cfgs])
        together = _cpu() - t0
    return singles, together


def write_inputs(data, folder: Path) -> None:
    """ratings.csv and contours.parquet for ``raympa train``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    pd.DataFrame({"recording_id": data.recording_id, "student_id": data.recording_id, "year": 2017,
                  "band": data.band, "instrument": data.instrument,
                  **{c: data.ratings[c] for c in ("musicality", "note_accuracy", "rhythm_accuracy")},
                  "split": data.split}).to_csv(folder / "ratings.csv", index=False)
    midi = pa.array([data.contour(i) for i in range(len(data))], type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"recording_id": pa.array(data.recording_id.tolist()), "midi": midi,
                             "sample_rate": pa.array([44100] * len(data)),
                             "hop_length": pa.array([256] * len(data))}), folder / "contours.parquet")


def time_cli_pair(model: str, epochs: int, k: int, folder: Path) -> tuple[float, float]:
    """CPU seconds of K ``raympa train --seed s`` processes and of one ``raympa train --seeds 0-(K-1)``."""
    common = [sys.executable, "-c", "import sys; from raympa.cli import main; sys.exit(main())", "train", "--ratings", str(folder / "ratings.csv"),
              "--contours", str(folder / "contours.parquet"), "--model", model, "--epochs", str(epochs),
              "--encoder-epochs", str(epochs), "--patience", str(epochs + 1), "--threads", "1", "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = _cpu(resource.RUSAGE_CHILDREN)
        for s in range(k):
            subprocess.run([*common, "--seed", str(s), "--out", f"{tmp}/single-{s}"], check=True, capture_output=True)
        singles = _cpu(resource.RUSAGE_CHILDREN) - t0
        t0 = _cpu(resource.RUSAGE_CHILDREN)
        subprocess.run([*common, "--seeds", f"0-{k - 1}", "--out", f"{tmp}/members"], check=True, capture_output=True)
        together = _cpu(resource.RUSAGE_CHILDREN) - t0
    return singles, together


def step_ms(cfg: TrainConfig, data, k: int, *, epochs: int) -> tuple[float, float]:
    """Median CPU ms of one training step: K=1 and K members, epochs interleaved in one process."""
    trainers = {n: Trainer([dataclasses.replace(cfg, seed=s) for s in range(n)], data, torch.device(cfg.device))
                for n in (1, k)}
    times: dict[int, list[float]] = {1: [], k: []}
    lengths = trainers[1].splits["train"].lengths_np
    per_pass = steps_per_pass(lengths, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames, chunk_hop=cfg.chunk_hop,
                              chunks_per_recording=cfg.chunks_per_recording, batch_size=cfg.batch_size)
    steps = per_pass * epoch_repeats(per_pass, cfg.min_steps_per_epoch)
    for e in range(epochs + 1):
        for n, tr in trainers.items():
            t0 = _cpu()
            tr.train_epoch()
            if e:  # the first epoch warms up
                times[n].append((_cpu() - t0) / steps * 1e3)
    return statistics.median(times[1]), statistics.median(times[k])


def child_memory(k: int, n: int, model: str, device: str) -> dict:
    """Peak RSS of this process after a 2-epoch ``fit_members`` of K members (run in a fresh process)."""
    data = _data(n)
    cfg = _config(model, 2, device)
    t0 = time.perf_counter()
    fit_members([dataclasses.replace(cfg, seed=s) for s in range(k)], data)
    return {"k": k, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - t0}


def _ratios(pairs: list[tuple[float, float]]) -> tuple:
    r = [s / t for s, t in pairs]
    return (statistics.median(s for s, _ in pairs), statistics.median(t for _, t in pairs),
            statistics.median(r), min(r), max(r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=240, help="synthetic recordings (default %(default)s, the demo's size)")
    p.add_argument("--k", type=int, default=5, help="members (default %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per stage of each run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per model (default %(default)s)")
    p.add_argument("--models", default="pcconvnet,contrastive,contrastive-jl")
    p.add_argument("--memory-k", default="1,5,20", help="K values for the memory table")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "members.md"))
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes; writes nothing unless --out is given")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.epochs, args.repeats, args.k, args.memory_k = 40, 1, 1, 2, "1,2"
    models = args.models.split(",")
    if args.child:
        torch.set_num_threads(1)
        print(json.dumps(child_memory(args.child, args.n, models[-1], args.device)))
        return 0
    torch.set_num_threads(1)
    load0, wall0 = os.getloadavg(), time.perf_counter()
    data = _data(args.n)
    rows, cli_rows, steps = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        write_inputs(data, Path(folder))
        for model in models:
            cfg = _config(model, args.epochs, args.device)
            time_pair(cfg, data, 1)  # warm-up
            pairs, cli = [], []
            for _ in range(args.repeats):
                pairs.append(time_pair(cfg, data, args.k))
                cli.append(time_cli_pair(model, args.epochs, args.k, Path(folder)))
            rows.append((model, *_ratios(pairs)))
            cli_rows.append((model, *_ratios(cli)))
            one, many = step_ms(cfg, data, args.k, epochs=max(2, args.repeats))
            steps.append((model, one, many, args.k * one / many))
            print(rows[-1], cli_rows[-1], steps[-1], file=sys.stderr)
    memory = []
    for k in [int(v) for v in args.memory_k.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(k), "--n", str(args.n), "--models", models[-1],
               "--device", args.device]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ}).stdout
        memory.append(json.loads(out.strip().splitlines()[-1]))
        print(memory[-1], file=sys.stderr)
    text = report(args, argv, data, rows, cli_rows, steps, memory, load0, time.perf_counter() - wall0)
    if not args.smoke_test or "--out" in (argv or sys.argv):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


def report(args, argv, data, rows, cli_rows, steps, memory, load0, wall) -> str:
    """The results tables (markdown)."""
    k = args.k
    command = "python benchmarks/bench_members.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# K members trained together ({args.device})", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs visible, one torch thread, "
        f"Python {platform.python_version()}, torch {torch.__version__}; shared with other jobs (load average "
        f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; {wall / 60:.1f} min of wall time). "
        "Times are CPU seconds (user + system) of the process or of its child processes.",
        f"Data: {args.n} synthetic recordings of 4000-6000 frames (80 % train), default TrainConfig "
        f"(batch 32, one chunk per recording, at least 64 steps per epoch), {args.epochs} epochs per stage, "
        f"patience above the epochs so every member runs them all.",
        f"Each arm is a whole run: training, validation every epoch, final evaluation (full length and both "
        f"chunk protocols), run folders with checkpoint.pt. Median of {args.repeats} interleaved repeats.", "",
        f"In one process (`fit` of each seed against `fit_members`):", "",
        f"| model | {k} single runs, CPU s | {k} members together, CPU s | speed-up (median) | min | max |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {s:.1f} | {t:.1f} | {r:.2f}x | {lo:.2f}x | {hi:.2f}x |" for m, s, t, r, lo, hi in rows]
    lines += ["", f"As a user runs them ({k} processes `raympa train --seed s` against one "
              f"`raympa train --seeds 0-{k - 1}`; start-up and data loading included):", "",
              f"| model | {k} single runs, CPU s | {k} members together, CPU s | speed-up (median) | min | max |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {s:.1f} | {t:.1f} | {r:.2f}x | {lo:.2f}x | {hi:.2f}x |" for m, s, t, r, lo, hi in cli_rows]
    lines += ["", f"The training step alone (first stage; sampling, gathering, forward, loss, backward, SGD), "
              f"median CPU ms per step over epochs of the two trainers interleaved in one process:", "",
              f"| model | K=1, ms | K={k}, ms | {k} x K=1 / K={k} |", "|---|---|---|---|"]
    lines += [f"| {m} | {a:.2f} | {b:.2f} | {r:.2f}x |" for m, a, b, r in steps]
    lines += ["", f"Memory: peak RSS of a fresh process that loads the data and trains K members of "
              f"{args.models.split(',')[-1]} for 2 epochs (the data set is {data.midi.nbytes / 2**20:.0f} MB "
              "of contours).", "", "| K | peak RSS, MB | wall s |", "|---|---|---|"]
    lines += [f"| {m['k']} | {m['peak_rss_mb']:.0f} | {m['seconds']:.1f} |" for m in memory]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
