"""amr-pipeline: Adversarial Multimedia Recommendation (Tang et al., IEEE TKDE) as a Kedro project."""

__version__ = "0.1.0"
