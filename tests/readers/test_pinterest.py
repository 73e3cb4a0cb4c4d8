"""Tests of the Pinterest ICCV'15 BSON dump reader on dumps written in code."""

import logging

import bson
import pandas as pd
import pytest

from amr_pipeline.errors import RawDataError
from amr_pipeline.readers.pinterest import (
    build_pinterest_tables,
    read_bson_documents,
    read_pinterest,
)

BOARDS = [
    {"board_id": "b1", "board_url": "/u/b1", "pins": ["p1", "p2", "p3"]},
    {"board_id": "b2", "board_url": "/u/b2", "pins": ["p4", "p5"]},
    {"board_id": "b3", "board_url": "/u/b3", "pins": ["p6", "p404"]},
]
PIN_IMAGES = [
    {"pin_id": "p1", "im_name": "a.jpg", "im_url": "http://x/a.jpg"},
    {"pin_id": "p2", "im_name": "b.jpg", "im_url": "http://x/b.jpg"},
    {"pin_id": "p3", "im_name": "c.jpg", "im_url": "http://x/c.jpg"},
    {"pin_id": "p4", "im_name": "a.jpg", "im_url": "http://x/a.jpg"},
    {"pin_id": "p5", "im_name": "c.jpg", "im_url": "http://x/c.jpg"},
    {"pin_id": "p6", "im_name": "a.jpg", "im_url": "http://x/a.jpg"},
]
BOARD_CATEGORIES = [
    {"board_id": "b1", "cate_id": 2},
    {"board_id": "b2", "cate_id": 0},
    {"board_id": "b3", "cate_id": 0},
]
CATEGORY_NAMES = ["animals", "art", "cars"]


def write_bson(path, documents):
    path.write_bytes(b"".join(bson.encode(doc) for doc in documents))
    return path


@pytest.fixture
def dump(tmp_path):
    write_bson(tmp_path / "subset_iccv_board_pins.bson", BOARDS)
    write_bson(tmp_path / "subset_iccv_pin_im.bson", PIN_IMAGES)
    write_bson(tmp_path / "subset_iccv_board_cate.bson", BOARD_CATEGORIES)
    (tmp_path / "categories.txt").write_text("\n".join(CATEGORY_NAMES) + "\n\n")
    return tmp_path


