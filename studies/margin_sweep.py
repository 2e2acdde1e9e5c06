"""Margin sweep: how much do the contrastive loss's margin s, bins C, weight lambda and the
contrastive term itself (weighted contrastive or Rank-N-Contrast) matter?

Question: Seshadri & Lerch (ISMIR 2021) fix s = 0.5, C = 5 and lambda = 1 (L = L_MSE + L_C). Is
the validation R² of the joint model (contrastive-jl) and the two-step model (contrastive)
sensitive to them, and does Rank-N-Contrast (Zha et al. 2023) do better than the weighted
contrastive loss?

Ray Tune + OptunaSearch (TPE) over raympa.study.margin_sweep_space (ranges in its docstring);
each configuration runs with ``--repeats`` seeds (Ray's Repeater; the searcher sees their mean);
``--asha`` stops poor trials early. Results: ``results/margin_sweep/`` (trials.csv, study.json,
latents/, optuna.journal for optuna-dashboard, report/ when the report module is present).

Default run (no arguments, 2 CPU cores, from cold; budget 10 minutes): builds a 240-audition
middle-school demo under data/ (the data issue's learnable size), then 16 configurations x 2 seeds
with 150 epochs (two-step: 75 encoder + 150 head; paper: 150 + 300), two trials at a time,
reusing trial processes, and writes the report. Measured on 2026-11-24 on a quiet 2-core machine:
3 min 49 s in all, of which about 70 s for the demo data (results/README.md).
``--smoke-test``: 24 short demo auditions, 2 configurations x 1 seed x 3 epochs (about a minute).
On a cluster: ``--address auto --storage-path /mnt/shared/results --data-dir /mnt/shared/data
--gpus-per-trial 0.25`` (see docs/study.md).

    python studies/margin_sweep.py --smoke-test
    python studies/margin_sweep.py
    python studies/margin_sweep.py --data fba_index.csv --contours contours/ --num-samples 60 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from raympa import study


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    study.add_study_args(p, name="margin_sweep", num_samples=16, demo_n=240, epochs=150, encoder_epochs=75)
    p.add_argument("--repeats", type=int, default=2, help="seeds per configuration (default %(default)s; paper: 5)")
    p.add_argument("--criterion", default="note_accuracy", help="rated criterion (default %(default)s)")
    p.add_argument("--band", default="middleschool", help="band, or 'all' (default %(default)s)")
    p.add_argument("--models", default="contrastive,contrastive-jl", help="models searched (default %(default)s)")
    p.add_argument("--terms", default="weighted,rnc", help="contrastive terms searched (default %(default)s)")
    p.add_argument("--asha", action="store_true", help="stop poor trials early (ASHA on validation R² per epoch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = args.name or ("margin_sweep_smoke" if args.smoke_test else "margin_sweep")
    if args.smoke_test:  # tiny and fast; the run still goes through every stage
        args.num_samples, args.repeats = 2, 1
        args.epochs, args.encoder_epochs = 3, 2
        if args.data == "demo":
            args.demo_n, args.demo_duration = 24, 8.0
        args.overwrite = args.overwrite or not args.resume

    study.init_ray(args.address, dashboard=args.dashboard)
    bands = ("middleschool", "symphonicband") if args.band == "all" else (args.band,)
    data, info = study.load_study_data(args, bands=bands)
    space = study.margin_sweep_space(
        models=tuple(args.models.split(",")),
        terms=tuple(args.terms.split(",")),
        criterion=args.criterion,
        band=args.band,
        epochs=args.epochs,
        encoder_epochs=args.encoder_epochs,
        patience=75,  # paper
        chunks_per_recording=args.chunks_per_recording,
    )
    study.run_script_study(
        args, name=name, doc=__doc__, script="studies/margin_sweep.py", argv=argv, data=data, info=info,
        search=space,
        num_samples=args.num_samples,
        repeats=args.repeats,
        asha=args.asha,
        asha_grace=max(1, args.encoder_epochs + min(10, args.epochs)),  # past the two-step encoder stage
        sampler_seed=args.seed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
