"""Import of precomputed features: McAuley .b files and .npy matrices, mapped by raw id."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.readers.features import (
    map_features_to_items,
    read_id_list,
    read_mcauley_features,
    read_npy_features,
)

DIMENSION = 6


def _write_b(path, asins, features):
    with path.open("wb") as handle:
        for asin, row in zip(asins, features, strict=True):
            handle.write(asin.encode("ascii").ljust(10, b" "))
            handle.write(np.asarray(row, "<f4").tobytes())


@pytest.fixture
def b_file(tmp_path):
    features = np.arange(4 * DIMENSION, dtype=np.float32).reshape(4, DIMENSION) / 7
    path = tmp_path / "image_features_Women.b"
    _write_b(path, ["B000A", "B000B", "B0000000CC", "B000A"], features)
    return path, features


def _items(raw_ids):
    return pd.DataFrame({"item_id": np.arange(len(raw_ids)), "item_raw_id": raw_ids})


def test_b_file_round_trips(b_file):
    path, features = b_file
    raw = read_mcauley_features(path, dimension=DIMENSION)
    assert raw.raw_ids.tolist() == ["B000A", "B000B", "B0000000CC", "B000A"]
    np.testing.assert_array_equal(raw.features, features)
    mapped, missing = map_features_to_items(_items(["B0000000CC", "B000A"]), raw)
    assert missing.empty
    assert mapped.item_ids.tolist() == [0, 1] and mapped.features.dtype == np.float32
    np.testing.assert_array_equal(mapped.features, features[[2, 0]])


@pytest.mark.parametrize(("kept_bytes", "cut_record"),
                         [(4 * 34 - 5, 4), (2 * 34 + 17, 3), (34 + 1, 2), (9, 1)])
def test_truncated_b_file_names_the_first_incomplete_record(b_file, kept_bytes, cut_record):
    """Records are counted from 1: the record the file breaks off in is the one named."""
    path, _ = b_file
    path.write_bytes(path.read_bytes()[:kept_bytes])
    with pytest.raises(RawDataError) as raised:
        read_mcauley_features(path, dimension=DIMENSION)
    message = str(raised.value)
    assert f"image_features_Women.b, record {cut_record}: truncated" in message
    assert f"{cut_record - 1} whole 34-byte records" in message
    with pytest.raises(RawDataError, match="dimension"):
        read_mcauley_features(path)


def test_empty_feature_files_are_reported_as_empty(tmp_path):
    for name in ("image_features_Empty.b", "features.npy", "ids.txt"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(RawDataError, match=r"image_features_Empty\.b: the file is empty"):
        read_mcauley_features(tmp_path / "image_features_Empty.b", dimension=DIMENSION)
    with pytest.raises(RawDataError, match=r"features\.npy: the file is empty"):
        read_npy_features(tmp_path / "features.npy", np.array(["a"]))
    with pytest.raises(RawDataError, match=r"ids\.txt: the file is empty"):
        read_id_list(tmp_path / "ids.txt")


def test_missing_items_fail_in_one_report_or_are_dropped(b_file):
    raw = read_mcauley_features(b_file[0], dimension=DIMENSION)
    items = _items(["B000B", "NOPE1", "B000A", "NOPE2"])
    with pytest.raises(RawDataError) as raised:
        map_features_to_items(items, raw)
    assert "2 of 4 items" in str(raised.value)
    assert "item 1 (NOPE1)" in str(raised.value) and "item 3 (NOPE2)" in str(raised.value)
    mapped, missing = map_features_to_items(items, raw, on_missing="drop")
    assert mapped.item_ids.tolist() == [0, 2]
    np.testing.assert_array_equal(mapped.features, raw.features[[1, 0]])
    assert missing.to_dict("list") == {"item_id": [1, 3], "item_raw_id": ["NOPE1", "NOPE2"],
                                       "reason": ["no feature row"] * 2}
    with pytest.raises(ConfigurationError):
        map_features_to_items(items, raw, on_missing="ignore")


@pytest.mark.parametrize("id_format", ["txt", "csv", "parquet"])
def test_npy_with_id_list_round_trips(tmp_path, id_format):
    matrix = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    np.save(tmp_path / "features.npy", matrix)
    ids = ["p9", "p7", "p8"]
    path = tmp_path / f"ids.{id_format}"
    if id_format == "txt":
        path.write_text("\n".join(ids) + "\n")
    elif id_format == "csv":
        pd.DataFrame({"pin": ids}).to_csv(path, index=False)
    else:
        pd.DataFrame({"pin": ids}).to_parquet(path)
    raw = read_npy_features(tmp_path / "features.npy",
                            read_id_list(path, None if id_format == "txt" else "pin"))
    mapped, _ = map_features_to_items(_items(["p8", "p9"]), raw)
    np.testing.assert_array_equal(mapped.features, matrix[[2, 0]])


def test_npy_problems_are_raw_data_errors(tmp_path):
    np.save(tmp_path / "features.npy", np.ones((3, 4), np.float32))
    with pytest.raises(RawDataError, match="3 feature rows but 2 ids"):
        read_npy_features(tmp_path / "features.npy", np.array(["a", "b"]))
    np.save(tmp_path / "vector.npy", np.ones(3, np.float32))
    with pytest.raises(RawDataError, match="2-D"):
        read_npy_features(tmp_path / "vector.npy", np.array(["a", "b", "c"]))
    with pytest.raises(ConfigurationError, match="ids_column"):
        pd.DataFrame({"x": ["a"]}).to_csv(tmp_path / "ids.csv", index=False)
        read_id_list(tmp_path / "ids.csv")


@pytest.fixture
def non_finite(tmp_path):
    """Four .npy rows: row 2 holds a NaN and row 4 an infinity (records 2 and 4)."""
    matrix = np.ones((4, 3), np.float32)
    matrix[1, 2] = np.nan
    matrix[3, 0] = np.inf
    np.save(tmp_path / "nan.npy", matrix)
    return read_npy_features(tmp_path / "nan.npy", np.array(["a", "b", "c", "d"]))


def test_non_finite_rows_are_named_by_item_and_1_based_record(non_finite):
    items = pd.DataFrame({"item_id": [10, 11, 12, 13], "item_raw_id": ["d", "a", "b", "z"]})
    with pytest.raises(RawDataError) as raised:
        map_features_to_items(items, non_finite)
    message = str(raised.value)
    assert message.startswith("3 of 4 items have no usable feature row in ")
    assert "item 10 (d): non-finite feature values, record 4" in message
    assert "item 12 (b): non-finite feature values, record 2" in message
    assert "item 13 (z): no feature row" in message
    assert "item 11" not in message and "on_missing_image: drop" in message


def test_drop_leaves_non_finite_items_out_and_reports_them(non_finite):
    items = pd.DataFrame({"item_id": [10, 11, 12, 13], "item_raw_id": ["d", "a", "b", "c"]})
    mapped, report = map_features_to_items(items, non_finite, on_missing="drop")
    assert mapped.item_ids.tolist() == [11, 13]
    assert np.isfinite(mapped.features).all() and mapped.features.shape == (2, 3)
    assert report["item_id"].tolist() == [10, 12]
    assert report["reason"].tolist() == ["non-finite feature values, record 4",
                                         "non-finite feature values, record 2"]


def test_an_empty_id_in_an_id_table_is_named_by_its_1_based_row(tmp_path):
    (tmp_path / "ids.csv").write_text("pin,note\np1,x\n ,y\np3,z\n")
    with pytest.raises(RawDataError, match=r"ids\.csv, record 2: empty id"):
        read_id_list(tmp_path / "ids.csv", "pin")
    pd.DataFrame({"pin": ["p1", "p2", None]}).to_parquet(tmp_path / "ids.parquet")
    with pytest.raises(RawDataError, match=r"ids\.parquet, record 3: empty id"):
        read_id_list(tmp_path / "ids.parquet", "pin")
