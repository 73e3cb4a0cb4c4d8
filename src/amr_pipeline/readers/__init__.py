"""Readers of raw dataset formats into plain pandas tables (no Kedro).

Every dataset reader returns :class:`RawTables`: ``interactions`` with columns
``user_raw_id`` (str), ``item_raw_id`` (str), ``timestamp`` (Int64, NA when the
source has none), and ``items`` with columns ``item_raw_id`` (str, unique),
``image`` (str or NA) and ``category`` (str or NA).
"""

from typing import NamedTuple

import pandas as pd


class RawTables(NamedTuple):
    """The two tables a dataset reader returns; unpacks as ``interactions, items``."""

    interactions: pd.DataFrame
    items: pd.DataFrame


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


def make_items(item_ids, images, categories) -> pd.DataFrame:
    """Build the items table with the contract's dtypes."""
    return pd.DataFrame(
        {
            "item_raw_id": pd.Series(list(item_ids), dtype="str"),
            "image": pd.Series(list(images), dtype="str"),
            "category": pd.Series(list(categories), dtype="str"),
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
