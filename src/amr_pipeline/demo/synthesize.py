"""Regenerates the embedded demo: a small Pinterest ICCV'15-format dump with images.

``python -m amr_pipeline.demo.synthesize data/01_raw/demo`` rewrites the committed files
byte for byte (same seed, same output).

The data carries visual signal on purpose. Each image is a shape with a colour and a
surface pattern on a noisy background. Each board (user) has a taste: a distribution over
colours, a favourite shape and pattern, and a community of co-pinners. A board's pins are
of two kinds:

- shared images, drawn with probability proportional to
  ``popularity_i ** popularity_exponent * exp(visual_weight * taste_u(image_i) / 3
  + community_weight * [community_u == community_i])``: part visual, part collaborative;
- its own images (a share ``own_image_share``), pinned by nobody else, whose colour, shape
  and pattern are drawn from the board's taste. Held out, they are cold items (the paper
  found 52.6% on Pinterest), rankable from pixels only.

Nothing here favours a particular model.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import bson
import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (200, 40, 40),
    "orange": (235, 140, 30),
    "yellow": (230, 210, 40),
    "green": (50, 160, 60),
    "teal": (30, 150, 150),
    "blue": (40, 70, 200),
    "purple": (130, 50, 170),
    "pink": (235, 120, 180),
    "brown": (120, 70, 30),
    "black": (30, 30, 30),
    "lime": (160, 220, 40),
    "navy": (20, 30, 110),
}
SHAPES = ("circle", "square", "triangle", "cross")
PATTERNS = ("plain", "stripes", "dots")
CATEGORIES = [f"{colour}_things" for colour in COLOURS]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and strengths of the generated demo (defaults give about 6 MB)."""

    n_boards: int = 1200
    n_shared_images: int = 1200
    own_image_share: float = 0.45
    image_size: int = 56
    mean_extra_pins: float = 2.5
    max_pins: int = 40
    n_communities: int = 12
    colour_concentration: float = 0.15
    shape_loyalty: float = 0.85
    pattern_loyalty: float = 0.75
    visual_weight: float = 3.5
    community_weight: float = 1.5
    popularity_exponent: float = 1.0
    zipf_exponent: float = 1.1
    repin_share: float = 0.03
    jpeg_quality: int = 80
    seed: int = 20190101


