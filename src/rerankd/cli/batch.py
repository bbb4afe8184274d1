"""`rerankd batch`: score a JSONL file of queries and documents, in one process (default), through a
rerankd server (`--url`) or on Ray Data (`--ray`). Importing this module imports neither torch nor Ray."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

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
    TimeoutOpt,
    TrustRemoteCodeOpt,
    UrlOpt,
    batch_config,
    err,
    fail,
    model_config,
)
from rerankd.reranker import load_reranker
from rerankd.scaleout.batch import (
    BatchError,
    ClientScorer,
    LocalScorer,
    Scorer,
    Summary,
    count_lines,
    run_batch,
)


def _progress(enabled: bool, total: int) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
        transient=False,
    )


def batch_command(
    input: Annotated[
        Path,
        typer.Option("--input", help='JSONL: {"query", "documents": [...], "id"?} or {"query", "document"}.'),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSONL of scores in input order; a rerun resumes it.")
    ],
    model: ModelOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    provider: ProviderOpt = PROVIDER,
    timeout: TimeoutOpt = TIMEOUT,
    ray: Annotated[bool, typer.Option("--ray", help="Score on Ray Data (needs rerankd[ray]).")] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="With --ray: an existing cluster (default: RAY_ADDRESS, else local).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Scorer actors with --ray (default 2), parallel requests with --url (default 4)."),
    ] = None,
    num_cpus: Annotated[float, typer.Option(help="With --ray: CPUs per scorer actor.")] = 1.0,
    num_gpus: Annotated[
        float, typer.Option(help="With --ray: GPUs per scorer actor (0.5: two per GPU).")
    ] = 0.0,
    batch_size: Annotated[int, typer.Option(help="With --ray: input lines per map_batches batch.")] = 64,
    limit: Annotated[
        int | None, typer.Option(help="Score at most N lines in this run (a rerun goes on).")
    ] = None,
    instruction: InstructionOpt = None,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    max_batch_tokens: MaxBatchTokensOpt = MAX_BATCH_TOKENS,
    max_batch_size: MaxBatchSizeOpt = MAX_BATCH_SIZE,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Score a JSONL file of queries with their documents (or pairs); resumable, in input order.

    Exit code: 0 every line scored; 1 some lines were bad (reported, skipped); 2 usage error;
    3 stopped before the end (error, --limit, Ctrl-C): rerun the same command to resume."""
    if not model and not url:
        raise fail("pass --model (a hub id or model directory) or --url (a rerankd server)", EXIT_USAGE)
    if url and ray:
        raise fail("--url and --ray do not go together: --ray loads the model on Ray actors", EXIT_USAGE)
    if limit is not None and limit < 0:
        raise fail(f"--limit must be >= 0, got {limit}", EXIT_USAGE)
    if concurrency is not None and concurrency < 1:
        raise fail(f"--concurrency must be positive, got {concurrency}", EXIT_USAGE)
    if not input.exists():
        raise fail(f"--input {input}: no such file", EXIT_USAGE)
    config = model_config(
        str(model),
        device=device,
        dtype=dtype,
        max_length=max_length,
        instruction=instruction,
        family=family,
        trust_remote_code=trust_remote_code,
    )
    scorer: Scorer
    try:
        if url:
            from rerankd.client import RerankClient

            scorer = ClientScorer(
                RerankClient(url, api_key=api_key, model=model, provider=provider, timeout=timeout),
                concurrency=concurrency or 4,
                instruction=instruction,
            )
        elif ray:
            try:
                from rerankd.scaleout.ray_batch import ModelSpec, RayScorer

                spec = ModelSpec(str(model), device, dtype, max_length, instruction, max_batch_tokens)
                scorer = RayScorer(
                    spec,
                    concurrency=concurrency or 2,
                    batch_size=batch_size,
                    num_cpus=num_cpus,
                    num_gpus=num_gpus,
                    ray_address=ray_address,
                )
            except ImportError:
                raise fail("--ray needs Ray Data: pip install 'rerankd[ray]'", EXIT_USAGE) from None
        else:
            reranker = load_reranker(config, batch_config(max_batch_tokens, max_batch_size))
            scorer = LocalScorer(reranker, instruction=instruction)
    except typer.Exit:
        raise
    except Exception as e:
        raise fail(str(e), EXIT_USAGE) from None
    show = progress and sys.stderr.isatty()
    try:
        with _progress(show, count_lines(input)) as bar:
            task = bar.add_task("scoring", total=count_lines(input))
            err.print(f"rerankd batch: {input} → {output} with {scorer.description}")
            summary: Summary = run_batch(
                input,
                output,
                scorer,
                limit=limit,
                report=lambda m: bar.console.print(f"[yellow]bad[/] {m}", markup=True, highlight=False),
                advance=lambda n: bar.advance(task, n),
            )
    except BatchError as e:
        raise fail(str(e), EXIT_USAGE) from None
    finally:
        scorer.close()
    for line in summary.lines(output):
        err.print(line, markup=False)
    raise typer.Exit(summary.exit_code)
