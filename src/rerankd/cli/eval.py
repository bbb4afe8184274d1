"""`rerankd eval`: measure rerankers on a BEIR-format dataset. Light at import: the harness, torch, bm25s,
pytrec_eval and matplotlib load inside the command.

`--model` and `--instruction` repeat here (each model, and each instruction, is evaluated side by side);
the other model options are the shared ones and apply to every local model."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

import typer

from rerankd.cli.options import (
    DEVICE,
    DTYPE,
    EXIT_USAGE,
    MAX_LENGTH,
    DeviceOpt,
    DtypeOpt,
    FamilyChoice,
    FamilyOpt,
    MaxLengthOpt,
    TrustRemoteCodeOpt,
    fail,
    model_config,
)
from rerankd.reranker import load_reranker

if TYPE_CHECKING:
    from rerankd.evaluation.harness import RerankerSpec


def local_model_key(model: str, dtype: str, max_length: int) -> str:
    """Identifies a local model's scores: the resolved directory and a fingerprint of its files (config,
    and the size and time of each weight file), or the hub id; plus the dtype and the maximum length."""
    path = Path(model).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.iterdir()):
            if f.name == "config.json":
                h.update(f.read_bytes())
            elif f.suffix in (".safetensors", ".bin", ".pt"):
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        ident = f"{path.resolve()}@{h.hexdigest()[:16]}"
    else:
        ident = model
    return f"local|{ident}|{dtype}|{max_length}"


def remote_model_key(url: str, provider: str, model: str | None, template: str | None = None) -> str:
    return f"remote|{url.rstrip('/')}|{provider}|{model or ''}|{template or 'default'}"


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name} #{n}", n + 1
    taken.add(out)
    return out


def build_specs(
    models: list[str],
    urls: list[str],
    providers: list[str],
    *,
    api_key: str | None,
    remote_model: str | None,
    remote_template: str | None = None,
    device: str,
    dtype: str,
    max_length: int,
    family: FamilyChoice | None = None,
    trust_remote_code: bool = False,
) -> list[RerankerSpec]:
    from rerankd.evaluation.errors import EvalError
    from rerankd.evaluation.harness import RerankerSpec

    if providers and len(providers) not in (1, len(urls)):
        raise EvalError(
            f"--provider given {len(providers)} times for {len(urls)} --url: pass it once (for every URL) "
            "or once per --url, in the same order"
        )
    if providers and not urls:
        raise EvalError("--provider applies to --url: pass the provider's URL with --url")
    taken: set[str] = set()
    specs: list[RerankerSpec] = []
    for model in models:
        config = model_config(
            model,
            device=device,
            dtype=dtype,
            max_length=max_length,
            family=family,
            trust_remote_code=trust_remote_code,
        )
        reranker = load_reranker(config)
        info = reranker.info
        name = Path(model).name if Path(model).expanduser().is_dir() else model
        specs.append(
            RerankerSpec(
                name=_unique(name, taken),
                reranker=reranker,
                model_key=local_model_key(model, info.dtype, max_length),
                kind="local",
                details={
                    "model": model,
                    "family": info.family,
                    "dtype": info.dtype,
                    "device": info.device,
                    "max_length": info.max_length,
                },
            )
        )
    for i, url in enumerate(urls):
        provider = providers[i] if len(providers) == len(urls) else (providers[0] if providers else "auto")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise EvalError(f"--url {url}: expected an http(s) URL such as http://127.0.0.1:8000")
        from rerankd.client import RerankClient

        extra: dict[str, Any] = {}
        if remote_template is not None:  # only when asked: the client's own default otherwise
            extra["template"] = None if remote_template == "none" else remote_template
        client = RerankClient(url, api_key=api_key, model=remote_model, provider=provider, **extra)
        label = f"{remote_model}@{parsed.netloc}" if remote_model else parsed.netloc
        specs.append(
            RerankerSpec(
                name=_unique(label if provider == "auto" else f"{provider}:{label}", taken),
                reranker=client,
                model_key=remote_model_key(url, provider, remote_model, remote_template),
                kind="remote",
                details={
                    "url": url,
                    "provider": provider,
                    "model": remote_model,
                    "template": remote_template,
                },
            )
        )
    return specs


class _Bar:
    """A rich progress bar per reranker, with pairs done, rate and ETA (on stderr)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pairs"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, name: str, advance: int, total: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        if advance:
            self.progress.advance(self.tasks[name], advance)


def _summary_tables(report: dict[str, Any]) -> list[Any]:
    """Metrics over all queries per stage, then speed per reranker: each fits an 80-column terminal."""
    from rich.table import Table

    from rerankd.evaluation.metrics import METRICS

    scores = Table(title=f"{report['dataset']['name']} ({report['dataset']['split']}), all queries")
    scores.add_column("stage")
    for m in METRICS:
        scores.add_column(m, justify="right")
    for name, by_lang in report["metrics"].items():
        scores.add_row(name, *(f"{by_lang['all'][m]:.4f}" for m in METRICS))

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}"

    speed = Table(title="speed (one scoring call per query)")
    for col in ("reranker", "pairs/s", "p50 ms/query", "p95 ms/query"):
        speed.add_column(col, justify="left" if col == "reranker" else "right")
    for r in report["rerankers"]:
        t = r["timing"]
        speed.add_row(
            r["name"], fmt(t["pairs_per_second"]), fmt(t["latency_ms"]["p50"]), fmt(t["latency_ms"]["p95"])
        )
    return [scores, speed]


