"""Paper replication: does contrastive learning improve music performance assessment?

Question: Seshadri & Lerch (ISMIR 2021, table 2) compare the PCConvNet baseline, the two-step
contrastive model and the joint model (contrastive-jl) on three criteria (musicality, note
accuracy, rhythm accuracy) for the middle-school and symphonic bands, five seeds each. Do the
contrastive models' test R² and latent-space clustering beat the baseline's?

The paper's grid, 3 models x 3 criteria x 2 bands x 5 seeds = 90 trials (a Tune grid, no
searcher), with the paper's settings: SGD, lr 0.005 (two-step encoder 0.1), 300 epochs (encoder
150), early stopping with patience 75, s = 0.5, C = 5, random 1000-frame chunks, MIDI / 127
(raympa.config.TrainConfig defaults). ``--models``, ``--criteria``, ``--bands``, ``--seeds`` and
``--epochs`` shrink it. Results: ``results/paper_replication/``.

Default run: 240 demo auditions per band; the 90 trials took 17 min on 2 CPU
cores on 2026-11-24, data included (less with --epochs, or on a cluster with --gpus-per-trial 0.25). ``--smoke-test``: 3
models x 1 criterion x 1 band x 1 seed, 3 epochs, on 24 short demo auditions (about a minute).

    python studies/paper_replication.py --smoke-test
    python studies/paper_replication.py
    python studies/paper_replication.py --data fba_index.csv --contours contours/ --address auto \\
        --storage-path /mnt/shared/results --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from raympa import constants as C
from raympa import study
from raympa.config import TrainConfig

PAPER = TrainConfig()  # the defaults are the paper's settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    study.add_study_args(p, name="paper_replication", num_samples=None, demo_n=240,
                         epochs=PAPER.epochs, encoder_epochs=PAPER.encoder_epochs)
    p.add_argument("--models", default="pcconvnet,contrastive,contrastive-jl", help="(default %(default)s)")
    p.add_argument("--criteria", default=",".join(C.CRITERIA), help="(default %(default)s)")
    p.add_argument("--bands", default=",".join(C.STUDY_BANDS), help="(default %(default)s)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="(default %(default)s, paper)")
    p.add_argument("--patience", type=int, default=PAPER.patience, help="early-stopping patience (default %(default)s, paper)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = args.name or ("paper_replication_smoke" if args.smoke_test else "paper_replication")
    if args.smoke_test:
        args.criteria, args.bands, args.seeds = "note_accuracy", "middleschool", "0"
        args.epochs, args.encoder_epochs = 3, 2
        if args.data == "demo":
            args.demo_n, args.demo_duration = 24, 8.0
        args.overwrite = args.overwrite or not args.resume

    study.init_ray(args.address, dashboard=args.dashboard)
    bands = tuple(args.bands.split(","))
    data, info = study.load_study_data(args, bands=bands)
    space = study.paper_grid(
        models=args.models.split(","),
        criteria=args.criteria.split(","),
        bands=bands,
        seeds=[int(s) for s in args.seeds.split(",")],
        epochs=args.epochs,
        encoder_epochs=args.encoder_epochs,
        patience=args.patience,
        chunks_per_recording=args.chunks_per_recording,
    )
    study.run_script_study(args, name=name, doc=__doc__, script="studies/paper_replication.py", argv=argv,
                           data=data, info=info, param_space=space)
    return 0


if __name__ == "__main__":
    sys.exit(main())
