"""New item images by URL: the list's checks, the download into the new-images folder through
the image downloader (loopback server of test_download), and the optional CSV dataset."""

from __future__ import annotations

import pandas as pd
import pytest

from amr_pipeline.datasets.images import OptionalCSVDataset
from amr_pipeline.errors import RawDataError
from amr_pipeline.images import url_list_items
from amr_pipeline.pipelines.recommend.nodes import download_new_images
from amr_pipeline.vision.images import ImageFolder
from amr_pipeline.vision.new_images import image_names
from tests.images.test_download import FAST, _Server, loopback_only  # noqa: F401 - fixture

PARAMETERS = {"allow_private_addresses": True, **FAST,
              "timeout": {"connect": 1.0, "read": 0.4, "total": 3.0}}


@pytest.fixture
def server():
    served = _Server()
    yield served
    served.close()


def test_names_default_to_a_hash_of_the_url_with_its_image_suffix():
    items = url_list_items(pd.DataFrame({"url": ["http://a.example/x/cat.PNG?s=1",
                                                 "http://a.example/photo"],
                                         "image": ["", None]}), "urls.csv")
    assert list(items.columns) == ["item_raw_id", "image", "url"]
    assert items["image"].str.match(r"^url-[0-9a-f]{16}\.(png|jpg)$").all()
    assert items["image"].tolist()[0].endswith(".png")
    assert items["image"].tolist()[1].endswith(".jpg")
    assert (items["item_raw_id"] == items["image"]).all()


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"link": ["http://a/x.jpg"]}), "no `url` column"),
    (pd.DataFrame({"url": ["http://a/x.jpg", " "]}), "row 2: no url"),
    (pd.DataFrame({"url": ["http://a/x.jpg"], "image": ["../x.jpg"]}), "row 1: image '../x.jpg'"),
    (pd.DataFrame({"url": ["http://a/x.jpg"], "image": ["notes.txt"]}), "row 1: image 'notes.txt'"),
    (pd.DataFrame({"url": ["http://a/1.jpg", "http://a/2.jpg", "http://a/1.jpg"]}),
     r"rows \[1, 3\]: the same image name"),
])
def test_a_bad_list_is_refused_naming_the_row_and_the_fix(frame, message):
    with pytest.raises(RawDataError, match=message) as raised:
        url_list_items(frame, "new_image_urls.csv")
    assert "new_image_urls.csv" in str(raised.value)


def test_listed_urls_are_fetched_into_the_folder_and_failures_are_reported(server, tmp_path,
                                                                           caplog):
    folder = tmp_path / "new_images"
    urls = pd.DataFrame({"url": [f"{server.base}/good/1.jpg", f"{server.base}/missing.jpg",
                                 f"{server.base}/good/2.jpg"],
                         "image": ["first.jpg", "", ""]})
    table = download_new_images(urls, folder, None, PARAMETERS)
    assert table["status"].tolist() == ["ok", "http_error", "ok"]
    assert "1 of 3 URLs gave no image (http_error 1)" in caplog.text
    names = image_names(ImageFolder(folder))
    assert "first.jpg" in names and len(names) == 2, "only whole, valid images land"
    again = download_new_images(urls, folder, table, PARAMETERS)
    assert again["status"].tolist() == ["exists", "http_error", "exists"]
    assert server.hits["/good/1.jpg"] == 1, "a rerun does not fetch an image it has"


def test_private_addresses_are_refused_unless_allowed(server, tmp_path):
    urls = pd.DataFrame({"url": [f"{server.base}/good/1.jpg"]})
    table = download_new_images(urls, tmp_path / "new_images", None,
                                {**PARAMETERS, "allow_private_addresses": False})
    assert table["status"].tolist() != ["ok"] and not server.hits
    assert image_names(ImageFolder(tmp_path / "new_images")) == []


def test_no_list_fetches_nothing(tmp_path):
    table = download_new_images(None, tmp_path / "new_images", None, PARAMETERS)
    assert table.empty and not (tmp_path / "new_images").exists()


def test_the_optional_csv_is_none_when_absent_and_text_when_present(tmp_path):
    path = tmp_path / "new_image_urls.csv"
    assert OptionalCSVDataset(str(path)).load() is None
    path.write_text("url,image\nhttp://a.example/1.jpg,\nhttp://a.example/2.jpg,00042.jpg\n")
    frame = OptionalCSVDataset(str(path)).load()
    assert frame["image"].tolist()[1] == "00042.jpg" and pd.isna(frame["image"].iloc[0])
    path.write_text("")
    assert OptionalCSVDataset(str(path)).load().empty
