"""Interaction data preparation (paper 4.1.1 and 4.1.2).

Filtering, contiguous ids, the leave-one-out split and the fixed test candidates.
Every random step takes a ``seed``; the same seed gives the same tables.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError

logger = logging.getLogger(__name__)

INTERACTION_COLUMNS = ["user_id", "item_id"]


def filter_with_parameters(interactions: pd.DataFrame, items: pd.DataFrame,
                           parameters: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`filter_interactions` with the ``data_processing`` parameters (``sample_users``,
    ``min_user_interactions``, ``drop_items_without_image``, ``seed``)."""
    return filter_interactions(
        interactions,
        items,
        sample_users=parameters.get("sample_users"),
        min_user_interactions=parameters["min_user_interactions"],
        drop_items_without_image=parameters["drop_items_without_image"],
        seed=parameters["seed"],
    )


def filter_interactions(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    *,
    sample_users: int | None = None,
    min_user_interactions: int = 2,
    drop_items_without_image: bool = True,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the paper's filters (4.1.1), in its order.

    1. Duplicate (user, item) pairs collapse to one; interactions on items absent from
       the item table are dropped.
    2. ``sample_users`` users are drawn uniformly at random (Pinterest: 10,000; ``None`` keeps all).
    3. Users with fewer than ``min_user_interactions`` interactions are dropped
       (Pinterest: 2, Amazon: 5).
    4. Items without an image (``drop_items_without_image``) and items without interactions
       are dropped.

    Returns the filtered ``(interactions, items)``: ``user_raw_id``, ``item_raw_id`` and the
    item table restricted to interacted items.
    """
    _require_columns(interactions, ["user_raw_id", "item_raw_id"], "interactions")
    _require_columns(items, ["item_raw_id", "image"], "items")
    if min_user_interactions < 1:
        raise ConfigurationError(
            f"min_user_interactions must be >= 1, got {min_user_interactions}: "
            "fix it in parameters_data_processing.yml"
        )
    counts = {"raw": len(interactions)}
    pairs = interactions[["user_raw_id", "item_raw_id"]].drop_duplicates(ignore_index=True)
    pairs = pairs[pairs["item_raw_id"].isin(items["item_raw_id"])]
    counts["deduplicated, known items"] = len(pairs)

    if sample_users is not None:
        users = np.sort(pairs["user_raw_id"].unique())
        if sample_users < len(users):
            rng = np.random.default_rng(seed)
            chosen = rng.choice(users, size=sample_users, replace=False)
            pairs = pairs[pairs["user_raw_id"].isin(chosen)]
        counts[f"{sample_users} sampled users"] = len(pairs)

    per_user = pairs.groupby("user_raw_id")["item_raw_id"].transform("size")
    pairs = pairs[per_user >= min_user_interactions]
    counts[f"users with >= {min_user_interactions}"] = len(pairs)

    kept_items = items.drop_duplicates("item_raw_id")
    if drop_items_without_image:
        has_image = kept_items["image"].notna() & (kept_items["image"].astype("string") != "")
        kept_items = kept_items[has_image]
        pairs = pairs[pairs["item_raw_id"].isin(kept_items["item_raw_id"])]
        counts["items with an image"] = len(pairs)
    kept_items = kept_items[kept_items["item_raw_id"].isin(pairs["item_raw_id"])]

    summary = "; ".join(f"{step}: {n:,}" for step, n in counts.items())
    if pairs.empty:
        raise RawDataError(
            f"No interaction is left after filtering ({summary}). Check that the raw files "
            "hold the expected data, or lower sample_users / min_user_interactions in "
            "parameters_data_processing.yml."
        )
    logger.info("Filtered interactions (%s).", summary)
    return pairs.reset_index(drop=True), kept_items.reset_index(drop=True)


def assign_ids(
    interactions: pd.DataFrame, items: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map raw ids to contiguous integers, ordered by raw id.

    Returns ``(interactions[user_id, item_id], users[user_id, user_raw_id],
    items[item_id, item_raw_id, ...])``.
    """
    users = pd.DataFrame({"user_raw_id": np.sort(interactions["user_raw_id"].unique())})
    users.insert(0, "user_id", np.arange(len(users), dtype=np.int64))
    item_table = items.sort_values("item_raw_id", ignore_index=True)
    item_table.insert(0, "item_id", np.arange(len(item_table), dtype=np.int64))
    user_ids = pd.Index(users["user_raw_id"]).get_indexer(interactions["user_raw_id"])
    item_ids = pd.Index(item_table["item_raw_id"]).get_indexer(interactions["item_raw_id"])
    if (item_ids < 0).any():
        missing = interactions["item_raw_id"][item_ids < 0].iloc[0]
        raise RawDataError(f"Interaction with item {missing!r} that is not in the item table.")
    mapped = pd.DataFrame(
        {"user_id": user_ids.astype(np.int64), "item_id": item_ids.astype(np.int64)}
    )
    return mapped, users, item_table


def leave_one_out(
    interactions: pd.DataFrame, *, seed: int = 0, validation: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leave-one-out split (4.1.2): one random interaction per user to test.

    From the rest, one random interaction goes to validation where the user keeps at least
    one training interaction (the paper tunes on it, 4.1.4). Users with a single interaction
    have their only item in test and none in train.
    Returns ``(train, validation, test)``, each ``user_id, item_id`` sorted by user.
    """
    rng = np.random.default_rng(seed)
    frame = interactions[INTERACTION_COLUMNS].reset_index(drop=True)
    order = frame.assign(key=rng.random(len(frame))).sort_values(
        ["user_id", "key"], kind="stable"
    )
    position = order.groupby("user_id").cumcount().to_numpy()
    size = order.groupby("user_id")["item_id"].transform("size").to_numpy()
    is_test = position == 0
    is_validation = validation & (position == 1) & (size >= 3)
    parts = []
    for mask in (~is_test & ~is_validation, is_validation, is_test):
        part = order.loc[mask, INTERACTION_COLUMNS].sort_values(INTERACTION_COLUMNS)
        parts.append(part.reset_index(drop=True))
    return parts[0], parts[1], parts[2]


def mark_cold_items(items: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Add ``cold``: the item never occurs in training (scored by its image only)."""
    marked = items.copy()
    marked["cold"] = ~marked["item_id"].isin(train["item_id"])
    return marked


def cold_share(held_out: pd.DataFrame, items: pd.DataFrame) -> float:
    """Share of held-out interactions whose item is cold (paper: 52.6% Pinterest, 45.9% Amazon)."""
    cold = items.set_index("item_id")["cold"]
    return float(cold.reindex(held_out["item_id"]).fillna(False).mean()) if len(held_out) else 0.0


def sample_candidates(
    held_out: pd.DataFrame,
    interactions: pd.DataFrame,
    n_items: int,
    *,
    n_negatives: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """Fixed ranking candidates (4.1.2): per user, the held-out item plus ``n_negatives`` items
    drawn uniformly without replacement from the items the user never interacted with.

    Returns ``user_id, item_id, is_test`` with ``n_negatives + 1`` rows per user, the held-out
    item first.
    """
    users = held_out["user_id"].to_numpy(np.int64)
    if len(np.unique(users)) != len(users):
        raise ConfigurationError("sample_candidates expects one held-out interaction per user.")
    positives = np.unique(
        interactions["user_id"].to_numpy(np.int64) * n_items
        + interactions["item_id"].to_numpy(np.int64)
    )
    per_user_positives = np.bincount(
        positives // n_items, minlength=int(users.max(initial=0)) + 1
    )[users]
    if len(users) and (n_items - per_user_positives).min() < n_negatives:
        worst = int(users[np.argmax(per_user_positives)])
        raise ConfigurationError(
            f"User {worst} has only {n_items - per_user_positives.max()} items to draw "
            f"{n_negatives} negatives from ({n_items} items in all): lower "
            "n_negatives (data_processing.candidates) in parameters_data_processing.yml."
        )
    rng = np.random.default_rng(seed)
    negatives = np.empty((len(users), n_negatives), dtype=np.int64)
    pending = np.arange(len(users))
    draws = n_negatives + max(16, n_negatives // 4)
    while len(pending):
        chosen, complete = _draw_distinct_negatives(
            rng, users[pending], positives, n_items, n_negatives, draws
        )
        negatives[pending[complete]] = chosen[complete]
        pending = pending[~complete]
        draws *= 2
    item_ids = np.concatenate([held_out["item_id"].to_numpy(np.int64)[:, None], negatives], 1)
    is_test = np.zeros_like(item_ids, dtype=bool)
    is_test[:, 0] = True
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, n_negatives + 1),
            "item_id": item_ids.ravel(),
            "is_test": is_test.ravel(),
        }
    )


def _draw_distinct_negatives(rng, users, positives, n_items, n_negatives, draws):
    """Draw ``draws`` items per user and keep the first ``n_negatives`` distinct non-positives.

    The first k distinct values of i.i.d. uniform draws are a uniform k-subset, so this is
    sampling without replacement, vectorised over users.
    """
    drawn = rng.integers(0, n_items, size=(len(users), draws), dtype=np.int64)
    order = np.argsort(drawn, axis=1, kind="stable")
    sorted_drawn = np.take_along_axis(drawn, order, axis=1)
    repeat = np.zeros_like(drawn, dtype=bool)
    repeat[:, 1:] = sorted_drawn[:, 1:] == sorted_drawn[:, :-1]
    is_repeat = np.empty_like(repeat)
    np.put_along_axis(is_repeat, order, repeat, axis=1)
    keys = users[:, None] * n_items + drawn
    position = np.searchsorted(positives, keys).clip(max=len(positives) - 1)
    is_positive = positives[position] == keys if len(positives) else np.zeros_like(repeat)
    valid = ~is_repeat & ~is_positive
    complete = valid.sum(axis=1) >= n_negatives
    keep = valid & (np.cumsum(valid, axis=1) <= n_negatives)
    chosen = np.zeros((len(users), n_negatives), dtype=np.int64)
    rows = np.flatnonzero(complete)
    chosen[rows] = drawn[rows][keep[rows]].reshape(len(rows), n_negatives)
    return chosen, complete


def _require_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise RawDataError(
            f"The {name} table lacks column(s) {missing}; it has {list(frame.columns)}. "
            "The raw reader must produce them."
        )
