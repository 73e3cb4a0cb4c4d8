"""The raw-data Kedro datasets load through a catalog built from config."""

import json

import bson
import pytest
from kedro.io import DataCatalog, DatasetError

from amr_pipeline.errors import RawDataError
from amr_pipeline.readers import RawTables


@pytest.fixture
def pinterest_folder(tmp_path):
    folder = tmp_path / "pinterest"
    folder.mkdir()
    (folder / "subset_iccv_board_pins.bson").write_bytes(
        bson.encode({"board_id": "b1", "pins": ["p1", "p2"]})
        + bson.encode({"board_id": "b2", "pins": ["p2"]})
    )
    (folder / "subset_iccv_pin_im.bson").write_bytes(
        bson.encode({"pin_id": "p1", "im_name": "x.jpg"})
        + bson.encode({"pin_id": "p2", "im_name": "y.jpg"})
    )
    (folder / "subset_iccv_board_cate.bson").write_bytes(
        bson.encode({"board_id": "b1", "cate_id": 2})
    )
    (folder / "categories.txt").write_text("art\nfood\n")
    return folder


@pytest.fixture
def amazon_files(tmp_path):
    reviews = tmp_path / "reviews_C.json"
    reviews.write_text(
        json.dumps({"reviewerID": "u1", "asin": "W1", "unixReviewTime": 5}) + "\n"
        + json.dumps({"reviewerID": "u2", "asin": "M1", "unixReviewTime": 6}) + "\n"
    )
    meta = tmp_path / "meta_C.json"
    meta.write_text(
        repr({"asin": "W1", "imUrl": "http://i/w1.jpg",
              "categories": [["Clothing, Shoes & Jewelry", "Women"]]}) + "\n"
        + repr({"asin": "M1", "categories": [["Clothing, Shoes & Jewelry", "Men"]]}) + "\n"
    )
    return reviews, meta


def make_catalog(pinterest_folder, amazon_files):
    reviews, meta = amazon_files
    return DataCatalog.from_config(
        {
            "pinterest_raw": {
                "type": "amr_pipeline.datasets.raw.PinterestDumpDataset",
                "path": str(pinterest_folder),
            },
            "amazon_raw": {
                "type": "amr_pipeline.datasets.raw.AmazonDataset",
                "reviews": str(reviews),
                "meta": str(meta),
                "version": "2014",
                "category_path": ["Clothing, Shoes & Jewelry", "Women"],
            },
        }
    )


def test_pinterest_dataset_loads_tables(pinterest_folder, amazon_files):
    tables = make_catalog(pinterest_folder, amazon_files).load("pinterest_raw")
    assert isinstance(tables, RawTables)
    interactions, items = tables
    assert sorted(zip(interactions["user_raw_id"], interactions["item_raw_id"])) == [
        ("b1", "x.jpg"), ("b1", "y.jpg"), ("b2", "y.jpg"),
    ]
    categories = items.set_index("item_raw_id")["category"].to_dict()
    assert categories == {"x.jpg": "food", "y.jpg": "food"}


def test_amazon_dataset_loads_women_subset(pinterest_folder, amazon_files):
    tables = make_catalog(pinterest_folder, amazon_files).load("amazon_raw")
    assert tables.items["item_raw_id"].tolist() == ["W1"]
    assert tables.interactions["user_raw_id"].tolist() == ["u1"]
    assert tables.interactions["timestamp"].tolist() == [5]


def test_exists_save_and_describe(pinterest_folder, amazon_files):
    catalog = make_catalog(pinterest_folder, amazon_files)
    assert catalog.exists("pinterest_raw") and catalog.exists("amazon_raw")
    with pytest.raises(DatasetError, match="read-only"):
        catalog.save("amazon_raw", RawTables(None, None))
    assert "Women" in repr(catalog["amazon_raw"])
    (pinterest_folder / "categories.txt").unlink()
    assert not catalog.exists("pinterest_raw")


def test_bad_raw_data_surfaces_through_the_catalog(pinterest_folder, amazon_files):
    path = pinterest_folder / "subset_iccv_pin_im.bson"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DatasetError, match=r"subset_iccv_pin_im\.bson, record 2") as info:
        make_catalog(pinterest_folder, amazon_files).load("pinterest_raw")
    causes, error = [], info.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(cause, RawDataError) for cause in causes)


def test_malformed_records_are_left_out_and_listed_not_raised(pinterest_folder, amazon_files):
    (pinterest_folder / "subset_iccv_board_pins.bson").write_bytes(
        bson.encode({"board_id": "b1", "pins": ["p1", "p2"]})
        + bson.encode({"board_id": {"$oid": "b2"}, "pins": ["p2"]})
    )
    reviews, meta = amazon_files
    with reviews.open("a") as stream:
        stream.write("__import__('os').system('true')\n")
    catalog = make_catalog(pinterest_folder, amazon_files)
    pinterest = catalog.load("pinterest_raw")
    assert pinterest.interactions["user_raw_id"].tolist() == ["b1", "b1"]
    assert pinterest.problems.frame()["record"].tolist() == [2]
    amazon = catalog.load("amazon_raw")
    assert amazon.interactions["user_raw_id"].tolist() == ["u1"]
    assert [(source.endswith("reviews_C.json"), record)
            for source, record, _ in amazon.problems.rows] == [(True, 3)]
