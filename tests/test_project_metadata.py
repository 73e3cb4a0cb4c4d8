"""pyproject.toml [tool.kedro] is what Kedro reads; .kedro.yml mirrors it."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_kedro_yml_mirrors_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["kedro"]
    legacy = yaml.safe_load((ROOT / ".kedro.yml").read_text())
    assert legacy, ".kedro.yml is empty"
    for key, value in legacy.items():
        assert str(pyproject[key]) == str(value), key
    for key in ("package_name", "project_name", "kedro_init_version", "source_dir"):
        assert key in legacy


def test_kedro_finds_the_project():
    from kedro.framework.startup import bootstrap_project

    metadata = bootstrap_project(ROOT)
    assert metadata.package_name == "amr_pipeline"
