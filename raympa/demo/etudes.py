"""Etudes for simulated auditions: generated etude-like melodies, or the real FBA etude MIDIs.

An :class:`Etude` is the *score*: notes in concert-pitch MIDI numbers with onsets and durations
in beats, a phrase index per note, and a nominal tempo. Etudes are generated from a seed out of
etude-like material (scales, arpeggios, stepwise lines, varied rhythms), or read from the real FBA
etude MIDIs (``FBA2013..2015/middleschool/musicalscores/altosax/*.mid`` in the MIG-FbaData
annotation repository, concert pitch F3-F5) when an annotation folder is given.

Instrument ranges (concert pitch, as constants.py): alto saxophone Db3-Ab5 (MIDI 49-80), Bb
clarinet D3-Bb6 (50-94), flute C4-D7 (60-98). Middle-school etudes keep to a comfortable inner
register; symphonic-band etudes use more of the range, faster tempi, sixteenths and chromatic
runs, and last longer (technical etudes last a median of about 30 s in middle school and about
48 s in symphonic band, counted in the MIG-FbaData segment files; Seshadri & Lerch 2021, section
4.1: about 30 s and 50 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Full written-range limits in concert MIDI (constants.py comment on FMIN/FMAX).
RANGES = {"Alto Saxophone": (49, 80), "Bb Clarinet": (50, 94), "Flute": (60, 98)}
# Comfortable register for each level: (low, high) concert MIDI (ours).
REGISTERS = {
    "middleschool": {"Alto Saxophone": (53, 75), "Bb Clarinet": (55, 79), "Flute": (62, 86)},
    "symphonicband": {"Alto Saxophone": (50, 79), "Bb Clarinet": (52, 89), "Flute": (60, 94)},
}
# Median technical-etude duration in ../shared/fba segment files, 2013-2018 (seconds).
TARGET_SECONDS = {"middleschool": 30.0, "symphonicband": 48.0}
TEMPO_BPM = {"middleschool": (92.0, 116.0), "symphonicband": (112.0, 140.0)}  # ours
BEATS_PER_PHRASE = 8  # two 4/4 bars per phrase (ours)

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor


@dataclass(frozen=True)
class Etude:
    """A monophonic score. Arrays have one entry per note."""

    name: str
    pitch: np.ndarray  # (n,) int, concert MIDI
    start: np.ndarray  # (n,) float, beats from the start
    dur: np.ndarray  # (n,) float, beats
    phrase: np.ndarray  # (n,) int, phrase index (breaths go between phrases)
    tempo_bpm: float

    def __post_init__(self) -> None:
        n = len(self.pitch)
        if n == 0:
            raise ValueError(f"etude {self.name!r} has no notes")
        if not (len(self.start) == len(self.dur) == len(self.phrase) == n):
            raise ValueError(f"etude {self.name!r}: pitch/start/dur/phrase lengths differ")

    @property
    def n_beats(self) -> float:
        return float(self.start[-1] + self.dur[-1])

    @property
    def seconds(self) -> float:
        """Nominal duration at the etude's tempo."""
        return self.n_beats * 60.0 / self.tempo_bpm

    def fit_range(self, low: int, high: int) -> "Etude":
        """Transpose by whole octaves so the notes fit [low, high] as well as possible."""
        best, best_out = 0, None
        for shift in range(-48, 49, 12):
            p = self.pitch + shift
            out = int(np.sum(np.maximum(low - p, 0) + np.maximum(p - high, 0)))
            centre = abs((p.min() + p.max()) / 2 - (low + high) / 2)
            key = (out, centre)
            if best_out is None or key < best_out:
                best, best_out = shift, key
        pitch = np.clip(self.pitch + best, low, high)
        return Etude(self.name, pitch, self.start, self.dur, self.phrase, self.tempo_bpm)

    def with_seconds(self, seconds: float) -> "Etude":
        """The same notes at the tempo that makes the etude last ``seconds``."""
        return Etude(self.name, self.pitch, self.start, self.dur, self.phrase,
                     self.n_beats * 60.0 / seconds)


