"""Regenerates the embedded demo: a small Pinterest ICCV'15-format dump with images.

``python -m amr_pipeline.demo.synthesize data/01_raw/demo`` rewrites the committed files
byte for byte (same seed, same output) and prints the statistics of the interaction table.

The demo is sized like the paper's Pinterest subset (Table 1: 3,226 users, 4,998 items,
9,844 interactions). Its collaborative structure is calibrated, before any model is run, to
model-free statistics of the real Pinterest pairs (co-pinned image pairs, items reachable in
two hops, ItemKNN and POP hit ratios, board sizes, cold share; tests/demo/test_calibration.py).

**Mechanism: communities re-pinning from small shared pools.** Real boards co-pin images
because boards about the same thing re-pin from the same small set of circulating images.
Each board belongs to one of ``n_boards / boards_per_community`` communities (202 of about
16 boards), and each community to one of 16 categories (community mod 16; the dump's
``cate_id``, named after the colour its boards favour). ``pool_size`` images per community
on average (1,616 of the ``n_catalogue_images`` = 25,000) circulate in one community's pool;
the rest are fresh images that no community shares. A board pins ``2 + TruncatedGeometric``
distinct images (mean ``mean_pins_per_board`` = 3.05, at most ``max_pins_per_board`` = 12:
49 / 26 / 13 / 13% of boards pin 2 / 3 / 4 / 5+, like the real 47 / 26 / 15 / 12%), drawn
without replacement with probability proportional to ``exp(logit_ui)``, where

    logit_ui = community_weight * [community(u) = community(i)]
               + factor_weight * <θ_u, φ_i> / sqrt(K)            collaborative term
             + visual_weight * standardised <w_u, a_i>             visual term
             + b_i                                                 popularity term

- collaborative: the pool indicator is sharp: ``community_weight = ln(pool_odds *
  n_catalogue_images / pool_size)`` = 9.15, so that a board's pool (8 images) weighs
  ``pool_odds`` = 3 times the whole fresh catalogue before the other terms. About half of a
  board's pins come from its community's pool, the other half from the fresh catalogue. A
  weak continuous taste (``factor_weight`` = 0.5, K = 8 standard-normal factors) orders
  images within and outside the pool. Boards of one community pin the same pool images:
  these are the co-pins and two-hop paths an item-based recommender follows.
- visual: ``a_i`` one-hot codes an image's fill colour (16), accent colour (16: the outline
  and the pattern), shape (8) and surface pattern (6), plus its size and background
  brightness (continuous, in [-1, 1]); ``w_u`` is the board's weight per attribute value,
  half shared with its category's style (``style_share`` = 0.5; the category's colour boosted
  by ``category_colour_boost`` = 1), half its own. The term is standardised over the catalogue
  per board and scaled by ``visual_weight`` = 2: the fresh images a board pins (most of them
  pinned by no other board, so cold when held out) are chosen largely by their look.
- popularity: ``b_i ~ N(0, pool_popularity²)`` (1.45) for pool images, so that the pool is
  popularity-weighted and many boards of a community re-pin its favourites, and
  ``N(0, fresh_popularity²)`` (0.5) for fresh images.

These values were set, before any recommender was run, to the model-free statistics of the
real Pinterest pairs only (tests/demo/test_calibration.py) and to the visual ceiling on cold
items (at least the paper's DUIF HR@10, 0.16; tests/pipelines/test_ceilings.py).

A share ``repin_share`` of pins is repeated on the same board (the filter collapses such
duplicates, as on the real dump). Only pinned images are drawn and written, as 56 px JPEGs.
The generator's factors, attributes and ids are written to ``generator.npz`` beside the dump
(never a board x catalogue logit matrix), so that :mod:`amr_pipeline.demo.ceilings` can rank
test candidates by the true logit and each of its terms.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import bson
import numpy as np
import pandas as pd
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
    "maroon": (110, 20, 40),
    "olive": (120, 120, 30),
    "cyan": (60, 210, 230),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "cross", "star", "diamond", "hexagon", "ring")
PATTERNS = ("plain", "stripes", "dots", "checks", "grid", "bands")
CATEGORIES = [f"{colour}_things" for colour in COLOURS]
ATTRIBUTES = (
    [f"colour_{name}" for name in COLOURS]
    + [f"accent_{name}" for name in COLOURS]
    + [f"shape_{name}" for name in SHAPES]
    + [f"pattern_{name}" for name in PATTERNS]
    + ["size", "brightness"]
)
"""Columns of the visual attribute code ``a_i`` (:func:`visual_attributes`)."""
_ATTRIBUTE_SCALE = np.concatenate([
    np.ones(len(COLOURS)), np.full(len(COLOURS), 0.7), np.ones(len(SHAPES)),
    np.ones(len(PATTERNS)), np.ones(2),
])
"""Spread of the boards' weights per attribute block (the accent colour counts less)."""

