"""Checks that need a running Ray; run by ``test_on_ray.py`` in a private network namespace
(``python -m pytest tests/distributed/ray_checks.py`` alone would expose Ray's ports)."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.distributed import RayExecutor
from amr_pipeline.recsys import robustness
from amr_pipeline.recsys.models import FactorModel
from tests.recsys import planted_data


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_robustness_grid_on_ray_equals_the_local_grid(monkeypatch):
    """Many user blocks, gradient partitions and item chunks: every figure identical."""
    train, candidates, features = planted_data(n_users=120, n_items=700, n_groups=20,
                                               n_candidates=200, seed=3)
    rng = np.random.default_rng(5)
    model = FactorModel(rng.standard_normal((120, 8)).astype(np.float32),
                        rng.standard_normal((700, 8)).astype(np.float32),
                        0.3 * rng.standard_normal((16, 8)).astype(np.float32), feature_scale=4.0)
    monkeypatch.setattr(robustness, "_TASK_ENTRIES", 2000)
    monkeypatch.setattr(robustness, "_GATHER_FLOATS", 4000)
    monkeypatch.setattr(robustness, "_PAIR_PARTITION", 300)
    monkeypatch.setattr(robustness, "_ITEM_CHUNK", 128)
    cold = np.zeros(700, bool)
    cold[::7] = True
    arguments = dict(epsilons=[0.05, 0.5, 2.0], seed=11, pgd_steps=2, cold_items=cold)
    local = robustness.evaluate_attacks(model, features, candidates, train, **arguments)
    on_ray = robustness.evaluate_attacks(model, features, candidates, train,
                                         executor=RayExecutor(in_flight=3), **arguments)
    assert (local[0]["hr_at_10"] < local[0]["hr_at_10"].iloc[0]).any()  # attacks bite
    pd.testing.assert_frame_equal(local[0], on_ray[0], check_exact=True)
    pd.testing.assert_frame_equal(local[1], on_ray[1], check_exact=True)


# --------------------------------------------------------------------------- feature extraction

FEATURES = dict(weights="random", seed=7, image_size=32, batch_size=3, calibration_images=4,
                validation_images=3, min_cosine=0.5, audit_every=2)


@pytest.fixture(scope="module")
def image_items(tmp_path_factory):
    """Ten small seeded images and one unreadable file, as an items table and a folder."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    names = []
    for index in range(10):
        pixels = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"item{index}.png")
        names.append(f"item{index}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    names.insert(4, "broken.jpg")
    items = pd.DataFrame({"item_id": np.arange(len(names)), "image": names})
    return items, folder


def _parameters(precision, **overrides):
    return {**FEATURES, "precision": precision, "engine": "openvino", "executor": "ray",
            "on_missing_image": "drop", "int8_overflow_fix": "auto",
            "ray": {"workers": 1, "cpus_per_worker": 1, "decode_cpus": 0.5, "part_size": 4},
            **overrides}


def _local(items, folder, precision, cache):
    from amr_pipeline.vision.feature_cache import FeatureCache
    from amr_pipeline.vision.resnet import extract_item_features

    parameters = _parameters(precision)
    arguments = {key: parameters[key] for key in FEATURES}
    return extract_item_features(items, folder, FeatureCache(cache), precision=precision,
                                 engine="openvino", on_missing_image="drop", **arguments)


def _ray_run(items, folder, parameters, cache, parts_folder, keep_parts=None):
    """The three nodes as ``kedro run`` chains them, the parts saved through the catalog's
    PartitionedDataset; ``keep_parts`` stops after that many parts (a killed run)."""
    from amr_pipeline.datasets.features import FeaturePartsDataset
    from amr_pipeline.pipelines.features import ray_nodes
    from amr_pipeline.item_features import ItemFeatures
    from amr_pipeline.vision.feature_cache import FeatureCache
    from amr_pipeline.vision.images import ImageFolder

    store = FeaturePartsDataset(path=str(parts_folder),
                                dataset="amr_pipeline.datasets.features.FeaturePartDataset",
                                filename_suffix=".parquet")
    images, feature_cache = ImageFolder(folder), FeatureCache(cache)
    network = ray_nodes.prepare_feature_network(items, images, feature_cache, parameters)
    parts, plan = ray_nodes.extract_feature_parts(items, images, network, store.load(),
                                                  parameters)
    if keep_parts is not None:
        store.save(dict(sorted(parts.items())[:keep_parts]))
        return plan, None, None
    store.save(parts)
    chunks, metrics = ray_nodes.build_item_features_from_parts(
        items, images, feature_cache, store.load(), plan, network, parameters)
    chunks = list(chunks)
    features = ItemFeatures(np.concatenate([chunk.item_ids for chunk in chunks]),
                            np.concatenate([chunk.features for chunk in chunks]))
    return plan, features, {name: value["value"] for name, value in metrics.items()}


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_ray_features_equal_local_features_bit_for_bit(image_items, tmp_path, precision):
    items, folder = image_items
    local = _local(items, folder, precision, tmp_path / "local_cache")
    plan, features, metrics = _ray_run(items, folder, _parameters(precision),
                                       tmp_path / "ray_cache", tmp_path / "parts")
    assert list(plan["items"]) == [4, 4, 3] and plan["computed"].all()
    assert features.features.dtype == np.float32
    np.testing.assert_array_equal(features.item_ids, local.features.item_ids)
    assert np.array_equal(features.features, local.features.features)  # bit for bit
    assert metrics["left_out"] == 1 and metrics["computed"] == 10
    assert metrics["int8"] == (precision == "int8")
    if precision == "int8":
        assert metrics["int8_audited_images"] == local.summary["int8_audited_images"]
        assert metrics["int8_audit_min_cosine"] == pytest.approx(
            local.summary["int8_audit_min_cosine"])


def test_killed_ray_extraction_resumes_without_recomputing_finished_parts(image_items, tmp_path):
    items, folder = image_items
    parameters = _parameters("float32")
    first, _, _ = _ray_run(items, folder, parameters, tmp_path / "cache", tmp_path / "parts",
                           keep_parts=2)
    written = sorted(path.stat().st_mtime_ns for path in (tmp_path / "parts").rglob("*.parquet"))
    assert len(written) == 2
    plan, features, metrics = _ray_run(items, folder, parameters, tmp_path / "cache",
                                       tmp_path / "parts")
    assert list(plan["part"]) == list(first["part"])
    assert list(plan["computed"]) == [False, False, True]
    assert metrics["from_cache"] == 7 and metrics["computed"] == 3  # one image is unreadable
    kept = sorted(path.stat().st_mtime_ns for path in (tmp_path / "parts").rglob("*.parquet"))
    assert kept[:2] == written  # finished parts were not rewritten
    local = _local(items, folder, "float32", tmp_path / "local_cache")
    assert np.array_equal(features.features, local.features.features)


# --------------------------------------------------------------------------- image downloads

def test_image_downloads_on_ray_equal_a_local_download(tmp_path):
    """URL partitions as Ray tasks against a loopback server inside this private namespace:
    the same status table as this process, every image fetched once, a 404 reported."""
    import io
    import threading
    from collections import Counter
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from PIL import Image

    from amr_pipeline.images import DownloadSettings, download_images

    bodies = {}
    for index in range(7):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 40), (30 * index, 90, 200)).save(buffer, "JPEG")
        bodies[f"/{index}.jpg"] = buffer.getvalue()
    requests = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests[self.path] += 1
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/jpeg" if body else "text/plain")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    items = pd.DataFrame({"item_raw_id": [f"i{k}" for k in range(8)],
                          "image": [f"i{k}.jpg" for k in range(8)],
                          "url": [f"{base}/{k}.jpg" for k in range(8)]})  # /7.jpg: 404
    settings = DownloadSettings(allow_private_addresses=True, min_side=8, attempts=1,
                                progress=False)
    try:
        local = download_images(items, tmp_path / "local", settings)
        on_ray = download_images(items, tmp_path / "ray", settings,
                                 executor=RayExecutor(in_flight=2), partition_size=3)
    finally:
        server.shutdown()
    columns = ["item_raw_id", "image", "status", "http_status", "bytes", "sha256", "width",
               "height"]
    pd.testing.assert_frame_equal(local[columns], on_ray[columns])
    assert list(on_ray["status"]) == ["ok"] * 7 + ["http_error"]
    assert all(count == 2 for count in requests.values()), "each image once per run"
    for index in range(7):
        assert (tmp_path / "ray" / f"i{index}.jpg").read_bytes() == bodies[f"/{index}.jpg"]


