"""Rendering speed of the simulated auditions (``raympa demo-data``).

Times :func:`raympa.demo.make_demo` end to end (planning, judge calibration, synthesis, wav
writing) for N auditions of D seconds with 1 and with 2 worker processes, after a warm-up call
that compiles (or loads from numba's on-disk cache) the synthesis kernel. Reports medians over
repeats, audio-seconds rendered per wall-second, the ratio of 2 workers to 1, and the time it
implies for 200 auditions of 30 s. Writes ``benchmarks/results/demo.md``.

    python benchmarks/bench_demo.py                  # 200 auditions of 30 s, 3 repeats
    python benchmarks/bench_demo.py --smoke-test     # seconds; checks the script works
    python benchmarks/bench_demo.py --like-fba ../shared/fba --n 40   # FBA-size estimate, CPU-seconds

``--like-fba DIR`` estimates rendering and extracting ``raympa demo-data --like-fba DIR`` (2,616
middle-school auditions) on 2 cores from CPU time, which a shared machine does not distort as
much as wall time: CPU seconds per audio second of rendering (N auditions, one process) and of
extraction (``raympa.contours.extract``'s worker CPU seconds), times the audio seconds of the
FBA-size set (its tables, written without audio), divided by the measured speedup of 2 workers
over 1 for each stage (``--render-efficiency``, ``--extract-efficiency``; defaults from
benchmarks/results/demo.md and extract.md). Writes ``benchmarks/results/demo_like_fba.md``.
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


def like_fba_estimate(args: argparse.Namespace) -> str:
    """The FBA-size estimate (see the module docstring) as a results page."""
    import pandas as pd

    from raympa.contours import extract
    from raympa.ratings import read_ratings

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        demo.make_demo(tmp / "warm", n=2, seed=0, duration_s=2.0, jobs=1)  # compile / load the kernel
        full = demo.make_demo_like_fba(tmp / "fba", args.like_fba, band=args.band, render_audio=False)
        total_audio = float(pd.read_csv(tmp / "fba" / "deviations.csv")["seconds"].sum())
        c0 = time.process_time()
        demo.make_demo(tmp / "sample", n=args.n, seed=1, band=args.band, jobs=1)
        render_cpu = time.process_time() - c0
        sample_audio = float(pd.read_csv(tmp / "sample" / "deviations.csv")["seconds"].sum())
        res = extract(read_ratings(tmp / "sample"), tmp / "contours", num_workers=2, use_cache=False)
    render_rate, extract_rate = render_cpu / sample_audio, res.cpu_seconds / max(res.audio_seconds, 1e-9)
    render_s = total_audio * render_rate / args.render_efficiency  # 1-process CPU s / 2-worker speedup
    extract_s = total_audio * extract_rate / args.extract_efficiency  # (2-worker CPU s: conservative)
    cmd = "python benchmarks/bench_demo.py " + " ".join(sys.argv[1:])
    return "\n".join([
        "# Rendering and extracting the FBA-size demo (estimate from CPU time)", "",
        f"Command: `{cmd.strip()}`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; shared "
        "with other jobs, so CPU seconds are measured rather than wall seconds.", "",
        f"FBA-size set: `raympa demo-data --like-fba DIR --band {args.band}`: {len(full)} auditions, "
        f"{total_audio / 3600:.2f} h of audio (tables written without audio).", "",
        "| stage | CPU s per audio s | 2-worker speedup | estimated wall s on 2 cores |",
        "|---|---|---|---|",
        f"| render ({args.n} auditions, 1 process) | {render_rate:.4f} | {args.render_efficiency:.2f} | {render_s:.0f} |",
        f"| extract (raympa.contours.extract, 2 workers) | {extract_rate:.4f} | {args.extract_efficiency:.2f} | "
        f"{extract_s:.0f} |",
        f"| **total** | | | **{render_s + extract_s:.0f} s = {(render_s + extract_s) / 60:.1f} min** (goal <= 10 min) |",
        "", "Speedup = speed of 2 workers over 1 worker, measured on a quiet machine "
        "(benchmarks/results/demo.md: 1.99; benchmarks/results/extract.md: 1.46-1.64); "
        "Ray start-up (a few seconds) not included.", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--out", default=None, help="results page (default: benchmarks/results/demo.md, "
                                               "or demo_like_fba.md with --like-fba)")
    p.add_argument("--like-fba", default=None, metavar="DIR", help="estimate the FBA-size demo of this checkout")
    p.add_argument("--band", default="middleschool")
    p.add_argument("--render-efficiency", type=float, default=1.99)
    p.add_argument("--extract-efficiency", type=float, default=1.46)
    args = p.parse_args(argv)
    if args.like_fba is not None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # this benchmark's own local Ray instance
        text = like_fba_estimate(args)
        print(text)
        Path(args.out or ROOT / "benchmarks" / "results" / "demo_like_fba.md").write_text(text)
        return 0
    args.out = args.out or str(ROOT / "benchmarks" / "results" / "demo.md")
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
