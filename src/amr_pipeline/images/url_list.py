"""A list of image URLs (new items to rank from their picture) as the downloader's items.

The list is a table with a ``url`` column and, optionally, an ``image`` column: the file name
the image is saved under (by default ``url-<sha1 of the URL, 16 hex>`` with the URL path's
image suffix, or ``.jpg``). Every row is checked before anything is fetched.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pandas as pd

from amr_pipeline.errors import RawDataError
from amr_pipeline.vision.images import IMAGE_SUFFIXES


def default_image_name(url: str) -> str:
    """``url-<16 hex of sha1(url)><suffix>``: the URL path's image suffix, else ``.jpg``."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]
    return f"url-{digest}{suffix if suffix in IMAGE_SUFFIXES else '.jpg'}"


def url_list_items(urls: pd.DataFrame, source: str) -> pd.DataFrame:
    """``item_raw_id``, ``image``, ``url`` for :func:`~amr_pipeline.images.download_images`
    (the image name is the id). ``source`` names the list in errors; a row without a URL, an
    image name that is not a plain file name with an image suffix, or two rows with one
    name are errors naming the row (1-based, after the header) and the fix."""
    if "url" not in urls.columns:
        raise RawDataError(f"{source}: no `url` column (columns: {list(urls.columns)}); give "
                           "one image URL per row under a `url` header, and optionally the "
                           "file name under `image`")
    given = urls["image"] if "image" in urls.columns else pd.Series(None, index=urls.index)
    names = []
    for row, (url, name) in enumerate(zip(urls["url"], given), start=1):
        url = "" if pd.isna(url) else str(url).strip()
        if not url:
            raise RawDataError(f"{source}, row {row}: no url; give the image's URL or remove "
                               "the row")
        name = default_image_name(url) if pd.isna(name) or not str(name).strip() \
            else str(name).strip()
        if "/" in name or "\\" in name or name.startswith(".") or \
                PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise RawDataError(
                f"{source}, row {row}: image {name!r} is not a plain file name ending in one of "
                f"{IMAGE_SUFFIXES}; fix the name or leave `image` empty for a generated one")
        names.append((row, name, url))
    frame = pd.DataFrame(names, columns=["row", "image", "url"])
    repeated = frame[frame["image"].duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]["image"]
        rows = repeated.loc[repeated["image"] == first, "row"].tolist()
        raise RawDataError(f"{source}, rows {rows}: the same image name {first!r}; give each "
                           "row its own name (or the same URL only once)")
    return pd.DataFrame({"item_raw_id": frame["image"], "image": frame["image"],
                         "url": frame["url"]})
