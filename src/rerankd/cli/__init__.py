"""The `rerankd` command: the one place that wires the pieces together. One module per command; the
options they share, and the one error printer, are in `rerankd.cli.options`.

Importing this package imports typer and rich, not torch, FastAPI or Gradio: each command loads what it
needs when it runs, and a missing extra ends in one line naming it (`main`), never a traceback."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import click
import typer

from rerankd.allocator import AllocatorError, reexec_if_needed
from rerankd.cli import batch, bench, download, eval, rank, serve, ui
from rerankd.cli.options import EXIT_USAGE, fail, missing_extra

app = typer.Typer(
    name="rerankd",
    help="Exact and fast reranking for Qwen3-Reranker and cross-encoders: library, server, CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help text is plain: rich markup would eat "[ray]" in 'pip install "rerankd[ray]"'.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rerankd")
    except PackageNotFoundError:
        return "unknown (not installed)"


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"rerankd {version()}")
        raise typer.Exit()


@app.callback()
def root(
    _version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=show_version, is_eager=True),
    ] = False,
) -> None:
    """Exact and fast reranking for Qwen3-Reranker and cross-encoders: library, server, CLI."""


app.command()(rank.rank)
app.command()(rank.score)
app.command()(serve.serve)
app.command(name="download")(download.download_command)
app.command(name="eval")(eval.eval_command)
app.command(name="ui")(ui.ui_command)
app.command(name="batch")(batch.batch_command)
app.command(name="bench")(bench.bench)


def plain_flags(command: Any) -> None:
    """On/off flags show no `<bool>` value placeholder in help (they take none)."""
    for param in getattr(command, "params", []):
        if isinstance(param, click.Option) and param.is_flag and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


def main() -> None:
    # First, before anything else loads: `serve` re-executes itself with jemalloc (rerankd.allocator).
    try:
        reexec_if_needed()
    except AllocatorError as e:
        fail(str(e))
        sys.exit(EXIT_USAGE)
    # Before any command runs a matmul (bench times one before loading a model): the caps are read once.
    from rerankd.models import bound_native_caches

    bound_native_caches()
    command = typer.main.get_command(app)
    plain_flags(command)
    try:
        command(prog_name="rerankd")
    except ModuleNotFoundError as e:
        message = missing_extra(e.name)
        if message is None:
            raise
        fail(message)
        sys.exit(EXIT_USAGE)
