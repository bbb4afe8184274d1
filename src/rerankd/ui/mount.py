"""`mount_ui(app, backend)`: the web UI at /ui of an ASGI app (`rerankd serve`: the CLI wires it)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rerankd.ui.core import Backend

log = logging.getLogger("rerankd.ui")

PATH = "/ui"


def mount_ui(app: FastAPI, backend: Backend, path: str = PATH) -> Any:
    """Mount the page at `path`; without Gradio installed, log how to get it and mount nothing."""
    try:
        import gradio as gr

        from rerankd.ui.blocks import build_blocks, page_options
    except ImportError as e:
        log.info("web UI not mounted (%s); pip install 'rerankd[ui]' to get it at %s", e, path)
        return None
    return gr.mount_gradio_app(app, build_blocks(backend), path=path, **page_options())
