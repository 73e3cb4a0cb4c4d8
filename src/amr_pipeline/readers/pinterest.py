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
from bson.objectid import ObjectId

from amr_pipeline.errors import RawDataError, describe_location
from amr_pipeline.readers import (
    MalformedRecords,
    RawTables,
    check_on_malformed,
    make_interactions,
    make_items,
    malformed,
)

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
        raise malformed(
            source, record,
            f"required field {field!r} is missing (fields present: {sorted(document)}); "
            "check that this is the right dump file."
        ) from None


def _identifier(document: Mapping, field: str, source, record: int) -> tuple[str, str]:
    """``(text, kind)`` of an id field: a non-empty string, an integer or an ObjectId.

    Anything else (a float, a nested document, a list, a boolean, null) is a malformed record,
    never turned into text that could equal another id.
    """
    value = _field(document, field, source, record)
    if isinstance(value, str):
        if value.strip():
            return value, "string"
        reason = "is an empty string"
    elif isinstance(value, int) and not isinstance(value, bool):
        return str(value), "integer"
    elif isinstance(value, ObjectId):
        return str(value), "ObjectId"
    else:
        reason = f"has type {type(value).__name__} ({value!r:.60})"
    raise malformed(
        source, record,
        f"{field} {reason}; expected a non-empty string or an integer. "
        "Fix the record, or re-export the dump with mongodump."
    )


def _category_index(value) -> int:
    """``cate_id`` as an integer (an integral double, as the mongo shell writes, is accepted);
    -1 for anything else."""
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return -1


class _BoardIds:
    """Board ids seen so far, so that two different BSON values never become one board.

    ``5`` (integer) and ``"5"`` (string) have the same text; when both occur in the dump
    the later one is a malformed record.
    """

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, str, int]] = {}

    def check(self, document: Mapping, source, record: int) -> str:
        text, kind = _identifier(document, "board_id", source, record)
        seen = self.first.setdefault(text, (kind, str(source), record))
        if seen[0] != kind:
            raise malformed(
                source, record,
                f"board_id {document['board_id']!r} ({kind}) has the same text as the "
                f"{seen[0]} board_id in {seen[1]}, record {seen[2]}; they would merge into one "
                "board. Fix: give every board_id one type (string) across the dump files."
            )
        return text


def build_pinterest_tables(
    board_pins_docs: Iterable[Mapping],
    pin_image_docs: Iterable[Mapping],
    board_category_docs: Iterable[Mapping] = (),
    category_names: list[str] | None = None,
    sources: Mapping[str, str] | None = None,
    on_malformed: str = "fail",
) -> RawTables:
    """Join boards, pin images and board categories into ``(interactions, items)``.

    ``cate_id`` is taken as the 0-based line index into ``category_names``. An
    item's category is the most frequent category among the boards that pinned
    it (ties: smallest ``cate_id``); NA when none of them has a category.
    Pins without an image record are dropped (and counted in the log).
    ``sources`` maps ``board_pins``/``pin_images``/``board_categories`` to the
    file names used in error messages; record numbers are 1-based document indexes.

    Every record is validated: required fields present, ``board_id``/``pin_id`` a non-empty
    string or an integer (one type per board id across the files), ``im_name`` a non-empty
    string, ``pins`` a list, ``cate_id`` a line of categories.txt. Invalid records are gathered
    and settled by ``on_malformed`` (``fail``: one error listing the first few; ``skip``: logged
    and left out; ``report``: left out, listed in ``RawTables.problems``).
    """
    check_on_malformed(on_malformed)
    sources = {
        "board_pins": BOARD_PINS_FILE,
        "pin_images": PIN_IMAGES_FILE,
        "board_categories": BOARD_CATEGORIES_FILE,
        "categories": CATEGORIES_FILE,
        **(sources or {}),
    }
    category_names = list(category_names or [])
    problems = MalformedRecords()
    board_ids = _BoardIds()

    pin_image: dict[str, str] = {}
    source = sources["pin_images"]
    for record, doc in enumerate(pin_image_docs, start=1):
        try:
            pin_id, _ = _identifier(doc, "pin_id", source, record)
            im_name = _field(doc, "im_name", source, record)
            if not isinstance(im_name, str) or not im_name.strip():
                raise malformed(
                    source, record,
                    f"im_name must be a non-empty file name, got {im_name!r:.60}; "
                    "fix the record or re-export the dump."
                )
        except RawDataError as error:
            problems.add(source, record, str(error))
            continue
        pin_image.setdefault(pin_id, im_name)

    board_categories: dict[str, set[int]] = defaultdict(set)
    source = sources["board_categories"]
    for record, doc in enumerate(board_category_docs, start=1):
        try:
            board_id = board_ids.check(doc, source, record)
            raw_cate = _field(doc, "cate_id", source, record)
            cate_id = _category_index(raw_cate)
            if not 0 <= cate_id < len(category_names):
                raise malformed(
                    source, record,
                    f"unknown category {raw_cate!r}: {sources['categories']} has "
                    f"{len(category_names)} lines and cate_id is its 0-based line index; "
                    "use the categories.txt of the same dump."
                )
        except RawDataError as error:
            problems.add(source, record, str(error))
            continue
        board_categories[board_id].add(cate_id)

    users: list[str] = []
    item_ids: list[str] = []
    item_votes: dict[str, Counter] = {}
    dropped = 0
    source = sources["board_pins"]
    for record, doc in enumerate(board_pins_docs, start=1):
        try:
            board_id = board_ids.check(doc, source, record)
            pins = _field(doc, "pins", source, record)
            if not isinstance(pins, list):
                raise malformed(
                    source, record,
                    f"field 'pins' must be a list of pin ids, got {type(pins).__name__}; "
                    "check that this is the board-pins file."
                )
        except RawDataError as error:
            problems.add(source, record, str(error))
            continue
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

    problems.settle("fail" if not users else on_malformed)
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
    return RawTables(interactions, items, problems)


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
    on_malformed: str = "fail",
) -> RawTables:
    """Read the dump in ``folder`` into ``(interactions, items)``.

    File arguments are relative to ``folder`` (absolute paths also work). Pass
    ``board_categories=None, categories=None`` to skip categories (all NA).
    ``on_malformed`` settles invalid records, see :func:`build_pinterest_tables`.
    """
    check_on_malformed(on_malformed)
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
        on_malformed=on_malformed,
    )
