"""The judge: deviation kinds, their population distribution, and deviation amounts -> ratings.

*Students.* Each has a latent skill ``s ~ N(0, 1)``. Each performance deviation ``j`` draws
``u_j = rho * s + sqrt(1 - rho^2) * e_j`` and an intended amount
``lo_j + (hi_j - lo_j) * Phi(-u_j) ** gamma_j`` (:data:`DEVIATIONS`); the shared skill makes the
criteria correlate as in the FBA ratings.

*Judges.* Each criterion's latent score is a weighted sum of its standardised deviations
(:data:`JUDGE_WEIGHTS`), mixed with judge noise (a share of it common to all criteria of one
audition, the halo effect), and mapped through the empirical quantile function of the FBA rating
distribution of that band and criterion, so ratings take the FBA's values (multiples of 0.1 for
note and rhythm accuracy, 0.05 for musicality) with the FBA's marginal distribution. The skill
loading ``rho`` is calibrated so the mean correlation between the four criteria matches the FBA's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raympa import constants as C

@dataclass(frozen=True)
class Deviation:
    """One kind of performance deviation: its criterion and its population distribution."""

    criterion: str
    lo: float  # amount of the best players
    hi: float  # amount of the worst players
    gamma: float  # > 1 skews the population towards small amounts (most auditioners are decent)
    unit: str


# Ranges are ours (judged by ear to span "clean" to "struggling" for school-age players).
DEVIATIONS: dict[str, Deviation] = {
    "wrong_notes": Deviation("note_accuracy", 0.0, 0.30, 1.3, "fraction of notes"),
    "missed_notes": Deviation("note_accuracy", 0.0, 0.18, 1.3, "fraction of notes"),
    "extra_notes": Deviation("note_accuracy", 0.0, 0.12, 1.3, "inserted notes per note"),
    "onset_jitter": Deviation("rhythm_accuracy", 0.005, 0.07, 1.2, "s (sd of onset errors)"),
    "tempo_drift": Deviation("rhythm_accuracy", 0.0, 0.30, 1.2, "relative tempo change, start to end"),
    "rushed_dragged": Deviation("rhythm_accuracy", 0.0, 0.18, 1.2, "sd of log tempo factor per phrase"),
    "flat_dynamics": Deviation("musicality", 0.0, 1.0, 1.0, "0 = phrase arches, 1 = flat"),
    "intonation": Deviation("musicality", 4.0, 45.0, 1.2, "cents (RMS pitch error)"),
    "phrasing": Deviation("musicality", 0.0, 0.8, 1.2, "fraction of misplaced breaths"),
    "tone_noise": Deviation("tone_quality", 0.0, 1.0, 1.0, "0 = clean tone, 1 = breathy, unsteady"),
}

# Judge attention: weight of each standardised deviation in each criterion's score (ours).
JUDGE_WEIGHTS: dict[str, dict[str, float]] = {
    "note_accuracy": {"wrong_notes": 0.5, "missed_notes": 0.35, "extra_notes": 0.15},
    "rhythm_accuracy": {"onset_jitter": 0.35, "tempo_drift": 0.25, "rushed_dragged": 0.4},
    "musicality": {"flat_dynamics": 0.3, "intonation": 0.3, "phrasing": 0.4},
    "tone_quality": {"tone_noise": 0.6, "intonation": 0.4},
}
# Judge noise: share of a criterion's latent variance that is not explained by the deviations (ours;
# note accuracy is the least noisy so that it is learnable from pitch contours).
JUDGE_NOISE = {"note_accuracy": 0.2, "rhythm_accuracy": 0.3, "musicality": 0.4, "tone_quality": 0.4}
HALO = 0.5  # share of the judge noise common to the criteria of one audition (ours)

# Built-in rating distributions: value -> count of the usable FBA 2013-2018 technical-etude
# ratings (alto sax, clarinet, flute), from `raympa fba-index --annotations ../shared/fba`.
FBA_MARGINALS: dict[str, dict[str, dict[float, int]]] = {
    "middleschool": {
        "musicality": {0.0: 57, 0.05: 60, 0.1: 67, 0.15: 85, 0.2: 103, 0.25: 244, 0.3: 212, 0.35: 289, 0.4:
            270, 0.45: 215, 0.5: 231, 0.55: 153, 0.6: 128, 0.65: 113, 0.7: 97, 0.75: 94, 0.8:
            58, 0.85: 45, 0.9: 46, 0.95: 32, 1.0: 17},
        "note_accuracy": {0.0: 29, 0.1: 24, 0.2: 38, 0.3: 49, 0.4: 73, 0.5: 150, 0.6: 261, 0.7: 330, 0.8: 590,
            0.9: 627, 1.0: 445},
        "rhythm_accuracy": {0.0: 41, 0.1: 36, 0.2: 76, 0.3: 71, 0.4: 88, 0.5: 161, 0.6: 235, 0.7: 345, 0.8: 519,
            0.9: 673, 1.0: 371},
        "tone_quality": {0.0: 12, 0.05: 7, 0.07: 5, 0.1: 5, 0.13: 7, 0.15: 25, 0.2: 52, 0.25: 79, 0.27: 35,
            0.3: 166, 0.33: 72, 0.35: 198, 0.4: 288, 0.45: 166, 0.47: 146, 0.5: 142, 0.53: 111,
            0.55: 123, 0.6: 232, 0.65: 106, 0.67: 105, 0.7: 92, 0.73: 70, 0.75: 69, 0.8: 120,
            0.85: 37, 0.87: 54, 0.9: 26, 0.93: 38, 0.95: 15, 1.0: 13},
    },
    "symphonicband": {
        "musicality": {0.0: 46, 0.05: 81, 0.1: 35, 0.15: 100, 0.2: 147, 0.25: 214, 0.3: 95, 0.35: 100, 0.4:
            169, 0.45: 227, 0.5: 416, 0.55: 243, 0.6: 299, 0.65: 167, 0.7: 153, 0.75: 191, 0.8:
            126, 0.85: 117, 0.9: 78, 0.95: 29, 1.0: 3},
        "note_accuracy": {0.0: 41, 0.1: 58, 0.2: 52, 0.3: 133, 0.4: 240, 0.5: 417, 0.6: 485, 0.7: 646, 0.8: 633,
            0.9: 279, 1.0: 52},
        "rhythm_accuracy": {0.0: 42, 0.1: 77, 0.2: 54, 0.3: 141, 0.4: 239, 0.5: 427, 0.6: 479, 0.7: 600, 0.8: 651,
            0.9: 264, 1.0: 62},
        "tone_quality": {0.0: 36, 0.05: 25, 0.07: 3, 0.1: 23, 0.13: 7, 0.15: 58, 0.2: 93, 0.25: 116, 0.27: 22,
            0.3: 47, 0.33: 57, 0.35: 40, 0.4: 139, 0.45: 180, 0.47: 61, 0.5: 343, 0.53: 107,
            0.55: 193, 0.6: 362, 0.65: 90, 0.67: 175, 0.7: 90, 0.73: 96, 0.75: 157, 0.8: 237,
            0.85: 80, 0.87: 75, 0.9: 63, 0.93: 39, 0.95: 7, 1.0: 15},
    },
}
# Mean pairwise correlation of the four criteria over the same rows (0.657 and 0.776).
FBA_MEAN_CORRELATION = {"middleschool": 0.66, "symphonicband": 0.78}

DEMO_YEARS = (2013, 2014, 2015)  # one etude per year and instrument, like the FBA


@dataclass(frozen=True)
class JudgeModel:
    """Everything that turns deviation amounts into ratings (see the module docstring)."""

    band: str
    marginals: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]  # criterion -> (values, probs)
    skill_loading: float  # rho
    mean: dict[str, float] = field(default_factory=dict)  # deviation -> population mean
    sd: dict[str, float] = field(default_factory=dict)  # deviation -> population sd
    score_sd: dict[str, float] = field(default_factory=dict)  # criterion -> sd of its weighted sum
    target_correlation: float = 0.0
    achieved_correlation: float = 0.0

    def latent(self, amounts: pd.DataFrame, noise: np.ndarray | None = None) -> pd.DataFrame:
        """Judge latent scores (about N(0, 1)); higher = better. ``noise``: (n, 4) or (n, 5)
        standard normals (criterion-specific columns, then an optional common halo column)."""
        n = len(amounts)
        out = {}
        for j, crit in enumerate(C.RATED_COLUMNS):
            score = np.zeros(n)
            for dev, w in JUDGE_WEIGHTS[crit].items():
                score -= w * (amounts[dev].to_numpy(dtype=float) - self.mean[dev]) / self.sd[dev]
            score /= self.score_sd[crit]
            v = JUDGE_NOISE[crit]
            if noise is not None:
                eps = noise[:, j]
                if noise.shape[1] > len(C.RATED_COLUMNS):
                    eps = math.sqrt(1 - HALO) * eps + math.sqrt(HALO) * noise[:, len(C.RATED_COLUMNS)]
                score = math.sqrt(1 - v) * score + math.sqrt(v) * eps
            out[crit] = score
        return pd.DataFrame(out, index=amounts.index)

    def rate(self, amounts: pd.DataFrame, noise: np.ndarray | None = None) -> pd.DataFrame:
        """Quantised ratings in [0, 1] on the FBA's value grid."""
        from scipy.stats import norm

        lat = self.latent(amounts, noise)
        out = {}
        for crit in C.RATED_COLUMNS:
            values, probs = self.marginals[crit]
            cdf = np.cumsum(probs)
            u = norm.cdf(lat[crit].to_numpy())
            idx = np.minimum(np.searchsorted(cdf, u, side="left"), len(values) - 1)
            out[crit] = np.asarray(values)[idx]
        return pd.DataFrame(out, index=amounts.index)


