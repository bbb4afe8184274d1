"""The web UI: a Gradio page to try a reranker in the browser.

The page ranks through a `rerankd.ui.core.Backend` over an `AsyncReranker` and imports no server module;
the CLI wires it: `rerankd serve` mounts it at /ui, ranking through the server's own app in-process
(`rerankd.ui.mount.mount_ui`), and `rerankd ui --url URL` serves it on its own, ranking through the
HTTP client (`rerankd.cli.ui`).

Nothing here imports Gradio at import time: `core` (form and ranking), `render` (HTML) and `examples` are
pure Python, and `blocks` imports Gradio when a page is built.
"""
