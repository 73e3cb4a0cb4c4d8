"""Which items have usable visuals, checked before the split so every kept item has features.

An item's visual is its image file (Pinterest, the demo) or its row in a precomputed feature
file (Amazon ``.b``/``.npy``). Problems are gathered into one report, never raised one by one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import UnidentifiedImageError

from amr_pipeline.readers.features import RawFeatures, non_finite_rows
from amr_pipeline.vision.images import (
    ImageFolder,
    TooManyPixelsError,
    check_max_image_pixels,
    open_image,
)

REPORT_COLUMNS = ["item_raw_id", "image", "reason"]


def missing_visuals(items: pd.DataFrame, source, max_image_pixels: int | None = None
                    ) -> pd.DataFrame:
    """Items whose image file is missing or unreadable, whose header declares more than
    ``max_image_pixels`` pixels (None: Pillow's limit; never decoded), whose image name
    escapes the image folder (never opened), or whose precomputed feature row is absent or
    not finite: ``item_raw_id, image, reason`` (empty when every item is fine)."""
    if isinstance(source, RawFeatures):
        return _missing_feature_rows(items, source)
    limit = check_max_image_pixels(max_image_pixels)
    folder = source if isinstance(source, ImageFolder) else ImageFolder(source)
    rows = []
    for raw_id, name in zip(items["item_raw_id"], items["image"]):
        reason = _image_problem(folder, None if pd.isna(name) else str(name), limit)
        if reason:
            rows.append((raw_id, name, reason))
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def _missing_feature_rows(items: pd.DataFrame, source: RawFeatures) -> pd.DataFrame:
    """Items without a feature row, or whose (first) row holds NaN or infinite values."""
    known = pd.Index(np.asarray(source.raw_ids, dtype=str))
    first = pd.Series(np.arange(len(known)), index=known)
    first = first[~first.index.duplicated()]
    rows = first.index.get_indexer(items["item_raw_id"].astype(str).to_numpy())
    reasons = np.full(len(items), "", dtype=object)
    reasons[rows < 0] = f"no feature row in {source.source}"
    found = np.flatnonzero(rows >= 0)
    for position in found[non_finite_rows(source.features, rows[found])]:
        reasons[position] = (f"non-finite feature values in {source.source}, "
                             f"record {rows[position] + 1}")
    bad = reasons != ""
    report = items.loc[bad, ["item_raw_id", "image"]].assign(reason=reasons[bad])
    return report.reset_index(drop=True)[REPORT_COLUMNS]


def _image_problem(folder: ImageFolder, name: str | None, limit: int) -> str | None:
    if not name:
        return "no image file name"
    escape = folder.escape_reason(name)
    if escape is not None:
        return f"{escape}: {name!r} is not opened"
    status = folder.stat(name)
    if status is None:
        return f"missing file {folder.path(name)}"
    if status.st_size == 0:
        return f"empty file {folder.path(name)}"
    try:
        with open_image(folder.path(name), limit):
            pass  # the header parses and declares at most ``limit`` pixels
    except TooManyPixelsError as error:
        return f"unreadable: too many pixels in {folder.path(name)} {error.detail}"
    except (UnidentifiedImageError, OSError) as error:
        return f"unreadable image {folder.path(name)} ({error})"
    return None
