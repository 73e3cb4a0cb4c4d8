"""Kedro datasets for downloading item images: the folder they go to, the previous status table.

Example catalog entries::

    image_download_folder:
      type: amr_pipeline.datasets.images.ImageDownloadFolderDataset
      path: data/01_raw/pinterest/images
    image_downloads_previous:
      type: amr_pipeline.datasets.images.OptionalParquetDataset
      filepath: data/02_intermediate/pinterest/image_downloads.parquet
    new_image_urls:
      type: amr_pipeline.datasets.images.OptionalCSVDataset
      filepath: data/01_raw/pinterest/new_image_urls.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError


class ImageDownloadFolderDataset(AbstractDataset[None, Path]):
    """``load()`` returns the folder images are downloaded into (it need not exist yet: the
    downloader creates it). Read-only in the catalog: the downloader writes the files."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        if self._path.exists() and not self._path.is_dir():
            raise DatasetError(f"{self._path}: not a folder; fix image_download_folder's path.")
        return self._path

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only in the catalog.")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class OptionalParquetDataset(AbstractDataset[None, pd.DataFrame | None]):
    """A Parquet file read as it was before this run (None when absent): the previous status
    table that a resumed download merges. Read-only (another entry writes the same file)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> pd.DataFrame | None:
        return self._read(self._filepath) if self._filepath.is_file() else None

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        return pd.read_parquet(path)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only in the catalog.")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class OptionalCSVDataset(OptionalParquetDataset):
    """A CSV file you may write (None when absent), every column read as text: the list of new
    image URLs. Read-only."""

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DatasetError(f"{path}: not a readable CSV ({error}); write a header line "
                               "`url` (and optionally `image`) and one row per image") from error
        except pd.errors.EmptyDataError:
            return pd.DataFrame({"url": pd.Series(dtype=str)})
