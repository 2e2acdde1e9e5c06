"""The paper replication: the paper's grid of models, criteria, bands and seeds (a Tune grid).

3 models x 3 criteria x 2 bands x 5 seeds = 90 runs (18 trials, each training its seeds together)
with :class:`raympa.config.TrainConfig`'s defaults; the options shrink it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from raympa import constants as C
from raympa.config import TrainConfig
from raympa.studies.options import StudyOptions, run_defined_study

NAME = "paper_replication"
QUESTION = (
    "Seshadri & Lerch (ISMIR 2021, Figures 2-3) compare the PCConvNet baseline, the two-step contrastive "
    "model and the joint model (contrastive-jl) on three criteria (musicality, note accuracy, rhythm "
    "accuracy) for the middle-school and symphonic bands, five seeds each. Do the contrastive models' "
    "test R² and latent-space clustering beat the baseline's?"
)
DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class Options(StudyOptions):
    """The paper grid's options (besides :class:`StudyOptions`).

    Attributes:
        models, criteria, bands, seeds: the grid's axes (paper: all models, criteria and the
            two bands, seeds 0-4).
        patience: early-stopping patience in epochs (paper: 75).
    """

    epochs: int = DEFAULTS.epochs
    encoder_epochs: int = DEFAULTS.encoder_epochs
    models: tuple[str, ...] = C.PAPER_MODELS
    criteria: tuple[str, ...] = C.CRITERIA
    bands: tuple[str, ...] = C.STUDY_BANDS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # paper: five runs
    patience: int = DEFAULTS.patience

    def smoke(self) -> "Options":
        """3 models x 1 criterion x 1 band x 1 seed, 3 epochs."""
        return StudyOptions.smoke(self, criteria=("note_accuracy",), bands=("middleschool",), seeds=(0,))


def run(options: Options, *, command: Sequence[str]) -> Path:
    """Run the paper's grid (its smoke test with ``options.smoke_test``); return the study folder."""
    from raympa.search import paper_grid

    if options.smoke_test:
        options = options.smoke()
    name = options.name or (f"{NAME}_smoke" if options.smoke_test else NAME)
    space = paper_grid(
        models=list(options.models), criteria=list(options.criteria), bands=tuple(options.bands),
        seeds=[int(s) for s in options.seeds], epochs=options.epochs, encoder_epochs=options.encoder_epochs,
        patience=options.patience, chunks_per_recording=options.chunks_per_recording, reference=options.reference,
    )
    return run_defined_study(options, name=name, question=QUESTION, command=command, bands=tuple(options.bands),
                             criterion=options.criteria[0], param_space=space)

