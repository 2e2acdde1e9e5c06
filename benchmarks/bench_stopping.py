"""Which epoch budget and patience let the margin sweep's runs finish? Flagged share by stopping rule.

Trains each model once, with a long epoch cap and early stopping off (patience = the cap), over
learning rates that span the margin sweep's range, and keeps every member's validation loss per
epoch. Early stopping does not change a run's path before it stops, so the same histories then
give, for each stopping rule (epoch budget E, patience P), where the run would have stopped,
its best epoch, and whether it is flagged (best epoch in the last 5% of a stage's epochs run,
``best_epoch_at_end``). The two-step model's head is simulated on the head trained after an
encoder of the full encoder cap (its path after a shorter encoder stage differs a little).
Writes ``benchmarks/results/stopping.md``.

    raympa demo-data --out DEMO --n 800 --seed 0 --duration 15
    raympa extract --table DEMO/ratings.csv --out DEMO/contours
    python benchmarks/bench_stopping.py --ratings DEMO/ratings.csv --contours DEMO/contours
    python benchmarks/bench_stopping.py --ratings ... --contours ... --smoke-test   # seconds
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

from raympa.config import TrainConfig
from raympa.constants import BASELINE_MODEL, PAPER_MODELS, REFERENCE_MODELS
from raympa.studies.data import load_study_data
from raympa.train import AT_END_FRACTION, fit_members, improves

ROOT = Path(__file__).resolve().parents[1]
HEAD_LABELS = {"none": "raw", "standardize": "standardised"}  # TrainConfig.head_norm -> table label
ENCODER_SHARE = 0.5  # the sweep's two-step encoder budget is half the head's (raympa.studies.margin_sweep)


def histories(data, *, model: str, lrs: list[float], seeds: list[int], cap: int, min_steps: int,
              head_norm: str = "standardize", reference: str = "none",
              save: Path | None = None) -> pd.DataFrame:
    """One batched run, one member per (learning rate, seed); every member's epochs (early stopping off).

    With ``save``, the histories so far are written there every 10 epochs (a long run can be read early).
    """
    members = [(lr, seed) for lr in lrs for seed in seeds]
    cfgs = [TrainConfig(model=model, criterion="note_accuracy", seed=seed, lr=lr, epochs=cap,
                        encoder_epochs=max(1, int(cap * ENCODER_SHARE)), patience=cap, head_norm=head_norm,
                        reference=reference if model in REFERENCE_MODELS else "none",
                        min_steps_per_epoch=min_steps, threads=1) for lr, seed in members]
    rows: list[dict] = []

    def keep(metrics, _get_state) -> None:
        for k, m in enumerate(metrics):
            if m is not None:
                rows.append({"model": model, "head_norm": head_norm, "lr": members[k][0], "seed": members[k][1],
                             **{c: m[c] for c in ("stage", "stage_epoch", "val_loss", "val_r2_full")}})
        if save is not None and rows and rows[-1]["stage_epoch"] % 10 == 0:
            pd.DataFrame(rows).to_csv(save, index=False)

    fit_members(cfgs, data, callback=keep)
    return pd.DataFrame(rows)


def label(h: pd.DataFrame) -> pd.DataFrame:
    """Histories with a ``run`` column naming the model (and, for a two-step model, its head input)."""
    h = h.copy()
    # histories written before the head input was standardised trained the raw embedding
    h["head_norm"] = h["head_norm"].fillna("none") if "head_norm" in h else "none"
    two_step = h.groupby("model")["stage"].transform(lambda s: (s == "encoder").any())
    h["run"] = h["model"].where(~two_step, h["model"] + " (head " + h["head_norm"].map(HEAD_LABELS) + ")")
    return h


def stop(val: list[float], *, epochs: int, patience: int, min_delta: float = 0.0) -> tuple[int, int]:
    """(epochs run, best epoch) of one stage under the rule: stop at ``epochs`` or after
    ``patience`` epochs without a new best validation loss (raympa.train's rule, its min_delta)."""
    best, best_t, t = math.inf, 0, 0
    for t, v in enumerate(val[:epochs], start=1):
        if improves(v, best, min_delta=min_delta):
            best, best_t = v, t
        if t - best_t >= patience:
            break
    return t, best_t


def simulate(h: pd.DataFrame, *, epochs: int, patience: int, min_delta: float = 0.0) -> pd.DataFrame:
    """Per run (model, lr, seed): epochs run, flagged, validation R² at the best epoch, under one rule.

    Empty where a history is too short to tell where the rule stops (a run still going).
    """
    out = []
    for (model, lr, seed), g in h.groupby(["run", "lr", "seed"], sort=False):
        stages = [st for st in ("encoder", "head", "regression", "joint") if st in set(g["stage"])]
        run_epochs, flagged, r2 = 0, False, float("nan")
        for stage in stages:
            s = g[g["stage"] == stage].sort_values("stage_epoch")
            budget = epochs if stage != "encoder" else max(1, int(epochs * ENCODER_SHARE))
            t, best_t = stop(s["val_loss"].tolist(), epochs=budget, patience=patience, min_delta=min_delta)
            if t < budget and t - best_t < patience:
                return pd.DataFrame()  # the history ends before this rule would stop
            run_epochs += t
            flagged |= best_t > (1 - AT_END_FRACTION) * t
            r2 = float(s["val_r2_full"].iloc[best_t - 1])
        out.append({"model": model, "lr": lr, "seed": seed, "epochs_run": run_epochs, "flagged": flagged, "val_r2": r2})
    return pd.DataFrame(out)


Rule = tuple[int, int, float]  # epoch budget, patience, min_delta


def parse_rule(text: str) -> Rule:
    """``"150:75"`` or ``"150:75:0.001"`` -> (epochs, patience, min_delta)."""
    parts = text.split(":")
    return int(parts[0]), int(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0


def table(h: pd.DataFrame, rules: list[Rule]) -> list[str]:
    """One row per rule: flagged runs in all and per model, mean epochs run, mean validation R² at the best epoch."""
    models = list(dict.fromkeys(h["run"]))
    lines = ["| epochs | patience | min_delta | flagged | " + " | ".join(f"flagged {m}" for m in models)
             + " | mean epochs run | mean validation R² at the best epoch |",
             "|---|---|---|---|" + "---|" * len(models) + "---|---|"]
    for e, p, d in rules:
        s = simulate(h, epochs=e, patience=p, min_delta=d)
        if s.empty:
            continue
        per = " | ".join(f"{int(g['flagged'].sum())} / {len(g)}" for _, g in s.groupby("model", sort=False))
        lines.append(f"| {e} | {p} | {d:g} | {int(s['flagged'].sum())} / {len(s)} | {per} | {s['epochs_run'].mean():.0f} "
                     f"| {s['val_r2'].mean():.3f} |")
    return lines


def runs_table(h: pd.DataFrame, rules: list[Rule]) -> list[str]:
    """Per run: epochs run and validation R² at the best epoch under each rule (``*`` = flagged)."""
    sims = {r: simulate(h, epochs=r[0], patience=r[1], min_delta=r[2]) for r in rules}
    sims = {r: s for r, s in sims.items() if not s.empty}
    lines = ["| model | lr | seed | " + " | ".join(f"{e} / {p}" + (f" / {d:g}" if d else "") for e, p, d in sims) + " |",
             "|---|---|---|" + "---|" * len(sims)]
    first = next(iter(sims.values()), pd.DataFrame())
    for i, (model, lr, seed) in enumerate(first[["model", "lr", "seed"]].itertuples(index=False) if len(first) else []):
        cells = [f"{s['epochs_run'].iloc[i]}{'*' if s['flagged'].iloc[i] else ''}, {s['val_r2'].iloc[i]:.2f}"
                 for s in sims.values()]
        lines.append(f"| {model} | {lr:g} | {seed} | " + " | ".join(cells) + " |")
    return lines


def describe(h: pd.DataFrame) -> str:
    """What the histories hold: per model, its learning rates, seeds and epochs per stage."""
    parts = []
    for model, g in h.groupby("run", sort=False):
        stages = ", ".join(f"{st} {int(s['stage_epoch'].max())}" for st, s in g.groupby("stage", sort=False))
        runs = sorted({(float(lr), int(seed)) for lr, seed in g[["lr", "seed"]].itertuples(index=False)})
        parts.append(f"{model}: " + ", ".join(f"lr {lr:g} seed {seed}" for lr, seed in runs) + f" ({stages} epochs)")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True)
    p.add_argument("--contours", required=True)
    p.add_argument("--lrs", default="0.0007,0.002,0.005,0.015,0.04", help="comma-separated learning rates (members)")
    p.add_argument("--cap", type=int, default=200, help="epoch cap of the histories (joint, head, PCConvNet)")
    p.add_argument("--min-steps", type=int, default=64, help="min_steps_per_epoch")
    p.add_argument("--seeds", default="0", help="comma-separated seeds of the contrastive models")
    p.add_argument("--baseline-seeds", default="0,1,2",
                   help="comma-separated seeds of PCConvNet, trained at TrainConfig's lr only (the sweep's baseline)")
    p.add_argument("--baseline-lrs", default=str(TrainConfig().lr), help="comma-separated learning rates of PCConvNet")
    p.add_argument("--models", default=",".join(PAPER_MODELS), help="comma-separated models")
    p.add_argument("--rules", default="60:75,100:40,150:20,150:40,150:75,150:75:0.001,150:75:0.003,150:75:0.01,"
                                      "200:40,200:75",
                   help="comma-separated EPOCHS:PATIENCE[:MIN_DELTA] rules to simulate")
    p.add_argument("--head-norm", default="standardize", choices=list(HEAD_LABELS),
                   help="two-step head input (TrainConfig.head_norm; none = the paper's raw embedding)")
    p.add_argument("--reference", default="none", choices=["none", "table"],
                   help="table: the ratings table's references, for the reference-informed models (si-*)")
    p.add_argument("--histories", help="comma-separated CSVs of histories: read instead of training when all exist, "
                                        "else the first is written after training")
    p.add_argument("--smoke-test", action="store_true", help="2 learning rates, 6 epochs: checks the script works")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stopping.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lrs = [float(v) for v in args.lrs.split(",")][: 2 if args.smoke_test else None]
    cap = 6 if args.smoke_test else args.cap
    rules = [(3, 2, 0.0), (6, 2, 0.01)] if args.smoke_test else [parse_rule(r) for r in args.rules.split(",")]
    seeds, base_seeds = ([int(v) for v in a.split(",")] for a in (args.seeds, args.baseline_seeds))
    base_lrs = [float(v) for v in args.baseline_lrs.split(",")]
    files = [Path(f) for f in args.histories.split(",")] if args.histories else []
    if files and all(f.is_file() for f in files):
        h = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    else:
        data = load_study_data(data=args.ratings, contours=args.contours, reference=args.reference)[0]
        h = pd.concat([histories(data, model=m, lrs=base_lrs if m == BASELINE_MODEL else lrs,
                                 seeds=base_seeds if m == BASELINE_MODEL else seeds, cap=cap, min_steps=args.min_steps,
                                 head_norm=args.head_norm, reference=args.reference,
                                 save=files[0].with_suffix(".partial.csv") if files else None)
                       for m in args.models.split(",")], ignore_index=True)
        if files:
            h.to_csv(files[0], index=False)
    h = label(h)
    lines = [
        "# Stopping rules: flagged share by epoch budget and patience", "",
        "Command: `python benchmarks/bench_stopping.py --ratings DEMO/ratings.csv --contours DEMO/contours"
        f"{' --reference table' if args.reference == 'table' else ''}{' --smoke-test' if args.smoke_test else ''}` (DEMO: `raympa demo-data --n 800 --seed 0 --duration 15`, "
        "the margin sweep's data: 640 / 80 / 80 auditions), note accuracy, each model one batched run (members: "
        f"its learning rates x seeds), early stopping off, epochs of at least {args.min_steps} steps; "
        f"{platform.machine()}, torch {torch.__version__}, one thread.", "",
        f"Histories: {describe(h)}.", "",
        "Each rule (epoch budget, patience; the two-step encoder gets half the budget) is applied to the same "
        "histories: `flagged` = runs whose best validation loss came in the last 5% of a stage's epochs run "
        "(`best_epoch_at_end`), `epochs run` is the cost (all stages).", "",
        *table(h, rules), "",
        "Per run: epochs run (`*` = flagged), validation R² (full length) at the kept epoch.", "",
        *runs_table(h, rules), "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
