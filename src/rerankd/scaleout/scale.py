"""How the work spreads over Ray: the one builder of the scale settings (replicas or autoscaling, the
resources each replica or actor takes, the cluster to join) for `serve --ray`, a Serve config file
(`app_builder`) and `batch --ray`, and the one place Ray is joined or started.

Ray is imported inside the functions: this module is importable without the `ray` extra."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerankd.config import ModelConfig

log = logging.getLogger("rerankd.scaleout")

DEFAULT_TARGET_ONGOING_REQUESTS = 4.0  # requests per replica the autoscaler aims for (batching wants > 1)
DEFAULT_MAX_ONGOING_REQUESTS = 64  # requests one model replica takes at once (its batcher merges them)
DEFAULT_NUM_CPUS = 1.0

# The environment variables `scale_config` reads when a value is not passed.
ENV_NUM_CPUS = "RERANKD_RAY_NUM_CPUS"
ENV_NUM_GPUS = "RERANKD_RAY_NUM_GPUS"
ENV_TARGET_ONGOING_REQUESTS = "RERANKD_RAY_TARGET_ONGOING_REQUESTS"
ENV_MAX_ONGOING_REQUESTS = "RERANKD_RAY_MAX_ONGOING_REQUESTS"


@dataclass(frozen=True)
class ScaleConfig:
    """How the model runs on Ray. `autoscale` (min, max) replaces a fixed `replicas`.

    `num_gpus` per replica (or batch actor): 1 gives each a GPU of its own; 0.5 packs two on a GPU.
    `address`: an existing cluster ("auto", "ray://head:10001", "head:6379"); None joins RAY_ADDRESS
    or starts a local Ray instance.
    """

    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    target_ongoing_requests: float = DEFAULT_TARGET_ONGOING_REQUESTS
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    num_cpus: float = DEFAULT_NUM_CPUS
    num_gpus: float = 0.0
    address: str | None = None

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

    @property
    def shape(self) -> str:
        if self.autoscale is not None:
            return f"autoscaling {self.autoscale[0]}-{self.autoscale[1]}"
        return f"{self.replicas} replica(s)"

    def model_options(self, graceful_shutdown_timeout_s: float) -> dict[str, Any]:
        """Options for the model deployment (`Deployment.options(...)`)."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "graceful_shutdown_timeout_s": graceful_shutdown_timeout_s,
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


def default_num_gpus(model: ModelConfig, env: Mapping[str, str] | None = None) -> float:
    """RERANKD_RAY_NUM_GPUS, else one GPU per replica when the model runs on CUDA (or device auto and a
    GPU is visible here), else none."""
    value = (os.environ if env is None else env).get(ENV_NUM_GPUS)
    if value:
        return float(value)
    if model.device.startswith("cuda"):
        return 1.0
    if model.device == "auto":
        try:
            import torch

            return 1.0 if torch.cuda.is_available() else 0.0
        except ImportError:
            return 0.0
    return 0.0


def scale_config(
    model: ModelConfig,
    *,
    replicas: int | str | None = None,
    autoscale: str | tuple[int, int] | None = None,
    address: str | None = None,
    target_ongoing_requests: float | str | None = None,
    max_ongoing_requests: int | str | None = None,
    num_cpus: float | str | None = None,
    num_gpus: float | str | None = None,
    env: Mapping[str, str] | None = None,
) -> ScaleConfig:
    """The one builder: each value as passed (CLI options, Serve config args; strings are parsed), else
    its RERANKD_RAY_* variable, else the default. ValueError for a bad value or for both `replicas` and
    `autoscale`."""
    env = os.environ if env is None else env
    bounds = parse_autoscale(autoscale) if isinstance(autoscale, str) else autoscale
    if bounds is not None and replicas is not None:
        raise ValueError("pass --replicas or --autoscale, not both")

    def pick(value: Any, var: str, default: Any) -> Any:
        return value if value is not None else env.get(var) or default

    try:
        return ScaleConfig(
            replicas=int(replicas) if replicas is not None else 1,
            autoscale=bounds,
            target_ongoing_requests=float(
                pick(target_ongoing_requests, ENV_TARGET_ONGOING_REQUESTS, DEFAULT_TARGET_ONGOING_REQUESTS)
            ),
            max_ongoing_requests=int(
                pick(max_ongoing_requests, ENV_MAX_ONGOING_REQUESTS, DEFAULT_MAX_ONGOING_REQUESTS)
            ),
            num_cpus=float(pick(num_cpus, ENV_NUM_CPUS, DEFAULT_NUM_CPUS)),
            num_gpus=float(num_gpus) if num_gpus is not None else default_num_gpus(model, env),
            address=address or None,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad Ray scale setting: {e}") from None


def joins_own_cluster(address: str | None) -> bool:
    """True when `connect_ray(address)` will start a Ray instance of our own (no address, no
    RAY_ADDRESS): then we shut it down at the end; on a shared cluster we only remove our own work."""
    return address is None and not os.environ.get("RAY_ADDRESS")


def connect_ray(address: str | None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local one, unless this process is
    connected already. Returns whether this call connected (so the caller disconnects at the end)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        include_dashboard=False if joins_own_cluster(address) else None,
        logging_level=logging.WARNING,
    )
    return True
