"""Does training stop short? Best epochs at the end of a stage, with and without a minimum epoch size.

Trains the paper's three models on the simulated demo set, seeds 0-4 as one batched run per
model, once with the paper's epoch (one random chunk per training recording, ``min_steps_per_epoch
= 0``) and once per other minimum, and counts the runs whose best validation loss came in the last
5 % of a stage's epochs (``best_epoch_at_end``). Writes ``benchmarks/results/epoch.md``.

    raympa demo-data --out DEMO --n 240 --seed 7
    raympa extract --table DEMO/ratings.csv --out DEMO/contours
    python benchmarks/bench_epoch.py --ratings DEMO/ratings.csv --contours DEMO/contours
    python benchmarks/bench_epoch.py --ratings ... --contours ... --smoke-test   # seconds
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
from raympa.constants import PAPER_MODELS
from raympa.train import fit_members, load_training_data

ROOT = Path(__file__).resolve().parents[1]


def run(data, *, model: str, min_steps: int, seeds: list[int], epochs: dict[str, int]) -> list[dict]:
    """One batched run of ``seeds``; each member's metrics (failed members left out)."""
    cfgs = [TrainConfig(model=model, criterion="note_accuracy", seed=s, min_steps_per_epoch=min_steps,
                        threads=1, **epochs) for s in seeds]
    return [r.metrics for r in fit_members(cfgs, data) if not isinstance(r, Exception)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True)
    p.add_argument("--contours", required=True)
    p.add_argument("--min-steps", default="0,64", help="comma-separated minimum steps per epoch")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--smoke-test", action="store_true", help="2 seeds, 4 epochs: checks the script works")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "epoch.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_training_data(args.ratings, args.contours)
    seeds = list(range(2 if args.smoke_test else args.seeds))
    epochs = dict(epochs=4, encoder_epochs=2) if args.smoke_test else {}
    rows = []
    for min_steps in [int(v) for v in args.min_steps.split(",")]:
        for model in PAPER_MODELS:
            t0 = time.perf_counter()
            ms = run(data, model=model, min_steps=min_steps, seeds=seeds, epochs=epochs)
            rows.append(dict(
                model=model, min_steps=min_steps, steps=ms[0]["steps_per_epoch"] if ms else 0,
                flagged=sum(bool(m["best_epoch_at_end"]) for m in ms), runs=len(ms),
                epochs=" ".join(str(m["epochs_run"]) for m in ms),
                r2=statistics.mean(m["test_r2_full"] for m in ms) if ms else float("nan"),
                r2_1000=statistics.mean(m["test_r2_chunk1000"] for m in ms) if ms else float("nan"),
                seconds=time.perf_counter() - t0))
            print(rows[-1], file=sys.stderr)
    lines = [
        "# Best epoch at the end of a stage, by minimum epoch size", "",
        f"Command: `python benchmarks/bench_epoch.py --ratings DEMO/ratings.csv --contours DEMO/contours"
        f"{' --smoke-test' if args.smoke_test else ''}` (DEMO: `raympa demo-data --n 240 --seed 7`, "
        f"192 / 24 / 24 train / val / test auditions), note accuracy, seeds {seeds[0]}-{seeds[-1]} as one batched "
        f"run per model, 1 CPU thread, {platform.processor() or platform.machine()}, torch {torch.__version__}.",
        "",
        "`flagged`: runs whose best validation loss came in the last 5 % of a stage's epochs "
        "(`best_epoch_at_end`). `epochs`: epochs run per seed (all stages). R²: mean test R² over the seeds.",
        "",
        "| model | min steps per epoch | steps per epoch | flagged | epochs run | test R² full | test R² chunk1000 | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['min_steps']} | {r['steps']} | {r['flagged']} / {r['runs']} | {r['epochs']} "
                     f"| {r['r2']:.3f} | {r['r2_1000']:.3f} | {r['seconds']:.0f} |")
    total = {ms: (sum(r["flagged"] for r in rows if r["min_steps"] == ms), sum(r["runs"] for r in rows if r["min_steps"] == ms))
             for ms in dict.fromkeys(r["min_steps"] for r in rows)}
    lines += ["", "Flagged in all: " + "; ".join(f"min steps {ms}: {f} / {n}" for ms, (f, n) in total.items()), ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
