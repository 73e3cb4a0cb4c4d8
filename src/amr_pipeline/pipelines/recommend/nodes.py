"""Thin nodes over :mod:`amr_pipeline.recsys.recommend`.

The tables the recommender serves from (written once per run, read by the batch node and by
the MLflow model alike, so both give the same lists):

- ``recommend.user_vectors``: ``user_id``, ``user_raw_id``, ``f0..`` (p_u);
- ``recommend.item_vectors``: ``item_id``, ``item_raw_id``, ``cold``, ``f0..`` (q_i + E c_i);
- ``recommend.seen_items``: ``user_id``, ``item_id``, the final training pairs.

This module imports neither TensorFlow nor the vision package at import time: the MLflow
model runs :func:`predict` alone.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from amr_pipeline.distributed import check_executor, executor
from amr_pipeline.errors import ConfigurationError
from amr_pipeline.models_table import BY_NAME
from amr_pipeline.recsys.models import FEATURE_SCALE_COLUMN, factor_columns
from amr_pipeline.recsys.recommend import (
    USERS_PER_TASK,
    SeenItems,
    placements,
    top_n,
    top_n_on,
)
from amr_pipeline.recsys.stored import load_model

logger = logging.getLogger(__name__)

UNKNOWN_USERS = ("error", "popular")


class UnknownUserError(ConfigurationError):
    """A requested user is not in the training data (``recommend.unknown_users: error``)."""


def table_key(model: str, table: str) -> str:
    """The node argument carrying ``<model>.<table>``."""
    return f"{model}__{table}"


def _check(parameters: dict, n_items: int | None = None) -> None:
    top_k = parameters.get("top_k", 0)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigurationError(f"top_k must be a positive integer, got {top_k!r}")
    if n_items is not None and top_k > n_items:
        raise ConfigurationError(f"top_k is {top_k}, more than the {n_items} items of the "
                                 "catalogue: ask for at most that many")
    if parameters.get("unknown_users", "error") not in UNKNOWN_USERS:
        raise ConfigurationError(f"unknown_users must be one of {UNKNOWN_USERS}, got "
                                 f"{parameters.get('unknown_users')!r}")


def _factors(frame: pd.DataFrame) -> np.ndarray:
    columns = [c for c in frame.columns if isinstance(c, str) and c[:1] == "f" and c[1:].isdigit()]
    columns.sort(key=lambda c: int(c[1:]))
    return frame[columns].to_numpy(np.float32)


def prepare_recommender(users: pd.DataFrame, items: pd.DataFrame, train: pd.DataFrame,
                        item_features, parameters: dict, **tables):
    """The served tables of the model ``parameters["model"]`` (its factor tables come among
    ``tables``, keyed by :func:`table_key`, next to those of the pipeline's other models), and
    its ``feature_projection`` frame (empty for an ID-only model) for new items."""
    _check(parameters)
    name = parameters["model"]
    available = sorted({key.split("__")[0] for key in tables})
    if table_key(name, "user_factors") not in tables:
        raise ConfigurationError(
            f"recommend.model is {name!r}, which this pipeline does not train: choose one of "
            f"{available} (or run the default pipeline, which trains every model)")
    projection = tables.get(table_key(name, "feature_projection"))
    model, features = load_model(tables[table_key(name, "user_factors")],
                                 tables[table_key(name, "item_factors")], projection,
                                 item_features, items)
    vectors = model.item_vectors(features)
    columns = factor_columns(model.n_factors)
    user_rows = users.sort_values("user_id")
    if not np.array_equal(user_rows["user_id"].to_numpy(), np.arange(len(model.user_factors))):
        raise ConfigurationError(f"{name}: {len(model.user_factors)} user factor rows for "
                                 f"{len(users)} users; re-run the {name} training")
    user_vectors = pd.DataFrame(model.user_factors, columns=columns)
    user_vectors.insert(0, "user_raw_id", user_rows["user_raw_id"].astype(str).to_numpy())
    user_vectors.insert(0, "user_id", user_rows["user_id"].to_numpy(np.int64))
    item_rows = items.sort_values("item_id")
    item_vectors = pd.DataFrame(vectors, columns=columns)
    item_vectors.insert(0, "cold", item_rows["cold"].to_numpy(bool))
    item_vectors.insert(0, "item_raw_id", item_rows["item_raw_id"].astype(str).to_numpy())
    item_vectors.insert(0, "item_id", item_rows["item_id"].to_numpy(np.int64))
    seen = train[["user_id", "item_id"]].astype(np.int64).sort_values(["user_id", "item_id"])
    if projection is None or BY_NAME.get(name) is not None and not BY_NAME[name].visual:
        projection = pd.DataFrame({"feature": pd.Series(dtype="int64")})
    logger.info("Recommending with %s: %d users, %d items, K = %d", name, len(user_vectors),
                len(item_vectors), model.n_factors)
    return user_vectors, item_vectors, seen.reset_index(drop=True), projection


def _top(user_vectors, item_vectors, seen_items, top_k, exclude_seen, rows, workers=None,
         on=None, users_per_task=None):
    seen = (SeenItems(seen_items["user_id"].to_numpy(), seen_items["item_id"].to_numpy())
            if exclude_seen else None)
    if on is not None:
        return top_n_on(on, _factors(user_vectors), _factors(item_vectors), int(top_k), seen,
                        rows, users_per_task or USERS_PER_TASK)
    return top_n(_factors(user_vectors), _factors(item_vectors), int(top_k), seen, rows,
                 workers=workers)


def recommend_all(user_vectors: pd.DataFrame, item_vectors: pd.DataFrame,
                  seen_items: pd.DataFrame, parameters: dict) -> pd.DataFrame:
    """Every user's top ``top_k``: ``user_raw_id``, ``rank`` (1 = best), ``item_raw_id``,
    ``score``, ``cold`` (the item was never in training, scored from its image only), by
    ``workers`` threads (default: all cores), or with ``executor: ray`` in blocks of
    ``ray.users_per_task`` users as Ray tasks."""
    _check(parameters, len(item_vectors))
    ray_options = dict(parameters.get("ray") or {})
    users_per_task = ray_options.pop("users_per_task", None)
    on = None
    if check_executor(parameters.get("executor", "local"), "recommend.executor") == "ray":
        on = executor("ray", "recommend.executor", **ray_options)
    result = _top(user_vectors, item_vectors, seen_items, parameters["top_k"],
                  parameters.get("exclude_seen", True), None, parameters.get("workers"), on,
                  users_per_task)
    return pd.DataFrame({
        "user_raw_id": user_vectors["user_raw_id"].to_numpy()[result.user],
        "rank": result.rank.astype(np.int64),
        "item_raw_id": item_vectors["item_raw_id"].to_numpy()[result.item],
        "score": result.score.astype(np.float32),
        "cold": item_vectors["cold"].to_numpy(bool)[result.item],
    })


def predict(request: pd.DataFrame, user_vectors: pd.DataFrame, item_vectors: pd.DataFrame,
            seen_items: pd.DataFrame, top_k: int, exclude_seen: bool,
            unknown_users: str = "error") -> pd.DataFrame:
    """The MLflow model: one row per ``request`` row, ``user_raw_id``, ``item_raw_ids`` (the
    user's top ``top_k``, best first) and their ``scores``. A user not in the training data
    raises :class:`UnknownUserError` naming it (``unknown_users: error``) or gets the most
    popular training items, scored by their interaction count (``popular``)."""
    _check({"top_k": top_k, "unknown_users": unknown_users}, len(item_vectors))
    if "user_raw_id" not in request:
        raise ConfigurationError(f"the request needs a `user_raw_id` column, got "
                                 f"{list(request.columns)}")
    ids = request["user_raw_id"].astype(str).to_numpy()
    rows = pd.Index(user_vectors["user_raw_id"].astype(str)).get_indexer(ids)
    unknown = rows < 0
    if unknown.any() and unknown_users == "error":
        names = list(dict.fromkeys(ids[unknown].tolist()))
        raise UnknownUserError(
            f"unknown user_raw_id {', '.join(map(repr, names[:10]))}"
            f"{' and more' if len(names) > 10 else ''}: not in the training data (set "
            "the request parameter unknown_users (default recommend.unknown_users) to "
            "popular to answer them with the popular items)")
    positions = user_vectors["user_id"].to_numpy(np.int64)
    known = np.unique(rows[~unknown])
    # one thread: a server runs requests side by side, and BLAS's thread limit is per process
    result = _top(user_vectors, item_vectors, seen_items, top_k, exclude_seen, positions[known],
                  workers=1)
    item_ids = item_vectors["item_raw_id"].astype(str).to_numpy()
    bounds = np.searchsorted(result.user, positions[known], side="left"), np.searchsorted(
        result.user, positions[known], side="right")
    lists = {row: (item_ids[result.item[low:high]].tolist(),
                   result.score[low:high].astype(np.float64).tolist())
             for row, low, high in zip(known, *bounds)}
    if unknown.any():
        counts = np.bincount(seen_items["item_id"].to_numpy(np.int64),
                             minlength=len(item_vectors)).astype(np.float64)
        order = np.lexsort((np.arange(len(counts)), -counts))[:int(top_k)]
        lists[-1] = (item_ids[order].tolist(), counts[order].tolist())
    chosen = [lists[row] for row in rows]
    return pd.DataFrame({"user_raw_id": ids,
                         "item_raw_ids": [items for items, _ in chosen],
                         "scores": [scores for _, scores in chosen]})


def download_new_images(urls: pd.DataFrame | None, folder, previous: pd.DataFrame | None,
                        parameters: dict) -> pd.DataFrame:
    """The new item images listed by URL (``new_image_urls``: ``url``, optional ``image``)
    fetched into the new-images folder by the image downloader, with all its checks
    (``images`` parameters: timeouts, size and pixel limits, no private addresses unless
    allowed); returns the status table, merged with the previous run's. No list: nothing is
    fetched (the folder's own images are still ranked)."""
    from amr_pipeline.images import (
        STATUS_COLUMNS,
        DownloadSettings,
        download_images,
        failures,
        status_counts,
        url_list_items,
    )

    if urls is None or urls.empty:
        return previous if previous is not None else pd.DataFrame(columns=list(STATUS_COLUMNS))
    items = url_list_items(urls, "new_image_urls")
    table = download_images(items, folder, DownloadSettings.from_parameters(parameters),
                            previous=previous)
    failed, statuses = failures(status_counts(table))
    if failed:
        logger.warning("New images: %d of %d URLs gave no image (%s); see "
                       "new_image_downloads.parquet", failed, len(table), statuses)
    return table


def _empty_new_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ranked = pd.DataFrame({"image": pd.Series(dtype="str"), "rank": pd.Series(dtype="int64"),
                           "user_raw_id": pd.Series(dtype="str"),
                           "score": pd.Series(dtype="float32")})
    placed = pd.DataFrame({"user_raw_id": pd.Series(dtype="str"),
                           "image": pd.Series(dtype="str"),
                           "rank_in_top_n": pd.Series(dtype="int64")})
    return ranked, placed


def rank_new_images(new_images, feature_cache, projection: pd.DataFrame,
                    user_vectors: pd.DataFrame, recommendations: pd.DataFrame,
                    feature_parameters: dict, parameters: dict,
                    downloads: pd.DataFrame | None = None):
    """New item images (the folder's, those of ``new_image_urls`` included once
    ``downloads``, their status table, is written) scored for every user with ``q_i = 0`` (as
    cold items are), their features from the network and the ``feature_scale`` the model was
    trained with: the top ``top_users`` users per image, and where each image would enter each
    user's top-N (only the users for whom it enters). Empty frames when there is no new
    image."""
    from amr_pipeline.vision.new_images import extract_new_features, image_names

    names = image_names(new_images)
    if downloads is not None and len(downloads):
        fetched = set(downloads.loc[downloads["status"].isin(["ok", "exists"]), "image"])
        logger.info("New images: %d in %s, %d of them fetched from new_image_urls", len(names),
                    new_images.root, len(fetched & set(names)))
    if not names:
        return _empty_new_frames()
    if not len(projection) or FEATURE_SCALE_COLUMN not in projection:
        logger.warning("recommend.model %s does not use image features: the %d new images are "
                       "not ranked", parameters["model"], len(names))
        return _empty_new_frames()
    kept, features = extract_new_features(new_images, names, feature_cache, feature_parameters)
    if not kept:
        return _empty_new_frames()
    matrix = _factors(projection.sort_values("feature"))
    scale = float(projection[FEATURE_SCALE_COLUMN].iloc[0])
    vectors = features @ (matrix / np.float32(scale))
    users = _factors(user_vectors)
    raw_ids = user_vectors["user_raw_id"].astype(str).to_numpy()
    best = top_n(vectors, users, int(parameters["top_users"]), workers=parameters.get("workers"))
    ranked = pd.DataFrame({"image": np.asarray(kept, dtype=object)[best.user],
                           "rank": best.rank.astype(np.int64), "user_raw_id": raw_ids[best.item],
                           "score": best.score.astype(np.float32)})
    top_k = int(parameters["top_k"])
    top_scores = np.full((len(users), top_k), -np.inf, np.float32)
    rows = pd.Index(raw_ids).get_indexer(recommendations["user_raw_id"].astype(str))
    top_scores[rows, recommendations["rank"].to_numpy() - 1] = recommendations["score"]
    found_users, found_images, found_ranks = [], [], []
    step = max(1, (1 << 24) // max(len(kept), 1))
    for start in range(0, len(users), step):
        block = users[start:start + step] @ vectors.T
        user, image, rank = placements(block, top_scores[start:start + step], top_k)
        found_users.append(user + start)
        found_images.append(image)
        found_ranks.append(rank)
    user, image, rank = (np.concatenate(parts) for parts in
                         (found_users, found_images, found_ranks))
    placed = pd.DataFrame({"user_raw_id": raw_ids[user],
                           "image": np.asarray(kept, dtype=object)[image],
                           "rank_in_top_n": rank.astype(np.int64)})
    logger.info("New images: %d ranked, %d placements in users' top-%d", len(kept),
                len(placed), top_k)
    return ranked, placed
