"""Reader of the Pinterest ICCV'15 dump (Geng et al.): mongodump BSON files + categories.txt.

A board is a user and an image is an item: pins that share an ``im_name`` are one
item whose ``item_raw_id`` and ``image`` are that ``im_name`` (relative to the image
folder) and whose ``url`` is the first ``im_url`` given for it (NA when none is a string). Pinterest has no timestamps, so ``timestamp`` is NA. A board's ``cate_id`` is the
1-based line number of its category in categories.txt (the dump's README).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import bson
from bson.errors import BSONError
from bson.objectid import ObjectId

from amr_pipeline.errors import ConfigurationError, RawDataError, describe_location
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

UNKNOWN_PIN_POLICIES = ("drop", "fail")
UNKNOWN_PINS_SHOWN = 10


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
    identifier = _identifier_value(value)
    if isinstance(identifier, tuple):
        return identifier
    reason = identifier
    raise malformed(
        source, record,
        f"{field} {reason}; expected a non-empty string or an integer. "
        "Fix the record, or re-export the dump with mongodump."
    )


def _identifier_value(value) -> tuple[str, str] | str:
    """``(text, kind)`` of an id value (non-empty string, integer, ObjectId), else why not."""
    if isinstance(value, str):
        return (value, "string") if value.strip() else "is an empty string"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), "integer"
    if isinstance(value, ObjectId):
        return str(value), "ObjectId"
    return f"has type {type(value).__name__} ({value!r:.60})"


def _category_number(value) -> int | None:
    """``cate_id`` as an integer: an integer, an integral double (as the mongo shell writes)
    or a string of digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value.strip())
    return None


def check_on_unknown_pin(on_unknown_pin: str, name: str = "on_unknown_pin") -> str:
    """Validate what to do with pins that have no image record: ``drop`` or ``fail``."""
    if on_unknown_pin not in UNKNOWN_PIN_POLICIES:
        raise ConfigurationError(
            f"{name} must be one of {UNKNOWN_PIN_POLICIES}, got {on_unknown_pin!r}.")
    return on_unknown_pin


class UnknownPins:
    """Pins listed on boards that have no image record in the pin-image file.

    ``count`` counts them (a pin on two boards counts twice), ``total`` every pin of the valid
    boards, ``first`` holds the first :data:`UNKNOWN_PINS_SHOWN` distinct ids.
    """

    def __init__(self, board_pins: str, pin_images: str) -> None:
        self.board_pins = str(board_pins)
        self.pin_images = str(pin_images)
        self.count = 0
        self.total = 0
        self.first: list[str] = []

    def add(self, pin_id: str) -> None:
        self.count += 1
        if len(self.first) < UNKNOWN_PINS_SHOWN and pin_id not in self.first:
            self.first.append(pin_id)

    def message(self, ending: str) -> str:
        """The count, the share of pins and the first ids, then ``ending``."""
        share = 100 * self.count / self.total if self.total else 0.0
        return (f"{self.board_pins}: {self.count} of {self.total} pins ({share:.3g}%) have no "
                f"image record in {self.pin_images}; first ids: {', '.join(self.first)}. "
                f"{ending}")


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
    on_unknown_pin: str = "drop",
) -> RawTables:
    """Join boards, pin images and board categories into ``(interactions, items)``.

    ``cate_id`` is the 1-based line number in ``category_names`` (``cate_id`` 1 is the first
    line). An item's category is the most frequent category among the boards that pinned
    it (ties: smallest ``cate_id``); NA when none of them has a category.
    Pins without an image record are logged (count, share, first ids) as a warning, listed in
    ``RawTables.unknown_pins`` and dropped; ``on_unknown_pin='fail'`` raises instead.
    ``sources`` maps ``board_pins``/``pin_images``/``board_categories`` to the
    file names used in error messages; record numbers are 1-based document indexes.

    Every record is validated: required fields present, ``board_id``/``pin_id`` a non-empty
    string or an integer (one type per board id across the files), ``im_name`` a non-empty
    string, ``pins`` a list of such ids, ``cate_id`` a line number of categories.txt (an integer,
    integral double or string of digits from 1 to its line count). Invalid records are gathered
    and settled by ``on_malformed`` (``fail``: one error listing the first few; ``skip``: logged
    and left out; ``report``: left out, listed in ``RawTables.problems``).
    """
    check_on_malformed(on_malformed)
    check_on_unknown_pin(on_unknown_pin)
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
    image_url: dict[str, str] = {}
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
        im_url = doc.get("im_url")
        if isinstance(im_url, str) and im_url.strip():
            image_url.setdefault(im_name, im_url.strip())

    board_categories: dict[str, set[int]] = defaultdict(set)
    source = sources["board_categories"]
    for record, doc in enumerate(board_category_docs, start=1):
        try:
            board_id = board_ids.check(doc, source, record)
            raw_cate = _field(doc, "cate_id", source, record)
            cate_id = _category_number(raw_cate)
            lines = len(category_names)
            if cate_id is None or not 1 <= cate_id <= lines:
                what = ("is not a whole number" if cate_id is None
                        else f"is outside 1..{lines}")
                raise malformed(
                    source, record,
                    f"board {board_id!r}: cate_id {raw_cate!r:.60} {what}; cate_id is the "
                    f"1-based line number of the category in {sources['categories']} "
                    f"({lines} lines). Fix the record, or use the categories.txt of the same "
                    "dump."
                )
        except RawDataError as error:
            problems.add(source, record, str(error))
            continue
        board_categories[board_id].add(cate_id - 1)

    users: list[str] = []
    item_ids: list[str] = []
    item_votes: dict[str, Counter] = {}
    unknown_pins = UnknownPins(sources["board_pins"], sources["pin_images"])
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
            pin_ids = _pin_ids(pins, board_id, source, record)
        except RawDataError as error:
            problems.add(source, record, str(error))
            continue
        cates = board_categories.get(board_id, ())
        voted: set[str] = set()
        unknown_pins.total += len(pin_ids)
        for pin_id in pin_ids:
            im_name = pin_image.get(pin_id)
            if im_name is None:
                unknown_pins.add(pin_id)
                continue
            users.append(board_id)
            item_ids.append(im_name)
            votes = item_votes.setdefault(im_name, Counter())
            if im_name not in voted:
                voted.add(im_name)
                votes.update(cates)

    problems.settle("fail" if not users else on_malformed)
    if not users:
        raise RawDataError(
            f"{sources['board_pins']}: no pin has an image record in {sources['pin_images']}; "
            "check that both files come from the same dump."
        )
    if unknown_pins.count:
        if on_unknown_pin == "fail":
            raise RawDataError(unknown_pins.message(
                "Fix: use the pin-image file of the same dump, or pass on_unknown_pin='drop' to "
                "leave these pins out."))
        logger.warning("%s", unknown_pins.message(
            "These pins are left out (on_unknown_pin: drop); the pin-image file of the same "
            "dump has them."))

    categories = []
    for votes in item_votes.values():
        if votes:
            best = min(votes.items(), key=lambda pair: (-pair[1], pair[0]))[0]
            categories.append(category_names[best])
        else:
            categories.append(None)
    interactions = make_interactions(users, item_ids)
    items = make_items(item_votes.keys(), item_votes.keys(), categories,
                       [image_url.get(name) for name in item_votes])
    return RawTables(interactions, items, problems, unknown_pins)


