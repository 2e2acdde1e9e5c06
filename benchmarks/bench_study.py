"""Benchmark of the study runner: concurrency speed-up and per-trial memory.

1. Wall time: N trials as a Ray Tune study (``--concurrent`` trials at once, 1 CPU and 1 torch
   thread each, reused trial processes) against the same N trials run one after another in one
   process with torch's default threads. Ratio = study / sequential (goal <= 0.6 with 2
   concurrent trials on 2 cores). ``ray.init`` is timed apart (paid once per study).
2. Memory: studies with 1 and with 4 concurrent trials (4 logical CPUs), on a small and a large
   data set. Each trial measures its own process (psutil) after training: USS = private memory
   (framework overhead + anything the trial copied), shared = RSS - USS (torch libraries and the
   object-store pages of the data, mapped zero-copy). Data copies per trial =
   (USS with large data - USS with small data) / (large - small data bytes): 0 means the contour
   set is held once in the object store, 1 means each trial holds its own copy.

Medians over trials; timings are noisy on a shared machine (repeat with --repeats).

    python benchmarks/bench_study.py --trials 8 --epochs 20 --out benchmarks/results/study.md
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def measured_fit(cfg, data, **kwargs):
    """raympa.train.fit, plus the trial process's memory after training (MB) in the metrics."""
    import psutil

    from raympa.train import fit

    result = fit(cfg, data, **kwargs)
    mem = psutil.Process().memory_full_info()
    result.metrics.update(rss_mb=mem.rss / 2**20, uss_mb=mem.uss / 2**20, shared_mb=(mem.rss - mem.uss) / 2**20,
                          data_zero_copy=not data.midi.flags.writeable)
    return result


