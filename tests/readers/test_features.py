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


def test_truncated_b_file_names_file_and_record(b_file):
    path, _ = b_file
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RawDataError, match=r"image_features_Women\.b, record 3: truncated"):
        read_mcauley_features(path, dimension=DIMENSION)
    with pytest.raises(RawDataError, match="dimension"):
        read_mcauley_features(path)


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
    assert missing.to_dict("list") == {"item_id": [1, 3], "item_raw_id": ["NOPE1", "NOPE2"]}
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
    bad = np.ones((2, 4), np.float32)
    bad[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    raw = read_npy_features(tmp_path / "nan.npy", np.array(["a", "b"]))
    with pytest.raises(RawDataError, match=r"nan\.npy, record 1: non-finite"):
        map_features_to_items(_items(["a", "b"]), raw)
    with pytest.raises(ConfigurationError, match="ids_column"):
        pd.DataFrame({"x": ["a"]}).to_csv(tmp_path / "ids.csv", index=False)
        read_id_list(tmp_path / "ids.csv")
