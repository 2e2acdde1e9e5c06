"""Simulated auditions: the embedded default data set (DESIGN.md section 4).

The FBA audio is private, so ``raympa demo-data`` renders auditions whose ground truth is known:

1. *Students.* Each has a latent skill ``s ~ N(0, 1)``. Each performance deviation ``j`` draws
   ``u_j = rho * s + sqrt(1 - rho^2) * e_j`` and an intended amount
   ``lo_j + (hi_j - lo_j) * Phi(-u_j) ** gamma_j`` (:data:`DEVIATIONS`); the shared skill makes
   the criteria correlate as in the FBA ratings.
2. *Etudes.* One etude per (year, instrument), as in the FBA (everyone in a band, year and
   instrument plays the same etude): generated (:mod:`raympa.etudes`), or the real FBA
   middle-school technical etude MIDIs of 2013-2015 when an annotation folder is given.
3. *Performance.* The score becomes note events with the deviations applied: wrong notes (a
   semitone or two off, some corrected mid-note, a few octave slips), missed notes (silence),
   extra notes (short inserted notes), onset jitter, a tempo drift over the etude, rushed or
   dragged phrases, flat dynamics (no phrase arches), unstable intonation (per-note offsets and a
   slow wobble), misplaced breaths and choppy articulation (phrasing), and a noisy tone. The
   *realised* amounts (e.g. the fraction of notes actually played wrong) are what the judge hears
   and what ``deviations.csv`` stores.
4. *Judges.* Each criterion's latent score is a weighted sum of its standardised deviations
   (:data:`JUDGE_WEIGHTS`), mixed with judge noise (a share of it common to all criteria of one
   audition, the halo effect), and mapped through the empirical quantile function of the FBA
   rating distribution of that band and criterion, so ratings take the FBA's values (multiples
   of 0.1 for note and rhythm accuracy, 0.05 for musicality) with the FBA's marginal
   distribution. The skill loading ``rho`` is calibrated so the mean correlation between the four
   criteria matches the FBA's.
5. *Audio.* :mod:`raympa.synth` renders 44.1 kHz mono wav files, in parallel; every audition has
   its own random stream, so the output is the same for any number of worker processes.

Outputs: ``DIR/audio/<year>/<band>/<student_id>.wav``, ``DIR/ratings.csv`` (the ratings-table
format of docs/architecture.md; ``audio_path`` relative to DIR; no segment columns because each
file is the etude), ``DIR/deviations.csv`` (recording_id, skill, intended and realised amounts),
``DIR/etudes.csv`` (the scores played) and ``DIR/demo.json`` (the generator's settings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raympa import constants as C

RATED = (*C.CRITERIA, "tone_quality")


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
# note accuracy is the least noisy so that it is learnable from pitch contours, issue 3 item 4).
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
        for j, crit in enumerate(RATED):
            score = np.zeros(n)
            for dev, w in JUDGE_WEIGHTS[crit].items():
                score -= w * (amounts[dev].to_numpy(dtype=float) - self.mean[dev]) / self.sd[dev]
            score /= self.score_sd[crit]
            v = JUDGE_NOISE[crit]
            if noise is not None:
                eps = noise[:, j]
                if noise.shape[1] > len(RATED):
                    eps = math.sqrt(1 - HALO) * eps + math.sqrt(HALO) * noise[:, len(RATED)]
                score = math.sqrt(1 - v) * score + math.sqrt(v) * eps
            out[crit] = score
        return pd.DataFrame(out, index=amounts.index)

    def rate(self, amounts: pd.DataFrame, noise: np.ndarray | None = None) -> pd.DataFrame:
        """Quantised ratings in [0, 1] on the FBA's value grid."""
        from scipy.stats import norm

        lat = self.latent(amounts, noise)
        out = {}
        for crit in RATED:
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
    cols = {c: f"technical_etude_{fba.CSV_CRITERIA[c]}" for c in RATED}
    sub = rows[list(cols.values())].rename(columns={v: k for k, v in cols.items()})
    sub = sub[((sub >= 0) & (sub <= 1)).all(axis=1)]
    if len(sub) < 50:
        raise ValueError(f"{annotations}: only {len(sub)} valid {band} rating rows; cannot fit a distribution")
    marg = {}
    for crit in RATED:
        vc = sub[crit].round(2).value_counts().sort_index()
        marg[crit] = {float(k): int(v) for k, v in vc.items()}
    corr = sub.corr().to_numpy()
    return marg, float(corr[np.triu_indices(len(RATED), 1)].mean())


