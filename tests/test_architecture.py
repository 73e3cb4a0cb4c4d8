"""Import rules of the package map (issue 22): nodes build on the core, never on each other's
nodes, and the recommender core trains without the vision package."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import amr_pipeline

PACKAGE = Path(amr_pipeline.__file__).parent
NODE_MODULES = sorted((PACKAGE / "pipelines").glob("*/*.py"))


def _imported_modules(path: Path) -> list[str]:
    """Absolute module names ``path`` imports (relative imports resolved)."""
    package = ".".join(("amr_pipeline", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_the_node_modules_are_found():
    names = {path.parent.name for path in NODE_MODULES if path.name == "nodes.py"}
    assert {"training", "evaluation", "tuning", "reporting", "features"} <= names


@pytest.mark.parametrize("path", NODE_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pipelines_import_only_the_core_and_their_own_package(path):
    """``pipelines/<a>/*.py`` may import ``amr_pipeline.pipelines`` (the shared MLflow helpers)
    and its own package ``pipelines.<a>``, never another ``pipelines.<b>``."""
    own = f"amr_pipeline.pipelines.{path.parent.name}"
    others = [
        module for module in _imported_modules(path)
        if module.startswith("amr_pipeline.pipelines.")
        and not (module == own or module.startswith(own + "."))
        and module.split(".")[2] in {p.parent.name for p in NODE_MODULES}
    ]
    assert not others, f"{path.relative_to(PACKAGE)} imports other pipelines: {others}"


CORE = ("item_features.py", "models_table.py", "errors.py", "log_levels.py", "readers", "recsys",
        "vision", "reporting", "demo", "distributed")


def _core_modules() -> list[Path]:
    found = []
    for name in CORE:
        path = PACKAGE / name
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_kedro_adapter_or_node(path):
    """The core imports no Kedro, no catalog dataset and no node; ``recsys`` (and c_i's home)
    import nothing from ``vision``."""
    imported = _imported_modules(path)
    bad = [m for m in imported
           if m.split(".")[0] in ("kedro", "kedro_datasets", "kedro_mlflow")
           or m.startswith(("amr_pipeline.pipelines", "amr_pipeline.datasets",
                            "amr_pipeline.hooks", "amr_pipeline.settings"))]
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] in ("recsys", "item_features.py"):
        bad += [m for m in imported if m.startswith("amr_pipeline.vision")]
    assert not bad, f"{relative} imports {bad}"


def _imported_in_a_fresh_process(module: str) -> list[str]:
    code = (f"import sys, {module}; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('amr_pipeline')))")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=environment)
    return done.stdout.split()


def test_training_core_does_not_import_vision():
    loaded = _imported_in_a_fresh_process("amr_pipeline.recsys.train")
    assert "amr_pipeline.recsys.train" in loaded
    assert not [m for m in loaded if m.startswith("amr_pipeline.vision")], loaded


def test_item_features_is_core():
    """The home of c_i depends on nothing but the errors module."""
    loaded = _imported_in_a_fresh_process("amr_pipeline.item_features")
    assert set(loaded) <= {"amr_pipeline", "amr_pipeline.errors", "amr_pipeline.item_features"}
