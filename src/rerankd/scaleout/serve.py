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
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import FrameType
from typing import Any

from rerankd.server.settings import ServerSettings

log = logging.getLogger("rerankd.scaleout")

APP_NAME = "rerankd"
DEFAULT_TARGET_ONGOING_REQUESTS = 4.0  # requests per replica the autoscaler aims for (batching wants > 1)
DEFAULT_MAX_ONGOING_REQUESTS = 64  # requests one model replica takes at once (its batcher merges them)
INGRESS_MAX_ONGOING_REQUESTS = 2048


@dataclass(frozen=True)
class ScaleConfig:
    """How the model deployment scales. `autoscale` (min, max) wins over a fixed `replicas`.

    `num_gpus` per replica: 1 gives each replica a GPU of its own; 0.5 packs two replicas on a GPU.
    """

    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    target_ongoing_requests: float = DEFAULT_TARGET_ONGOING_REQUESTS
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")
        if self.autoscale is not None:
            low, high = self.autoscale
            if low < 0 or high < 1 or low > high:
                raise ValueError(f"autoscale MIN:MAX needs 0 <= MIN <= MAX and MAX >= 1, got {low}:{high}")
        if self.target_ongoing_requests <= 0 or self.max_ongoing_requests < 1:
            raise ValueError("target_ongoing_requests and max_ongoing_requests must be positive")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("num_cpus and num_gpus cannot be negative")

    def model_options(self, settings: ServerSettings) -> dict[str, Any]:
        """Options for the model deployment (`Deployment.options(...)`)."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "graceful_shutdown_timeout_s": settings.drain_timeout,
            "health_check_period_s": 5,
        }
        if self.autoscale is not None:
            low, high = self.autoscale
            options["autoscaling_config"] = {
                "min_replicas": low,
                "initial_replicas": max(low, 1),
                "max_replicas": high,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def parse_autoscale(value: str) -> tuple[int, int]:
    """'MIN:MAX' → (MIN, MAX)."""
    low, sep, high = value.partition(":")
    try:
        if not sep:
            raise ValueError
        bounds = (int(low), int(high))
    except ValueError:
        raise ValueError(f"--autoscale takes MIN:MAX (for example 1:4), got {value!r}") from None
    ScaleConfig(autoscale=bounds)  # validates
    return bounds


def default_num_gpus(settings: ServerSettings) -> float:
    """One GPU per replica when the model runs on CUDA (or device auto and a GPU is visible)."""
    env = os.environ.get("RERANKD_RAY_NUM_GPUS")
    if env:
        return float(env)
    if settings.device.startswith("cuda"):
        return 1.0
    if settings.device == "auto":
        try:
            import torch

            return 1.0 if torch.cuda.is_available() else 0.0
        except ImportError:
            return 0.0
    return 0.0


def scale_from_env(
    settings: ServerSettings, replicas: int | None = None, autoscale: tuple[int, int] | None = None
) -> ScaleConfig:
    """A ScaleConfig from CLI values plus RERANKD_RAY_NUM_CPUS / _NUM_GPUS / _TARGET_ONGOING_REQUESTS /
    _MAX_ONGOING_REQUESTS."""
    env = os.environ
    return ScaleConfig(
        replicas=replicas or 1,
        autoscale=autoscale,
        target_ongoing_requests=float(
            env.get("RERANKD_RAY_TARGET_ONGOING_REQUESTS", DEFAULT_TARGET_ONGOING_REQUESTS)
        ),
        max_ongoing_requests=int(env.get("RERANKD_RAY_MAX_ONGOING_REQUESTS", DEFAULT_MAX_ONGOING_REQUESTS)),
        num_cpus=float(env.get("RERANKD_RAY_NUM_CPUS", 1.0)),
        num_gpus=default_num_gpus(settings),
    )


def build_application(settings: ServerSettings, scale: ScaleConfig) -> Any:
    """The Ray Serve application: Ingress(settings, Model(settings)), ready for `serve.run`."""
    from rerankd.scaleout.deployments import Ingress, Model

    model = Model.options(**scale.model_options(settings)).bind(settings)
    ingress = Ingress.options(
        num_replicas=1,
        max_ongoing_requests=INGRESS_MAX_ONGOING_REQUESTS,
        ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=settings.drain_timeout,
    )
    return ingress.bind(settings, model)


_SETTING_FIELDS = {f.name: f for f in fields(ServerSettings)}


def app_builder(args: Mapping[str, Any]) -> Any:
    """Entry point for a Serve config file or KubeRay's RayService (`import_path:
    rerankd.scaleout.serve:app_builder`). `args`: any ServerSettings field (model, api_keys as a list or
    a comma-separated string, max_batch_tokens...) plus replicas, autoscale ('MIN:MAX'),
    target_ongoing_requests, max_ongoing_requests, num_cpus, num_gpus. API keys also come from
    RERANKD_API_KEY (comma-separated), so a Kubernetes secret can hold them."""
    args = dict(args)
    scale_keys = ("replicas", "autoscale", "target_ongoing_requests", "max_ongoing_requests")
    scale_args = {k: args.pop(k) for k in (*scale_keys, "num_cpus", "num_gpus") if k in args}
    unknown = sorted(set(args) - set(_SETTING_FIELDS))
    if unknown:
        raise ValueError(f"unknown rerankd args: {', '.join(unknown)}")
    if "model" not in args and os.environ.get("RERANKD_MODEL"):
        args["model"] = os.environ["RERANKD_MODEL"]
    if "model" not in args:
        raise ValueError("args.model (or RERANKD_MODEL) is required")
    keys = args.pop("api_keys", None) or os.environ.get("RERANKD_API_KEY", "")
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
    settings = ServerSettings(api_keys=tuple(keys), **settings_args)
    autoscale = scale_args.get("autoscale")
    scale = ScaleConfig(
        replicas=int(scale_args.get("replicas", 1)),
        autoscale=parse_autoscale(str(autoscale)) if autoscale else None,
        target_ongoing_requests=float(
            scale_args.get("target_ongoing_requests", DEFAULT_TARGET_ONGOING_REQUESTS)
        ),
        max_ongoing_requests=int(scale_args.get("max_ongoing_requests", DEFAULT_MAX_ONGOING_REQUESTS)),
        num_cpus=float(scale_args.get("num_cpus", 1.0)),
        num_gpus=float(scale_args.get("num_gpus", default_num_gpus(settings))),
    )
    return build_application(settings, scale)


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
    *,
    replicas: int | None = None,
    autoscale: str | tuple[int, int] | None = None,
    ray_address: str | None = None,
) -> int:
    """Deploy, serve until SIGTERM/SIGINT, drain, shut Serve down. Exit code: 0 after a clean drain, 1
    if Ray or the deployment failed, 2 for a usage error. `ray_address`: an existing cluster
    ("auto", "ray://head:10001", "head:6379"); None starts a local Ray instance (or joins RAY_ADDRESS)."""
    from rerankd.server.run import configure_logging

    configure_logging(settings.log_level)
    try:
        bounds = parse_autoscale(autoscale) if isinstance(autoscale, str) else autoscale
        if bounds is not None and replicas is not None:
            raise ValueError("pass --replicas or --autoscale, not both")
        scale = scale_from_env(settings, replicas, bounds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        import ray
        from ray import serve
    except ImportError:
        print("error: --ray needs Ray Serve: pip install 'rerankd[ray]'", file=sys.stderr)
        return 2

    signals = _Signals()
    own_cluster = ray_address is None and not os.environ.get("RAY_ADDRESS")
    try:
        ray.init(
            address=ray_address,
            include_dashboard=False if own_cluster else None,
            logging_level=logging.WARNING,
        )
        serve.start(http_options={"host": settings.host, "port": settings.port})
        application = build_application(settings, scale)
        ingress = serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as e:
        print(f"error: could not deploy on Ray: {type(e).__name__}: {e}", file=sys.stderr)
        _shutdown(own_cluster)
        return 1
    signals.install()  # after ray.init, which installs handlers of its own
    shape = f"autoscaling {bounds[0]}-{bounds[1]}" if bounds else f"{scale.replicas} replica(s)"
    log.info(
        "serving %s on http://%s:%d with Ray Serve (%s, %g CPU / %g GPU each)",
        settings.model_name,
        settings.host,
        settings.port,
        shape,
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
