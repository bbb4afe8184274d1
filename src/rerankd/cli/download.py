"""`rerankd download MODEL [--to DIR] [--source hf|modelscope]`: a model's files onto this machine, with
a progress bar, resumable, before anything needs them (then `--model DIR`, or the hub id from the cache)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from rerankd.cli.options import EXIT_USAGE, err, fail


class SourceChoice(str, enum.Enum):
    hf = "hf"
    modelscope = "modelscope"


def download_command(
    model: Annotated[
        str, typer.Argument(help="Hub id such as Qwen/Qwen3-Reranker-0.6B, or tiny-random (built here).")
    ],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Put the files in this directory (default: the hub cache)."),
    ] = None,
    source: Annotated[
        SourceChoice,
        typer.Option(
            "--source",
            help="hf: the Hugging Face hub, or the mirror in HF_ENDPOINT; modelscope: ModelScope "
            "(needs the modelscope package).",
        ),
    ] = SourceChoice.hf,
) -> None:
    """Download a model (resumable: run it again after an interruption). Prints its directory on stdout."""
    from rerankd import hub, smoke
    from rerankd.errors import ModelLoadError

    if smoke.is_tiny_random(model):
        from rerankd.cli.options import quiet_loading, require

        require("local")
        quiet_loading()
        path = smoke.tiny_random_dir(to)
        err.print(f"built the tiny-random smoke-test model (NOT a real reranker) in {path}", markup=False)
        typer.echo(str(path))
        return
    try:
        path = hub.download(model, to=to, source=source.value)
    except ModelLoadError as e:
        raise fail(str(e), EXIT_USAGE) from None
    err.print(f"{model} is in {path}; use it with --model {path}", markup=False)
    typer.echo(str(path))
