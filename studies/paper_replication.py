"""Paper replication: does contrastive learning improve music performance assessment?

Question: Seshadri & Lerch (ISMIR 2021, Figures 2-3) compare the PCConvNet baseline, the two-step
contrastive model and the joint model (contrastive-jl) on three criteria (musicality, note
accuracy, rhythm accuracy) for the middle-school and symphonic bands, five seeds each. Do the
contrastive models' test R² and latent-space clustering beat the baseline's?

The paper's grid, 3 models x 3 criteria x 2 bands x 5 seeds = 90 runs in 18 trials (a Tune grid,
no searcher; each trial trains its five seeds together as one batched model), with raympa.config.TrainConfig's defaults
(each default's source is in its comment): SGD, lr 0.005 (paper; two-step encoder 0.1), 300
epochs (encoder 150; paper and original code), early stopping with patience 75 (paper), C = 5
(the paper's example and the original code's), s = 0.5 (the original code's; the paper gives none), random 1000-frame chunks and
MIDI / 127 (paper); an epoch repeats its pass until it has at least 64 SGD steps (ours,
``min_steps_per_epoch``; the paper's epoch is one chunk per recording); the two-step head reads the
embedding standardised with the training recordings' mean and sd (ours, ``head_norm="auto"``; the
paper's raw embedding: ``head_norm="none"``). PCConvNet's lr and epochs
are in neither: ours, the same as the joint model's. ``--models``,
``--criteria``, ``--bands``, ``--seeds`` and ``--epochs`` shrink it. Results:
``results/paper_replication/``. ``--smoke-test``: 3 models x 1 criterion x 1 band x 1 seed,
3 epochs, on 24 short demo auditions (about a minute). The same study:
``raympa study paper-replication``.

    python studies/paper_replication.py --smoke-test
    python studies/paper_replication.py
    python studies/paper_replication.py --data fba_index.csv --contours contours/ --address auto \\
        --storage-path /mnt/shared/results --gpus-per-trial 0.25
"""

from __future__ import annotations

import sys
from typing import Sequence

from raympa.cli.study import script_main


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags (``--smoke-test``, ``--storage-path``, ``--seeds`` ...; see ``--help``) and run."""
    return script_main("paper-replication", argv, script="studies/paper_replication.py", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
