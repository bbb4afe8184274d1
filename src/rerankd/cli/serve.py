"""`rerankd serve`: builds ServerSettings from the shared options, then runs the server (with the web UI
mounted at /ui unless --no-ui) in this process or on Ray Serve (the same mounts on the Ray ingress)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rerankd.cli.options import (
    DEVICE,
    DTYPE,
    EXIT_USAGE,
    MAX_BATCH_SIZE,
    MAX_BATCH_TOKENS,
    MAX_LENGTH,
    MAX_QUEUE,
    SCORE_CACHE,
    BatchInvariantOpt,
    DeviceOpt,
    DtypeOpt,
    FamilyOpt,
    InstructionOpt,
    MaxBatchSizeOpt,
    MaxBatchTokensOpt,
    MaxLengthOpt,
    MaxQueueOpt,
    ModelOpt,
    ScoreCacheOpt,
    TemplateOpt,
    TrustRemoteCodeOpt,
    batch_config,
    existing_file,
    fail,
    model_config,
    positive,
    prepare_model,
)
from rerankd.config import ModelConfig
from rerankd.server.settings import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DOCS_PER_REQUEST,
    DEFAULT_MAX_QUERY_CHARS,
    DEFAULT_PORT,
    ServerSettings,
    read_key_file,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rerankd.server.app import Mount
    from rerankd.server.state import ServerState
    from rerankd.ui.core import Backend

#: The mounted UI's client calls the app in-process; this name only shows in the Host header.
UI_BASE_URL = "http://rerankd.local"


def ui_backend(app: FastAPI, settings: ServerSettings) -> Backend:
    """The mounted UI's backend: it ranks through this same app in-process (httpx.ASGITransport), so the
    gate's auth, body and queue limits, the metrics and the access log apply to it as to any API call."""
    import httpx

    from rerankd.ui.core import DEFAULT_TIMEOUT, client_backend

    return client_backend(
        UI_BASE_URL,
        # A crash inside the app reaches the page as the 500 a remote client would get.
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        provider="rerankd",
        retries=0,  # in-process: a retry would only repeat the server's own answer
        timeout=DEFAULT_TIMEOUT,
        needs_key=bool(settings.api_keys),
        where="this server",
        model=settings.model_name,
        default_instruction=settings.instruction,
    )


def mount_ui(app: FastAPI, state: ServerState) -> None:
    """The web UI at /ui (a mount for `create_app`; module-level, so it pickles to a Ray ingress)."""
    from rerankd.ui.mount import mount_ui as mount

    mount(app, ui_backend(app, state.settings))


def mounts(settings: ServerSettings) -> list[Mount]:
    """What `serve` mounts on the app, in one process and on Ray alike: the UI unless --no-ui."""
    return [mount_ui] if settings.ui else []


