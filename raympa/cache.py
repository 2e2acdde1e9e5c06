"""Content-addressed cache of pitch contours.

An entry's key is the sha1 of everything that determines the contour: the source file's bytes
(as their sha1), the segment, the extraction parameters and a code version. So a renamed or
moved file still hits, and any changed parameter misses. Entries are single files::

    ROOT/contours/<key[:2]>/<key>.rmc

    line 1   b"RAYMPA-CONTOUR-1\\n"                 (format magic)
    line 2   JSON header: {"n": frames, "checksum": sha1(meta JSON + payload), "meta": {...}}
    rest     n little-endian float32 values (MIDI per frame, 0 = unvoiced)

Writes go to a temporary file in the same folder and are moved into place with ``os.replace``
(atomic on POSIX), so an interrupted run leaves at most a ``*.tmp-*`` file that is never read.
A read verifies the magic, the length and the checksum; a bad entry counts as a miss (and is
removed), so the caller recomputes and rewrites it.

Location: the ``cache_dir`` argument / ``--cache-dir``, else ``$RAYMPA_CACHE``, else
``~/.cache/raympa``. On a multi-node cluster, point it at shared storage (NFS) so every node
sees every entry; a node-local folder still gives correct results, just fewer hits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"RAYMPA-CONTOUR-1\n"
ENV_VAR = "RAYMPA_CACHE"


def default_cache_dir() -> Path:
    """``$RAYMPA_CACHE`` if set, else ``~/.cache/raympa``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "raympa"


def cache_key(**parts: Any) -> str:
    """sha1 hex of the parts as canonical JSON (sorted keys; floats as repr)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha1(blob).hexdigest()


def _checksum(meta_json: bytes, payload: bytes) -> str:
    return hashlib.sha1(meta_json + b"\0" + payload).hexdigest()


class ContourCache:
    """A folder of content-addressed contour entries (safe for concurrent writers)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / "contours" / key[:2] / f"{key}.rmc"

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The cached ``(midi float32 (n_frames,), meta)``, or None on a miss or a corrupt entry."""
        return self.lookup(key)[0]

    def lookup(self, key: str) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, str]:
        """``(entry or None, status)`` with status ``"hit"``, ``"miss"`` or ``"corrupt"``.

        A corrupt entry (bad magic, header, length or checksum) is removed and reported.
        """
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, "miss"
        except OSError as e:
            log.warning("contour cache: cannot read %s (%s); recomputing", path, e)
            return None, "miss"
        entry = self._parse(data)
        if entry is None:
            log.warning("contour cache: corrupt entry %s; recomputing", path)
            try:
                path.unlink()
            except OSError:
                pass
            return None, "corrupt"
        return entry, "hit"

    @staticmethod
    def _parse(data: bytes) -> tuple[np.ndarray, dict[str, Any]] | None:
        if not data.startswith(MAGIC):
            return None
        end = data.find(b"\n", len(MAGIC))
        if end < 0:
            return None
        try:
            header = json.loads(data[len(MAGIC) : end])
            n = int(header["n"])
            meta = header["meta"]
            checksum = str(header["checksum"])
        except (ValueError, KeyError, TypeError):
            return None
        payload = data[end + 1 :]
        if len(payload) != 4 * n:
            return None
        meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        if _checksum(meta_json, payload) != checksum:
            return None
        midi = np.frombuffer(payload, dtype="<f4").astype(np.float32)  # (n_frames,), own copy
        return midi, meta

    def put(self, key: str, midi: np.ndarray, meta: dict[str, Any]) -> Path:
        """Write an entry atomically (temporary file + ``os.replace``) and return its path."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = np.ascontiguousarray(midi, dtype="<f4").tobytes()
        meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        header = json.dumps(
            {"n": len(payload) // 4, "checksum": _checksum(meta_json, payload), "meta": meta},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC + header + b"\n" + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


__all__ = ["ContourCache", "cache_key", "default_cache_dir", "ENV_VAR", "MAGIC"]
