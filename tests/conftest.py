"""Shared test fixtures.

* ``ray_local``: one ``ray.init(num_cpus=2)`` for the whole test session (started lazily by the
  first test that asks for it, shut down at the end). Tests that need a multi-node cluster start
  their own ``ray.cluster_utils.Cluster`` and must not use this fixture in the same test.
* ``shared_fba`` / ``shared_audio``: the read-only data under ../shared (skipped with a reason when
  it is absent, so the suite also passes on a user's fresh machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAYMPA_SHARED", ROOT.parent / "shared"))

# Ray 2.60 turns token auth on by default; the test cluster is local and throwaway.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A 2-CPU local Ray instance shared by every test that asks for it."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture()
def no_shared_ray():
    """For tests that start their own cluster: stop the shared instance first if it runs."""
    import ray

    was_running = ray.is_initialized()
    if was_running:
        ray.shutdown()
    yield
    # restart the shared instance for the session's later ray_local tests (same settings)
    if was_running and not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


@pytest.fixture(scope="session")
def shared_fba() -> Path:
    path = SHARED / "fba"
    if not (path / "normalized_student_scores.csv").is_file():
        pytest.skip(f"FBA annotations not found at {path} (set RAYMPA_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    path = SHARED / "audio"
    if not (path / "sax-phrase.wav").is_file():
        pytest.skip(f"real instrument recordings not found at {path} (set RAYMPA_SHARED)")
    return path
