"""What replicated final fits cost: `kedro run --pipeline=amr` on the demo with one replicate
(one final fit per model, as before replicates existed) and with five, side by side in one
run; and the full-ranking evaluation of one model against the sampled protocol's ranking.

The project is copied to a temporary folder with the committed demo; a first run extracts
the features, then each timed run starts from no trained model (checkpoints deleted), the
features cached, as a user re-running the pipeline after changing a training setting would.

    python benchmarks/replicates_speed.py
    python benchmarks/replicates_speed.py --replicates 1 5 --repeats 2
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scale import machine_line

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pyproject.toml", ".kedro.yml", ".telemetry", "conf", "src")


def kedro(project: Path, *arguments: str) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kedro", *arguments], cwd=project,
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stdout[-2000:] + result.stderr[-4000:])
    return time.perf_counter() - began


def copy_project(target: Path) -> Path:
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("local"))
        else:
            shutil.copy2(source, target / name)
    (target / "conf" / "local").mkdir()
    shutil.copytree(ROOT / "data" / "01_raw" / "demo", target / "data" / "01_raw" / "demo")
    return target


def full_ranking_seconds(project: Path) -> tuple[float, float, int, int]:
    """Seconds to rank AMR's test items over the full catalogue and over the 1,000 sampled
    candidates, from the stored tables (the evaluation node's two calls)."""
    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.item_features import feature_matrix
    from amr_pipeline.recsys import metrics
    from amr_pipeline.recsys.models import FactorModel

    data = project / "data"
    tables = [pd.read_parquet(data / "06_models/demo/amr" / f"{name}.parquet")
              for name in ("user_factors", "item_factors", "feature_projection")]
    model = FactorModel.from_frames(*tables)
    items = pd.read_parquet(data / "05_model_input/demo/final_items.parquet")
    train = pd.read_parquet(data / "05_model_input/demo/final_train.parquet")
    candidates = pd.read_parquet(data / "05_model_input/demo/test_candidates.parquet")
    features = feature_matrix(
        FeatureMatrixDataset(str(data / "04_feature/demo/item_features.arrow")).load(), items)
    began = time.perf_counter()
    ranks = metrics.rank_candidates(model, features, candidates)
    sampled = time.perf_counter() - began
    began = time.perf_counter()
    metrics.full_ranks(model, features, ranks, train)
    full = time.perf_counter() - began
    return full, sampled, len(ranks), len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting")
    arguments = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        project = copy_project(Path(folder))
        warm = kedro(project, "run", "--pipeline=features")
        print(f"features extracted once (not timed below): {warm:.1f} s")
        timings = {count: [] for count in arguments.replicates}
        for _ in range(arguments.repeats):
            for count in arguments.replicates:  # interleaved, so drift hits both alike
                shutil.rmtree(project / "data" / "06_models", ignore_errors=True)
                timings[count].append(kedro(project, "run", "--pipeline=amr",
                                            f"--params=replicates={count}"))
        base = np.median(timings[arguments.replicates[0]])
        print("| replicates | `kedro run --pipeline=amr` (s, median) | runs | x first row |")
        print("|---|---|---|---|")
        for count, seconds in timings.items():
            print(f"| {count} | {np.median(seconds):.1f} | "
                  f"{' '.join(f'{s:.1f}' for s in seconds)} | {np.median(seconds) / base:.2f} |")
        full, sampled, users, items = full_ranking_seconds(project)
        print(f"AMR on {users:,} users x {items:,} items: full ranking {full:.2f} s, sampled "
              f"protocol (1,000 candidates) {sampled:.2f} s")


if __name__ == "__main__":
    main()
