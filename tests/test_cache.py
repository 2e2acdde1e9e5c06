"""The content-addressed contour cache: round trip, miss, corruption, atomic writes, keys."""

from __future__ import annotations

import numpy as np
import pytest

from raympa.cache import MAGIC, ContourCache, cache_key, default_cache_dir


@pytest.fixture()
def cache(tmp_path):
    return ContourCache(tmp_path / "cache")


def _midi(n=50):
    return np.linspace(60, 72, n, dtype=np.float32) * (np.arange(n) % 7 != 0)  # some unvoiced zeros


def test_round_trip_and_miss(cache):
    key = cache_key(source_sha1="abc", segment=[0, 100], config={"hop_length": 256}, code="v1")
    assert cache.lookup(key) == (None, "miss")
    midi = _midi()
    path = cache.put(key, midi, {"segment_start": 0.0, "truncated": False})
    assert path.is_file() and path.read_bytes().startswith(MAGIC)
    entry, status = cache.lookup(key)
    assert status == "hit"
    got, meta = entry
    assert got.dtype == np.float32 and np.array_equal(got, midi)
    assert meta == {"segment_start": 0.0, "truncated": False}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_key_depends_on_every_part():
    base = dict(source_sha1="abc", segment=[0, 100], config={"hop_length": 256, "fmax": 2400.0}, code="v1")
    k0 = cache_key(**base)
    assert cache_key(**dict(base)) == k0  # deterministic
    assert cache_key(**{**base, "config": {"fmax": 2400.0, "hop_length": 256}}) == k0  # order-free
    for change in ({"source_sha1": "abd"}, {"segment": [0, 101]}, {"config": {"hop_length": 128, "fmax": 2400.0}},
                   {"code": "v2"}):
        assert cache_key(**{**base, **change}) != k0, change


@pytest.mark.parametrize("damage", ["flip_payload", "flip_header", "truncate", "empty", "garbage"])
def test_corrupt_entry_is_detected_and_removed(cache, damage):
    key = cache_key(x=1)
    path = cache.put(key, _midi(), {"a": 1})
    data = bytearray(path.read_bytes())
    if damage == "flip_payload":
        data[-3] ^= 0xFF
    elif damage == "flip_header":
        i = data.index(b'"a":1')
        data[i + 4] = ord("2")
    elif damage == "truncate":
        data = data[: len(data) - 5]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"not a cache entry\n")
    path.write_bytes(bytes(data))
    assert cache.lookup(key) == (None, "corrupt")
    assert not path.exists()  # removed, so the next put starts clean
    cache.put(key, _midi(), {"a": 1})
    assert cache.lookup(key)[1] == "hit"


def test_interrupted_write_is_never_read(cache, monkeypatch):
    """A crash between writing the temporary file and os.replace leaves no trusted entry."""
    import os

    key = cache_key(x=2)

    def boom(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put(key, _midi(), {})
    monkeypatch.undo()
    assert cache.lookup(key) == (None, "miss")
    assert not any(cache.path(key).parent.glob("*.tmp-*"))  # cleaned up on the way out


def test_default_location_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYMPA_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert ContourCache().root == tmp_path / "c"
    monkeypatch.delenv("RAYMPA_CACHE")
    assert default_cache_dir().name == "raympa"
