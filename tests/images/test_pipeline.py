"""The registered ``images`` pipeline on a tiny Pinterest dump whose ``im_url`` point at the
loopback server of test_download, and the configuration of each environment."""

from __future__ import annotations

from pathlib import Path

import bson
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from amr_pipeline.datasets.images import ImageDownloadFolderDataset, OptionalParquetDataset
from amr_pipeline.datasets.raw import PinterestDumpDataset
from amr_pipeline.pipeline_registry import register_pipelines
from tests.images.test_download import _Server, loopback_only  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


class KeptDataset(MemoryDataset):
    def _release(self) -> None:
        pass


@pytest.fixture
def server():
    served = _Server()
    yield served
    served.close()


def _dump(folder: Path, base: str) -> None:
    names = [f"img{n}.jpg" for n in range(4)] + ["gone.jpg"]
    pins = [{"pin_id": f"p{n}", "im_name": name,
             "im_url": f"{base}/good/{n}.jpg" if name != "gone.jpg" else f"{base}/missing.jpg"}
            for n, name in enumerate(names)]
    boards = [{"board_id": f"b{b}", "pins": [f"p{n}" for n in range(5) if (n + b) % 2]}
              for b in range(4)]
    for name, documents in (("subset_iccv_board_pins.bson", boards),
                            ("subset_iccv_pin_im.bson", pins)):
        (folder / name).write_bytes(b"".join(bson.encode(d) for d in documents))


FILTERS = {"on_malformed_record": "fail", "sample_users": None, "min_user_interactions": 1,
           "drop_items_without_image": True, "seed": 0}


def _catalog(tmp_path: Path, parameters: dict, **filters) -> DataCatalog:
    output = tmp_path / "02_intermediate"
    return DataCatalog({
        "raw_source": PinterestDumpDataset(path=str(tmp_path), board_categories=None,
                                           categories=None),
        "params:data_processing": MemoryDataset(dict(FILTERS, **filters)),
        "params:images": MemoryDataset(parameters),
        "raw_interactions": KeptDataset(),
        "raw_items": ParquetDataset(filepath=str(output / "raw_items.parquet")),
        "data_processing.metrics": KeptDataset(),
        "image_download_folder": ImageDownloadFolderDataset(path=str(tmp_path / "images")),
        "image_downloads": ParquetDataset(filepath=str(output / "image_downloads.parquet")),
        "image_downloads_previous": OptionalParquetDataset(
            filepath=str(output / "image_downloads.parquet")),
        "images.metrics": KeptDataset(),
    })


PARAMETERS = {"download": True, "concurrency": 4, "per_host": 2,
              "timeout": {"connect": 1, "read": 1, "total": 3}, "attempts": 2,
              "max_bytes": 100_000, "min_side": 16, "allow_private_addresses": True,
              "retry_failed": False, "placeholder_min_items": 3, "accepted_content_types": [],
              "user_agent": "test", "progress": False}


def test_images_pipeline_downloads_merges_and_logs_counts(server, tmp_path):
    _dump(tmp_path, server.base)
    pipeline = register_pipelines()["images"]
    assert {node.name for node in pipeline.nodes} == {"ingest_raw_dump", "download_item_images"}
    catalog = _catalog(tmp_path, PARAMETERS)
    SequentialRunner().run(pipeline, catalog)
    table = pd.read_parquet(tmp_path / "02_intermediate" / "image_downloads.parquet")
    status = dict(zip(table["item_raw_id"], table["status"]))
    assert status == {"img0.jpg": "ok", "img1.jpg": "ok", "img2.jpg": "ok", "img3.jpg": "ok",
                      "gone.jpg": "http_error"}
    metrics = catalog.load("images.metrics")
    assert metrics["ok"] == {"value": 4.0, "step": 0}
    assert metrics["http_error"]["value"] == 1.0 and metrics["placeholder"]["value"] == 0.0
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        f"img{n}.jpg" for n in range(4)]

    catalog = _catalog(tmp_path, PARAMETERS)
    SequentialRunner().run(pipeline, catalog)
    again = pd.read_parquet(tmp_path / "02_intermediate" / "image_downloads.parquet")
    assert sorted(again["status"]) == ["exists"] * 4 + ["http_error"]
    assert sum(server.hits.values()) == 5


def test_only_the_items_that_survive_the_filters_are_downloaded(server, tmp_path):
    """Boards with fewer than 3 pins are filtered out before the download: the images only
    they pinned are never requested (the real Pinterest subset fetches its own images)."""
    _dump(tmp_path, server.base)
    catalog = _catalog(tmp_path, PARAMETERS, min_user_interactions=3)
    SequentialRunner().run(register_pipelines()["images"], catalog)
    table = pd.read_parquet(tmp_path / "02_intermediate" / "image_downloads.parquet")
    assert sorted(table["item_raw_id"]) == ["gone.jpg", "img0.jpg", "img2.jpg"]
    assert sum(server.hits.values()) == 3


def test_download_off_fetches_nothing(server, tmp_path):
    _dump(tmp_path, server.base)
    catalog = _catalog(tmp_path, {**PARAMETERS, "download": False})
    SequentialRunner().run(register_pipelines()["images"], catalog)
    assert sum(server.hits.values()) == 0
    assert not (tmp_path / "images").exists()
    assert catalog.load("images.metrics") == {}


@pytest.mark.parametrize("env, download", [("local", False), ("pinterest", True),
                                           ("amazon", True)])
def test_configuration_of_each_environment(env, download):
    loader = OmegaConfigLoader(str(ROOT / "conf"), env=env, base_env="base",
                               default_run_env="local",
                               merge_strategy={"parameters": "soft"})
    parameters = loader["parameters"]["images"]
    assert parameters["download"] is download
    assert parameters["allow_private_addresses"] is False
    from amr_pipeline.images import DownloadSettings

    settings = DownloadSettings.from_parameters(parameters)
    assert (settings.connect_timeout, settings.read_timeout, settings.total_timeout) == (
        10, 30, 120)
    catalog = loader["catalog"]
    dataset = {"local": "demo", "pinterest": "pinterest", "amazon": "amazon"}[env]
    assert catalog["image_download_folder"]["path"] == f"data/01_raw/{dataset}/images"
    assert catalog["image_downloads"]["filepath"] == (
        f"data/02_intermediate/{dataset}/image_downloads.parquet")
    # the features are extracted from the folder the downloads go to
    assert catalog["image_source"]["type"].endswith("ImageFolderDataset")
    assert catalog["image_source"]["path"] == catalog["image_download_folder"]["path"]
