"""raympa: music performance assessment with contrastive learning, as a Ray study.

Re-implements and extends Seshadri & Lerch, "Improving Music Performance Assessment with
Contrastive Learning", ISMIR 2021 (arXiv:2108.01711).

Conventions used everywhere in the package (stated once, here):
    * Pitch contours are stored as MIDI note numbers per frame, float32, with 0 meaning an
      unvoiced frame (librosa returns NaN there; it is converted explicitly). They are
      normalised only at the model input.
    * Ratings are floats in [0, 1] (FBA ratings divided by their maximum); -1 in the FBA files
      means "missing" and never reaches a model.
    * Times are in seconds, frequencies in Hz, frame counts at the hop in constants.HOP_LENGTH.

Pipeline, one module per stage: data (fba, demo, ratings) -> contours (pitch, contours) ->
model/loss (models, losses) -> train -> study (Ray Tune) -> analysis -> report.
"""

__version__ = "0.1.0"
