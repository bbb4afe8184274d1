"""Scale-out on a local Ray instance with the tiny model: `rerankd serve --ray` with two replicas (both
serve, visible in /metrics) and the web UI at /ui, a replica killed under load is replaced and no
request is lost (the client retries the 503s), SIGTERM drains and exits 0; `rerankd batch --ray` gives
the one-process scores and resumes a partial output. One Ray instance for the module; deselect with
`-m "not ray"`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerankd import Reranker
from rerankd.testing.servers import RunningServer, free_port, wait_until_ready
from tests.integration.test_batch import check_output, make_records, write_jsonl

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rerankd[ray]'")
pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'rerankd[ray]'")

KEY = "ray-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCS = ["Beijing is the capital of China.", "Gravity is a force.", "pandas is a Python library."]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small local Ray instance, shared by the module (its address lets subprocesses join it)."""
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        object_store_memory=150 * 1024 * 1024,
        logging_level="warning",
        log_to_driver=False,
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        with contextlib.suppress(Exception):
            from ray import serve

            serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_server(
    ray_address: str, qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`rerankd serve --ray --replicas 2` joined to the module's Ray instance, the web UI mounted as in
    one process."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("ray-logs") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RERANKD_RAY_NUM_CPUS": "0.5"}
    cmd = [
        sys.executable,
        "-m",
        "rerankd.cli",
        "serve",
        "--ray",
        "--replicas",
        "2",
        "--ray-address",
        ray_address,
        "--model",
        str(qwen3_dir),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--drain-timeout",
        "20",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until_ready(server, timeout=240)
        yield server
    finally:
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                server.stop(signal.SIGTERM, timeout=60)
        if proc.poll() is None:
            proc.kill()


def replica_counts(server: RunningServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^rerankd_replica_requests_total\{replica="([^"]+)"\} (\S+)$', text, re.M)
    }


def model_replica_actors() -> set[str]:
    """Names of the model deployment's live replica actors (no dashboard needed)."""
    return {
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and a["name"].startswith("SERVE_REPLICA::rerankd#Model#")
    }


def test_two_replicas_both_serve(ray_server: RunningServer, qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.score("capital of China", DOCS)
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=60) as http:
            for _ in range(8):
                r = http.post(
                    f"{ray_server.url}/v1/rerank",
                    json={"query": "capital of China", "documents": DOCS},
                    headers=AUTH,
                )
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                    continue
                scores = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
                if [scores[i] for i in range(3)] != pytest.approx(expected, abs=1e-5):
                    failures.append(f"scores {scores} != {expected}")

    # /ready means one replica is up; on a cold machine the second may take longer to start. Wait for
    # both replica actors (bounded), so that the load below is spread by Serve's router, not by luck.
    deadline = time.monotonic() + 120
    while len(model_replica_actors()) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    before = sum(replica_counts(ray_server).values())
    for _ in range(3):  # rounds of 6 clients x 8 requests until both replicas have answered some
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = replica_counts(ray_server)
        if len(counts) == 2 and all(n > 0 for n in counts.values()):
            break
    assert not failures, failures[:3]
    assert len(counts) == 2 and all(n > 0 for n in counts.values()), counts
    assert sum(counts.values()) - before >= 48
    # Same auth and routes as the single-process server.
    assert (
        httpx.post(f"{ray_server.url}/v1/rerank", json={"query": "q", "documents": ["d"]}).status_code == 401
    )
    score = httpx.post(
        f"{ray_server.url}/score",
        json={"text_1": "capital of China", "text_2": DOCS},
        headers=AUTH,
        timeout=30,
    )
    assert [d["score"] for d in score.json()["data"]] == pytest.approx(expected, abs=1e-5)
    assert httpx.get(f"{ray_server.url}/v1/models", headers=AUTH).json()["data"][0]["templated"] is True


def test_the_ui_is_served_under_ray(ray_server: RunningServer) -> None:
    """The ingress takes the same mounts as the one-process app: the page at /ui, without a key (the
    page asks for it), and its config names the server's model."""
    page = httpx.get(f"{ray_server.url}/ui/", timeout=30)
    assert page.status_code == 200, page.text[:500]
    assert "text/html" in page.headers["content-type"] and "gradio" in page.text.lower()
    config = httpx.get(f"{ray_server.url}/ui/config", timeout=30)
    assert config.status_code == 200 and "components" in config.json()
    assert "Rank" in config.text and "rr-api-key" in config.text
    assert httpx.get(f"{ray_server.url}/nowhere", headers=AUTH).status_code == 404


