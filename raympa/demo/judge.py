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
    """One kind of performance deviation: its criterion, its population distribution, and what
    a judge hears in it."""

    criterion: str
    lo: float  # amount of the best players
    hi: float  # amount of the worst players
    gamma: float  # > 1 skews the population towards small amounts (most auditioners are decent)
    unit: str
    hears: str  # what the judge hears (and where it shows in a pitch contour)
    skill_share: float = 1.0  # how much of the skill loading it takes: < 1 = mostly a habit or style


# Ranges are ours (chosen to span "clean" to "struggling" for school-age players). Deviations that
# change a contour's global statistics (restarts, hesitations, choppy playing) are rare or mostly a
# matter of style, so that the ratings show only against the score; wrong, extra and cracked notes
# use the etude's own pitches, and a misplaced breath moves by a few notes, for the same reason.
DEVIATIONS: dict[str, Deviation] = {
    "wrong_notes": Deviation("note_accuracy", 0.0, 0.22, 1.3, "fraction of played notes",
                             "a wrong pitch (a neighbour among the etude's own pitches, a missed accidental) "
                             "played in tune; a quarter corrected mid-note; falls on hard notes"),
    "fluffed_notes": Deviation("note_accuracy", 0.0, 0.14, 1.3, "fraction of played notes",
                               "a cracked, breathy note that starts on a neighbouring pitch (up to 2.5 "
                               "semitones off) and slides in; rarely a squeak (clarinet, a twelfth up) or an "
                               "octave slip (sax, flute)"),
    "extra_notes": Deviation("note_accuracy", 0.0, 0.05, 1.3, "inserted notes per note",
                             "a short neighbour note (one of the etude's pitches) squeezed in before a hard note"),
    "onset_jitter": Deviation("rhythm_accuracy", 0.004, 0.045, 1.2, "s (sd of onset errors)",
                              "uneven notes against the student's own beat"),
    "rhythm_errors": Deviation("rhythm_accuracy", 0.0, 0.16, 1.3, "fraction of played notes",
                               "a misread rhythm: an onset a quarter to half of its note early or late"),
    "tempo_instability": Deviation("rhythm_accuracy", 0.0, 0.12, 1.2, "sd of log tempo factor per phrase",
                                   "phrases rushed or dragged against the student's own tempo"),
    "tempo_drift": Deviation("rhythm_accuracy", 0.0, 0.20, 1.2, "relative tempo change, start to end",
                             "an accelerando or ritardando over the etude"),
    "hesitations": Deviation("rhythm_accuracy", 0.0, 0.01, 3.0, "pauses per note",
                             "a 0.15-0.5 s stop before a hard note", skill_share=0.2),
    "restarts": Deviation("rhythm_accuracy", 0.0, 0.6, 4.0, "expected restarts per etude",
                          "a stop, a breath, and the bar played again from its start", skill_share=0.2),
    "mechanical_timing": Deviation("musicality", 0.0, 1.0, 1.0, "0 = shaped phrases, 1 = metronomic",
                                   "no push into the phrase and no easing at its end"),
    "vibrato": Deviation("musicality", 0.0, 1.0, 1.0, "0 = steady, 1 = erratic",
                         "vibrato of uneven rate and depth note to note (clarinet: an unsteady held pitch)"),
    "legato": Deviation("musicality", 0.0, 1.0, 1.0, "share of connected notes played detached",
                        "notes cut short, a silence before the next (otherwise connected notes sound as "
                        "one tone, tongued or slurred)", skill_share=0.25),
    "flat_dynamics": Deviation("musicality", 0.0, 1.0, 1.0, "0 = phrase arches, 1 = flat",
                               "no crescendo into the phrase and back (not in a pitch contour)"),
    "phrasing": Deviation("musicality", 0.0, 0.6, 1.2, "fraction of misplaced breaths",
                          "a breath taken 1-3 notes early or late: in the middle of a figure, the phrase "
                          "end run into the next phrase"),
    "intonation": Deviation("musicality", 3.0, 16.0, 1.2, "cents (RMS pitch error per note)",
                            "notes out of tune with each other (apart from the instrument's overall tuning)"),
    "tone_noise": Deviation("tone_quality", 0.0, 1.0, 1.0, "0 = clean tone, 1 = breathy, unsteady",
                            "breath noise and an unsteady level (not in a pitch contour)"),
}