def serve(
    model: ModelOpt,
    host: Annotated[str, typer.Option(envvar="RERANKD_HOST")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(envvar="RERANKD_PORT")] = DEFAULT_PORT,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accepted API key (repeatable; comma-separated in RERANKD_API_KEY).",
            envvar="RERANKD_API_KEY",
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="File of accepted API keys, one per line.", envvar="RERANKD_API_KEY_FILE"),
    ] = None,
    served_model_name: Annotated[str | None, typer.Option(envvar="RERANKD_SERVED_MODEL_NAME")] = None,
    instruction: InstructionOpt = None,
    device: DeviceOpt = DEVICE,
    dtype: DtypeOpt = DTYPE,
    max_length: MaxLengthOpt = MAX_LENGTH,
    family: FamilyOpt = None,
    template: TemplateOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    batch_invariant: BatchInvariantOpt = False,
    max_batch_tokens: MaxBatchTokensOpt = MAX_BATCH_TOKENS,
    max_batch_size: MaxBatchSizeOpt = MAX_BATCH_SIZE,
    max_queue: MaxQueueOpt = MAX_QUEUE,
    score_cache: ScoreCacheOpt = SCORE_CACHE,
    max_docs_per_request: Annotated[
        int, typer.Option(envvar="RERANKD_MAX_DOCS_PER_REQUEST")
    ] = DEFAULT_MAX_DOCS_PER_REQUEST,
    max_body_bytes: Annotated[int, typer.Option(envvar="RERANKD_MAX_BODY_BYTES")] = DEFAULT_MAX_BODY_BYTES,
    max_query_chars: Annotated[int, typer.Option(envvar="RERANKD_MAX_QUERY_CHARS")] = DEFAULT_MAX_QUERY_CHARS,
    drain_timeout: Annotated[
        float,
        typer.Option(help="Seconds to finish in-flight requests on SIGTERM.", envvar="RERANKD_DRAIN_TIMEOUT"),
    ] = DEFAULT_DRAIN_TIMEOUT,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Do not mount the web UI at /ui.", envvar="RERANKD_NO_UI")
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="RERANKD_LOG_LEVEL")] = "info",
    ray: Annotated[
        bool, typer.Option("--ray", help="Serve on Ray Serve (needs rerankd[ray]).", envvar="RERANKD_RAY")
    ] = False,
    replicas: Annotated[
        int | None, typer.Option(help="With --ray: model replicas.", envvar="RERANKD_RAY_REPLICAS")
    ] = None,
    autoscale: Annotated[
        str | None,
        typer.Option(
            help="With --ray: autoscale between MIN:MAX replicas on ongoing requests per replica.",
            envvar="RERANKD_RAY_AUTOSCALE",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --ray: an existing Ray cluster (default: RAY_ADDRESS, else a local one)."),
    ] = None,
) -> None:
    """Serve the model over HTTP: Cohere, Jina, SiliconFlow, vLLM and TEI rerank APIs, vLLM's score API."""
    if not ray:  # a SIGTERM while the model is checked (torch imports) exits 0, not 143
        from rerankd.server.run import EARLY_SIGNALS

        EARLY_SIGNALS.install()
    if not model:
        raise fail("pass --model (a hub id, a local model directory, or tiny-random)", EXIT_USAGE)
    keys = [k.strip() for item in api_key or [] for k in item.split(",") if k.strip()]
    if api_key_file is not None:
        keys += read_key_file(existing_file(api_key_file, "--api-key-file"))
    positive(**{"--max-docs-per-request": max_docs_per_request, "--port": port})
    # Usage first (cheap, exit 2), then the model: nothing is resolved for a command line that is wrong.
    scale = None
    if not ray and (replicas is not None or autoscale is not None or ray_address is not None):
        raise fail("--replicas, --autoscale and --ray-address need --ray", EXIT_USAGE)
    if ray:
        from rerankd.scaleout.scale import scale_config

        positive(**{"--replicas": replicas})
        try:
            scale = scale_config(
                ModelConfig(model=model, device=device),
                replicas=replicas,
                autoscale=autoscale,
                address=ray_address,
            )
        except ValueError as e:
            raise fail(str(e), EXIT_USAGE) from None
    # Extras, device and the model's files are settled before a port is bound (one line, exit 2).
    prepared = prepare_model(
        model, device=device, served_name=served_model_name, extras=("server", "ray") if ray else ("server",)
    )
    model, served_model_name = prepared.path, prepared.name
    settings = ServerSettings.of(
        model_config(
            model,
            device=device,
            dtype=dtype,
            max_length=max_length,
            instruction=instruction,
            family=family,
            template=template,
            trust_remote_code=trust_remote_code,
            served_name=served_model_name,
            batch_invariant=batch_invariant,
        ),
        batch_config(max_batch_tokens, max_batch_size, max_queue, score_cache),
        host=host,
        port=port,
        api_keys=tuple(keys),
        max_docs_per_request=max_docs_per_request,
        max_body_bytes=max_body_bytes,
        max_query_chars=max_query_chars,
        drain_timeout=drain_timeout,
        log_level=log_level,
        ui=not no_ui,
    )
    if not ray:
        from rerankd.server.run import serve as run_server

        raise typer.Exit(run_server(settings, mounts=mounts(settings)))
    from rerankd.scaleout.serve import serve_on_ray

    assert scale is not None
    raise typer.Exit(serve_on_ray(settings, scale, mounts(settings)))


def app_builder(args: Mapping[str, Any]) -> Any:
    """A Serve config file's or KubeRay RayService's `import_path: rerankd.cli.serve:app_builder`: the
    application of `rerankd serve --ray`, web UI included unless `ui: false`. The args are those of
    `rerankd.scaleout.serve.app_builder` (which mounts no UI)."""
    from rerankd.scaleout.serve import build_application, settings_from_args

    settings, scale = settings_from_args(args)
    return build_application(settings, scale, mounts(settings))