def test_top_n_on_ray_equals_the_same_blocks_locally_and_the_lists_of_one_call():
    """Blocks of users as Ray tasks: the arrays of the same blocks run here, bit for bit, and
    the lists of one top_n over every user."""
    from amr_pipeline.distributed import LocalExecutor
    from amr_pipeline.recsys.recommend import SeenItems, top_n, top_n_on

    rng = np.random.default_rng(7)
    users = rng.standard_normal((300, 16)).astype(np.float32)
    items = rng.standard_normal((2000, 16)).astype(np.float32)
    seen = SeenItems(rng.integers(0, 300, 3000), rng.integers(0, 2000, 3000))
    subset = rng.permutation(300)[:257]
    on_ray = top_n_on(RayExecutor(in_flight=3), users, items, 15, seen, subset,
                      users_per_task=40)
    here = top_n_on(LocalExecutor(), users, items, 15, seen, subset, users_per_task=40)
    for got, expected in zip(on_ray, here):
        np.testing.assert_array_equal(got, expected)
    whole = top_n(users, items, 15, seen, subset, workers=1)
    np.testing.assert_array_equal(on_ray.user, whole.user)
    np.testing.assert_array_equal(on_ray.item, whole.item)
    np.testing.assert_allclose(on_ray.score, whole.score, rtol=1e-6)