GENERATOR_FILE = "generator.npz"

PAPER_PINTEREST = {
    "users": 3226,
    "items": 4998,
    "interactions": 9844,
    "interactions_per_user": 9844 / 3226,
    "sparsity": 0.99939,
    "cold_test_share": 0.526,
    "pop_hit_ratio_at_10": 0.0604,
}
"""Paper Table 1 (Pinterest row), the cold share of its test items (4.1.2) and POP's HR@10
(Table 2)."""

_BOARD_CHUNK = 256


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and strengths of the generated demo (defaults: the paper's Pinterest scale,
    calibrated as the module docstring says)."""

    n_boards: int = 3226
    n_catalogue_images: int = 25000
    mean_pins_per_board: float = 3.05
    max_pins_per_board: int = 12
    boards_per_community: float = 16.0
    pool_size: float = 8.0
    pool_odds: float = 3.0
    n_factors: int = 8
    factor_weight: float = 0.5
    visual_weight: float = 2.0
    style_share: float = 0.5
    category_colour_boost: float = 1.0
    pool_popularity: float = 1.45
    fresh_popularity: float = 0.5
    repin_share: float = 0.03
    image_size: int = 56
    jpeg_quality: int = 80
    seed: int = 20190101


@dataclass(frozen=True)
class Simulation:
    """The interaction table of a demo and the generator's truth, without images.

    ``pin_board`` and ``pin_image`` hold one row per pin (repins included, in pin order);
    images are numbered ``0 .. n_images - 1`` in order of first pin. Per image: ``colour``,
    ``accent``, ``shape``, ``pattern`` (indexes), ``size`` and ``brightness`` (in [-1, 1]),
    ``community`` (-1: a fresh image), ``factors`` (φ_i) and ``popularity`` (b_i). Per board:
    ``board_category`` (0-based line of categories.txt), ``board_community``,
    ``board_factors`` (θ_u), and the visual term's ``board_visual`` weights and
    ``board_visual_offset``, so that the visual term is ``a_i · board_visual[u] +
    board_visual_offset[u]`` (already standardised and scaled).
    """

    pin_board: np.ndarray
    pin_image: np.ndarray
    colour: np.ndarray
    accent: np.ndarray
    shape: np.ndarray
    pattern: np.ndarray
    size: np.ndarray
    brightness: np.ndarray
    community: np.ndarray
    factors: np.ndarray
    popularity: np.ndarray
    board_category: np.ndarray
    board_community: np.ndarray
    board_factors: np.ndarray
    board_visual: np.ndarray
    board_visual_offset: np.ndarray
    community_weight: float
    factor_weight: float

    @property
    def n_images(self) -> int:
        return len(self.colour)

    def attributes(self) -> np.ndarray:
        """The pinned images' visual attribute codes ``a_i`` (n_images x len(ATTRIBUTES))."""
        return visual_attributes(self.colour, self.accent, self.shape, self.pattern,
                                 self.size, self.brightness)