def calibrate_judge(band: str, *, annotations: str | Path | None = None, n_mc: int = 20_000) -> JudgeModel:
    """The judge model of a band: rating marginals (built-in, or from the FBA CSV), population
    standardisation by Monte Carlo, and the skill loading that reproduces the FBA's mean
    correlation between criteria (bisection). Deterministic (fixed internal seed)."""
    if annotations is not None:
        counts, target = _marginals_from_csv(annotations, band)
    else:
        counts, target = FBA_MARGINALS[band], FBA_MEAN_CORRELATION[band]
    marginals = {}
    for crit in RATED:
        vals = np.array(sorted(counts[crit]))
        p = np.array([counts[crit][v] for v in vals], dtype=float)
        marginals[crit] = (tuple(float(v) for v in vals), tuple(float(x) for x in p / p.sum()))

    def build(rho: float) -> tuple[JudgeModel, float]:
        rng = np.random.default_rng(12345)
        amounts = sample_amounts(rng, n_mc, skill_loading=rho)
        mean = {k: float(amounts[k].mean()) for k in DEVIATIONS}
        sd = {k: float(amounts[k].std()) or 1.0 for k in DEVIATIONS}
        ones = {c: 1.0 for c in RATED}
        m = JudgeModel(band, marginals, rho, mean, sd, ones)
        raw = m.latent(amounts)
        m = JudgeModel(band, marginals, rho, mean, sd, {c: float(raw[c].std()) for c in RATED})
        noise = rng.standard_normal((n_mc, len(RATED) + 1))
        corr = m.rate(amounts, noise).corr().to_numpy()
        return m, float(corr[np.triu_indices(len(RATED), 1)].mean())

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


# ----------------------------------------------------------------------------- performance
@dataclass(frozen=True)
class Audition:
    """One student's rendered audition plan (picklable; synthesised by :func:`_render_one`)."""

    recording_id: str
    instrument: str
    events: "object"  # raympa.synth.NoteEvents
    total_s: float
    vibrato_scale: float
    wobble_cents: float
    tone_noise: float
    seed: tuple[int, ...]
    path: str


