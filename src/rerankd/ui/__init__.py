"""The web UI: a Gradio page to try a reranker in the browser.

`rerankd serve` mounts it at /ui (`rerankd.ui.mount.mount_ui`), scoring with the server's own engine;
`rerankd ui --url URL` serves it on its own, scoring through the HTTP client (`rerankd.ui.cli`).

Nothing here imports Gradio at import time: `rerankd.ui.core` is pure Python (the logic every test
can reach without a browser), and `rerankd.ui.blocks` imports Gradio when a page is built.
"""
