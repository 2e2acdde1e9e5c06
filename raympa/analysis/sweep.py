"""Sweep views: one row per finished trial (slice plots), and parameter importance per sub-space
of the conditional search space.

A study's search space is conditional: the margin s and C exist only for the paper's weighted
contrastive term, tau only for Rank-N-Contrast, lambda only for the joint model. A trial that does
not use a parameter has no value for it (``trials.csv`` still holds the TrainConfig default, which
the model ignored), so importance is computed where a parameter exists:

* each trial's active parameters and their distributions come from the study's Optuna journal
  (``optuna.journal``, the conditional distributions the sampler used); without a journal, from
  ``trials.csv`` with the parameters whose ``when`` condition (``study.json`` search space) does not
  hold blanked;
* sub-spaces: "all trials" (the parameters every trial has), one per value of each categorical
  parameter that switches others on or off (e.g. ``model=contrastive-jl``, ``contrastive=weighted``),
  and each leaf of the conditional tree (the trials sharing one set of active parameters).

Importance is Optuna's fANOVA evaluator (``optuna.importance.FanovaImportanceEvaluator``, a random
forest fitted to the finished trials; Hutter et al. 2014), normalised to sum to 1 per sub-space.
Seeds, criteria and bands are not parameters: groups are criterion x band, seed noise stays
unexplained.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from raympa import studyfolder
from raympa.analysis.load import AnalysisConfig, Notes, Study, condition_holds
from raympa.analysis.selection import r2_protocols

IMPORTANCE_COLUMNS = ["criterion", "band", "subspace", "param", "importance", "n_trials", "n_configs", "source",
                      "evaluator"]
NOT_PARAMS = ("seed", "criterion", "band", "repeat")  # grid axes or groups, never a parameter's effect
ALL_TRIALS = "all trials"
EVALUATOR = "optuna FanovaImportanceEvaluator"

Active = dict[str, dict[str, Any]]  # trial_id -> {parameter: value} of the parameters the trial used


def sweep_table(study: Study) -> tuple[pd.DataFrame, Notes]:
    """One row per finished trial: swept parameters, selection metric, test R²."""
    fin = study.finished
    cols = ["trial_id", "model", "criterion", "band", "seed", "config_id",
            *[c for c in study.swept if c != "model"], study.metric,
            *[p for p in r2_protocols(fin.columns) if p != study.metric]]
    notes: Notes = []
    if not [c for c in study.swept if c != "model"]:
        notes.append("no training parameter other than the model varies among finished trials: no sweep views.")
    return fin[list(dict.fromkeys(cols))].reset_index(drop=True), notes


# ----------------------------------------------------------------------------- active parameters
def journal_params(study: Study) -> tuple[Active, dict[str, Any]] | None:
    """Active parameters of each journal trial that names its ``trial_id``, and their distributions.

    None when the study has no journal or it cannot be read.
    """
    path = studyfolder.journal_path(study.path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        names = optuna.get_all_study_names(storage)
        name = study.meta.get("name") if study.meta.get("name") in names else (names[0] if names else None)
        if name is None:
            return None
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001  (an unreadable journal: importance falls back to trials.csv)
        return None
    finally:
        optuna.logging.set_verbosity(verbosity)
    active: Active = {}
    dists: dict[str, Any] = {}
    for t in trials:
        tid = t.user_attrs.get("trial_id")
        if tid is None:
            continue
        active[str(tid)] = {k: v for k, v in t.params.items() if k not in NOT_PARAMS}
        for k, d in t.distributions.items():
            if k not in NOT_PARAMS:
                dists.setdefault(k, d)
    return active, dists


def _described_distribution(desc: dict[str, Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = desc.get("kind")
    if kind == "categorical" and desc.get("choices"):
        return CategoricalDistribution(list(desc["choices"]))
    if kind in ("float", "int") and desc.get("low") is not None and desc.get("high") is not None:
        cls = IntDistribution if kind == "int" else FloatDistribution
        cast = int if kind == "int" else float
        return cls(cast(desc["low"]), cast(desc["high"]), log=bool(desc.get("log")))
    return None


def _observed_distribution(values: pd.Series, log: bool) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    v = values.dropna()
    if pd.api.types.is_bool_dtype(v) or not pd.api.types.is_numeric_dtype(v):
        return CategoricalDistribution(sorted(v.astype(str).unique()))
    if pd.api.types.is_integer_dtype(v):
        return IntDistribution(int(v.min()), int(v.max()))
    return FloatDistribution(float(v.min()), float(v.max()), log=log and float(v.min()) > 0)


def csv_params(study: Study, trials: pd.DataFrame) -> tuple[Active, dict[str, Any]]:
    """Active parameters from ``trials.csv``: the searched parameters of ``study.json`` (else the
    swept columns), blanked where their ``when`` condition does not hold."""
    searched = {k: v for k, v in study.searched.items() if k in trials.columns and k not in NOT_PARAMS}
    names = list(searched) or [p for p in study.swept if p not in NOT_PARAMS]
    dists = {}
    for p in names:
        dists[p] = _described_distribution(searched.get(p, {})) or _observed_distribution(
            trials[p], p in study.log_params)
    active: Active = {}
    for _, row in trials.iterrows():
        active[str(row["trial_id"])] = {
            p: row[p] for p in names if not pd.isna(row[p]) and condition_holds(searched.get(p, {}).get("when"), row)
        }
    return active, dists


def _cast(value: Any, dist: Any) -> Any:
    """A trials.csv value as its distribution holds it (choices keep their type), or None."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return next((c for c in dist.choices if str(c) == str(value)), None)
    value = int(value) if isinstance(dist, IntDistribution) else float(value)
    return value if dist.low <= value <= dist.high else None


