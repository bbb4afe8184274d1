"""`rerankd serve`: builds ServerSettings from the shared options, then runs the server (with the web UI
mounted at /ui unless --no-ui) in this process or on Ray Serve (the same mounts on the Ray ingress)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rerankd.allocator import AllocatorError, release_signals
from rerankd.cli.models_file import (
    ModelEntry,
    aligned,
    duplicate_names,
    env_list,
    read_models_file,
    split_models,
)
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
    FamilyChoice,
    FamilyOpt,
    InstructionOpt,
    MaxBatchSizeOpt,
    MaxBatchTokensOpt,
    MaxLengthOpt,
    MaxQueueOpt,
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
from rerankd.config import DEVICE_HELP, DTYPE_CHOICES, ModelConfig
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
        models=settings.model_names,
        default_instruction=settings.instruction,
    )


def mount_ui(app: FastAPI, state: ServerState) -> None:
    """The web UI at /ui (a mount for `create_app`; module-level, so it pickles to a Ray ingress)."""
    from rerankd.ui.mount import mount_ui as mount

    mount(app, ui_backend(app, state.settings))


def mounts(settings: ServerSettings) -> list[Mount]:
    """What `serve` mounts on the app, in one process and on Ray alike: the UI unless --no-ui."""
    return [mount_ui] if settings.ui else []


ServeModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Hub id or local directory of a model (repeatable: one engine per model; a request's "
        "`model` picks one, the first when absent; comma-separated in RERANKD_MODEL).",
    ),
]
PER_MODEL = "once for every model, or once per --model in order"


def serve(
    model: ServeModelOpt = None,
    models_file: Annotated[
        Path | None,
        typer.Option(
            "--models-file",
            help="TOML file of [[model]] tables (model, served_name, dtype, device, max_length, family, "
            "template, instruction, trust_remote_code), served after any --model.",
            envvar="RERANKD_MODELS_FILE",
        ),
    ] = None,
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
    served_model_name: Annotated[
        list[str] | None,
        typer.Option(
            help="The name clients see (default: the --model value); once per --model, in order "
            "(comma-separated in RERANKD_SERVED_MODEL_NAME).",
        ),
    ] = None,
    instruction: InstructionOpt = None,
    device: Annotated[
        list[str] | None, typer.Option(help=f"{DEVICE_HELP}; {PER_MODEL} (RERANKD_DEVICE: comma-separated).")
    ] = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option(
            help=f"{', '.join(DTYPE_CHOICES)} (int8: CPU only); {PER_MODEL} (RERANKD_DTYPE: comma-separated)."
        ),
    ] = None,
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
    """Serve one or several models over HTTP: Cohere, Jina, SiliconFlow, vLLM and TEI rerank APIs,
    vLLM's score API."""
    if not ray:  # a SIGTERM while the model is checked (torch imports) exits 0, not 143
        from rerankd.server.run import EARLY_SIGNALS

        EARLY_SIGNALS.install()
    try:
        release_signals()  # those that came in while it re-executed itself with jemalloc (cli.main)
    except AllocatorError as e:
        raise fail(str(e), EXIT_USAGE) from None
    # Read here, not by click: click splits a list option's variable on whitespace, which would cut
    # "/models/my model" or a served name with a space in two. These split on commas.
    entries = model_entries(
        env_list(model, "RERANKD_MODEL"),
        models_file,
        env_list(served_model_name, "RERANKD_SERVED_MODEL_NAME"),
        env_list(dtype, "RERANKD_DTYPE"),
        env_list(device, "RERANKD_DEVICE"),
    )
    keys = [k.strip() for item in api_key or [] for k in item.split(",") if k.strip()]
    if api_key_file is not None:
        keys += read_key_file(existing_file(api_key_file, "--api-key-file"))
    positive(**{"--max-docs-per-request": max_docs_per_request, "--port": port})
    # Usage first (cheap, exit 2), then the model: nothing is resolved for a command line that is wrong.
    if not ray and (replicas is not None or autoscale is not None or ray_address is not None):
        raise fail("--replicas, --autoscale and --ray-address need --ray", EXIT_USAGE)
    scales = None
    if ray:
        from rerankd.scaleout.scale import scale_config

        positive(**{"--replicas": replicas})
        try:  # each model its own replicas; the GPUs a replica takes follow its model's device
            scales = [
                scale_config(
                    ModelConfig(model=e.model, device=e.device or DEVICE),
                    replicas=replicas,
                    autoscale=autoscale,
                    address=ray_address,
                )
                for e in entries
            ]
        except ValueError as e:
            raise fail(str(e), EXIT_USAGE) from None
    # Extras, devices and every model's files are settled before a port is bound (one line, exit 2).
    configs = []
    for entry in entries:
        entry_device = entry.device or DEVICE
        prepared = prepare_model(
            entry.model,
            device=entry_device,
            served_name=entry.served_name,
            extras=("server", "ray") if ray else ("server",),
        )
        configs.append(
            model_config(
                prepared.path,
                device=entry_device,
                dtype=entry.dtype or DTYPE,
                max_length=entry.max_length if entry.max_length is not None else max_length,
                instruction=entry.instruction if entry.instruction is not None else instruction,
                family=FamilyChoice(entry.family) if entry.family else family,
                template=entry.template if entry.template is not None else template,
                trust_remote_code=(
                    trust_remote_code if entry.trust_remote_code is None else entry.trust_remote_code
                ),
                served_name=prepared.name,
                batch_invariant=batch_invariant,
            )
        )
    settings = ServerSettings.of(
        configs[0],
        batch_config(max_batch_tokens, max_batch_size, max_queue, score_cache),
        models=tuple(configs[1:]),
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

    assert scales is not None
    raise typer.Exit(serve_on_ray(settings, scales[0], mounts(settings), scales))


def model_entries(
    models: list[str] | None,
    models_file: Path | None,
    served_names: list[str] | None,
    dtypes: list[str] | None,
    devices: list[str] | None,
) -> list[ModelEntry]:
    """The models to serve, in order: each --model (with its aligned options), then the file's. A
    shared --dtype/--device (given once) is every model's default, the file's included; names must
    be unique, since a request picks its model by name."""
    given = split_models(models)
    from_file = read_models_file(models_file) if models_file is not None else []
    if not given and not from_file:
        raise fail(
            "pass --model (a hub id, a local model directory, or tiny-random) or --models-file", EXIT_USAGE
        )
    n = len(given)
    if not given and (served_names or (dtypes and len(dtypes) > 1) or (devices and len(devices) > 1)):
        raise fail("--served-model-name, and a --dtype or --device per model, need --model", EXIT_USAGE)
    names = aligned(served_names, n, "--served-model-name", once_for_all=False)
    dts = aligned(dtypes, n, "--dtype")
    devs = aligned(devices, n, "--device")
    shared_dtype = dtypes[0] if dtypes and len(dtypes) == 1 else None
    shared_device = devices[0] if devices and len(devices) == 1 else None
    entries = [
        ModelEntry(model=m, served_name=name, dtype=dt, device=dev)
        for m, name, dt, dev in zip(given, names, dts, devs, strict=True)
    ] + [replace(e, dtype=e.dtype or shared_dtype, device=e.device or shared_device) for e in from_file]
    from rerankd import smoke

    served = [
        e.served_name or (smoke.SERVED_NAME if smoke.is_tiny_random(e.model) else e.model) for e in entries
    ]
    twice = duplicate_names(served)
    if twice:
        raise fail(
            f"two models would both be served as {', '.join(repr(t) for t in twice)}: a request picks its "
            "model by name, so give each a distinct --served-model-name (or served_name in --models-file)",
            EXIT_USAGE,
        )
    return entries


def app_builder(args: Mapping[str, Any]) -> Any:
    """A Serve config file's or KubeRay RayService's `import_path: rerankd.cli.serve:app_builder`: the
    application of `rerankd serve --ray`, web UI included unless `ui: false`. The args are those of
    `rerankd.scaleout.serve.app_builder` (which mounts no UI)."""
    from rerankd.scaleout.serve import build_application, serve_args

    settings, scales = serve_args(args)
    return build_application(settings, scales[0], mounts(settings), scales=scales)
