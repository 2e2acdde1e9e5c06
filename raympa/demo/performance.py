"""The performer: a score plus one student's deviation amounts -> the note events they play.

The score becomes note events with the deviations applied: wrong notes (a semitone or two off,
some corrected mid-note, a few octave slips), missed notes (silence), extra notes (short inserted
notes), onset jitter, a tempo drift over the etude, rushed or dragged phrases, flat dynamics (no
phrase arches), unstable intonation (per-note offsets and a slow wobble), misplaced breaths and
choppy articulation (phrasing), and a noisy tone. The *realised* amounts (e.g. the fraction of
notes actually played wrong) are what the judge hears and what ``deviations.csv`` stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raympa import constants as C
from raympa.demo.etudes import Etude
from raympa.demo.synthesis import NoteEvents


@dataclass(frozen=True)
class Audition:
    """One student's rendered audition plan (picklable; synthesised by :func:`render_audition`)."""

    recording_id: str
    instrument: str
    events: NoteEvents
    total_s: float
    vibrato_scale: float
    wobble_cents: float
    tone_noise: float
    seed: tuple[int, ...]
    path: str


@dataclass(frozen=True)
class _Timing:
    """Where the notes fall: onsets and written lengths in seconds, and the tempo deviations."""

    onset: np.ndarray  # (n,) s
    ioi: np.ndarray  # (n,) s, nominal inter-onset interval at the performed tempo
    dur: np.ndarray  # (n,) s, written length at the performed tempo
    jitter: np.ndarray  # (n,) s, onset errors
    drift: float  # signed relative tempo change, start to end
    phrase_log_tempo: np.ndarray  # (n_phrases,) log tempo factor of each phrase


def _timing(etude: Etude, a: dict[str, float], rng: np.random.Generator, lead_in_s: float) -> _Timing:
    """Beat -> seconds through a drifting tempo and per-phrase tempo factors, plus onset jitter."""
    n = len(etude.pitch)
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
    return _Timing(onset + jitter, ioi, etude.dur * spb / factor, jitter, drift, phr_log)


def _phrasing(etude: Etude, a: dict[str, float], rng: np.random.Generator,
              t: _Timing) -> tuple[np.ndarray, np.ndarray]:
    """Sounding lengths (s) with breaths at phrase ends, or misplaced into the next phrase.

    Returns ``(sound, misplaced)``: (n,) sounding seconds and one flag per phrase boundary.
    """
    n = len(etude.pitch)
    onset = t.onset
    last_of_phrase = np.append(etude.phrase[1:] != etude.phrase[:-1], True)
    boundaries = np.flatnonzero(last_of_phrase[:-1])
    misplaced = rng.random(len(boundaries)) < float(a["phrasing"])
    fill = 0.93 - 0.35 * float(a["phrasing"]) * rng.random(n)  # (n,) share of the written length sounded
    sound = t.dur * fill
    # a note followed by a rest keeps a breath; the last note before a misplaced breath is held over
    for b, mis in zip(boundaries, misplaced):
        if mis:
            sound[b] = max(sound[b], (onset[b + 1] - onset[b]) * 0.98)  # no breath where it belongs
            later = np.flatnonzero(etude.phrase == etude.phrase[b + 1])
            if len(later) > 2:
                k = int(later[rng.integers(1, len(later) - 1)])
                sound[k] = max(0.05, min(sound[k], onset[k + 1] - onset[k] - 0.22) if k + 1 < n else sound[k])
    return sound, misplaced


def _dynamics(etude: Etude, flat: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) linear amplitudes: an arch per phrase (crescendo to its middle), flattened by ``flat``."""
    n = len(etude.pitch)
    in_phrase = np.zeros(n)
    for p in range(int(etude.phrase.max()) + 1):
        idx = np.flatnonzero(etude.phrase == p)
        in_phrase[idx] = np.linspace(0.0, 1.0, len(idx)) if len(idx) > 1 else 0.5
    level_db = (1.0 - flat) * (10.0 * np.sin(np.pi * in_phrase) - 5.0) + rng.normal(0, 1.0, n)
    return 10 ** (level_db / 20)


def _note_errors(pitch: np.ndarray, a: dict[str, float], rng: np.random.Generator,
                 pitch_range: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Missed and wrong notes: ``(missed, wrong, played, corrected, offset)``, all (n,)."""
    n = len(pitch)
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
    played = np.where(wrong & corrected, pitch + offset, played)
    return missed, wrong, played, corrected, offset