# ----------------------------------------------------------------------------- sub-spaces
def subspaces(active: Active, switches: set[str]) -> list[tuple[str, list[str], list[str]]]:
    """``(label, trial_ids, parameters)`` of every sub-space of one group's trials.

    Args:
        active: each trial's active parameters.
        switches: the categorical parameters (only those can switch others on or off).

    Parameters are those every trial of the sub-space has and that take more than one value there.
    """
    ids = list(active)
    common = set.intersection(*(set(active[t]) for t in ids)) if ids else set()
    out: list[tuple[str, list[str], list[str]]] = [(ALL_TRIALS, ids, sorted(common))]
    used = []
    for p in sorted(common & switches):
        values = {str(active[t][p]) for t in ids}
        slices = {v: [t for t in ids if str(active[t][p]) == v] for v in sorted(values)}
        unlocks = any(set.intersection(*(set(active[t]) for t in s)) - common for s in slices.values())
        if len(values) > 1 and unlocks:
            used.append(p)
            for v, s in slices.items():
                out.append((f"{p}={v}", s, sorted(set.intersection(*(set(active[t]) for t in s)) - {p})))
    leaves: dict[frozenset[str], list[str]] = {}
    for t in ids:
        leaves.setdefault(frozenset(active[t]), []).append(t)
    seen = {frozenset(s) for _, s, _ in out}
    for names, s in leaves.items():
        if frozenset(s) in seen:
            continue
        label = ", ".join(f"{p}={active[s[0]][p]}" for p in used if p in names)
        out.append((label or ", ".join(sorted(names)), s, sorted(names - set(used))))
    return [(label, s, [p for p in params if len({str(active[t][p]) for t in s}) > 1]) for label, s, params in out]


# ----------------------------------------------------------------------------- importance
def _fanova(values: dict[str, dict[str, Any]], target: dict[str, float], dists: dict[str, Any],
            *, maximize: bool, seed: int) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    ostudy = optuna.create_study(direction="maximize" if maximize else "minimize")
    for tid, params in values.items():
        ostudy.add_trial(optuna.trial.create_trial(params=params, distributions={p: dists[p] for p in params},
                                                   value=target[tid]))
    return optuna.importance.get_param_importances(ostudy, evaluator=FanovaImportanceEvaluator(seed=seed))


