"""Audio decoding for pitch extraction: probe, cut a segment, stream it as mono at a target rate.

Everything here works block by block, so a 20-minute audition never sits in memory as one
array: :func:`iter_segment` reads the file in pieces with soundfile (libsndfile >= 1.1 decodes
wav, flac, ogg and mp3), mixes down to mono (channel mean, as ``librosa.to_mono``) and resamples
with a streaming soxr resampler at librosa's default quality (``soxr_hq``), so the samples match
``librosa.load(path, sr=sample_rate, mono=True)`` up to resampler edge effects.

Bad input raises :class:`AudioError` with a one-line reason a user can act on (missing file,
empty file, not audio, truncated or corrupt file, segment outside the file).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

READ_BLOCK = 1 << 18  # native samples per soundfile read (about 6 s at 44.1 kHz), ours
HASH_BLOCK = 1 << 20  # bytes per read when hashing a file, ours


class AudioError(ValueError):
    """An input that cannot be turned into samples; the message is one line for errors.csv."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (no decoding)."""

    sample_rate: int  # Hz, native
    n_samples: int  # per channel, native rate
    channels: int
    format: str  # libsndfile's major format, e.g. "WAV", "MP3"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sample_rate


@dataclass(frozen=True)
class Segment:
    """The part of a file to decode, in native samples."""

    start: int  # first native sample
    n_samples: int  # native samples
    truncated: bool  # the requested segment ran past the end of the file and was cut there


def file_sha1(path: str | Path) -> str:
    """Hex sha1 of a file's bytes, read in blocks."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_BLOCK):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: str | Path) -> None:
    """Raise AudioError for a missing, non-regular or empty file."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"missing file: {path}")
    if not path.is_file():
        raise AudioError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")


def _decoder_message(e: BaseException) -> str:
    """libsndfile's reason, one line, without the "Error opening 'PATH': " prefix."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = re.sub(r"^Error opening '.*?': ", "", text)
    if "not a regular file" in text:  # what libsndfile's mp3 probe says about junk bytes
        return "unrecognised format or corrupt data"
    return text


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file: a reason when its data chunk is shorter than the header says.

    libsndfile silently reads what is there, so a cut-off download would otherwise pass.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                available = size - pos - 8
                # 0 and 0xFFFFFFFF are the "unknown length" conventions of streamed WAVs
                if clen not in (0, 0xFFFFFFFF) and clen > available:
                    return f"truncated file: WAV data chunk declares {clen} bytes, file holds {available}"
                return None
            pos += 8 + clen + (clen & 1)
    return None


def probe(path: str | Path) -> AudioInfo:
    """Read a file's header.

    Raises:
        AudioError: missing, empty, not audio, truncated, or holding no samples.
    """
    import soundfile as sf

    path = Path(path)
    check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"not a readable audio file: {_decoder_message(e)}") from None
    reason = _wav_truncation(path)
    if reason:
        raise AudioError(reason)
    if info.frames <= 0:
        raise AudioError("no audio samples in file")
    return AudioInfo(sample_rate=int(info.samplerate), n_samples=int(info.frames),
                     channels=int(info.channels), format=str(info.format))


def plan_segment(info: AudioInfo, *, start: float | None = None, duration: float | None = None) -> Segment:
    """Turn a segment in seconds (None or NaN = from the start / to the end) into native samples.

    A segment that starts inside the file but ends past its end is cut at the end and marked
    ``truncated``; one that starts outside the file (or has a non-positive duration) is an error.
    """
    start_s = 0.0 if start is None or math.isnan(start) else float(start)
    if start_s < 0:
        raise AudioError(f"segment starts at {start_s:g} s, before the start of the file")
    first = int(round(start_s * info.sample_rate))
    if first >= info.n_samples:
        raise AudioError(f"segment starts at {start_s:g} s, outside the file ({info.duration:.2f} s long)")
    if duration is None or math.isnan(duration):
        return Segment(start=first, n_samples=info.n_samples - first, truncated=False)
    if duration <= 0:
        raise AudioError(f"segment duration {duration:g} s is not positive")
    n = int(round(float(duration) * info.sample_rate))
    # a rounding-size overshoot (< 10 ms) is not worth a flag
    truncated = first + n > info.n_samples + info.sample_rate // 100
    return Segment(start=first, n_samples=min(n, info.n_samples - first), truncated=truncated)


def iter_segment(
    path: str | Path, segment: Segment, *, sample_rate: int, read_block: int = READ_BLOCK
) -> Iterator[np.ndarray]:
    """Yield a segment as mono float32 pieces at ``sample_rate`` Hz, never the whole file at once.

    Raises:
        AudioError: the decoder fails part-way (corrupt or truncated file).
    """
    import soundfile as sf

    resampler = None
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = int(f.samplerate)
            if native_sr != sample_rate:
                import soxr

                # librosa.load's default res_type is soxr_hq
                resampler = soxr.ResampleStream(native_sr, sample_rate, 1, dtype="float32", quality="HQ")
            if segment.start:
                f.seek(segment.start)
            left = segment.n_samples
            while left > 0:
                block = f.read(min(read_block, left), dtype="float32", always_2d=True)  # (n, channels)
                if len(block) == 0:
                    break  # header over-stated the length (mp3 estimates): stop at the real end
                left -= len(block)
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]  # (n,)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=left <= 0)
                if len(mono):
                    yield np.ascontiguousarray(mono, dtype=np.float32)
            if resampler is not None and left > 0:  # early end: flush the resampler
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if len(tail):
                    yield tail.astype(np.float32)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"corrupt or truncated audio: {_decoder_message(e)}") from None


def load_segment(
    path: str | Path, *, sample_rate: int, start: float | None = None, duration: float | None = None
) -> np.ndarray:
    """The whole segment as one mono float32 array at ``sample_rate`` (for short files and tests)."""
    seg = plan_segment(probe(path), start=start, duration=duration)
    pieces = list(iter_segment(path, seg, sample_rate=sample_rate))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def is_audio_path(path: Path, extensions: tuple[str, ...]) -> bool:
    """True for a file whose (lower-cased) extension is one of ``extensions``."""
    return path.suffix.lower() in extensions and not path.name.startswith(".")


def relative_id(path: Path, root: Path, *, suffix: str | None = None) -> str:
    """Recording id: the path relative to ``root`` without its extension (or ``suffix``), '/'-separated."""
    rel = path.relative_to(root).as_posix()
    if suffix and rel.endswith(suffix):
        return rel[: -len(suffix)]
    return rel[: -len(path.suffix)] if path.suffix else rel


__all__ = [
    "AudioError",
    "AudioInfo",
    "Segment",
    "check_file",
    "file_sha1",
    "probe",
    "plan_segment",
    "iter_segment",
    "load_segment",
    "is_audio_path",
    "relative_id",
]