def visual_attributes(colour, accent, shape, pattern, size, brightness) -> np.ndarray:
    """``a_i``: one-hot fill colour, accent colour, shape and pattern, then size and
    background brightness (columns :data:`ATTRIBUTES`)."""
    n = len(colour)
    codes = np.zeros((n, len(ATTRIBUTES)))
    rows = np.arange(n)
    offset = 0
    for values, width in ((colour, len(COLOURS)), (accent, len(COLOURS)),
                          (shape, len(SHAPES)), (pattern, len(PATTERNS))):
        codes[rows, offset + np.asarray(values, np.int64)] = 1.0
        offset += width
    codes[:, offset] = size
    codes[:, offset + 1] = brightness
    return codes


def pin_count_probabilities(mean: float, maximum: int) -> np.ndarray:
    """P(n pins) for n = 2 .. ``maximum``: ``2 + `` a geometric number of extra pins,
    truncated at ``maximum``, whose ratio is solved (bisection) to give ``mean``."""
    if not 2 <= mean <= maximum:
        raise ValueError(
            f"mean_pins_per_board must lie in [2, max_pins_per_board = {maximum}], got {mean}"
        )
    extra = np.arange(maximum - 1, dtype=np.float64)
    low, high = 0.0, 1e6
    for _ in range(200):
        ratio = (low + high) / 2
        weights = np.exp(extra * np.log(ratio)) if ratio > 0 else (extra == 0).astype(float)
        probabilities = weights / weights.sum()
        if probabilities @ extra > mean - 2:
            high = ratio
        else:
            low = ratio
    return probabilities


def community_logit(settings: DemoSettings) -> float:
    """``community_weight``: the logit boost of a board's own pool images, set so that the
    ``pool_size`` images of a pool weigh ``pool_odds`` times the whole catalogue,
    ``ln(pool_odds * n_catalogue_images / pool_size)`` (9.15 for the defaults)."""
    return float(np.log(settings.pool_odds * settings.n_catalogue_images / settings.pool_size))