def perform(etude, amounts: dict[str, float], rng: np.random.Generator, *, lead_in_s: float = 0.6,
            pitch_range: tuple[int, int] = (0, 127)):
    """Apply one student's deviations to an etude.

    Args:
        etude: the score (:class:`raympa.etudes.Etude`).
        amounts: intended amount of each deviation in :data:`DEVIATIONS`.
        rng: the student's random stream.
        lead_in_s: silence before the first note.
        pitch_range: (low, high) MIDI the instrument can play; wrong notes stay inside it.

    Returns:
        ``(events, realised, extras)``: the :class:`raympa.synth.NoteEvents` to render, the
        realised amount of every deviation (what a judge hears), and rendering extras
        (``total_s``, ``wobble_cents``).
    """
    from raympa.synth import NoteEvents

    n = len(etude.pitch)
    a = amounts
    # --- timing: beat -> seconds through a drifting tempo and per-phrase tempo factors
    n_phr = int(etude.phrase.max()) + 1
    drift = float(a["tempo_drift"]) * (1 if rng.random() < 0.5 else -1)
    phr_log = rng.standard_normal(n_phr) * float(a["rushed_dragged"])
    phr_log -= phr_log.mean() if n_phr > 1 else 0.0
    spb = 60.0 / etude.tempo_bpm  # s per beat at the nominal tempo
    position = etude.start / max(etude.n_beats, 1e-9)  # (n,) 0..1 through the etude
    factor = (1.0 + drift * position) * np.exp(phr_log[etude.phrase])  # (n,) tempo factor
    ioi_beats = np.diff(np.append(etude.start, etude.n_beats))  # (n,) inter-onset beats
    ioi = ioi_beats * spb / factor  # (n,) s
    onset = lead_in_s + np.concatenate([[0.0], np.cumsum(ioi)[:-1]])
    jitter = rng.standard_normal(n) * float(a["onset_jitter"])
    jitter = np.clip(jitter, -0.4 * ioi, 0.4 * ioi)
    onset = onset + jitter
    dur_nominal = etude.dur * spb / factor  # (n,) s written length
    # --- phrasing: breaths at phrase ends, or misplaced into the middle of the next phrase
    last_of_phrase = np.append(etude.phrase[1:] != etude.phrase[:-1], True)
    boundaries = np.flatnonzero(last_of_phrase[:-1])
    misplaced = rng.random(len(boundaries)) < float(a["phrasing"])
    fill = 0.93 - 0.35 * float(a["phrasing"]) * rng.random(n)  # (n,) share of the written length sounded
    sound = dur_nominal * fill
    # a note followed by a rest keeps a breath; the last note before a misplaced breath is held over
    for b, mis in zip(boundaries, misplaced):
        if mis:
            sound[b] = max(sound[b], (onset[b + 1] - onset[b]) * 0.98)  # no breath where it belongs
            later = np.flatnonzero(etude.phrase == etude.phrase[b + 1])
            if len(later) > 2:
                k = int(later[rng.integers(1, len(later) - 1)])
                sound[k] = max(0.05, min(sound[k], onset[k + 1] - onset[k] - 0.22) if k + 1 < n else sound[k])
    # --- dynamics: an arch per phrase (crescendo to its middle), flattened by flat_dynamics
    flat = float(a["flat_dynamics"])
    in_phrase = np.zeros(n)
    for p in range(n_phr):
        idx = np.flatnonzero(etude.phrase == p)
        in_phrase[idx] = np.linspace(0.0, 1.0, len(idx)) if len(idx) > 1 else 0.5
    level_db = (1.0 - flat) * (10.0 * np.sin(np.pi * in_phrase) - 5.0) + rng.normal(0, 1.0, n)
    amp = 10 ** (level_db / 20)
    # --- intonation: a per-note offset; the within-note wobble is half the amount
    inton = float(a["intonation"])
    cents = rng.standard_normal(n) * inton * math.sqrt(0.75)
    wobble = inton * 0.5
    # --- notes: wrong, missed, extra
    pitch = etude.pitch.astype(float)
    missed = rng.random(n) < float(a["missed_notes"])
    missed[0] = False  # the audition starts
    wrong = (rng.random(n) < float(a["wrong_notes"])) & ~missed
    offset = rng.choice([-2, -1, 1, 2], size=n).astype(float)
    octave_slip = rng.random(n) < 0.1
    offset[octave_slip] = 12.0 * np.sign(offset[octave_slip])
    corrected = rng.random(n) < 0.3
    offset = np.clip(pitch + offset, *pitch_range) - pitch
    offset[offset == 0] = np.where(pitch[offset == 0] > pitch_range[0], -1.0, 1.0)  # wrong stays wrong
    played = pitch + np.where(wrong & ~corrected, offset, 0.0)
    bend_at = np.full(n, np.inf)
    bend_to = pitch.copy()
    played = np.where(wrong & corrected, pitch + offset, played)
    bend_at[wrong & corrected] = 0.45 * sound[wrong & corrected]
    keep = ~missed
    ev_on, ev_dur = list(onset[keep]), list(sound[keep])
    ev_midi, ev_amp = list(played[keep] + cents[keep] / 100.0), list(amp[keep])
    ev_bat, ev_bto = list(bend_at[keep]), list(bend_to[keep] + cents[keep] / 100.0)
    # extra notes: a short neighbour note squeezed in just before a note, taken from the previous one
    extra = rng.random(n) < float(a["extra_notes"])
    extra[0] = False
    n_extra = 0
    for i in np.flatnonzero(extra & keep):
        length = min(0.09, 0.3 * ioi[i - 1])
        if length < 0.03:
            continue
        ev_on.append(onset[i] - length)
        ev_dur.append(length * 0.95)
        ev_midi.append(float(np.clip(pitch[i] + float(rng.choice([-2, -1, 1, 2])), *pitch_range)))
        ev_amp.append(amp[i] * 0.8)
        ev_bat.append(np.inf)
        ev_bto.append(0.0)
        n_extra += 1
    order = np.argsort(ev_on, kind="stable")
    on = np.asarray(ev_on)[order]
    du = np.asarray(ev_dur)[order]
    du = np.minimum(du, np.append(np.diff(on), np.inf))  # monophonic: a note ends where the next starts
    events = NoteEvents(on, du, np.asarray(ev_midi)[order], np.asarray(ev_amp)[order],
                        np.asarray(ev_bat)[order], np.asarray(ev_bto)[order])
    realised = {
        "wrong_notes": float(np.mean(wrong)),
        "missed_notes": float(np.mean(missed)),
        "extra_notes": n_extra / n,
        "onset_jitter": float(np.std(jitter)),
        "tempo_drift": abs(drift),
        "rushed_dragged": float(np.std(phr_log)) if n_phr > 1 else 0.0,
        "flat_dynamics": flat,
        "intonation": float(math.sqrt(np.mean(cents**2) + wobble**2)),
        "phrasing": float(np.mean(misplaced)) if len(misplaced) else 0.0,
        "tone_noise": float(a["tone_noise"]),
    }
    total_s = float(on[-1] + du[-1] + 0.8)
    return events, realised, {"total_s": total_s, "wobble_cents": wobble}


