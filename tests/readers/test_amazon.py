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
    assert items["image"].iloc[0] == "W1.jpg"
    assert items["url"].iloc[0] == "http://img/w1.jpg"
    assert pd.isna(items["image"].iloc[1]) and pd.isna(items["url"].iloc[1])
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
    assert items["url"].tolist()[:2] == ["http://img/w1.jpg", "http://img/w2.jpg"]
    assert items["image"].tolist()[:2] == ["W1.jpg", "W2.jpg"]
    assert pd.isna(items["image"].iloc[2]) and pd.isna(items["url"].iloc[2])
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


def test_a_meta_line_that_is_code_is_reported_never_run(tmp_path):
    marker = tmp_path / "executed"
    code = f"__import__('os').system('touch {marker}')"
    lines = [repr(META_2014[0]), code, repr(META_2014[1]),
             "{'asin': 'M2', 'categories': [['Men']], 'x': __import__('os').getcwd()}"]
    meta = write_lines(tmp_path / "meta_Evil.json.gz", lines)
    with pytest.raises(RawDataError) as error:
        read_amazon_meta(meta, category_path=WOMEN)
    message = str(error.value)
    assert message.startswith("2 malformed record(s) in ") and "meta_Evil.json.gz" in message
    assert "meta_Evil.json.gz, record 2: line is neither JSON nor a Python literal" in message
    assert "meta_Evil.json.gz, record 4:" in message
    assert "Fix: correct or remove these records" in message
    assert not marker.exists()
    items = read_amazon_meta(meta, category_path=WOMEN, on_malformed="skip")
    assert items["item_raw_id"].tolist() == ["W1"]
    assert not marker.exists()


def test_meta_lines_outside_the_category_are_still_validated(tmp_path):
    men = repr(META_2014[1])
    lines = [repr(META_2014[0]), men[:-1], men.replace("'M1'", "''"), men,
             men.replace("[", "[[", 1),
             json.dumps(META_2018[1]), json.dumps(META_2018[1])[:-2], "{'asin': 'M7', 'a': 01}"]
    meta = write_lines(tmp_path / "meta_Cut.json", lines)
    with pytest.raises(RawDataError) as error:
        read_amazon_meta(meta, category_path=WOMEN)
    message = str(error.value)
    assert message.startswith("5 malformed record(s)")
    for record in (2, 3, 5, 7, 8):
        assert f"meta_Cut.json, record {record}:" in message
    for record in (1, 4, 6):
        assert f"meta_Cut.json, record {record}:" not in message


def test_first_few_malformed_line_numbers_are_listed(tmp_path):
    lines = [repr(META_2014[0])] + ["garbage"] * 25
    meta = write_lines(tmp_path / "meta_G.json", lines)
    with pytest.raises(RawDataError) as error:
        read_amazon_meta(meta, category_path=WOMEN)
    message = str(error.value)
    assert message.startswith("25 malformed record(s)")
    assert "meta_G.json, record 11:" in message and "meta_G.json, record 12:" not in message
    assert "... and 15 more" in message


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("u2,W1,five,1300000000", "rating 'five' is not a number from 1 to 5"),
        ("u2,W1,0,1300000000", "rating '0' is not a number from 1 to 5"),
        ("u2,W1,6.5,1300000000", "rating '6.5' is not a number from 1 to 5"),
        ("u2,W1,nan,1300000000", "rating 'nan' is not a number from 1 to 5"),
        ("u2,W1,,1300000000", "rating '' is not a number from 1 to 5"),
        ("u2,W1,4.0,soon", "timestamp 'soon' is not a Unix time"),
        ("u2,W1,4.0,13.5", "timestamp '13.5' is not a Unix time"),
        ("u2,W1,4.0,-1", "timestamp '-1' is not a Unix time"),
        ("u2,W1,4.0,inf", "timestamp 'inf' is not a Unix time"),
        ("u2,W1,4.0,", "timestamp is empty"),
        (",W1,4.0,1300000000", "user id is empty"),
        ("u2, ,4.0,1300000000", "item id is empty"),
    ],
)
def test_ratings_csv_columns_are_validated(tmp_path, row, reason):
    path = write_lines(tmp_path / "ratings_V.csv", ["u1,W1,5.0,1300000000", row])
    with pytest.raises(RawDataError) as error:
        read_amazon_reviews(path)
    message = str(error.value)
    assert f"ratings_V.csv, record 2: {reason}" in message
    assert "fix or remove the line" in message


