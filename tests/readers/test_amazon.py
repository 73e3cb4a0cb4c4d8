"""Tests of the Amazon 2014/2018 readers on small files written in code."""

import gzip
import json

import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.readers.amazon import read_amazon, read_amazon_meta, read_amazon_reviews

WOMEN = ["Clothing, Shoes & Jewelry", "Women"]

META_2014 = [
    {"asin": "W1", "title": "Dress", "imUrl": "http://img/w1.jpg",
     "categories": [["Clothing, Shoes & Jewelry", "Women", "Dresses"], ["Women's Day"]]},
    {"asin": "M1", "imUrl": "http://img/m1.jpg",
     "categories": [["Clothing, Shoes & Jewelry", "Men", "Shirts"]]},
    {"asin": "W2", "title": "Men's & Women's socks",
     "categories": [["Clothing, Shoes & Jewelry", "Men"], ["Clothing, Shoes & Jewelry", "Women"]]},
]
META_2018 = [
    {"asin": "W1", "category": ["Clothing, Shoes & Jewelry", "Women", "Dresses"],
     "imageURL": ["http://img/w1s.jpg"], "imageURLHighRes": ["http://img/w1.jpg"]},
    {"asin": "M1", "category": ["Clothing, Shoes & Jewelry", "Men"],
     "imageURL": ["http://img/m1.jpg"]},
    {"asin": "W2", "category": ["Clothing, Shoes & Jewelry", "Women"],
     "imageURL": ["http://img/w2.jpg"], "imageURLHighRes": []},
    {"asin": "W3", "category": ["Clothing, Shoes & Jewelry", "Women"], "imageURL": []},
    {"asin": "W1", "category": ["Clothing, Shoes & Jewelry", "Women"], "imageURL": ["dup"]},
]
REVIEWS = [
    {"reviewerID": "u1", "asin": "W1", "overall": 5.0, "unixReviewTime": 1300000000},
    {"reviewerID": "u1", "asin": "M1", "overall": 4.0, "unixReviewTime": 1300000001},
    {"reviewerID": "u2", "asin": "W2", "overall": 3.0},
]


def write_lines(path, lines):
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as stream:
            stream.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files_2014(tmp_path):
    reviews = write_lines(tmp_path / "reviews_Clothing.json.gz", [json.dumps(r) for r in REVIEWS])
    meta = write_lines(tmp_path / "meta_Clothing.json.gz", [repr(m) for m in META_2014])
    return reviews, meta


@pytest.fixture
def files_2018(tmp_path):
    reviews = write_lines(tmp_path / "Clothing.json.gz", [json.dumps(r) for r in REVIEWS])
    meta = write_lines(tmp_path / "meta_Clothing.json", [json.dumps(m) for m in META_2018])
    return reviews, meta


def test_2014_women_subset(files_2014):
    interactions, items = read_amazon(*files_2014, category_path=WOMEN)

    assert items["item_raw_id"].tolist() == ["W1", "W2"]
    assert items["image"].iloc[0] == "http://img/w1.jpg"
    assert pd.isna(items["image"].iloc[1])
    assert items["category"].tolist() == [
        "Clothing, Shoes & Jewelry > Women > Dresses",
        "Clothing, Shoes & Jewelry > Women",
    ]
    assert interactions["item_raw_id"].tolist() == ["W1", "W2"]
    assert interactions["user_raw_id"].tolist() == ["u1", "u2"]
    assert interactions["timestamp"].tolist()[0] == 1300000000
    assert pd.isna(interactions["timestamp"].iloc[1])
    assert str(interactions["timestamp"].dtype) == "Int64"


def test_no_category_path_keeps_all_with_first_path(files_2014):
    interactions, items = read_amazon(*files_2014)
    assert items["item_raw_id"].tolist() == ["W1", "M1", "W2"]
    assert items["category"].iloc[2] == "Clothing, Shoes & Jewelry > Men"
    assert len(interactions) == 3


def test_2018_meta_images_duplicates_and_filter(files_2018):
    interactions, items = read_amazon(*files_2018, category_path=WOMEN)
    assert items["item_raw_id"].tolist() == ["W1", "W2", "W3"]
    assert items["image"].iloc[0] == "http://img/w1.jpg"
    assert items["image"].iloc[1] == "http://img/w2.jpg"
    assert pd.isna(items["image"].iloc[2])
    assert items["category"].iloc[0] == "Clothing, Shoes & Jewelry > Women > Dresses"
    assert sorted(interactions["item_raw_id"]) == ["W1", "W2"]


