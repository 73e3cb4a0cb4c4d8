"""Item images: the image folder, opening and decoding with Pillow, the pixel-count guard.

:func:`load_image` fits an image to a centred ``size`` x ``size`` RGB square (uint8), what
ResNet-50 (:mod:`amr_pipeline.vision.network`) and the pixel-level attack take.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.readers import paths

PILLOW_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3
"""Pillow's default ``Image.MAX_IMAGE_PIXELS`` (89,478,485), as in ``conf/base``."""


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
"""File name suffixes taken for images where a folder is listed (new item images)."""

@dataclass(frozen=True)
class ImageFolder:
    """A folder of item images addressed by file name relative to ``root``; opened on demand.

    Every name goes through :mod:`amr_pipeline.readers.paths`: a name that is absolute, has a
    ``..`` part or resolves outside ``root`` (through a symlink too) is never stat-ed or opened.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def escape_reason(self, name: str) -> str | None:
        """Why ``name`` would leave the folder (None when it stays inside)."""
        return paths.escape_reason(self.root, name)

    def path(self, name: str) -> Path:
        """Resolved path of ``name``; raises :class:`RawDataError` if it escapes the folder."""
        return paths.path_inside(self.root, name)

    def stat(self, name: str) -> os.stat_result | None:
        """File status, or None when the file is absent or the name escapes the folder."""
        try:
            result = os.stat(self.path(name))
        except (OSError, ValueError):
            return None
        return result if stat.S_ISREG(result.st_mode) else None

    def open(self, name: str, max_image_pixels: int | None = None) -> Image.Image:
        """The image, opened lazily (see :func:`open_image`)."""
        return open_image(self.path(name), max_image_pixels)

    def pixels(self, name: str, size: int, max_image_pixels: int | None = None) -> np.ndarray:
        """The image decoded to ``size x size x 3`` uint8 RGB (see :func:`load_image`)."""
        return load_image(self.path(name), size, max_image_pixels)


class TooManyPixelsError(RawDataError):
    """An image whose header declares more than ``max_image_pixels`` pixels: never decoded."""

    def __init__(self, source, pixels: int, limit: int, size: tuple[int, int] | None = None):
        shape = f"{size[0]} x {size[1]} = " if size else ""
        self.detail = (f"({shape}{pixels:,} pixels, over max_image_pixels {limit:,}), "
                       "never decoded")
        self.reason = f"unreadable: too many pixels {self.detail}"
        super().__init__(
            f"{source}: {self.reason}. Fix: shrink or replace the image, or raise "
            "max_image_pixels if images this large are expected."
        )


def check_max_image_pixels(value, name: str = "max_image_pixels") -> int:
    """The pixel limit: a positive integer, None for Pillow's ``Image.MAX_IMAGE_PIXELS``.

    At most twice Pillow's limit: above that Pillow refuses to open an image at all.
    """
    pillow = Image.MAX_IMAGE_PIXELS
    if value is None:
        return int(pillow) if pillow is not None else PILLOW_MAX_IMAGE_PIXELS
    ceiling = 2 * int(pillow) if pillow is not None else None
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
            or (ceiling is not None and value > ceiling)):
        raise ConfigurationError(
            f"{name} must be a positive integer of at most {ceiling:,} (Pillow refuses larger "
            f"images outright), or null for Pillow's limit; got {value!r}."
            if ceiling is not None else
            f"{name} must be a positive integer, or null for Pillow's limit; got {value!r}."
        )
    return int(value)


_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def open_image(source, max_image_pixels: int | None = None) -> Image.Image:
    """Open an image lazily: only its header is read. An image whose header declares more
    than ``max_image_pixels`` pixels (None: Pillow's limit) raises :class:`TooManyPixelsError`
    before any pixel is decoded."""
    limit = check_max_image_pixels(max_image_pixels)
    try:
        image = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow refuses over twice its own limit (and warns above it, an error under -W error)
        found = _PILLOW_PIXELS.search(str(error))
        pixels = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1
        if pixels <= limit:
            raise
        raise TooManyPixelsError(source, pixels, limit) from None
    width, height = image.size
    if width * height > limit:
        image.close()
        raise TooManyPixelsError(source, width * height, limit, (width, height))
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of any Pillow mode; transparency is composited onto white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F":
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source, size: int, max_image_pixels: int | None = None) -> np.ndarray:
    """Decode an image file into a ``size x size x 3`` uint8 RGB array.

    Any Pillow mode is accepted (palette, greyscale, RGBA, CMYK, 16-bit); EXIF orientation is
    applied; the shorter side is resized to ``size`` and the centre square is kept. An image
    over ``max_image_pixels`` pixels raises :class:`TooManyPixelsError`, undecoded.
    """
    with open_image(source, max_image_pixels) as image:
        image.draft(None, (size, size))
        image = _to_rgb(ImageOps.exif_transpose(image))
        image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)
