"""Map a function over blocks, here or on Ray tasks, with large inputs shared once.

Both executors run the same block function on the same blocks and hand the results back in
block order, so whatever the caller reduces (a sum, a concatenation) is reduced in the same
order: a Ray run gives the same numbers as a local one, bit for bit.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from amr_pipeline.errors import ConfigurationError

EXECUTORS = ("local", "ray")


def check_executor(name: str, parameter: str) -> str:
    """``name`` if it is ``local`` or ``ray``, else a ConfigurationError naming ``parameter``."""
    if name not in EXECUTORS:
        raise ConfigurationError(
            f"{parameter} must be one of {EXECUTORS}, got {name!r}: set {parameter}: local "
            "(this process) or ray (the Ray cluster configured in conf/<env>/ray.yml)."
        )
    return name


def executor(name: str, parameter: str = "executor", **options) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (``local`` or ``ray``); ``parameter`` names it in errors."""
    if check_executor(name, parameter) == "local":
        return LocalExecutor()
    return RayExecutor(parameter=parameter, **options)


class LocalExecutor:
    """Runs every block in this process, one after the other."""

    name = "local"

    def share(self, value: Any) -> Any:
        """A handle on ``value`` for :meth:`map` (here: the value itself)."""
        return value

    def map(self, function: Callable, blocks: Iterable, *shared) -> Iterator:
        """``function(block, *shared values)`` for each block, in block order."""
        for block in blocks:
            yield function(block, *shared)


class RayExecutor:
    """Runs every block as a Ray task on the cluster this process is connected to.

    :meth:`share` puts a value in Ray's object store once (``ray.put``); every task of every
    later :meth:`map` reads that one copy (NumPy arrays zero-copy from shared memory).
    At most ``in_flight`` tasks run or wait at a time, so results never pile up in the object
    store; they come back in block order.
    """

    name = "ray"

    def __init__(self, cpus_per_task: float = 1.0, in_flight: int | None = None,
                 parameter: str = "executor") -> None:
        self.ray = require_ray(parameter)
        if not cpus_per_task > 0:
            raise ConfigurationError(f"cpus_per_task must be > 0, got {cpus_per_task!r}.")
        self.cpus_per_task = float(cpus_per_task)
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        self.in_flight = int(in_flight) if in_flight else max(2, int(2 * cpus / cpus_per_task))
        self._remote = {}

    def share(self, value: Any):
        return self.ray.put(value)

    def map(self, function: Callable, blocks: Iterable, *shared) -> Iterator:
        if function not in self._remote:
            self._remote[function] = self.ray.remote(num_cpus=self.cpus_per_task)(function)
        remote = self._remote[function]
        pending: collections.deque = collections.deque()
        for block in blocks:
            pending.append(remote.remote(block, *shared))
            if len(pending) >= self.in_flight:
                yield self.ray.get(pending.popleft())
        while pending:
            yield self.ray.get(pending.popleft())


def require_ray(parameter: str = "executor"):
    """The ``ray`` module, connected; a ConfigurationError with the fix when it is not."""
    try:
        import ray
    except ImportError as error:  # pragma: no cover - ray[data] is a dependency
        raise ConfigurationError(
            f"{parameter}: ray needs the ray package: pip install 'ray[data]==2.60.0'."
        ) from error
    if not ray.is_initialized():
        raise ConfigurationError(
            f"{parameter}: ray, but this process is not connected to Ray. In a kedro run the "
            "RayHooks connect to the address in conf/<env>/ray.yml; elsewhere call "
            "ray.init(address=...) first, or set the executor to local."
        )
    return ray
