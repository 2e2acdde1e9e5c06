"""K members trained together against K single runs one after another, and memory against K.

A whole run each time (training, validation every epoch, final evaluation, run folders with
checkpoints): ``fit_members`` of seeds 0..K-1 against ``fit`` of each seed in turn, one torch
thread, in one process; the ratio is taken per repeat (interleaved) and the median reported.
Memory: one fresh process per K, its peak RSS after a short ``fit_members`` run. Writes
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
from raympa.train import fit, fit_members

ROOT = Path(__file__).resolve().parents[1]


def _data(n: int):
    return synthetic_set(n, seed=0, n_frames=(4000, 6000))  # about 30 s each, like FBA middle school


def _config(model: str, epochs: int, device: str) -> TrainConfig:
    # every member runs all its epochs (patience > epochs): the same work in both arms
    return TrainConfig(model=model, epochs=epochs, encoder_epochs=epochs, patience=epochs + 1, threads=1,
                       device=device)


def time_pair(cfg: TrainConfig, data, k: int) -> tuple[float, float]:
    """Seconds of K single runs one after another and of the K members together."""
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for c in cfgs:
            fit(c, data, out_dir=Path(tmp) / "single" / f"seed-{c.seed}")
        singles = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit_members(cfgs, data, out_dirs=[Path(tmp) / "members" / f"seed-{c.seed}" for c in cfgs])
        together = time.perf_counter() - t0
    return singles, together


def child_memory(k: int, n: int, model: str, device: str) -> dict:
    """Peak RSS of this process after a 2-epoch ``fit_members`` of K members (run in a fresh process)."""
    data = _data(n)
    cfg = _config(model, 2, device)
    t0 = time.perf_counter()
    fit_members([dataclasses.replace(cfg, seed=s) for s in range(k)], data)
    return {"k": k, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=240, help="synthetic recordings (default %(default)s, the demo's size)")
    p.add_argument("--k", type=int, default=5, help="members (default %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per model (default %(default)s)")
    p.add_argument("--models", default="pcconvnet,contrastive,contrastive-jl")
    p.add_argument("--memory-k", default="1,2,5,10,20", help="K values for the memory table")
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
    data = _data(args.n)
    rows = []
    for model in models:
        cfg = _config(model, args.epochs, args.device)
        time_pair(cfg, data, 1)  # warm-up
        pairs = [time_pair(cfg, data, args.k) for _ in range(args.repeats)]
        ratios = [s / t for s, t in pairs]
        rows.append((model, statistics.median(s for s, _ in pairs), statistics.median(t for _, t in pairs),
                     statistics.median(ratios), min(ratios), max(ratios)))
        print(rows[-1], file=sys.stderr)
    memory = []
    for k in [int(v) for v in args.memory_k.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(k), "--n", str(args.n), "--models", models[-1],
               "--device", args.device]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ}).stdout
        memory.append(json.loads(out.strip().splitlines()[-1]))
        print(memory[-1], file=sys.stderr)
    command = "python benchmarks/bench_members.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# K members trained together ({args.device})",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs visible, one torch thread, "
        f"Python {platform.python_version()}, torch {torch.__version__}; a shared machine (other jobs running).",
        f"Data: {args.n} synthetic recordings of 4000-6000 frames (80 % train), default TrainConfig "
        f"(batch 32, one chunk per recording, at least 64 steps per epoch), {args.epochs} epochs per stage, "
        f"patience above the epochs so every member runs them all.",
        f"Each arm is a whole run: training, validation every epoch, final evaluation (full length and both "
        f"chunk protocols), run folders with checkpoint.pt. Median of {args.repeats} interleaved repeats.",
        "",
        f"| model | {args.k} single runs, s | {args.k} members together, s | speed-up (median) | min | max |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {s:.1f} | {t:.1f} | {r:.2f}x | {lo:.2f}x | {hi:.2f}x |" for m, s, t, r, lo, hi in rows]
    lines += ["", f"Memory: peak RSS of a fresh process that loads the data and trains K members of "
              f"{models[-1]} for 2 epochs (the data set is {data.midi.nbytes / 2**20:.0f} MB of contours).", "",
              "| K | peak RSS, MB | seconds |", "|---|---|---|"]
    lines += [f"| {m['k']} | {m['peak_rss_mb']:.0f} | {m['seconds']:.1f} |" for m in memory]
    text = "\n".join(lines) + "\n"
    if not args.smoke_test or "--out" in (argv or sys.argv):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
