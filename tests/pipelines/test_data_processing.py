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


def test_ingest_counts_unknown_pins_for_mlflow(outputs):
    assert outputs["data_processing.metrics"] == {"unknown_pins": {"value": 0.0, "step": 0}}


def test_filter_node_reads_thresholds_from_parameters(tiny_demo):
    raw = PinterestDumpDataset(path=str(tiny_demo)).load()
    strict = dict(PARAMETERS, min_user_interactions=6)
    images = ImageFolderDataset(path=str(tiny_demo / "images")).load()
    interactions, users, _ = nodes.filter_and_index(*nodes.ingest(raw)[:2], images, strict)
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
        nodes.filter_and_index(*nodes.ingest(raw)[:2], images, dict(PARAMETERS))
    message = str(error.value)
    assert all(name in message for name in broken)
    assert "missing file" in message and "unreadable image" in message
    assert "on_missing_image: drop" in message


def test_on_missing_image_drop_leaves_those_items_out(demo_missing_images):
    folder, broken = demo_missing_images
    raw = PinterestDumpDataset(path=str(folder)).load()
    images = ImageFolderDataset(path=str(folder / "images")).load()
    parameters = dict(PARAMETERS, on_missing_image="drop")
    interactions, _, items = nodes.filter_and_index(*nodes.ingest(raw)[:2], images, parameters)
    assert not set(items["image"]) & broken
    assert interactions["item_id"].isin(items["item_id"]).all()


# ----------------------------------------------------------------------------- bad raw input

def _write_bson(path, documents):
    import bson

    path.write_bytes(b"".join(bson.encode(document) for document in documents))


def _pinterest_dump(folder, extra_names=(), boards=None, unknown_pins=()):
    """Six boards pinning three of six real images each, plus ``extra_names`` pinned by all
    and ``unknown_pins`` (pin ids with no image record) on board b0."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True)
    names = [f"img{index}.jpg" for index in range(6)]
    for index, name in enumerate(names):
        Image.new("RGB", (8, 8), (40 * index, 0, 0)).save(images / name)
    pins, board_docs = [], []
    for board in range(6):
        chosen = [names[(board + step) % 6] for step in range(3)] + list(extra_names)
        pin_ids = []
        for name in chosen:
            pin_ids.append(f"p{len(pins)}")
            pins.append({"pin_id": pin_ids[-1], "im_name": name})
        board_docs.append({"board_id": f"b{board}", "pins": pin_ids})
    board_docs[0]["pins"] += list(unknown_pins)
    _write_bson(folder / "subset_iccv_board_pins.bson", boards or board_docs)
    _write_bson(folder / "subset_iccv_pin_im.bson", pins)
    _write_bson(folder / "subset_iccv_board_cate.bson", [{"board_id": "b0", "cate_id": 1}])
    (folder / "categories.txt").write_text("art\n")
    return images


def _file_catalog(raw_source, image_source, output, parameters):
    """A catalog whose data_processing outputs are parquet files under ``output``."""
    from kedro_datasets.pandas import ParquetDataset

    catalog = DataCatalog({
        "raw_source": raw_source,
        "image_source": image_source,
        "params:data_processing": MemoryDataset(parameters),
    })
    for name in ("raw_interactions", "raw_items", "interactions", "users", "indexed_items"):
        catalog[name] = ParquetDataset(filepath=str(output / f"{name}.parquet"))
    return catalog


def _run_until_filter(catalog):
    pipeline = data_processing.create_pipeline().to_nodes("filter_and_index")
    SequentialRunner().run(pipeline, catalog)


@pytest.fixture
def escaping_dump(tmp_path):
    """A dump whose pins name an image outside images/ three ways: absolute, '..', a link."""
    from PIL import Image

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    Image.new("RGB", (8, 8), "blue").save(secret)
    names = [str(secret), "../../../../../../etc/passwd", "leak.jpg"]
    images = _pinterest_dump(tmp_path / "dump", extra_names=names)
    (images / "leak.jpg").symlink_to(secret)
    return tmp_path / "dump", images, secret, names


def test_image_names_that_escape_the_folder_fail_the_step_unopened(escaping_dump, tmp_path):
    from amr_pipeline.errors import RawDataError
    from tests.readers.opened_files import opened_any, watch_opens

    dump, images, secret, names = escaping_dump
    output = tmp_path / "output"
    catalog = _file_catalog(PinterestDumpDataset(path=str(dump)),
                            ImageFolderDataset(path=str(images)), output,
                            dict(PARAMETERS, on_missing_image="fail"))
    with watch_opens() as opened, pytest.raises(RawDataError) as error:
        _run_until_filter(catalog)
    assert opened_any(opened, secret, "/etc/passwd") == []
    message = str(error.value)
    assert message.startswith("3 of 9 items have no usable image")
    for name in names:
        assert f"item {name}: name escapes the image folder" in message
    assert "no links that lead outside it" in message and "on_missing_image: drop" in message
    for name in ("interactions", "users", "indexed_items"):
        assert not (output / f"{name}.parquet").exists()


def test_escaping_image_names_are_dropped_unopened(escaping_dump, caplog):
    from tests.readers.opened_files import opened_any, watch_opens

    dump, images, secret, names = escaping_dump
    raw = PinterestDumpDataset(path=str(dump)).load()
    parameters = dict(PARAMETERS, on_missing_image="drop")
    raw_interactions, raw_items, _ = nodes.ingest(raw, parameters)
    with watch_opens() as opened:
        interactions, _, items = nodes.filter_and_index(
            raw_interactions, raw_items, ImageFolderDataset(path=str(images)).load(), parameters)
    assert opened_any(opened, secret, "/etc/passwd") == []
    assert sorted(items["image"]) == [f"img{index}.jpg" for index in range(6)]
    assert interactions["item_id"].isin(items["item_id"]).all()
    assert "name escapes the image folder" in caplog.text


def _amazon_files(folder, meta_lines, rating_rows):
    """A gzipped 2014 meta file (Python literals) and a 2014 ratings CSV."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta_Clothing.json.gz"
    with gzip.open(meta, "wt", encoding="utf-8") as stream:
        stream.write("\n".join(meta_lines) + "\n")
    ratings = folder / "ratings_Clothing.csv"
    ratings.write_text("\n".join(rating_rows) + "\n")
    return ratings, meta