def _group_rows(g: pd.DataFrame, active: Active, dists: dict[str, Any], study: Study, cfg: AnalysisConfig,
                notes: Notes) -> list[dict[str, Any]]:
    crit, band = g["criterion"].iloc[0], g["band"].iloc[0]
    config_of = dict(zip(g["trial_id"].astype(str), g["config_id"]))
    target = dict(zip(g["trial_id"].astype(str), g[study.metric].astype(float)))
    rows, thin, confounded = [], [], []
    from optuna.distributions import CategoricalDistribution

    switches = {p for p, d in dists.items() if isinstance(d, CategoricalDistribution)}
    for label, ids, params in subspaces({t: active[t] for t in config_of if t in active}, switches):
        n_configs = len({config_of[t] for t in ids})
        if n_configs < cfg.min_importance_configs or not params:
            thin.append(f"{label} ({n_configs} configuration(s), {len(params)} varying parameter(s))")
            continue
        if n_configs < 3 * len(params):
            confounded.append(f"{label} ({n_configs} for {len(params)})")
        if len(params) == 1:
            notes.append(f"{crit} / {band}, {label}: only {params[0]} varies; its importance is 1 by construction.")
        values = {}
        for t in ids:
            cast = {p: _cast(active[t][p], dists[p]) for p in params}
            values[t] = {p: v for p, v in cast.items() if v is not None}
        imp = _fanova(values, target, dists, maximize=study.maximize, seed=cfg.seed)
        rows += [{"criterion": crit, "band": band, "subspace": label, "param": p, "importance": float(v),
                  "n_trials": len(ids), "n_configs": n_configs, "evaluator": EVALUATOR} for p, v in imp.items()]
    if confounded:
        notes.append(f"{crit} / {band}: fewer than 3 distinct configurations per parameter in " + "; ".join(confounded)
                     + ": their effects are confounded, treat those importances as unreliable.")
    if thin:
        notes.append(f"{crit} / {band}: too few configurations for parameter importance in " + "; ".join(thin) + ".")
    return rows


def param_importance(study: Study, config: AnalysisConfig | None = None) -> tuple[pd.DataFrame, Notes]:
    """Importance of each searched parameter for the selection metric, per criterion x band x sub-space.

    Returns:
        ``criterion, band, subspace, param, importance, n_trials, n_configs, source, evaluator``;
        ``source`` is ``optuna.journal`` or ``trials.csv`` (inactive parameters blanked).
    """
    import optuna

    cfg = config or AnalysisConfig()
    fin = study.finished
    notes: Notes = []
    from_journal = journal_params(study)
    if from_journal is not None and set(from_journal[0]) & set(fin["trial_id"].astype(str)):
        active, dists = from_journal
        source = "optuna.journal"
        left = fin[~fin["trial_id"].astype(str).isin(active)]
        if len(left):
            notes.append(f"{len(left)} finished trial(s) not in the Optuna journal (e.g. the baseline): "
                         "left out of parameter importance.")
        fin = fin[fin["trial_id"].astype(str).isin(active)]
    else:
        source = "trials.csv"
        choices = study.searched.get("model", {}).get("choices")
        if choices:  # a baseline beside the search is not part of the searched space
            fin = fin[fin["model"].isin([str(c) for c in choices])]
        active, dists = csv_params(study, fin)
        notes.append("no Optuna journal with trial ids: active parameters read from trials.csv, those a trial "
                     "did not use (its search-space condition fails) left blank.")
    if not dists or fin.empty:
        return pd.DataFrame(columns=IMPORTANCE_COLUMNS), ["no swept parameter: no parameter importance."]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        rows = []
        for _, g in fin.groupby(["criterion", "band"], sort=False):
            rows += _group_rows(g, active, dists, study, cfg, notes)
    finally:
        optuna.logging.set_verbosity(verbosity)
    df = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)
    df["source"] = source
    return df, notes