def _phrase_rhythm(rng: np.random.Generator, level: str) -> list[float]:
    """Durations (beats) of one phrase: 8 beats, ending with a held note and a breath."""
    if level == "symphonicband":
        cells = [[0.25] * 4, [0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [0.5, 0.5], [0.75, 0.25], [0.25] * 4]
    else:
        cells = [[0.5, 0.5], [1.0], [0.5, 0.5], [0.75, 0.25], [0.25, 0.25, 0.5], [0.5, 0.5]]
    beats: list[float] = []
    while sum(beats) < BEATS_PER_PHRASE - 2:
        beats.extend(cells[rng.integers(len(cells))])
    # the last 2 beats: a held note (1 or 1.5 beats) then a rest for breath (kept as a gap)
    beats.append(BEATS_PER_PHRASE - sum(beats) - 0.5)
    return beats


def _phrase_pitches(rng: np.random.Generator, n: int, scale: np.ndarray, pos: int, lo: int, hi: int,
                    level: str) -> tuple[list[int], int]:
    """Scale-degree walk of one of several etude figures; returns MIDI pitches and the end degree."""
    figure = rng.choice(["scale", "arpeggio", "stepwise", "thirds", "chromatic"],
                        p=[0.3, 0.2, 0.3, 0.2, 0.0] if level == "middleschool" else [0.25, 0.2, 0.2, 0.15, 0.2])
    direction = 1 if rng.random() < 0.5 else -1
    out: list[int] = []
    chromatic_base = None
    for i in range(n):
        if figure == "scale":
            step = direction
        elif figure == "arpeggio":
            step = 2 * direction if i % 4 != 3 else 1 * direction
        elif figure == "thirds":
            step = 2 * direction if i % 2 == 0 else -1 * direction
        elif figure == "chromatic":
            step = 0
        else:
            step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
        if figure == "chromatic":
            if chromatic_base is None:
                chromatic_base = _degree_to_midi(pos, scale)
            p = chromatic_base + direction * i
            if p < lo or p > hi:
                direction = -direction
                p = chromatic_base + direction * i
            out.append(int(np.clip(p, lo, hi)))
            continue
        nxt = pos + step
        if not lo <= _degree_to_midi(nxt, scale) <= hi:
            direction = -direction
            nxt = pos - step
        pos = nxt
        out.append(_degree_to_midi(pos, scale))
    if figure == "chromatic" and chromatic_base is not None:
        pos = _midi_to_degree(out[-1], scale)
    return out, pos


def _degree_to_midi(degree: int, scale: np.ndarray) -> int:
    octave, idx = divmod(degree, len(scale))
    return int(scale[idx] + 12 * octave)


def _midi_to_degree(midi: int, scale: np.ndarray) -> int:
    degrees = np.arange(-70, 70)
    pitches = np.array([_degree_to_midi(d, scale) for d in degrees])
    return int(degrees[np.argmin(np.abs(pitches - midi))])


def generate_etude(rng: np.random.Generator, *, instrument: str, level: str, name: str = "generated") -> Etude:
    """An etude-like melody for one instrument and level (see the module docstring).

    Args:
        rng: source of randomness (the etude is a pure function of its state).
        instrument: one of ``RANGES``.
        level: ``middleschool`` or ``symphonicband``.
    """
    if instrument not in RANGES or level not in REGISTERS:
        raise ValueError(f"instrument {instrument!r} / level {level!r} unknown")
    lo, hi = REGISTERS[level][instrument]
    tonic = int(rng.integers(0, 12))
    scale = (_MAJOR if rng.random() < 0.7 else _MINOR) + tonic + 12 * ((lo + 4) // 12)
    tempo = float(rng.uniform(*TEMPO_BPM[level]))
    n_phrases = max(2, int(round(TARGET_SECONDS[level] * tempo / 60.0 / BEATS_PER_PHRASE)))
    pos = _midi_to_degree((lo + hi) // 2, scale)
    pitch, start, dur, phrase = [], [], [], []
    t = 0.0
    for k in range(n_phrases):
        rhythm = _phrase_rhythm(rng, level)
        notes, pos = _phrase_pitches(rng, len(rhythm), scale, pos, lo, hi, level)
        for p, d in zip(notes, rhythm):
            pitch.append(p)
            start.append(t)
            dur.append(d)
            phrase.append(k)
            t += d
        t += 0.5  # the phrase's rest (breath)
    return Etude(name, np.array(pitch, dtype=np.int64), np.array(start), np.array(dur),
                 np.array(phrase, dtype=np.int64), tempo)


def read_midi_etude(path: str | Path, *, name: str | None = None, phrase_gap_beats: float = 0.5,
                    phrase_max_beats: float = 12.0) -> Etude:
    """Read a monophonic MIDI file (e.g. an FBA etude) as an :class:`Etude`.

    Phrases break at rests of at least ``phrase_gap_beats`` and after notes of 2 beats or more,
    and at the latest every ``phrase_max_beats``. Overlapping notes keep the newest (monophony).
    """
    import mido

    midi = mido.MidiFile(str(path))
    tpb = float(midi.ticks_per_beat)
    tempo_us = 500_000  # MIDI default: 120 bpm
    active: dict[int, float] = {}
    notes: list[tuple[float, float, int]] = []
    for track in midi.tracks:
        ticks = 0
        for msg in track:
            ticks += msg.time
            beat = ticks / tpb
            if msg.type == "set_tempo":
                tempo_us = msg.tempo
            elif msg.type == "note_on" and msg.velocity > 0:
                active[msg.note] = beat
            elif msg.type in ("note_off", "note_on") and msg.note in active:
                on = active.pop(msg.note)
                if beat > on:
                    notes.append((on, beat - on, msg.note))
    if not notes:
        raise ValueError(f"{path}: no notes")
    notes.sort()
    start = np.array([n[0] for n in notes])
    dur = np.array([n[1] for n in notes])
    dur[:-1] = np.minimum(dur[:-1], np.diff(start))  # monophonic
    keep = dur > 0
    start, dur = start[keep], dur[keep]
    pitch = np.array([n[2] for n in notes])[keep]
    start = start - start[0]
    phrase = np.zeros(len(start), dtype=np.int64)
    k, phrase_start = 0, 0.0
    for i in range(1, len(start)):
        gap = start[i] - (start[i - 1] + dur[i - 1])
        if gap >= phrase_gap_beats or dur[i - 1] >= 2.0 or start[i] - phrase_start >= phrase_max_beats:
            k += 1
            phrase_start = start[i]
        phrase[i] = k
    return Etude(name or Path(path).stem, pitch.astype(np.int64), start, dur, phrase, 60e6 / tempo_us)


def fba_etude_midis(annotations: str | Path) -> dict[int, Path]:
    """The real middle-school technical etudes of a MIG-FbaData checkout: year -> MIDI path."""
    from raympa.fba import annotation_scores

    return annotation_scores(annotations)


def write_midi_etude(etude: Etude, path: str | Path, *, ticks_per_beat: int = 480) -> Path:
    """Write an etude as a one-track MIDI file at its nominal tempo (what :func:`read_midi_etude`
    reads back: the same pitches, onsets and durations in beats, and tempo)."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=int(round(60e6 / etude.tempo_bpm)), time=0))
    track.append(mido.MetaMessage("track_name", name=etude.name, time=0))
    events = []  # (tick, order, message): offs before ons at the same tick
    for p, st, du in zip(etude.pitch, etude.start, etude.dur):
        on = int(round(st * ticks_per_beat))
        off = max(on + 1, int(round((st + du) * ticks_per_beat)))
        events.append((on, 1, mido.Message("note_on", note=int(p), velocity=80)))
        events.append((off, 0, mido.Message("note_off", note=int(p), velocity=0)))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def note_difficulty(etude: Etude, *, register: tuple[int, int]) -> np.ndarray:
    """A difficulty per note, read from the score: 0 = easy, about 1-3 = hard (weights ours).

    Adds up: a leap from the previous note (per semitone beyond a whole tone, 0.15), a fast note
    (a quarter of a beat or less, 0.6; an eighth, 0.25), a register outside the comfortable
    ``register`` (low, high) (0.25 per semitone beyond it), and an accidental (a pitch class outside
    the major scale that fits the etude best, 0.7).

    Returns:
        ``(n_notes,)`` float64.
    """
    pitch = etude.pitch.astype(float)
    leap = np.abs(np.diff(pitch, prepend=pitch[0]))
    d = 0.15 * np.maximum(leap - 2.0, 0.0)
    ioi = np.diff(np.append(etude.start, etude.n_beats))
    d += np.where(ioi <= 0.26, 0.6, np.where(ioi <= 0.51, 0.25, 0.0))
    lo, hi = register
    d += 0.25 * (np.maximum(lo - pitch, 0.0) + np.maximum(pitch - hi, 0.0))
    pcs = etude.pitch % 12
    fits = [np.isin(pcs, (_MAJOR + k) % 12).sum() for k in range(12)]
    key = int(np.argmax(fits))
    d += 0.7 * ~np.isin(pcs, (_MAJOR + key) % 12)
    return d
