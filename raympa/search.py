"""The study's search-space language and its two spaces.

* :class:`Param` and :class:`SearchSpace` -- a declarative, conditional search space, used as
  Optuna's define-by-run function (``OptunaSearch``) and for the distributions of the Optuna
  journal (a parameter a configuration does not use has no distribution, so it is missing there,
  not set to its default).
* :func:`margin_sweep_space` -- the sweep of s, C, lambda, lr and the contrastive term.
* :func:`paper_grid` -- the grid of Seshadri & Lerch (2021, section 4.2): models x criteria x
  bands x seeds, as a Tune ``param_space``.

Cheap to import: optuna and ray are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from raympa import constants as C
from raympa.studyfolder import FAILED, METRIC, MODE, RESULT_COLUMNS, plain

if TYPE_CHECKING:
    import pandas as pd

CONTRASTIVE_MODELS = tuple(m for m in C.PAPER_MODELS if m != C.BASELINE_MODEL)  # the paper's contrastive models
# ours: the reference-informed model searched beside each contrastive model (``reference`` given)
INFORMED_PARTNERS = {"contrastive": "si-contrastive", "contrastive-jl": "si-contrastive-jl"}
INFORMED_REFERENCE = "informed_reference"  # grid config key: the reference mode of the informed models only
JOINT_MODELS = ("contrastive-jl", "si-contrastive-jl")  # the models with a jl_lambda


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        name: TrainConfig field.
        kind: ``float`` / ``int`` (``low``..``high``, ``log`` scale) or ``categorical`` (``choices``).
        when: condition ``(other_param, allowed_values)``: searched only when it holds.
        note: where the range comes from (goes to study.json).
    """

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, tuple[Any, ...]] | None = None
    note: str = ""

    def active(self, values: Mapping[str, Any]) -> bool:
        return self.when is None or values.get(self.when[0]) in self.when[1]

    def distribution(self) -> Any:
        """The matching ``optuna.distributions`` object."""
        from optuna import distributions as D

        if self.kind == "categorical":
            return D.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return D.IntDistribution(int(self.low), int(self.high), log=self.log)
        return D.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
        if self.when:
            d["when"] = {self.when[0]: list(self.when[1])}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class SearchSpace:
    """Searched parameters (in suggestion order) plus constant TrainConfig fields.

    ``baseline``: when given, the first Optuna trial (number 0) is this fixed configuration
    (with the constants), suggesting nothing: the reference the searched configurations are
    compared with, trained with the same seeds and data.
    """

    params: tuple[Param, ...]
    constants: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None

    def __call__(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run: suggest the active parameters, return the constants."""
        if self.baseline is not None and trial.number == 0:
            return {**self.constants, **self.baseline}
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "categorical":
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
        return dict(self.constants)

    def distributions(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna distributions of the parameters active for ``values`` (a trial's config).

        Empty for a configuration from outside the space (the baseline: a categorical value
        that is not among the choices).
        """
        active = [p for p in self.params if p.active(values) and p.name in values]
        if any(p.kind == "categorical" and values[p.name] not in p.choices for p in active):
            return {}
        return {p.name: p.distribution() for p in active}

    def describe(self) -> dict[str, Any]:
        return {
            "searched": {p.name: p.describe() for p in self.params},
            "constants": dict(self.constants),
            **({"baseline": dict(self.baseline)} if self.baseline is not None else {}),
        }


def margin_sweep_space(
    *,
    models: Sequence[str] = CONTRASTIVE_MODELS,
    terms: Sequence[str] = ("weighted", "rnc"),
    baseline: bool = False,
    reference: str = "none",
    **constants: Any,
) -> SearchSpace:
    """The margin sweep: s, C, lambda, lr and the contrastive term, for the two contrastive models.

    Ranges (ours, around the paper's and the original code's values, section 3.2/4.2):

    * ``margin`` s: 0.05-4, log (the paper gives no s; original code: 0.5). The target distance
      of two embeddings is s * |bin_i - bin_j|, so with C = 5 the largest is 4 s; embeddings are
      means of ReLU features with distances of order 1, and the range spans "collapsed" to "far apart".
    * ``n_bins`` C: 2-10 (paper: C = 5 as its example; original code: 5): from a good/bad split
      to 0.1-wide rating bins (the FBA ratings are quantised to about 0.1).
    * ``rnc_temperature`` tau: 0.5-4, log (Zha et al. 2023 default tau = 2), for Rank-N-Contrast.
    * ``jl_lambda`` lambda: 0.1-10, log (paper: 1, L = L_MSE + L_C); only for the joint model.
    * ``lr``: 5e-4 - 5e-2, log (paper 0.005 for the joint model and the two-step head; the
      two-step encoder keeps its automatic ``encoder_lr``: the paper's 0.1, 0.01 for the informed models).

    Args:
        models: TrainConfig models searched (default both contrastive models).
        terms: contrastive terms searched (``weighted`` = paper, ``rnc`` = Rank-N-Contrast).
        baseline: the first trial is PCConvNet (Pati et al. 2018) with TrainConfig's defaults
            and the same constants (seeds, data, epochs): the reference of the sweep.
        reference: ``none`` (the paper's setting), or ``table`` / ``peers``: each contrastive
            model's reference-informed partner (:data:`INFORMED_PARTNERS`) is searched beside it
            with ``reference`` set in its configuration (the baseline stays PCConvNet).
        **constants: fixed TrainConfig fields (criterion, epochs ...) and ``band``.
    """
    weighted = ("contrastive", ("weighted",))
    informed = tuple(INFORMED_PARTNERS[m] for m in models if m in INFORMED_PARTNERS) if reference != "none" else ()
    models = tuple(models) + tuple(m for m in informed if m not in models)
    with_reference = tuple(m for m in models if m in C.REFERENCE_MODELS)
    reference_param = (Param("reference", "categorical", choices=(reference,), when=("model", with_reference),
                             note="ours: the reference mode of the informed models"),) if with_reference else ()
    return SearchSpace(
        params=(
            Param("model", "categorical", choices=tuple(models), note="joint (contrastive-jl) or two-step (contrastive)"),
            Param("contrastive", "categorical", choices=tuple(terms), note="paper: weighted; rnc = Zha et al. 2023"),
            Param("margin", "float", 0.05, 4.0, log=True, when=weighted, note="paper: no value; code: s = 0.5"),
            Param("n_bins", "int", 2, 10, when=weighted, note="paper: C = 5 (its example); code: 5"),
            Param("rnc_temperature", "float", 0.5, 4.0, log=True, when=("contrastive", ("rnc",)),
                  note="Zha et al. 2023: tau = 2"),
            Param("jl_lambda", "float", 0.1, 10.0, log=True, when=("model", JOINT_MODELS),
                  note="paper: 1 (L = L_MSE + L_C)"),
            Param("lr", "float", 5e-4, 5e-2, log=True, note="paper 0.005"),
            *reference_param,
        ),
        constants=dict(constants),
        baseline={"model": C.BASELINE_MODEL} if baseline else None,
    )


def paper_grid(
    *,
    models: Sequence[str] = C.PAPER_MODELS,
    criteria: Sequence[str] = C.CRITERIA,
    bands: Sequence[str] = C.STUDY_BANDS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch_seeds: bool = True,
    reference: str = "none",
    **constants: Any,
) -> dict[str, Any]:
    """Tune ``param_space`` of the paper's grid (section 4.2): models x criteria x bands x seeds.

    With ``batch_seeds`` (default) each model x criterion x band is one trial that trains all
    ``seeds`` together as one batched model (config key ``seeds``); without, every seed is a
    trial of its own (a grid axis). The other TrainConfig fields keep their defaults unless
    given in ``constants``. With ``reference`` ``table`` or ``peers`` the grid gains the
    reference-informed models (``constants.REFERENCE_MODELS``, ours) as extra models, each
    configuration's ``reference`` set by its model (config key :data:`INFORMED_REFERENCE`,
    read by ``raympa.study.split_config``; paper models keep ``none``).
    """
    from ray import tune

    seed_list = [int(s) for s in seeds]
    model_list = list(models) + ([m for m in C.REFERENCE_MODELS if m not in models] if reference != "none" else [])
    return {
        "model": tune.grid_search(model_list),
        **({INFORMED_REFERENCE: reference} if reference != "none" else {}),
        "criterion": tune.grid_search(list(criteria)),
        "band": tune.grid_search(list(bands)),
        **({"seeds": seed_list} if batch_seeds else {"seed": tune.grid_search(seed_list)}),
        **constants,
    }


def grid_distributions(param_space: Mapping[str, Any]) -> dict[str, Any]:
    """Categorical Optuna distributions for the ``grid_search`` entries of a param space."""
    from optuna.distributions import CategoricalDistribution

    out = {}
    for k, v in param_space.items():
        if isinstance(v, dict) and set(v) == {"grid_search"}:
            out[k] = CategoricalDistribution(list(v["grid_search"]))
    return out


def describe_param_space(param_space: Mapping[str, Any]) -> dict[str, Any]:
    """study.json's description of a Tune param space: the grid entries and the constants."""
    searched = {k: {"grid": list(v["grid_search"])} for k, v in param_space.items()
                if isinstance(v, dict) and set(v) == {"grid_search"}}
    constants = {k: v for k, v in param_space.items() if k not in searched}
    return {"searched": searched, "constants": constants}


# ----------------------------------------------------------------------------- the Optuna record
def optuna_search(search: SearchSpace, *, journal: Path, study_name: str, seed: int) -> Any:
    """``OptunaSearch`` with TPE that writes its trials to ``journal`` while the study runs.

    The sampler is TPE with ``constant_liar=True``: a configuration still running counts as a
    poor result, so trials proposed at the same time do not all crowd the same spot. The
    journal (``JournalFileBackend``) is what ``optuna-dashboard`` reads, live; a resumed study
    loads the same Optuna study from it.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return OptunaSearch(space=search, metric=METRIC, mode=MODE, sampler=sampler, study_name=study_name,
                        storage=storage)


def export_optuna(
    trials: "pd.DataFrame",
    path: Path,
    *,
    study_name: str,
    distributions: Callable[[Mapping[str, Any]], dict],
    metric: str = METRIC,
) -> Path:
    """Write a finished grid study to an Optuna journal file (``optuna-dashboard PATH`` browses it).

    One Optuna trial per Tune trial: COMPLETE with ``metric`` as value, FAIL for ERROR trials,
    PRUNED for trials stopped before their final report (ASHA). The trial id, seed, band and test
    metrics go to user attributes. The file is rewritten from scratch (one writer, at the end).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    path = Path(path)
    if path.exists():
        path.unlink()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize" if MODE == "max" else "minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is marked experimental
        study.set_metric_names([metric])
    for row in trials.to_dict("records"):
        values = {k: plain(v) for k, v in row.items()}
        dists = distributions(values)
        params = {k: values[k] for k in dists}
        value = values.get(metric)
        if row["status"] == FAILED:
            state, value = TrialState.FAIL, None
        elif not row.get("final") or value is None or not math.isfinite(float(value)):
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.COMPLETE, float(value)
        attrs = {k: values.get(k) for k in ("trial_id", "seed", "band", "criterion", "error", *RESULT_COLUMNS)}
        attrs = {k: v for k, v in attrs.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        study.add_trial(optuna.trial.create_trial(state=state, value=value, params=params,
                                                  distributions=dists, user_attrs=attrs))
    return path


def complete_journal(trials: "pd.DataFrame", path: Path, *, study_name: str,
                     distributions: Callable[[Mapping[str, Any]], dict]) -> int:
    """Add to a searched study's journal the configurations that finished only after a resume.

    ``OptunaSearch`` tells Optuna each configuration once; one that failed and then finished in
    a resumed run stays FAIL there. Such a configuration gets one more COMPLETE trial with the
    mean metric of its seeds (user attribute ``resumed``). Returns the trials added.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(path))))
    done = {tuple(sorted(t.params.items())) for t in study.trials if t.state == TrialState.COMPLETE}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in trials.to_dict("records"):
        values = {k: plain(v) for k, v in row.items()}
        dists = distributions(values)
        groups.setdefault(tuple(sorted((k, values[k]) for k in dists)), []).append(values)
    added = 0
    for key, rows in groups.items():
        scores = [float(r.get(METRIC, math.nan)) for r in rows]
        if key in done or any(r["status"] == FAILED or not r.get("final") for r in rows):
            continue
        if not all(math.isfinite(s) for s in scores):
            continue
        params = dict(key)
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=sum(scores) / len(scores), params=params,
            distributions=distributions(params), user_attrs={"resumed": True}))
        added += 1
    return added
