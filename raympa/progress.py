"""The study's console: one line per finished trial, with its metric and configuration."""

from __future__ import annotations

import math
from typing import Any

def trial_lines(metric: str) -> Any:
    """A Tune callback printing one line per finished or failed trial, with its ``metric``.

    It replaces Tune's periodic status tables (``RunConfig(verbose=0)``); Tune's result files
    (``result.json``, ``progress.csv``) are written as ever.
    """
    from ray import tune

    class TrialLines(tune.Callback):
        def __init__(self) -> None:
            self.n_done = 0

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trials, trial, "done")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trials, trial, "ERROR")

        def _line(self, trials: list, trial: Any, what: str) -> None:
            self.n_done += 1
            result = trial.last_result or {}
            value = result.get(metric)
            shown = f"{metric}={value:.4f}" if isinstance(value, float) and math.isfinite(value) else f"{metric}=n/a"
            config = " ".join(f"{k}={_short(trial.config[k])}" for k in _SHOWN if k in trial.config)
            print(f"[raympa] trial {self.n_done}/{len(trials)} {trial.trial_id} {what} {shown} "
                  f"epochs={result.get('training_iteration', 0)} {config}", flush=True)

    return TrialLines()


_SHOWN = ("model", "criterion", "band", "seed", "contrastive", "margin", "n_bins", "rnc_temperature", "jl_lambda", "lr")


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
