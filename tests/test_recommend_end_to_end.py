"""The recommender used the ways a user uses it after `kedro run` (the session fixture
`project` of tests/conftest.py, shared with tests/test_end_to_end.py): the recommendations
parquet, the new-image tables, the registered MLflow model loaded in Python, and
`mlflow models serve` answering good and bad requests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

MODEL_URI = "models:/amr-recommender/latest"


def _environment(project: Path) -> dict:
    return {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(project / "src"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


@pytest.fixture(scope="module")
def recommendations(project) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / "07_model_output" / "demo" /
                           "recommendations.parquet")


@pytest.fixture(scope="module")
def model(project):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.pyfunc.load_model(MODEL_URI)


def test_every_user_gets_top_k_unseen_items(project, recommendations):
    data = project / "data"
    users = pd.read_parquet(data / "03_primary" / "demo" / "users.parquet")
    items = pd.read_parquet(data / "05_model_input" / "demo" / "final_items.parquet")
    train = pd.read_parquet(data / "05_model_input" / "demo" / "final_train.parquet")
    assert (recommendations.groupby("user_raw_id").size() == 20).all()
    assert set(recommendations["user_raw_id"]) == set(users["user_raw_id"])
    seen = train.merge(users, on="user_id").merge(items, on="item_id")
    overlap = recommendations.merge(seen, on=["user_raw_id", "item_raw_id"])
    assert overlap.empty


def test_new_images_are_ranked(project):
    output = project / "data" / "07_model_output" / "demo"
    ranked = pd.read_parquet(output / "new_item_recommendations.parquet")
    assert ranked["image"].unique().tolist() == ["upload.jpg"]
    assert ranked["rank"].tolist() == list(range(1, 21))
    placed = pd.read_parquet(output / "new_item_placements.parquet")
    assert list(placed.columns) == ["user_raw_id", "image", "rank_in_top_n"]
    assert placed["rank_in_top_n"].between(1, 20).all()


def test_the_registered_model_gives_the_recommendations(model, recommendations):
    users = recommendations["user_raw_id"].unique()
    answer = model.predict(pd.DataFrame({"user_raw_id": users}))
    assert list(answer.columns) == ["user_raw_id", "item_raw_ids", "scores"]
    assert answer["user_raw_id"].tolist() == users.tolist()
    grouped = recommendations.groupby("user_raw_id", sort=False)
    expected_items = grouped["item_raw_id"].apply(list).loc[users]
    expected_scores = grouped["score"].apply(list).loc[users]
    assert answer["item_raw_ids"].tolist() == expected_items.tolist()
    np.testing.assert_allclose(np.concatenate(answer["scores"].to_list()),
                               np.concatenate(expected_scores.to_list()), rtol=1e-6)
    shorter = model.predict(pd.DataFrame({"user_raw_id": users[:2]}),
                            params={"top_k": 3})
    assert shorter["item_raw_ids"].tolist() == [items[:3] for items in expected_items[:2]]


def test_unknown_users_are_named_in_the_error(model):
    with pytest.raises(Exception, match="'no-such-user'"):
        model.predict(pd.DataFrame({"user_raw_id": ["no-such-user"]}))
    popular = model.predict(pd.DataFrame({"user_raw_id": ["no-such-user"]}),
                            params={"unknown_users": "popular"})
    assert len(popular["item_raw_ids"][0]) == 20


FRESH_ENVIRONMENT = """
import sys
from pathlib import Path

# as where the project is not installed: no path entry that holds amr_pipeline
sys.path[:] = [entry for entry in sys.path if not (Path(entry or ".") / "amr_pipeline").is_dir()]
try:
    import amr_pipeline  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("amr_pipeline is importable before the model loads")
import mlflow
import pandas as pd

model = mlflow.pyfunc.load_model("models:/amr-recommender/latest")
import amr_pipeline

print("LOCATION", amr_pipeline.__file__)
print("ITEMS", *model.predict(pd.DataFrame({"user_raw_id": [sys.argv[1]]}))["item_raw_ids"][0])
"""


def test_the_model_carries_the_project_and_loads_where_it_is_not_installed(project,
                                                                            recommendations,
                                                                            tmp_path):
    user = recommendations["user_raw_id"].iloc[0]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", FRESH_ENVIRONMENT, user], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    printed = {line.split(" ", 1)[0]: line.split(" ", 1)[1]
               for line in done.stdout.splitlines() if line.startswith(("LOCATION ", "ITEMS "))}
    assert "/code/amr_pipeline/" in printed["LOCATION"], printed
    expected = recommendations[recommendations["user_raw_id"] == user]["item_raw_id"].tolist()
    assert printed["ITEMS"].split() == expected
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    requirements = Path(mlflow.artifacts.download_artifacts(
        f"{MODEL_URI}/requirements.txt", dst_path=str(tmp_path))).read_text()
    assert "kedro-mlflow==" in requirements and "amr-pipeline" not in requirements


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_the_served_model_answers_good_and_bad_requests(project, recommendations):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL_URI, "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=project, env=_environment(project), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "mlflow models serve exited"
                time.sleep(0.5)
        user = recommendations["user_raw_id"].iloc[0]
        status, body = _post(f"{base}/invocations", {
            "dataframe_split": {"columns": ["user_raw_id"], "data": [[user]]},
            "params": {"top_k": 3}})
        assert status == 200, body
        expected = recommendations[recommendations["user_raw_id"] == user]
        [prediction] = body["predictions"]
        assert prediction["user_raw_id"] == user
        assert prediction["item_raw_ids"] == expected["item_raw_id"].tolist()[:3]
        status, body = _post(f"{base}/invocations", {
            "dataframe_split": {"columns": ["user_raw_id"], "data": [["no-such-user"]]}})
        assert 400 <= status < 500 and "no-such-user" in json.dumps(body)
        status, _ = _post(f"{base}/invocations", b"{not json")
        assert status == 400
        status, body = _post(f"{base}/invocations", {"dataframe_split": {"columns": ["x"],
                                                                         "data": [[1]]}})
        assert 400 <= status < 500 and "user_raw_id" in json.dumps(body)
        for top_k, problem in ((0, "positive integer"), (10**9, "at most")):
            status, body = _post(f"{base}/invocations", {
                "dataframe_split": {"columns": ["user_raw_id"], "data": [[user]]},
                "params": {"top_k": top_k}})
            assert 400 <= status < 500 and problem in json.dumps(body), (top_k, status, body)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
