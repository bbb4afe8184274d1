"""Running the variants. Each (variant, workload) runs in its own child process (`python -m rerankd.bench
_worker ...`), so the peak RSS read from wait4 belongs to that variant alone; workload C runs a real
`rerankd serve` (the same launcher as the tests) under concurrent clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerankd.allocator import loaded
from rerankd.bench.machine import Limits
from rerankd.bench.peers import PEERS, load_peer, prepare
from rerankd.bench.report import BenchRow, progress_line
from rerankd.bench.workloads import Request

# reference: the official algorithm, fp32. auto: what dtype="auto" loads on this machine.
# bfloat16+compile: bf16 with rerankd.models.fused (inductor-compiled norms, MLP, RoPE).
# st-crossencoder, openvino: the peers (rerankd.bench.peers), on the same model, when installed.
# *-eager: that dtype with RERANKD_FUSED=off (transformers' forwards, no rerankd.models.kernels).
VARIANTS = (
    "reference",
    "float32",
    "float32-eager",
    "bfloat16",
    "bfloat16-eager",
    "bfloat16+compile",
    "int8",
    "auto",
    "st-crossencoder",
    "openvino",
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """Everything one `rerankd bench` run measures, and against what."""

    model_dir: Path
    requests: dict[str, list[Request]]
    workloads: list[str]
    variants: list[str]
    limits: Limits
    max_batch_tokens: int
    server_dtype: str
    clients: int
    reused: list[BenchRow]  # reference rows of an earlier run, in place of running the reference
    peer_python: str | None = None  # the interpreter the peers' children run under (default: this one)
    # Workload C's environment, for its offline child and its server alike: on the malloc `rerankd serve`
    # runs on (rerankd.allocator.serve_env), so the two rows compare like with like. A and B run on this
    # process's malloc, as a library user's would (and OpenVINO aborts under a preloaded jemalloc).
    serve_env: dict[str, str] | None = None


# --- in the child ---------------------------------------------------------------------------------


def worker(variant: str, model_dir: str, requests_file: str, max_batch_tokens: int) -> dict[str, Any]:
    """Load one variant, warm it up, then score every request in order; times, counts and scores."""
    import resource

    requests = json.loads(Path(requests_file).read_text())
    t0 = time.perf_counter()
    score: Callable[[str, list[str]], list[float]]
    count: Callable[[str, list[str]], int]
    extra: dict[str, Any] = {"dtype": "float32"}
    if variant in PEERS:
        peer = load_peer(variant, model_dir)
        if isinstance(peer, str):
            return {"variant": variant, "skipped": peer}
        score, count, facts = peer
        extra |= facts | {"python": sys.executable}
    elif variant == "reference":
        import torch

        from rerankd.models.loading import cpu_threads
        from rerankd.testing.reference import ReferenceQwen3Reranker

        torch.set_num_threads(cpu_threads())  # what rerankd's loader does, so both use every core
        ref = ReferenceQwen3Reranker(model_dir)
        score, count = ref.score, ref.count_tokens
    else:
        from rerankd.config import BatchConfig, ModelConfig
        from rerankd.reranker import load_reranker

        dtype = "bfloat16" if variant == "bfloat16+compile" else variant.removesuffix("-eager")
        if variant.endswith("-eager"):
            os.environ["RERANKD_FUSED"] = "off"  # this child only
        config = ModelConfig(model=model_dir, device="cpu", dtype=dtype)
        rr = load_reranker(config, BatchConfig(max_batch_tokens=max_batch_tokens))
        extra["dtype"] = rr.info.dtype  # what auto resolved to; int8's matmuls are set against int8's peak
        if variant == "bfloat16+compile":
            from rerankd.models.fused import maybe_compile

            compiled = maybe_compile(getattr(rr.scorer, "model"), "on")  # noqa: B009 - not on Scorer
            extra |= {"compiled": compiled.compiled, "compile_seconds": compiled.seconds}
            extra["compile_reason"] = compiled.reason
        score = lambda q, docs: rr.score(q, docs)  # noqa: E731
        count = lambda q, docs: sum(len(e) for e in rr.encode(q, docs))  # noqa: E731
    load_s = time.perf_counter() - t0
    score("warm-up", ["a short document", "another one"])
    tokens = sum(count(r["query"], r["documents"]) for r in requests)
    t = time.perf_counter()
    scores = [score(r["query"], r["documents"]) for r in requests]
    seconds = time.perf_counter() - t
    return {
        "variant": variant,
        "seconds": seconds,
        "load_seconds": load_s,
        "pairs": sum(len(r["documents"]) for r in requests),
        "tokens": tokens,
        "scores": scores,
        "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "allocator": loaded(),
    } | extra


def worker_main(argv: list[str]) -> bool:
    """`python -m rerankd.bench _worker VARIANT MODEL REQUESTS BUDGET --result FILE`, or `_prepare PEER
    MODEL --result FILE` (a peer's one-off copy of the model); False if neither."""
    if len(argv) == 7 and argv[0] == "_worker" and argv[5] == "--result":
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        result = worker(argv[1], argv[2], argv[3], int(argv[4]))
    elif len(argv) == 5 and argv[0] == "_prepare" and argv[3] == "--result":
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        result = prepare(argv[1], argv[2])
    else:
        return False
    Path(argv[-1]).write_text(json.dumps(result))
    return True


# --- in the parent --------------------------------------------------------------------------------


def spawn(
    variant: str,
    model_dir: Path,
    requests_file: Path,
    max_batch_tokens: int,
    python: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run one variant in a child; its JSON result and its own peak RSS (KiB)."""
    args = ["_worker", variant, str(model_dir), str(requests_file), str(max_batch_tokens)]
    return _child(args, python, env)


def _child(
    args: list[str], python: str | None, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], int]:
    """`python -m rerankd.bench ARGS --result FILE` under `python` (default: this interpreter), with this
    rerankd first on its path, so another venv (a peer's) runs the same code; its JSON and peak RSS.
    `env`: the child's environment (default: this process's)."""
    path_dir = None
    if python is not None:
        # A directory holding only this rerankd (a link to it): the directory above the package may be a
        # site-packages, whose torch and transformers would shadow the other venv's own.
        path_dir = tempfile.mkdtemp(prefix="rerankd-peer-path-")
        os.symlink(Path(__file__).resolve().parents[1], Path(path_dir) / "rerankd")
        base = os.environ if env is None else env
        env = {
            **base,
            "PYTHONPATH": os.pathsep.join(p for p in (path_dir, base.get("PYTHONPATH")) if p),
        }
    fd, name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "rerankd.bench", *args, "--result", name], env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if path_dir is not None:
            shutil.rmtree(path_dir, ignore_errors=True)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = Path(name).read_text()
    Path(name).unlink(missing_ok=True)
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"benchmark child {args[:3]} failed with exit code {proc.returncode}")
    return json.loads(text), usage.ru_maxrss


def server_load(
    model_dir: Path,
    requests: list[Request],
    *,
    dtype: str,
    clients: int,
    max_batch_tokens: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`rerankd serve` under `clients` concurrent clients sending `requests`: time, scores, server RSS."""
    import httpx

    from rerankd.testing.servers import rerankd_server

    args = ["--dtype", dtype, "--device", "cpu", "--max-batch-tokens", str(max_batch_tokens)]
    args += ["--no-ui", "--log-level", "warning"]
    results: list[list[float]] = [[] for _ in requests]
    next_i = iter(range(len(requests)))
    lock = threading.Lock()
    errors: list[str] = []
    with rerankd_server(model_dir, *args, log_dir=log_dir, ready_timeout=300, env=env) as server:
        url = f"{server.url}/v1/rerank"
        # What the server loaded (`auto` resolves in its own process): the row is labelled with it.
        cards = httpx.get(f"{server.url}/v1/models", timeout=60)
        if cards.status_code != 200:  # e.g. RERANKD_API_KEY set: the rerank requests would fail alike
            raise RuntimeError(f"GET /v1/models: {cards.status_code}: {cards.text[:200]}")
        served_dtype = cards.json()["data"][0]["dtype"]

        def client() -> None:
            with httpx.Client(timeout=600) as c:
                while True:
                    with lock:
                        i = next(next_i, None)
                    if i is None:
                        return
                    r = c.post(url, json=requests[i])
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    scores = [0.0] * len(requests[i]["documents"])
                    for item in r.json()["results"]:
                        scores[item["index"]] = item["relevance_score"]
                    results[i] = scores

        threads = [threading.Thread(target=client) for _ in range(clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return {
        "seconds": seconds,
        "pairs": sum(len(r["documents"]) for r in requests),
        "scores": results,
        "maxrss_kib": server.maxrss_kib or 0,
        "dtype": served_dtype,
    }


def run_all(plan: RunPlan, tmp: Path, say: Say) -> list[BenchRow]:
    """Every asked-for (workload, variant) row, in order: A and B offline, then C (offline, then served)."""
    rows: list[BenchRow] = []

    def add(row: BenchRow) -> None:
        rows.append(row)
        say(progress_line(row, rows))

    prepared: dict[str, dict[str, Any]] = {}  # each peer's copy of the model, checked once per run
    for name in [w for w in plan.workloads if w != "C"]:
        req_file = tmp / f"{name}.json"
        req_file.write_text(json.dumps(plan.requests[name]))
        ref_scores: list[list[float]] | None = None
        for old in plan.reused:
            if old.workload == name:
                rows.append(old)
                ref_scores = old.scores
        for variant in [v for v in VARIANTS if v in plan.variants]:
            python = plan.peer_python if variant in PEERS else None
            try:
                if variant in PEERS:
                    if variant not in prepared:
                        prepared[variant] = _prepare_peer(variant, plan, python, say)
                    ready = prepared[variant]
                    if "skipped" in ready:
                        say(f"[{name}] {variant}: skipped ({ready['skipped']})")
                        continue
                res, rss = spawn(variant, plan.model_dir, req_file, plan.max_batch_tokens, python)
            except RuntimeError as e:
                if variant not in PEERS:
                    raise
                say(f"[{name}] {variant}: skipped (it failed: {e})")  # a peer's failure is not rerankd's
                continue
            if "skipped" in res:
                say(f"[{name}] {variant}: skipped ({res['skipped']})")
                continue
            if variant == "reference":
                ref_scores = res["scores"]
            if ref_scores is not None and len(ref_scores) != len(res["scores"]):
                raise RuntimeError("the reused reference rows come from other workloads")
            if variant == "bfloat16+compile":
                say(f"[{name}] {variant}: {res['compile_reason']}, warm-up {res['compile_seconds']:.1f} s")
            if variant in PEERS:
                say(f"[{name}] {variant}: {_peer_facts(res)}")
            label = f"auto={res['dtype']}" if variant == "auto" else variant
            label = f"openvino={res['dtype']}" if variant == "openvino" else label
            dtype = "float32" if variant == "reference" else res["dtype"]
            add(_row(name, label, res, rss, plan, dtype=dtype, compared_with=ref_scores))
    if "C" in plan.workloads:
        req_file = tmp / "C.json"
        req_file.write_text(json.dumps(plan.requests["C"]))
        off, rss = spawn(
            plan.server_dtype, plan.model_dir, req_file, plan.max_batch_tokens, env=plan.serve_env
        )
        dtype = off["dtype"]  # what `auto` resolved to in the offline child
        name = f"auto={dtype}" if plan.server_dtype == "auto" else plan.server_dtype
        offline = _row("C", f"{name} offline", off, rss, plan, dtype=dtype)
        say(f"[C] offline: malloc {off['allocator']}")
        add(offline)
        try:
            srv = server_load(
                plan.model_dir,
                plan.requests["C"],
                dtype=plan.server_dtype,
                clients=plan.clients,
                max_batch_tokens=plan.max_batch_tokens,
                log_dir=tmp,
                env=plan.serve_env,
            )
        except (RuntimeError, OSError) as e:
            say(f"workload C (server): not measured: {e}")
        else:
            # The server is sent the same requests as the offline run, so it reads the same tokens.
            served = srv | {"tokens": off["tokens"]}
            # `auto` resolves per process (a timing where the CPU has no AMX): say it if the two differ.
            label = f"auto={srv['dtype']}" if plan.server_dtype == "auto" else plan.server_dtype
            variant = f"{label} server x{plan.clients}"
            if srv["dtype"] != dtype:
                say(f"[C] the server loaded {srv['dtype']}, the offline run {dtype}: not like with like")
            vs = (srv["pairs"] / srv["seconds"]) / offline.pairs_per_s
            rss = srv["maxrss_kib"]
            add(
                _row(
                    "C",
                    variant,
                    served,
                    rss,
                    plan,
                    dtype=srv["dtype"],
                    compared_with=off["scores"],
                    vs_offline=vs,
                )
            )
    return rows


def _prepare_peer(variant: str, plan: RunPlan, python: str | None, say: Say) -> dict[str, Any]:
    """The peer's copy of the model, made once (in a child of its own: not timed, not in any row's RSS)."""
    ready, _ = _child(["_prepare", variant, str(plan.model_dir)], python)
    if ready.get("made"):
        say(f"{variant}: made its copy of the model in {ready['seconds']:.0f} s: {ready['cache']}")
    return ready


def _peer_facts(res: dict[str, Any]) -> str:
    facts = [f"python {res['python']}"]
    if "precision" in res:
        facts.append(f"OpenVINO {res['openvino']}, inference precision {res['precision']}")
    return "; ".join(facts)


def _row(
    workload: str,
    variant: str,
    result: dict[str, Any],
    rss_kib: int,
    plan: RunPlan,
    *,
    dtype: str,
    compared_with: list[list[float]] | None = None,
    vs_offline: float | None = None,
) -> BenchRow:
    return BenchRow.measured(
        workload,
        variant,
        pairs=result["pairs"],
        tokens=result["tokens"],
        seconds=result["seconds"],
        rss_kib=rss_kib,
        scores=result["scores"],
        limits=plan.limits,
        dtype=dtype,
        compared_with=compared_with,
        vs_offline=vs_offline,
    )
