"""Thin nodes over :mod:`amr_pipeline.recsys.data` (paper 4.1.1-4.1.2)."""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.pipelines import mlflow_metrics
from amr_pipeline.readers import RawTables
from amr_pipeline.readers.features import format_problems
from amr_pipeline.readers.pinterest import UNKNOWN_PIN_POLICIES
from amr_pipeline.recsys import data
from amr_pipeline.vision.availability import missing_visuals

logger = logging.getLogger(__name__)


MALFORMED_POLICIES = ("fail", "skip")


def ingest(
    raw: RawTables, parameters: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Unpack the raw reader's tables (interactions and items with raw ids), after settling
    the malformed records the reader left out and the pins it found no image record for.

    ``on_malformed_record`` (default ``fail``): ``fail`` stops with one error that counts them
    and lists the first few (file, record number, reason); ``skip`` logs that list and goes on.
    ``on_unknown_pin`` (default ``drop``): ``drop`` goes on without those pins (the reader
    logged a warning), ``fail`` stops. Their count goes to MLflow as
    ``data_processing.unknown_pins`` (Pinterest only).
    """
    parameters = parameters or {}
    policy = parameters.get("on_malformed_record", "fail")
    if policy not in MALFORMED_POLICIES:
        raise ConfigurationError(
            f"data_processing.on_malformed_record must be one of {MALFORMED_POLICIES}, got "
            f"{policy!r}; set it in parameters_data_processing.yml."
        )
    unknown_pin_policy = parameters.get("on_unknown_pin", "drop")
    if unknown_pin_policy not in UNKNOWN_PIN_POLICIES:
        raise ConfigurationError(
            f"data_processing.on_unknown_pin must be one of {UNKNOWN_PIN_POLICIES}, got "
            f"{unknown_pin_policy!r}; set it in parameters_data_processing.yml."
        )
    if len(raw.problems):
        if policy == "fail":
            raise RawDataError(raw.problems.message(
                "correct or remove these records (or re-download the file), or set "
                "data_processing.on_malformed_record: skip in parameters_data_processing.yml "
                "to leave them out."
            ))
        logger.warning("%s", raw.problems.message(
            "these records are left out (data_processing.on_malformed_record: skip)."))
    unknown = raw.unknown_pins
    if unknown is None:
        return raw.interactions, raw.items, mlflow_metrics({})
    if unknown.count and unknown_pin_policy == "fail":
        raise RawDataError(unknown.message(
            "Fix: use the pin-image file of the same dump, or set data_processing.on_unknown_pin: "
            "drop in parameters_data_processing.yml to leave these pins out."))
    return raw.interactions, raw.items, mlflow_metrics({"unknown_pins": unknown.count})


def filter_and_index(
    interactions: pd.DataFrame, items: pd.DataFrame, image_source, parameters: dict,
    image_downloads: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Apply the dataset's filters, check that every kept item has a usable image (or
    feature row), then give users and items contiguous integer ids.

    ``on_missing_image`` decides what a missing or unreadable image, or an image name that
    escapes the image folder (never opened), or an image whose header declares more than
    ``max_image_pixels`` pixels (never decoded; default Pillow's limit), does: ``fail``
    (default) stops with one report listing every such item; ``drop`` logs the report and
    filters those items out as if they had no image. With the download step
    (``image_downloads``, its status table), a missing image's report names why its download
    failed.
    """
    def run_filters(item_table):
        return data.filter_with_parameters(interactions, item_table, parameters)

    filtered, kept_items = run_filters(items)
    report = missing_visuals(kept_items, image_source, parameters.get("max_image_pixels"))
    if len(report):
        failures = {}
        if image_downloads is not None and len(image_downloads):
            failed = image_downloads[~image_downloads["status"].isin(["ok", "exists"])]
            failures = {str(raw): f" (download: {status}, {error})" for raw, status, error in
                        failed[["item_raw_id", "status", "error"]].itertuples(index=False)}
        lines = [f"item {raw}: {reason}{failures.get(str(raw), '')}"
                 for raw, _, reason in report.itertuples(index=False)]
        message = (f"{len(report)} of {len(kept_items)} items have no usable image:\n"
                   f"{format_problems(lines)}")
        if parameters.get("on_missing_image", "fail") == "fail":
            raise RawDataError(
                message + "\nFix: restore missing or unreadable files, name images relative to "
                "the image folder (no absolute paths, no '..', no links that lead outside it), "
                "shrink images over data_processing.max_image_pixels (or raise that limit), "
                "or set data_processing.on_missing_image: drop in parameters_data_processing.yml "
                "to leave these items out."
            )
        logger.warning("%s\nDropping these items (on_missing_image: drop).", message)
        unusable = items["item_raw_id"].isin(report["item_raw_id"])
        filtered, kept_items = run_filters(items.assign(image=items["image"].where(~unusable)))
    return data.assign_ids(filtered, kept_items)


def split(
    interactions: pd.DataFrame, items: pd.DataFrame, parameters: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Leave-one-out split; mark cold items and report the cold share of the held-out sets."""
    train, validation, test = data.leave_one_out(interactions, seed=parameters["seed"])
    marked = data.mark_cold_items(items, train)
    shares = {
        "test_cold_share": data.cold_share(test, marked),
        "validation_cold_share": data.cold_share(validation, marked),
    }
    logger.info(
        "Split %d users: %d train, %d validation, %d test interactions; "
        "%.1f%% of test items are cold (paper: 52.6%% Pinterest, 45.9%% Amazon).",
        len(test), len(train), len(validation), len(test), 100 * shares["test_cold_share"],
    )
    counts = {
        "n_users": len(test),
        "n_items": len(marked),
        "n_train": len(train),
        "n_validation": len(validation),
        "n_test": len(test),
    }
    return train, validation, test, marked, mlflow_metrics({**counts, **shares})


def sample_candidates(
    held_out: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame, parameters: dict
) -> pd.DataFrame:
    """The held-out item plus ``n_negatives`` never-interacted items per user, fixed once."""
    return data.sample_candidates(
        held_out,
        interactions,
        n_items=len(items),
        n_negatives=parameters["n_negatives"],
        seed=parameters["seed"],
    )
