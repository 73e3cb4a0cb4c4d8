"""Wiring of the images pipeline: raw items -> downloaded images + status table."""

from kedro.pipeline import Node, Pipeline

from .nodes import download_item_images


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                download_item_images,
                ["raw_interactions", "raw_items", "image_download_folder",
                 "image_downloads_previous", "params:images", "params:data_processing"],
                ["image_downloads", "images.metrics"],
                name="download_item_images",
            ),
        ],
        tags="images",
    )
