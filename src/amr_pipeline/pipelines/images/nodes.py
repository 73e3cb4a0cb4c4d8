"""Node of the images pipeline: a thin wrapper over :mod:`amr_pipeline.images`."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from amr_pipeline.images import (
    STATUS_COLUMNS,
    DownloadSettings,
    download_images,
    failures,
    status_counts,
)
from amr_pipeline.distributed import executor
from amr_pipeline.pipelines import mlflow_metrics
from amr_pipeline.recsys.data import filter_with_parameters

logger = logging.getLogger(__name__)


def download_item_images(
    raw_interactions: pd.DataFrame, raw_items: pd.DataFrame, folder: Path,
    previous: pd.DataFrame | None, parameters: dict, data_processing: dict,
) -> tuple[pd.DataFrame, dict]:
    """Fetch the images (``image`` file names, ``url`` sources) of the items that survive the
    interaction filters and the user sample (``data_processing`` parameters, paper 4.1.1),
    into ``folder``: the real Pinterest subset fetches its ~5,000 images, not the dump's.

    Returns the status table (merged with ``previous``, the table of the last run) and the
    counts per status for MLflow (``images.<status>``). With ``images.download: false`` (the
    demo) nothing is fetched: the previous table (or an empty one) is returned unchanged and
    nothing is logged.
    """
    if not parameters.get("download", False):
        logger.info("images.download is false: no image is downloaded.")
        table = previous if previous is not None else pd.DataFrame(columns=list(STATUS_COLUMNS))
        return table, {}
    if "url" not in raw_items.columns:
        raise ValueError("raw_items has no url column: re-run the ingest node (kedro run "
                         "--pipeline=images runs it) with a reader that keeps image URLs.")
    _, kept_items = filter_with_parameters(
        raw_interactions, raw_items.assign(image=raw_items["image"].fillna(raw_items["url"])),
        {**data_processing, "drop_items_without_image": True})
    raw_items = raw_items[raw_items["item_raw_id"].isin(kept_items["item_raw_id"])]
    settings = DownloadSettings.from_parameters(parameters)
    ray_options = dict(parameters.get("ray") or {})
    partition_size = ray_options.pop("partition_size", 256)
    table = download_images(
        raw_items[["item_raw_id", "image", "url"]], folder, settings, previous=previous,
        executor=executor(parameters.get("executor", "local"), "images.executor",
                          **ray_options),
        partition_size=partition_size)
    counts = status_counts(table)
    failed, statuses = failures(counts)
    if failed:
        logger.warning(
            "%d of %d items have no image (%s); see image_downloads.parquet. Rerun with "
            "images.retry_failed: true to try them again, or let data_processing drop them "
            "(on_missing_image: drop).", failed, len(table), statuses)
    return table, mlflow_metrics(counts)
