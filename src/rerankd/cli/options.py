"""The options every command shares, declared once, and the one error printer.

Model options (--model ... --trust-remote-code), batch options (--max-batch-tokens, --max-batch-size,
--max-queue) and client options (--url, --api-key, --provider, --timeout) are typer `Annotated` aliases;
their defaults come from `rerankd.config`, so a command states none of its own. `model_config` and
`batch_config` turn the parsed values into the objects the loaders take."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from rerankd.config import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_QUEUE,
    DEVICE_HELP,
    DTYPE_CHOICES,
    BatchConfig,
    ModelConfig,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes shared by every command.
EXIT_ERROR = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print `error: message` on stderr; `raise fail(...)` ends the command with `code`."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def positive(**values: int | float | None) -> None:
    """Refuse a zero or negative option (None means unset): `positive(**{"--port": port})`."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise fail(f"{name} must be positive, got {value}", EXIT_USAGE)


class FamilyChoice(str, enum.Enum):
    yes_no = "yes_no"
    cross_encoder = "cross_encoder"


# -- model options ------------------------------------------------------------------------------------

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Hub id or local directory of the model.", envvar="RERANKD_MODEL"),
]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"{DEVICE_HELP}.", envvar="RERANKD_DEVICE")]
DtypeOpt = Annotated[
    str,
    typer.Option("--dtype", help=f"{', '.join(DTYPE_CHOICES)} (int8: CPU only).", envvar="RERANKD_DTYPE"),
]
MaxLengthOpt = Annotated[
    int,
    typer.Option(
        "--max-length", help="Maximum tokens per pair, template included.", envvar="RERANKD_MAX_LENGTH"
    ),
]
InstructionOpt = Annotated[
    str | None,
    typer.Option(
        "--instruction",
        "-i",
        help="Task instruction (yes/no rerankers such as Qwen3-Reranker).",
        envvar="RERANKD_INSTRUCTION",
    ),
]
FamilyOpt = Annotated[
    FamilyChoice | None,
    typer.Option(
        "--family",
        help="Model family, when the config does not tell: yes_no (Qwen3-Reranker) or cross_encoder.",
        envvar="RERANKD_FAMILY",
    ),
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Run the model repository's own code (only for models you trust).",
        envvar="RERANKD_TRUST_REMOTE_CODE",
    ),
]

# Defaults, for the signatures: `device: DeviceOpt = DEVICE`.
_MODEL = ModelConfig()
DEVICE = _MODEL.device
DTYPE = _MODEL.dtype
MAX_LENGTH = DEFAULT_MAX_LENGTH


def model_config(
    model: str,
    *,
    device: str = DEVICE,
    dtype: str = DTYPE,
    max_length: int = MAX_LENGTH,
    instruction: str | None = None,
    family: FamilyChoice | None = None,
    trust_remote_code: bool = False,
    served_name: str | None = None,
) -> ModelConfig:
    """The parsed model options as a ModelConfig (the loader refuses an unknown dtype)."""
    positive(**{"--max-length": max_length})
    return ModelConfig(
        model=model,
        device=device,
        dtype=dtype,
        max_length=max_length,
        instruction=instruction,
        family=family.value if family is not None else None,
        trust_remote_code=trust_remote_code,
        served_name=served_name,
    )


# -- batch options ------------------------------------------------------------------------------------

MaxBatchTokensOpt = Annotated[
    int,
    typer.Option(
        "--max-batch-tokens", help="Padded tokens per model batch.", envvar="RERANKD_MAX_BATCH_TOKENS"
    ),
]
MaxBatchSizeOpt = Annotated[
    int,
    typer.Option("--max-batch-size", help="Pairs per model batch.", envvar="RERANKD_MAX_BATCH_SIZE"),
]
MaxQueueOpt = Annotated[
    int,
    typer.Option(
        "--max-queue", help="Pairs waiting before new requests get 429.", envvar="RERANKD_MAX_QUEUE"
    ),
]
MAX_BATCH_TOKENS = DEFAULT_MAX_BATCH_TOKENS
MAX_BATCH_SIZE = DEFAULT_MAX_BATCH_SIZE
MAX_QUEUE = DEFAULT_MAX_QUEUE


def batch_config(
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    max_batch_size: int = MAX_BATCH_SIZE,
    max_queue: int = MAX_QUEUE,
) -> BatchConfig:
    positive(
        **{
            "--max-batch-tokens": max_batch_tokens,
            "--max-batch-size": max_batch_size,
            "--max-queue": max_queue,
        }
    )
    return BatchConfig(max_batch_tokens=max_batch_tokens, max_batch_size=max_batch_size, max_queue=max_queue)


# -- client options (a server instead of a local model) -----------------------------------------------

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Use this server (rerankd or another rerank provider) instead of a local model; "
        "--model then names the server's model.",
        envvar="RERANKD_URL",
    ),
]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="API key for --url.", envvar="RERANKD_API_KEY")
]
ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider", help="Wire dialect of --url: auto, rerankd, vllm, siliconflow, cohere, jina or tei."
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per attempt for --url.")]
PROVIDER = "auto"
TIMEOUT = 60.0


def check_url(url: str, option: str = "--url") -> None:
    if not url.startswith(("http://", "https://")):
        raise fail(f"{option} must start with http:// or https://, got {url!r}", EXIT_USAGE)


def existing_file(path: Path, option: str) -> Path:
    if not path.exists():
        raise fail(f"{option} {path}: no such file", EXIT_USAGE)
    return path
