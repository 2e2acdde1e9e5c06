"""Simulated auditions: the embedded default data set (``raympa demo-data``).

The FBA audio is private, so the demo renders auditions whose ground truth is known. The family:

* :mod:`raympa.demo.etudes`: the scores (generated etude-like melodies, or the real FBA MIDIs);
* :mod:`raympa.demo.judge`: deviation kinds, students' amounts, and amounts -> ratings;
* :mod:`raympa.demo.performance`: a score plus one student's amounts -> the notes they play;
* :mod:`raympa.demo.synthesis`: note events -> audio;
* :mod:`raympa.demo.folder`: all of it put together and written to a folder (:func:`make_demo`).

See docs/data.md for what each deviation sounds like and what the judge hears.
"""

from raympa.demo.folder import DEMO_YEARS, ceiling, make_demo, make_demo_like_fba
from raympa.demo.judge import (
    BAND_STANDARDS,
    DEVIATIONS,
    FBA_MARGINALS,
    FBA_MEAN_CORRELATION,
    HALO,
    JUDGE_NOISE,
    JUDGE_WEIGHTS,
    Deviation,
    JudgeModel,
    calibrate_judge,
    fit_amounts,
    sample_amounts,
)
from raympa.demo.performance import Audition, perform

__all__ = [
    "BAND_STANDARDS", "DEMO_YEARS", "DEVIATIONS", "FBA_MARGINALS", "FBA_MEAN_CORRELATION", "HALO", "JUDGE_NOISE",
    "JUDGE_WEIGHTS", "Audition", "Deviation", "JudgeModel", "calibrate_judge", "ceiling", "fit_amounts", "make_demo", "make_demo_like_fba",
    "perform", "sample_amounts",
]
