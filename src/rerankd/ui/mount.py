"""`mount_ui(app, state)`: the web UI at /ui of `rerankd serve`, scoring with the server's own engine."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rerankd.server.state import ServerState

log = logging.getLogger("rerankd.ui")

PATH = "/ui"


def mount_ui(app: FastAPI, state: ServerState, path: str = PATH) -> Any:
    """Mount the page at `path`; without Gradio installed, log how to get it and mount nothing."""
    try:
        import gradio as gr

        from rerankd.ui.blocks import build_blocks, page_options
    except ImportError as e:
        log.info("web UI not mounted (%s); pip install 'rerankd[ui]' to get it at %s", e, path)
        return None
    from rerankd.ui.core import EngineBackend

    page = build_blocks(EngineBackend(state))
    return gr.mount_gradio_app(app, page, path=path, **page_options())
