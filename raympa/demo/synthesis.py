"""A small harmonic synthesiser for simulated wind-instrument auditions.

pYIN only needs a periodic signal with a plausible spectrum, so each note is a sum of harmonics
with an instrument-specific static spectrum, an attack and release envelope, vibrato, an
intonation wobble, breath noise shaped by the envelope, a short room reverb and a room-noise
floor. Connected notes (``NoteEvents.link``) share one tone: the level dips between them (a
tongued note) or hardly at all (a slur) instead of stopping, so the tone stops only where the
player does. Everything is vectorised over samples; the harmonics use the Chebyshev recurrence
``sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x)`` so only one sine and one cosine are evaluated
per sample. Units: seconds, Hz, cents, linear amplitude; audio is float32 in [-1, 1] at
``constants.SAMPLE_RATE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raympa import constants as C


@dataclass(frozen=True)
class Timbre:
    """Static description of an instrument's sound (values are ours, chosen by ear and from the
    textbook shapes: flute close to sinusoidal with breath noise, clarinet odd-harmonic dominated
    in the chalumeau register, saxophone rich in harmonics)."""

    harmonics: tuple[float, ...]  # relative amplitude of harmonics 1..K
    breath: float  # breath-noise amplitude relative to the tone
    vibrato_cents: float  # typical vibrato depth (peak), 0 = none
    vibrato_hz: float  # vibrato rate
    attack_s: float  # attack time constant
    release_s: float  # release length


TIMBRES = {
    "Flute": Timbre((1.0, 0.45, 0.22, 0.12, 0.06, 0.04, 0.02), breath=0.06, vibrato_cents=18.0,
                    vibrato_hz=5.2, attack_s=0.035, release_s=0.05),
    "Bb Clarinet": Timbre((1.0, 0.06, 0.65, 0.05, 0.45, 0.05, 0.3, 0.04, 0.18, 0.03, 0.1, 0.02),
                          breath=0.012, vibrato_cents=0.0, vibrato_hz=5.0, attack_s=0.025, release_s=0.04),
    "Alto Saxophone": Timbre((1.0, 0.85, 0.62, 0.5, 0.42, 0.35, 0.28, 0.22, 0.17, 0.13, 0.1, 0.08, 0.06),
                             breath=0.02, vibrato_cents=14.0, vibrato_hz=5.6, attack_s=0.02, release_s=0.04),
}


# A poor tone (``tone_noise`` 1) adds this much breath noise (relative to the tone, before the common
# factor 3), the same for every instrument: more would blur the pitch itself (ours).
TONE_NOISE_BREATH = 0.04


@dataclass(frozen=True)
class NoteEvents:
    """A performed monophonic line: one entry per sounding note (times in seconds)."""

    onset: np.ndarray  # (n,) s
    dur: np.ndarray  # (n,) s, sounding length including the release
    midi: np.ndarray  # (n,) float, concert MIDI including the intonation offset
    amp: np.ndarray  # (n,) linear amplitude
    bend_at: np.ndarray  # (n,) s into the note where its pitch changes (a corrected wrong note); inf = never
    bend_to: np.ndarray  # (n,) float MIDI after bend_at
    vibrato: np.ndarray | None = None  # (n,) multiplies the timbre's vibrato depth; None = 1
    vibrato_rate: np.ndarray | None = None  # (n,) multiplies the timbre's vibrato rate; None = 1
    scoop_cents: np.ndarray | None = None  # (n,) pitch offset at the onset, decaying; None = -25 cents
    scoop_s: np.ndarray | None = None  # (n,) time constant of that decay; None = 25 ms
    link: np.ndarray | None = None  # (n,) where the note joins the next one: 0 = it ends (silence follows),
    # > 0 = connected, the level (share of the amplitude) the tone dips to (tongued about 0.1-0.3, slurred
    # about 1); a connected note sounds until the next onset. None = every note ends


def _synth_py(onset, dur, midi, amp, bend_at, bend_to, vib_phase, n, sr, harmonics, max_ratio,
              vib_cents, vib_hz, scoop_cents, scoop_s, floor_in, floor_out, attack_s, release_s,
              wob_knots, wob_rate, wob_cents,
              trem_knots, trem_rate, trem_depth, noise, breath_gain, bq, floor_noise, floor_alpha):
    """Per-sample synthesis loop (compiled with numba by :func:`_kernel`; plain Python is far too slow).

    ``floor_in`` / ``floor_out``: (n_notes,) share of the amplitude a note's attack starts from and
    its release ends at (0 = from and to silence; a connected note dips only to its link level).

    Returns ``(tone, floor)``: the instrument signal with its breath noise, and a low-passed
    noise floor with unit-ish level, both ``(n,)`` float32.
    """
    tone = np.zeros(n, dtype=np.float32)
    env = np.zeros(n, dtype=np.float32)
    two_pi = 2.0 * np.pi
    phase = 0.0
    n_harm = harmonics.shape[0]
    n_wob = wob_knots.shape[0]
    n_trem = trem_knots.shape[0]
    for j in range(onset.shape[0]):
        s0 = int(np.round(onset[j] * sr))
        s1 = min(n, int(np.round((onset[j] + dur[j]) * sr)))
        if s0 < 0 or s1 - s0 < 4:
            continue
        rel = max(2, min(int(release_s * sr), (s1 - s0) // 4))
        f_in = floor_in[j]
        f_out = floor_out[j]
        for i in range(s0, s1):
            t = (i - s0) / sr  # s into the note
            cents = scoop_cents[j] * np.exp(-t / scoop_s[j])  # a scoop into the note (a fluff: a large one)
            if vib_cents[j] > 0.0:
                ramp = min(max((t - 0.15) / 0.2, 0.0), 1.0)  # vibrato starts after 150 ms
                cents += vib_cents[j] * ramp * np.sin(two_pi * vib_hz[j] * t + vib_phase[j])
            if wob_cents > 0.0:
                x = i / sr * wob_rate
                k = min(int(x), n_wob - 2)
                cents += wob_cents * (wob_knots[k] + (x - k) * (wob_knots[k + 1] - wob_knots[k]))
            m = midi[j] if t < bend_at[j] else bend_to[j]
            f = 440.0 * 2.0 ** ((m - 69.0) / 12.0 + cents / 1200.0)
            e = amp[j] * (f_in + (1.0 - f_in) * (1.0 - np.exp(-t / attack_s)))
            k_rel = i - (s1 - rel)
            if k_rel >= 0:
                c = np.cos(0.5 * np.pi * k_rel / (rel - 1))
                e *= f_out + (1.0 - f_out) * c * c
            if trem_depth > 0.0:
                x = i / sr * trem_rate
                k = min(int(x), n_trem - 2)
                e *= max(0.0, 1.0 + trem_depth * (trem_knots[k] + (x - k) * (trem_knots[k + 1] - trem_knots[k])))
            phase += two_pi * f / sr
            if phase >= two_pi:
                phase -= two_pi * np.floor(phase / two_pi)
            s_cur = np.sin(phase)
            c2 = 2.0 * np.cos(phase)
            acc = harmonics[0] * s_cur
            s_prev = 0.0
            k_max = min(n_harm, int(max_ratio * sr / f))
            for h in range(1, k_max):  # Chebyshev recurrence: sin(h x) from sin((h-1) x), sin((h-2) x)
                s_next = c2 * s_cur - s_prev
                s_prev = s_cur
                s_cur = s_next
                acc += harmonics[h] * s_cur
            tone[i] = e * acc
            env[i] = e
    floor = np.zeros(n, dtype=np.float32)
    x1 = x2 = y1 = y2 = 0.0
    lp = 0.0
    b0, b1, b2, a1, a2 = bq[0], bq[1], bq[2], bq[3], bq[4]
    for i in range(n):
        x = noise[i]
        y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2  # band-passed breath noise
        x2 = x1
        x1 = x
        y2 = y1
        y1 = y
        tone[i] += breath_gain * env[i] * y
        lp += floor_alpha * (floor_noise[i] - lp)  # one-pole low-pass room noise
        floor[i] = lp
    return tone, floor


_KERNEL = None


def _kernel():
    """The numba-compiled synthesis loop (compiled once per process, cached on disk)."""
    global _KERNEL
    if _KERNEL is None:
        import numba

        _KERNEL = numba.njit(cache=True)(_synth_py)
    return _KERNEL


def _per_note(values: np.ndarray | None, n_notes: int, default: float) -> np.ndarray:
    """(n_notes,) float64: ``values``, or ``default`` for every note."""
    if values is None:
        return np.full(n_notes, default, dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _junctions(events: NoteEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Onsets and sounding lengths (s), and the envelope floors at each note's start and end.

    A connected note (``link > 0``, not the last) sounds until the next onset and releases only to
    its link level; the next note's attack starts from that level, so the tone does not stop.
    """
    onset = np.asarray(events.onset, np.float64)
    dur = np.asarray(events.dur, np.float64).copy()
    link = _per_note(events.link, len(onset), 0.0)
    link[-1:] = 0.0
    connected = link > 0
    dur[connected] = np.diff(onset)[connected[:-1]]
    floor_out = np.clip(np.where(connected, link, 0.0), 0.0, 1.0)
    floor_in = np.concatenate([[0.0], floor_out[:-1]])
    return onset, dur, floor_in, floor_out


