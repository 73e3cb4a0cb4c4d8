"""The data_processing pipeline run in memory on a tiny dump in the real format."""

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from amr_pipeline.datasets.features import ImageFolderDataset
from amr_pipeline.datasets.raw import PinterestDumpDataset
from amr_pipeline.pipelines import data_processing
from amr_pipeline.pipelines.data_processing import nodes

class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read every output."""

    def _release(self) -> None:
        pass


PARAMETERS = {
    "seed": 1,
    "sample_users": None,
    "min_user_interactions": 2,
    "drop_items_without_image": True,
    "split": {"seed": 1},
    "candidates": {"seed": 2, "n_negatives": 999},
    "validation_candidates": {"seed": 3, "n_negatives": 999},
}


@pytest.fixture(scope="module")
def outputs(tiny_demo):
    catalog = DataCatalog(
        {
            "raw_source": PinterestDumpDataset(path=str(tiny_demo)),
            "image_source": ImageFolderDataset(path=str(tiny_demo / "images")),
            "params:data_processing": MemoryDataset(PARAMETERS),
            "params:data_processing.split": MemoryDataset(PARAMETERS["split"]),
            "params:data_processing.candidates": MemoryDataset(PARAMETERS["candidates"]),
            "params:data_processing.validation_candidates": MemoryDataset(
                PARAMETERS["validation_candidates"]
            ),
        }
    )
    pipeline = data_processing.create_pipeline()
    for name in pipeline.datasets():
        if name not in catalog:
            catalog[name] = KeptDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def test_pipeline_writes_the_split_and_candidates(outputs):
    train, test, items = outputs["train"], outputs["test"], outputs["items"]
    for name in ("train", "validation", "test"):
        assert list(outputs[name].columns) == ["user_id", "item_id"]
        assert outputs[name].dtypes.eq("int64").all()
    assert {"item_id", "item_raw_id", "image", "cold"} <= set(items.columns)
    assert test["user_id"].is_unique
    candidates = outputs["test_candidates"]
    assert list(candidates.columns) == ["user_id", "item_id", "is_test"]
    assert candidates.groupby("user_id").size().eq(1000).all()
    assert set(candidates["user_id"]) == set(test["user_id"])
    assert items.loc[items["cold"], "item_id"].isin(train["item_id"]).sum() == 0


def test_demo_has_about_half_cold_test_items(outputs):
    share = outputs["data_metrics"]["test_cold_share"]["value"]
    assert 0.3 < share < 0.7


def test_filter_node_reads_thresholds_from_parameters(tiny_demo):
    raw = PinterestDumpDataset(path=str(tiny_demo)).load()
    strict = dict(PARAMETERS, min_user_interactions=6)
    images = ImageFolderDataset(path=str(tiny_demo / "images")).load()
    interactions, users, _ = nodes.filter_and_index(*nodes.ingest(raw), images, strict)
    assert interactions.groupby("user_id").size().min() >= 6
    assert len(users) < 500
    assert isinstance(interactions, pd.DataFrame)


@pytest.fixture
def demo_missing_images(tiny_demo, tmp_path):
    """The tiny demo with one image deleted and one corrupted."""
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(tiny_demo, copy)
    names = sorted((copy / "images").iterdir())
    names[0].unlink()
    names[1].write_bytes(b"not an image")
    return copy, {names[0].name, names[1].name}


def test_missing_and_unreadable_images_are_reported_in_one_error(demo_missing_images):
    from amr_pipeline.errors import RawDataError

    folder, broken = demo_missing_images
    raw = PinterestDumpDataset(path=str(folder)).load()
    images = ImageFolderDataset(path=str(folder / "images")).load()
    with pytest.raises(RawDataError) as error:
        nodes.filter_and_index(*nodes.ingest(raw), images, dict(PARAMETERS))
    message = str(error.value)
    assert all(name in message for name in broken)
    assert "missing file" in message and "unreadable image" in message
    assert "on_missing_image: drop" in message


def test_on_missing_image_drop_leaves_those_items_out(demo_missing_images):
    folder, broken = demo_missing_images
    raw = PinterestDumpDataset(path=str(folder)).load()
    images = ImageFolderDataset(path=str(folder / "images")).load()
    parameters = dict(PARAMETERS, on_missing_image="drop")
    interactions, _, items = nodes.filter_and_index(*nodes.ingest(raw), images, parameters)
    assert not set(items["image"]) & broken
    assert interactions["item_id"].isin(items["item_id"]).all()
