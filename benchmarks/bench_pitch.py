"""raympa.pitch.pyin against librosa.pyin: speed ratio, peak memory and contour agreement.

One clip (a rendered wind-instrument phrase, or ``--audio FILE``) at 44.1 kHz, frame 1024, hop 256,
for two pitch ranges: the study's (constants.FMIN..FMAX) and a librosa-example-style C2..C7.
Per configuration, in one run of this script:

* CPU seconds (``time.process_time``, one thread) of each implementation, median over
  ``--repeats``; speed in audio-seconds per CPU-second and the ratio librosa / fast (goal >= 30);
* peak memory of one call, each in a fresh subprocess: peak RSS during the call minus RSS
  before it (the high-water mark is reset after a warm-up on a 0.5 s clip through
  ``/proc/self/clear_refs``; numba's allocations are not seen by tracemalloc, RSS sees both);
* agreement: share of frames with the same voicing, share of both-voiced frames within 1 cent,
  and share of frames with bit-identical f0.

Numba compiles (or loads from its disk cache) during the warm-up, never inside a timed call.

    python benchmarks/bench_pitch.py --seconds 30 --repeats 3 --out benchmarks/results/pitch.md
    python benchmarks/bench_pitch.py --smoke-test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # per-core numbers: one thread for FFT/BLAS too
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    # name: (fmin, fmax) in Hz; frame 1024, hop 256 at 44.1 kHz for all (paper)
    "study range (FMIN..FMAX)": (128.0, 2400.0),
    "C2..C7 (librosa-example style)": (65.41, 2093.0),
}


def render_phrase(seconds: float, sr: int = 44_100, seed: int = 0):
    """A wind-like phrase: notes of 0.1-0.5 s over two octaves with attack/release, vibrato,
    breath noise and short rests (float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    f0 = np.zeros(n)
    env = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.1, 0.5) * sr)
        seg = slice(pos, min(n, pos + length))
        m = seg.stop - seg.start
        if rng.random() > 0.12:
            t = np.arange(m) / sr
            f0[seg] = 440.0 * 2 ** (rng.integers(-9, 15) / 12) * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * t))
            env[seg] = np.minimum(1, t / 0.02) * np.minimum(1, (m / sr - t) / 0.03)
        pos += length
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum((0.6 ** (k - 1)) * (1.0 if k % 2 else 0.5) * np.sin(k * phase) for k in range(1, 9))
    y = 0.3 * env * y + 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


def load_clip(args):
    if args.audio:
        import librosa

        y, _ = librosa.load(args.audio, sr=44_100)
        reps = int(-(-args.seconds * 44_100 // len(y)))
        import numpy as np

        return np.tile(y, reps)[: int(args.seconds * 44_100)]
    return render_phrase(args.seconds)


def _impl(name: str):
    if name == "fast":
        from raympa.pitch import pyin

        return pyin
    import librosa

    return librosa.pyin


def _call(fn, y, fmin, fmax):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(y, sr=44_100, fmin=fmin, fmax=fmax, frame_length=1024, hop_length=256)


def memory_child(impl: str, seconds: float, fmin: float, fmax: float, audio: str | None) -> None:
    """Run in a subprocess: print the peak RSS increase (bytes) of one call."""
    import resource

    ns = argparse.Namespace(seconds=seconds, audio=audio)
    y = load_clip(ns)
    fn = _impl(impl)
    _call(fn, y[: 22_050], fmin, fmax)  # warm-up (numba compile / cache load), small peak
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * page
    try:  # reset the peak-RSS mark (Linux >= 4.0), so imports and warm-up peaks do not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    _call(fn, y, fmin, fmax)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if reset:
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"peak_increase": max(0, peak - before), "hwm_reset": reset}))


