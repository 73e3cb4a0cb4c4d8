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
BOARD_CATEGORIES = [  # cate_id is the 1-based line number in categories.txt
    {"board_id": "b1", "cate_id": 3},
    {"board_id": "b2", "cate_id": 1},
    {"board_id": "b3", "cate_id": 1},
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
    assert dict(zip(items["item_raw_id"], items["url"])) == {
        name: f"http://x/{name}" for name in ("a.jpg", "b.jpg", "c.jpg")}


def test_item_category_is_most_frequent_with_smallest_id_on_ties(dump):
    _, items = read_pinterest(dump)
    category = dict(zip(items["item_raw_id"], items["category"]))
    # a.jpg: cars (b1) once, animals (b2, b3) twice -> animals
    assert category["a.jpg"] == "animals"
    assert category["b.jpg"] == "cars"
    # c.jpg: cars (b1) and animals (b2) tie -> cate_id 1 (animals)
    assert category["c.jpg"] == "animals"


def test_pins_without_image_are_dropped_with_a_warning(dump, caplog):
    with caplog.at_level(logging.WARNING, logger="amr_pipeline.readers.pinterest"):
        tables = read_pinterest(dump)
    assert len(tables.interactions) == 6 and tables.unknown_pins.count == 1
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert ("subset_iccv_board_pins.bson: 1 of 7 pins (14.3%) have no image record in "
            in caplog.text)
    assert "subset_iccv_pin_im.bson; first ids: p404." in caplog.text


def test_the_warning_shows_the_first_ten_unknown_pin_ids(dump, caplog):
    unknown = [f"gone{index}" for index in range(12)]
    boards = BOARDS[:2] + [{"board_id": "b3", "pins": ["p6", *unknown, "gone0"]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    with caplog.at_level(logging.WARNING, logger="amr_pipeline.readers.pinterest"):
        tables = read_pinterest(dump)
    assert tables.unknown_pins.count == 13 and tables.unknown_pins.total == 19
    assert "13 of 19 pins (68.4%)" in caplog.text
    assert f"first ids: {', '.join(unknown[:10])}." in caplog.text
    assert "gone10" not in caplog.text


def test_on_unknown_pin_fail_names_both_files_and_the_fix(dump):
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump, on_unknown_pin="fail")
    message = str(error.value)
    assert "subset_iccv_board_pins.bson: 1 of 7 pins (14.3%) have no image record" in message
    assert "subset_iccv_pin_im.bson; first ids: p404." in message
    assert "on_unknown_pin='drop'" in message


def test_on_unknown_pin_fail_passes_a_dump_where_every_pin_has_an_image(dump):
    write_bson(dump / "subset_iccv_board_pins.bson", BOARDS[:2])
    tables = read_pinterest(dump, on_unknown_pin="fail")
    assert len(tables.interactions) == 5 and tables.unknown_pins.count == 0


def test_bad_unknown_pin_policy_is_a_configuration_error(dump):
    from amr_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_unknown_pin must be one of"):
        read_pinterest(dump, on_unknown_pin="keep")


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


def _one_board_per_category(folder, cate_ids, n_categories=468):
    """A dump where board ``b<k>`` pins image ``<k>.jpg`` and has ``cate_ids[k]``."""
    write_bson(folder / "subset_iccv_board_pins.bson",
               [{"board_id": f"b{k}", "pins": [f"p{k}"]} for k in range(len(cate_ids))])
    write_bson(folder / "subset_iccv_pin_im.bson",
               [{"pin_id": f"p{k}", "im_name": f"{k}.jpg"} for k in range(len(cate_ids))])
    write_bson(folder / "subset_iccv_board_cate.bson",
               [{"board_id": f"b{k}", "cate_id": cate} for k, cate in enumerate(cate_ids)])
    names = [f"category {line}" for line in range(1, n_categories + 1)]
    (folder / "categories.txt").write_text("\n".join(names) + "\n")


def test_cate_id_is_the_1_based_line_number_of_categories_txt(tmp_path):
    """The dump's README: a category's id is its line number in categories.txt (468 lines)."""
    from bson.int64 import Int64

    _one_board_per_category(tmp_path, [1, 2, 468, Int64(467), "17", " 3 ", 466.0])
    _, items = read_pinterest(tmp_path)
    category = dict(zip(items["item_raw_id"], items["category"]))
    assert category == {"0.jpg": "category 1", "1.jpg": "category 2", "2.jpg": "category 468",
                        "3.jpg": "category 467", "4.jpg": "category 17", "5.jpg": "category 3",
                        "6.jpg": "category 466"}


@pytest.mark.parametrize(
    ("cate_id", "shown"),
    [(0, "0 is outside 1..468"), (469, "469 is outside 1..468"), (-1, "-1 is outside 1..468"),
     ("abc", "'abc' is not a whole number"), ("1.5", "'1.5' is not a whole number"),
     (1.5, "1.5 is not a whole number"), (None, "None is not a whole number"),
     (True, "True is not a whole number"), ([1], "[1] is not a whole number")],
)
def test_cate_id_that_is_not_a_line_number_is_a_malformed_record(tmp_path, cate_id, shown):
    _one_board_per_category(tmp_path, [5, cate_id])
    with pytest.raises(RawDataError) as error:
        read_pinterest(tmp_path)
    message = str(error.value)
    assert message.startswith("1 malformed record(s) in ")
    assert f"subset_iccv_board_cate.bson, record 2: board 'b1': cate_id {shown}" in message
    assert "1-based line number of the category in" in message and "(468 lines)" in message
    assert "use the categories.txt of the same dump" in message

    tables = read_pinterest(tmp_path, on_malformed="report")
    assert tables.problems.frame()["record"].tolist() == [2]
    category = dict(zip(tables.items["item_raw_id"], tables.items["category"]))
    assert category["0.jpg"] == "category 5" and pd.isna(category["1.jpg"])


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
    write_bson(dump / "subset_iccv_board_cate.bson", [{"board_id": 5, "cate_id": 1}])
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
    write_bson(dump / "subset_iccv_board_cate.bson", [{"board_id": 1, "cate_id": 1}])
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
    interactions, _ = read_pinterest(dump, board_categories=None, categories=None)
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
    assert "record 4" not in caplog.text and tables.problems.frame()["record"].tolist() == [4]


def test_only_malformed_records_fail_even_when_skipping(dump):
    write_bson(dump / "subset_iccv_board_pins.bson", [{"board_id": 1.5, "pins": ["p1"]}])
    with pytest.raises(RawDataError, match="1 malformed record"):
        read_pinterest(dump, on_malformed="skip")


def test_bad_policy_is_a_configuration_error(dump):
    from amr_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_malformed must be one of"):
        read_pinterest(dump, on_malformed="ignore")


def test_pin_ids_in_pins_may_be_strings_integers_or_object_ids(dump):
    from bson.int64 import Int64
    from bson.objectid import ObjectId

    object_id = ObjectId()
    write_bson(dump / "subset_iccv_board_pins.bson",
               [{"board_id": "b1", "pins": ["p1", 7, Int64(2**40), object_id]}])
    write_bson(dump / "subset_iccv_pin_im.bson", [
        {"pin_id": "p1", "im_name": "a.jpg"}, {"pin_id": 7, "im_name": "b.jpg"},
        {"pin_id": Int64(2**40), "im_name": "c.jpg"}, {"pin_id": object_id, "im_name": "d.jpg"},
    ])
    write_bson(dump / "subset_iccv_board_cate.bson", [{"board_id": "b1", "cate_id": 1}])
    tables = read_pinterest(dump, on_unknown_pin="fail")
    assert tables.interactions["item_raw_id"].tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


@pytest.mark.parametrize(
    ("element", "shown"),
    [({"pin_id": "p6"}, "has type dict"), (6.0, "has type float"), (True, "has type bool"),
     (None, "has type NoneType"), (["p6"], "has type list"), ("", "is an empty string")],
)
def test_a_pins_element_that_is_not_an_id_is_a_malformed_record(dump, element, shown):
    boards = BOARDS[:2] + [{"board_id": "b3", "pins": ["p6", element]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump)
    message = str(error.value)
    assert message.startswith("1 malformed record(s) in ")
    assert f"subset_iccv_board_pins.bson, record 3: board 'b3': pins[1] {shown}" in message
    assert "every element of pins must be a pin id" in message
    assert "on_malformed='skip'" in message


def test_skip_drops_the_board_with_a_bad_pins_element_and_lists_it(dump, caplog):
    boards = BOARDS[:2] + [{"board_id": "b3", "pins": [{"id": "p6"}, "p6", 6.5]}]
    write_bson(dump / "subset_iccv_board_pins.bson", boards)
    with caplog.at_level(logging.WARNING, logger="amr_pipeline.readers"):
        tables = read_pinterest(dump, on_malformed="skip")
    assert sorted(set(tables.interactions["user_raw_id"])) == ["b1", "b2"]
    assert tables.problems.frame()["record"].tolist() == [3]
    assert ("subset_iccv_board_pins.bson, record 3: board 'b3': pins[0] has type dict "
            "({'id': 'p6'}) (and 1 more element(s))") in caplog.text
    assert "no image record" not in caplog.text


@pytest.mark.parametrize(
    "file_name",
    ["subset_iccv_board_pins.bson", "subset_iccv_pin_im.bson", "subset_iccv_board_cate.bson",
     "categories.txt"],
)
def test_an_empty_file_is_reported_as_empty(dump, file_name):
    (dump / file_name).write_bytes(b"")
    with pytest.raises(RawDataError) as error:
        read_pinterest(dump)
    message = str(error.value)
    assert message.startswith(f"{dump / file_name}: the file is empty")
    assert "re-download or re-extract" in message and "same dump" not in message


def test_categories_txt_of_blank_lines_is_empty(dump):
    (dump / "categories.txt").write_text("\n\n")
    with pytest.raises(RawDataError, match=r"categories\.txt: the file is empty"):
        read_pinterest(dump)
