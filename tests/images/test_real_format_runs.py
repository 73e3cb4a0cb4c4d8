"""From a Pinterest-format dump whose images exist only behind their `im_url` to Table 2, the
way a user runs it: `kedro run --env <env> --pipeline=images`, then `kedro run --env <env>`.

The dump is a small generated one (the demo's generator) whose pins point at an HTTP server
this test starts on 127.0.0.1; a few images answer 404 and three items share one
"no image available" picture. The failed items are reported in the status table, dropped by
`on_missing_image: drop`, and the run goes on to the reports.
"""

from __future__ import annotations

import io
import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bson
import pandas as pd
import pytest
from PIL import Image

from amr_pipeline.demo.synthesize import DemoSettings, synthesize
from tests.project_runs import copy_project, kedro

DUMP = DemoSettings(n_boards=300, n_catalogue_images=3000, mean_pins_per_board=5.0,
                    max_pins_per_board=12, image_size=24, seed=11)
MISSING, PLACEHOLDERS = 4, 3

ENVIRONMENT = {
    "globals.yml": "dataset: urls\n",
    "catalog.yml": """
raw_source:
  type: amr_pipeline.datasets.raw.PinterestDumpDataset
  path: data/01_raw/urls
image_source:
  type: amr_pipeline.datasets.features.ImageFolderDataset
  path: data/01_raw/urls/images
""",
    "parameters.yml": """
replicates: 1
data_processing:
  on_missing_image: drop
  candidates: {seed: 2020, n_negatives: 60}
  validation_candidates: {seed: 2021, n_negatives: 60}
images:
  download: true
  allow_private_addresses: true     # the test's server is on 127.0.0.1
  min_side: 8
  attempts: 1
  timeout: {connect: 5, read: 5, total: 10}
  concurrency: 4
  per_host: 4
features: {precision: float32, engine: tensorflow, image_size: 32, batch_size: 64}
tuning: {use_selected: false}
training:
  mf_bpr: {epochs: 2, eval_every: 1}
  duif: {epochs: 2, eval_every: 1}
  vbpr: {epochs: 2, eval_every: 1}
  amr: {epochs: 2, eval_every: 1}
  mf_eals: {iterations: 1, eval_every: 1}
robustness: {attacks: [random, fgm_train, certified], epsilons: [0.1]}
reporting:
  table3_epsilons: [0.1]
  generalisation: {epochs: 2, eval_every: 1}
""",
}


class _ImageServer:
    """Serves the dump's images by name; some answer 404, some the same placeholder bytes."""

    def __init__(self, images: dict[str, bytes], missing: set[str], placeholder: set[str]):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (200, 200, 200)).save(buffer, "JPEG")
        self.requests = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                name = self.path.rsplit("/", 1)[-1]
                server.requests[name] += 1
                body = (buffer.getvalue() if name in placeholder
                        else None if name in missing else images.get(name))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "image/jpeg" if body else "text/html")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/originals"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("urls_project"))
    environment = project / "conf" / "urls"
    environment.mkdir()
    for name, text in ENVIRONMENT.items():
        (environment / name).write_text(text)

    dump = project / "data" / "01_raw" / "urls"
    synthesize(dump, DUMP)
    (dump / "generator.npz").unlink()  # a real dump has no generator truth
    images = {path.name: path.read_bytes() for path in (dump / "images").iterdir()}
    shutil.rmtree(dump / "images")  # the images exist only behind their URLs
    names = sorted(images)
    missing, placeholder = set(names[:MISSING]), set(names[MISSING:MISSING + PLACEHOLDERS])
    server = _ImageServer(images, missing, placeholder)
    pins = list(bson.decode_file_iter(open(dump / "subset_iccv_pin_im.bson", "rb")))
    for pin in pins:
        pin["im_url"] = f"{server.base}/{pin['im_name']}"
    (dump / "subset_iccv_pin_im.bson").write_bytes(b"".join(bson.encode(p) for p in pins))
    try:
        kedro(project, "run", "--env=urls", "--pipeline=images")
        kedro(project, "run", "--env=urls")
    finally:
        server.close()
    return project, images, missing, placeholder, server.requests


def test_every_image_is_fetched_once_and_failures_get_their_status(run):
    project, images, missing, placeholder, requests = run
    table = pd.read_parquet(project / "data/02_intermediate/urls/image_downloads.parquet")
    status = table.set_index("image")["status"]
    assert set(status[list(missing)]) == {"http_error"}
    assert set(status[list(placeholder)]) == {"placeholder"}
    good = set(images) - missing - placeholder
    assert set(status[list(good)]) <= {"ok", "exists"}, "exists: the second run found them"
    assert all(requests[name] == 1 for name in images), "one request per image"
    folder = project / "data/01_raw/urls/images"
    kept = {path.name for path in folder.iterdir()}
    assert kept == good, "only whole, valid images land in the folder"
    for name in good:
        assert (folder / name).read_bytes() == images[name]


