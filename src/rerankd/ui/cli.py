"""`rerankd ui --url URL`: the web UI on its own, ranking through any rerankd server's HTTP API.

Light at import (typer only): Gradio and the client load when the command runs."""

from __future__ import annotations

from typing import Annotated

import typer


def ui_command(
    url: Annotated[
        str,
        typer.Option("--url", "-u", help="Base URL of a rerankd server.", envvar="RERANKD_URL"),
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="API key for the server. Used for every visitor of the page; without it the page asks.",
            envvar="RERANKD_API_KEY",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to serve the page on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve the page on.")] = 7860,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server per request.")] = 60.0,
) -> None:
    """Serve the web UI on its own, against a running rerankd server (`rerankd serve` mounts it at /ui)."""
    if not url.startswith(("http://", "https://")):
        typer.echo(f"error: --url must start with http:// or https://, got {url!r}", err=True)
        raise typer.Exit(2)
    try:
        from rerankd.ui.blocks import build_blocks, page_options
    except ImportError as e:
        typer.echo(f"error: the web UI needs Gradio ({e}); pip install 'rerankd[ui]'", err=True)
        raise typer.Exit(1) from None
    from rerankd.ui.core import ClientBackend

    backend = ClientBackend(url, api_key or None, timeout=timeout)
    page = build_blocks(backend)
    typer.echo(f"rerankd UI for {backend.url} on http://{host}:{port}/", err=True)
    page.queue(default_concurrency_limit=16).launch(
        server_name=host, server_port=port, quiet=True, **page_options()
    )