# Judge attention: weight of each standardised deviation in each criterion's score (ours).
JUDGE_WEIGHTS: dict[str, dict[str, float]] = {
    "note_accuracy": {"wrong_notes": 0.55, "fluffed_notes": 0.32, "extra_notes": 0.13},
    "rhythm_accuracy": {"onset_jitter": 0.2, "rhythm_errors": 0.3, "tempo_instability": 0.2, "tempo_drift": 0.1,
                        "hesitations": 0.08, "restarts": 0.08},
    "musicality": {"mechanical_timing": 0.25, "vibrato": 0.15, "legato": 0.08, "flat_dynamics": 0.2,
                   "phrasing": 0.17, "intonation": 0.15},
    "tone_quality": {"tone_noise": 0.7, "intonation": 0.3},
}
# Judge noise: share of a criterion's latent variance that is not explained by the deviations (ours;
# note accuracy is the least noisy so that it is learnable from pitch contours).
JUDGE_NOISE = {"note_accuracy": 0.2, "rhythm_accuracy": 0.25, "musicality": 0.4, "tone_quality": 0.4}


@dataclass(frozen=True)
class BandStandard:
    """How a band's auditions differ (ours, after Seshadri & Lerch 2021, section 5.1: symphonic
    band auditions are longer, more complex, by more skilled players, and harder to assess)."""

    deviation_scale: float  # multiplies every amount above its best value: skilled players err less per note
    extra_noise: float  # added to every criterion's judge-noise share: a stricter standard, finer distinctions


BAND_STANDARDS = {
    "middleschool": BandStandard(deviation_scale=1.0, extra_noise=0.0),
    "symphonicband": BandStandard(deviation_scale=0.8, extra_noise=0.08),
}
# A deviation's standardised amount counts at most about Z_CAP (soft: Z_CAP * tanh(z / Z_CAP)): one
# restart, far above the population's few, lowers the rhythm rating without drowning the rest (ours).
Z_CAP = 3.0
HALO = 0.8  # share of the judge noise common to the criteria of one audition (ours)

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

# Tempo choice: each student plays at exp(x) times the marked tempo, x ~ N(0, TEMPO_SPREAD^2),
# correlated TEMPO_SKILL with skill (weaker players slower, loosely). Not judged: rhythm accuracy
# is heard against the student's own tempo (ours).
TEMPO_SPREAD = 0.13
TEMPO_SKILL = 0.1


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
    noise_share: dict[str, float] = field(default_factory=dict)  # criterion -> judge-noise share (JUDGE_NOISE)

    def latent(self, amounts: pd.DataFrame, noise: np.ndarray | None = None) -> pd.DataFrame:
        """Judge latent scores (about N(0, 1)); higher = better. ``noise``: (n, 4) or (n, 5)
        standard normals (criterion-specific columns, then an optional common halo column)."""
        n = len(amounts)
        out = {}
        for j, crit in enumerate(C.RATED_COLUMNS):
            score = np.zeros(n)
            for dev, w in JUDGE_WEIGHTS[crit].items():
                z = (amounts[dev].to_numpy(dtype=float) - self.mean[dev]) / self.sd[dev]
                score -= w * Z_CAP * np.tanh(z / Z_CAP)  # a judge's penalty saturates
            score /= self.score_sd[crit]
            v = self.noise_share.get(crit, JUDGE_NOISE[crit])
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


