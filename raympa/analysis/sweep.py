"""Sweep views: one row per trial with its swept parameters, and parameter importance.

Importance is Optuna's fANOVA evaluator (``optuna.importance.FanovaImportanceEvaluator``, a random
forest fitted to the finished trials; Hutter et al. 2014).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from raympa.analysis.load import AnalysisConfig, Notes, Study
from raympa.analysis.selection import R2_PROTOCOLS

IMPORTANCE_COLUMNS = ["criterion", "band", "param", "importance", "n_trials", "n_configs", "evaluator"]


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


def param_importance(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """Importance of each swept parameter for the selection metric, per criterion x band.

    Uses Optuna's fANOVA evaluator on an in-memory Optuna study built from ``trials.csv``, so it
    works for any study, Optuna-driven or not. Importances are normalised to sum to 1 within a
    group. Seeds are not a parameter: seed noise stays unexplained.
    """
    import optuna

    cfg = config or AnalysisConfig()
    notes: Notes = []
    params = list(study.swept)
    if not params:
        return pd.DataFrame(columns=IMPORTANCE_COLUMNS), ["no swept parameter: no parameter importance."]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        rows = _importance_rows(study, cfg, params, notes)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS), notes


def _distributions(g: pd.DataFrame, params: list[str], log_params: set[str]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, Any] = {}
    for p in params:
        v = g[p].dropna()
        if pd.api.types.is_bool_dtype(v) or not pd.api.types.is_numeric_dtype(v):
            dists[p] = CategoricalDistribution(sorted(v.astype(str).unique()))
        elif pd.api.types.is_integer_dtype(v):
            dists[p] = IntDistribution(int(v.min()), int(v.max()))
        else:
            log = p in log_params and float(v.min()) > 0
            dists[p] = FloatDistribution(float(v.min()), float(v.max()), log=log)
    return dists


def _importance_rows(study: Study, cfg: AnalysisConfig, params: list[str], notes: Notes) -> list[dict[str, Any]]:
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator

    rows = []
    for (crit, band), g in study.finished.groupby(["criterion", "band"], sort=False):
        varying = [p for p in params if g[p].astype(str).nunique() > 1]
        n_configs = g["config_id"].nunique()
        if n_configs < cfg.min_importance_configs or not varying:
            notes.append(f"{crit} / {band}: {n_configs} distinct configuration(s), {len(varying)} varying "
                         "parameter(s); too few for parameter importance.")
            continue
        if n_configs < 3 * len(varying):
            notes.append(f"{crit} / {band}: only {n_configs} distinct configurations for {len(varying)} parameters; "
                         "their effects are confounded, treat the importances as unreliable.")
        dists = _distributions(g, varying, study.log_params)
        ostudy = optuna.create_study(direction="maximize" if study.maximize else "minimize")
        for _, r in g.iterrows():
            values = {}
            for p, d in dists.items():
                if pd.isna(r[p]):  # a conditional parameter this trial did not have
                    continue
                if isinstance(d, CategoricalDistribution):
                    values[p] = str(r[p])
                elif isinstance(d, IntDistribution):
                    values[p] = int(r[p])
                else:
                    values[p] = float(r[p])
            ostudy.add_trial(optuna.trial.create_trial(params=values, distributions={p: dists[p] for p in values},
                                                       value=float(r[study.metric])))
        imp = optuna.importance.get_param_importances(ostudy, evaluator=FanovaImportanceEvaluator(seed=cfg.seed))
        if len(varying) == 1:
            notes.append(f"{crit} / {band}: only {varying[0]} varies; its importance is 1 by construction.")
        for p, v in imp.items():
            rows.append({"criterion": crit, "band": band, "param": p, "importance": float(v), "n_trials": len(g),
                         "n_configs": n_configs,
                         "evaluator": "optuna FanovaImportanceEvaluator"})
    return rows