def _render_one(job: Audition) -> str:
    """Synthesise and write one audition (runs in a worker process)."""
    import soundfile as sf

    from raympa.synth import TIMBRES, render

    rng = np.random.default_rng(list(job.seed) + [1])
    y = render(job.events, TIMBRES[job.instrument], total_s=job.total_s, rng=rng,
               vibrato_scale=job.vibrato_scale, wobble_cents=job.wobble_cents, tone_noise=job.tone_noise)
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, y, C.SAMPLE_RATE, subtype="PCM_16")
    return job.path


# ----------------------------------------------------------------------------- the data set
def _etudes(seed: int, band: str, annotations: str | Path | None, duration_s: float | None) -> dict:
    """(year, instrument) -> Etude: the real FBA etude of that year (middle school, with
    annotations) or a generated one, fitted to the instrument's register."""
    from raympa import etudes as E

    real = E.fba_etude_midis(annotations) if (annotations is not None and band == "middleschool") else {}
    target = duration_s if duration_s is not None else E.TARGET_SECONDS[band]
    out = {}
    for year in DEMO_YEARS:
        for k, inst in enumerate(C.INSTRUMENTS):
            lo, hi = E.REGISTERS[band][inst]
            if year in real:
                et = E.read_midi_etude(real[year], name=f"fba{year}_tech").fit_range(lo, hi)
            else:
                rng = np.random.default_rng([seed, year, k, 7])
                et = E.generate_etude(rng, instrument=inst, level=band, name=f"gen{year}_{k}")
            out[(year, inst)] = et.with_seconds(target)
    return out


def make_demo(
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    band: str = "middleschool",
    fba_annotations: str | Path | None = None,
    split_seed: int = 0,
    duration_s: float | None = None,
    jobs: int | None = None,
    render_audio: bool = True,
) -> pd.DataFrame:
    """Render ``n`` simulated auditions into ``out`` and return the ratings table.

    Args:
        out: output folder (created).
        n: number of auditions (one per student).
        seed: everything but the split depends on it only (not on ``jobs``).
        band: ``middleschool`` (about 30 s etudes) or ``symphonicband`` (about 48 s, harder).
        fba_annotations: MIG-FbaData checkout: real etude MIDIs (middle school) and the real
            rating distribution and criterion correlation of ``band``.
        split_seed: seed of the 8:1:1 split.
        duration_s: nominal etude length override in seconds (tests, benchmarks).
        jobs: worker processes for the synthesis (default: CPU count).
        render_audio: False writes the tables only (no audio files).
    """
    from raympa import etudes as E
    from raympa.ratings import assign_splits, validate_ratings, write_ratings

    if n < 1:
        raise ValueError(f"n={n}; need at least one audition")
    if band not in C.STUDY_BANDS:
        raise ValueError(f"band {band!r}; choose one of {list(C.STUDY_BANDS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    judge = calibrate_judge(band, annotations=fba_annotations)
    rng = np.random.default_rng([seed, 0])
    intended = sample_amounts(rng, n, skill_loading=judge.skill_loading)
    instrument = rng.choice(np.array(C.INSTRUMENTS), n)
    year = rng.choice(np.array(DEMO_YEARS), n)
    judge_noise = rng.standard_normal((n, len(RATED) + 1))
    etudes = _etudes(seed, band, fba_annotations, duration_s)

    rows, dev_rows, jobs_list = [], [], []
    for i in range(n):
        sid = f"{90000 + i}"
        rid = f"{year[i]}/{band}/{sid}"
        rel = f"audio/{year[i]}/{band}/{sid}.wav"
        srng = np.random.default_rng([seed, 1, i])  # the student's own stream
        et = etudes[(int(year[i]), str(instrument[i]))]
        events, realised, extra = perform(et, intended.iloc[i].to_dict(), srng,
                                          pitch_range=E.RANGES[str(instrument[i])])
        vib = float(srng.uniform(0.3, 1.3))
        jobs_list.append(Audition(rid, str(instrument[i]), events, extra["total_s"], vib, extra["wobble_cents"],
                                  float(realised["tone_noise"]), (seed, 2, i), str(out / rel)))
        rows.append({"recording_id": rid, "student_id": sid, "year": int(year[i]), "band": band,
                     "instrument": str(instrument[i]), "audio_path": rel, "pitchtrack_path": "",
                     "segment_start": np.nan, "segment_duration": np.nan})
        dev_rows.append({"recording_id": rid, "skill": float(intended["skill"].iloc[i]), "etude": et.name,
                         "tempo_bpm": round(et.tempo_bpm, 2), "seconds": round(extra["total_s"], 3),
                         **{k: float(v) for k, v in realised.items()},
                         **{f"intended_{k}": float(intended[k].iloc[i]) for k in DEVIATIONS}})
    table = pd.DataFrame(rows)
    deviations = pd.DataFrame(dev_rows)
    ratings = judge.rate(deviations[list(DEVIATIONS)], judge_noise)
    for crit in RATED:
        table[crit] = ratings[crit].to_numpy()
    table["split"] = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if n < 10 else "default")
        table["split"] = assign_splits(table, seed=split_seed).to_numpy()
    table = validate_ratings(table, source="demo")
    if render_audio:
        _render_all(jobs_list, jobs)
    write_ratings(table, out / "ratings.csv")
    deviations.to_csv(out / "deviations.csv", index=False, float_format="%.6g")
    _write_etudes(etudes, out / "etudes.csv")
    meta = {"n": n, "seed": seed, "band": band, "split_seed": split_seed, "duration_s": duration_s,
            "fba_annotations": str(fba_annotations) if fba_annotations else None,
            "sample_rate": C.SAMPLE_RATE, "skill_loading": judge.skill_loading,
            "target_correlation": judge.target_correlation, "achieved_correlation": judge.achieved_correlation,
            "judge_noise": JUDGE_NOISE, "halo": HALO, "judge_weights": JUDGE_WEIGHTS,
            "deviations": {k: asdict(d) for k, d in DEVIATIONS.items()}}
    (out / "demo.json").write_text(json.dumps(meta, indent=2))
    return table