def measure_memory(impl: str, args, fmin: float, fmax: float) -> float:
    cmd = [sys.executable, __file__, "--memory-child", impl, "--seconds", str(args.seconds),
           "--fmin", str(fmin), "--fmax", str(fmax)] + (["--audio", args.audio] if args.audio else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["peak_increase"] / 2**20  # MiB


def agreement(ours, ref) -> dict[str, float]:
    import numpy as np

    f, v, _ = ours
    F, V, _ = ref
    both = v & V
    cents = 1200 * np.abs(np.log2(f[both] / F[both]))
    return {
        "voicing": float(np.mean(v == V)),
        "within_1_cent": float(np.mean(cents <= 1.0)) if both.any() else 1.0,
        "identical_f0": float(np.mean((f == F) | (np.isnan(f) & np.isnan(F)))),
        "max_voiced_prob_diff": float(np.max(np.abs(ours[2] - ref[2]))),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="clip length in s (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per implementation (default %(default)s)")
    p.add_argument("--audio", default=None, help="use this file (tiled to --seconds) instead of a rendered phrase")
    p.add_argument("--out", default=None, help="write the markdown table here")
    p.add_argument("--smoke-test", action="store_true", help="2 s clip, 1 repeat, no memory runs")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--fmin", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--fmax", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.seconds, args.fmin, args.fmax, args.audio)
        return 0
    if args.smoke_test:
        args.seconds, args.repeats = 2.0, 1

    import numpy as np

    from raympa import pitch

    command = "python benchmarks/bench_pitch.py " + " ".join(sys.argv[1:])
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    pitch.warmup()
    warmup_s = time.perf_counter() - t0
    y = load_clip(args)
    duration = len(y) / 44_100
    rows = []
    for label, (fmin, fmax) in CONFIGS.items():
        fns = {"fast": _impl("fast"), "librosa": _impl("librosa")}
        for fn in fns.values():
            _call(fn, y[:22_050], fmin, fmax)  # warm-up outside the timed region
        cpu = {k: [] for k in fns}
        results = {}
        for _ in range(args.repeats):
            for k, fn in fns.items():  # interleaved, so load changes hit both alike
                c0 = time.process_time()
                results[k] = _call(fn, y, fmin, fmax)
                cpu[k].append(time.process_time() - c0)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        mem = ({k: measure_memory(k, args, fmin, fmax) for k in fns} if not args.smoke_test
               else {k: float("nan") for k in fns})
        agree = agreement(results["fast"], results["librosa"])
        rows.append((label, fmin, fmax, med, cpu, mem, agree))
        print(f"{label}: fast {med['fast']:.3f} s, librosa {med['librosa']:.3f} s, "
              f"ratio {med['librosa'] / med['fast']:.1f}, memory MiB fast {mem['fast']:.1f} / librosa "
              f"{mem['librosa']:.1f}, agreement {agree}", flush=True)
    load_end = os.getloadavg()[0]

    import librosa
    import numba

    lines = [
        "# Fast pYIN (`raympa.pitch.pyin`) vs `librosa.pyin`",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, librosa "
        f"{librosa.__version__}; one thread (OMP/OpenBLAS = 1). 1-min load average {load_start:.2f} at "
        f"start, {load_end:.2f} at end (a quiet 2-CPU machine reads under 1).",
        f"Input: {'`' + args.audio + '` tiled' if args.audio else 'rendered wind-like phrase'}, "
        f"{duration:.1f} s at 44.1 kHz float32, frame 1024, hop 256, librosa's other defaults. "
        f"CPU time (`time.process_time`), medians over {args.repeats} interleaved repeat(s). "
        f"Numba warm-up (compile or disk-cache load) before timing: {warmup_s:.1f} s.",
        "",
        "| pitch range | fast CPU s | librosa CPU s | fast audio-s / CPU-s | librosa audio-s / CPU-s "
        "| **ratio librosa / fast** (goal >= 30) | peak MiB fast | peak MiB librosa | voicing agree "
        "| both-voiced within 1 cent | identical f0 | max voiced_prob diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, fmin, fmax, med, cpu, mem, agree in rows:
        lines.append(
            f"| {label}: {fmin:g}-{fmax:g} Hz | {med['fast']:.3f} | {med['librosa']:.2f} | "
            f"{duration / med['fast']:.1f} | {duration / med['librosa']:.2f} | "
            f"**{med['librosa'] / med['fast']:.1f}** | {mem['fast']:.1f} | {mem['librosa']:.1f} | "
            f"{agree['voicing']:.4f} | {agree['within_1_cent']:.4f} | {agree['identical_f0']:.4f} | "
            f"{agree['max_voiced_prob_diff']:.1e} |"
        )
    lines += ["", "Raw CPU seconds (fast; librosa):", ""]
    for label, _, _, _, cpu, _, _ in rows:
        lines.append(f"- {label}: {', '.join(f'{x:.3f}' for x in cpu['fast'])}; "
                     f"{', '.join(f'{x:.2f}' for x in cpu['librosa'])}")
    if load_start > 2 or load_end > 2:
        lines += ["", "**The machine was busy (load above its 2 CPUs): CPU time is inflated for both "
                  "implementations (shared caches, frequency); the ratio is the figure to read. "
                  "Re-run on a quiet machine.**"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
