"""`rerankd bench`: rerankd against the official algorithm, side by side, on this machine.

Every (variant, workload) runs in its own subprocess, so peak RSS (the child's ru_maxrss from wait4)
belongs to that variant alone. Variants: `reference` (the official algorithm, `rerankd.testing.reference`:
full forward, full-vocabulary logits, left padding, batch size 8, fp32) and rerankd in `float32`,
`bfloat16` and `int8`. Workloads: A (1 query x 32 documents of ~290 tokens), B (8 queries x 16 documents
of 50-500 tokens), C (`rerankd serve` under 8 concurrent clients, 4-16 documents per request, against the
same requests scored offline). The model is a random-weight Qwen3-Reranker-0.6B (full architecture, real
tokenizer), built once under benchmarks/.models/; speed does not depend on weight values.

Modules: `workloads` (the model and the seeded requests), `machine` (CPU facts, matmul peaks, limits),
`runner` (variants in child processes, the server under load), `report` (BenchRow, table, JSON).
Also measured: `auto` (whatever dtype="auto" loads here, named in its row), `float32-eager` and
`bfloat16-eager` (RERANKD_FUSED=off: without rerankd.models.kernels), `bfloat16+compile` (bf16 with
rerankd.models.fused: inductor-compiled norms, MLP and RoPE; warm-up outside the timed part) and the
peers on the same model (`peers`): sentence-transformers' CrossEncoder on a seq-cls copy, and OpenVINO,
each when installed in the interpreter their children run under (`--peer-python`). The header names the
CPU's features (AMX, avx512_bf16, VNNI) and the dtype `auto` would pick from them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from rerankd.bench.peers import PEERS
from rerankd.bench.report import BenchRow, markdown_table
from rerankd.bench.runner import VARIANTS, RunPlan, run_all
from rerankd.bench.workloads import DEFAULT_MODEL_DIR, WORKLOADS, ensure_model, make_workloads
from rerankd.config import DEFAULT_MAX_BATCH_TOKENS

DEFAULT_VARIANTS = (
    "reference",
    "float32",
    "bfloat16",
    "bfloat16+compile",
    "int8",
    "auto",
    "st-crossencoder",
    "openvino",
)
# Above this checkpoint size a default run leaves the peers out: their one-off copies of an 8B model
# would take ~32 GB of disk each and more RAM to make (OpenVINO's is traced and saved in fp32).
PEERS_BY_DEFAULT_MAX_GIB = 4


def _csv(value: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def _say(text: str) -> None:
    typer.echo(text, err=True)


def _reused_reference(path: Path | None, variants: list[str], quick: bool) -> list[BenchRow]:
    """The reference rows of an earlier --output JSON, unless this run measures the reference itself."""
    if path is None or "reference" in variants:
        return []
    earlier = json.loads(path.read_text())
    if bool(earlier.get("quick")) != quick:
        raise typer.BadParameter("--reference-from: that run used another --quick setting")
    return [
        replace(BenchRow.from_json(r), reused=True) for r in earlier["rows"] if r["variant"] == "reference"
    ]


def bench(
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model directory (default: build/reuse a random 0.6B); repeatable: each model is "
            "benchmarked in turn in this run, with its own table.",
        ),
    ] = None,
    workloads: Annotated[str, typer.Option(help="Comma-separated: A, B, C.")] = "A,B,C",
    variants: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: "
            + ", ".join(VARIANTS)
            + f". Default: {','.join(DEFAULT_VARIANTS)} (the peers only for checkpoints up to "
            f"{PEERS_BY_DEFAULT_MAX_GIB} GiB: each makes a copy of its own, in fp32 for OpenVINO; name them "
            "to run them on a bigger one)."
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer documents: a run fits in minutes.")] = False,
    max_batch_tokens: Annotated[
        int, typer.Option(help="rerankd's token budget per batch.")
    ] = DEFAULT_MAX_BATCH_TOKENS,
    server_dtype: Annotated[
        str, typer.Option(help="dtype for workload C's server and offline run (default: what users get).")
    ] = "auto",
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
    peer_python: Annotated[
        str | None,
        typer.Option(
            envvar="RERANKD_BENCH_PEER_PYTHON",
            help="Python interpreter for the peers' children (st-crossencoder, openvino), e.g. a venv with "
            "openvino; this rerankd's src goes first on its path. Default: this interpreter.",
        ),
    ] = None,
) -> None:
    """Benchmark rerankd against the official algorithm (fp32, full logits, batch 8) on this machine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    wl = _csv(workloads, WORKLOADS)
    vs = _csv(variants or ",".join(DEFAULT_VARIANTS), VARIANTS)
    dirs = list(model or [DEFAULT_MODEL_DIR])
    if len(dirs) > 1 and reference_from is not None:
        raise typer.BadParameter("--reference-from holds one model's reference rows: give one --model")
    model_dirs = [ensure_model(d, say=_say) for d in dirs]
    from rerankd.bench.machine import load_average, machine
    from rerankd.models.cpu import CpuFeatures, bf16_speedup, pick_dtype

    info = machine()
    typer.echo(f"machine: {info['cpu']} ({info['cores']} cores; {info['flags']}); load {info['load_before']}")
    features = CpuFeatures.detect()
    picked, why = pick_dtype("cpu", features)
    info |= {"features": features.as_dict(), "auto_pick": [picked, why], "bf16_gemm_x_fp32": bf16_speedup()}
    typer.echo(f"CPU features: {features.summary()}")
    typer.echo(f"dtype auto would pick: {picked} ({why})")
    from rerankd import allocator

    env = allocator.serve_env(os.environ)  # workload C's two rows: on the malloc `rerankd serve` runs on
    info["allocator"] = {"A,B": allocator.loaded(), "C": allocator.preloaded_allocator(env)}
    typer.echo(
        f"malloc: A, B {info['allocator']['A,B']} (this process's, as the library runs); "
        f"C {info['allocator']['C']} (as `rerankd serve` picks it, offline and served alike)"
    )
    runs = []
    for model_dir in model_dirs:
        if len(model_dirs) > 1:
            typer.echo(f"\n## model: {model_dir}")
        runs.append(
            _bench_model(
                model_dir,
                wl,
                vs,
                quick=quick,
                max_batch_tokens=max_batch_tokens,
                server_dtype=server_dtype,
                clients=clients,
                reference_from=reference_from,
                peer_python=peer_python,
                env=env,
                peers_named=variants is not None,
            )
        )
    info["load_after"] = load_average()
    typer.echo(f"\nload {info['load_before']:.2f} -> {info['load_after']:.2f}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "argv": sys.argv[1:], "quick": quick}
        # One model: its figures at the top level, as every earlier run wrote them; several: one each.
        payload |= runs[0] if len(runs) == 1 else {"models": runs}
        output.write_text(json.dumps(payload, indent=1))


def _bench_model(
    model_dir: Path,
    workloads: list[str],
    variants: list[str],
    *,
    quick: bool,
    max_batch_tokens: int,
    server_dtype: str,
    clients: int,
    reference_from: Path | None,
    peer_python: str | None = None,
    env: dict[str, str] | None = None,
    peers_named: bool = True,
) -> dict[str, Any]:
    """One model's run: its matmul limits, every (workload, variant) row, its table; its JSON part."""
    from transformers import AutoTokenizer

    from rerankd.bench.machine import Limits
    from rerankd.models.loading import cpu_threads

    limits = Limits.measure(model_dir, cpu_threads())
    typer.echo(
        "matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v:.0f}" for k, v in limits.peaks.items() if k != "reference")
    )
    if not peers_named and limits.weights_bytes > PEERS_BY_DEFAULT_MAX_GIB * 2**30:
        left = [v for v in variants if v in PEERS]
        variants = [v for v in variants if v not in PEERS]
        _say(
            f"{', '.join(left)}: left out ({limits.weights_bytes / 2**30:.1f} GiB of weights, over the "
            f"{PEERS_BY_DEFAULT_MAX_GIB} GiB a default run copies for them; name them in --variants to run them)"
        )
    plan = RunPlan(
        model_dir=model_dir,
        requests=make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), quick),
        workloads=workloads,
        variants=variants,
        limits=limits,
        max_batch_tokens=max_batch_tokens,
        server_dtype=server_dtype,
        clients=clients,
        reused=_reused_reference(reference_from, variants, quick),
        peer_python=peer_python,
        serve_env=env,
    )
    with tempfile.TemporaryDirectory(prefix="rerankd-bench-") as tmp_dir:
        rows = run_all(plan, Path(tmp_dir), _say)
    typer.echo("")
    typer.echo(markdown_table(rows))
    typer.echo(
        f"\nweights: {limits.weights_bytes / 2**30:.2f} GiB; {limits.flops_per_token / 1e9:.2f} GFLOP/token"
    )
    return {
        "model": str(model_dir),
        "peaks": limits.peaks,
        "flops_per_token": limits.flops_per_token,
        "weights_bytes": limits.weights_bytes,
        "rows": [r.to_json() for r in rows],
    }


__all__ = ["bench"]
