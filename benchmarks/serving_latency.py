"""Latency of the served recommender: ``mlflow models serve`` over HTTP against the same model
called in-process, side by side in one run.

After ``kedro run --pipeline=amr`` the project's MLflow store (``sqlite:///<project>/mlflow.db``,
``conf/base/mlflow.yml``) holds the registered model ``models:/amr-recommender/latest``. This
script:

- starts ``mlflow models serve -m models:/amr-recommender/latest --env-manager local`` on a free
  port of 127.0.0.1 (its own process group, always killed at the end) and waits on ``/ping``;
- loads the same model in this process with ``mlflow.pyfunc.load_model``;
- draws ``--requests`` requests of 1 user and as many of 100 distinct users (seeded by
  ``--seed``) from the users of ``data/07_model_output/demo/recommendations.parquet``;
- after ``--warmup`` untimed requests of each size and path, times every request through both
  paths, interleaved (request i over HTTP, then the same request in-process), so that load
  from other processes on a shared machine hits both alike;
- prints p50 and p99 latency in milliseconds per size and path, and the HTTP overhead (the
  difference of the medians).

HTTP: one keep-alive ``httpx`` client, ``POST /invocations`` with
``{"dataframe_split": {"columns": ["user_raw_id"], "data": [[user], ...]}}`` and no request
parameters (the model's defaults); the time runs from sending the request to having read the
whole response body (the client's JSON decoding is not timed). In-process: the time of
``model.predict(DataFrame)``, which goes through the same signature check and the same
kedro-mlflow pipeline run as the server, without JSON or HTTP. Both log the same: each
prediction is a Kedro run whose INFO lines (rich-formatted) the server writes to its output (a
temporary file here) and this process to /dev/null, so the difference is HTTP and JSON.

A third path repeats each in-process request with the request parameter ``runner:
SequentialRunner``: Kedro's own runner, which logs every node at INFO, instead of the model's
``ServingRunner`` (the baseline of that choice, measured in the same run).

Every answer of every path is checked, outside the timing, against the top-N item lists in
recommendations.parquet for the users asked (in the order asked).

    kedro run --pipeline=amr && python benchmarks/serving_latency.py
    python benchmarks/serving_latency.py --project path/to/project --requests 500 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scale import machine_line

MODEL_NAME = "amr-recommender"
MODEL_URI = f"models:/{MODEL_NAME}/latest"
SIZES = (1, 100)
RUN_COMMAND = "kedro run --pipeline=amr"


def check_project(project: Path, store: str) -> Path:
    """The recommendations parquet; exits naming the command to run when the project has no
    registered model or no recommendations."""
    from mlflow import MlflowClient

    recommendations = project / "data" / "07_model_output" / "demo" / "recommendations.parquet"
    found = False
    if (project / "mlflow.db").exists():
        try:
            found = bool(MlflowClient(tracking_uri=store, registry_uri=store)
                         .search_model_versions(f"name = '{MODEL_NAME}'"))
        except Exception:  # an empty or foreign store: no registered model either way
            found = False
    missing = [] if found else [f"no registered model {MODEL_URI} in {store}"]
    if not recommendations.exists():
        missing.append(f"no {recommendations}")
    if missing:
        sys.exit(f"{'; '.join(missing)}.\nRun `{RUN_COMMAND}` in {project} first, or pass "
                 "--project with the project that ran it.")
    return recommendations


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(project: Path, store: str, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL_URI, "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=project, env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    return server, f"http://127.0.0.1:{port}"


def wait_for_ping(server: subprocess.Popen, base: str, log_path: Path,
                  timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            sys.exit(f"mlflow models serve exited with code {server.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    sys.exit(f"mlflow models serve did not answer {base}/ping within {timeout:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn and its worker), SIGKILL if it lingers."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    except ProcessLookupError:
        pass


def body(users: np.ndarray) -> dict:
    return {"dataframe_split": {"columns": ["user_raw_id"],
                                "data": [[user] for user in users.tolist()]}}


def http_predict(client, base: str, users: np.ndarray) -> tuple[float, bytes]:
    payload = body(users)  # built before the clock starts, as the in-process frame is
    start = time.perf_counter()
    response = client.post(f"{base}/invocations", json=payload)
    content = response.content
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"/invocations answered {response.status_code}: {content[:500]!r}")
    return elapsed, content


def local_predict(model, users: np.ndarray, sink, params: dict | None = None
                  ) -> tuple[float, pd.DataFrame]:
    """``model.predict`` with its console output (Kedro's per-run INFO logs, which the server
    writes to its log) sent to ``sink``."""
    frame = pd.DataFrame({"user_raw_id": users})
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        start = time.perf_counter()
        answer = model.predict(frame, params=params)
        elapsed = time.perf_counter() - start
    return elapsed, answer


KEDRO_RUNNER = {"runner": "SequentialRunner"}
"""The request parameter that runs a prediction with Kedro's own runner, which logs every
node at INFO, instead of the model's default ``ServingRunner``: the baseline of the third
path."""


def check(path: str, users: np.ndarray, got: list[list[str]], expected: pd.Series) -> None:
    want = expected.loc[users].tolist()
    if len(got) != len(want):
        raise AssertionError(f"{path}: {len(got)} answers for {len(want)} users")
    for user, items, wanted in zip(users, got, want):
        if items != wanted:
            raise AssertionError(f"{path}: user {user!r} got {items}, "
                                 f"recommendations.parquet has {wanted}")


def time_both(client, base: str, model, requests: list[np.ndarray], expected: pd.Series,
              warmup: int) -> dict[str, list[float]]:
    """Each request over HTTP then in-process (the first ``warmup`` untimed); every answer
    checked against ``expected`` after its timing."""
    times = {"HTTP": [], "in-process": [], "SequentialRunner": []}
    size = len(requests[0])
    with open(os.devnull, "w") as sink:
        for index, users in enumerate(requests):
            http_time, content = http_predict(client, base, users)
            local_time, answer = local_predict(model, users, sink)
            plain_time, plain = local_predict(model, users, sink, KEDRO_RUNNER)
            if index >= warmup:
                times["HTTP"].append(http_time)
                times["in-process"].append(local_time)
                times["SequentialRunner"].append(plain_time)
            served = [row["item_raw_ids"] for row in json.loads(content)["predictions"]]
            check(f"HTTP, {size} users", users, served, expected)
            check(f"in-process, {size} users", users, answer["item_raw_ids"].tolist(), expected)
            check(f"SequentialRunner, {size} users", users, plain["item_raw_ids"].tolist(),
                  expected)
    return times


def milliseconds(times: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(times) * 1e3, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd(),
                        help="the Kedro project after `kedro run --pipeline=amr` (default: .)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per size and path")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed requests per size and path first")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(machine_line(), flush=True)

    project = arguments.project.resolve()
    store = f"sqlite:///{project / 'mlflow.db'}"
    recommendations_path = check_project(project, store)

    import httpx
    import mlflow

    recommendations = pd.read_parquet(recommendations_path).sort_values(
        ["user_raw_id", "rank"], kind="stable")
    expected = recommendations.groupby("user_raw_id", sort=False)["item_raw_id"].apply(list)
    all_users = expected.index.to_numpy(dtype=object)
    top_k = len(expected.iloc[0])
    rng = np.random.default_rng(arguments.seed)
    requests = {size: [rng.choice(all_users, size, replace=size > len(all_users))
                       for _ in range(arguments.warmup + arguments.requests)]
                for size in SIZES}
    print(f"project {project}: {len(all_users):,} users, top {top_k}; {MODEL_URI}; "
          f"{arguments.requests} timed requests per size and path after {arguments.warmup} "
          f"warm-up, seed {arguments.seed}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "serve.log"
        with open(log_path, "wb") as log:
            start = time.perf_counter()
            server, base = start_server(project, store, log)
            try:
                # load in-process while the server starts (2 cores: each mostly waits on I/O
                # and imports); the server's time to /ping is measured from its start
                mlflow.set_tracking_uri(store)
                loaded = time.perf_counter()
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
                        contextlib.redirect_stderr(sink):  # Kedro's and MLflow's INFO logs
                    model = mlflow.pyfunc.load_model(MODEL_URI)
                load_seconds = time.perf_counter() - loaded
                wait_for_ping(server, base, log_path)
                serve_seconds = time.perf_counter() - start
                print(f"mlflow models serve on {base}: answering /ping after "
                      f"{serve_seconds:.1f} s; in-process load_model {load_seconds:.1f} s",
                      flush=True)
                with httpx.Client(timeout=60) as client:
                    results = {size: time_both(client, base, model, requests[size], expected,
                                               arguments.warmup) for size in SIZES}
            finally:
                stop_server(server)

    print(f"every answer equals recommendations.parquet's top {top_k} for the users asked")
    print(f"{'users/request':>13}  {'path':<44} {'p50 ms':>8} {'p99 ms':>8}")
    for size in SIZES:
        medians = {}
        for path, label in (("HTTP", "HTTP POST /invocations (mlflow models serve)"),
                            ("in-process", "in-process pyfunc predict(DataFrame)"),
                            ("SequentialRunner", "in-process, Kedro's SequentialRunner")):
            p50, p99 = milliseconds(results[size][path])
            medians[path] = p50
            print(f"{size:>13}  {label:<44} {p50:>8.1f} {p99:>8.1f}")
        overhead = medians["HTTP"] - medians["in-process"]
        print(f"{size:>13}  {'HTTP + JSON overhead (difference of p50s)':<44} {overhead:>8.1f} "
              f"{'':>8}  ({overhead / medians['HTTP']:.0%} of the HTTP p50)")


if __name__ == "__main__":
    main()
