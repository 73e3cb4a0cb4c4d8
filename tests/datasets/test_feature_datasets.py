"""Feature datasets: parquet matrix round trip, load-only imports, image folder and cache."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DataCatalog, DatasetError

from amr_pipeline.datasets.features import FeatureMatrixDataset
from amr_pipeline.item_features import ItemFeatures
from amr_pipeline.readers.features import RawFeatures
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import ImageFolder

PACKAGE = "amr_pipeline.datasets.features"


def test_feature_matrix_round_trip(tmp_path):
    path = tmp_path / "04_feature" / "item_features.parquet"
    dataset = FeatureMatrixDataset(str(path))
    assert not dataset.exists()
    features = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    dataset.save(ItemFeatures(np.arange(50, dtype=np.int64) * 2, features))
    assert dataset.exists() and list(path.parent.iterdir()) == [path]
    schema = pq.read_schema(path)
    assert schema.field("item_id").type == pa.int64()
    assert schema.field("features").type == pa.binary(4 * 7)
    assert json.loads(schema.metadata[b"amr_pipeline.features"]) == {
        "dtype": "float32", "dimension": 7
    }
    loaded = dataset.load()
    assert loaded.item_ids.dtype == np.int64 and loaded.features.dtype == np.float32
    np.testing.assert_array_equal(loaded.item_ids, np.arange(50) * 2)
    np.testing.assert_array_equal(loaded.features, features)
    preview = pd.DataFrame(**{k: v for k, v in dataset.preview(3).items() if k != "index"})
    assert preview["item_id"].tolist() == [0, 2, 4] and "norm" in preview


def test_feature_matrix_reads_fixed_size_list_files(tmp_path):
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), 3)
    pq.write_table(pa.table({"item_id": pa.array(np.arange(4)), "features": vectors}),
                   tmp_path / "list.parquet")
    loaded = FeatureMatrixDataset(str(tmp_path / "list.parquet")).load()
    np.testing.assert_array_equal(loaded.features, features)


def test_feature_matrix_failed_save_leaves_previous_file(tmp_path):
    dataset = FeatureMatrixDataset(str(tmp_path / "features.parquet"))
    dataset.save(ItemFeatures(np.arange(2), np.ones((2, 3), np.float32)))
    with pytest.raises(DatasetError):
        dataset.save(ItemFeatures(np.arange(3), np.ones((2, 3), np.float32)))
    assert dataset.load().features.shape == (2, 3)
    assert len(list(tmp_path.iterdir())) == 1


def test_catalog_builds_feature_datasets(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    record = b"B00000000A" + np.arange(3, dtype="<f4").tobytes()
    (tmp_path / "image_features_Women.b").write_bytes(record * 2)
    np.save(tmp_path / "matrix.npy", np.eye(2, dtype=np.float32))
    (tmp_path / "ids.txt").write_text("x\ny\n")
    catalog = DataCatalog.from_config({
        "images": {"type": f"{PACKAGE}.ImageFolderDataset", "path": str(tmp_path / "images")},
        "cache": {"type": f"{PACKAGE}.FeatureCacheDataset", "path": str(tmp_path / "cache")},
        "amazon": {"type": f"{PACKAGE}.McAuleyFeaturesDataset", "dimension": 3,
                   "filepath": str(tmp_path / "image_features_Women.b")},
        "npy": {"type": f"{PACKAGE}.NpyFeaturesDataset", "filepath": str(tmp_path / "matrix.npy"),
                "ids_filepath": str(tmp_path / "ids.txt")},
        "absent": {"type": f"{PACKAGE}.ImageFolderDataset", "path": str(tmp_path / "nowhere")},
    })
    images = catalog.load("images")
    assert isinstance(images, ImageFolder) and images.stat("a.jpg").st_size == 1
    assert images.stat("b.jpg") is None
    assert isinstance(catalog.load("cache"), FeatureCache)
    amazon = catalog.load("amazon")
    assert isinstance(amazon, RawFeatures) and amazon.raw_ids.tolist() == ["B00000000A"] * 2
    assert catalog.load("npy").raw_ids.tolist() == ["x", "y"]
    for name in ["images", "cache", "amazon", "npy"]:
        with pytest.raises(DatasetError):
            catalog.save(name, None)
    with pytest.raises(DatasetError, match="image folder not found"):
        catalog.load("absent")
