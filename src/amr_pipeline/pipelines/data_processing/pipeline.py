"""Wiring of the data_processing pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import filter_and_index, ingest, sample_candidates, split


def create_pipeline(download: Pipeline | None = None, **kwargs) -> Pipeline:
    """Ingest, filter, index, split and sample candidates; with ``download`` (the ``images``
    pipeline's node, a no-op while ``images.download`` is false), item images are fetched after
    the filters and before the availability check, which then reads their status table."""
    checked = ["raw_interactions", "raw_items", "image_source", "params:data_processing"]
    if download is not None:
        checked.append("image_downloads")
    return (download or Pipeline([])) + Pipeline(
        [
            Node(
                ingest,
                ["raw_source", "params:data_processing"],
                # the catalog's "{model}.metrics" logs these as MLflow data_processing.*
                ["raw_interactions", "raw_items", "data_processing.metrics"],
                name="ingest_raw_dump",
            ),
            Node(
                filter_and_index,
                checked,
                ["interactions", "users", "indexed_items"],
                name="filter_and_index",
            ),
            Node(
                split,
                ["interactions", "indexed_items", "params:data_processing.split"],
                ["train", "validation", "test", "items", "data_metrics"],
                name="leave_one_out_split",
            ),
            Node(
                sample_candidates,
                ["test", "interactions", "items", "params:data_processing.candidates"],
                "test_candidates",
                name="sample_test_candidates",
            ),
            Node(
                sample_candidates,
                ["validation", "interactions", "items", "params:data_processing.validation_candidates"],
                "validation_candidates",
                name="sample_validation_candidates",
            ),
        ],
        tags="data_processing",
    )