def sample_amounts(rng: np.random.Generator, n: int, *, skill_loading: float,
                   band: str = "middleschool") -> pd.DataFrame:
    """Skills, tempo choices and intended deviation amounts of ``n`` students of a band
    (columns: ``skill``, ``tempo_factor``, then :data:`DEVIATIONS`)."""
    from scipy.stats import norm

    scale = BAND_STANDARDS[band].deviation_scale
    skill = rng.standard_normal(n)
    e = rng.standard_normal((n, len(DEVIATIONS)))
    tempo_e = rng.standard_normal(n)
    log_tempo = TEMPO_SPREAD * (TEMPO_SKILL * skill + math.sqrt(1 - TEMPO_SKILL**2) * tempo_e)
    data = {"skill": skill, "tempo_factor": np.exp(np.clip(log_tempo, -0.35, 0.3))}
    for k, (name, d) in enumerate(DEVIATIONS.items()):
        rho = skill_loading * d.skill_share
        u = rho * skill + math.sqrt(1 - rho**2) * e[:, k]
        data[name] = d.lo + scale * (d.hi - d.lo) * norm.cdf(-u) ** d.gamma
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

    extra = BAND_STANDARDS[band].extra_noise
    shares = {c: min(0.9, v + extra) for c, v in JUDGE_NOISE.items()}

    def build(rho: float) -> tuple[JudgeModel, float]:
        rng = np.random.default_rng(12345)
        amounts = sample_amounts(rng, n_mc, skill_loading=rho, band=band)
        mean = {k: float(amounts[k].mean()) for k in DEVIATIONS}
        sd = {k: float(amounts[k].std()) or 1.0 for k in DEVIATIONS}
        ones = {c: 1.0 for c in C.RATED_COLUMNS}
        m = JudgeModel(band, marginals, rho, mean, sd, ones, noise_share=shares)
        raw = m.latent(amounts)
        m = JudgeModel(band, marginals, rho, mean, sd, {c: float(raw[c].std()) for c in C.RATED_COLUMNS},
                       noise_share=shares)
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
                       target_correlation=target, achieved_correlation=got, noise_share=shares)
    return model




def _latent_boxes(judge: JudgeModel, ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) lower and upper latent bounds of each row's ratings (NaN rating: unbounded)."""
    from scipy.stats import norm

    lo = np.full((len(ratings), len(C.RATED_COLUMNS)), -np.inf)
    hi = np.full_like(lo, np.inf)
    for j, crit in enumerate(C.RATED_COLUMNS):
        values, probs = (np.asarray(x) for x in judge.marginals[crit])
        edges = norm.ppf(np.clip(np.concatenate([[0.0], np.cumsum(probs)]), 0.0, 1.0))  # (k + 1,)
        r = ratings[crit].to_numpy(dtype=float)
        ok = ~np.isnan(r)
        k = np.abs(r[ok, None] - values[None, :]).argmin(axis=1)  # nearest value on the grid
        lo[ok, j], hi[ok, j] = edges[k], edges[k + 1]
    return lo, hi


def fit_amounts(judge: JudgeModel, ratings: pd.DataFrame, rng: np.random.Generator, *,
                pool_size: int = 60_000) -> pd.DataFrame:
    """Students whose judged ratings are the given ones: the judge inverted, with its noise.

    Draws a pool of students (amounts and judge noise) from the population and gives each row a
    pool member whose noisy latent scores fall in the row's rating cells (a draw from the
    amounts' distribution given the ratings); where no member fits a cell exactly, the nearest
    in latent space. Each member is used once.

    Args:
        judge: the band's judge model.
        ratings: one row per audition, columns ``constants.RATED_COLUMNS`` (NaN = any rating).
        rng: the random stream.
        pool_size: students drawn per round (rounds repeat until every row has one).

    Returns:
        ``sample_amounts``' columns, one row per rating row (same order).
    """
    lo, hi = _latent_boxes(judge, ratings)
    keys = [tuple(row) for row in np.round(np.nan_to_num(lo, neginf=-9.0), 6)]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    pool = sample_amounts(rng, max(pool_size, 4 * len(ratings)), skill_loading=judge.skill_loading, band=judge.band)
    noise = rng.standard_normal((len(pool), len(C.RATED_COLUMNS) + 1))
    lat = judge.latent(pool, noise).to_numpy()  # (P, 4)
    free = np.ones(len(pool), dtype=bool)
    chosen = np.empty(len(ratings), dtype=np.int64)
    for rows in groups.values():
        i0 = rows[0]
        gap = np.maximum(lo[i0] - lat, 0.0) + np.maximum(lat - hi[i0], 0.0)  # (P, 4)
        dist = np.where(free, (gap**2).sum(axis=1), np.inf) + rng.random(len(pool)) * 1e-9  # random ties
        pick = np.argpartition(dist, len(rows) - 1)[: len(rows)]
        chosen[rows] = pick
        free[pick] = False
    return pool.iloc[chosen].reset_index(drop=True)