def test_killed_replica_is_replaced_and_no_request_is_lost(ray_server: RunningServer) -> None:
    from rerankd.client import RerankClient

    results: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        with RerankClient(ray_server.url, api_key=KEY, max_retries=20, timeout=60) as client:
            while not stop.is_set():
                try:
                    results.append(len(client.score("capital of China", DOCS)))
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")

    before = model_replica_actors()
    assert len(before) == 2
    statuses_before = _statuses(ray_server)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        victim = sorted(before)[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        time.sleep(4)  # keep the load on while the controller notices and replaces it
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert not errors, errors[:3]
    assert len(results) > 10 and all(n == 3 for n in results)

    from ray import serve

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = model_replica_actors()
        states: dict[Any, int] = dict(
            serve.status().applications["rerankd"].deployments["Model"].replica_states
        )
        if len(now) == 2 and victim not in now and states.get("RUNNING") == 2:
            break
        time.sleep(1)
    assert len(now) == 2 and victim not in now, f"not replaced: {now}"
    assert states.get("RUNNING") == 2, states
    assert victim.rsplit("#", 1)[1] in replica_counts(ray_server)  # it was serving when killed
    # The replacement serves too: concurrent load reaches both live replicas.
    for _ in range(5):
        threads = [threading.Thread(target=_burst, args=(ray_server,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if len(replica_counts(ray_server)) >= 3:
            break
    assert len(replica_counts(ray_server)) >= 3, replica_counts(ray_server)
    retried = _statuses(ray_server).get("503", 0) - statuses_before.get("503", 0)
    print(f"requests answered 503 while the replica was replaced: {retried}")


def _burst(server: RunningServer) -> None:
    from rerankd.client import RerankClient

    with RerankClient(server.url, api_key=KEY, max_retries=20) as client:
        for _ in range(4):
            client.score("capital", DOCS)


def _statuses(server: RunningServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text
    out: dict[str, float] = {}
    for m in re.finditer(r'^rerankd_requests_total\{route="/v1/rerank",status="(\d+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def test_sigterm_drains_and_exits_zero(ray_server: RunningServer) -> None:
    assert ray_server.stop(signal.SIGTERM, timeout=90) == 0, ray_server.log()[-3000:]
    assert "draining" in ray_server.log()
    from ray import serve

    assert "rerankd" not in serve.status().applications


def test_two_models_each_with_its_own_replicas(
    ray_address: str,
    qwen3_dir: Path,
    cross_encoder_dir: Path,
    qwen3_reranker: Reranker,
    tmp_path: Path,
) -> None:
    """`serve --ray` with two models: a deployment per model (Model, Model-2), the request's `model`
    picks one, and each answers as the library does on its weights. After the drain test: the app name
    is the same, and Serve starts afresh on this test's port."""
    from ray import serve

    serve.shutdown()  # the module's earlier server left Serve's proxy on its own port
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RERANKD_RAY_NUM_CPUS": "0.5"}
    cmd = [sys.executable, "-m", "rerankd.cli", "serve", "--ray", "--ray-address", ray_address]
    cmd += ["--model", str(qwen3_dir), "--model", str(cross_encoder_dir), "--served-model-name", "qwen"]
    cmd += [
        "--served-model-name",
        "ce",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-ui",
        "--port",
        str(port),
    ]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until_ready(server, timeout=240)
        deployments = serve.status().applications["rerankd"].deployments
        assert {"Model", "Model-2"} <= set(deployments), deployments
        cards = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
        assert [(c["id"], c["family"]) for c in cards] == [("qwen", "yes_no"), ("ce", "cross_encoder")]
        cross_encoder = Reranker.from_pretrained(str(cross_encoder_dir), device="cpu", dtype="float32")
        for name, reference in (("qwen", qwen3_reranker), ("ce", cross_encoder)):
            r = httpx.post(
                f"{server.url}/v1/rerank",
                json={"model": name, "query": "capital", "documents": DOCS},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
            assert [got[i] for i in range(len(DOCS))] == pytest.approx(
                reference.score("capital", DOCS), abs=1e-5
            )
        r = httpx.post(
            f"{server.url}/v1/rerank", json={"model": "x", "query": "q", "documents": ["d"]}, timeout=30
        )
        assert r.status_code == 404 and "'ce'" in r.json()["message"]
        assert server.stop(signal.SIGTERM, timeout=90) == 0, server.log()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_batch_on_ray_matches_one_process_and_resumes(
    ray_address: str, tmp_path: Path, qwen3_dir: Path, qwen3_reranker: Reranker
) -> None:
    records = make_records(23)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    # An earlier run that was interrupted: three lines out, the fourth cut short.
    head = [
        json.dumps(
            {
                "line": n,
                "id": records[n - 1].get("id"),
                "scores": qwen3_reranker.score(str(records[n - 1]["query"]), records[n - 1]["documents"]),
            }
        )
        for n in (1, 2, 3)
    ]
    out.write_text("\n".join(head) + "\n" + head[0][:20])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rerankd.cli",
            "batch",
            "--ray",
            "--ray-address",
            ray_address,
            "--input",
            str(src),
            "--output",
            str(out),
            "--model",
            str(qwen3_dir),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--concurrency",
            "2",
            "--num-cpus",
            "1",
            "--batch-size",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 scored now" in result.stderr and "3 already in" in result.stderr
    check_output(out, records, qwen3_reranker)
