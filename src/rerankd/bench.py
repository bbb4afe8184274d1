"""`rerankd bench`: rerankd against the official algorithm, side by side, on this machine.

Every (variant, workload) runs in its own subprocess, so peak RSS (the child's ru_maxrss from wait4)
belongs to that variant alone. Variants: `reference` (the official algorithm, written here: full forward,
full-vocabulary logits, left padding, batch size 8, fp32) and rerankd in `float32`, `bfloat16` and
`int8`. Workloads: A (1 query x 32 documents of ~290 tokens), B (8 queries x 16 documents of 50-500
tokens), C (`rerankd serve` under 8 concurrent clients, 4-16 documents per request, against the same
requests scored offline). The model is a random-weight Qwen3-Reranker-0.6B (full architecture, real
tokenizer), built once under benchmarks/.models/; speed does not depend on weight values.
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

VARIANTS = ("reference", "float32", "bfloat16", "int8")
WORKLOADS = ("A", "B", "C")
DEFAULT_MODEL_DIR = Path("benchmarks/.models/qwen3-reranker-0.6b-random")
REFERENCE_BATCH = 8

_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "an",
    "which",
    "were",
    "are",
    "this",
    "be",
    "had",
    "not",
    "or",
    "have",
    "one",
    "they",
    "first",
    "also",
    "after",
    "who",
    "its",
    "new",
    "has",
    "their",
    "two",
    "but",
    "been",
    "other",
    "when",
    "there",
    "all",
    "during",
    "into",
    "school",
    "time",
    "may",
    "years",
    "more",
    "most",
    "only",
    "over",
    "city",
    "some",
    "world",
    "would",
    "where",
    "later",
    "up",
    "such",
    "used",
    "many",
    "can",
    "state",
    "about",
    "national",
    "out",
    "known",
    "university",
    "united",
    "then",
    "made",
    "he",
    "she",
    "it",
    "team",
    "under",
    "film",
    "system",
    "water",
    "river",
    "between",
    "three",
    "high",
    "number",
    "government",
    "century",
    "history",
    "music",
    "part",
    "series",
    "game",
    "area",
    "early",
    "population",
    "member",
    "group",
    "house",
    "north",
    "south",
    "center",
    "power",
    "energy",
    "market",
    "model",
    "data",
    "study",
    "process",
    "control",
    "design",
    "light",
    "human",
    "cell",
    "protein",
    "gene",
    "climate",
    "ocean",
    "forest",
    "mountain",
    "capital",
    "language",
    "science",
    "research",
    "company",
    "product",
    "service",
    "network",
    "computer",
    "software",
    "language",
    "library",
    "museum",
]

# --- workloads --------------------------------------------------------------------------------------


def _text(rng: random.Random, tokenizer: Any, tokens: int) -> str:
    """Random prose of about `tokens` tokens (counted with the model's tokenizer)."""
    words = [rng.choice(_WORDS) for _ in range(tokens)]
    text = " ".join(words)
    ids = tokenizer.encode(text, add_special_tokens=False)
    while len(ids) > tokens:
        words = words[: max(1, len(words) - max(1, len(ids) - tokens))]
        text = " ".join(words)
        ids = tokenizer.encode(text, add_special_tokens=False)
    return text.capitalize() + "."


def _query(rng: random.Random) -> str:
    return "What " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 12))) + "?"


def make_workloads(tokenizer: Any, quick: bool) -> dict[str, list[dict[str, Any]]]:
    """Fixed (seeded) requests per workload: [{"query", "documents"}]."""
    rng = random.Random(4)
    a_docs = 8 if quick else 32
    b_queries, b_docs = (2, 8) if quick else (8, 16)
    c_requests = 8 if quick else 16
    out: dict[str, list[dict[str, Any]]] = {}
    out["A"] = [{"query": _query(rng), "documents": [_text(rng, tokenizer, 290) for _ in range(a_docs)]}]
    out["B"] = [
        {
            "query": _query(rng),
            "documents": [_text(rng, tokenizer, rng.randint(50, 500)) for _ in range(b_docs)],
        }
        for _ in range(b_queries)
    ]
    queries = [_query(rng) for _ in range(8)]
    out["C"] = [
        {
            "query": rng.choice(queries),
            "documents": [_text(rng, tokenizer, rng.randint(50, 500)) for _ in range(rng.randint(4, 16))],
        }
        for _ in range(c_requests)
    ]
    return out


