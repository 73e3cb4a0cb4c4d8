"""Which items have usable visuals, checked before the split so every kept item has features.

An item's visual is its image file (Pinterest, the demo) or its row in a precomputed feature
file (Amazon ``.b``/``.npy``). Problems are gathered into one report, never raised one by one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from amr_pipeline.readers.features import RawFeatures
from amr_pipeline.vision.resnet import ImageFolder

REPORT_COLUMNS = ["item_raw_id", "image", "reason"]


def missing_visuals(items: pd.DataFrame, source) -> pd.DataFrame:
    """Items whose image file is missing or unreadable, whose image name escapes the image
    folder (never opened), or that have no precomputed feature row:
    ``item_raw_id, image, reason`` (empty when every item is fine)."""
    if isinstance(source, RawFeatures):
        known = pd.Index(np.asarray(source.raw_ids, dtype=str))
        absent = ~items["item_raw_id"].astype(str).isin(known)
        report = items.loc[absent, ["item_raw_id", "image"]].assign(
            reason=f"no feature row in {source.source}"
        )
        return report.reset_index(drop=True)[REPORT_COLUMNS]
    folder = source if isinstance(source, ImageFolder) else ImageFolder(source)
    rows = []
    for raw_id, name in zip(items["item_raw_id"], items["image"]):
        reason = _image_problem(folder, None if pd.isna(name) else str(name))
        if reason:
            rows.append((raw_id, name, reason))
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def _image_problem(folder: ImageFolder, name: str | None) -> str | None:
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
        with Image.open(folder.path(name)) as image:
            image.size  # the header parses
    except (UnidentifiedImageError, OSError) as error:
        return f"unreadable image {folder.path(name)} ({error})"
    return None