WOMEN = ["Clothing, Shoes & Jewelry", "Women"]
GOOD_META = [repr({"asin": f"W{index}", "imUrl": f"http://i/w{index}.jpg",
                   "categories": [WOMEN + ["Dresses"]]}) for index in range(3)]
GOOD_RATINGS = [f"u{user},W{item},5.0,{1300000000 + user}"
                for user in range(3) for item in range(3)]


@pytest.mark.parametrize(
    ("meta_lines", "rating_rows", "expected"),
    [
        (GOOD_META[:1] + ["__import__('os').system('touch EXECUTED')"] + GOOD_META[1:],
         GOOD_RATINGS, "meta_Clothing.json.gz, record 2: line is neither JSON nor a Python"),
        (GOOD_META, GOOD_RATINGS[:4] + ["u9,W1,five,1300000000"] + GOOD_RATINGS[4:],
         "ratings_Clothing.csv, record 5: rating 'five' is not a number from 1 to 5"),
        (GOOD_META, GOOD_RATINGS + ["u9,W1,4.0,yesterday"],
         "ratings_Clothing.csv, record 10: timestamp 'yesterday' is not a Unix time"),
    ],
    ids=["meta-line-is-code", "rating-five", "timestamp-text"],
)
def test_malformed_amazon_records_fail_ingest_and_nothing_is_written(
        tmp_path, monkeypatch, meta_lines, rating_rows, expected):
    from amr_pipeline.datasets.raw import AmazonDataset
    from amr_pipeline.errors import RawDataError

    monkeypatch.chdir(tmp_path)
    ratings, meta = _amazon_files(tmp_path / "amazon", meta_lines, rating_rows)
    raw_source = AmazonDataset(reviews=str(ratings), meta=str(meta), category_path=WOMEN)
    output = tmp_path / "output"
    catalog = _file_catalog(raw_source, MemoryDataset(None), output, dict(PARAMETERS))
    with pytest.raises(RawDataError) as error:
        _run_until_filter(catalog)
    message = str(error.value)
    assert message.startswith("1 malformed record(s) in ")
    assert expected in message
    assert "data_processing.on_malformed_record: skip" in message
    assert not any(output.glob("*.parquet")) and not (tmp_path / "EXECUTED").exists()


def test_skip_leaves_malformed_records_out_and_logs_them(tmp_path, caplog):
    from amr_pipeline.datasets.raw import AmazonDataset

    ratings, meta = _amazon_files(tmp_path, GOOD_META + ["{'asin': 'W9', 'oops'"],
                                  GOOD_RATINGS + ["u9,W1,five,1"])
    raw = AmazonDataset(reviews=str(ratings), meta=str(meta), category_path=WOMEN).load()
    assert len(raw.problems) == 2
    interactions, items, _ = nodes.ingest(raw, dict(PARAMETERS, on_malformed_record="skip"))
    assert sorted(items["item_raw_id"]) == ["W0", "W1", "W2"]
    assert "u9" not in set(interactions["user_raw_id"])
    assert "meta_Clothing.json.gz, record 4:" in caplog.text
    assert "ratings_Clothing.csv, record 10: rating 'five'" in caplog.text


