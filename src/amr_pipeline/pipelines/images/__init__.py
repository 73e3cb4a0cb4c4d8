"""``images``: download the items' images from their URLs (issue 23)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