def test_ratings_csv_column_orders(tmp_path):
    meta_2014 = write_lines(tmp_path / "meta_C.json.gz", [repr(m) for m in META_2014])
    meta_2018 = write_lines(tmp_path / "meta_C2.json.gz", [json.dumps(m) for m in META_2018])
    ratings_2014 = write_lines(tmp_path / "ratings_C.csv", ["u1,W1,5.0,1300000000", "u2,M1,1.0,1"])
    ratings_2018 = write_lines(tmp_path / "C.csv", ["W1,u1,5.0,1300000000", "M1,u2,1.0,1"])

    for ratings, meta in [(ratings_2014, meta_2014), (ratings_2018, meta_2018)]:
        interactions, _ = read_amazon(ratings, meta, category_path=WOMEN)
        assert interactions[["user_raw_id", "item_raw_id"]].values.tolist() == [["u1", "W1"]]
        assert interactions["timestamp"].tolist() == [1300000000]

    swapped = read_amazon_reviews(ratings_2018, version="2018")
    assert swapped["user_raw_id"].tolist() == ["u1", "u2"]
    with pytest.raises(ConfigurationError, match="version"):
        read_amazon_reviews(ratings_2018)


def test_strict_2018_rejects_python_literal(files_2014):
    _, meta = files_2014
    with pytest.raises(RawDataError, match=r"meta_Clothing\.json\.gz, record 1: .*not valid JSON"):
        read_amazon_meta(meta, version="2018")


def test_bad_literal_line(tmp_path):
    meta = write_lines(
        tmp_path / "meta_X.json.gz", [repr(META_2014[0]), "{'asin': 'Z', 'title': 'cut"]
    )
    with pytest.raises(RawDataError, match=r"meta_X\.json\.gz, record 2: .*Python literal"):
        read_amazon_meta(meta)


def test_bad_json_review_line(tmp_path, files_2014):
    _, meta = files_2014
    reviews = write_lines(tmp_path / "reviews_X.json", [json.dumps(REVIEWS[0]), "", "not json"])
    with pytest.raises(RawDataError, match=r"reviews_X\.json, record 3:"):
        read_amazon(reviews, meta)


@pytest.mark.parametrize("field", ["reviewerID", "asin"])
def test_review_missing_field(tmp_path, field):
    record = dict(REVIEWS[0])
    del record[field]
    path = write_lines(tmp_path / "reviews_Y.json.gz", [json.dumps(REVIEWS[1]), json.dumps(record)])
    with pytest.raises(RawDataError, match=rf"reviews_Y\.json\.gz, record 2: .*'{field}'"):
        read_amazon_reviews(path)


def test_meta_missing_asin(tmp_path):
    record = {k: v for k, v in META_2014[0].items() if k != "asin"}
    path = write_lines(tmp_path / "meta_Y.json.gz", [repr(META_2014[1]), repr(record)])
    with pytest.raises(RawDataError, match=r"meta_Y\.json\.gz, record 2: .*'asin'"):
        read_amazon_meta(path, category_path=WOMEN)


def test_csv_wrong_column_count(tmp_path):
    path = write_lines(tmp_path / "ratings_Z.csv", ["u1,W1,5.0,1", "u2,W2,5.0"])
    with pytest.raises(RawDataError, match=r"ratings_Z\.csv, record 2: expected 4 columns.*got 3"):
        read_amazon_reviews(path)


def test_no_item_in_category(files_2014):
    pattern = r"no item matches category path .*Kids.*meta_Clothing.*category_path"
    with pytest.raises(RawDataError, match=pattern):
        read_amazon(*files_2014, category_path=["Clothing, Shoes & Jewelry", "Kids"])


def test_truncated_gzip(tmp_path):
    path = write_lines(tmp_path / "reviews_T.json.gz", [json.dumps(REVIEWS[0])] * 2000)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(RawDataError, match=r"reviews_T\.json\.gz, record \d+: .*truncated"):
        read_amazon_reviews(path)


def test_bad_version():
    with pytest.raises(ConfigurationError):
        read_amazon_reviews("x.json", version="2016")
