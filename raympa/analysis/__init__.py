"""Study analysis: the tables behind the report's figures.

Reads a study folder (``study.json``, ``trials.csv``, ``latents/<trial_id>.npz``) and returns tidy
pandas tables, one per figure of Seshadri & Lerch, "Improving Music Performance Assessment with
Contrastive Learning" (ISMIR 2021), and the views the paper lacked. One module per job:

* :mod:`~raympa.analysis.load`: the study folder in memory (trials, configurations, latents);
* :mod:`~raympa.analysis.selection`: the configuration that stands for each model, and test R²
  over seeds (paper Figures 2-3), the best configurations;
* :mod:`~raympa.analysis.latent`: t-SNE (Figure 4), bin-centroid distances (Figure 5), the
  Davies-Bouldin index (Figure 6) and its relation to R²;
* :mod:`~raympa.analysis.significance`: paired Wilcoxon tests between models, with effect sizes,
  and every configuration against the baseline (the study's question);
* :mod:`~raympa.analysis.sweep`: slice tables of a sweep and parameter importance per sub-space of
  its conditional search space.

Every function returns ``(table, notes)``: notes are plain sentences about degenerate inputs
(one rating bin, one seed, missing latents ...) for the report; nothing here raises on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raympa.analysis.latent import db_vs_r2, latent_metrics, latent_points_note, mean_centroid_distances, tsne_table
from raympa.analysis.load import (
    FINISHED,
    GROUP_COLUMNS,
    METRIC_COLUMNS,
    AnalysisConfig,
    Latents,
    Notes,
    Study,
    dedupe,
    load_latents,
    load_study,
)
from raympa.analysis.selection import (
    R2_PROTOCOLS,
    TEST_PROTOCOLS,
    best_configs,
    late_best_epochs,
    r2_by_model,
    r2_summary,
    representative_trials,
    selected_configs,
)
from raympa.analysis.significance import baseline_comparison, significance
from raympa.analysis.sweep import param_importance, sweep_table

__all__ = [
    "FINISHED", "GROUP_COLUMNS", "METRIC_COLUMNS", "R2_PROTOCOLS", "TEST_PROTOCOLS", "baseline_comparison",
    "late_best_epochs", "Analysis", "AnalysisConfig", "Latents", "Notes",
    "Study", "analyse", "best_configs", "db_vs_r2", "latent_metrics", "load_latents", "load_study",
    "mean_centroid_distances", "param_importance", "r2_by_model", "r2_summary", "representative_trials",
    "selected_configs", "significance", "sweep_table", "tsne_table", "latent_points_note",
]


@dataclass
class Analysis:
    """All tables of one study; ``notes`` maps a section name to its notes."""

    study: Study
    tables: dict[str, pd.DataFrame]
    notes: dict[str, Notes]


def analyse(study_dir: str | Path, config: AnalysisConfig | None = None) -> Analysis:
    """Compute every table of the report (see the module docstring) for a study folder."""
    cfg = config or AnalysisConfig()
    study = load_study(study_dir, cfg)
    tables: dict[str, pd.DataFrame] = {}
    notes: dict[str, Notes] = {"study": list(study.notes)}
    r2, notes["r2"] = r2_by_model(study)
    tables["r2_by_model"] = r2
    tables["r2_summary"] = r2_summary(r2)
    db, cd, notes["latent"] = latent_metrics(study, cfg)
    tables["davies_bouldin"] = db
    tables["centroid_distances"] = cd
    tables["centroid_distances_mean"] = mean_centroid_distances(study, cd)
    tables["db_vs_r2"], notes["db_vs_r2"] = db_vs_r2(db)
    tables["tsne"], notes["tsne"] = tsne_table(study, cfg)
    notes["tsne"] = [n for n in notes["tsne"] if n not in notes["latent"]]
    tables["sweep"], notes["sweep"] = sweep_table(study)
    tables["param_importance"], notes["importance"] = param_importance(study, cfg)
    tables["best_configs"], notes["best"] = best_configs(study, cfg)
    tables["significance"], notes["significance"] = significance(study)
    tables["baseline_comparison"], notes["baseline"] = baseline_comparison(study)
    tables["late_best_epoch"], notes["epochs"] = late_best_epochs(study)
    notes["points"] = latent_points_note(db)
    failed = study.failed
    tables["failed_trials"] = failed[[c for c in ("trial_id", "status", "error", "model", "criterion", "band", "seed",
                                                   "config_id") if c in failed.columns]].reset_index(drop=True)
    return Analysis(study=study, tables=tables, notes={k: dedupe(v) for k, v in notes.items()})
