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
    TemplateOpt,
    TimeoutOpt,
    TrustRemoteCodeOpt,
    UrlOpt,
    batch_config,
    check_url,
    err,
    existing_file,
    fail,
    model_config,
    positive,
)
from rerankd.config import BatchConfig, ModelConfig
from rerankd.reranker import load_reranker
from rerankd.scaleout.batch import BatchError, Summary, run_batch
from rerankd.scaleout.batch_files import count_lines
from rerankd.scaleout.batch_scorers import (
    DEFAULT_CLIENT_CONCURRENCY,
    BatchScorer,
    ClientScorer,
    LocalScorer,
)
from rerankd.scaleout.ray_batch import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY


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


def _ray_scorer(
    model: ModelConfig,
    batch: BatchConfig,
    address: str | None,
    concurrency: int | None,
    batch_size: int,
    num_cpus: float | None,
    num_gpus: float | None,
) -> BatchScorer:
    """The Ray Data scorer; resources per actor from the one scale builder (RERANKD_RAY_NUM_CPUS /
    _NUM_GPUS, else 1 CPU and a GPU when the model runs on CUDA)."""
    try:
        from rerankd.scaleout.ray_batch import RayScorer
        from rerankd.scaleout.scale import scale_config

        scale = scale_config(model, address=address, num_cpus=num_cpus, num_gpus=num_gpus)
        return RayScorer(
            model, batch, scale, concurrency=concurrency or DEFAULT_CONCURRENCY, batch_size=batch_size
        )
    except ImportError:
        raise fail("--ray needs Ray Data: pip install 'rerankd[ray]'", EXIT_USAGE) from None


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
        typer.Option(
            help=f"Scorer actors with --ray (default {DEFAULT_CONCURRENCY}), parallel requests with --url "
            f"(default {DEFAULT_CLIENT_CONCURRENCY})."
        ),
    ] = None,
    num_cpus: Annotated[
        float | None, typer.Option(help="With --ray: CPUs per scorer actor (default 1).")
    ] = None,
    num_gpus: Annotated[
        float | None,
        typer.Option(
            help="With --ray: GPUs per scorer actor (0.5: two per GPU; default 1 when the model runs on CUDA)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="With --ray: input lines per map_batches batch.")
    ] = DEFAULT_BATCH_SIZE,
    limit: Annotated[
        int | None, typer.Option(help="Score at most N lines in this run (a rerun goes on).")
    ] = None,
    instruction: InstructionOpt = None,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    template: TemplateOpt = None,
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
    if limit is not None and limit < 0:  # 0 is allowed: resume nothing, report what is done
        raise fail(f"--limit must be >= 0, got {limit}", EXIT_USAGE)
    positive(**{"--concurrency": concurrency, "--batch-size": batch_size})
    existing_file(input, "--input")
    scorer: BatchScorer
    try:
        if url:
            check_url(url)
            from rerankd.client import RerankClient

            scorer = ClientScorer(
                RerankClient(url, api_key=api_key, model=model, provider=provider, timeout=timeout),
                concurrency=concurrency or DEFAULT_CLIENT_CONCURRENCY,
                instruction=instruction,
            )
        else:
            config = model_config(
                str(model),
                device=device,
                dtype=dtype,
                max_length=max_length,
                instruction=instruction,
                family=family,
                template=template,
                trust_remote_code=trust_remote_code,
            )
            batch = batch_config(max_batch_tokens, max_batch_size)
            if ray:
                scorer = _ray_scorer(config, batch, ray_address, concurrency, batch_size, num_cpus, num_gpus)
            else:
                scorer = LocalScorer(load_reranker(config, batch))
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
