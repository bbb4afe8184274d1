"""Server settings. The CLI fills them from options and RERANKD_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rerankd.engine.engine import EngineConfig


@dataclass(frozen=True)
class ServerSettings:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # never printed or logged
    served_model_name: str | None = None
    instruction: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = 8192
    max_batch_tokens: int = 8192
    max_batch_size: int = 64
    max_docs_per_request: int = 1000
    max_queue: int = 4096
    max_body_bytes: int = 10 * 1024 * 1024
    max_query_chars: int = 32_000
    drain_timeout: float = 30.0
    retry_after: float = 1.0
    log_level: str = "info"
    ui: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.max_batch_size,
            max_queue=self.max_queue,
        )


def read_key_file(path: Path) -> list[str]:
    """One key per line; blank lines and lines starting with # are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
