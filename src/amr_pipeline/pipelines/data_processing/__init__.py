"""Raw dump -> filtered interactions -> leave-one-out split and fixed ranking candidates."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