def _render_all(jobs_list: list[Audition], jobs: int | None) -> None:
    workers = max(1, min(jobs or os.cpu_count() or 1, len(jobs_list)))
    if workers == 1:
        for job in jobs_list:
            _render_one(job)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
    with ctx.Pool(workers) as pool:
        for _ in pool.imap_unordered(_render_one, jobs_list, chunksize=1):
            pass


def _write_etudes(etudes: dict, path: Path) -> None:
    rows = []
    for (year, inst), et in etudes.items():
        for k in range(len(et.pitch)):
            rows.append({"year": year, "instrument": inst, "etude": et.name, "tempo_bpm": round(et.tempo_bpm, 3),
                         "note": k, "midi": int(et.pitch[k]), "start_beat": float(et.start[k]),
                         "dur_beat": float(et.dur[k]), "phrase": int(et.phrase[k])})
    pd.DataFrame(rows).to_csv(path, index=False)


def cli_demo_data(args: argparse.Namespace) -> int:
    """``raympa demo-data``: render the simulated auditions and print a summary."""
    t0 = time.perf_counter()
    try:
        table = make_demo(args.out, n=args.n, seed=args.seed, band=args.band,
                          fba_annotations=args.fba_annotations, split_seed=args.split_seed,
                          duration_s=getattr(args, "duration", None), jobs=getattr(args, "jobs", None))
    except (FileNotFoundError, ValueError) as err:
        print(f"raympa demo-data: error: {err}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {len(table)} auditions to {args.out} in {dt:.1f} s")
    print(table[list(RATED)].describe().loc[["mean", "std", "min", "max"]].round(3).to_string())
    print(f"split: {table['split'].value_counts().reindex(list(C.SPLITS), fill_value=0).to_dict()}")
    return 0


def ceiling(folder: str | Path, *, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """The simulator's ceiling: cross-validated R² of predicting each rating from the true
    (realised) deviation amounts in ``deviations.csv``, with a linear model and with gradient
    boosting. A model that only sees audio cannot be expected to beat it.

    Returns:
        One row per criterion: ``r2_linear``, ``r2_boosting`` (mean over folds), ``n``.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score

    folder = Path(folder)
    ratings = pd.read_csv(folder / "ratings.csv", dtype={"recording_id": str})
    dev = pd.read_csv(folder / "deviations.csv", dtype={"recording_id": str})
    df = ratings.merge(dev, on="recording_id", validate="one_to_one")
    x = df[list(DEVIATIONS)].to_numpy()
    cv = KFold(folds, shuffle=True, random_state=seed)
    rows = []
    for crit in RATED:
        y = df[crit].to_numpy()
        lin = cross_val_score(LinearRegression(), x, y, cv=cv, scoring="r2").mean()
        gbm = cross_val_score(HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed),
                              x, y, cv=cv, scoring="r2").mean()
        rows.append({"criterion": crit, "r2_linear": round(float(lin), 3), "r2_boosting": round(float(gbm), 3),
                     "n": len(df)})
    return pd.DataFrame(rows)