def simulate(settings: DemoSettings = DemoSettings()) -> Simulation:
    """Draw the boards' pins (the generative model of the module docstring); no images."""
    rng = np.random.default_rng(settings.seed)
    n_colours, n_shapes, n_patterns = len(COLOURS), len(SHAPES), len(PATTERNS)
    n_categories = len(CATEGORIES)
    n_boards, n_catalogue, n_factors = (
        settings.n_boards, settings.n_catalogue_images, settings.n_factors
    )
    count_probabilities = pin_count_probabilities(
        settings.mean_pins_per_board, settings.max_pins_per_board
    )
    n_communities = max(1, int(round(n_boards / settings.boards_per_community)))
    n_pool = min(n_catalogue, int(round(n_communities * settings.pool_size)))
    community_weight = community_logit(settings)

    board_community = rng.integers(0, n_communities, n_boards)
    board_category = board_community % n_categories
    community = np.full(n_catalogue, -1, dtype=np.int64)
    community[:n_pool] = rng.integers(0, n_communities, n_pool)
    board_factors = rng.standard_normal((n_boards, n_factors))
    factors = rng.standard_normal((n_catalogue, n_factors))
    popularity = np.where(
        community >= 0, settings.pool_popularity, settings.fresh_popularity
    ) * rng.standard_normal(n_catalogue)

    colour = rng.integers(0, n_colours, n_catalogue)
    accent = rng.integers(0, n_colours, n_catalogue)
    shape = rng.integers(0, n_shapes, n_catalogue)
    pattern = rng.integers(0, n_patterns, n_catalogue)
    size = rng.uniform(-1.0, 1.0, n_catalogue)
    brightness = rng.uniform(-1.0, 1.0, n_catalogue)
    attributes = visual_attributes(colour, accent, shape, pattern, size, brightness)
    styles = rng.standard_normal((n_categories, len(ATTRIBUTES))) * _ATTRIBUTE_SCALE
    own = rng.standard_normal((n_boards, len(ATTRIBUTES))) * _ATTRIBUTE_SCALE
    tastes = (np.sqrt(settings.style_share) * styles[board_category]
              + np.sqrt(1.0 - settings.style_share) * own)
    tastes[np.arange(n_boards), board_category] += settings.category_colour_boost

    pin_counts = 2 + rng.choice(len(count_probabilities), n_boards, p=count_probabilities)
    most_pins = min(int(pin_counts.max()), n_catalogue)
    board_visual = np.empty_like(tastes)
    board_visual_offset = np.empty(n_boards)
    chosen_per_board = []
    for start in range(0, n_boards, _BOARD_CHUNK):
        boards = np.arange(start, min(start + _BOARD_CHUNK, n_boards))
        raw = tastes[boards] @ attributes.T
        mean, spread = raw.mean(axis=1), raw.std(axis=1)
        board_visual[boards] = settings.visual_weight * tastes[boards] / spread[:, None]
        board_visual_offset[boards] = -settings.visual_weight * mean / spread
        logits = (
            community_weight * (board_community[boards, None] == community[None, :])
            + settings.factor_weight * (board_factors[boards] @ factors.T) / np.sqrt(n_factors)
            + settings.visual_weight * (raw - mean[:, None]) / spread[:, None]
            + popularity[None, :]
        )
        # Gumbel top-k: the k largest perturbed logits are k draws without replacement.
        perturbed = logits + rng.gumbel(size=logits.shape)
        top = np.argpartition(-perturbed, most_pins - 1, axis=1)[:, :most_pins]
        order = np.argsort(-np.take_along_axis(perturbed, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        for row, board in enumerate(boards):
            chosen_per_board.append(top[row, : pin_counts[board]])

    pin_board, pin_catalogue = [], []
    for board, chosen in enumerate(chosen_per_board):
        repins = chosen[rng.random(len(chosen)) < settings.repin_share]
        pins = np.concatenate([chosen, repins])
        pin_board.append(np.full(len(pins), board, dtype=np.int64))
        pin_catalogue.append(pins.astype(np.int64))
    pin_board = np.concatenate(pin_board)
    pin_catalogue = np.concatenate(pin_catalogue)
    pinned, first = np.unique(pin_catalogue, return_index=True)
    pinned = pinned[np.argsort(first, kind="stable")]
    renumber = np.full(n_catalogue, -1, dtype=np.int64)
    renumber[pinned] = np.arange(len(pinned))
    return Simulation(
        pin_board=pin_board,
        pin_image=renumber[pin_catalogue],
        colour=colour[pinned],
        accent=accent[pinned],
        shape=shape[pinned],
        pattern=pattern[pinned],
        size=size[pinned],
        brightness=brightness[pinned],
        community=community[pinned],
        factors=factors[pinned],
        popularity=popularity[pinned],
        board_category=board_category,
        board_community=board_community,
        board_factors=board_factors,
        board_visual=board_visual,
        board_visual_offset=board_visual_offset,
        community_weight=community_logit(settings),
        factor_weight=float(settings.factor_weight / np.sqrt(n_factors)),
    )


def logit_terms(simulation: Simulation, boards: np.ndarray, images: np.ndarray):
    """The true ``(collaborative, visual, popularity)`` logit terms of aligned ``boards`` and
    ``images`` (generator indexes); their sum is the logit the pins were drawn with."""
    boards, images = np.asarray(boards, np.int64), np.asarray(images, np.int64)
    collaborative = (
        simulation.community_weight
        * (simulation.board_community[boards] == simulation.community[images])
        + simulation.factor_weight
        * np.einsum("nk,nk->n", simulation.board_factors[boards], simulation.factors[images])
    )
    visual = (
        np.einsum("nk,nk->n", simulation.board_visual[boards], simulation.attributes()[images])
        + simulation.board_visual_offset[boards]
    )
    return collaborative, visual, simulation.popularity[images]


def interaction_tables(simulation: Simulation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated pins as the raw readers' ``(interactions, items)`` columns."""
    images = np.array([f"image-{index}" for index in range(simulation.n_images)], dtype=object)
    interactions = pd.DataFrame({
        "user_raw_id": np.char.mod("board-%d", simulation.pin_board).astype(object),
        "item_raw_id": images[simulation.pin_image],
    })
    items = pd.DataFrame({"item_raw_id": images, "image": images})
    return interactions, items


def statistics(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    *,
    min_user_interactions: int = 2,
    split_seed: int = 2019,
    candidate_seed: int = 2020,
    n_negatives: int = 999,
) -> dict[str, float]:
    """Table 1 statistics of a raw ``(interactions, items)`` pair after the project's own
    filter, ids and leave-one-out split (defaults: conf/base/parameters_data_processing.yml).

    ``gini``: Gini coefficient of item popularity (interactions per item);
    ``top_1_percent_share``: share of interactions on the 1% most popular items;
    ``cold_test_share``: share of test items never in training;
    ``pop_hit_ratio_at_10``: HR@10 of ranking the test candidates by training popularity,
    the share of users for whom popularity alone puts the test item in the top 10.
    """
    from amr_pipeline.recsys import data
    from amr_pipeline.recsys.metrics import rank_candidates, summarise
    from amr_pipeline.recsys.models import popularity_model

    kept, kept_items = data.filter_interactions(
        interactions, items, min_user_interactions=min_user_interactions
    )
    indexed, users, item_table = data.assign_ids(kept, kept_items)
    train, _validation, test = data.leave_one_out(indexed, seed=split_seed)
    item_table = data.mark_cold_items(item_table, train)
    n_users, n_items, n_interactions = len(users), len(item_table), len(indexed)

    popularity = np.sort(np.bincount(indexed["item_id"], minlength=n_items))
    rank = np.arange(1, n_items + 1)
    gini = float(((2 * rank - n_items - 1) @ popularity) / (n_items * popularity.sum()))
    top_items = max(1, n_items // 100)
    top_share = float(popularity[::-1][:top_items].sum() / popularity.sum())

    candidates = data.sample_candidates(
        test, indexed, n_items, n_negatives=n_negatives, seed=candidate_seed
    )
    ranks = rank_candidates(popularity_model(train, n_users, n_items), None, candidates)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n_interactions,
        "interactions_per_user": n_interactions / n_users,
        "sparsity": 1.0 - n_interactions / (n_users * n_items),
        "gini": gini,
        "top_1_percent_share": top_share,
        "cold_test_share": data.cold_share(test, item_table),
        "pop_hit_ratio_at_10": summarise(ranks, cutoffs=(10,))["hr_at_10"],
    }


def simulation_statistics(settings: DemoSettings = DemoSettings(), **options) -> dict[str, float]:
    """:func:`statistics` of :func:`simulate` (no images drawn)."""
    return statistics(*interaction_tables(simulate(settings)), **options)


def format_statistics(values: dict[str, float]) -> str:
    """A Markdown table of ``values`` next to the paper's Pinterest row."""
    lines = ["| statistic | demo | paper (Pinterest) |", "|---|---|---|"]
    for name, value in values.items():
        paper = PAPER_PINTEREST.get(name)
        lines.append(f"| {name} | {_format(name, value)} | "
                     f"{'' if paper is None else _format(name, paper)} |")
    return "\n".join(lines)


def _format(name: str, value: float) -> str:
    if name in ("users", "items", "interactions"):
        return f"{int(value):,}"
    if name == "sparsity":
        return f"{100 * value:.3f}%"
    return f"{value:.3f}"


def board_ids(n_boards: int) -> list[str]:
    """The dump's ``board_id`` of each generator board."""
    return [str(10_000_000 + 7919 * board) for board in range(n_boards)]


def image_names(n_images: int) -> list[str]:
    """The dump's ``im_name`` (the image file) of each pinned generator image."""
    return [hashlib.sha1(f"demo-image-{i}".encode()).hexdigest() + ".jpg"
            for i in range(n_images)]


def generator_arrays(simulation: Simulation, settings: DemoSettings) -> dict[str, np.ndarray]:
    """What :mod:`amr_pipeline.demo.ceilings` needs to recompute every true logit term of the
    pinned images (about 1 MB, never a board x catalogue matrix): per board its dump
    ``board_id``, community, factors θ_u and visual weights (standardised and scaled); per
    pinned image its dump ``image_name``, community (-1: fresh), factors φ_i, attributes
    (:func:`visual_attributes` rebuilds ``a_i``) and popularity b_i; the two collaborative
    weights and the seed. Generator index = row; the dump ids map the pipeline's raw ids
    back to rows."""
    return {
        "board_id": np.array(board_ids(settings.n_boards)),
        "board_community": simulation.board_community.astype(np.int64),
        "board_factors": simulation.board_factors,
        "board_visual": simulation.board_visual,
        "board_visual_offset": simulation.board_visual_offset,
        "image_name": np.array(image_names(simulation.n_images)),
        "image_community": simulation.community.astype(np.int64),
        "image_factors": simulation.factors,
        "image_colour": simulation.colour.astype(np.int64),
        "image_accent": simulation.accent.astype(np.int64),
        "image_shape": simulation.shape.astype(np.int64),
        "image_pattern": simulation.pattern.astype(np.int64),
        "image_size": simulation.size,
        "image_brightness": simulation.brightness,
        "image_popularity": simulation.popularity,
        "community_weight": np.float64(simulation.community_weight),
        "factor_weight": np.float64(simulation.factor_weight),
        "seed": np.int64(settings.seed),
    }


def write_generator(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (loadable with ``np.load``) with fixed zip timestamps, so that the same
    arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, buffer.getvalue())


def synthesize(output: Path, settings: DemoSettings = DemoSettings()) -> dict[str, int]:
    """Write the four dump files, ``images/`` and ``generator.npz`` under ``output``; return
    counts."""
    simulation = simulate(settings)
    names = image_names(simulation.n_images)
    images_dir = output / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in images_dir.glob("*.jpg"):
        stale.unlink()
    for index, name in enumerate(names):
        picture = draw_image(
            int(simulation.colour[index]), int(simulation.accent[index]),
            int(simulation.shape[index]), int(simulation.pattern[index]),
            float(simulation.size[index]), float(simulation.brightness[index]),
            settings.image_size, np.random.default_rng([settings.seed, index]),
        )
        picture.save(images_dir / name, format="JPEG", quality=settings.jpeg_quality)

    boards = board_ids(settings.n_boards)
    pin_ids = [str(500_000_000 + pin) for pin in range(len(simulation.pin_board))]
    pins_per_board: list[list[str]] = [[] for _ in range(settings.n_boards)]
    pin_docs = []
    for pin, (board, image) in enumerate(zip(simulation.pin_board, simulation.pin_image)):
        pins_per_board[board].append(pin_ids[pin])
        pin_docs.append({
            "pin_id": pin_ids[pin],
            "im_name": names[image],
            "im_url": f"https://demo.invalid/originals/{names[image]}",
        })
    board_docs = [
        {"board_id": boards[board], "board_url": f"/demo/board-{board}/", "pins": pins}
        for board, pins in enumerate(pins_per_board)
    ]
    category_docs = [
        {"board_id": boards[board], "cate_id": int(category) + 1}  # 1-based line number
        for board, category in enumerate(simulation.board_category)
    ]
    _write_bson(output / "subset_iccv_board_pins.bson", board_docs)
    _write_bson(output / "subset_iccv_pin_im.bson", pin_docs)
    _write_bson(output / "subset_iccv_board_cate.bson", category_docs)
    (output / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    write_generator(output / GENERATOR_FILE, generator_arrays(simulation, settings))
    return {"boards": settings.n_boards, "images": simulation.n_images, "pins": len(pin_docs)}


def _shape_mask(shape: int, centre, radius: float, size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(mask)
    cx, cy = centre
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    name = SHAPES[shape]

    def polygon(points: int, inner: float = 1.0, turn: float = -np.pi / 2):
        corners = points * (1 if inner == 1.0 else 2)
        angles = turn + 2 * np.pi * np.arange(corners) / corners
        radii = np.where(np.arange(corners) % 2, inner, 1.0)
        return [(cx + radius * r * np.cos(a), cy + radius * r * np.sin(a))
                for r, a in zip(radii, angles)]

    if name == "circle":
        pen.ellipse(box, fill=255)
    elif name == "square":
        pen.rectangle((cx - 0.85 * radius, cy - 0.85 * radius,
                       cx + 0.85 * radius, cy + 0.85 * radius), fill=255)
    elif name == "triangle":
        pen.polygon(polygon(3), fill=255)
    elif name == "cross":
        bar = radius / 3
        pen.rectangle((box[0], cy - bar, box[2], cy + bar), fill=255)
        pen.rectangle((cx - bar, box[1], cx + bar, box[3]), fill=255)
    elif name == "star":
        pen.polygon(polygon(5, inner=0.45), fill=255)
    elif name == "diamond":
        pen.polygon(polygon(4), fill=255)
    elif name == "hexagon":
        pen.polygon(polygon(6, turn=0.0), fill=255)
    else:  # ring
        pen.ellipse(box, fill=255)
        hole = 0.5 * radius
        pen.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
    return mask


def draw_image(colour: int, accent: int, shape: int, pattern: int, size_code: float,
               brightness: float, size: int, rng) -> Image.Image:
    """One item image: a shape filled with ``colour``, outlined and patterned in ``accent``,
    ``size_code`` in [-1, 1] (radius 22% to 42% of the image) on a background of
    ``brightness`` in [-1, 1] (dark to light) with noise and a slight tint."""
    palette = list(COLOURS.values())
    level = 140.0 + 95.0 * brightness
    background = np.clip(level + rng.normal(0, 8, 3), 0, 255)
    canvas = np.clip(background + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    picture = Image.fromarray(canvas, "RGB")
    fill = tuple(int(c) for c in np.clip(np.array(palette[colour]) + rng.normal(0, 12, 3),
                                         0, 255))
    trim = tuple(int(c) for c in np.clip(np.array(palette[accent]) + rng.normal(0, 12, 3),
                                         0, 255))
    radius = size * (0.32 + 0.1 * size_code) * rng.uniform(0.95, 1.05)
    centre = size / 2 + rng.uniform(-size / 12, size / 12, 2)
    outline = _shape_mask(shape, centre, radius, size)
    inside = _shape_mask(shape, centre, radius - max(2.0, size / 24), size)

    surface = Image.new("RGB", (size, size), fill)
    texture = ImageDraw.Draw(surface)
    step = max(4, size // 8)
    name = PATTERNS[pattern]
    if name == "stripes":
        for offset in range(-size, size, step):
            texture.line((offset, 0, offset + size, size), fill=trim, width=max(1, step // 3))
    elif name == "dots":
        for x in range(step // 2, size, step):
            for y in range(step // 2, size, step):
                texture.ellipse((x - step / 4, y - step / 4, x + step / 4, y + step / 4),
                                fill=trim)
    elif name == "checks":
        for x in range(0, size, step):
            for y in range(0, size, step):
                if (x // step + y // step) % 2:
                    texture.rectangle((x, y, x + step - 1, y + step - 1), fill=trim)
    elif name == "grid":
        for offset in range(0, size, step):
            texture.line((offset, 0, offset, size), fill=trim, width=1)
            texture.line((0, offset, size, offset), fill=trim, width=1)
    elif name == "bands":
        for y in range(0, size, 2 * step):
            texture.rectangle((0, y, size, y + step - 1), fill=trim)
    picture.paste(Image.new("RGB", (size, size), trim), (0, 0), outline)
    picture.paste(surface, (0, 0), inside)
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
    settings = DemoSettings(seed=arguments.seed)
    counts = synthesize(arguments.output, settings)
    print(f"Wrote the demo dump to {arguments.output}: {counts}")
    print(format_statistics(simulation_statistics(settings)))


if __name__ == "__main__":
    main()
