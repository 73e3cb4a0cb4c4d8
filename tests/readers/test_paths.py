"""The one guard for raw file names joined onto a folder, and the ImageFolder that uses it."""

import os

import pytest
from PIL import Image

from amr_pipeline.errors import RawDataError
from amr_pipeline.readers.paths import ESCAPES_FOLDER, EscapingNameError, escape_reason, path_inside
from amr_pipeline.vision.availability import missing_visuals
from amr_pipeline.vision.images import ImageFolder
from tests.readers.opened_files import opened_any, watch_opens


@pytest.fixture
def layout(tmp_path):
    """``images/`` with one real image, a link inside it to a secret image outside, a link
    to an image inside, and a folder link that leads outside."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8), "red").save(images / "a.jpg")
    Image.new("RGB", (8, 8), "red").save(images / "sub" / "b.jpg")
    secret = outside / "secret.jpg"
    Image.new("RGB", (8, 8), "blue").save(secret)
    (images / "leak.jpg").symlink_to(secret)
    (images / "alias.jpg").symlink_to(images / "a.jpg")
    (images / "door").symlink_to(outside, target_is_directory=True)
    return images, secret


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("/etc/passwd", "absolute path"),
        ("SECRET_ABSOLUTE", "absolute path"),
        ("../../../../etc/passwd", "'..'"),
        ("sub/../../outside/secret.jpg", "'..'"),
        ("..\\..\\secret.jpg", "'..'"),
        ("C:\\Windows\\win.ini", "absolute path"),
        ("\\\\server\\share\\x.jpg", "absolute path"),
        ("a.jpg\x00.png", "NUL byte"),
        ("leak.jpg", "symlink"),
        ("door/secret.jpg", "symlink"),
    ],
)
def test_escaping_names_are_rejected_with_the_reason(layout, name, detail):
    images, secret = layout
    name = str(secret) if name == "SECRET_ABSOLUTE" else name
    reason = escape_reason(images, name)
    assert reason is not None and reason.startswith(ESCAPES_FOLDER) and detail in reason
    with pytest.raises(EscapingNameError, match="Fix: name images relative to the image folder"):
        path_inside(images, name)


@pytest.mark.parametrize("name", ["a.jpg", "sub/b.jpg", "alias.jpg", "./a.jpg", "a..b.jpg"])
def test_names_inside_the_folder_are_accepted(layout, name):
    images, _ = layout
    assert escape_reason(images, name) is None
    assert path_inside(images, name).is_relative_to(images.resolve())


def test_a_folder_given_through_a_link_is_its_target(layout, tmp_path):
    images, _ = layout
    link = tmp_path / "images_link"
    link.symlink_to(images, target_is_directory=True)
    assert escape_reason(link, "a.jpg") is None
    assert escape_reason(link, "leak.jpg") is not None


def test_image_folder_never_opens_an_escaping_name(layout):
    images, secret = layout
    folder = ImageFolder(images)
    names = [str(secret), "leak.jpg", "door/secret.jpg", "../outside/secret.jpg"]
    with watch_opens() as opened:
        for name in names:
            assert folder.escape_reason(name) is not None
            assert folder.stat(name) is None
            with pytest.raises(RawDataError, match=ESCAPES_FOLDER):
                folder.path(name)
            with pytest.raises(RawDataError, match=ESCAPES_FOLDER):
                folder.open(name)
    assert opened_any(opened, secret) == []
    assert folder.stat("a.jpg") is not None
    with folder.open("a.jpg") as image:
        assert image.size == (8, 8)


def test_availability_reports_escaping_names_without_opening_them(layout):
    import pandas as pd

    images, secret = layout
    items = pd.DataFrame({"item_raw_id": ["a.jpg", str(secret), "leak.jpg", "../../etc/passwd"],
                          "image": ["a.jpg", str(secret), "leak.jpg", "../../etc/passwd"]})
    with watch_opens() as opened:
        report = missing_visuals(items, ImageFolder(images))
    assert opened_any(opened, secret, "/etc/passwd") == []
    assert report["item_raw_id"].tolist() == [str(secret), "leak.jpg", "../../etc/passwd"]
    assert report["reason"].str.startswith(ESCAPES_FOLDER).all()


def test_a_link_loop_is_neither_followed_forever_nor_opened(layout):
    images, _ = layout
    os.symlink(images / "loop.jpg", images / "loop.jpg")
    reason = escape_reason(images, "loop.jpg")
    assert reason is None or reason.startswith(ESCAPES_FOLDER)
    assert ImageFolder(images).stat("loop.jpg") is None


def test_feature_extraction_never_opens_an_escaping_name(layout):
    """Names that reach the features step unchecked are left out, not read."""
    import pandas as pd

    from amr_pipeline.vision.resnet import extract_item_features

    images, secret = layout
    items = pd.DataFrame({"item_id": [0, 1, 2],
                          "image": [str(secret), "leak.jpg", "../outside/secret.jpg"]})
    with watch_opens() as opened, pytest.raises(RawDataError) as error:
        extract_item_features(items, ImageFolder(images), weights="random", image_size=32,
                              precision="float32", engine="tensorflow")
    assert opened_any(opened, secret) == []
    assert "3 of 3 item images are missing or unreadable" in str(error.value)
