"""A logger's level for the length of a block."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def logger_level(name: str, level: int) -> Iterator[None]:
    """Set the level of logger ``name`` for a block, then restore it.

    Only the logger's own level changes: ``nncf.set_log_level`` also sets the level of every
    handler attached to the logger, including handlers that belong to someone else (pytest's
    log capture attaches to non-propagating loggers such as ``nncf``), and those handlers then
    drop records from every logger they serve.
    """
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
