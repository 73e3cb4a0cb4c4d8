"""Connecting this process to Ray from the settings of ``conf/<env>/ray.yml``."""

from __future__ import annotations

import logging
from typing import Any

from amr_pipeline.errors import ConfigurationError

logger = logging.getLogger(__name__)

RAY_SETTINGS = {
    "address": None,            # None: start Ray on this machine; "auto" or "ray://head:10001"
    "num_cpus": None,           # local Ray only: CPUs to offer (None: all of this machine's)
    "include_dashboard": False,
    "namespace": "amr-pipeline",
    "runtime_env": None,        # e.g. {"working_dir": "."} when the cluster lacks the package
}


def connect(settings: dict[str, Any] | None = None, source: str = "ray.yml"):
    """Connect to Ray (``ray.init``) unless already connected; returns the ``ray`` module.

    ``settings`` are the keys of :data:`RAY_SETTINGS`; an unknown key is a ConfigurationError
    naming ``source``.
    """
    import ray

    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(RAY_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown Ray settings {unknown}; the known ones are {sorted(RAY_SETTINGS)}."
        )
    options = {**RAY_SETTINGS, **settings}
    if ray.is_initialized():
        return ray
    if options["address"] is not None and options["num_cpus"] is not None:
        raise ConfigurationError(
            f"{source}: num_cpus applies to a Ray started here; with address "
            f"{options['address']!r} the cluster decides. Remove num_cpus or set address: null."
        )
    arguments = {key: value for key, value in options.items() if value is not None}
    ray.init(**arguments)
    logger.info("Ray: connected to %s (%s CPUs)", options["address"] or "a local Ray instance",
                ray.cluster_resources().get("CPU", 0))
    return ray
