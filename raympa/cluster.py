"""Start or join Ray, once, for every command and study.

Every entry point that needs Ray goes through :func:`ray_session` (a context manager) or
:func:`init_ray` (for scripts that keep Ray up until they exit). Both leave a Ray instance that
is already initialised alone (tests, notebooks, an outer command), so nested callers share one
instance.

Security: Ray (2.5x and later) turns token authentication on by default for the local clusters it
starts; this module leaves that setting as Ray chooses. Tests and CI may set
``RAY_AUTH_MODE=disabled`` in their own environment for their throwaway instances.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator


def init_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
             dashboard: bool = False, **kwargs: Any) -> bool:
    """Start a local Ray instance or join ``address``, unless Ray is already initialised.

    Args:
        address: ``None`` for a new local instance; ``"auto"`` or ``"ray://host:port"`` to join
            a running cluster as it is.
        num_cpus: CPUs of a new local instance (default: every CPU of the machine).
        num_gpus: GPUs of a new local instance (default: what Ray detects).
        dashboard: start the dashboard of a new local instance, bound to 127.0.0.1 only.
        **kwargs: passed to ``ray.init``.

    Returns:
        True when this call started or joined Ray (the caller then owns the shutdown), False when
        Ray was already initialised.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs.setdefault("configure_logging", False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", **kwargs)
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None, **kwargs: Any) -> Iterator[None]:
    """Use the running Ray instance, or start (and afterwards stop) one; see :func:`init_ray`."""
    import ray

    started = init_ray(address, **kwargs)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
