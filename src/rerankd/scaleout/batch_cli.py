"""`rerankd batch`: score a JSONL file of queries and documents, in one process (default), through a
rerankd server (`--url`) or on Ray Data (`--ray`). Importing this module imports neither torch nor Ray."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from rerankd.scaleout.batch import (
    EXIT_USAGE,
    BatchError,
    ClientScorer,
    LocalScorer,
    Scorer,
    Summary,
    count_lines,
    run_batch,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)


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
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Hub id or local directory.", envvar="RERANKD_MODEL")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Score through this rerankd (or rerank API) server.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="With --url.", envvar="RERANKD_API_KEY")] = None,
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
    instruction: Annotated[
        str | None, typer.Option("--instruction", help="Task instruction (yes/no rerankers only).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="RERANKD_DEVICE")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto, float32, bfloat16 or float16.", envvar="RERANKD_DTYPE")
    ] = "auto",
    max_length: Annotated[int, typer.Option("--max-length", help="Maximum tokens per pair.")] = 8192,
    max_batch_tokens: Annotated[int, typer.Option(help="Padded tokens per model batch.")] = 8192,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Score a JSONL file of queries with their documents (or pairs); resumable, in input order.

    Exit code: 0 every line scored; 1 some lines were bad (reported, skipped); 2 usage error;
    3 stopped before the end (error, --limit, Ctrl-C): rerun the same command to resume."""
    if not model and not url:
        _fail("pass --model (a hub id or model directory) or --url (a rerankd server)")
    if url and ray:
        _fail("--url and --ray do not go together: --ray loads the model on Ray actors")
    if limit is not None and limit < 0:
        _fail(f"--limit must be >= 0, got {limit}")
    if concurrency is not None and concurrency < 1:
        _fail(f"--concurrency must be positive, got {concurrency}")
    if not input.exists():
        _fail(f"--input {input}: no such file")
    scorer: Scorer
    try:
        if url:
            from rerankd.client import RerankClient

            scorer = ClientScorer(
                RerankClient(url, api_key=api_key, model=model),
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
                _fail("--ray needs Ray Data: pip install 'rerankd[ray]'")
        else:
            from rerankd.reranker import Reranker

            reranker = Reranker.from_pretrained(
                str(model),
                device=device,
                dtype=dtype,
                max_length=max_length,
                instruction=instruction,
                max_batch_tokens=max_batch_tokens,
            )
            scorer = LocalScorer(reranker, instruction=instruction)
    except typer.Exit:
        raise
    except Exception as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(EXIT_USAGE) from None
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
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        scorer.close()
    for line in summary.lines(output):
        err.print(line, markup=False)
    raise typer.Exit(summary.exit_code)


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(EXIT_USAGE)