def test_ratings_csv_accepts_integral_float_times(tmp_path):
    path = write_lines(tmp_path / "ratings_F.csv", ["u1,W1,5,1300000000.0", "u2,W1,1.0,7"])
    assert read_amazon_reviews(path)["timestamp"].tolist() == [1300000000, 7]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"overall": "five"}, "rating 'five' is not a number"),
        ({"overall": True}, "rating True is not a number"),
        ({"unixReviewTime": True}, "timestamp True is not a Unix time"),
        ({"unixReviewTime": 1.5}, "timestamp 1.5 is not a Unix time"),
        ({"reviewerID": {"id": 1}}, "reviewerID has type dict"),
        ({"asin": ["W1"]}, "asin has type list"),
    ],
)
def test_json_review_fields_are_validated(tmp_path, change, reason):
    path = write_lines(tmp_path / "reviews_V.json",
                       [json.dumps(REVIEWS[0]), json.dumps({**REVIEWS[1], **change})])
    with pytest.raises(RawDataError, match=rf"reviews_V\.json, record 2: {reason}"):
        read_amazon_reviews(path)


def test_reviews_on_items_outside_the_category_are_validated_too(files_2014, tmp_path):
    _, meta = files_2014
    ratings = write_lines(tmp_path / "ratings_C.csv", ["u1,W1,5.0,1", "u2,M1,five,2"])
    with pytest.raises(RawDataError, match=r"ratings_C\.csv, record 2: rating 'five'"):
        read_amazon(ratings, meta, category_path=WOMEN)
    tables = read_amazon(ratings, meta, category_path=WOMEN, on_malformed="report")
    assert tables.interactions["user_raw_id"].tolist() == ["u1"]
    assert tables.problems.frame()[["record"]].values.ravel().tolist() == [2]


def test_the_cheap_record_check_never_passes_a_line_that_does_not_parse():
    """Lines the category test skips unparsed must be proven records: mutate a real-looking
    line at random and compare the check with ``ast.literal_eval``."""
    import ast
    import random

    from amr_pipeline.readers.amazon import _is_valid_record

    record = {"asin": "B000123", "related": {"also_bought": ["B01", "B02"], "also_viewed": []},
              "title": "Men's \"fine\" shirt \\ \u00e9", "price": 3.17, "salesRank": {"A": 5},
              "imUrl": "http://x/y.jpg", "rank": -1e-3, "flag": None, "ok": True,
              "categories": [["Clothing, Shoes & Jewelry", "Men"]]}
    line = repr(record)
    assert _is_valid_record(line, "auto") and _is_valid_record(json.dumps(record), "auto")
    alphabet = list("{}[]()'\",:.-+0eE\\ xNu_abc") + ["__import__('os')", "01", "1 2", "lambda"]
    rng = random.Random(5)
    passed = 0
    for _ in range(3000):
        chars = list(line)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(chars))
            if rng.random() < 0.5:
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        mutated = "".join(chars)
        if not _is_valid_record(mutated, "auto"):
            continue
        passed += 1
        value = ast.literal_eval(mutated)
        assert isinstance(value, dict) and str(value["asin"]).strip(), mutated
    assert passed > 100


# ----------------------------------------------------------------------- quotes and empty files

RATINGS_360 = [f"u{row},W{row % 3 + 1},{row % 5 + 1}.0,{1300000000 + row}" for row in range(360)]


def _ratings(tmp_path, line, text):
    """A 360-row 2014 ratings CSV whose 1-based ``line`` is replaced by ``text``."""
    rows = list(RATINGS_360)
    rows[line - 1] = text
    return write_lines(tmp_path / "ratings_Clothing.csv", rows)


@pytest.mark.parametrize("on_malformed", ["fail", "skip", "report"])
def test_an_unterminated_quote_fails_naming_its_line_whatever_the_policy(tmp_path, on_malformed):
    """One open quote would swallow the 354 lines after it: the read stops at the quote's line,
    instead of reporting one malformed row (skip) or a column count on the last line (fail)."""
    path = _ratings(tmp_path, 6, 'u5,"W3,1.0,1300000005')
    with pytest.raises(RawDataError) as raised:
        read_amazon_reviews(path, on_malformed=on_malformed)
    message = str(raised.value)
    assert message.startswith(f"{path}, record 6: unterminated quote")
    assert "opened on line 6" in message and "lines 6 to 360" in message
    assert "u5,\"W3,1.0,1300000005" in message and "close or remove the quote on line 6" in message
    assert "columns" not in message and "record 360" not in message


def test_an_unterminated_quote_fails_the_raw_dataset_load(tmp_path):
    """The catalog's AmazonDataset reports malformed records for ingest to settle; an open
    quote is not one of them: the load itself fails, so skip cannot hide the lost lines."""
    from kedro.io import DatasetError

    from amr_pipeline.datasets.raw import AmazonDataset

    meta = write_lines(tmp_path / "meta_Clothing.json.gz", [repr(m) for m in META_2014])
    ratings = _ratings(tmp_path, 6, 'u5,W1,"5.0,1300000005')
    with pytest.raises(DatasetError) as raised:
        AmazonDataset(reviews=str(ratings), meta=str(meta)).load()
    assert isinstance(raised.value.__cause__, RawDataError)
    assert "ratings_Clothing.csv, record 6: unterminated quote" in str(raised.value)