def make_data(n: int, frames: int, seed: int = 0):
    """Random-walk MIDI contours (n recordings x frames) with ratings: a size knob, not a task."""
    import numpy as np

    from raympa.dataset import ContourSet

    rng = np.random.default_rng(seed)
    contours = [np.clip(60 + np.cumsum(rng.normal(0, 0.05, frames)), 30, 100).astype(np.float32) for _ in range(n)]
    y = rng.uniform(0, 1, n)
    split = np.array(["train"] * n)
    split[: max(1, n // 10)] = "val"
    split[max(1, n // 10): 2 * max(1, n // 10)] = "test"
    return ContourSet.from_arrays(contours, recording_id=[f"r{i}" for i in range(n)], split=split.tolist(),
                                  ratings={"musicality": y, "note_accuracy": y, "rhythm_accuracy": y},
                                  band=["middleschool"] * n)


def data_bytes(data) -> int:
    return int(data.midi.nbytes + data.offsets.nbytes + sum(r.nbytes for r in data.ratings.values()))


def run_study_timed(data, configs, *, concurrent: int, reuse: bool, root: Path, name: str):
    from raympa import study

    space = {"seed": {"grid_search": [c["seed"] for c in configs]}, **{k: v for k, v in configs[0].items() if k != "seed"}}
    settings = study.StudySettings(name=name, cpus_per_trial=1, max_concurrent=concurrent, reuse_actors=reuse,
                                   max_failures=0)
    t0 = time.perf_counter()
    out = study.run_study(settings, data, study_dir=root / name, param_space=space, fit=measured_fit, argv=["bench"])
    wall = time.perf_counter() - t0
    import pandas as pd

    return wall, pd.read_csv(out / "trials.csv"), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--recordings", type=int, default=120, help="recordings in the timing data set")
    p.add_argument("--frames", type=int, default=3000, help="frames per recording (timing data)")
    p.add_argument("--big-frames", type=int, default=100_000, help="frames per recording of the large memory data set")
    p.add_argument("--repeats", type=int, default=1, help="repeat the timing comparison, report the median ratio")
    p.add_argument("--out", default=None, help="write the results table (markdown) here")
    args = p.parse_args(argv)

    import pandas as pd
    import ray
    import torch

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    from raympa.config import TrainConfig
    from raympa.train import fit

    configs = [dict(model="contrastive-jl", criterion="note_accuracy", seed=s, epochs=args.epochs, patience=10_000)
               for s in range(args.trials)]
    data = make_data(args.recordings, args.frames)
    root = Path(tempfile.mkdtemp(prefix="bench_study_"))
    lines = []

    # --- 1. wall time ---
    ratios, seq_times, study_times = [], [], []
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    default_threads = torch.get_num_threads()
    fit(TrainConfig.from_dict({**configs[0], "epochs": 1}), data)  # warm-up (imports, first kernels)
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        for c in configs:
            fit(TrainConfig.from_dict(c), data)
        seq = time.perf_counter() - t0
        wall, trials, _ = run_study_timed(data, configs, concurrent=2, reuse=True, root=root, name=f"time{rep}")
        assert (trials["status"] == "TERMINATED").all(), trials["error"].tolist()
        seq_times.append(seq)
        study_times.append(wall)
        ratios.append(wall / seq)
    ray.shutdown()

    lines += [
        "## Wall time: study (2 concurrent trials, 1 thread each) vs sequential (one process)",
        "",
        f"{args.trials} trials of contrastive-jl, {args.epochs} epochs, {args.recordings} synthetic recordings x "
        f"{args.frames} frames; sequential uses torch's default {default_threads} threads; "
        f"ray.init took {ray_init_s:.1f} s (not counted).",
        "",
        "| repeat | sequential (s) | study (s) | ratio study/sequential |",
        "|---|---|---|---|",
        *[f"| {i} | {s:.1f} | {w:.1f} | {r:.2f} |" for i, (s, w, r) in enumerate(zip(seq_times, study_times, ratios))],
        f"| **median** | {statistics.median(seq_times):.1f} | {statistics.median(study_times):.1f} | "
        f"**{statistics.median(ratios):.2f}** (goal <= 0.6) |",
        "",
    ]

    # --- 2. memory ---
    small = make_data(40, 2000, seed=1)
    big = make_data(40, args.big_frames, seed=2)
    mem_rows = []
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)  # 4 logical CPUs: 4 trials at once
    for label, d in (("small", small), ("large", big)):
        for conc in (1, 4):
            cfgs = [dict(c, epochs=1) for c in configs[:4]]
            _, trials, _ = run_study_timed(d, cfgs, concurrent=conc, reuse=False, root=root, name=f"mem_{label}_{conc}")
            assert (trials["status"] == "TERMINATED").all(), trials["error"].tolist()
            mem_rows.append({"data": label, "data_mb": data_bytes(d) / 2**20, "concurrent": conc,
                             "uss_mb": trials["uss_mb"].median(), "shared_mb": trials["shared_mb"].median(),
                             "rss_mb": trials["rss_mb"].median(), "zero_copy": bool(trials["data_zero_copy"].all())})
    ray.shutdown()
    mem = pd.DataFrame(mem_rows)
    d_mb = mem.loc[mem.data == "large", "data_mb"].iloc[0] - mem.loc[mem.data == "small", "data_mb"].iloc[0]
    copies = {}
    for conc in (1, 4):
        m = mem[mem.concurrent == conc].set_index("data")
        copies[conc] = (m.loc["large", "uss_mb"] - m.loc["small", "uss_mb"]) / d_mb
    lines += [
        "## Memory per trial process (medians over 4 trials, after training)",
        "",
        "| data | data (MB) | concurrent trials | USS private (MB) | shared (MB) | RSS (MB) | data arrays read-only from the object store |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r.data} | {r.data_mb:.1f} | {r.concurrent} | {r.uss_mb:.0f} | {r.shared_mb:.0f} | {r.rss_mb:.0f} | {r.zero_copy} |"
          for r in mem.itertuples()],
        "",
        f"Per-process framework overhead (USS, small data): {mem.loc[mem.data == 'small', 'uss_mb'].median():.0f} MB. "
        f"Data copies per trial = (USS large - USS small) / {d_mb:.0f} MB: "
        f"{copies[1]:.2f} with 1 concurrent trial, {copies[4]:.2f} with 4.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        cmd = "python " + " ".join(["benchmarks/bench_study.py", *(sys.argv[1:] if argv is None else argv)])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(f"# Study runner benchmark\n\nCommand: `{cmd}`\n\n"
                                  f"Machine: {os.cpu_count()} cores; torch {torch.__version__}, ray {ray.__version__}.\n\n"
                                  + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
