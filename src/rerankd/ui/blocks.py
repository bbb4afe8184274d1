"""The page: Gradio Blocks around `rerankd.ui.core`. Importing this module imports Gradio."""

from __future__ import annotations

import html
import logging
import os
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a self-hosted server

import gradio as gr
import pandas as pd

from rerankd.ui.core import Backend, UIError, read_upload, run_ranking
from rerankd.ui.examples import EXAMPLES
from rerankd.ui.render import error_html
from rerankd.ui.render import status_html as _status

log = logging.getLogger("rerankd.ui")

TITLE = "rerankd"
#: How many rankings run at once per page (the engine batches them together).
CONCURRENCY = 16
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
#rr-header h1 { margin: 0 0 2px 0; font-size: 1.6rem; }
#rr-header p { margin: 0; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.rr-status { overflow-wrap: anywhere; padding: 10px 14px; border-radius: 8px; font-size: 0.95rem; line-height: 1.4; }
.rr-ok { background: var(--color-accent-soft); border: 1px solid var(--border-color-accent-subdued); }
.rr-info { background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rr-error { background: #fef2f2; color: #991b1b; border: 1px solid #fca5a5; font-weight: 500; }
.dark .rr-error { background: #450a0a; color: #fecaca; border-color: #7f1d1d; }
#rr-rank { min-height: 46px; font-size: 1.05rem; }
#rr-upload { min-height: 0; }
.rr-table { width: 100%; border-collapse: collapse; font-size: 0.95rem; margin: 0; }
.rr-table caption { text-align: left; font-weight: 600; padding: 0 0 6px 2px; color: var(--body-text-color); }
.rr-table th { text-align: left; font-weight: 600; padding: 8px 8px; background: var(--background-fill-secondary);
  border-bottom: 1px solid var(--border-color-primary); white-space: nowrap; }
.rr-table td { padding: 8px 8px; vertical-align: top; border-bottom: 1px solid var(--border-color-primary); }
.rr-table tbody tr:nth-child(even) { background: var(--background-fill-secondary); }
.rr-table .rr-rank, .rr-table .rr-index { width: 2.6em; text-align: right; font-variant-numeric: tabular-nums; }
.rr-table .rr-score { width: 4.8em; font-variant-numeric: tabular-nums; white-space: nowrap; }
@media (max-width: 480px) {
  .rr-table { font-size: 0.9rem; }
  .rr-table th, .rr-table td { padding: 6px 5px; }
}
.rr-table .rr-document { overflow-wrap: anywhere; }
.rr-table mark.rr-span { background: #fde68a; color: inherit; border-radius: 3px; padding: 0 1px; }
.dark .rr-table mark.rr-span { background: #854d0e; }
.rr-bar { display: block; height: 4px; margin-top: 4px; border-radius: 2px; background: var(--color-accent); }
"""


def theme() -> Any:
    """Gradio's Soft theme on system fonts: nothing is fetched from outside the server."""
    return gr.themes.Soft(primary_hue="indigo", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def page_options() -> dict[str, Any]:
    """Keyword arguments for `launch` and `mount_gradio_app` (Gradio 6 takes theme and CSS there)."""
    return {
        "theme": theme(),
        "css": CSS,
        "ssr_mode": False,
        "show_error": True,
        "max_file_size": "10mb",  # uploads are not behind the API key (the gate exempts /ui)
        "footer_links": ["gradio", "settings"],
    }


def _empty_chart() -> pd.DataFrame:
    return pd.DataFrame({"document": pd.Series([], dtype=str), "score": pd.Series([], dtype=float)})


def _no_chart() -> Any:
    return gr.update(value=_empty_chart(), visible=False)


def _header(backend: Backend) -> str:
    return f"<h1>{TITLE}</h1><p>Rank documents by their relevance to a query · {backend.describe()}</p>"


def build_blocks(backend: Backend) -> gr.Blocks:
    """The page for one backend."""
    with gr.Blocks(title=f"{TITLE} · rerank in the browser", analytics_enabled=False) as page:
        header = gr.HTML(_header(backend), elem_id="rr-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=280):
                # The model picker, for a server with several models (hidden, and unused, with one).
                picker = gr.Dropdown(
                    choices=list(backend.models),
                    value=backend.models[0] if backend.several else None,
                    label="Model",
                    info="Which of the server's models ranks the documents.",
                    visible=backend.several,
                    elem_id="rr-model",
                )
                query = gr.Textbox(
                    label="Query",
                    placeholder="What are you looking for?",
                    lines=2,
                    max_lines=6,
                    elem_id="rr-query",
                )
                documents = gr.Textbox(
                    label="Documents, one per line",
                    placeholder="One document per line…",
                    lines=8,
                    max_lines=20,
                    elem_id="rr-documents",
                )
                with gr.Row(equal_height=True):
                    upload = gr.File(
                        label="…or upload .txt / .jsonl",
                        file_types=[".txt", ".jsonl"],
                        height=118,
                        scale=2,
                        min_width=180,
                        elem_id="rr-upload",
                    )
                    top_n = gr.Number(
                        label="top_n (0 = all)",
                        value=None,
                        minimum=0,
                        precision=0,
                        scale=1,
                        min_width=140,
                        elem_id="rr-top-n",
                    )
                instruction = gr.Textbox(
                    label="Instruction",
                    info="What relevance means here (yes/no rerankers such as Qwen3-Reranker).",
                    value=backend.default_instruction,
                    lines=1,
                    max_lines=4,
                    elem_id="rr-instruction",
                )
                api_key = gr.Textbox(
                    label="API key",
                    placeholder="This server needs an API key",
                    type="password",
                    visible=backend.needs_key,
                    elem_id="rr-api-key",
                )
                show_spans = gr.Checkbox(
                    label="show relevant spans",
                    info="Highlight the passages of each document that made it relevant.",
                    value=False,
                    elem_id="rr-spans",
                )
                button = gr.Button("Rank", variant="primary", elem_id="rr-rank")
            with gr.Column(scale=6, min_width=280):
                status = gr.HTML(
                    _status(
                        "Enter a query and documents, or pick an example below, then press Rank.", "info"
                    ),
                    elem_id="rr-status",
                )
                table = gr.HTML("", elem_id="rr-results")
                chart = gr.BarPlot(
                    _empty_chart(),
                    x="document",
                    y="score",
                    sort="-y",
                    y_lim=[0, 1],
                    x_label_angle=-35,
                    height=300,
                    label="Scores",
                    visible=False,  # shown with the first ranking
                    elem_id="rr-chart",
                )
        examples = gr.Examples(
            examples=[[e.query, e.documents, e.instruction] for e in EXAMPLES],
            inputs=[query, documents, instruction],
            example_labels=[e.label for e in EXAMPLES],
            label="Examples: click one to rank it",
            elem_id="rr-examples",
        )

        async def rank(
            q: str, docs: str, instr: str, n: Any, key: str, model: str | None, spans: bool = False
        ) -> tuple[Any, Any, str, str]:
            try:
                shown = await run_ranking(backend, q, docs, instr, n, key, model, spans=bool(spans))
            except UIError as e:  # shown in the status line, next to the button (no toast over it)
                return "", _no_chart(), error_html(e.message), _header(backend)
            except Exception as e:  # a bug or the unexpected: say so on the page, never spin forever
                log.exception("the UI's ranking failed")
                message = f"Unexpected error: {type(e).__name__}: {e}"
                return "", _no_chart(), error_html(message), _header(backend)
            frame = pd.DataFrame(shown.chart, columns=["document", "score"])
            return shown.table, gr.update(value=frame, visible=True), shown.status, _header(backend)

        def load_file(path: str | None) -> tuple[Any, str]:
            if not path:
                return gr.skip(), gr.skip()
            try:
                docs = read_upload(path)
            except UIError as e:
                return gr.skip(), error_html(e.message)
            name = html.escape(os.path.basename(path))
            if not docs:
                return gr.skip(), error_html(f"{os.path.basename(path)} holds no documents.")
            return "\n".join(docs), _status(f"Loaded <b>{len(docs)}</b> documents from {name}.", "info")

        inputs = [query, documents, instruction, top_n, api_key, picker, show_spans]
        outputs = [table, chart, status, header]
        # The page's events are its own: the API is /v1/rerank (Gradio's API would bypass nothing, as
        # every ranking goes through the server's own checks, but one API is enough).
        ranking: dict[str, Any] = {
            "concurrency_limit": CONCURRENCY,
            "concurrency_id": "rank",
            "api_visibility": "private",
        }
        button.click(rank, inputs, outputs, api_name="rerank", **ranking)
        query.submit(rank, inputs, outputs, **ranking)
        upload.upload(load_file, [upload], [documents, status], api_visibility="private")
        loaded = getattr(examples, "load_input_event", None)
        if loaded is not None:  # an example click fills the form, then ranks it
            loaded.then(rank, inputs, outputs, **ranking)
        if backend.model is None:  # the server's model name, once the page opens

            async def refresh() -> str:
                await backend.refresh_model()
                return _header(backend)

            page.load(refresh, None, [header], api_visibility="private")
    return page
