"""Server settings: the model and batch options (defaults from `rerankd.config`) and the HTTP ones.
The CLI fills them from options and RERANKD_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rerankd.config import BatchConfig, Family, ModelConfig

_MODEL = ModelConfig()
_BATCH = BatchConfig()

# The HTTP-only defaults, stated once (the CLI's options read them from here).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_DOCS_PER_REQUEST = 1000
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_QUERY_CHARS = 32_000
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_RETRY_AFTER = 1.0


@dataclass(frozen=True)
class ServerSettings:
    model: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # never printed or logged
    served_model_name: str | None = None
    instruction: str | None = None
    device: str = _MODEL.device
    dtype: str = _MODEL.dtype
    max_length: int = _MODEL.max_length
    family: Family | None = _MODEL.family
    template: str | None = _MODEL.template
    trust_remote_code: bool = _MODEL.trust_remote_code
    batch_invariant: bool = _MODEL.batch_invariant
    max_batch_tokens: int = _BATCH.max_batch_tokens
    max_batch_size: int = _BATCH.max_batch_size
    max_docs_per_request: int = DEFAULT_MAX_DOCS_PER_REQUEST
    max_queue: int = _BATCH.max_queue
    score_cache: int = _BATCH.score_cache
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    retry_after: float = DEFAULT_RETRY_AFTER
    log_level: str = "info"
    ui: bool = True  # read by the CLI, which passes the UI's mount to create_app
    # The models served after the first (whose options are the fields above), in served order; each
    # gets its own engine (batcher, queue, score cache) and its own length limit.
    models: tuple[ModelConfig, ...] = ()

    def __post_init__(self) -> None:
        # Two models under one name: the second would replace the first's engine (and its batcher
        # would never stop), so refuse it wherever settings are built (CLI, Serve config, create_app).
        names = [m.name for m in self.model_configs()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"two models are served under the name {', '.join(map(repr, twice))}: give each its own "
                "served name (--served-model-name, or served_name in the models file)"
            )

    @classmethod
    def of(cls, model: ModelConfig, batch: BatchConfig | None = None, **http: Any) -> ServerSettings:
        """Settings from the two configs plus HTTP options (host, port, api_keys, limits...); `models=`
        the ones served after `model`."""
        batch = batch or BatchConfig()
        shared = {f.name: getattr(model, f.name) for f in fields(ModelConfig) if f.name != "served_name"}
        shared |= {f.name: getattr(batch, f.name) for f in fields(BatchConfig)}
        return cls(served_model_name=model.served_name, **shared, **http)

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            max_length=self.max_length,
            instruction=self.instruction,
            family=self.family,
            template=self.template,
            trust_remote_code=self.trust_remote_code,
            served_name=self.served_model_name,
            batch_invariant=self.batch_invariant,
        )

    def model_configs(self) -> tuple[ModelConfig, ...]:
        """Every served model, in order: the first (a request without `model` gets it), then the rest."""
        return (self.model_config(), *self.models)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.model_configs())

    def batch_config(self) -> BatchConfig:
        return BatchConfig(
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.max_batch_size,
            max_queue=self.max_queue,
            score_cache=self.score_cache,
        )


def read_key_file(path: Path) -> list[str]:
    """One key per line; blank lines and lines starting with # are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
