"""`rerankd serve --ray`: the same API and routes as the single-process server, as a Ray Serve
application (an ingress and a model deployment whose replicas each own an engine with its batcher), on a
local Ray instance or an existing cluster.

Ray is imported inside the functions: this module is importable without the `ray` extra.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from types import FrameType
from typing import TYPE_CHECKING, Any

from rerankd.config import ModelConfig
from rerankd.scaleout.scale import ScaleConfig, scale_config
from rerankd.server.settings import ServerSettings

if TYPE_CHECKING:
    from rerankd.server.app import Mount


log = logging.getLogger("rerankd.scaleout")

APP_NAME = "rerankd"
INGRESS_MAX_ONGOING_REQUESTS = 2048


def model_deployment(index: int) -> str:
    """The deployment of the index-th served model: "Model" for the first, "Model-2", "Model-3"..."""
    return "Model" if index == 0 else f"Model-{index + 1}"


def build_application(
    settings: ServerSettings,
    scale: ScaleConfig,
    mounts: Sequence[Mount] = (),
    scales: Sequence[ScaleConfig] | None = None,
) -> Any:
    """The Ray Serve application, ready for `serve.run`: Ingress(settings, Model(model, batch), mounts),
    with one model deployment per served model (`model_deployment`), each with its replicas.
    Each model replica gets its ModelConfig and the BatchConfig; the ingress serves the single-process
    app with `mounts` (the CLI passes the web UI's) over the replicas. `scales`: each model's shape
    (its GPUs follow its device); `scale` for every model when None. A mount must be picklable (a
    module-level function): it travels to the ingress replica."""
    from rerankd.scaleout.deployments import Ingress, Model

    shutdown = settings.drain_timeout
    configs = settings.model_configs()
    shapes = list(scales) if scales is not None else [scale] * len(configs)
    if len(shapes) != len(configs):
        raise ValueError(f"{len(shapes)} scale configs for {len(configs)} models")
    models = [
        Model.options(name=model_deployment(i), **shape.model_options(shutdown)).bind(
            config, settings.batch_config()
        )
        for i, (config, shape) in enumerate(zip(configs, shapes, strict=True))
    ]
    ingress = Ingress.options(
        num_replicas=1,
        max_ongoing_requests=INGRESS_MAX_ONGOING_REQUESTS,
        ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=shutdown,
    )
    return ingress.bind(settings, models[0], tuple(mounts), *models[1:])


_SETTING_FIELDS = {f.name: f for f in fields(ServerSettings)}
SCALE_ARGS = (
    "replicas",
    "autoscale",
    "target_ongoing_requests",
    "max_ongoing_requests",
    "num_cpus",
    "num_gpus",
)


def settings_from_args(args: Mapping[str, Any]) -> tuple[ServerSettings, ScaleConfig]:
    """`serve_args` with the first model's shape only (kept for callers that serve one model)."""
    settings, scales = serve_args(args)
    return settings, scales[0]


def serve_args(args: Mapping[str, Any]) -> tuple[ServerSettings, list[ScaleConfig]]:
    """A Serve config file's `args` as ServerSettings and ScaleConfig: any ServerSettings field (model,
    api_keys as a list or a comma-separated string, max_batch_tokens, `models`: a list of tables with
    ModelConfig's fields for the models served after `model`...) plus the SCALE_ARGS
    (autoscale as 'MIN:MAX'). API keys also come from RERANKD_API_KEY (comma-separated), so a
    Kubernetes secret can hold them; the model from RERANKD_MODEL."""
    args = dict(args)
    scale_args = {k: args.pop(k) for k in SCALE_ARGS if k in args}
    unknown = sorted(set(args) - set(_SETTING_FIELDS))
    if unknown:
        raise ValueError(f"unknown rerankd args: {', '.join(unknown)}")
    extra = args.pop("models", None) or ()
    if "model" not in args and os.environ.get("RERANKD_MODEL"):
        # Comma-separated, as `rerankd serve` reads it: the first is `model`, the rest come before `models`.
        first, *rest = [m.strip() for m in os.environ["RERANKD_MODEL"].split(",") if m.strip()] or [""]
        args["model"] = first
        extra = [{"model": m} for m in rest] + list(extra)
    if not args.get("model"):
        raise ValueError("args.model (or RERANKD_MODEL) is required")
    keys = args.pop("api_keys", None) or os.environ.get("RERANKD_API_KEY", "")
    if not isinstance(extra, (list, tuple)) or not all(isinstance(m, (dict, ModelConfig)) for m in extra):
        raise ValueError("args.models must be a list of model tables (model, served_name, dtype, device...)")
    models = tuple(m if isinstance(m, ModelConfig) else ModelConfig(**m) for m in extra)
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    settings_args: dict[str, Any] = {}
    for name, value in args.items():
        kind = str(_SETTING_FIELDS[name].type)
        if kind in ("int", "float") and value is not None:
            value = int(value) if kind == "int" else float(value)
        elif kind == "bool" and isinstance(value, str):
            value = value.lower() in ("1", "true", "yes")
        settings_args[name] = value
    settings = ServerSettings(api_keys=tuple(keys), models=models, **settings_args)
    autoscale = scale_args.pop("autoscale", None)
    # One shape per model: the GPUs a replica reserves follow its own model's device (unless num_gpus
    # is given, which then holds for every model).
    scales = [
        scale_config(config, autoscale=str(autoscale) if autoscale else None, **scale_args)
        for config in settings.model_configs()
    ]
    return settings, scales


def app_builder(args: Mapping[str, Any]) -> Any:
    """Entry point for a Serve config file or KubeRay's RayService (`import_path:
    rerankd.scaleout.serve:app_builder`), without the web UI; `rerankd.cli.serve:app_builder` takes
    the same args and mounts the UI unless `ui: false`. See `settings_from_args` for the args."""
    settings, scales = serve_args(args)
    return build_application(settings, scales[0], scales=scales)


class _Signals:
    """First SIGTERM/SIGINT: drain. A second one: stop waiting for requests in flight."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()

    def __call__(self, sig: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.hurry.set()
        else:
            log.info("signal %d: draining", sig)
        self.stop.set()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


def drain(ingress: Any, timeout: float, hurry: threading.Event) -> None:
    """Tell the ingress to refuse new requests, then wait until those in flight are done (or timeout)."""
    try:
        in_flight = ingress.drain.remote().result(timeout_s=10)
        log.info("draining %d request(s) in flight", in_flight)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not hurry.is_set():
            if ingress.idle.remote().result(timeout_s=10):
                return
            time.sleep(0.1)
        log.warning("drain timeout after %.0fs with requests in flight", timeout)
    except Exception as e:  # the ingress is gone already: nothing left to drain
        log.warning("could not drain the ingress: %s", e)


def serve_on_ray(
    settings: ServerSettings,
    scale: ScaleConfig,
    mounts: Sequence[Mount] = (),
    scales: Sequence[ScaleConfig] | None = None,
) -> int:
    """Deploy, serve until SIGTERM/SIGINT, drain, shut Serve down. Exit code: 0 after a clean drain, 1
    if Ray or the deployment failed, 2 when Ray Serve is not installed."""
    from rerankd.server.run import configure_logging

    configure_logging(settings.log_level)
    try:
        from ray import serve

        from rerankd.scaleout.scale import connect_ray, joins_own_cluster
    except ImportError:
        print("error: --ray needs Ray Serve: pip install 'rerankd[ray]'", file=sys.stderr)
        return 2

    signals = _Signals()
    own_cluster = joins_own_cluster(scale.address)
    try:
        connect_ray(scale.address)
        # Ours from here on, not ray.init's (which exits 15): a SIGTERM while Serve still deploys (its
        # ingress may already answer /ready) then drains and exits 0 once serve.run returns.
        signals.install()
        serve.start(http_options={"host": settings.host, "port": settings.port})
        application = build_application(settings, scale, mounts, scales)
        ingress = serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as e:
        print(f"error: could not deploy on Ray: {type(e).__name__}: {e}", file=sys.stderr)
        _shutdown(own_cluster)
        return 1
    signals.install()  # again: Serve's start-up may have put Ray's own handlers back
    log.info(
        "serving %s on http://%s:%d with Ray Serve (%s, %g CPU / %g GPU each)",
        ", ".join(settings.model_names),
        settings.host,
        settings.port,
        scale.shape,
        scale.num_cpus,
        scale.num_gpus,
    )
    while not signals.stop.wait(0.5):
        pass
    drain(ingress, settings.drain_timeout, signals.hurry)
    _shutdown(own_cluster)
    return 0


def _shutdown(own_cluster: bool) -> None:
    """Our own Ray instance: shut Serve and Ray down. A shared cluster: delete only our application."""
    try:
        from ray import serve

        if own_cluster:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    except Exception as e:
        log.warning("shutting down Serve: %s", e)
    try:
        import ray

        ray.shutdown()
    except Exception as e:
        log.warning("shutting down Ray: %s", e)
