"""The `rerankd` command: the one place that wires the pieces together."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rerankd.errors import RerankdError
from rerankd.types import Document, RerankResult

app = typer.Typer(
    name="rerankd",
    help="Exact and fast reranking for Qwen3-Reranker and cross-encoders: library, server, CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Hub id or local directory of the model.", envvar="RERANKD_MODEL"),
]
QueryOpt = Annotated[str, typer.Option("--query", "-q", help="The query to rank documents against.")]
DocsArg = Annotated[list[str] | None, typer.Argument(help="Documents; or use --file, or pipe them on stdin.")]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Documents, one per line; or JSONL with a 'text' field ('-' for stdin)."
    ),
]
InstrOpt = Annotated[
    str | None, typer.Option("--instruction", "-i", help="Task instruction (yes/no rerankers only).")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="RERANKD_DEVICE")]
DtypeOpt = Annotated[
    str, typer.Option(help="auto, float32, bfloat16, float16 or int8 (CPU).", envvar="RERANKD_DTYPE")
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Use this server (rerankd or another rerank provider) instead of a local model; "
        "--model then names the server's model.",
        envvar="RERANKD_URL",
    ),
]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="API key for --url.", envvar="RERANKD_API_KEY")
]
ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider", help="Wire dialect of --url: auto, rerankd, vllm, siliconflow, cohere, jina or tei."
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per attempt for --url.")]
MaxLenOpt = Annotated[int, typer.Option("--max-length", help="Maximum tokens per pair, template included.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def parse_documents(text: str) -> list[Document]:
    """One document per non-empty line; JSONL lines ({"text": ..., "id": ...}) are read as objects."""
    docs: list[Document] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"line {n}: not valid JSON ({e.msg})") from e
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError(f'line {n}: a JSON line needs a string "text" field')
            meta = {k: v for k, v in obj.items() if k not in ("text", "id", "_id")}
            doc_id = obj.get("id", obj.get("_id"))
            docs.append(Document(text=obj["text"], id=None if doc_id is None else str(doc_id), metadata=meta))
        else:
            docs.append(Document(text=line))
    return docs


def gather_documents(documents: list[str] | None, file: Path | None) -> list[Document]:
    if documents:
        return [Document(text=d) for d in documents]
    if file is not None and str(file) != "-":
        if not file.exists():
            raise ValueError(f"{file}: no such file")
        return parse_documents(file.read_text(encoding="utf-8"))
    if file is not None or not sys.stdin.isatty():
        return parse_documents(sys.stdin.read())
    raise ValueError("no documents: pass them as arguments, with --file FILE, or on stdin")


def load_local(model: str | None, device: str, dtype: str, max_length: int, instruction: str | None) -> Any:
    if not model:
        raise fail("pass --model (a hub id or a local model directory) or --url (a rerankd server)", 2)
    from rerankd.reranker import Reranker

    return Reranker.from_pretrained(
        model, device=device, dtype=dtype, max_length=max_length, instruction=instruction
    )


def print_ranking(result: RerankResult, docs: list[Document]) -> None:
    table = Table(title=f"{result.model}", title_style="bold", show_lines=False)
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("index", justify="right")
    table.add_column("document", overflow="fold")
    for rank_, r in enumerate(result, 1):
        text = docs[r.index].text
        table.add_row(
            str(rank_), f"{r.score:.4f}", str(r.index), text if len(text) <= 200 else text[:199] + "…"
        )
    Console().print(table)


@app.command()
def rank(
    query: QueryOpt,
    documents: DocsArg = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    instruction: InstrOpt = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Keep the best N.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    max_length: MaxLenOpt = 8192,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    provider: ProviderOpt = "auto",
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Rank documents by relevance to the query: a table, or JSON with --json."""
    try:
        docs = gather_documents(documents, file)
        if top_n is not None and top_n <= 0:
            raise fail(f"--top-n must be a positive integer, got {top_n}", 2)
        if url:
            from rerankd.client import RerankClient

            with RerankClient(
                url, api_key=api_key, model=model, provider=provider, timeout=timeout
            ) as client:
                result = client.rerank(
                    query, docs, top_n=top_n, instruction=instruction, return_documents=True
                )
        else:
            reranker = load_local(model, device, dtype, max_length, instruction)
            result = reranker.rerank(query, docs, top_n=top_n, return_documents=True)
    except (RerankdError, ValueError) as e:
        raise fail(str(e)) from None
    if as_json:
        out = {
            "model": result.model,
            "results": [
                {"index": r.index, "relevance_score": r.score, "document": {"text": docs[r.index].text}}
                | ({"id": docs[r.index].id} if docs[r.index].id is not None else {})
                for r in result
            ],
            "usage": {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens},
        }
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print_ranking(result, docs)


