"""Alignment speed: ``raympa.align.align_many`` on performances of 30 s against their references.

Synthetic melodies (notes of 0.1-0.35 s, short rests) at the contour grid (hop 256 at 44.1 kHz,
172 frames/s); each performance is its reference transposed, played 0.8-1.25x as fast, with
intonation noise and some wrong notes. Every pair is aligned, its sixteen features
(``raympa.align.ALL_FEATURES``) computed and the reference mapped onto the performance's grid (what
training needs). The DTW kernel is compiled (or loaded from numba's cache) before timing. Wall time
and the process's CPU time for ``--n`` pairs with 1 and with ``--threads`` threads, median over
``--repeats``, and the load average before and after; the goal is 2,600 pairs in at most 2 minutes
on 2 cores. On a shared machine the CPU time is the figure to read: CPU seconds / threads is the
wall time the same work takes on that many idle cores when the threads overlap fully (the DTW
kernel releases the GIL; the feature code in numpy holds it part of the time).

    python benchmarks/bench_align.py --n 2600 --seconds 30 --threads 2 --out benchmarks/results/align.md
    python benchmarks/bench_align.py --smoke-test
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from raympa import align  # noqa: E402
from raympa.constants import FRAME_RATE  # noqa: E402


def make_pairs(n: int, seconds: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` (performance, reference) MIDI contours of about ``seconds`` each."""
    rng = np.random.default_rng(seed)
    perfs, refs = [], []
    n_frames = int(seconds * FRAME_RATE)
    for _ in range(n):
        ref, perf = [], []
        speed = rng.uniform(0.8, 1.25)
        shift = int(rng.integers(-7, 8))
        while len(ref) < n_frames / speed:
            p = 60 + int(rng.choice([0, 2, 4, 5, 7, 9, 11, 12]))
            d = int(rng.integers(17, 60))
            ref += [p] * (d - 3) + [0] * 3
            q = p + shift + (2 if rng.random() < 0.1 else 0)
            dp = max(4, int(d * speed))
            perf += list(q + rng.normal(0, 0.1, dp - 3)) + [0] * 3
        refs.append(np.array(ref, np.float32))
        perfs.append(np.array(perf[:n_frames], np.float32))
    return perfs, refs


def timed(perfs, refs, threads: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) of aligning every pair on ``threads`` threads."""
    t0, c0 = time.perf_counter(), time.process_time()
    align.align_many(perfs, refs, threads=threads)
    return time.perf_counter() - t0, time.process_time() - c0


def median_run(perfs, refs, threads: int, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds over ``repeats`` runs."""
    runs = [timed(perfs, refs, threads) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2600)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke-test", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke_test:
        args.n, args.repeats, args.seconds = 20, 1, 5.0
    perfs, refs = make_pairs(args.n, args.seconds, args.seed)
    align.warmup()
    load_before = os.getloadavg()[0]
    one, one_cpu = median_run(perfs, refs, 1, args.repeats)
    many, many_cpu = median_run(perfs, refs, args.threads, args.repeats)
    load_after = os.getloadavg()[0]
    frames = int(np.mean([len(p) for p in perfs]))
    ref_frames = int(np.mean([len(r) for r in refs]))
    ideal = many_cpu / args.threads  # wall s on idle cores if the threads overlapped fully
    verdict = "met" if many <= 120 else ("met on CPU time only (wall over it under load)" if ideal <= 120
                                         else "not met")
    lines = [
        "# Alignment speed (raympa.align.align_many)",
        "",
        f"Command: `python benchmarks/bench_align.py --n {args.n} --seconds {args.seconds:g} "
        f"--threads {args.threads} --repeats {args.repeats}`",
        "",
        f"{args.n} pairs, performances of {args.seconds:g} s ({frames} frames, mean), references "
        f"{ref_frames} frames (mean); factor {align.FACTOR} (about {FRAME_RATE / align.FACTOR:.0f} "
        f"alignment frames/s), band {align.BAND}; the {len(align.ALL_FEATURES)} alignment features and the "
        f"aligned reference of every pair; median of {args.repeats} runs; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible (shared machine, load "
        f"average {load_before:.1f} before, {load_after:.1f} after).",
        "",
        "| threads | wall s | CPU s | ms CPU per pair | CPU s / threads |",
        "|---|---|---|---|---|",
        f"| 1 | {one:.1f} | {one_cpu:.1f} | {1000 * one_cpu / args.n:.2f} | {one_cpu:.1f} |",
        f"| {args.threads} | {many:.1f} | {many_cpu:.1f} | {1000 * many_cpu / args.n:.2f} | {ideal:.1f} |",
        "",
        f"Goal: {args.n} pairs in <= 120 s on {args.threads} cores: {verdict} (wall {many:.0f} s under the load "
        f"above; {ideal:.0f} s of CPU per core).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
