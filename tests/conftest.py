"""Shared fixtures: a tiny demo dump made in code (no network, no committed fixture files)."""

import pytest

from amr_pipeline.demo.synthesize import DemoSettings, synthesize

TINY_DEMO = DemoSettings(n_boards=500, n_shared_images=1200, image_size=16, seed=7)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A small dump in the real Pinterest format, with images."""
    folder = tmp_path_factory.mktemp("tiny_demo")
    synthesize(folder, TINY_DEMO)
    return folder
