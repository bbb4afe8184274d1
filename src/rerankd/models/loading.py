"""Hub id or local directory → a Scorer. The family comes from the model's config and tokenizer, never
from its name: a causal LM whose vocabulary has "yes" and "no" is a yes/no reranker, a
sequence-classification model is a cross-encoder."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from rerankd.config import SMOKE_MARKER, SMOKE_WARNING
from rerankd.errors import ModelLoadError, UnsupportedModelError
from rerankd.models.base import Family, ModelInfo, Scorer
from rerankd.models.families import FAMILIES, QWEN3, LLMFamily, family_named, recognise
from rerankd.models.kernels import apply_kernels
from rerankd.models.linear import pack_linear_weights
from rerankd.models.precision import (  # resolve_dtype: also imported from here
    INT8,
    auto_dtype,
    convert_in_place,
    int8_advice,
    quantize_int8,
    resolve_dtype,
    stored_dtype,
    weight_bytes,
)

log = logging.getLogger("rerankd.models")

__all__ = ["SUPPORTED", "cpu_threads", "detect_family", "load_scorer", "resolve_dtype"]

SUPPORTED = (
    "causal-LM rerankers (*ForCausalLM: Qwen3-Reranker 0.6B/4B/8B, bge-reranker-v2-gemma, "
    "mxbai-rerank-base/large-v2) and "
    "sequence-classification cross-encoders (*ForSequenceClassification with 1 or 2 labels, e.g. "
    "bge-reranker-v2-m3, cross-encoder/ms-marco-MiniLM-L-6-v2)"
)

_threads_configured = False


def max_token_chars(tokenizer: Any) -> int | None:
    """The longest vocabulary entry, in characters: an upper bound on the characters one token covers.
    Byte-level BPE writes each byte as one character and SentencePiece each space as one "▁", so an
    entry is never shorter than the text it stands for (Qwen3: 128, a run of spaces)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "WordPiece":
        # WordPiece reads a word too long for it as one [UNK], whatever its length: no bound.
        return None
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError):
        return None
    return max((len(t) for t in vocab), default=0) or None


