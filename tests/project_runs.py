"""A copy of the project run as a user runs it: shared by the end-to-end test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pyproject.toml", ".kedro.yml", ".telemetry", "conf", "notebooks", "src")


def kedro(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *arguments], cwd=project, capture_output=True,
        text=True, timeout=1800, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


# The protocol's shape on smaller grids (an environment of overrides, as a user would write).
QUICK_TUNING = """
tuning:
  epochs: {mf_bpr: 6, duif: 6, vbpr: 6, amr: 6}
  eval_every: 3
  max_extensions: 1
  grids:
    learning_rate: [0.05, 0.1]
    regularization: [0, 0.01]
    epsilon: [0.1, 1]
    adversarial_weight: [0.1, 1]
  eals_grids: {c0: [1, 8], regularization: [1]}
"""


def copy_project(copy: Path) -> Path:
    """The project's code, configuration and notebooks in ``copy``, with an empty conf/local
    and no data."""
    copy.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name,
                            ignore=shutil.ignore_patterns("local", "__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    (copy / "conf" / "local").mkdir()
    return copy


def demo_project(copy: Path) -> Path:
    """``copy`` made a project with the demo: tuning on a reduced grid, then one default
    ``kedro run`` with two replicates and one new image to rank."""
    copy_project(copy)
    # two replicates are enough to check the mechanism (the demo's default is 5)
    (copy / "conf" / "local" / "parameters_replicates.yml").write_text("replicates: 2\n")
    quick = copy / "conf" / "quick_tuning"
    quick.mkdir()
    (quick / "parameters_tuning.yml").write_text(QUICK_TUNING)
    raw = copy / "data" / "01_raw" / "demo"
    shutil.copytree(ROOT / "data" / "01_raw" / "demo", raw)
    (raw / "new_images").mkdir(exist_ok=True)
    shutil.copy(sorted((raw / "images").iterdir())[0], raw / "new_images" / "upload.jpg")
    kedro(copy, "run", "--pipeline=tuning", "--env=quick_tuning")
    kedro(copy, "run")
    return copy
