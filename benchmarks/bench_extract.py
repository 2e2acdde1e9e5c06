"""Extraction throughput of ``raympa extract`` on Ray Data: one worker, and two workers against one.

Synthetic auditions (harmonic notes with vibrato, rests and room noise, 44.1 kHz mono wav) go
through the real pipeline (:func:`raympa.contours.extract`: decode, resample, blockwise pYIN,
Arrow rows, parquet), cache off. Reported:

* audio-seconds per CPU-second with one worker: the audio duration of the contours over the
  worker CPU time spent on them (``time.process_time`` of the worker process, per row), and the
  same over wall time (which adds Ray Data's scheduling and the driver's parquet write);
* speedup of 2 workers over 1: median wall time with ``num_workers=1`` over median wall time
  with ``num_workers=2`` (goal: at least 1.8 on 2 cores).

Numba's pitch kernels are compiled (or loaded from numba's disk cache) once in the driver before
every run, then loaded by each worker process: a warm-up run on both workers comes first and is
reported apart, never inside a timed run. Medians over ``--repeats``.

    python benchmarks/bench_extract.py --out benchmarks/results/extract.md        # full run
    python benchmarks/bench_extract.py --smoke-test                               # seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # this benchmark's own throwaway local instance

ROOT = Path(__file__).resolve().parents[1]


def write_auditions(folder: Path, n: int, seconds: float, seed: int = 0) -> float:
    """n synthetic auditions of ``seconds`` s each; returns the total audio duration in s."""
    import numpy as np
    import soundfile as sf

    from raympa import constants as C

    sr = C.SAMPLE_RATE
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        n_samples = int(seconds * sr)
        f0 = np.zeros(n_samples)
        pos = 0
        while pos < n_samples:  # notes of 0.15-0.6 s on a clarinet-like range, some rests
            length = int(rng.uniform(0.15, 0.6) * sr)
            if rng.random() > 0.15:
                f0[pos : pos + length] = 440.0 * 2 ** (rng.integers(-12, 16) / 12)
            pos += length
        t = np.arange(n_samples) / sr
        f0 = f0 * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * t))  # vibrato, about 7 cents
        phase = 2 * np.pi * np.cumsum(f0) / sr
        y = sum(0.25 / k * np.sin(k * phase) for k in range(1, 7)) * (f0 > 0)
        y = y + 0.003 * rng.standard_normal(n_samples)  # room noise
        sf.write(folder / f"audition_{i:03d}.wav", y.astype(np.float32), sr)
    return n * seconds


def timed_run(src: Path, out: Path, *, workers: int, backend: str) -> dict[str, float]:
    from raympa.config import ExtractConfig
    from raympa.contours import extract

    t0 = time.perf_counter()
    res = extract(src, out, config=ExtractConfig(backend=backend), use_cache=False, num_workers=workers)
    wall = time.perf_counter() - t0
    if res.n_errors or res.n_cached:
        raise RuntimeError(f"benchmark run went wrong: {res.summary()}")
    return {"wall": wall, "cpu": res.cpu_seconds, "audio": res.audio_seconds}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-files", type=int, default=64, help="auditions per run (default %(default)s)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each audition, s (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per worker count (default %(default)s)")
    p.add_argument("--backend", choices=("fast", "librosa"), default="fast")
    p.add_argument("--out", default=None, help="results table (.md); default: print only")
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes: checks that the script works")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n_files, args.seconds, args.repeats = 4, 3.0, 1

    import ray

    import raympa
    from raympa.cluster import init_ray

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        total_audio = write_auditions(tmp / "in", args.n_files, args.seconds)
        write_auditions(tmp / "warm", 2, 1.0, seed=1)
        t0 = time.perf_counter()
        init_ray(num_cpus=2, log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            timed_run(tmp / "warm", tmp / "out_warm", workers=2, backend=args.backend)  # compiles numba in both workers
            warm_s = time.perf_counter() - t0
            runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
            for r in range(args.repeats):
                for workers in (1, 2):  # interleaved, so a load change hits both alike
                    runs[workers].append(timed_run(tmp / "in", tmp / f"out_{workers}_{r}", workers=workers,
                                                   backend=args.backend))
                    print(f"repeat {r} workers {workers}: {runs[workers][-1]}", file=sys.stderr)
        finally:
            ray.shutdown()

    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    med = {w: {k: statistics.median(run[k] for run in rs) for k in ("wall", "cpu", "audio")} for w, rs in runs.items()}
    per_cpu_1 = med[1]["audio"] / med[1]["cpu"]
    per_wall_1 = med[1]["audio"] / med[1]["wall"]
    speedup = med[1]["wall"] / med[2]["wall"]
    command = "python benchmarks/bench_extract.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Extraction throughput (`raympa extract`, Ray Data)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"ray {ray.__version__}, raympa {raympa.__version__}; 1-min load average {load:.2f} at start, "
        f"{load_end:.2f} at end (a quiet 2-CPU machine reads under 1).",
        f"Input: {args.n_files} synthetic auditions x {args.seconds:g} s = {total_audio:g} audio-s per run, "
        f"44.1 kHz mono wav; backend `{args.backend}`, frame 1024, hop 256, cache off. "
        f"Medians over {args.repeats} repeat(s).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| 1 worker: audio-s per worker CPU-s | {per_cpu_1:.1f} |",
        f"| 1 worker: audio-s per wall-s (incl. Ray Data + parquet) | {per_wall_1:.1f} |",
        f"| 1 worker: wall s (median) | {med[1]['wall']:.2f} |",
        f"| 2 workers: wall s (median) | {med[2]['wall']:.2f} |",
        f"| **speedup 2 workers / 1** (goal >= 1.8) | **{speedup:.2f}** |",
        f"| ray.init, s (once per run of the CLI) | {init_s:.1f} |",
        f"| warm-up (numba compile in 2 workers + first run), s | {warm_s:.1f} |",
        "",
        "Raw runs (wall s, worker CPU s):",
        "",
    ]
    for w, rs in runs.items():
        lines.append(f"- {w} worker(s): " + ", ".join(f"{r['wall']:.2f} / {r['cpu']:.2f}" for r in rs))
    if args.smoke_test:
        lines += ["", "Smoke-test sizes: Ray Data's per-run overhead dominates; not a measurement."]
    if max(load, load_end) > (os.cpu_count() or 1):
        lines += ["", f"**The machine was busy (load above its {os.cpu_count()} CPUs): other processes took "
                  "CPU from the workers, so the speedup above says little; re-run on a quiet machine.**"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