@app.command()
def score(
    query: QueryOpt,
    documents: DocsArg = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    instruction: InstrOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    max_length: MaxLenOpt = 8192,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    provider: ProviderOpt = "auto",
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Print the relevance scores in input order, as JSON."""
    try:
        docs = gather_documents(documents, file)
        if url:
            from rerankd.client import RerankClient

            with RerankClient(
                url, api_key=api_key, model=model, provider=provider, timeout=timeout
            ) as client:
                scores = client.score(query, docs, instruction=instruction)
                name = client.model_name
        else:
            reranker = load_local(model, device, dtype, max_length, instruction)
            scores = reranker.score(query, docs)
            name = reranker.info.name
    except (RerankdError, ValueError) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps({"model": name, "scores": scores}))


@app.command()
def serve(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hub id or local directory.", envvar="RERANKD_MODEL")
    ],
    host: Annotated[str, typer.Option(envvar="RERANKD_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RERANKD_PORT")] = 8000,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accepted API key (repeatable; comma-separated in RERANKD_API_KEY).",
            envvar="RERANKD_API_KEY",
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="File of accepted API keys, one per line.", envvar="RERANKD_API_KEY_FILE"),
    ] = None,
    served_model_name: Annotated[str | None, typer.Option(envvar="RERANKD_SERVED_MODEL_NAME")] = None,
    instruction: Annotated[
        str | None,
        typer.Option(help="Default instruction for yes/no rerankers.", envvar="RERANKD_INSTRUCTION"),
    ] = None,
    max_batch_tokens: Annotated[
        int, typer.Option(help="Padded tokens per model batch.", envvar="RERANKD_MAX_BATCH_TOKENS")
    ] = 8192,
    max_docs_per_request: Annotated[int, typer.Option(envvar="RERANKD_MAX_DOCS_PER_REQUEST")] = 1000,
    max_queue: Annotated[
        int, typer.Option(help="Pairs waiting before new requests get 429.", envvar="RERANKD_MAX_QUEUE")
    ] = 4096,
    max_body_bytes: Annotated[int, typer.Option(envvar="RERANKD_MAX_BODY_BYTES")] = 10 * 1024 * 1024,
    max_query_chars: Annotated[int, typer.Option(envvar="RERANKD_MAX_QUERY_CHARS")] = 32_000,
    drain_timeout: Annotated[
        float,
        typer.Option(help="Seconds to finish in-flight requests on SIGTERM.", envvar="RERANKD_DRAIN_TIMEOUT"),
    ] = 30.0,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Do not mount the web UI at /ui.", envvar="RERANKD_NO_UI")
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="RERANKD_LOG_LEVEL")] = "info",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    max_length: Annotated[int, typer.Option("--max-length", envvar="RERANKD_MAX_LENGTH")] = 8192,
    ray: Annotated[
        bool, typer.Option("--ray", help="Serve on Ray Serve (needs rerankd[ray]).", envvar="RERANKD_RAY")
    ] = False,
    replicas: Annotated[
        int | None, typer.Option(help="With --ray: model replicas.", envvar="RERANKD_RAY_REPLICAS")
    ] = None,
    autoscale: Annotated[
        str | None,
        typer.Option(
            help="With --ray: autoscale between MIN:MAX replicas on ongoing requests per replica.",
            envvar="RERANKD_RAY_AUTOSCALE",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --ray: an existing Ray cluster (default: RAY_ADDRESS, else a local one)."),
    ] = None,
) -> None:
    """Serve the model over HTTP: Cohere, Jina, SiliconFlow, vLLM and TEI rerank APIs, vLLM's score API."""
    from rerankd.server.settings import ServerSettings, read_key_file

    keys = [k.strip() for item in api_key or [] for k in item.split(",") if k.strip()]
    if api_key_file is not None:
        if not api_key_file.exists():
            raise fail(f"--api-key-file {api_key_file}: no such file", 2)
        keys += read_key_file(api_key_file)
    for name, value in [
        ("--max-batch-tokens", max_batch_tokens),
        ("--max-docs-per-request", max_docs_per_request),
        ("--max-queue", max_queue),
        ("--port", port),
    ]:
        if value < 1:
            raise fail(f"{name} must be positive, got {value}", 2)
    settings = ServerSettings(
        model=model,
        host=host,
        port=port,
        api_keys=tuple(keys),
        served_model_name=served_model_name,
        instruction=instruction,
        device=device,
        dtype=dtype,
        max_length=max_length,
        max_batch_tokens=max_batch_tokens,
        max_docs_per_request=max_docs_per_request,
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        max_query_chars=max_query_chars,
        drain_timeout=drain_timeout,
        log_level=log_level,
        ui=not no_ui,
    )
    if ray:
        from rerankd.scaleout.serve import serve_on_ray

        raise typer.Exit(
            serve_on_ray(settings, replicas=replicas, autoscale=autoscale, ray_address=ray_address)
        )
    if replicas is not None or autoscale is not None or ray_address is not None:
        raise fail("--replicas, --autoscale and --ray-address need --ray", 2)
    from rerankd.server.run import serve as run_server

    raise typer.Exit(run_server(settings))


# Commands owned by other modules are registered here, one line each (heavy imports stay inside them).
# -- registered commands --
app.command(name="eval")(__import__("rerankd.evaluation.cli", fromlist=["eval_command"]).eval_command)
app.command(name="ui")(__import__("rerankd.ui.cli", fromlist=["ui_command"]).ui_command)
app.command(name="batch")(__import__("rerankd.scaleout.batch_cli", fromlist=["batch_command"]).batch_command)
app.command(name="bench")(__import__("rerankd.bench", fromlist=["bench"]).bench)
# -- end registered commands --


def main() -> None:
    app()


if __name__ == "__main__":
    main()