def sample_amounts(rng: np.random.Generator, n: int, *, skill_loading: float) -> pd.DataFrame:
    """Skills and intended deviation amounts of ``n`` students (columns: skill + DEVIATIONS)."""
    from scipy.stats import norm

    skill = rng.standard_normal(n)
    e = rng.standard_normal((n, len(DEVIATIONS)))
    data = {"skill": skill}
    for k, (name, d) in enumerate(DEVIATIONS.items()):
        u = skill_loading * skill + math.sqrt(1 - skill_loading**2) * e[:, k]
        data[name] = d.lo + (d.hi - d.lo) * norm.cdf(-u) ** d.gamma
    return pd.DataFrame(data)


def _marginals_from_csv(annotations: str | Path, band: str) -> tuple[dict, float]:
    from raympa import fba

    scores = fba.read_scores(annotations, "technical_etude")
    rows = scores[(scores["band"] == band) & scores["instrument"].isin(C.INSTRUMENTS)]
    cols = {c: f"technical_etude_{fba.CSV_CRITERIA[c]}" for c in C.RATED_COLUMNS}
    sub = rows[list(cols.values())].rename(columns={v: k for k, v in cols.items()})
    sub = sub[((sub >= 0) & (sub <= 1)).all(axis=1)]
    if len(sub) < 50:
        raise ValueError(f"{annotations}: only {len(sub)} valid {band} rating rows; cannot fit a distribution")
    marg = {}
    for crit in C.RATED_COLUMNS:
        vc = sub[crit].round(2).value_counts().sort_index()
        marg[crit] = {float(k): int(v) for k, v in vc.items()}
    corr = sub.corr().to_numpy()
    return marg, float(corr[np.triu_indices(len(C.RATED_COLUMNS), 1)].mean())