def test_a_board_id_of_unexpected_type_fails_ingest(tmp_path):
    from amr_pipeline.errors import RawDataError

    boards = [{"board_id": "b0", "pins": ["p0", "p1"]}, {"board_id": {"id": "b0"}, "pins": ["p2"]},
              {"board_id": 0, "pins": ["p3"]}, {"board_id": "0", "pins": ["p4"]}]
    images = _pinterest_dump(tmp_path / "dump", boards=boards)
    output = tmp_path / "output"
    catalog = _file_catalog(PinterestDumpDataset(path=str(tmp_path / "dump")),
                            ImageFolderDataset(path=str(images)), output, dict(PARAMETERS))
    with pytest.raises(RawDataError) as error:
        _run_until_filter(catalog)
    message = str(error.value)
    assert message.startswith("2 malformed record(s) in ")
    assert "subset_iccv_board_pins.bson, record 2: board_id has type dict" in message
    assert ("subset_iccv_board_pins.bson, record 4: board_id '0' (string) has the same text"
            in message)
    assert "on_malformed_record: skip" in message
    assert not any(output.glob("*.parquet"))


def test_unknown_malformed_policy_is_a_configuration_error(tiny_demo):
    from amr_pipeline.errors import ConfigurationError

    raw = PinterestDumpDataset(path=str(tiny_demo)).load()
    with pytest.raises(ConfigurationError, match="on_malformed_record must be one of"):
        nodes.ingest(raw, dict(PARAMETERS, on_malformed_record="ignore"))


def test_a_pins_element_that_is_not_an_id_fails_ingest_naming_the_board(tmp_path):
    from amr_pipeline.errors import RawDataError

    boards = [{"board_id": "b0", "pins": ["p0", "p1"]}, {"board_id": "b1", "pins": ["p2", 3.0]}]
    images = _pinterest_dump(tmp_path / "dump", boards=boards)
    output = tmp_path / "output"
    catalog = _file_catalog(PinterestDumpDataset(path=str(tmp_path / "dump")),
                            ImageFolderDataset(path=str(images)), output, dict(PARAMETERS))
    with pytest.raises(RawDataError) as error:
        _run_until_filter(catalog)
    message = str(error.value)
    assert ("subset_iccv_board_pins.bson, record 2: board 'b1': pins[1] has type float"
            in message)
    assert "on_malformed_record: skip" in message
    assert not any(output.glob("*.parquet"))

    raw = PinterestDumpDataset(path=str(tmp_path / "dump")).load()
    interactions, _, _ = nodes.ingest(raw, dict(PARAMETERS, on_malformed_record="skip"))
    assert set(interactions["user_raw_id"]) == {"b0"}


def test_unknown_pins_are_dropped_counted_and_logged(tmp_path, caplog):
    unknown = [f"gone{index}" for index in range(12)]
    _pinterest_dump(tmp_path / "dump", unknown_pins=unknown)
    raw = PinterestDumpDataset(path=str(tmp_path / "dump")).load()
    interactions, _, metrics = nodes.ingest(raw, dict(PARAMETERS))
    assert len(interactions) == 18
    assert metrics == {"unknown_pins": {"value": 12.0, "step": 0}}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "12 of 30 pins (40%) have no image record in" in warnings[0]
    assert f"first ids: {', '.join(unknown[:10])}." in warnings[0]


def test_on_unknown_pin_fail_stops_ingest_and_nothing_is_written(tmp_path):
    from amr_pipeline.errors import RawDataError

    images = _pinterest_dump(tmp_path / "dump", unknown_pins=["gone"])
    output = tmp_path / "output"
    catalog = _file_catalog(PinterestDumpDataset(path=str(tmp_path / "dump")),
                            ImageFolderDataset(path=str(images)), output,
                            dict(PARAMETERS, on_unknown_pin="fail"))
    with pytest.raises(RawDataError) as error:
        _run_until_filter(catalog)
    message = str(error.value)
    assert "subset_iccv_board_pins.bson: 1 of 19 pins (5.26%) have no image record in " in message
    assert "subset_iccv_pin_im.bson; first ids: gone." in message
    assert "data_processing.on_unknown_pin: drop" in message
    assert not any(output.glob("*.parquet"))


def test_unknown_pin_policy_is_validated(tiny_demo):
    from amr_pipeline.errors import ConfigurationError

    raw = PinterestDumpDataset(path=str(tiny_demo)).load()
    with pytest.raises(ConfigurationError, match="data_processing.on_unknown_pin must be one of"):
        nodes.ingest(raw, dict(PARAMETERS, on_unknown_pin="ignore"))


def test_the_unknown_pin_count_is_logged_to_mlflow(tmp_path):
    """The project catalog sends the ingest metrics to MLflow as data_processing.*."""
    from pathlib import Path

    import mlflow
    from kedro.config import OmegaConfigLoader

    project = Path(__file__).resolve().parents[2]
    conf = OmegaConfigLoader(str(project / "conf"), base_env="base", default_run_env="base")
    catalog = DataCatalog.from_config(conf["catalog"])
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            catalog.save("data_processing.metrics", {"unknown_pins": {"value": 7.0, "step": 0}})
        metrics = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    finally:
        mlflow.set_tracking_uri(previous)
    assert metrics == {"data_processing.unknown_pins": 7.0}
