"""Sweep views: one row per finished trial with its swept parameters and metrics (slice plots)."""

from __future__ import annotations

import pandas as pd

from raympa.analysis.load import Notes, Study
from raympa.analysis.selection import R2_PROTOCOLS


def sweep_table(study: Study) -> tuple[pd.DataFrame, Notes]:
    """One row per finished trial: swept parameters, selection metric, test R²."""
    fin = study.finished
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id",
            *[c for c in study.swept if c != "model"], study.metric,
            *[p for p in R2_PROTOCOLS if p in fin.columns and p != study.metric]]
    notes: Notes = []
    if not [c for c in study.swept if c != "model"]:
        notes.append("no training parameter other than the model varies among finished trials: no sweep views.")
    return fin[list(dict.fromkeys(cols))].reset_index(drop=True), notes
