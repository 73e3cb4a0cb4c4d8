"""Wiring of the ceilings pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import compute_ceilings


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                compute_ceilings,
                ["test_candidates", "final_train", "final_items", "users", "demo_generator"],
                "ceilings",
                name="compute_ceilings",
            ),
        ],
        tags="ceilings",
    )