def calibrate_judge(band: str, *, annotations: str | Path | None = None, n_mc: int = 20_000) -> JudgeModel:
    """The judge model of a band: rating marginals (built-in, or from the FBA CSV), population
    standardisation by Monte Carlo, and the skill loading that reproduces the FBA's mean
    correlation between criteria (bisection). Deterministic (fixed internal seed)."""
    if annotations is not None:
        counts, target = _marginals_from_csv(annotations, band)
    else:
        counts, target = FBA_MARGINALS[band], FBA_MEAN_CORRELATION[band]
    marginals = {}
    for crit in C.RATED_COLUMNS:
        vals = np.array(sorted(counts[crit]))
        p = np.array([counts[crit][v] for v in vals], dtype=float)
        marginals[crit] = (tuple(float(v) for v in vals), tuple(float(x) for x in p / p.sum()))

    def build(rho: float) -> tuple[JudgeModel, float]:
        rng = np.random.default_rng(12345)
        amounts = sample_amounts(rng, n_mc, skill_loading=rho)
        mean = {k: float(amounts[k].mean()) for k in DEVIATIONS}
        sd = {k: float(amounts[k].std()) or 1.0 for k in DEVIATIONS}
        ones = {c: 1.0 for c in C.RATED_COLUMNS}
        m = JudgeModel(band, marginals, rho, mean, sd, ones)
        raw = m.latent(amounts)
        m = JudgeModel(band, marginals, rho, mean, sd, {c: float(raw[c].std()) for c in C.RATED_COLUMNS})
        noise = rng.standard_normal((n_mc, len(C.RATED_COLUMNS) + 1))
        corr = m.rate(amounts, noise).corr().to_numpy()
        return m, float(corr[np.triu_indices(len(C.RATED_COLUMNS), 1)].mean())

    lo, hi = 0.0, 0.97
    model, got = build(hi)
    if got < target:
        warnings.warn(f"{band}: the judge model reaches a mean criterion correlation of {got:.2f} at most "
                      f"(target {target:.2f})", stacklevel=2)
    else:
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            model, got = build(mid)
            lo, hi = (mid, hi) if got < target else (lo, mid)
    model = JudgeModel(band, marginals, model.skill_loading, model.mean, model.sd, model.score_sd,
                       target_correlation=target, achieved_correlation=got)
    return model