def test_boards_become_users_and_shared_images_one_item(dump):
    interactions, items = read_pinterest(dump)

    pairs = sorted(zip(interactions["user_raw_id"], interactions["item_raw_id"]))
    assert pairs == [
        ("b1", "a.jpg"), ("b1", "b.jpg"), ("b1", "c.jpg"),
        ("b2", "a.jpg"), ("b2", "c.jpg"), ("b3", "a.jpg"),
    ]
    assert list(interactions.columns) == ["user_raw_id", "item_raw_id", "timestamp"]
    assert str(interactions["timestamp"].dtype) == "Int64"
    assert interactions["timestamp"].isna().all()
    assert sorted(items["item_raw_id"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert items["item_raw_id"].is_unique
    assert (items["image"] == items["item_raw_id"]).all()


def test_item_category_is_most_frequent_with_smallest_id_on_ties(dump):
    _, items = read_pinterest(dump)
    category = dict(zip(items["item_raw_id"], items["category"]))
    # a.jpg: cars (b1) once, animals (b2, b3) twice -> animals
    assert category["a.jpg"] == "animals"
    assert category["b.jpg"] == "cars"
    # c.jpg: cars (b1) and animals (b2) tie -> cate_id 0 (animals)
    assert category["c.jpg"] == "animals"


def test_pins_without_image_are_dropped_and_logged(dump, caplog):
    with caplog.at_level(logging.INFO, logger="amr_pipeline.readers.pinterest"):
        interactions, _ = read_pinterest(dump)
    assert len(interactions) == 6
    assert "Dropped 1 of 7 pins" in caplog.text


def test_board_without_category_gives_na(tmp_path):
    interactions, items = build_pinterest_tables(
        [{"board_id": 7, "pins": [1]}], [{"pin_id": 1, "im_name": "z.jpg"}], [], []
    )
    assert interactions["user_raw_id"].tolist() == ["7"]
    assert pd.isna(items["category"].iloc[0])


def test_categories_are_optional(dump):
    _, items = read_pinterest(dump, board_categories=None, categories=None)
    assert items["category"].isna().all()


def test_truncated_bson_names_file_and_record(dump):
    path = dump / "subset_iccv_pin_im.bson"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RawDataError, match=r"subset_iccv_pin_im\.bson, record 6.*truncated"):
        read_pinterest(dump)


def test_read_bson_documents_streams_in_order(dump):
    docs = list(read_bson_documents(dump / "subset_iccv_board_pins.bson"))
    assert [doc["board_id"] for doc in docs] == ["b1", "b2", "b3"]


@pytest.mark.parametrize(
    ("file_name", "documents", "record", "field"),
    [
        ("subset_iccv_board_pins.bson", BOARDS[:1] + [{"board_id": "b9"}], 2, "pins"),
        ("subset_iccv_pin_im.bson", PIN_IMAGES[:2] + [{"pin_id": "p3"}], 3, "im_name"),
        ("subset_iccv_board_cate.bson", [{"cate_id": 1}], 1, "board_id"),
    ],
)
def test_missing_field_names_file_record_and_field(dump, file_name, documents, record, field):
    write_bson(dump / file_name, documents)
    with pytest.raises(RawDataError, match=rf"{file_name}, record {record}.*'{field}'"):
        read_pinterest(dump)


def test_unknown_category_id(dump):
    unknown = {"board_id": "b1", "cate_id": 3}
    write_bson(dump / "subset_iccv_board_cate.bson", BOARD_CATEGORIES + [unknown])
    with pytest.raises(RawDataError, match=r"board_cate\.bson, record 4: unknown category 3"):
        read_pinterest(dump)


def test_missing_file(dump):
    (dump / "categories.txt").unlink()
    with pytest.raises(RawDataError, match="categories.txt"):
        read_pinterest(dump)


@pytest.mark.parametrize(
    ("value", "shown"),
    [({"nested": "b1"}, "has type dict"), (5.0, "has type float"), (True, "has type bool"),
     (None, "has type NoneType"), (["b1"], "has type list"), ("  ", "is an empty string")],
)
def test_board_id_of_unexpected_type_is_reported_with_file_record_and_fix(dump, value, shown):
    boards = BOARDS[:2] + [{"board_id": value, "pins": ["p6"]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump)
    message = str(error.value)
    assert f"subset_iccv_board_pins.bson, record 3: board_id {shown}" in message
    assert "expected a non-empty string or an integer" in message
    assert "on_malformed='skip'" in message


def test_integer_and_string_board_ids_with_the_same_text_are_not_merged(dump):
    boards = [{"board_id": 5, "pins": ["p1"]}, {"board_id": "5", "pins": ["p2", "p3"]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    write_bson(dump / "subset_iccv_board_cate.bson", [])
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump)
    message = str(error.value)
    assert "subset_iccv_board_pins.bson, record 2: board_id '5' (string)" in message
    assert "integer board_id in" in message and "record 1" in message
    assert "would merge into one board" in message

    tables = read_pinterest(dump, on_malformed="report")
    assert tables.interactions["user_raw_id"].tolist() == ["5"]
    assert tables.interactions["item_raw_id"].tolist() == ["a.jpg"]
    assert [record for _, record, _ in tables.problems.rows] == [2]


def test_board_id_types_must_agree_across_the_board_files(dump):
    write_bson(dump / "subset_iccv_board_cate.bson", [{"board_id": 1, "cate_id": 0}])
    write_bson(dump / "subset_iccv_board_pins.bson", [{"board_id": "1", "pins": ["p1"]}])
    with pytest.raises(RawDataError, match=r"board_pins\.bson, record 1: board_id '1' \(string\)"
                                           r" has the same text as the integer board_id in "
                                           r".*board_cate\.bson, record 1"):
        read_pinterest(dump)


def test_object_id_and_int64_board_ids_become_text(dump):
    from bson.int64 import Int64
    from bson.objectid import ObjectId

    object_id = ObjectId()
    boards = [{"board_id": object_id, "pins": ["p1"]}, {"board_id": Int64(2**40), "pins": ["p2"]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    write_bson(dump / "subset_iccv_board_cate.bson", [])
    interactions, _ = read_pinterest(dump)
    assert interactions["user_raw_id"].tolist() == [str(object_id), str(2**40)]


@pytest.mark.parametrize("im_name", [7, {"path": "a.jpg"}, "", None])
def test_im_name_must_be_a_file_name(dump, im_name):
    pin_images = PIN_IMAGES[:1] + [{"pin_id": "p2", "im_name": im_name}]
    write_bson(dump / "subset_iccv_pin_im.bson", pin_images)
    with pytest.raises(RawDataError, match=r"subset_iccv_pin_im\.bson, record 2: im_name must be "
                                           r"a non-empty file name"):
        read_pinterest(dump)


def test_malformed_records_are_counted_and_the_first_few_listed(dump):
    bad = [{"pin_id": {"$bad": i}, "im_name": "x.jpg"} for i in range(14)]
    write_bson(dump / "subset_iccv_pin_im.bson", PIN_IMAGES + bad)
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump)
    message = str(error.value)
    assert message.startswith("14 malformed record(s) in ")
    assert "subset_iccv_pin_im.bson, record 7: pin_id has type dict" in message
    assert "record 16:" in message and "record 17:" not in message
    assert "... and 4 more" in message


def test_skip_leaves_malformed_records_out_and_logs_them(dump, caplog):
    boards = BOARDS + [{"board_id": {"nested": 1}, "pins": ["p1"]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    with caplog.at_level(logging.WARNING, logger="amr_pipeline.readers"):
        tables = read_pinterest(dump, on_malformed="skip")
    assert sorted(set(tables.interactions["user_raw_id"])) == ["b1", "b2", "b3"]
    assert len(tables.problems) == 1
    assert "subset_iccv_board_pins.bson, record 4: board_id has type dict" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="amr_pipeline.readers"):
        tables = read_pinterest(dump, on_malformed="report")
    assert caplog.text == "" and tables.problems.frame()["record"].tolist() == [4]


def test_only_malformed_records_fail_even_when_skipping(dump):
    write_bson(dump / "subset_iccv_board_pins.bson", [{"board_id": 1.5, "pins": ["p1"]}])
    with pytest.raises(RawDataError, match="1 malformed record"):
        read_pinterest(dump, on_malformed="skip")


def test_bad_policy_is_a_configuration_error(dump):
    from amr_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_malformed must be one of"):
        read_pinterest(dump, on_malformed="ignore")
