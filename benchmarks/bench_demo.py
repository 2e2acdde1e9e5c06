"""Rendering speed of the simulated auditions (``raympa demo-data``).

Times :func:`raympa.demo.make_demo` end to end (planning, judge calibration, synthesis, wav
writing) for N auditions of D seconds with 1 and with 2 worker processes, after a warm-up call
that compiles (or loads from numba's on-disk cache) the synthesis kernel. Reports medians over
repeats, audio-seconds rendered per wall-second, the ratio of 2 workers to 1, and the time it
implies for 200 auditions of 30 s. Writes ``benchmarks/results/demo.md``.

    python benchmarks/bench_demo.py                  # 200 auditions of 30 s, 3 repeats
    python benchmarks/bench_demo.py --smoke-test     # seconds; checks the script works
    python benchmarks/bench_demo.py --like-fba ../shared/fba      # the FBA-size set, rendered and extracted

``--like-fba DIR`` renders and extracts ``raympa demo-data --like-fba DIR --band middleschool``
(2,616 auditions, 23.6 h of audio) once, fused (each worker renders an audition and extracts its
contour: ``--contours``) or ``--two-step`` (render, then ``raympa.contours.extract`` on Ray Data),
into a fresh contour cache, and reports the wall time, the CPU time of every process involved
(this one, its rendering pool, and for ``--two-step`` the Ray workers' per-row CPU) and the load
average, since the machine may be shared. ``--keep DIR`` moves the finished set to ``DIR``
(renamed when complete). Writes ``benchmarks/results/demo_like_fba.md`` (fused) or
``demo_like_fba_two_step.md``.
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


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its waited-for children (the rendering pool)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> str:
    return "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())


def like_fba_run(args: argparse.Namespace, tmp: Path) -> tuple[dict, Path]:
    """Render and extract the FBA-size set once (fused or two-step); its measures and its folder."""
    import pandas as pd

    from raympa.contours import extract
    from raympa.demo.folder import ContourOutput

    out, cache = tmp / "set", tmp / "cache"  # a fresh cache: every contour is computed
    demo.make_demo(tmp / "warm", n=2, seed=0, duration_s=2.0, jobs=1)  # compile / load the kernel
    load0, wall0, cpu0 = _load(), time.perf_counter(), _cpu_seconds()
    if args.two_step:
        demo.make_demo_like_fba(out, args.like_fba, band=args.band, jobs=args.jobs)
        render_wall = time.perf_counter() - wall0
        res = extract(out / "ratings.csv", out / "contours", cache_dir=cache, num_workers=args.jobs or 2)
        extra_cpu = res.cpu_seconds  # the Ray workers' CPU (not children of this process)
    else:
        demo.make_demo_like_fba(out, args.like_fba, band=args.band, jobs=args.jobs,
                                contours=ContourOutput(out / "contours", cache_dir=cache))
        render_wall, extra_cpu = float("nan"), 0.0
    wall = time.perf_counter() - wall0
    cpu = _cpu_seconds() - cpu0 + extra_cpu
    n_ok = len(pd.read_parquet(out / "contours" / "contours.parquet", columns=["recording_id"]))
    audio_s = float(pd.read_csv(out / "deviations.csv")["seconds"].sum())
    return {"n": len(pd.read_csv(out / "ratings.csv")), "n_ok": n_ok, "audio_s": audio_s, "wall": wall,
            "render_wall": render_wall, "cpu": cpu, "load0": load0, "load1": _load()}, out


def like_fba_page(args: argparse.Namespace, m: dict) -> str:
    """The results page of :func:`like_fba_run`."""
    mode = ("two-step: `raympa demo-data --like-fba` (process pool), then `raympa extract` (Ray Data)"
            if args.two_step else "fused: `raympa demo-data --like-fba DIR --contours OUT/contours` "
                                  "(render and extract in the same worker process)")
    argv = sys.argv[1:]
    argv = [("DIR" if i and argv[i - 1] == "--keep" else a) for i, a in enumerate(argv)]  # no local paths
    cmd = "python benchmarks/bench_demo.py " + " ".join(argv)
    rate = m["cpu"] / m["audio_s"]
    rows = [("auditions (contours written)", f"{m['n']} ({m['n_ok']})"),
            ("audio", f"{m['audio_s'] / 3600:.2f} h"),
            ("**wall time, render + extract**", f"**{m['wall']:.0f} s = {m['wall'] / 60:.1f} min** (goal <= 10 min)")]
    if args.two_step:
        rows.append(("of which rendering", f"{m['render_wall']:.0f} s"))
    who = "all processes" + ("; Ray: the workers' per-row CPU, raylet not counted" if args.two_step else "")
    rows += [(f"CPU time ({who})", f"{m['cpu']:.0f} s"),
             ("CPU s per audio s", f"{rate:.4f}"),
             ("CPU time / 2 (wall on 2 otherwise idle cores, at a perfect 2x)", f"{m['cpu'] / 2:.0f} s = "
                                                                               f"{m['cpu'] / 120:.1f} min"),
             ("load average (1, 5, 15 min) at start; at end", f"{m['load0']}; {m['load1']}")]
    return "\n".join([
        "# Rendering and extracting the FBA-size demo", "",
        f"Command: `{cmd.strip()}`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; shared with "
        "other jobs (load averages below: a quiet 2-CPU machine reads under 2), so the CPU time is given beside "
        "the wall time.", "",
        f"Work: `raympa demo-data --like-fba DIR --band {args.band}`, {mode}, with "
        f"{args.jobs or os.cpu_count()} worker processes, a fresh contour cache (every contour computed and "
        "written to it), after a warm-up that loads the numba kernels.", "",
        "| measure | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], ""])


def like_fba(args: argparse.Namespace) -> str:
    """Run :func:`like_fba_run` in a temporary folder; keep the set at ``--keep`` (renamed when complete)."""
    keep = Path(args.keep).resolve() if args.keep else None
    if keep is not None and keep.exists():
        raise SystemExit(f"--keep {keep} exists; remove it first")
    parent = keep.parent if keep is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as d:  # same file system as --keep: the rename is atomic
        m, out = like_fba_run(args, Path(d))
        if keep is not None:
            os.replace(out, keep)
    return like_fba_page(args, m)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--out", default=None, help="results page (default: benchmarks/results/demo.md, "
                                               "or demo_like_fba.md with --like-fba)")
    p.add_argument("--like-fba", default=None, metavar="DIR",
                   help="render and extract the FBA-size demo of this MIG-FbaData checkout")
    p.add_argument("--band", default="middleschool")
    p.add_argument("--two-step", action="store_true", help="with --like-fba: render, then `extract` on Ray Data")
    p.add_argument("--jobs", type=int, default=None, help="with --like-fba: worker processes (default: CPU count)")
    p.add_argument("--keep", default=None, metavar="DIR", help="with --like-fba: move the set there when complete")
    args = p.parse_args(argv)
    if args.like_fba is not None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # this benchmark's own local Ray instance
        text = like_fba(args)
        print(text)
        name = "demo_like_fba_two_step.md" if args.two_step else "demo_like_fba.md"
        Path(args.out or ROOT / "benchmarks" / "results" / name).write_text(text)
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
