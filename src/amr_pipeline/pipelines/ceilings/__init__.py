"""Test candidates ranked by the demo generator's true logit and its terms, and by popularity."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
