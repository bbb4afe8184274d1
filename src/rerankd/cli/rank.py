"""`rerankd rank` and `rerankd score`: one query against documents, with a local model or through --url."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rerankd.cli.options import (
    DEVICE,
    DTYPE,
    EXIT_USAGE,
    MAX_BATCH_SIZE,
    MAX_BATCH_TOKENS,
    MAX_LENGTH,
    PROVIDER,
    TIMEOUT,
    ApiKeyOpt,
    DeviceOpt,
    DtypeOpt,
    FamilyOpt,
    InstructionOpt,
    MaxBatchSizeOpt,
    MaxBatchTokensOpt,
    MaxLengthOpt,
    ModelOpt,
    ProviderOpt,
    TemplateOpt,
    TimeoutOpt,
    TrustRemoteCodeOpt,
    UrlOpt,
    batch_config,
    fail,
    model_config,
    prepare_model,
)
from rerankd.errors import RerankdError
from rerankd.reranker import load_reranker
from rerankd.types import Document, RerankResult

QueryOpt = Annotated[str, typer.Option("--query", "-q", help="The query to rank documents against.")]
DocsArg = Annotated[list[str] | None, typer.Argument(help="Documents; or use --file, or pipe them on stdin.")]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Documents, one per line; or JSONL with a 'text' field ('-' for stdin)."
    ),
]


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


def load_local(
    model: str | None,
    *,
    max_batch_tokens: int,
    max_batch_size: int,
    **options: Any,
) -> tuple[Any, str]:
    """The local Reranker for rank and score; `options` are the shared model options. The model is
    resolved first (extras, device, files: one-line errors, exit 2), then loaded under its given name."""
    if not model:
        raise fail(
            "pass --model (a hub id, a local model directory, or tiny-random) or --url (a rerankd server)",
            EXIT_USAGE,
        )
    prepared = prepare_model(model, device=options["device"])
    config = model_config(prepared.path, served_name=prepared.name, **options)
    # The name is the one the user gave (a hub id), not the cache's snapshot path the model loads from.
    return load_reranker(config, batch_config(max_batch_tokens, max_batch_size)), prepared.name


def require_documents(docs: list[Document]) -> list[Document]:
    if not docs:
        raise fail("no documents to rank: pass them as arguments, with --file FILE, or on stdin", EXIT_USAGE)
    return docs


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


def as_json(result: RerankResult, docs: list[Document]) -> dict[str, Any]:
    return {
        "model": result.model,
        "results": [
            {"index": r.index, "relevance_score": r.score, "document": {"text": docs[r.index].text}}
            | ({"id": docs[r.index].id} if docs[r.index].id is not None else {})
            for r in result
        ],
        "usage": {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens},
    }


def rank(
    query: QueryOpt,
    documents: DocsArg = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    instruction: InstructionOpt = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Keep the best N.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    template: TemplateOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_batch_tokens: MaxBatchTokensOpt = MAX_BATCH_TOKENS,
    max_batch_size: MaxBatchSizeOpt = MAX_BATCH_SIZE,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    provider: ProviderOpt = PROVIDER,
    timeout: TimeoutOpt = TIMEOUT,
) -> None:
    """Rank documents by relevance to the query: a table, or JSON with --json."""
    try:
        docs = require_documents(gather_documents(documents, file))
        if top_n is not None and top_n <= 0:
            raise fail(f"--top-n must be a positive integer, got {top_n}", EXIT_USAGE)
        if url:
            from rerankd.client import RerankClient

            with RerankClient(
                url, api_key=api_key, model=model, provider=provider, timeout=timeout
            ) as client:
                result = client.rerank(
                    query, docs, top_n=top_n, instruction=instruction, return_documents=True
                )
        else:
            reranker, name = load_local(
                model,
                device=device,
                dtype=dtype,
                max_length=max_length,
                instruction=instruction,
                family=family,
                template=template,
                trust_remote_code=trust_remote_code,
                max_batch_tokens=max_batch_tokens,
                max_batch_size=max_batch_size,
            )
            result = reranker.rerank(query, docs, top_n=top_n, return_documents=True)
            result = dataclasses.replace(result, model=name)
    except (RerankdError, ValueError) as e:
        raise fail(str(e)) from None
    if json_out:
        typer.echo(json.dumps(as_json(result, docs), ensure_ascii=False, indent=2))
    else:
        print_ranking(result, docs)


def score(
    query: QueryOpt,
    documents: DocsArg = None,
    model: ModelOpt = None,
    file: FileOpt = None,
    instruction: InstructionOpt = None,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    template: TemplateOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_batch_tokens: MaxBatchTokensOpt = MAX_BATCH_TOKENS,
    max_batch_size: MaxBatchSizeOpt = MAX_BATCH_SIZE,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    provider: ProviderOpt = PROVIDER,
    timeout: TimeoutOpt = TIMEOUT,
) -> None:
    """Print the relevance scores in input order, as JSON."""
    try:
        docs = require_documents(gather_documents(documents, file))
        if url:
            from rerankd.client import RerankClient

            with RerankClient(
                url, api_key=api_key, model=model, provider=provider, timeout=timeout
            ) as client:
                scores = client.score(query, docs, instruction=instruction)
                name = client.model_name
        else:
            reranker, name = load_local(
                model,
                device=device,
                dtype=dtype,
                max_length=max_length,
                instruction=instruction,
                family=family,
                template=template,
                trust_remote_code=trust_remote_code,
                max_batch_tokens=max_batch_tokens,
                max_batch_size=max_batch_size,
            )
            scores = reranker.score(query, docs)
    except (RerankdError, ValueError) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps({"model": name, "scores": scores}))
