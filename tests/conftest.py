"""Shared fixtures: a tiny demo dump made in code (no network, no committed fixture files)."""

import pytest

from amr_pipeline.demo.synthesize import DemoSettings, synthesize

TINY_DEMO = DemoSettings(
    n_boards=500,
    n_catalogue_images=4000,
    mean_pins_per_board=5.0,
    max_pins_per_board=12,
    image_size=16,
    seed=7,
)
"""500 boards with 2 to 12 pins (mean 5) on about 1,500 images: enough items for 999 sampled
negatives per user, and boards on both sides of a 6-pin threshold."""


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A small dump in the real Pinterest format, with images."""
    folder = tmp_path_factory.mktemp("tiny_demo")
    synthesize(folder, TINY_DEMO)
    return folder


@pytest.fixture
def decoded_files(monkeypatch):
    """Names of the files whose pixels Pillow decodes while the test runs (a spy on
    ``ImageFile.load``): checks that an image is refused from its header alone."""
    from PIL import ImageFile

    names = []
    original = ImageFile.ImageFile.load

    def load(image):
        names.append(str(getattr(image, "filename", "")).rsplit("/", 1)[-1])
        return original(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return names


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """A copy of the project with the demo after `kedro run --pipeline=tuning` (reduced grid)
    and one default `kedro run` (see tests/project_runs.py): the end-to-end modules read it."""
    from tests.project_runs import demo_project

    return demo_project(tmp_path_factory.mktemp("project"))
