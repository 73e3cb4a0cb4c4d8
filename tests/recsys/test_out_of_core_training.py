"""Training with the features out of core: a memory-mapped Arrow file, rows gathered per group
of batches on the host, the same weights as the matrix held in TensorFlow."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.item_features import (
    ItemFeatures,
    ItemRows,
    feature_matrix,
    open_feature_file,
    write_feature_file,
)
from amr_pipeline.recsys.checkpoints import CheckpointStore
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, train_bpr

from . import planted_data

BATCH = 16
COMMON = {"n_factors": 4, "batch_size": BATCH, "learning_rate": 0.1, "seed": 3}


@pytest.fixture(scope="module")
def data():
    train, candidates, features = planted_data(n_users=40, n_items=120, n_groups=4,
                                               n_candidates=30)
    return train, candidates, features


def _mapped(tmp_path, features, storage="float32", order=None):
    """The features as a memory-mapped file of several record batches, rows stored in
    ``order`` of item id (shuffled ids exercise the id -> row mapping)."""
    order = np.arange(len(features)) if order is None else order
    path = tmp_path / f"features_{storage}.arrow"
    write_feature_file(path, [(order, features[order])], storage, rows_per_batch=25)
    item_ids, rows = open_feature_file(path)
    return ItemRows(item_ids, rows, len(features))


def _weights(trainer, epochs=2):
    for epoch in range(1, epochs + 1):
        trainer.run_epoch(epoch)
    return trainer.state()


def _assert_identical(first, second):
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.parametrize("model, extra", [("vbpr", {}), ("duif", {}),
                                          ("amr", {"adversary": "gradient", "epsilon": 0.5})])
def test_memory_mapped_features_train_the_same_weights_as_the_matrix_in_tensorflow(
        data, tmp_path, model, extra):
    train, _, features = data
    n_users, n_items = 40, len(features)
    shuffled = np.random.default_rng(0).permutation(n_items)
    in_tensorflow = TrainConfig.from_params({**COMMON, **extra, "model": model,
                                             "feature_gather": "graph"})
    reference = BPRTrainer(in_tensorflow, train, n_users, n_items, features)
    expected = _weights(reference)
    for source, chunk in ((features, 1), (_mapped(tmp_path, features), 3),
                          (_mapped(tmp_path, features, order=shuffled), 2)):
        config = TrainConfig.from_params({**COMMON, **extra, "model": model,
                                          "feature_chunk_batches": chunk})
        trainer = BPRTrainer(config, train, n_users, n_items, source)
        assert trainer._feature_tensor is None
        _assert_identical(_weights(trainer), expected)
        assert trainer.fingerprint == reference.fingerprint  # checkpoints move between them


class _CountingRows:
    """Feature rows that record every gather and refuse to be turned into one array."""

    def __init__(self, features):
        self.features, self.sizes = features, []
        self.shape = features.shape

    def __len__(self):
        return len(self.features)

    def take(self, rows, out=None):
        self.sizes.append(len(rows))
        gathered = self.features[np.asarray(rows)]
        if out is None:
            return gathered
        out[...] = gathered
        return out

    def __getitem__(self, key):
        return self.features[key]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the trainer asked for the whole feature matrix")


def test_an_epoch_gathers_only_each_group_of_batches_rows(data):
    train, _, features = data
    counting = _CountingRows(features)
    chunk = 2
    config = TrainConfig.from_params({**COMMON, "model": "vbpr", "feature_chunk_batches": chunk})
    trainer = BPRTrainer(config, train, 40, len(features), counting)
    trainer.run_epoch(1)
    pairs = len(train)
    groups = -(-pairs // (BATCH * chunk))
    assert len(counting.sizes) == groups
    # each batch's distinct items: at most its positives and negatives, never every item
    assert max(counting.sizes) <= chunk * 2 * BATCH < len(features)
    assert sum(counting.sizes) <= 2 * pairs


def test_float16_storage_trains_like_the_float16_rounded_matrix(data, tmp_path):
    train, _, features = data
    config = TrainConfig.from_params({**COMMON, "model": "vbpr"})
    halved = BPRTrainer(config, train, 40, len(features), _mapped(tmp_path, features, "float16"))
    rounded = features.astype(np.float16).astype(np.float32)
    _assert_identical(_weights(halved), _weights(BPRTrainer(config, train, 40, len(features),
                                                             rounded)))


def test_training_node_features_stay_memory_mapped_through_fit_and_validation(data, tmp_path):
    train, candidates, features = data
    path = tmp_path / "item_features.arrow"
    write_feature_file(path, [(np.arange(len(features)), features)], rows_per_batch=50)
    items = pd.DataFrame({"item_id": np.arange(len(features))})
    rows = feature_matrix(ItemFeatures(*open_feature_file(path)), items)
    params = {**COMMON, "model": "vbpr", "epochs": 3}
    mapped = train_bpr(train, 40, len(features), params=params, features=rows,
                       validation_candidates=candidates, checkpoint=tmp_path / "run",
                       progress=False)
    dense = train_bpr(train, 40, len(features), params={**params, "feature_gather": "graph"},
                      features=features, validation_candidates=candidates, progress=False)
    np.testing.assert_array_equal(mapped.model.feature_projection, dense.model.feature_projection)
    np.testing.assert_array_equal(mapped.history["ndcg_at_10"], dense.history["ndcg_at_10"])
    assert CheckpointStore(tmp_path / "run").load() is not None


@pytest.mark.parametrize("params, message", [
    ({"feature_gather": "gpu"}, "feature_gather"),
    ({"feature_chunk_batches": 0}, "feature_chunk_batches"),
])
def test_bad_feature_feeding_settings_name_the_parameter(params, message):
    with pytest.raises(ConfigurationError, match=message):
        TrainConfig.from_params(params)
