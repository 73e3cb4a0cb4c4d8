"""Executor choice and the Ray connection settings, without starting Ray."""

import pytest

from amr_pipeline.distributed import LocalExecutor, connect, executor
from amr_pipeline.errors import ConfigurationError
from amr_pipeline.hooks import RAY_EXECUTORS, _parameter


def test_local_executor_maps_in_block_order():
    local = executor("local", "robustness.executor")
    assert isinstance(local, LocalExecutor)
    shared = local.share(10)
    assert list(local.map(lambda block, offset: block + offset, [3, 1, 2], shared)) == [13, 11, 12]


def test_unknown_executor_names_the_parameter_and_the_choices():
    with pytest.raises(ConfigurationError, match=r"robustness.executor.*'local', 'ray'"):
        executor("dask", "robustness.executor")


def test_ray_executor_without_a_connection_says_how_to_connect():
    import ray

    assert not ray.is_initialized(), "Ray runs only in the isolated subprocess"
    with pytest.raises(ConfigurationError, match=r"features.executor: ray.*ray.yml"):
        executor("ray", "features.executor")


def test_unknown_ray_setting_names_the_file():
    message = r"conf/base/ray.yml: unknown Ray settings \['adress'\]"
    with pytest.raises(ConfigurationError, match=message):
        connect({"adress": "auto"}, source="conf/base/ray.yml")


def test_ray_hook_reads_the_executor_parameters():
    parameters = {"features": {"executor": "local"}, "robustness": {"executor": "ray"}}
    assert [name for name in RAY_EXECUTORS if _parameter(parameters, name) == "ray"] == [
        "robustness.executor"]
    assert _parameter({"features": None}, "features.executor") is None


class _Context:
    env = "amazon"

    def __init__(self, params, config):
        self.params, self.config_loader = params, config


def test_ray_hook_connects_with_the_environment_settings_only_when_a_step_uses_ray(monkeypatch):
    from amr_pipeline import distributed
    from amr_pipeline.hooks import RayHooks

    calls = []
    monkeypatch.setattr(distributed, "connect",
                        lambda settings, source: calls.append((settings, source)))
    settings = {"ray": {"address": "ray://head:10001"}}
    RayHooks().after_context_created(_Context({"features": {"executor": "local"}}, settings))
    assert calls == []
    RayHooks().after_context_created(_Context({"features": {"executor": "ray"}}, settings))
    assert calls == [({"address": "ray://head:10001"}, "conf/amazon/ray.yml")]
