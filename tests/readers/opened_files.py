"""Watch which files a piece of code opens, through Python's audit hooks (``open`` events)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

_watchers: list[list[str]] = []


def _hook(event: str, arguments: tuple) -> None:
    if event == "open" and _watchers and arguments and isinstance(arguments[0], (str, bytes,
                                                                                 os.PathLike)):
        path = os.fsdecode(arguments[0])
        for opened in _watchers:
            opened.append(path)


sys.addaudithook(_hook)


@contextmanager
def watch_opens():
    """Collect the path of every file opened inside the ``with`` block."""
    opened: list[str] = []
    _watchers.append(opened)
    try:
        yield opened
    finally:
        _watchers.remove(opened)


def opened_any(opened: list[str], *paths: str | Path) -> list[str]:
    """The watched opens that reach one of ``paths`` (compared after resolving links)."""
    targets = {os.path.realpath(path) for path in paths}
    return [path for path in opened if os.path.realpath(path) in targets]
