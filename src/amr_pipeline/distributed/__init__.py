"""Executors that run the core's block computations in this process or on a Ray cluster.

Kedro-free: the robustness grid and the feature extraction call :func:`executor` with the
``executor`` parameter (``local`` or ``ray``); the Ray connection itself is made once per
``kedro run`` by :class:`amr_pipeline.hooks.RayHooks` from ``conf/<env>/ray.yml``.
"""

from .cluster import RAY_SETTINGS, connect
from .executors import EXECUTORS, LocalExecutor, RayExecutor, check_executor, executor

__all__ = ["EXECUTORS", "RAY_SETTINGS", "LocalExecutor", "RayExecutor", "check_executor",
           "connect", "executor"]