def test_the_run_drops_the_failed_items_and_reaches_table_2(run):
    project, images, missing, placeholder, _ = run
    items = pd.read_parquet(project / "data/05_model_input/urls/items.parquet")
    assert not set(items["image"]) & (missing | placeholder), "failed items are dropped"
    reports = project / "data/08_reporting/urls"
    table = pd.read_parquet(reports / "performance_table.parquet").set_index("model")
    assert {"pop", "mf_bpr", "vbpr", "amr"} <= set(table.index)
    assert "AMR" in (reports / "table2.md").read_text()
    ceilings = pd.read_parquet(reports / "ceilings.parquet")
    assert set(ceilings["ranker"]) == {"popularity"}, "real-format data: no generator truth"


# ------------------------------------------------------------------- Amazon 2014 and 2018

def _amazon_dump(folder: Path, version: str, base: str) -> dict[str, bytes]:
    """40 users x 6 reviews over 60 Women items (and a Men item), one image per item; the
    2014 meta gives `imUrl`, the 2018 meta `imageURLHighRes` (first URL used) and `imageURL`."""
    import gzip
    import json

    import numpy as np

    rng = np.random.default_rng(3)
    images, meta = {}, []
    for index in range(61):
        asin = f"B{index:04d}"
        buffer = io.BytesIO()
        Image.new("RGB", (48, 40), tuple(int(v) for v in rng.integers(0, 255, 3))).save(
            buffer, "JPEG")
        images[f"{asin}.jpg"] = buffer.getvalue()
        path = ["Clothing, Shoes & Jewelry", "Men" if index == 60 else "Women"]
        url = f"{base}/{asin}.jpg"
        if version == "2014":
            meta.append(repr({"asin": asin, "imUrl": url, "categories": [path]}))
        else:
            meta.append(json.dumps({"asin": asin, "category": path,
                                    "imageURLHighRes": [url, f"{base}/unused.jpg"],
                                    "imageURL": [f"{base}/small.jpg"]}))
    reviews = [json.dumps({"reviewerID": f"U{user}", "asin": f"B{int(item):04d}", "overall": 5.0,
                           "unixReviewTime": 1300000000 + int(item)})
               for user in range(40) for item in rng.choice(60, 6, replace=False)]
    folder.mkdir(parents=True)
    for name, lines in (("reviews.json.gz", reviews), ("meta.json.gz", meta)):
        with gzip.open(folder / name, "wt", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")
    return images


@pytest.mark.parametrize("version", ["2014", "2018"])
def test_amazon_dumps_download_their_images_and_reach_the_features(tmp_path, version):
    project = copy_project(tmp_path / "project")
    dataset = f"amazon{version}"
    environment = project / "conf" / dataset
    environment.mkdir()
    (environment / "globals.yml").write_text(f"dataset: {dataset}\n")
    (environment / "catalog.yml").write_text(f"""
raw_source:
  type: amr_pipeline.datasets.raw.AmazonDataset
  reviews: data/01_raw/{dataset}/reviews.json.gz
  meta: data/01_raw/{dataset}/meta.json.gz
  version: auto
  category_path: ["Clothing, Shoes & Jewelry", "Women"]
image_source:
  type: amr_pipeline.datasets.features.ImageFolderDataset
  path: data/01_raw/{dataset}/images
""")
    (environment / "parameters.yml").write_text("""
data_processing:
  min_user_interactions: 5
  on_missing_image: drop
  candidates: {seed: 2020, n_negatives: 20}
  validation_candidates: {seed: 2021, n_negatives: 20}
images: {download: true, allow_private_addresses: true, min_side: 8, attempts: 1}
features: {precision: float32, engine: tensorflow, image_size: 32, batch_size: 64}
""")
    images: dict[str, bytes] = {}
    server = _ImageServer(images, set(), set())
    images.update(_amazon_dump(project / "data" / "01_raw" / dataset, version, server.base))
    try:
        # the download step is part of data_processing too: one run fetches and extracts
        kedro(project, "run", f"--env={dataset}", "--pipeline=features")
    finally:
        server.close()
    table = pd.read_parquet(project / f"data/02_intermediate/{dataset}/image_downloads.parquet")
    reviewed = {f"{asin}.jpg" for asin in pd.read_json(
        project / "data" / "01_raw" / dataset / "reviews.json.gz", lines=True)["asin"]}
    assert set(table["status"]) == {"ok"}
    assert set(table["image"]) == reviewed - {"B0060.jpg"}, "the reviewed Women items only"
    assert all(url.endswith("/" + image) for url, image in zip(table["url"], table["image"])), (
        "the first URL of each list")
    assert server.requests["unused.jpg"] == server.requests["small.jpg"] == 0
    from amr_pipeline.datasets.features import FeatureMatrixDataset

    features = FeatureMatrixDataset(
        str(project / f"data/04_feature/{dataset}/item_features.arrow")).load()
    items = pd.read_parquet(project / f"data/05_model_input/{dataset}/items.parquet")
    assert sorted(features.item_ids) == sorted(items["item_id"])
    assert features.features.shape[1] == 2048
