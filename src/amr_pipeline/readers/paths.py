"""One guard for every place that joins a file name taken from raw data onto a folder.

A raw dump names its files (``im_name`` of a Pinterest pin, an image of an Amazon item);
such a name is data, not configuration, so it must never reach a file outside the folder it
is meant for. :func:`escape_reason` says why a name would escape; :func:`path_inside` gives the
resolved path of a name that stays inside and raises :class:`RawDataError` otherwise. Neither
ever opens the file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from amr_pipeline.errors import RawDataError

ESCAPES_FOLDER = "name escapes the image folder"


class EscapingNameError(RawDataError):
    """A file name from raw data points outside the folder it is joined onto."""


def escape_reason(folder: str | Path, name: str) -> str | None:
    """Why ``name`` would escape ``folder``, or None when it stays inside.

    Rejected without touching the file system: an absolute name (POSIX or a Windows drive),
    a ``..`` part (``/`` or ``\\`` separated) and a NUL byte. Then the joined path is resolved,
    following every symlink, and must lie inside the resolved folder: a link inside the folder
    that points outside is rejected too. The file itself is never opened.
    """
    return _resolve(folder, name)[1]


def path_inside(folder: str | Path, name: str) -> Path:
    """The resolved path of ``name`` under ``folder``; raises EscapingNameError if it escapes."""
    target, reason = _resolve(folder, name)
    if reason is not None:
        raise EscapingNameError(
            f"{Path(folder)}: image {name!r}: {reason}; it is not opened. Fix: name images "
            "relative to the image folder, without '..', and replace links that point outside it."
        )
    return target


def _resolve(folder: str | Path, name: str) -> tuple[Path | None, str | None]:
    """``(resolved path, None)`` for a name inside ``folder``, ``(None, reason)`` otherwise."""
    text = str(name)
    if "\x00" in text:
        return None, f"{ESCAPES_FOLDER} (the name contains a NUL byte)"
    if PurePosixPath(text).is_absolute() or text.startswith("\\") or PureWindowsPath(text).drive:
        return None, f"{ESCAPES_FOLDER} (absolute path)"
    if ".." in text.replace("\\", "/").split("/"):
        return None, f"{ESCAPES_FOLDER} (the name contains '..')"
    root = Path(folder).resolve()
    try:
        target = (root / text).resolve()
    except (OSError, RuntimeError, ValueError) as error:
        return None, f"{ESCAPES_FOLDER} (cannot be resolved: {error})"
    if not target.is_relative_to(root):
        return None, f"{ESCAPES_FOLDER} (a symlink leads to {target}, outside {root})"
    return target, None
