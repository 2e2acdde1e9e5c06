"""Training throughput on CPU: chunks per second for each training stage, batch size and thread count.

Measures the real training path of :func:`raympa.train.fit` (chunk sampling and gathering,
normalisation, forward, loss, backward, SGD step) one epoch at a time on synthetic contours,
plus the full-length evaluation (frames per second). Reports medians over repeats and ratios to
the paper's setting (PCConvNet, batch 32, 1 thread), and writes ``benchmarks/results/train.md``.

    python benchmarks/bench_train.py                 # full run
    python benchmarks/bench_train.py --smoke-test    # seconds; checks the script works
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from raympa.config import TrainConfig
from raympa.dataset import synthetic_set
from raympa.sampling import epoch_batches
from raympa.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def time_epochs(cfg: TrainConfig, data, *, stage: int, repeats: int, threads: int) -> tuple[float, int]:
    """Median seconds of one training epoch (after a warm-up epoch) and chunks per epoch.

    Every step reads its loss back (``float(loss)``), so GPU work is finished when timed.
    """
    torch.set_num_threads(threads)
    run = Trainer([cfg], data, torch.device(cfg.device))
    run.stage_index = stage
    run.train_epoch()  # warm-up (allocations, first-call overheads)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.train_epoch()
        times.append(time.perf_counter() - t0)
    lengths = run.splits["train"].lengths_np
    batches = epoch_batches(lengths, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames, chunk_hop=cfg.chunk_hop,
                            chunks_per_recording=cfg.chunks_per_recording, batch_size=cfg.batch_size,
                            min_steps=cfg.min_steps_per_epoch, generator=torch.Generator().manual_seed(0))
    return statistics.median(times), sum(len(b.which) for b in batches)


def time_eval(cfg: TrainConfig, data, *, repeats: int, threads: int) -> tuple[float, int]:
    """Median seconds of a full-length pass over the validation split and its frame count."""
    torch.set_num_threads(threads)
    run = Trainer([cfg], data, torch.device(cfg.device))
    run.full_length("val")
    if cfg.device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.full_length("val")
        if cfg.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), int(run.splits["val"].lengths.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=600, help="synthetic recordings (default %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per setting (default %(default)s)")
    p.add_argument("--threads", default="1,2", help="torch thread counts to compare (default %(default)s)")
    p.add_argument("--batch-sizes", default="32,256", help="batch sizes (default %(default)s)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.md"))
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes; writes nothing unless --out is given")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.repeats, args.threads, args.batch_sizes = 40, 1, "1", "32"
    threads = [int(t) for t in args.threads.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    data = synthetic_set(args.n, seed=0, n_frames=(4000, 6000))  # about 30 s each, like FBA middle school
    settings = [("pcconvnet", 0, "regression"), ("contrastive", 0, "encoder"), ("contrastive", 1, "head"),
                ("contrastive-jl", 0, "joint")]
    rows, base = [], None
    for th in threads:
        for bs in batch_sizes:
            for model, stage, name in settings:
                cfg = TrainConfig(model=model, batch_size=bs, chunks_per_recording=4, device=args.device)
                sec, chunks = time_epochs(cfg, data, stage=stage, repeats=args.repeats, threads=th)
                rate = chunks / sec
                if base is None:
                    base = rate
                rows.append((f"{model} ({name})", bs, th, sec, rate, rate / base))
                print(rows[-1], file=sys.stderr)
    eval_rows = []
    for th in threads:
        sec, frames = time_eval(TrainConfig(device=args.device), data, repeats=args.repeats, threads=th)
        eval_rows.append((th, sec, frames / sec))
    command = "python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Training throughput ({args.device})",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_interop_threads()} inter-op / "
        f"{len(__import__('os').sched_getaffinity(0))} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else "")
        + "; other jobs may have been running (shared CPU: noisy).",
        f"Data: {args.n} synthetic recordings of 4000-6000 frames (80% train), chunks of 1000 frames, "
        f"4 random chunks per recording per epoch; median of {args.repeats} epochs after a warm-up.",
        "",
        "| model (stage) | batch | threads | s / epoch | chunks / s | ratio to first row |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {bs} | {th} | {sec:.3f} | {rate:,.0f} | {ratio:.2f} |" for m, bs, th, sec, rate, ratio in rows]
    lines += ["", "Full-length evaluation (validation split, whole contours, batched by length):", "",
              "| threads | s / pass | frames / s |", "|---|---|---|"]
    lines += [f"| {th} | {sec:.3f} | {rate:,.0f} |" for th, sec, rate in eval_rows]
    text = "\n".join(lines) + "\n"
    if not args.smoke_test or "--out" in (argv or sys.argv):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
