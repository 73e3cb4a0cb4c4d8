"""Load-only Kedro datasets over the raw-data readers, so nodes never open paths.

``load()`` returns :class:`amr_pipeline.readers.RawTables`, which unpacks as
``(interactions, items)``: a node unpacks it or reads ``.interactions``/``.items``.
Malformed records do not stop the load: they are left out and listed in
``RawTables.problems``, and the ``ingest`` node applies
``data_processing.on_malformed_record`` (fail or skip) to them. A file that cannot be read
at all (missing, truncated, corrupt) still fails the load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from amr_pipeline.readers import RawTables
from amr_pipeline.readers.amazon import read_amazon
from amr_pipeline.readers.pinterest import (
    BOARD_CATEGORIES_FILE,
    BOARD_PINS_FILE,
    CATEGORIES_FILE,
    PIN_IMAGES_FILE,
    read_pinterest,
)


class _ReadOnlyDataset(AbstractDataset[None, RawTables]):
    """Raw data is never written by the pipeline."""

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: raw data is never overwritten.")


class PinterestDumpDataset(_ReadOnlyDataset):
    """The Pinterest ICCV'15 BSON dump in one folder.

    Example catalog entry::

        pinterest_raw:
          type: amr_pipeline.datasets.raw.PinterestDumpDataset
          path: data/01_raw/pinterest
    """

    def __init__(
        self,
        path: str,
        board_pins: str = BOARD_PINS_FILE,
        pin_images: str = PIN_IMAGES_FILE,
        board_categories: str | None = BOARD_CATEGORIES_FILE,
        categories: str | None = CATEGORIES_FILE,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._files = {
            "board_pins": board_pins,
            "pin_images": pin_images,
            "board_categories": board_categories,
            "categories": categories,
        }
        self.metadata = metadata

    def load(self) -> RawTables:
        return read_pinterest(self._path, **self._files, on_malformed="report")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), **self._files}

    def _exists(self) -> bool:
        return all(
            (self._path / name).is_file() for name in self._files.values() if name is not None
        )


class AmazonDataset(_ReadOnlyDataset):
    """An Amazon reviews (or ratings CSV) file and its meta file, 2014 or 2018 release.

    Example catalog entry::

        amazon_raw:
          type: amr_pipeline.datasets.raw.AmazonDataset
          reviews: data/01_raw/amazon/reviews_Clothing_Shoes_and_Jewelry.json.gz
          meta: data/01_raw/amazon/meta_Clothing_Shoes_and_Jewelry.json.gz
          category_path: ["Clothing, Shoes & Jewelry", "Women"]
    """

    def __init__(
        self,
        reviews: str,
        meta: str,
        version: str = "auto",
        category_path: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._reviews = Path(reviews)
        self._meta = Path(meta)
        self._version = str(version)
        self._category_path = None if category_path is None else list(category_path)
        self.metadata = metadata

    def load(self) -> RawTables:
        return read_amazon(self._reviews, self._meta, self._version, self._category_path,
                           on_malformed="report")

    def _describe(self) -> dict[str, Any]:
        return {
            "reviews": str(self._reviews),
            "meta": str(self._meta),
            "version": self._version,
            "category_path": self._category_path,
        }

    def _exists(self) -> bool:
        return self._reviews.is_file() and self._meta.is_file()
