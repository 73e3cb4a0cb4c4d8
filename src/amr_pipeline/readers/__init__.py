"""Readers of raw dataset formats into plain pandas tables (no Kedro).

Every dataset reader returns :class:`RawTables`: ``interactions`` with columns
``user_raw_id`` (str), ``item_raw_id`` (str), ``timestamp`` (Int64, NA when the
source has none), and ``items`` with columns ``item_raw_id`` (str, unique),
``image`` (str or NA) and ``category`` (str or NA).
"""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError, describe_location

logger = logging.getLogger(__name__)

ON_MALFORMED = ("fail", "skip", "report")
MALFORMED_SHOWN = 10
MALFORMED_KEPT = 10_000


def check_on_malformed(on_malformed: str, name: str = "on_malformed") -> str:
    """Validate a malformed-record policy: ``fail``, ``skip`` (log, leave out) or ``report``
    (leave out silently; the caller reads :attr:`RawTables.problems` and decides)."""
    if on_malformed not in ON_MALFORMED:
        raise ConfigurationError(f"{name} must be one of {ON_MALFORMED}, got {on_malformed!r}.")
    return on_malformed


class MalformedRecords:
    """Raw records that are not valid, gathered while reading instead of stopping at the first.

    Each entry is ``(source, record, message)``: the file, the 1-based record number (the line
    number of a text file, the document index of a BSON file) and a message that names both
    and the fix. The first :data:`MALFORMED_KEPT` are kept; ``total`` counts them all.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str]] = []
        self.total = 0

    def add(self, source, record: int, message: str) -> None:
        self.total += 1
        if len(self.rows) < MALFORMED_KEPT:
            self.rows.append((str(source), int(record), message))

    def __len__(self) -> int:
        return self.total

    def frame(self) -> pd.DataFrame:
        """The kept entries as a table: ``source, record, reason``."""
        return pd.DataFrame(self.rows, columns=["source", "record", "reason"])

    def message(self, fix: str) -> str:
        """One report: the count, the first few entries and ``fix``."""
        shown = "\n".join(f"  {message}" for _, _, message in self.rows[:MALFORMED_SHOWN])
        rest = self.total - min(len(self.rows), MALFORMED_SHOWN)
        files = sorted({source for source, _, _ in self.rows})
        return (f"{self.total} malformed record(s) in {', '.join(files)}:\n{shown}"
                + (f"\n  ... and {rest} more" if rest > 0 else "") + f"\nFix: {fix}")

    def settle(self, on_malformed: str) -> None:
        """Apply a policy: ``fail`` raises the report, ``skip`` logs it, ``report`` does neither."""
        if not self.total:
            return
        if on_malformed == "fail":
            raise RawDataError(self.message(
                "correct or remove these records (or re-download the file), or pass "
                "on_malformed='skip' to leave them out."))
        if on_malformed == "skip":
            logger.warning("%s", self.message("these records are left out (on_malformed: skip)."))


def malformed(source, record: int, reason: str) -> RawDataError:
    """The error for one invalid record: ``"file, record N: reason"``."""
    return RawDataError(f"{describe_location(source, record)}: {reason}")


class RawTables:
    """What a dataset reader returns; unpacks as ``interactions, items``.

    ``problems`` holds the malformed records that were left out (empty unless the reader was
    asked to skip or report them instead of failing). ``unknown_pins`` (Pinterest only, else
    None) counts the pins that were dropped for having no image record.
    """

    __slots__ = ("interactions", "items", "problems", "unknown_pins")

    def __init__(self, interactions: pd.DataFrame, items: pd.DataFrame,
                 problems: MalformedRecords | None = None, unknown_pins=None) -> None:
        self.interactions = interactions
        self.items = items
        self.problems = problems if problems is not None else MalformedRecords()
        self.unknown_pins = unknown_pins

    def __iter__(self):
        return iter((self.interactions, self.items))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index):
        return (self.interactions, self.items)[index]


def make_interactions(users, items, timestamps=None) -> pd.DataFrame:
    """Build the interactions table with the contract's dtypes."""
    users, items = list(users), list(items)
    if timestamps is None:
        timestamps = [None] * len(users)
    return pd.DataFrame(
        {
            "user_raw_id": pd.Series(users, dtype="str"),
            "item_raw_id": pd.Series(items, dtype="str"),
            "timestamp": pd.array(list(timestamps), dtype="Int64"),
        }
    )


def make_items(item_ids, images, categories, urls=None) -> pd.DataFrame:
    """Build the items table with the contract's dtypes.

    ``image`` is the file name relative to the image folder, ``url`` where the image can be
    downloaded from (the ``images`` pipeline), NA when the dump gives none.
    """
    item_ids = list(item_ids)
    urls = [None] * len(item_ids) if urls is None else list(urls)
    return pd.DataFrame(
        {
            "item_raw_id": pd.Series(item_ids, dtype="str"),
            "image": pd.Series(list(images), dtype="str"),
            "category": pd.Series(list(categories), dtype="str"),
            "url": pd.Series(urls, dtype="str"),
        }
    )


from amr_pipeline.readers.amazon import (  # noqa: E402
    read_amazon,
    read_amazon_meta,
    read_amazon_reviews,
)
from amr_pipeline.readers.pinterest import (  # noqa: E402
    build_pinterest_tables,
    read_bson_documents,
    read_pinterest,
)

__all__ = [
    "MalformedRecords",
    "RawTables",
    "build_pinterest_tables",
    "make_interactions",
    "make_items",
    "read_amazon",
    "read_amazon_meta",
    "read_amazon_reviews",
    "read_bson_documents",
    "read_pinterest",
]
