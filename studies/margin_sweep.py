"""Margin sweep: how much do the contrastive loss's margin s, bins C, weight lambda and the
contrastive term itself (weighted contrastive or Rank-N-Contrast) matter?

Question: Seshadri & Lerch (ISMIR 2021) fix lambda = 1 (L = L_MSE + L_C) and use C = 5 (the
example of their section 3.2 and the original code's value; s = 0.5 is the original code's value,
the paper gives none). Is the validation R² of the joint model
(contrastive-jl) and the two-step model (contrastive) sensitive to them, and does Rank-N-Contrast
(Zha et al. 2023) do better than the weighted contrastive loss?

Ray Tune + OptunaSearch (TPE, writing optuna.journal as it runs) over
raympa.search.margin_sweep_space (ranges in its docstring); each configuration runs with
``--repeats`` seeds, trained as one batched model; ``--asha`` stops poor trials early. Results:
``results/margin_sweep/`` (trials.csv, study.json, latents/, optuna.journal for optuna-dashboard,
report/).

Default run (no arguments; sizes ours, training length the paper's, each in
raympa.studies.margin_sweep.Options): 800 simulated middle-school auditions of a 15 s etude
(640 / 80 / 80 train / validation / test), built under data/, then the PCConvNet baseline and 8
configurations, 3 seeds each (paper: 5 runs), trained together per configuration, with 300 epochs
of at least 64 SGD steps (two-step: 150 encoder + 300 head; paper and original code) and
early-stopping patience 75 (paper). Time: results/README.md (goal: 10 minutes on 2 cores from cold).
``--smoke-test``: 24 short demo auditions, the baseline and 2 configurations x 1 seed x 3 epochs.
On a cluster: ``--address auto --storage-path /mnt/shared/results --data-dir /mnt/shared/data
--gpus-per-trial 0.25`` (see docs/study.md). The same study: ``raympa study margin-sweep``.

    python studies/margin_sweep.py --smoke-test
    python studies/margin_sweep.py
    python studies/margin_sweep.py --data fba_index.csv --contours contours/ --num-samples 60 --repeats 5
"""

from __future__ import annotations

import sys
from typing import Sequence

from raympa.cli.study import script_main


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags (``--smoke-test``, ``--storage-path``, ``--num-samples`` ...; see ``--help``) and run."""
    return script_main("margin-sweep", argv, script="studies/margin_sweep.py", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
