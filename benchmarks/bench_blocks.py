"""The conv blocks as batched matmuls (``raympa.models.GroupBlocks``) against torch's own layers.

The same model, weights and batches, its conv blocks run either by ``GroupBlocks`` (unfolded
windows, batched matmuls, BatchNorm and ReLU in one autograd function, member-major layout) or
by ``nn.Sequential`` of the same modules (torch's grouped ``Conv1d``, ``BatchNorm1d``, ``ReLU``).
Times the real training step (``Trainer.train_epoch``: sampling, gathering, forward, loss,
backward, SGD) and the full-length validation pass, K = 1 and K members, one torch thread, in CPU
milliseconds (user + system; on a shared machine wall time is noise): the four arms interleaved
epoch by epoch, medians reported. Writes ``benchmarks/results/blocks.md``.

    python benchmarks/bench_blocks.py                 # full run
    python benchmarks/bench_blocks.py --smoke-test    # seconds; checks the script works
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

from raympa.config import TrainConfig
from raympa.dataset import synthetic_set
from raympa.models import GroupBlocks
from raympa.sampling import epoch_repeats, steps_per_pass
from raympa.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def torch_layers(model: nn.Module) -> nn.Module:
    """The model with every GroupBlocks swapped for nn.Sequential of the same modules (torch's path)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, GroupBlocks):
                setattr(module, name, nn.Sequential(*child))
    return model


def measure(model: str, data, *, k: int, epochs: int) -> dict[tuple[str, int], tuple[float, float]]:
    """(path, K) -> median CPU ms per training step and per validation pass."""
    cfg = TrainConfig(model=model, device="cpu")
    arms = {}
    for path in ("GroupBlocks", "torch layers"):
        for n in (1, k):
            tr = Trainer([dataclasses.replace(cfg, seed=s) for s in range(n)], data, torch.device("cpu"))
            if path == "torch layers":
                torch_layers(tr.model)
            arms[(path, n)] = tr
    lengths = arms[("GroupBlocks", 1)].splits["train"].lengths_np
    per_pass = steps_per_pass(lengths, chunking=cfg.chunking, chunk_frames=cfg.chunk_frames, chunk_hop=cfg.chunk_hop,
                              chunks_per_recording=cfg.chunks_per_recording, batch_size=cfg.batch_size)
    steps = per_pass * epoch_repeats(per_pass, cfg.min_steps_per_epoch)
    times: dict[tuple[str, int], tuple[list[float], list[float]]] = {a: ([], []) for a in arms}
    for e in range(epochs + 1):
        for arm, tr in arms.items():
            t0 = _cpu()
            tr.train_epoch()
            t1 = _cpu()
            tr.full_length("val")
            t2 = _cpu()
            if e:  # the first epoch warms up
                times[arm][0].append((t1 - t0) / steps * 1e3)
                times[arm][1].append((t2 - t1) * 1e3)
    return {a: (statistics.median(s), statistics.median(v)) for a, (s, v) in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=240, help="synthetic recordings (default %(default)s)")
    p.add_argument("--k", type=int, default=5, help="members (default %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per arm (default %(default)s)")
    p.add_argument("--models", default="pcconvnet,contrastive,contrastive-jl")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "blocks.md"))
    p.add_argument("--smoke-test", action="store_true", help="tiny sizes; writes nothing unless --out is given")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.n, args.epochs, args.k = 40, 1, 2
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    data = synthetic_set(args.n, seed=0, n_frames=(4000, 6000))
    rows = []
    for model in args.models.split(","):
        r = measure(model, data, k=args.k, epochs=args.epochs)
        rows.append((model, r))
        print(model, r, file=sys.stderr)
    k = args.k
    command = "python benchmarks/bench_blocks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Conv blocks as batched matmuls against torch's layers (cpu)", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs visible, one torch thread, "
        f"Python {platform.python_version()}, torch {torch.__version__}; shared with other jobs (load average "
        f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end). CPU milliseconds (user + system).",
        f"Data: {args.n} synthetic recordings of 4000-6000 frames, default TrainConfig (batch 32, at least 64 steps "
        f"per epoch; the first stage of each model). Median of {args.epochs} epochs, the four arms interleaved.", "",
        f"| model | step K=1: torch / GroupBlocks, ms | step K={k}: torch / GroupBlocks, ms | "
        f"step speed-up K=1 / K={k} | validation K={k}: torch / GroupBlocks, ms | {k} x K=1 / K={k} step, "
        "torch / GroupBlocks |",
        "|---|---|---|---|---|---|",
    ]
    for model, r in rows:
        t1, g1, tk, gk = r[("torch layers", 1)], r[("GroupBlocks", 1)], r[("torch layers", k)], r[("GroupBlocks", k)]
        lines.append(f"| {model} | {t1[0]:.2f} / {g1[0]:.2f} | {tk[0]:.2f} / {gk[0]:.2f} | "
                     f"{t1[0] / g1[0]:.2f}x / {tk[0] / gk[0]:.2f}x | {tk[1]:.0f} / {gk[1]:.0f} | "
                     f"{k * t1[0] / tk[0]:.2f}x / {k * g1[0] / gk[0]:.2f}x |")
    text = "\n".join(lines) + "\n"
    if not args.smoke_test or "--out" in (argv or sys.argv):
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
