"""The feature matrix as a memory-mapped Arrow IPC file (fixed_size_list<float32>)."""

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from kedro.io import DatasetError

from amr_pipeline.datasets.features import FeatureMatrixDataset
from amr_pipeline.item_features import ItemFeatures, MappedFeatures


@pytest.fixture
def matrix():
    rng = np.random.default_rng(4)
    return ItemFeatures(np.arange(70, dtype=np.int64),
                        rng.standard_normal((70, 9)).astype(np.float32))


def test_arrow_file_is_a_standard_vector_table_and_reads_back_exactly(tmp_path, matrix):
    dataset = FeatureMatrixDataset(str(tmp_path / "item_features.arrow"), rows_per_batch=32)
    dataset.save(matrix)
    table = feather.read_table(tmp_path / "item_features.arrow")
    assert table.schema.field("features").type == pa.list_(pa.field("item", pa.float32()), 9)
    assert table.column("features").num_chunks == 3  # 32 + 32 + 6 rows
    loaded = dataset.load()
    assert isinstance(loaded.features, MappedFeatures)
    assert loaded.features.shape == (70, 9) and len(loaded.features) == 70
    np.testing.assert_array_equal(loaded.item_ids, matrix.item_ids)
    assert np.array_equal(np.asarray(loaded.features), matrix.features)


def test_mapped_features_gather_only_the_rows_asked_for(tmp_path, matrix):
    dataset = FeatureMatrixDataset(str(tmp_path / "f.arrow"), rows_per_batch=16)
    dataset.save(matrix)
    features = dataset.load().features
    rows = np.array([69, 0, 15, 16, 33, 15])
    assert np.array_equal(features.take(rows), matrix.features[rows])
    mask = matrix.features[:, 0] > 0
    assert np.array_equal(features[mask], matrix.features[mask])
    assert np.array_equal(features[5:40:3], matrix.features[5:40:3])
    assert np.array_equal(features[-1], matrix.features[-1])
    assert features.take(rows).flags.writeable and features.take(rows).dtype == np.float32
    with pytest.raises(IndexError):
        features.take([70])


@pytest.mark.parametrize("storage", ["float32", "float16"])
def test_sorted_and_scattered_gathers_into_a_buffer_agree_with_the_matrix(tmp_path, matrix,
                                                                          storage):
    """Runs of rows from one record batch are copied straight into ``out``; scattered rows
    take the general path; both give the matrix's rows."""
    dataset = FeatureMatrixDataset(str(tmp_path / "f.arrow"), storage=storage, rows_per_batch=8)
    dataset.save(matrix)
    features = dataset.load().features
    expected = matrix.features.astype(storage).astype(np.float32)
    rng = np.random.default_rng(0)
    sorted_runs = np.r_[np.sort(rng.choice(70, 30, replace=False)), np.arange(3, 40, 2)]
    scattered = rng.integers(70, size=200)
    for rows in (sorted_runs, scattered):
        out = np.full((len(rows) + 5, 9), np.nan, np.float32)
        gathered = features.take(rows, out=out[: len(rows)])
        assert np.shares_memory(gathered, out)
        np.testing.assert_array_equal(out[: len(rows)], expected[rows])
        assert np.isnan(out[len(rows):]).all()


def test_chunks_stream_into_one_file_and_float16_halves_it(tmp_path, matrix):
    chunks = (ItemFeatures(matrix.item_ids[s:s + 25], matrix.features[s:s + 25])
              for s in range(0, 70, 25))
    half = FeatureMatrixDataset(str(tmp_path / "half.arrow"), storage="float16")
    half.save(chunks)
    loaded = half.load()
    assert loaded.features.storage == "float16"
    np.testing.assert_allclose(np.asarray(loaded.features), matrix.features, rtol=1e-3, atol=1e-3)
    assert np.asarray(loaded.features).dtype == np.float32
    wide = ItemFeatures(np.arange(200), np.ones((200, 512), np.float32))
    for storage in ("float16", "float32"):
        FeatureMatrixDataset(str(tmp_path / f"{storage}.arrow"), storage=storage).save(wide)
    sizes = {storage: (tmp_path / f"{storage}.arrow").stat().st_size
             for storage in ("float16", "float32")}
    assert sizes["float16"] < 0.55 * sizes["float32"]


def test_parquet_keeps_working_and_takes_chunks(tmp_path, matrix):
    dataset = FeatureMatrixDataset(str(tmp_path / "item_features.parquet"))
    dataset.save(iter([ItemFeatures(matrix.item_ids[:30], matrix.features[:30]),
                       ItemFeatures(matrix.item_ids[30:], matrix.features[30:])]))
    loaded = dataset.load()
    assert np.array_equal(loaded.features, matrix.features)
    with pytest.raises(DatasetError, match="float16 with an Arrow file"):
        FeatureMatrixDataset(str(tmp_path / "x.parquet"), storage="float16")


def test_failed_save_leaves_no_file(tmp_path, matrix):
    def broken():
        yield matrix
        raise RuntimeError("killed")

    with pytest.raises(DatasetError, match="killed"):
        FeatureMatrixDataset(str(tmp_path / "f.arrow")).save(broken())
    assert list(tmp_path.iterdir()) == []


def test_item_rows_address_rows_by_item_id_with_zeros_for_missing_items(tmp_path, matrix):
    from amr_pipeline.item_features import ItemRows

    dataset = FeatureMatrixDataset(str(tmp_path / "f.arrow"), rows_per_batch=16)
    kept = np.r_[0:10, 12:70]  # items 10 and 11 have no image
    dataset.save(ItemFeatures(matrix.item_ids[kept], matrix.features[kept]))
    loaded = dataset.load()
    rows = ItemRows(loaded.item_ids, loaded.features, 70)
    assert rows.shape == (70, 9) and rows.missing == 2 and not rows.identity
    dense = np.zeros((70, 9), np.float32)
    dense[kept] = matrix.features[kept]
    assert np.array_equal(rows.take([11, 3, 69, 10]), dense[[11, 3, 69, 10]])
    assert np.array_equal(np.asarray(rows), dense)
    assert np.array_equal(rows[20:30], dense[20:30])
