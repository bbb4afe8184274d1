"""The options every command shares, declared once, and the one error printer.

Model options (--model ... --trust-remote-code), batch options (--max-batch-tokens, --max-batch-size,
--max-queue) and client options (--url, --api-key, --provider, --timeout) are typer `Annotated` aliases;
their defaults come from `rerankd.config`, so a command states none of its own. `model_config` and
`batch_config` turn the parsed values into the objects the loaders take."""

from __future__ import annotations

import contextlib
import enum
import importlib.util
from dataclasses import dataclass
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
    DEFAULT_SCORE_CACHE,
    DEVICE_HELP,
    DTYPE_CHOICES,
    BatchConfig,
    ModelConfig,
)
from rerankd.errors import ModelLoadError

err = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes shared by every command.
EXIT_ERROR = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print `error: message` on stderr; `raise fail(...)` ends the command with `code`."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


#: The extra that installs each optional top-level module, for one-line "pip install" errors.
EXTRA_OF = {
    "torch": "local",
    "transformers": "local",
    "safetensors": "local",
    "tokenizers": "local",
    "huggingface_hub": "local",
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "gradio": "ui",
    "bm25s": "eval",
    "pytrec_eval": "eval",
    "matplotlib": "eval",
    "ray": "ray",
    "modelscope": "modelscope",
}
#: What each extra must bring for a command to start (checked before any work).
NEEDS = {
    "local": ("torch", "transformers", "safetensors", "huggingface_hub"),
    "server": ("fastapi", "uvicorn", "prometheus_client"),
    "ui": ("gradio",),
    "eval": ("bm25s", "pytrec_eval"),
    "ray": ("ray",),
}


def missing_extra(module: str | None) -> str | None:
    """The one-line error for a missing optional module, or None when it is not one of ours."""
    top = (module or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return f'this needs {top}, which is not installed: pip install "rerankd[{extra}]"'


def require(*extras: str) -> None:
    """Refuse to start (exit 2, one line) when an extra the command needs is not installed."""
    for extra in extras:
        for module in NEEDS[extra]:
            if importlib.util.find_spec(module) is None:
                raise fail(missing_extra(module) or module, EXIT_USAGE)


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
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="The LLM reranker's prompt format, when detection should be overridden: qwen3-reranker, "
        "bge-reranker-v2-gemma or mxbai-rerank-v2 (default: recognised from the model's config and tokenizer).",
        envvar="RERANKD_TEMPLATE",
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
BatchInvariantOpt = Annotated[
    bool,
    typer.Option(
        "--batch-invariant",
        help="Scores bitwise independent of what else is batched (LLM rerankers; see the README's "
        "'Batch-invariant scores' for the cost).",
        envvar="RERANKD_BATCH_INVARIANT",
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
    template: str | None = None,
    trust_remote_code: bool = False,
    served_name: str | None = None,
    batch_invariant: bool = False,
) -> ModelConfig:
    """The parsed model options as a ModelConfig (the loader refuses an unknown dtype). `tiny-random`
    becomes the smoke-test model's directory here, so every command that loads a model takes it."""
    positive(**{"--max-length": max_length})
    from rerankd import smoke

    if smoke.is_tiny_random(model):
        prepared = prepare_model(model, device=device, served_name=served_name)
        model, served_name = prepared.path, prepared.name
    with contextlib.suppress(ImportError):  # a missing extra is named where the model loads
        quiet_loading()
    return ModelConfig(
        model=model,
        device=device,
        dtype=dtype,
        max_length=max_length,
        instruction=instruction,
        family=family.value if family is not None else None,
        template=template,
        trust_remote_code=trust_remote_code,
        served_name=served_name,
        batch_invariant=batch_invariant,
    )


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, saying what to do instead (before any loading)."""
    name = device.strip().lower()
    if not name.startswith(("cuda", "mps")):
        return
    import torch

    if name.startswith("mps"):
        if not torch.backends.mps.is_available():
            raise fail(
                f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu", EXIT_USAGE
            )
        return
    if not torch.cuda.is_available():
        why = (
            f"torch {torch.__version__} is a CPU-only build"
            if torch.version.cuda is None
            else "no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
        raise fail(
            f"--device {device}: CUDA is not available here: {why}. Use --device cpu (or auto), or on a "
            "machine with an NVIDIA GPU install a CUDA build of torch (make install TORCH=cuda)",
            EXIT_USAGE,
        )
    _, _, index = name.partition(":")
    if index.isdigit() and int(index) >= torch.cuda.device_count():
        raise fail(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)", EXIT_USAGE
        )


def quiet_loading() -> None:
    """No per-load "Loading weights" / "Writing model shards" bars from transformers: a command shows one
    progress bar, the download's, which has already run by the time this is called."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class PreparedModel:
    path: str  # a local directory: nothing downloads after this
    name: str  # what results and /v1/models call it
    smoke: bool  # the tiny-random smoke-test model


def prepare_model(
    model: str, *, device: str, served_name: str | None = None, extras: tuple[str, ...] = ()
) -> PreparedModel:
    """Everything that can refuse a model, before any port is bound or weights are read: the extras, the
    device, and the model's files (the directory, the hub cache, a download, or the tiny-random build).
    Each refusal is one line and exit 2."""
    from rerankd import hub, smoke

    require("local", *extras)
    check_device(device)
    if smoke.is_tiny_random(model):
        quiet_loading()
        err.print(f"[bold yellow]WARNING:[/] {escape(smoke.WARNING)}")
        return PreparedModel(str(smoke.tiny_random_dir()), served_name or smoke.SERVED_NAME, True)
    try:
        path = hub.resolve(model)
    except ModelLoadError as e:
        raise fail(str(e), EXIT_USAGE) from None
    quiet_loading()
    return PreparedModel(str(path), served_name or model, False)


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
ScoreCacheOpt = Annotated[
    int,
    typer.Option(
        "--score-cache",
        help="Keep the scores of this many recent pairs (LRU; a repeated pair skips the model). 0: off.",
        envvar="RERANKD_SCORE_CACHE",
    ),
]
SCORE_CACHE = DEFAULT_SCORE_CACHE


def batch_config(
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    max_batch_size: int = MAX_BATCH_SIZE,
    max_queue: int = MAX_QUEUE,
    score_cache: int = SCORE_CACHE,
) -> BatchConfig:
    positive(
        **{
            "--max-batch-tokens": max_batch_tokens,
            "--max-batch-size": max_batch_size,
            "--max-queue": max_queue,
        }
    )
    if score_cache < 0:
        raise fail(f"--score-cache must be 0 (off) or a number of pairs, got {score_cache}", EXIT_USAGE)
    return BatchConfig(
        max_batch_tokens=max_batch_tokens,
        max_batch_size=max_batch_size,
        max_queue=max_queue,
        score_cache=score_cache,
    )


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
