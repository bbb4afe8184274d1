"""`rerankd ui --url URL`: the web UI on its own, ranking through a rerankd server's HTTP API with one
long-lived client (per API key typed on the page). Gradio loads when the command runs."""

from __future__ import annotations

from typing import Annotated

import typer

from rerankd.cli.options import EXIT_USAGE, TimeoutOpt, check_url, err, fail


def served_models(url: str, api_key: str | None) -> list[str]:
    """The server's models for the page's picker, asked once at start; none (no picker) when the
    server is not up yet, wants a key the page will ask for, or lists no models."""
    from rerankd.client import RerankClient
    from rerankd.client.errors import ClientError

    try:
        with RerankClient(url, api_key=api_key, timeout=5.0, max_retries=0) as client:
            return [m.id for m in client.models()]
    except ClientError:
        return []


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
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Serve the web UI on its own, against a running rerankd server (`rerankd serve` mounts it at /ui)."""
    check_url(url)
    try:
        from rerankd.ui.blocks import CONCURRENCY, build_blocks, page_options
    except ImportError as e:
        raise fail(f'the web UI needs Gradio ({e}); pip install "rerankd[ui]"', EXIT_USAGE) from None
    from rerankd.ui.core import client_backend

    backend = client_backend(
        url,
        api_key=api_key or None,
        timeout=timeout,
        models=served_models(url, api_key or None),
        key_hint=" (or start `rerankd ui` with --api-key)",
    )
    err.print(f"rerankd UI for {backend.where} on http://{host}:{port}/", markup=False)
    page = build_blocks(backend)
    page.queue(default_concurrency_limit=CONCURRENCY).launch(
        server_name=host, server_port=port, quiet=True, **page_options()
    )