@pytest.mark.parametrize(
    ("line", "text", "span"),
    [(360, 'u9,"W1,5.0,1300000359', "it runs to the end of the file"),
     (6, 'u5,"W1,5.0,1300000005', "lines 6 to 9"),
     (359, '"u8,W1,5.0,1300000358', "lines 359 to 360")],
    ids=["last-line", "closed-lines-later", "second-to-last"],
)
def test_an_unterminated_quote_is_named_where_it_opens(tmp_path, line, text, span):
    path = _ratings(tmp_path, line, text)
    if span == "lines 6 to 9":
        rows = path.read_text().splitlines()
        rows[8] = 'u8,W1",5.0,1300000008'
        write_lines(path, rows)
    with pytest.raises(RawDataError) as raised:
        read_amazon_reviews(path, on_malformed="skip")
    message = str(raised.value)
    assert f"record {line}: unterminated quote" in message and span in message


def test_skip_drops_exactly_the_line_with_a_wrong_column_count(tmp_path, caplog):
    path = _ratings(tmp_path, 6, "u5,W3,1.0")
    interactions = read_amazon_reviews(path, on_malformed="skip")
    assert len(interactions) == 359
    assert "u5" not in set(interactions["user_raw_id"])
    assert interactions["user_raw_id"].tolist() == [f"u{row}" for row in range(360) if row != 5]
    assert "1 malformed record(s)" in caplog.text
    assert "ratings_Clothing.csv, record 6: expected 4 columns" in caplog.text


def test_a_quote_closed_wrongly_within_its_line_is_one_malformed_record(tmp_path):
    path = _ratings(tmp_path, 6, 'u5,"W3"x,1.0,1300000005')
    with pytest.raises(RawDataError, match=r"ratings_Clothing\.csv, record 6: invalid quoting"):
        read_amazon_reviews(path)
    interactions = read_amazon_reviews(path, on_malformed="skip")
    assert interactions["user_raw_id"].tolist() == [f"u{row}" for row in range(360) if row != 5]


def test_quoted_fields_that_close_on_their_line_are_read(tmp_path):
    path = write_lines(tmp_path / "ratings_Q.csv", ['"u1","W1","5.0","1300000000"', 'u2,"W,2",1,7'])
    interactions = read_amazon_reviews(path)
    assert interactions[["user_raw_id", "item_raw_id"]].values.tolist() == [["u1", "W1"],
                                                                          ["u2", "W,2"]]


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [("ratings_Clothing.csv", b"", "0 bytes"),
     ("reviews_Clothing.json", b"", "0 bytes"),
     ("reviews_Clothing.json.gz", b"", "0 bytes"),
     ("reviews_Clothing.json.gz", gzip.compress(b""), "nothing once decompressed"),
     ("ratings_Clothing.csv", b"\n\n  \n", "only blank lines")],
    ids=["csv", "json", "json.gz", "gzip-of-nothing", "blank-lines"],
)
def test_an_empty_reviews_or_ratings_file_is_reported_as_empty(tmp_path, name, content, detail):
    path = tmp_path / name
    path.write_bytes(content)
    for on_malformed in ("fail", "skip"):
        with pytest.raises(RawDataError) as raised:
            read_amazon_reviews(path, on_malformed=on_malformed)
        assert str(raised.value).startswith(f"{path}: the file is empty ({detail})")


@pytest.mark.parametrize("name", ["meta_Clothing.json", "meta_Clothing.json.gz"])
def test_an_empty_meta_file_is_reported_as_empty(tmp_path, files_2014, name):
    reviews, _ = files_2014
    meta = tmp_path / name
    meta.write_bytes(b"")
    with pytest.raises(RawDataError, match=rf"{name}: the file is empty \(0 bytes\)"):
        read_amazon_meta(meta)
    with pytest.raises(RawDataError, match=rf"{name}: the file is empty \(0 bytes\)"):
        read_amazon(reviews, meta, on_malformed="skip")


def test_image_file_names_from_urls():
    from amr_pipeline.readers.amazon import image_file_name

    assert image_file_name("B00X", "https://m.media-amazon.com/images/I/71a.PNG?x=1") == "B00X.png"
    assert image_file_name("B00X", "http://ecx.images-amazon.com/images/I/41b") == "B00X.jpg"
    assert image_file_name("../B/1", "http://x/a.jpg") == "_B_1.jpg"
    assert image_file_name("B00X", None) is None