# --- the model and the machine -------------------------------------------------------------------


def ensure_model(model_dir: Path) -> Path:
    if (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors")):
        return model_dir
    from rerankd.testing.synthetic import build_qwen3_reranker, default_tokenizer_dir

    tok = default_tokenizer_dir()
    if tok is None:
        raise SystemExit(
            "the real Qwen3 tokenizer was not found (set RERANKD_TOKENIZER_DIR); the benchmark needs it"
        )
    typer.echo(f"building a random-weight Qwen3-Reranker-0.6B in {model_dir} (once) ...", err=True)
    return build_qwen3_reranker(model_dir, tokenizer_dir=tok, full_size=True)


def flops_per_token(model_dir: Path) -> float:
    """2 x the parameters outside the embedding (the matrix multiplies every token goes through)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    d = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    return 2.0 * n * per_layer


def measure_peaks(threads: int) -> dict[str, float]:
    """Matrix-multiply GFLOP/s (GOP/s for int8) per dtype, with a big square matmul on all threads."""
    import torch

    torch.set_num_threads(threads)
    n = 2048
    peaks: dict[str, float] = {}

    def timed(fn: Any) -> float:
        fn()
        best = float("inf")
        for _ in range(4):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9

    for name, dt in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        peaks[name] = timed(lambda a=a, b=b: a @ b)
    a8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    try:
        peaks["int8"] = timed(lambda: torch._int_mm(a8, b8))
    except RuntimeError:
        peaks["int8"] = float("nan")
    peaks["reference"] = peaks["float32"]
    return peaks


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "").strip()
        flags = fields.get("Flags", "").split()
        info["flags"] = " ".join(
            f for f in flags if f.startswith(("avx512_bf16", "avx512_vnni", "amx", "avx512f", "avx_vnni"))
        )
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor()
    info["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["load_before"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    import torch

    info["torch"] = torch.__version__
    return info


# --- the reference, written from the official model card ---------------------------------------

_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
_TASK = "Given a web search query, retrieve relevant passages that answer the query"


class _Reference:
    """The official Qwen3-Reranker usage: full forward, full-vocabulary logits, left padding, fp32."""

    def __init__(self, model_dir: str, max_length: int = 8192) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.max_length = max_length
        self.yes = self.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.tokenizer.convert_tokens_to_ids("no")
        self.prefix = self.tokenizer.encode(_PREFIX, add_special_tokens=False)
        self.suffix = self.tokenizer.encode(_SUFFIX, add_special_tokens=False)

    def score(self, query: str, docs: list[str]) -> list[float]:
        torch = self.torch
        texts = [f"<Instruct>: {_TASK}\n<Query>: {query}\n<Document>: {d}" for d in docs]
        out: list[float] = []
        with torch.no_grad():
            for s in range(0, len(texts), REFERENCE_BATCH):
                inputs = self.tokenizer(
                    texts[s : s + REFERENCE_BATCH],
                    padding=False,
                    truncation="longest_first",
                    return_attention_mask=False,
                    max_length=self.max_length - len(self.prefix) - len(self.suffix),
                )
                inputs["input_ids"] = [self.prefix + ids + self.suffix for ids in inputs["input_ids"]]
                batch = self.tokenizer.pad(inputs, padding=True, return_tensors="pt")
                logits = self.model(**batch).logits[:, -1, :]
                pair = torch.stack([logits[:, self.no], logits[:, self.yes]], dim=1).float()
                out += torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().tolist()
        return out


# --- one variant, in its own process -------------------------------------------------------------


def worker(variant: str, model_dir: str, requests_file: str, max_batch_tokens: int) -> dict[str, Any]:
    import resource

    requests = json.loads(Path(requests_file).read_text())
    t0 = time.perf_counter()
    score: Callable[[str, list[str]], list[float]]
    if variant == "reference":
        import torch

        from rerankd.models.loading import cpu_threads

        torch.set_num_threads(cpu_threads())
        ref = _Reference(model_dir)
        score = ref.score
        count = lambda q, docs: sum(  # noqa: E731
            len(ref.prefix) + len(ref.suffix) + len(ids)
            for ids in ref.tokenizer(
                [f"<Instruct>: {_TASK}\n<Query>: {q}\n<Document>: {d}" for d in docs],
                add_special_tokens=False,
            )["input_ids"]
        )
    else:
        from rerankd.reranker import Reranker

        rr = Reranker.from_pretrained(
            model_dir, device="cpu", dtype=variant, max_batch_tokens=max_batch_tokens
        )
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
    }


def _spawn(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], int]:
    """Run `python -m rerankd.bench` in a child; its JSON result and its own peak RSS (KiB)."""
    fd, name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rerankd.bench", *args, "--result", name],
        env={**os.environ, **(env or {})},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = Path(name).read_text()
    Path(name).unlink(missing_ok=True)
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"benchmark child {args[:3]} failed with exit code {proc.returncode}")
    return json.loads(text), usage.ru_maxrss


# --- workload C: the server under concurrency ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_server_load(
    model_dir: str, requests: list[dict[str, Any]], dtype: str, clients: int, max_batch_tokens: int
) -> dict[str, Any]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "rerankd.cli", "serve", "--model", model_dir, "--port", str(port)]
    cmd += ["--dtype", dtype, "--device", "cpu", "--max-batch-tokens", str(max_batch_tokens)]
    cmd += ["--no-ui", "--log-level", "warning"]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}/v1/rerank"
    try:
        deadline = time.monotonic() + 300
        with httpx.Client(timeout=600) as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"`rerankd serve` exited with code {proc.returncode}")
                try:
                    if c.post(url, json={"query": "warm-up", "documents": ["a", "b"]}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("`rerankd serve` did not answer within 300 s")
                time.sleep(0.5)
        results: list[list[float] | None] = [None] * len(requests)
        next_i = iter(range(len(requests)))
        lock = threading.Lock()
        errors: list[str] = []

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
    finally:
        proc.terminate()
        _, _, usage = os.wait4(proc.pid, 0)
    return {
        "seconds": seconds,
        "pairs": sum(len(r["documents"]) for r in requests),
        "scores": results,
        "maxrss_kib": usage.ru_maxrss,
    }


# --- the command ----------------------------------------------------------------------------------


def _csv(value: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def _maxdiff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def bench(
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Model directory (default: build/reuse a random 0.6B)."),
    ] = None,
    workloads: Annotated[str, typer.Option(help="Comma-separated: A, B, C.")] = "A,B,C",
    variants: Annotated[
        str, typer.Option(help="Comma-separated: reference, float32, bfloat16, int8.")
    ] = "reference,float32,bfloat16,int8",
    quick: Annotated[bool, typer.Option("--quick", help="Fewer documents: a run fits in minutes.")] = False,
    max_batch_tokens: Annotated[int, typer.Option(help="rerankd's token budget per batch.")] = 8192,
    server_dtype: Annotated[
        str, typer.Option(help="dtype for workload C's server and offline run.")
    ] = "float32",
    clients: Annotated[int, typer.Option(help="Concurrent clients in workload C.")] = 8,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the results as JSON here.")
    ] = None,
    reference_from: Annotated[
        Path | None,
        typer.Option(
            help="Reuse the reference rows of an earlier --output JSON (same workloads, seeded) instead of "
            "running the reference again."
        ),
    ] = None,
) -> None:
    """Benchmark rerankd against the official algorithm (fp32, full logits, batch 8) on this machine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    wl = _csv(workloads, WORKLOADS)
    vs = _csv(variants, VARIANTS)
    model_dir = ensure_model(model or DEFAULT_MODEL_DIR)
    from transformers import AutoTokenizer

    from rerankd.models.loading import cpu_threads

    info = machine()
    typer.echo(f"machine: {info['cpu']} ({info['cores']} cores; {info['flags']}); load {info['load_before']}")
    peaks = measure_peaks(cpu_threads())
    typer.echo(
        "matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items() if k != "reference")
    )
    fpt = flops_per_token(model_dir)
    weights_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    data = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), quick)
    reused: list[dict[str, Any]] = []
    if reference_from is not None and "reference" not in vs:
        earlier = json.loads(reference_from.read_text())
        if bool(earlier.get("quick")) != quick:
            raise typer.BadParameter("--reference-from: that run used another --quick setting")
        reused = [
            r | {"variant": "reference", "reused": True}
            for r in earlier["rows"]
            if r["variant"] == "reference"
        ]
    with tempfile.TemporaryDirectory(prefix="rerankd-bench-") as tmp_dir:
        rows = _run_all(
            reused,
            Path(tmp_dir),
            model_dir,
            data,
            wl,
            vs,
            peaks,
            fpt,
            weights_bytes,
            max_batch_tokens,
            server_dtype,
            clients,
        )
    info["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    typer.echo("")
    typer.echo(markdown_table(rows))
    typer.echo(
        f"\nweights: {weights_bytes / 2**30:.2f} GiB; {fpt / 1e9:.2f} GFLOP/token; load {info['load_before']:.2f} -> {info['load_after']:.2f}"
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "peaks": peaks, "flops_per_token": fpt, "weights_bytes": weights_bytes}
        payload["argv"] = sys.argv[1:]
        payload["quick"] = quick
        payload["rows"] = rows
        output.write_text(json.dumps(payload, indent=1))


def _run_all(
    reused: list[dict[str, Any]],
    tmp: Path,
    model_dir: Path,
    data: dict[str, list[dict[str, Any]]],
    wl: list[str],
    vs: list[str],
    peaks: dict[str, float],
    fpt: float,
    weights_bytes: int,
    max_batch_tokens: int,
    server_dtype: str,
    clients: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in [w for w in wl if w != "C"]:
        req_file = tmp / f"{name}.json"
        req_file.write_text(json.dumps(data[name]))
        ref_scores: list[list[float]] | None = None
        for old in reused:
            if old["workload"] == name:
                rows.append(old)
                ref_scores = old["scores"]
        for variant in [v for v in VARIANTS if v in vs]:
            res, rss = _spawn(["_worker", variant, str(model_dir), str(req_file), str(max_batch_tokens)])
            if variant == "reference":
                ref_scores = res["scores"]
            if ref_scores is not None and len(ref_scores) != len(res["scores"]):
                raise RuntimeError("the reused reference rows come from other workloads")
            row = {
                "workload": name,
                "variant": variant,
                "pairs": res["pairs"],
                "tokens": res["tokens"],
                "seconds": res["seconds"],
                "pairs_per_s": res["pairs"] / res["seconds"],
                "tokens_per_s": res["tokens"] / res["seconds"],
                "peak_fraction": res["tokens"] * fpt / res["seconds"] / 1e9 / peaks[variant],
                "peak_rss_gib": rss / 2**20,
                "rss_over_weights": rss * 1024 / weights_bytes,
                "max_diff": _maxdiff(res["scores"], ref_scores) if ref_scores is not None else None,
                "scores": res["scores"],
            }
            rows.append(row)
            _print_row(row, rows)
    if "C" in wl:
        req_file = tmp / "C.json"
        req_file.write_text(json.dumps(data["C"]))
        off, rss = _spawn(["_worker", server_dtype, str(model_dir), str(req_file), str(max_batch_tokens)])
        offline = {
            "workload": "C",
            "variant": f"{server_dtype} offline",
            "pairs": off["pairs"],
            "tokens": off["tokens"],
            "seconds": off["seconds"],
            "pairs_per_s": off["pairs"] / off["seconds"],
            "tokens_per_s": off["tokens"] / off["seconds"],
            "peak_fraction": off["tokens"] * fpt / off["seconds"] / 1e9 / peaks[server_dtype],
            "peak_rss_gib": rss / 2**20,
            "rss_over_weights": rss * 1024 / weights_bytes,
            "max_diff": None,
            "scores": off["scores"],
        }
        rows.append(offline)
        _print_row(offline, rows)
        try:
            srv = run_server_load(str(model_dir), data["C"], server_dtype, clients, max_batch_tokens)
        except (RuntimeError, OSError) as e:
            typer.echo(f"workload C (server): not measured: {e}", err=True)
        else:
            row = {
                "workload": "C",
                "variant": f"{server_dtype} server x{clients}",
                "pairs": srv["pairs"],
                "tokens": off["tokens"],
                "seconds": srv["seconds"],
                "pairs_per_s": srv["pairs"] / srv["seconds"],
                "tokens_per_s": off["tokens"] / srv["seconds"],
                "peak_fraction": off["tokens"] * fpt / srv["seconds"] / 1e9 / peaks[server_dtype],
                "peak_rss_gib": srv["maxrss_kib"] / 2**20,
                "rss_over_weights": srv["maxrss_kib"] * 1024 / weights_bytes,
                "max_diff": _maxdiff(srv["scores"], off["scores"]),
                "vs_offline": (srv["pairs"] / srv["seconds"]) / offline["pairs_per_s"],
                "scores": srv["scores"],
            }
            rows.append(row)
            _print_row(row, rows)
    return rows


def _print_row(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    ref = next((r for r in rows if r["workload"] == row["workload"] and r["variant"] == "reference"), None)
    speed = f" ({row['pairs_per_s'] / ref['pairs_per_s']:.2f}x ref)" if ref else ""
    diff = f", max diff {row['max_diff']:.2e}" if row["max_diff"] is not None else ""
    typer.echo(
        f"[{row['workload']}] {row['variant']}: {row['pairs_per_s']:.2f} pairs/s{speed}, "
        f"{row['tokens_per_s']:.0f} tok/s, {100 * row['peak_fraction']:.0f}% of peak, "
        f"RSS {row['peak_rss_gib']:.2f} GiB{diff}",
        err=True,
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | variant | pairs | tokens | s | pairs/s | x ref | tokens/s | % matmul peak | peak RSS GiB "
        "| RSS / weights | max diff |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ref = next((x for x in rows if x["workload"] == r["workload"] and x["variant"] == "reference"), None)
        if "vs_offline" in r:
            speed = f"{r['vs_offline']:.2f}x offline"
        else:
            speed = f"{r['pairs_per_s'] / ref['pairs_per_s']:.2f}" if ref else "-"
        diff = f"{r['max_diff']:.1e}" if r["max_diff"] is not None else "-"
        lines.append(
            f"| {r['workload']} | {r['variant']}{' (earlier run)' if r.get('reused') else ''} | {r['pairs']} | {r['tokens']} | {r['seconds']:.1f} "
            f"| {r['pairs_per_s']:.2f} | {speed} | {r['tokens_per_s']:.0f} | {100 * r['peak_fraction']:.0f}% "
            f"| {r['peak_rss_gib']:.2f} | {r['rss_over_weights']:.2f} | {diff} |"
        )
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    """`python -m rerankd.bench _worker VARIANT MODEL REQUESTS BUDGET --result FILE` (internal)."""
    if len(argv) == 7 and argv[0] == "_worker" and argv[5] == "--result":
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        result = worker(argv[1], argv[2], argv[3], int(argv[4]))
        Path(argv[6]).write_text(json.dumps(result))
        return
    typer.run(bench)


if __name__ == "__main__":
    _main(sys.argv[1:])
