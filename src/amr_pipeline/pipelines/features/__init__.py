"""Features: one ResNet-50 feature row per item (paper 4.1.3), or an import of precomputed ones."""

from .pipeline import create_pipeline, network_pipeline

__all__ = ["create_pipeline", "network_pipeline"]
