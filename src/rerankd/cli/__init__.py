"""The `rerankd` command: the one place that wires the pieces together. One module per command; the
options they share, and the one error printer, are in `rerankd.cli.options`.

Importing this package imports typer and rich, not torch, FastAPI or Gradio: each command loads what it
needs when it runs."""

from __future__ import annotations

import typer

from rerankd.cli import batch, bench, eval, rank, serve, ui

app = typer.Typer(
    name="rerankd",
    help="Exact and fast reranking for Qwen3-Reranker and cross-encoders: library, server, CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(rank.rank)
app.command()(rank.score)
app.command()(serve.serve)
app.command(name="eval")(eval.eval_command)
app.command(name="ui")(ui.ui_command)
app.command(name="batch")(batch.batch_command)
app.command(name="bench")(bench.bench)


def main() -> None:
    app()
