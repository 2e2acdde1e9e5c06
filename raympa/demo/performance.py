"""The performer: a score plus one student's deviation amounts -> the note events they play.

What a student does to the score (amounts in :data:`raympa.demo.judge.DEVIATIONS`):

* *Tempo.* They pick their own tempo around the marked one (``tempo_factor``), then play it with
  phrase-level rushing and dragging, a drift over the etude, uneven onsets and misread rhythms.
  A musical player shapes each phrase (a slight push into its middle, easing at its end).
* *Notes.* Errors fall where the score is hard (:func:`raympa.demo.etudes.note_difficulty`): a
  note's chance of an error is the student's amount times its difficulty weight. Wrong notes are
  neighbours among the etude's own pitches, played in tune (a quarter corrected mid-note); fluffed
  notes are audible: cracked, starting on a neighbouring pitch and sliding in within tens of
  milliseconds, rarely a squeak or an octave slip; extra notes are short neighbours (again the
  etude's pitches) squeezed in. Nothing goes silent except where players stop: breaths,
  hesitations before hard notes, and restarts (a stop, a breath, the bar again from its start).
* *Connection.* Notes without a rest between them sound as one tone (tongued: a dip in level;
  slurred: hardly any), as wind players play them, so the pitch contour's voiced segments follow
  the phrases and the etude's leaps, not each note; a choppy player detaches some of them.
* *Musicality.* Vibrato steady or erratic, notes connected or detached, breaths in their place or
  a few notes early or late, phrase arches in the dynamics, intonation between notes (apart from
  the instrument's overall tuning, which the student brings and the judge does not count).

The *realised* amounts (e.g. the fraction of played notes actually wrong) are what the judge
hears and what ``deviations.csv`` stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raympa import constants as C
from raympa.demo.etudes import Etude, note_difficulty
from raympa.demo.synthesis import NoteEvents

TUNING_CENTS = 40.0  # a student's overall tuning offset is uniform in +-40 cents (ours; not judged)
SLIP_SHARE = 0.08  # share of fluffs that jump to another partial: squeak or octave slip (ours)
SLIP_SEMITONES = {"Bb Clarinet": 19.0, "Alto Saxophone": 12.0, "Flute": 12.0}  # a twelfth / an octave up
# Note connection (ours): the share of connected notes tongued, and the level (share of the amplitude)
# the tone dips to between two tongued or two slurred notes; a detached (choppy) note sounds this share
# of its written length; a misplaced breath is taken this many notes early or late.
TONGUED_SHARE = 0.5
TONGUE_DIP = (0.08, 0.3)
SLUR_DIP = (0.75, 1.0)
DETACHED_LENGTH = (0.55, 0.75)
BREATH_SHIFT = (1, 3)
# A cracked note starts on a neighbouring pitch of the etude and slides onto its own with this time
# constant (s), so its off-pitch frames are a glide, not a held note of another pitch (ours).
CRACK_S = (0.015, 0.03)


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
class _Plan:
    """The notes in the order played (restarts repeat a passage) and the pauses before them."""

    order: np.ndarray  # (m,) int, score index of each played note
    pause: np.ndarray  # (m,) s of silence before each played note
    restart: np.ndarray  # (m,) bool, the note a restart resumes from
    n_hesitations: int


def _plan(etude: Etude, a: dict[str, float], rng: np.random.Generator, weight: np.ndarray) -> _Plan:
    """Hesitations before hard notes, and restarts from the start of the bar."""
    n = len(etude.pitch)
    hes = rng.random(n) < np.minimum(0.5, float(a["hesitations"]) * weight)
    hes[0] = False
    k = min(int(rng.poisson(float(a["restarts"]))), 3)
    stops = np.sort(rng.choice(np.arange(4, n), size=min(k, max(n - 4, 0)), replace=False,
                               p=weight[4:] / weight[4:].sum())) if n > 4 and k else np.array([], int)
    order: list[int] = []
    restart: list[bool] = []
    begin, resumed = 0, False
    for stop in stops:
        bar = math.floor(etude.start[stop] / 4.0) * 4.0  # 4/4 bars
        back = int(np.searchsorted(etude.start, bar))
        if back >= stop:
            back = int(np.searchsorted(etude.start, max(bar - 4.0, 0.0)))
        if stop <= begin or back >= stop:
            continue
        order.extend(range(begin, stop))
        restart.extend([resumed] + [False] * (stop - begin - 1))
        begin, resumed = back, True
    order.extend(range(begin, n))
    restart.extend([resumed] + [False] * (n - begin - 1))
    order_a = np.asarray(order, dtype=np.int64)
    restart_a = np.asarray(restart, dtype=bool)
    pause = np.where(hes[order_a] & ~restart_a, rng.uniform(0.15, 0.5, len(order_a)), 0.0)
    pause[restart_a] = rng.uniform(0.6, 1.2, int(restart_a.sum()))  # stop and breathe
    return _Plan(order_a, pause, restart_a, int((pause > 0).sum() - restart_a.sum()))


@dataclass(frozen=True)
class _Timing:
    """Where the played notes fall, in seconds, and the timing deviations realised."""

    onset: np.ndarray  # (m,) s
    ioi: np.ndarray  # (m,) s, the note's inter-onset interval at the performed tempo
    dur: np.ndarray  # (m,) s, written length at the performed tempo
    jitter: np.ndarray  # (m,) s, onset errors
    misread: np.ndarray  # (m,) bool, a misread rhythm
    drift: float  # signed relative tempo change, start to end
    phrase_log_tempo: np.ndarray  # (n_phrases,) log tempo factor of each phrase


def _timing(etude: Etude, a: dict[str, float], rng: np.random.Generator, plan: _Plan, weight: np.ndarray,
            lead_in_s: float) -> _Timing:
    """Beat -> seconds: the student's tempo, phrase factors, drift, phrase shaping, onset errors."""
    n_phr = int(etude.phrase.max()) + 1
    drift = float(a["tempo_drift"]) * (1 if rng.random() < 0.5 else -1)
    phr_log = rng.standard_normal(n_phr) * float(a["tempo_instability"])
    phr_log -= phr_log.mean() if n_phr > 1 else 0.0
    spb = 60.0 / (etude.tempo_bpm * float(a.get("tempo_factor", 1.0)))  # s per beat at the chosen tempo
    position = etude.start / max(etude.n_beats, 1e-9)  # (n,) 0..1 through the etude
    in_phrase = _phrase_position(etude)
    shape = 1.0 + (1.0 - float(a["mechanical_timing"])) * (0.05 * np.sin(np.pi * in_phrase) - 0.12 * in_phrase**6)
    factor = (1.0 + drift * position) * np.exp(phr_log[etude.phrase]) * shape  # (n,) tempo factor
    ioi_score = np.diff(np.append(etude.start, etude.n_beats)) * spb / factor  # (n,) s
    o = plan.order
    ioi = ioi_score[o]
    gaps = np.concatenate([[0.0], ioi[:-1]]) + plan.pause
    onset = lead_in_s + np.cumsum(gaps)
    jitter = np.clip(rng.standard_normal(len(o)) * float(a["onset_jitter"]), -0.4 * ioi, 0.4 * ioi)
    misread = rng.random(len(o)) < np.minimum(0.8, float(a["rhythm_errors"]) * weight[o])
    misread[0] = False
    sign = np.where(rng.random(len(o)) < 0.5, -1.0, 1.0)
    prev_ioi = np.concatenate([[np.inf], ioi[:-1]])
    shift = sign * rng.uniform(0.25, 0.5, len(o)) * np.minimum(ioi, prev_ioi)
    onset = onset + jitter + np.where(misread, shift, 0.0)
    return _Timing(onset, ioi, etude.dur[o] * spb / factor[o], jitter, misread, drift, phr_log)