def eval_command(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="BEIR-format directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); 'sample' for the bundled one.",
        ),
    ],
    split: Annotated[str, typer.Option(help="Which qrels/<split>.tsv to evaluate.")] = "test",
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Local reranker: hub id or directory (repeatable)."),
    ] = None,
    url: Annotated[
        list[str] | None, typer.Option("--url", help="Remote rerank API base URL (repeatable).")
    ] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            help="API dialect of --url: auto, rerankd, cohere, jina, vllm, tei... (once, or once per --url)."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="RERANKD_API_KEY", help="Bearer key for --url.")
    ] = None,
    remote_model: Annotated[
        str | None,
        typer.Option("--remote-model", help="Model name to send to --url (providers that need one)."),
    ] = None,
    remote_template: Annotated[
        str | None,
        typer.Option(
            "--remote-template",
            help="Qwen3 template applied by the client for --url: auto (per provider), qwen3 or none.",
        ),
    ] = None,
    instruction: Annotated[
        list[str] | None,
        typer.Option(
            "--instruction", "-i", help="Task instruction (repeatable: each is evaluated side by side)."
        ),
    ] = None,
    candidates: Annotated[
        Path | None, typer.Option(help="First-stage candidates: a TREC run file (instead of BM25).")
    ] = None,
    first_stage: Annotated[
        str | None, typer.Option("--first-stage", help="First stage when no --candidates: bm25.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Candidates reranked per query.")] = 100,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for report.json, report.md, chart.png, runs/.")
    ] = Path("eval-output"),
    cache: Annotated[
        Path | None, typer.Option(help="Score cache (SQLite). Default: OUTPUT/scores.sqlite.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Keep scores in memory only.")] = False,
    max_queries: Annotated[
        int | None, typer.Option("--max-queries", help="Evaluate the first N queries of each language.")
    ] = None,
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="Only queries in this language (repeatable).")
    ] = None,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary table.")] = False,
) -> None:
    """Evaluate rerankers on a BEIR-format dataset: nDCG@10, MRR@10, Recall, MAP, before and after."""
    from rich.console import Console

    from rerankd.errors import RerankdError
    from rerankd.evaluation.errors import EvalError

    store = None
    try:
        if top_k <= 0:
            raise EvalError(f"--top-k must be a positive integer, got {top_k}")
        if max_queries is not None and max_queries <= 0:
            raise EvalError(f"--max-queries must be a positive integer, got {max_queries}")
        if first_stage is not None and first_stage != "bm25":
            raise EvalError(
                f"--first-stage {first_stage}: the first stage is bm25, or a run file with --candidates"
            )
        if first_stage is not None and candidates is not None:
            raise EvalError("pass either --candidates RUN or --first-stage bm25, not both")
        if remote_template not in (None, "auto", "qwen3", "none"):
            raise EvalError(f"--remote-template {remote_template}: expected auto, qwen3 or none")
        if not model and not url:
            raise EvalError(
                "no reranker given: pass --model (a hub id or local model directory) and/or --url (a rerank API)"
            )
        from rerankd.evaluation.cache import ScoreCache
        from rerankd.evaluation.dataset import load_beir
        from rerankd.evaluation.harness import evaluate, first_stage_candidates
        from rerankd.evaluation.report import write_outputs

        ds = load_beir(dataset, split)
        qids = ds.eval_query_ids(max_queries=max_queries, langs=lang)
        if not qids:
            raise EvalError(f"--lang {', '.join(lang or [])}: no query of the split is in that language")
        ranking, first_info = first_stage_candidates(
            ds, qids, top_k=top_k, candidates_file=str(candidates) if candidates else None
        )
        specs = build_specs(
            model or [],
            url or [],
            provider or [],
            api_key=api_key,
            remote_model=remote_model,
            remote_template=remote_template,
            device=device,
            dtype=dtype,
            max_length=max_length,
            family=family,
            trust_remote_code=trust_remote_code,
        )
        store = ScoreCache(None if no_cache else (cache or output / "scores.sqlite"))
        bar = _Bar(enabled=not quiet)
        with bar.progress:
            result = evaluate(
                ds,
                specs,
                ranking,
                query_ids=qids,
                first_stage=first_info,
                instructions=instruction or [None],
                cache=store,
                progress=bar,
            )
        report = write_outputs(result, output, ["rerankd", *sys.argv[1:]])
    except KeyboardInterrupt:
        where = (
            f"; {len(store)} scores are cached in {store.path}: rerun the same command to resume"
            if store and store.path
            else ""
        )
        raise fail(f"interrupted{where}", 130) from None
    except EvalError as e:
        raise fail(str(e), EXIT_USAGE) from None
    except (RerankdError, ValueError, OSError) as e:
        where = (
            f" ({len(store)} scores cached in {store.path}: rerun to resume)" if store and store.path else ""
        )
        raise fail(f"{e}{where}", 1) from None
    if not quiet:
        console = Console()
        for table in _summary_tables(report):
            console.print(table)
    typer.echo(
        f"report: {output / 'report.md'}  ({output / 'report.json'}, {output / 'chart.png'}, {output / 'runs'})"
    )