def _pin_ids(pins: list, board_id: str, source, record: int) -> list[str]:
    """The text of every pin id of a board, or a malformed-record error naming the first
    element that is not an id (a document, float, boolean, null or list)."""
    pin_ids, bad = [], []
    for position, pin in enumerate(pins):
        identifier = _identifier_value(pin)
        if isinstance(identifier, tuple):
            pin_ids.append(identifier[0])
        else:
            bad.append((position, identifier))
    if bad:
        position, reason = bad[0]
        more = f" (and {len(bad) - 1} more element(s))" if len(bad) > 1 else ""
        raise malformed(
            source, record,
            f"board {board_id!r}: pins[{position}] {reason}{more}; every element of pins must "
            "be a pin id (a non-empty string, an integer or an ObjectId). Fix the record, or "
            "re-export the dump with mongodump."
        )
    return pin_ids


def _empty_file(path) -> RawDataError:
    """The error for a dump file with nothing in it."""
    return RawDataError(
        f"{path}: the file is empty; re-download or re-extract the ICCV'15 dump there."
    )


def read_category_names(path: str | Path) -> list[str]:
    """Read categories.txt: one name per line (line 1 is ``cate_id`` 1); trailing blank lines
    are ignored. A file with no name is reported as empty."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise _empty_file(path)
    return [line.strip() for line in lines]


def read_pinterest(
    folder: str | Path = ".",
    board_pins: str | Path = BOARD_PINS_FILE,
    pin_images: str | Path = PIN_IMAGES_FILE,
    board_categories: str | Path | None = BOARD_CATEGORIES_FILE,
    categories: str | Path | None = CATEGORIES_FILE,
    on_malformed: str = "fail",
    on_unknown_pin: str = "drop",
) -> RawTables:
    """Read the dump in ``folder`` into ``(interactions, items)``.

    File arguments are relative to ``folder`` (absolute paths also work). Pass
    ``board_categories=None, categories=None`` to skip categories (all NA).
    ``on_malformed`` settles invalid records and ``on_unknown_pin`` pins without an image
    record, see :func:`build_pinterest_tables`. An empty file is an error.
    """
    check_on_malformed(on_malformed)
    check_on_unknown_pin(on_unknown_pin)
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
    for key in ("board_pins", "pin_images", "board_categories"):
        if paths[key] is not None and paths[key].stat().st_size == 0:
            raise _empty_file(paths[key])
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
        on_unknown_pin=on_unknown_pin,
    )
