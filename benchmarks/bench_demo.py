"""Rendering speed of the simulated auditions (``raympa demo-data``).

Times :func:`raympa.demo.make_demo` end to end (planning, judge calibration, synthesis, wav
writing) for N auditions of D seconds with 1 and with 2 worker processes, after a warm-up call
that compiles (or loads from numba's on-disk cache) the synthesis kernel. Reports medians over
repeats, audio-seconds rendered per wall-second, the ratio of 2 workers to 1, and the time it
implies for 200 auditions of 30 s. Writes ``benchmarks/results/demo.md``.

    python benchmarks/bench_demo.py                  # 200 auditions of 30 s, 3 repeats
    python benchmarks/bench_demo.py --smoke-test     # seconds; checks the script works
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from raympa import demo

ROOT = Path(__file__).resolve().parents[1]


def time_demo(n: int, duration: float, jobs: int, repeats: int, tmp: Path) -> tuple[float, float]:
    """Median wall seconds of make_demo, and the audio seconds it wrote."""
    times, audio_s = [], 0.0
    for r in range(repeats):
        out = tmp / f"run_{jobs}_{r}"
        t0 = time.perf_counter()
        demo.make_demo(out, n=n, seed=r, duration_s=duration, jobs=jobs)
        times.append(time.perf_counter() - t0)
        dev = (out / "deviations.csv").read_text().splitlines()
        header = dev[0].split(",")
        audio_s = sum(float(line.split(",")[header.index("seconds")]) for line in dev[1:])
        shutil.rmtree(out)
    return statistics.median(times), audio_s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo.md"))
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.duration, args.repeats = 4, 3.0, 1
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        demo.make_demo(tmp / "warm", n=2, seed=0, duration_s=2.0, jobs=1)  # compile / load the kernel
        plan_t0 = time.perf_counter()
        demo.make_demo(tmp / "plan", n=args.n, seed=0, duration_s=args.duration, render_audio=False)
        plan_s = time.perf_counter() - plan_t0
        rows = []
        for jobs in (1, 2):
            wall, audio_s = time_demo(args.n, args.duration, jobs, args.repeats, tmp)
            rows.append((jobs, wall, audio_s))
    base = rows[0][1]
    cmd = "python benchmarks/bench_demo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Rendering speed of simulated auditions",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "other jobs may have been running (shared CPU: noisy).",
        f"Work: `make_demo(n={args.n}, duration_s={args.duration})` end to end (judge calibration, "
        f"performance planning, synthesis, 16-bit wav writing); median of {args.repeats} runs after a "
        "warm-up that loads the numba kernel.",
        "",
        "| workers | s (median) | audio s / wall s | ratio to 1 worker | implied s for 200 x 30 s |",
        "|---|---|---|---|---|",
    ]
    for jobs, wall, audio_s in rows:
        implied = wall / audio_s * 200 * 30 if audio_s else float("nan")
        lines.append(f"| {jobs} | {wall:.2f} | {audio_s / wall:.0f} | {base / wall:.2f} | {implied:.1f} |")
    lines += ["", f"Tables only (`render_audio=False`, same n): {plan_s:.2f} s.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.smoke_test:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