def midi_to_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def render(
    events: NoteEvents,
    timbre: Timbre,
    *,
    total_s: float,
    rng: np.random.Generator,
    sr: int = C.SAMPLE_RATE,
    vibrato_scale: float = 1.0,
    wobble_cents: float = 0.0,
    tone_noise: float = 0.0,
    room_noise_db: float = -50.0,
    reverb_s: float = 0.35,
) -> np.ndarray:
    """Render note events to mono audio.

    Args:
        events: the notes to play.
        timbre: instrument spectrum, breath noise, vibrato, envelope.
        total_s: length of the output in seconds.
        rng: source of the noises and vibrato phases.
        vibrato_scale: multiplies the timbre's vibrato depth (a player's habit).
        wobble_cents: RMS of a slow (about 3 Hz) pitch wobble inside notes (unstable intonation).
        tone_noise: 0..1, more breath noise and amplitude unsteadiness (a poor tone).
        room_noise_db: noise floor relative to full scale.
        reverb_s: decay time (-60 dB) of the room's reverb.

    Returns:
        ``(n_samples,)`` float32 audio, peak 0.7.
    """
    from scipy import signal

    n = int(round(total_s * sr))
    n_notes = len(events.onset)
    onset, dur, floor_in, floor_out = _junctions(events)
    vib_phase = rng.uniform(0.0, 2 * np.pi, n_notes)
    wob_rate, trem_rate = 3.0, 6.0  # Hz: knots per second of the wobble and tremolo curves
    wob = rng.standard_normal(int(total_s * wob_rate) + 4)
    trem = rng.standard_normal(int(total_s * trem_rate) + 4)
    # linear interpolation between N(0,1) knots has RMS sqrt(2/3); rescale to unit RMS
    wob *= np.sqrt(1.5)
    trem *= np.sqrt(1.5)
    b, a_ = signal.butter(1, [1500.0, min(9000.0, 0.45 * sr)], btype="band", fs=sr)  # one biquad
    bq = np.array([b[0], b[1], b[2], a_[1], a_[2]], dtype=np.float64)
    noise = rng.standard_normal(n, dtype=np.float32)
    floor_noise = rng.standard_normal(n, dtype=np.float32)
    floor_alpha = 1.0 - np.exp(-2 * np.pi * 2000.0 / sr)  # 2 kHz one-pole low-pass
    breath_gain = 3.0 * (timbre.breath + TONE_NOISE_BREATH * tone_noise)
    tone, floor = _kernel()(
        onset, dur, np.asarray(events.midi, np.float64), np.asarray(events.amp, np.float64),
        np.asarray(events.bend_at, np.float64), np.asarray(events.bend_to, np.float64), vib_phase,
        n, float(sr), np.asarray(timbre.harmonics, np.float64), 0.45,
        timbre.vibrato_cents * vibrato_scale * _per_note(events.vibrato, n_notes, 1.0),
        timbre.vibrato_hz * _per_note(events.vibrato_rate, n_notes, 1.0),
        _per_note(events.scoop_cents, n_notes, -25.0), _per_note(events.scoop_s, n_notes, 0.025),
        floor_in, floor_out, timbre.attack_s, timbre.release_s,
        wob, wob_rate, float(wobble_cents), trem, trem_rate, 0.25 * float(tone_noise),
        noise, float(breath_gain), bq, floor_noise, float(floor_alpha),
    )
    # room: exponentially decaying noise impulse response, mixed in at a low level
    ir_n = int(reverb_s * sr)
    ir = rng.standard_normal(ir_n) * np.exp(-6.9 * np.arange(ir_n) / ir_n)
    ir *= 0.12 / np.sqrt(np.sum(ir**2))
    y = tone + signal.oaconvolve(tone, ir.astype(np.float32))[:n]
    peak = float(np.max(np.abs(y))) or 1.0
    y *= np.float32(0.7 / peak)
    floor *= np.float32(10 ** (room_noise_db / 20) / max(float(np.std(floor)), 1e-12))
    return (y + floor).astype(np.float32)
