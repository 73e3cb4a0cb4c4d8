"""Fetching item images from their URLs (Kedro-free); see :mod:`.download`."""

from amr_pipeline.images.download import (
    FAILED_STATUSES,
    STATUS_COLUMNS,
    STATUSES,
    DownloadSettings,
    download_images,
    failures,
    status_counts,
)
from amr_pipeline.images.url_list import url_list_items

__all__ = [
    "FAILED_STATUSES",
    "STATUSES",
    "STATUS_COLUMNS",
    "DownloadSettings",
    "download_images",
    "failures",
    "status_counts",
    "url_list_items",
]