def cpu_threads() -> int:
    """Cores this process may run on ($RERANKD_THREADS overrides)."""
    env = os.environ.get("RERANKD_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads() -> None:
    """Once per process, at the first CPU model load: intra-op threads = all cores ($RERANKD_THREADS),
    inter-op threads = 1. One forward pass at a time then uses every core; the server's own threads
    (event loop, HTTP workers, the engine's single model thread) mostly wait and do not compete, and no
    second pool of inter-op workers oversubscribes the cores."""
    global _threads_configured
    if _threads_configured:
        return
    _threads_configured = True
    torch.set_num_threads(cpu_threads())
    # Raises once inter-op work has started: the pool's size is fixed then.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e


def _where_tried(model: str) -> str:
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"):
        hub = "the Hugging Face Hub was not asked because HF_HUB_OFFLINE is set, and the local cache has no copy"
    else:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        hub = f"downloading it from {endpoint} failed"
    return (
        f"could not load model {model!r}: it is not a local directory, and {hub}. "
        "Pass a local directory that holds config.json, the weights and the tokenizer "
        "(for example --model ./Qwen3-Reranker-0.6B), or check the hub id and your network"
    )


def _load_config(model: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    path = Path(model).expanduser()
    looks_like_path = model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1
    if looks_like_path and not path.exists():
        raise ModelLoadError(
            f"no such directory: {model!r}. Pass a local model directory (with config.json) or a hub id "
            "such as Qwen/Qwen3-Reranker-0.6B"
        )
    if path.exists() and not path.is_dir():
        raise ModelLoadError(f"{model!r} is a file; pass the directory that holds config.json")
    if path.is_dir() and not (path / "config.json").exists():
        raise ModelLoadError(f"{model!r} is a directory but has no config.json; is it a model directory?")
    try:
        return AutoConfig.from_pretrained(
            str(path) if path.is_dir() else model, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as e:
        if path.is_dir():
            raise ModelLoadError(f"could not read the config in {model!r}: {e}") from e
        raise ModelLoadError(_where_tried(model)) from e


def detect_family(config: Any) -> Family:
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross_encoder"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "yes_no"
    raise UnsupportedModelError(
        f"unsupported architecture {architectures or '(none in config.json)'}; rerankd supports {SUPPORTED}. "
        "If the config is wrong, pass family='yes_no' or 'cross_encoder' explicitly"
    )


FAMILY_NAMES = ("yes_no", "cross_encoder")


def _check_names(family: str | None, template: str | None) -> LLMFamily | None:
    """Refuse an unknown family (it used to load a causal LM as a cross-encoder) or template name."""
    if family is not None and family not in FAMILY_NAMES:
        raise UnsupportedModelError(
            f"unknown family {family!r}; known families: {', '.join(FAMILY_NAMES)} (a causal-LM "
            f"reranker's format is chosen with template=, one of: {', '.join(FAMILIES)})"
        )
    if template is None:
        return None
    if family == "cross_encoder":
        raise UnsupportedModelError(f"template {template!r} is for causal-LM rerankers, not cross-encoders")
    return family_named(template)


def _pick_family(config: Any, tokenizer: Any, asked: LLMFamily | None) -> LLMFamily:
    """The LLM format: the one asked for, else the one whose architecture and tokens fit, else Qwen3's
    (any causal LM with single yes/no tokens was scored with it before families existed)."""
    if asked is not None:
        return asked
    found = recognise(config, tokenizer)
    if found is None:
        log.warning(
            "model_type %r matches no known LLM reranker family (%s); using the %s template. Pass "
            "template= to choose another",
            getattr(config, "model_type", None),
            ", ".join(FAMILIES),
            QWEN3.name,
        )
        return QWEN3
    return found


def _smoke_warning(source: str) -> str | None:
    return SMOKE_WARNING if (Path(source) / SMOKE_MARKER).is_file() else None


def _check_family_fits(config: Any, family: Family) -> None:
    """A family forced onto the wrong architecture would score with a random head: refuse it."""
    archs = list(getattr(config, "architectures", None) or [])
    if family == "cross_encoder" and any(a.endswith("ForCausalLM") for a in archs):
        raise UnsupportedModelError(
            f"family 'cross_encoder' does not fit architecture {archs[0]} (a causal LM): it has no "
            "classification head; use family 'yes_no' or leave family unset"
        )
    if family == "yes_no" and any(a.endswith("ForSequenceClassification") for a in archs):
        raise UnsupportedModelError(
            f"family 'yes_no' does not fit architecture {archs[0]} (a classifier): use family "
            "'cross_encoder' or leave family unset"
        )


def _from_pretrained(auto: Any, source: str, dtype: torch.dtype, trust_remote_code: bool) -> Any:
    """SDPA attention where the architecture has it; eager where it has not (DeBERTa-v2, as in
    mxbai-rerank-v1, refuses SDPA at load)."""
    try:
        return auto.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation="sdpa"
        )
    except ValueError as e:
        if "scaled_dot_product_attention" not in str(e):
            raise
        log.info("%s: no SDPA attention for this architecture; loading with eager attention", source)
        return auto.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation="eager"
        )


def load_scorer(
    model: str,
    *,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    max_length: int | None = 8192,
    family: Family | None = None,
    trust_remote_code: bool = False,
    template: str | None = None,
    batch_invariant: bool = False,
) -> Scorer:
    """Load a model and its tokenizer and wrap them in the scorer for their family. `template` names a
    causal-LM reranker format (`rerankd.models.families.FAMILIES`), overriding its recognition;
    `max_length` None takes the format's own default (what it counts is the format's: see families).
    `batch_invariant`: a causal LM's scores bitwise independent of the batch (models/invariant.py)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    asked = _check_names(family, template)
    if max_length is not None and max_length < 1:
        raise ModelLoadError(f"max_length must be positive, got {max_length}")
    config = _load_config(model, trust_remote_code)
    family = family or ("yes_no" if asked is not None else detect_family(config))
    _check_family_fits(config, family)
    dev = resolve_device(device)
    reason = ""
    if dtype == "auto":  # picked once here; resolve_dtype would pick again
        dtype, reason = auto_dtype(dev)
        log.info("dtype auto: %s (%s)", dtype, reason)
    torch_dtype = resolve_dtype(dtype, dev)
    int8 = isinstance(dtype, str) and dtype in INT8
    dtype_name = "int8" if int8 else str(torch_dtype).removeprefix("torch.")
    if int8:  # accepted as ever; says where bf16 is the better choice (also in /v1/models dtype_reason)
        reason = int8_advice()
        log.warning("dtype int8: %s", reason)
    if dev.type == "cpu":
        configure_threads()
    source = str(Path(model).expanduser()) if Path(model).expanduser().is_dir() else model
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        auto = AutoModelForCausalLM if family == "yes_no" else AutoModelForSequenceClassification
        # Safetensors are memory-mapped: weights already in the requested dtype are used in place, never
        # copied (peak memory ~ the weights' size); a conversion makes one copy in the target dtype.
        # On CPU a checkpoint stored in another dtype loads as stored (mapped, nothing read yet) and is
        # converted tensor by tensor below, so the stored copy never sits in memory beside the converted one.
        stored = stored_dtype(config)
        load_dtype = stored if dev.type == "cpu" and stored is not None else torch_dtype
        net: Any = _from_pretrained(auto, source, load_dtype, trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not load {model!r} as a {family} model: {e}") from e
    if load_dtype != torch_dtype:
        convert_in_place(net, torch_dtype)
    net.to(dev).eval()
    apply_kernels(net)  # fused eager norms, SiLU-mul, RoPE, residual adds; RERANKD_FUSED=off: transformers'
    if int8:
        # Only the backbone: the yes/no rows (and a cross-encoder's head) are read in fp32.
        quantize_int8(net.base_model)
    else:
        from rerankd.models.fused import maybe_compile

        # Opt-in ($RERANKD_COMPILE=on|auto): ~1.17x on bf16 A with AMX, for 5-18 s of start-up.
        if not maybe_compile(net, os.environ.get("RERANKD_COMPILE", "off")).compiled:
            pack_linear_weights(net)  # bf16 on CPU: oneDNN-packed weights in place of the plain ones
    arch = (getattr(config, "architectures", None) or [type(net).__name__])[0]
    warning = _smoke_warning(source)
    size = weight_bytes(net)
    if family == "yes_no":
        from rerankd.models.causal_lm import YesNoScorer

        llm = _pick_family(config, tokenizer, asked)
        log.info("LLM reranker format: %s", llm.name)
        length = llm.default_max_length if max_length is None else max_length
        info = ModelInfo(
            model, "yes_no", arch, length, dtype_name, str(dev), True, reason, warning, llm.name, size
        )
        info = replace(info, max_token_chars=max_token_chars(tokenizer))
        return YesNoScorer(net, tokenizer, info=info, family=llm, batch_invariant=batch_invariant)

    from rerankd.models.cross_encoder import CrossEncoderScorer

    if batch_invariant:
        log.warning(
            "batch_invariant covers causal-LM rerankers only: cross-encoder scores may still vary with the batch"
        )

    max_length = max_length or 8192
    limits = [max_length, getattr(config, "max_position_embeddings", max_length)]
    if isinstance(getattr(tokenizer, "model_max_length", None), int) and tokenizer.model_max_length < 10**9:
        limits.append(tokenizer.model_max_length)
    # Absolute position embeddings may reserve slots (RoBERTa's padding offset); stay inside them.
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits.append(getattr(config, "max_position_embeddings", max_length) - 2)
    info = ModelInfo(
        model,
        "cross_encoder",
        arch,
        min(limits),
        dtype_name,
        str(dev),
        False,
        reason,
        warning,
        weight_bytes=size,
    )
    info = replace(info, max_token_chars=max_token_chars(tokenizer))
    return CrossEncoderScorer(net, tokenizer, info=info)
