"""Reader of the Pinterest ICCV'15 dump (Geng et al.): mongodump BSON files + categories.txt.

A board is a user and an image is an item: pins that share an ``im_name`` are one
item whose ``item_raw_id`` and ``image`` are that ``im_name`` (relative to the image
folder). Pinterest has no timestamps, so ``timestamp`` is NA.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import bson
from bson.errors import BSONError

from amr_pipeline.errors import RawDataError, describe_location
from amr_pipeline.readers import RawTables, make_interactions, make_items

logger = logging.getLogger(__name__)

BOARD_PINS_FILE = "subset_iccv_board_pins.bson"
PIN_IMAGES_FILE = "subset_iccv_pin_im.bson"
BOARD_CATEGORIES_FILE = "subset_iccv_board_cate.bson"
CATEGORIES_FILE = "categories.txt"


def read_bson_documents(path: str | Path) -> Iterator[dict]:
    """Yield the documents of a concatenated-BSON (mongodump) file, streaming.

    Raises RawDataError naming the 1-based document index if the file is cut
    mid-document or a document is corrupt.
    """
    path = Path(path)
    record = 0
    with path.open("rb") as stream:
        iterator = bson.decode_file_iter(stream)
        while True:
            record += 1
            try:
                document = next(iterator)
            except StopIteration:
                return
            except (BSONError, ValueError, OverflowError) as exc:
                raise RawDataError(
                    f"{describe_location(path, record)}: cannot decode the BSON document ({exc}); "
                    "the file looks truncated or corrupt: re-download or re-extract it."
                ) from exc
            yield document


def _field(document: Mapping, field: str, source, record: int):
    """Return ``document[field]`` or raise RawDataError naming the missing field."""
    try:
        return document[field]
    except KeyError:
        raise RawDataError(
            f"{describe_location(source, record)}: required field {field!r} is missing "
            f"(fields present: {sorted(document)}); check that this is the right dump file."
        ) from None


def build_pinterest_tables(
    board_pins_docs: Iterable[Mapping],
    pin_image_docs: Iterable[Mapping],
    board_category_docs: Iterable[Mapping] = (),
    category_names: list[str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> RawTables:
    """Join boards, pin images and board categories into ``(interactions, items)``.

    ``cate_id`` is taken as the 0-based line index into ``category_names``. An
    item's category is the most frequent category among the boards that pinned
    it (ties: smallest ``cate_id``); NA when none of them has a category.
    Pins without an image record are dropped (and counted in the log).
    ``sources`` maps ``board_pins``/``pin_images``/``board_categories`` to the
    file names used in error messages; record numbers are 1-based document indexes.
    """
    sources = {
        "board_pins": BOARD_PINS_FILE,
        "pin_images": PIN_IMAGES_FILE,
        "board_categories": BOARD_CATEGORIES_FILE,
        "categories": CATEGORIES_FILE,
        **(sources or {}),
    }
    category_names = list(category_names or [])

    pin_image: dict[str, str] = {}
    for record, doc in enumerate(pin_image_docs, start=1):
        pin_id = str(_field(doc, "pin_id", sources["pin_images"], record))
        im_name = _field(doc, "im_name", sources["pin_images"], record)
        pin_image.setdefault(pin_id, str(im_name))

    board_categories: dict[str, set[int]] = defaultdict(set)
    for record, doc in enumerate(board_category_docs, start=1):
        board_id = str(_field(doc, "board_id", sources["board_categories"], record))
        cate_id = _field(doc, "cate_id", sources["board_categories"], record)
        try:
            cate_id = int(cate_id)
        except (TypeError, ValueError):
            cate_id = -1
        if not 0 <= cate_id < len(category_names):
            raise RawDataError(
                f"{describe_location(sources['board_categories'], record)}: unknown category "
                f"{doc['cate_id']!r}: {sources['categories']} has {len(category_names)} lines "
                "and cate_id is its 0-based line index; use the categories.txt of the same dump."
            )
        board_categories[board_id].add(cate_id)

    users: list[str] = []
    item_ids: list[str] = []
    item_votes: dict[str, Counter] = {}
    dropped = 0
    for record, doc in enumerate(board_pins_docs, start=1):
        board_id = str(_field(doc, "board_id", sources["board_pins"], record))
        pins = _field(doc, "pins", sources["board_pins"], record)
        if not isinstance(pins, list):
            raise RawDataError(
                f"{describe_location(sources['board_pins'], record)}: field 'pins' must be a "
                f"list of pin ids, got {type(pins).__name__}; "
                "check that this is the board-pins file."
            )
        cates = board_categories.get(board_id, ())
        voted: set[str] = set()
        for pin in pins:
            im_name = pin_image.get(str(pin))
            if im_name is None:
                dropped += 1
                continue
            users.append(board_id)
            item_ids.append(im_name)
            votes = item_votes.setdefault(im_name, Counter())
            if im_name not in voted:
                voted.add(im_name)
                votes.update(cates)

    if dropped:
        logger.info(
            "Dropped %d of %d pins in %s that have no image record in %s.",
            dropped, dropped + len(users), sources["board_pins"], sources["pin_images"],
        )
    if not users:
        raise RawDataError(
            f"{sources['board_pins']}: no pin has an image record in {sources['pin_images']}; "
            "check that both files come from the same dump."
        )

    categories = []
    for votes in item_votes.values():
        if votes:
            best = min(votes.items(), key=lambda pair: (-pair[1], pair[0]))[0]
            categories.append(category_names[best])
        else:
            categories.append(None)
    interactions = make_interactions(users, item_ids)
    items = make_items(item_votes.keys(), item_votes.keys(), categories)
    return RawTables(interactions, items)


def read_category_names(path: str | Path) -> list[str]:
    """Read categories.txt: one name per line; trailing blank lines are ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def read_pinterest(
    folder: str | Path = ".",
    board_pins: str | Path = BOARD_PINS_FILE,
    pin_images: str | Path = PIN_IMAGES_FILE,
    board_categories: str | Path | None = BOARD_CATEGORIES_FILE,
    categories: str | Path | None = CATEGORIES_FILE,
) -> RawTables:
    """Read the dump in ``folder`` into ``(interactions, items)``.

    File arguments are relative to ``folder`` (absolute paths also work). Pass
    ``board_categories=None, categories=None`` to skip categories (all NA).
    """
    folder = Path(folder)
    paths = {
        "board_pins": folder / board_pins,
        "pin_images": folder / pin_images,
        "board_categories": None if board_categories is None else folder / board_categories,
        "categories": None if categories is None else folder / categories,
    }
    if (paths["board_categories"] is None) != (paths["categories"] is None):
        raise RawDataError(
            f"{folder}: board categories and categories.txt go together; "
            "give both file names or set both to None."
        )
    missing = [str(p) for p in paths.values() if p is not None and not p.is_file()]
    if missing:
        raise RawDataError(
            f"Pinterest dump file(s) not found: {', '.join(missing)}; "
            "download the ICCV'15 dump (Geng et al.) and extract it there."
        )
    category_names = (
        read_category_names(paths["categories"]) if paths["categories"] is not None else []
    )
    board_category_docs = (
        read_bson_documents(paths["board_categories"])
        if paths["board_categories"] is not None
        else ()
    )
    return build_pinterest_tables(
        read_bson_documents(paths["board_pins"]),
        read_bson_documents(paths["pin_images"]),
        board_category_docs,
        category_names,
        sources={key: str(path) for key, path in paths.items() if path is not None},
    )