def perform(etude: Etude, amounts: dict[str, float], rng: np.random.Generator, *, lead_in_s: float = 0.6,
            pitch_range: tuple[int, int] = (0, 127)) -> tuple[NoteEvents, dict[str, float], dict[str, float]]:
    """Apply one student's deviations to an etude.

    Args:
        etude: the score.
        amounts: intended amount of each deviation in :data:`raympa.demo.judge.DEVIATIONS`.
        rng: the student's random stream.
        lead_in_s: silence before the first note.
        pitch_range: (low, high) MIDI the instrument can play; wrong notes stay inside it.

    Returns:
        ``(events, realised, extras)``: the note events to render, the realised amount of every
        deviation (what a judge hears), and rendering extras (``total_s``, ``wobble_cents``).
    """
    n = len(etude.pitch)
    a = amounts
    t = _timing(etude, a, rng, lead_in_s)
    sound, misplaced = _phrasing(etude, a, rng, t)
    flat = float(a["flat_dynamics"])
    amp = _dynamics(etude, flat, rng)
    # intonation: a per-note offset; the within-note wobble is half the amount
    inton = float(a["intonation"])
    cents = rng.standard_normal(n) * inton * math.sqrt(0.75)
    wobble = inton * 0.5
    pitch = etude.pitch.astype(float)
    missed, wrong, played, corrected, offset = _note_errors(pitch, a, rng, pitch_range)
    bend_at = np.full(n, np.inf)
    bend_at[wrong & corrected] = 0.45 * sound[wrong & corrected]
    keep = ~missed
    ev = {"on": list(t.onset[keep]), "dur": list(sound[keep]), "midi": list(played[keep] + cents[keep] / 100.0),
          "amp": list(amp[keep]), "bend_at": list(bend_at[keep]), "bend_to": list(pitch[keep] + cents[keep] / 100.0)}
    n_extra = _extra_notes(ev, t, pitch, amp, keep, float(a["extra_notes"]), rng, pitch_range)
    order = np.argsort(ev["on"], kind="stable")
    on = np.asarray(ev["on"])[order]
    du = np.asarray(ev["dur"])[order]
    du = np.minimum(du, np.append(np.diff(on), np.inf))  # monophonic: a note ends where the next starts
    events = NoteEvents(on, du, np.asarray(ev["midi"])[order], np.asarray(ev["amp"])[order],
                        np.asarray(ev["bend_at"])[order], np.asarray(ev["bend_to"])[order])
    realised = {
        "wrong_notes": float(np.mean(wrong)),
        "missed_notes": float(np.mean(missed)),
        "extra_notes": n_extra / n,
        "onset_jitter": float(np.std(t.jitter)),
        "tempo_drift": abs(t.drift),
        "rushed_dragged": float(np.std(t.phrase_log_tempo)) if len(t.phrase_log_tempo) > 1 else 0.0,
        "flat_dynamics": flat,
        "intonation": float(math.sqrt(np.mean(cents**2) + wobble**2)),
        "phrasing": float(np.mean(misplaced)) if len(misplaced) else 0.0,
        "tone_noise": float(a["tone_noise"]),
    }
    total_s = float(on[-1] + du[-1] + 0.8)
    return events, realised, {"total_s": total_s, "wobble_cents": wobble}


def _extra_notes(ev: dict[str, list], t: _Timing, pitch: np.ndarray, amp: np.ndarray, keep: np.ndarray,
                 rate: float, rng: np.random.Generator, pitch_range: tuple[int, int]) -> int:
    """Append short neighbour notes squeezed in just before a note (taken from the previous one)."""
    extra = rng.random(len(pitch)) < rate
    extra[0] = False
    n_extra = 0
    for i in np.flatnonzero(extra & keep):
        length = min(0.09, 0.3 * t.ioi[i - 1])
        if length < 0.03:
            continue
        ev["on"].append(t.onset[i] - length)
        ev["dur"].append(length * 0.95)
        ev["midi"].append(float(np.clip(pitch[i] + float(rng.choice([-2, -1, 1, 2])), *pitch_range)))
        ev["amp"].append(amp[i] * 0.8)
        ev["bend_at"].append(np.inf)
        ev["bend_to"].append(0.0)
        n_extra += 1
    return n_extra


def render_audition(job: Audition) -> str:
    """Synthesise and write one audition (runs in a worker process); returns its path."""
    import soundfile as sf

    from raympa.demo.synthesis import TIMBRES, render

    rng = np.random.default_rng(list(job.seed) + [1])
    y = render(job.events, TIMBRES[job.instrument], total_s=job.total_s, rng=rng,
               vibrato_scale=job.vibrato_scale, wobble_cents=job.wobble_cents, tone_noise=job.tone_noise)
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, y, C.SAMPLE_RATE, subtype="PCM_16")
    return job.path