def _phrase_position(etude: Etude) -> np.ndarray:
    """(n,) 0..1: where each note sits in its phrase."""
    pos = np.full(len(etude.pitch), 0.5)
    for p in range(int(etude.phrase.max()) + 1):
        idx = np.flatnonzero(etude.phrase == p)
        if len(idx) > 1:
            pos[idx] = np.linspace(0.0, 1.0, len(idx))
    return pos


def _articulation(etude: Etude, a: dict[str, float], rng: np.random.Generator, plan: _Plan,
                  t: _Timing) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Sounding lengths (s) and note connections: tongued or slurred, choppy, breaths in place or not.

    Notes that follow each other in the score without a rest are connected: the tone dips at a
    tongued note (``TONGUE_DIP``) and hardly at a slurred one (``SLUR_DIP``), but does not stop.
    A choppy player detaches a share ``legato`` of them (the note cut short, a silence before the
    next). The tone stops for breaths (the rests between phrases), hesitations and restarts. A
    misplaced breath is taken ``BREATH_SHIFT`` notes early or late: the phrase end run into the next
    phrase, a breath in the middle of a figure (the phrase lengths, and so the contour's voiced
    segments, change only by those few notes).

    Returns ``(sound, link, misplaced_share, detached_share)``: (m,) seconds, (m,) link levels
    (:class:`raympa.demo.synthesis.NoteEvents`), the share of phrase ends breathed in the wrong
    place and the share of connected notes played detached.
    """
    o, m = plan.order, len(plan.order)
    sound = t.dur * 0.97
    follows = np.append(o[1:] == o[:-1] + 1, False)  # the next played note is the next in the score
    written_end = etude.start[o] + etude.dur[o]
    next_start = np.append(etude.start[o[1:]], np.inf)
    no_pause = ~np.append(plan.pause[1:] > 0, False)
    joins = follows & (np.abs(next_start - written_end) < 1e-6) & no_pause
    tongued = rng.random(m) < TONGUED_SHARE
    link = np.where(tongued, rng.uniform(*TONGUE_DIP, m), rng.uniform(*SLUR_DIP, m))
    detached = joins & (rng.random(m) < float(a["legato"]))
    sound = np.where(detached, t.dur * rng.uniform(*DETACHED_LENGTH, m), sound)
    phrase = etude.phrase[o]
    boundaries = np.flatnonzero(np.append(phrase[1:] != phrase[:-1], False) & follows & no_pause)
    misplaced = rng.random(len(boundaries)) < float(a["phrasing"])
    shift = rng.integers(BREATH_SHIFT[0], BREATH_SHIFT[1] + 1, len(boundaries)) * np.where(
        rng.random(len(boundaries)) < 0.5, -1, 1)
    breath = np.zeros(m, dtype=bool)
    for b, mis, sh in zip(boundaries, misplaced, shift):
        k = b + int(sh)
        if not mis or k < 1 or k >= m - 1 or not joins[k] or phrase[k] not in (phrase[b], phrase[b + 1]):
            breath[b] = True
            continue
        joins[b] = True  # no breath where it belongs: the phrase end held into the next phrase
        sound[b] = t.onset[b + 1] - t.onset[b]
        breath[k], joins[k] = True, False
        sound[k] = max(0.05, min(sound[k], t.onset[k + 1] - t.onset[k] - 0.22))
    link = np.where(joins & ~detached, link, 0.0)
    n_joins = max(int(joins.sum()), 1)
    misplaced_share = float(np.mean(misplaced & ~breath[boundaries])) if len(boundaries) else 0.0
    return sound, link, misplaced_share, float(detached.sum() / n_joins)


def _notes(etude: Etude, a: dict[str, float], rng: np.random.Generator, plan: _Plan, sound: np.ndarray,
           weight: np.ndarray, instrument: str, pitch_range: tuple[int, int]) -> dict[str, np.ndarray]:
    """Pitches of the played notes: wrong notes, fluffs (cracks, squeaks, slips), intonation."""
    o, m = plan.order, len(plan.order)
    target = etude.pitch[o].astype(float)
    wrong = rng.random(m) < np.minimum(0.8, float(a["wrong_notes"]) * weight[o])
    fluff = (rng.random(m) < np.minimum(0.8, float(a["fluffed_notes"]) * weight[o])) & ~wrong
    offset = _neighbours(etude.pitch, etude.pitch[o], rng) - target  # the etude's own pitches
    corrected = wrong & (rng.random(m) < 0.25)
    slip = fluff & (rng.random(m) < SLIP_SHARE)
    slip_up = np.clip(target + SLIP_SEMITONES[instrument], None, pitch_range[1] + 12) - target
    held_slip = slip & (rng.random(m) < 0.5) & (instrument != "Bb Clarinet")
    tuning = rng.uniform(-TUNING_CENTS, TUNING_CENTS)
    cents = rng.standard_normal(m) * float(a["intonation"]) * math.sqrt(0.75)
    played = target + np.where(wrong, offset, 0.0) + np.where(slip, slip_up, 0.0)
    bend_at = np.full(m, np.inf)
    bend_at[corrected] = rng.uniform(0.3, 0.6, int(corrected.sum())) * sound[corrected]
    quick = slip & ~held_slip
    bend_at[quick] = np.minimum(0.12, 0.5 * sound[quick])
    crack = fluff & ~slip
    scoop = np.full(m, -25.0)
    start = _neighbours(etude.pitch, etude.pitch[o], rng, far_share=0.0) - target  # (m,) semitones
    scoop[crack] = np.clip(100.0 * start[crack] + rng.uniform(-30.0, 30.0, int(crack.sum())), -250.0, 250.0)
    scoop_s = np.where(crack, rng.uniform(*CRACK_S, m), 0.025)
    shift = (tuning + cents) / 100.0
    return {"midi": played + shift, "bend_to": target + shift, "bend_at": bend_at, "scoop_cents": scoop,
            "scoop_s": scoop_s, "wrong": wrong, "fluff": fluff, "cents": cents}


def _neighbours(score: np.ndarray, target: np.ndarray, rng: np.random.Generator, *,
                far_share: float = 0.3) -> np.ndarray:
    """(m,) a wrong pitch for each target: the next pitch above or below it among the pitches the
    etude uses (its scale, its accidentals), or with ``far_share`` the second-next, so a wrong note
    is a plausible misreading, not a note foreign to the piece; where the set ends, the other way."""
    notes = np.unique(score)  # (k,) sorted
    if len(notes) < 2:
        return target.astype(float) + np.where(rng.random(len(target)) < 0.5, -1.0, 1.0)
    idx = np.searchsorted(notes, target)  # every target is in the set
    step = np.where(rng.random(len(target)) < far_share, 2, 1) * np.where(rng.random(len(target)) < 0.5, -1, 1)
    k = idx + step
    k = np.where((k < 0) | (k >= len(notes)), idx - step, k)
    return notes[np.clip(k, 0, len(notes) - 1)].astype(float)


def perform(etude: Etude, amounts: dict[str, float], rng: np.random.Generator, *, instrument: str,
            pitch_range: tuple[int, int], register: tuple[int, int],
            ) -> tuple[NoteEvents, dict[str, float], dict[str, float]]:
    """Apply one student's deviations to an etude.

    Args:
        etude: the score.
        amounts: intended amount of each deviation in :data:`raympa.demo.judge.DEVIATIONS`, and
            ``tempo_factor`` (the student's tempo over the marked one; default 1).
        rng: the student's random stream.
        instrument: one of ``constants.INSTRUMENTS`` (which partial a squeak or slip jumps to).
        pitch_range: (low, high) MIDI the instrument can play; wrong notes stay inside it.
        register: (low, high) comfortable MIDI register; notes outside it are harder.

    Returns:
        ``(events, realised, extras)``: the note events to render, the realised amount of every
        deviation (what a judge hears), and rendering extras (``total_s``, ``wobble_cents``,
        ``vibrato_scale``, ``n_played``).
    """
    a = amounts
    weight = np.exp(note_difficulty(etude, register=register))
    weight /= weight.mean()  # (n,) error propensity of each note, mean 1
    plan = _plan(etude, a, rng, weight)
    t = _timing(etude, a, rng, plan, weight, lead_in_s=float(rng.uniform(0.3, 1.2)))
    sound, link, misplaced, detached = _articulation(etude, a, rng, plan, t)
    flat = float(a["flat_dynamics"])
    in_phrase = _phrase_position(etude)[plan.order]
    level_db = (1.0 - flat) * (10.0 * np.sin(np.pi * in_phrase) - 5.0) + rng.normal(0, 1.0, len(plan.order))
    amp = 10 ** (level_db / 20)
    notes = _notes(etude, a, rng, plan, sound, weight, instrument, pitch_range)
    amp = np.where(notes["fluff"], 0.7 * amp, amp)
    vib = float(a["vibrato"])
    m = len(plan.order)
    vib_depth = np.maximum(0.0, 1.0 + vib * rng.normal(0.0, 0.6, m)) * (rng.random(m) > 0.4 * vib)
    vib_rate = np.exp(vib * rng.normal(0.0, 0.2, m))
    ev = {"on": t.onset, "dur": sound, "midi": notes["midi"], "amp": amp, "bend_at": notes["bend_at"],
          "bend_to": notes["bend_to"], "vibrato": vib_depth, "vibrato_rate": vib_rate,
          "scoop_cents": notes["scoop_cents"], "scoop_s": notes["scoop_s"], "link": link}
    n_extra = _extra_notes(ev, t, etude.pitch[plan.order].astype(float), weight[plan.order],
                           float(a["extra_notes"]), rng, pitch_range, etude.pitch)
    events = _events(ev)
    wobble = 0.5 * float(a["intonation"]) + 5.0 * vib
    realised = {
        "wrong_notes": float(np.mean(notes["wrong"])),
        "fluffed_notes": float(np.mean(notes["fluff"])),
        "extra_notes": n_extra / m,
        "onset_jitter": float(np.std(t.jitter)),
        "rhythm_errors": float(np.mean(t.misread)),
        "tempo_instability": float(np.std(t.phrase_log_tempo)) if len(t.phrase_log_tempo) > 1 else 0.0,
        "tempo_drift": abs(t.drift),
        "hesitations": plan.n_hesitations / len(etude.pitch),
        "restarts": float(plan.restart.sum()),
        "mechanical_timing": float(a["mechanical_timing"]),
        "vibrato": vib,
        "legato": detached,
        "flat_dynamics": flat,
        "phrasing": misplaced,
        "intonation": float(math.sqrt(np.mean(notes["cents"] ** 2) + (0.5 * float(a["intonation"])) ** 2)),
        "tone_noise": float(a["tone_noise"]),
    }
    total_s = float(events.onset[-1] + events.dur[-1] + rng.uniform(0.4, 1.2))
    return events, realised, {"total_s": total_s, "wobble_cents": wobble, "n_played": float(m)}


def _extra_notes(ev: dict[str, np.ndarray], t: _Timing, pitch: np.ndarray, weight: np.ndarray, rate: float,
                 rng: np.random.Generator, pitch_range: tuple[int, int], score: np.ndarray) -> int:
    """Squeeze short neighbour notes (from the etude's pitches ``score``) in before hard notes (their
    time taken from the previous note)."""
    extra = rng.random(len(pitch)) < np.minimum(0.5, rate * weight)
    extra[0] = False
    neighbour = _neighbours(score, pitch, rng)  # (m,) from the etude's own pitches
    added: dict[str, list] = {k: [] for k in ev}
    for i in np.flatnonzero(extra):
        length = min(0.09, 0.3 * t.ioi[i - 1])
        if length < 0.03:
            continue
        row = {"on": t.onset[i] - length, "dur": length * 0.95,
               "midi": float(np.clip(neighbour[i], *pitch_range)),
               "amp": ev["amp"][i] * 0.8, "bend_at": np.inf, "bend_to": 0.0, "vibrato": 0.0,
               "vibrato_rate": 1.0, "scoop_cents": -25.0, "scoop_s": 0.025, "link": SLUR_DIP[1]}
        for k in ev:
            added[k].append(row[k])
    for k in ev:
        ev[k] = np.concatenate([np.asarray(ev[k], dtype=float), np.asarray(added[k], dtype=float)])
    return len(added["on"])


def _events(ev: dict[str, np.ndarray]) -> NoteEvents:
    """Note events in onset order, monophonic (a note ends where the next starts)."""
    order = np.argsort(ev["on"], kind="stable")
    on = ev["on"][order]
    du = np.minimum(ev["dur"][order], np.append(np.diff(on), np.inf))
    return NoteEvents(on, du, ev["midi"][order], ev["amp"][order], ev["bend_at"][order], ev["bend_to"][order],
                      vibrato=ev["vibrato"][order], vibrato_rate=ev["vibrato_rate"][order],
                      scoop_cents=ev["scoop_cents"][order], scoop_s=ev["scoop_s"][order], link=ev["link"][order])


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
