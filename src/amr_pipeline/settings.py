"""Kedro project settings: https://docs.kedro.org/en/stable/kedro_project_setup/settings.html

kedro-mlflow's hooks run behind MlflowRunHooks; RayHooks connect to Ray (conf/<env>/ray.yml)
when a step's executor is ray.
"""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
                        "ray": ["ray*", "ray*/**"]},
    # conf/pinterest and conf/amazon hold overrides only: their parameters merge into base
    # key by key (nested keys included) instead of replacing whole top-level blocks.
    "merge_strategy": {"parameters": "soft"},
}

from amr_pipeline.hooks import MlflowRunHooks, RayHooks  # noqa: E402

HOOKS = (MlflowRunHooks(), RayHooks())
# kedro-mlflow's hook runs behind MlflowRunHooks, which first checks the tracking store.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")