def synthesize(output: Path, settings: DemoSettings = DemoSettings()) -> dict[str, int]:
    """Write the four dump files and ``images/`` under ``output``; return counts."""
    rng = np.random.default_rng(settings.seed)
    n_colours, n_shapes, n_patterns = len(COLOURS), len(SHAPES), len(PATTERNS)
    colour_taste = rng.dirichlet(np.full(n_colours, settings.colour_concentration), settings.n_boards)
    favourite_shape = rng.integers(0, n_shapes, settings.n_boards)
    favourite_pattern = rng.integers(0, n_patterns, settings.n_boards)
    board_community = rng.integers(0, settings.n_communities, settings.n_boards)

    n_shared = settings.n_shared_images
    colour = list(rng.integers(0, n_colours, n_shared))
    shape = list(rng.integers(0, n_shapes, n_shared))
    pattern = list(rng.integers(0, n_patterns, n_shared))
    community = rng.integers(0, settings.n_communities, n_shared)
    popularity = rng.permutation(1.0 / np.arange(1, n_shared + 1) ** settings.zipf_exponent)

    board_images = []
    for board in range(settings.n_boards):
        taste = (
            np.log(colour_taste[board, colour[:n_shared]] + 1e-3)
            + (np.array(shape[:n_shared]) == favourite_shape[board])
            + 0.5 * (np.array(pattern[:n_shared]) == favourite_pattern[board])
        )
        logits = (
            settings.popularity_exponent * np.log(popularity)
            + settings.visual_weight * taste / 3.0
            + settings.community_weight * (community == board_community[board])
        )
        weights = np.exp(logits - logits.max())
        count = min(settings.max_pins, 1 + int(rng.geometric(1 / (1 + settings.mean_extra_pins))))
        n_own = int(rng.binomial(count, settings.own_image_share))
        chosen = list(rng.choice(n_shared, size=count - n_own, replace=False,
                                 p=weights / weights.sum()))
        for _ in range(n_own):
            chosen.append(len(colour))
            colour.append(rng.choice(n_colours, p=colour_taste[board]))
            shape.append(
                favourite_shape[board] if rng.random() < settings.shape_loyalty
                else rng.integers(n_shapes)
            )
            pattern.append(
                favourite_pattern[board] if rng.random() < settings.pattern_loyalty
                else rng.integers(n_patterns)
            )
        board_images.append(np.array(chosen, dtype=np.int64))

    n_images = len(colour)
    names = [hashlib.sha1(f"demo-image-{i}".encode()).hexdigest() + ".jpg"
             for i in range(n_images)]
    images_dir = output / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in images_dir.glob("*.jpg"):
        stale.unlink()
    for index, name in enumerate(names):
        picture = draw_image(
            int(colour[index]), int(shape[index]), int(pattern[index]),
            settings.image_size, np.random.default_rng([settings.seed, index]),
        )
        picture.save(images_dir / name, format="JPEG", quality=settings.jpeg_quality)

    board_ids = [str(10_000_000 + 7919 * b) for b in range(settings.n_boards)]
    board_docs, pin_docs, category_docs = [], [], []
    next_pin = 500_000_000
    for board, chosen in enumerate(board_images):
        repins = chosen[rng.random(len(chosen)) < settings.repin_share]
        pins = []
        for image in np.concatenate([chosen, repins]):
            pins.append(str(next_pin))
            pin_docs.append({
                "pin_id": str(next_pin),
                "im_name": names[image],
                "im_url": f"https://demo.invalid/originals/{names[image]}",
            })
            next_pin += 1
        board_docs.append({
            "board_id": board_ids[board],
            "board_url": f"/demo/board-{board}/",
            "pins": pins,
        })
        category_docs.append({
            "board_id": board_ids[board],
            "cate_id": int(np.argmax(colour_taste[board])),
        })

    _write_bson(output / "subset_iccv_board_pins.bson", board_docs)
    _write_bson(output / "subset_iccv_pin_im.bson", pin_docs)
    _write_bson(output / "subset_iccv_board_cate.bson", category_docs)
    (output / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    return {"boards": settings.n_boards, "images": n_images, "pins": len(pin_docs)}


def draw_image(colour: int, shape: int, pattern: int, size: int, rng) -> Image.Image:
    """One item image: a coloured shape with a surface pattern on a noisy light background."""
    background = rng.integers(200, 256, size=3)
    canvas = np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    picture = Image.fromarray(canvas, "RGB")
    fill = tuple(int(c) for c in np.clip(np.array(list(COLOURS.values())[colour])
                                         + rng.normal(0, 15, 3), 0, 255))
    mask = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(mask)
    centre = size / 2 + rng.uniform(-size / 10, size / 10, 2)
    radius = size * rng.uniform(0.28, 0.4)
    x0, y0, x1, y1 = centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius
    if SHAPES[shape] == "circle":
        pen.ellipse((x0, y0, x1, y1), fill=255)
    elif SHAPES[shape] == "square":
        pen.rectangle((x0, y0, x1, y1), fill=255)
    elif SHAPES[shape] == "triangle":
        pen.polygon([(centre[0], y0), (x1, y1), (x0, y1)], fill=255)
    else:
        bar = radius / 3
        pen.rectangle((x0, centre[1] - bar, x1, centre[1] + bar), fill=255)
        pen.rectangle((centre[0] - bar, y0, centre[0] + bar, y1), fill=255)
    surface = Image.new("RGB", (size, size), fill)
    texture = ImageDraw.Draw(surface)
    darker = tuple(int(c * 0.45) for c in fill)
    step = max(4, size // 8)
    if PATTERNS[pattern] == "stripes":
        for offset in range(-size, size, step):
            texture.line((offset, 0, offset + size, size), fill=darker, width=max(1, step // 3))
    elif PATTERNS[pattern] == "dots":
        for x in range(step // 2, size, step):
            for y in range(step // 2, size, step):
                texture.ellipse((x - step / 4, y - step / 4, x + step / 4, y + step / 4), fill=darker)
    picture.paste(surface, (0, 0), mask)
    return picture


def _write_bson(path: Path, documents: list[dict]) -> None:
    buffer = io.BytesIO()
    for document in documents:
        buffer.write(bson.encode(document))
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="data/01_raw/demo", type=Path)
    parser.add_argument("--seed", type=int, default=DemoSettings.seed)
    arguments = parser.parse_args(argv)
    counts = synthesize(arguments.output, DemoSettings(seed=arguments.seed))
    print(f"Wrote the demo dump to {arguments.output}: {counts}")


if __name__ == "__main__":
    main()
