"""Which items have a usable visual: decompression bombs, missing and corrupt images, and
precomputed feature rows, checked by data processing before the split."""

import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.pipelines.data_processing import nodes
from amr_pipeline.readers import make_interactions, make_items
from amr_pipeline.readers.features import RawFeatures
from amr_pipeline.vision.availability import missing_visuals
from amr_pipeline.vision.images import ImageFolder

LIMIT = 1_000_000
BOMBS = ["bomb.png", "bomb.jpg", "just_over.png"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` greyscale pixels, with one tiny (cut)
    data chunk: what a decompression bomb looks like to anything that reads only the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real images: four small ones, one of exactly LIMIT pixels, one just over LIMIT (where
    Pillow would only warn at its own limit) and two of 25 x LIMIT (a few kB each: highly
    compressible), plus a corrupt file. ``gone.jpg`` is missing."""
    root = tmp_path_factory.mktemp("images")
    for index in range(4):
        Image.new("RGB", (8, 8), (60 * index, 0, 0)).save(root / f"ok{index}.png")
    Image.new("L", (1000, 1000)).save(root / "at_limit.png")
    Image.new("L", (1001, 1000)).save(root / "just_over.png")
    Image.new("L", (5000, 5000)).save(root / "bomb.png")
    Image.new("L", (5000, 5000)).save(root / "bomb.jpg", quality=10)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _items(names):
    return pd.DataFrame({"item_raw_id": [f"i{k}" for k in range(len(names))], "image": names})


def test_images_over_the_pixel_limit_join_the_missing_and_corrupt_ones_undecoded(images,
                                                                                 decoded_files):
    names = ["ok0.png", "bomb.png", "at_limit.png", "gone.jpg", "bomb.jpg", "broken.jpg",
             "just_over.png"]
    report = missing_visuals(_items(names), ImageFolder(images), max_image_pixels=LIMIT)
    reasons = dict(zip(report["image"], report["reason"]))
    assert sorted(reasons) == ["bomb.jpg", "bomb.png", "broken.jpg", "gone.jpg", "just_over.png"]
    assert reasons["bomb.png"] == (
        f"unreadable: too many pixels in {images / 'bomb.png'} (5000 x 5000 = 25,000,000 "
        "pixels, over max_image_pixels 1,000,000), never decoded")
    assert "too many pixels" in reasons["bomb.jpg"] and "1001 x 1000" in reasons["just_over.png"]
    assert reasons["gone.jpg"].startswith("missing file")
    assert reasons["broken.jpg"].startswith("unreadable image")
    assert decoded_files == [], "the check reads headers only"


def test_the_default_limit_is_pillows_and_pillows_own_refusal_is_reported_not_raised(tmp_path):
    """240 megapixels made Pillow raise DecompressionBombError out of the node; between its
    limit and twice it Pillow only warns. Both are reported like any unreadable image."""
    pillow = Image.MAX_IMAGE_PIXELS
    (tmp_path / "warned.png").write_bytes(png_header(pillow // 5000 + 1, 5000))
    (tmp_path / "refused.png").write_bytes(png_header(16000, 15000))
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    with pytest.warns(Image.DecompressionBombWarning):
        report = missing_visuals(_items(["ok.png", "warned.png", "refused.png"]),
                                 ImageFolder(tmp_path))
    assert report["image"].tolist() == ["warned.png", "refused.png"]
    assert report["reason"].str.startswith("unreadable: too many pixels in ").all()
    assert "240,000,000 pixels, over max_image_pixels 89,478,485" in report["reason"][1]


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "many", 2 * Image.MAX_IMAGE_PIXELS + 1])
def test_an_invalid_pixel_limit_is_a_configuration_error(images, value):
    with pytest.raises(ConfigurationError, match="max_image_pixels must be a positive integer"):
        missing_visuals(_items(["ok0.png"]), ImageFolder(images), max_image_pixels=value)


def test_the_configured_default_is_pillows_limit():
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "conf" / "base"
    for name, block in [("parameters_data_processing.yml", "data_processing"),
                        ("parameters_features.yml", "features")]:
        parameters = yaml.safe_load((conf / name).read_text())[block]
        assert parameters["max_image_pixels"] == Image.MAX_IMAGE_PIXELS


# ------------------------------------------------------------- the filter_and_index node

PARAMETERS = {"seed": 1, "sample_users": None, "min_user_interactions": 2,
              "drop_items_without_image": True, "max_image_pixels": LIMIT}


def _tables(names):
    """Every one of five users interacts with every item."""
    items = make_items([f"i{k}" for k in range(len(names))], names, [None] * len(names))
    pairs = [(f"u{user}", f"i{k}") for user in range(5) for k in range(len(names))]
    return make_interactions([u for u, _ in pairs], [i for _, i in pairs]), items


def test_drop_leaves_items_over_the_pixel_limit_out_and_reports_them(images, decoded_files,
                                                                   caplog):
    interactions, items = _tables(["ok0.png", "bomb.png", "ok1.png", "bomb.jpg", "just_over.png"])
    parameters = dict(PARAMETERS, on_missing_image="drop")
    indexed, _, kept = nodes.filter_and_index(interactions, items, ImageFolder(images),
                                              parameters)
    assert kept["image"].tolist() == ["ok0.png", "ok1.png"]
    assert indexed["item_id"].isin(kept["item_id"]).all() and len(indexed) == 10
    assert "3 of 5 items have no usable image" in caplog.text
    assert f"item i1: unreadable: too many pixels in {images / 'bomb.png'}" in caplog.text
    assert not set(decoded_files) & set(BOMBS)


def test_fail_names_the_file_over_the_pixel_limit_and_the_fix(images, decoded_files):
    interactions, items = _tables(["ok0.png", "ok1.png", "bomb.jpg"])
    with pytest.raises(RawDataError) as raised:
        nodes.filter_and_index(interactions, items, ImageFolder(images),
                               dict(PARAMETERS, on_missing_image="fail"))
    message = str(raised.value)
    assert message.startswith("1 of 3 items have no usable image")
    assert (f"item i2: unreadable: too many pixels in {images / 'bomb.jpg'} (5000 x 5000 = "
            "25,000,000 pixels, over max_image_pixels 1,000,000)") in message
    assert "data_processing.max_image_pixels" in message
    assert "on_missing_image: drop" in message
    assert "bomb.jpg" not in decoded_files


def test_non_finite_feature_rows_are_reported_by_item_and_dropped_before_the_split(caplog):
    matrix = np.ones((4, 3), np.float32)
    matrix[2, 1] = np.nan
    raw = RawFeatures(np.array(["i0", "i1", "i2", "i3"]), matrix, "features.npy")
    interactions, items = _tables(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    report = missing_visuals(items, raw)
    assert report[["item_raw_id", "reason"]].values.tolist() == [
        ["i2", "non-finite feature values in features.npy, record 3"],
        ["i4", "no feature row in features.npy"]]
    with pytest.raises(RawDataError, match="item i2: non-finite feature values"):
        nodes.filter_and_index(interactions, items, raw, dict(PARAMETERS, on_missing_image="fail"))
    _, _, kept = nodes.filter_and_index(interactions, items, raw,
                                        dict(PARAMETERS, on_missing_image="drop"))
    assert kept["item_raw_id"].tolist() == ["i0", "i1", "i3"]


# ------------------------------------------------------------- feature extraction on Ray


def test_ray_decoding_tasks_leave_images_over_the_limit_undecoded(images, decoded_files):
    from amr_pipeline.vision import ray_features

    names = ["ok1.png", "bomb.jpg", "just_over.png"]
    batch = {"path": np.array([str(images / name) for name in names]),
             "position": np.arange(3), "item_id": np.arange(3), "audit": np.zeros(3, bool)}
    result = ray_features._decode_batch(batch, 32, max_image_pixels=LIMIT)
    assert result["problem"][0] == ""
    assert result["problem"][1].startswith("unreadable: too many pixels (5000 x 5000")
    assert result["problem"][2].startswith("unreadable: too many pixels (1001 x 1000")
    assert not result["image"][1:].any() and result["image"][0].any()
    assert "ok1.png" in decoded_files and not set(decoded_files) & set(BOMBS)


def test_ray_parts_are_not_reused_under_another_pixel_limit(images):
    """A part records which images were left out, so a part written under one limit must not
    be taken for a run under another; Pillow's default keeps the names parts had before."""
    from amr_pipeline.vision import ray_features

    items = pd.DataFrame({"item_id": [0, 1], "image": ["ok0.png", "bomb.png"]})
    network = {"tag": "float32", "weights_id": "random-seed-1", "image_size": 32}

    def name(limit):
        return ray_features.plan_parts(items, images, network, 16, limit)[0][0].name

    assert name(None) == name(Image.MAX_IMAGE_PIXELS)
    assert name(LIMIT) != name(None)
