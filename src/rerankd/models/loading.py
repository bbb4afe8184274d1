"""Hub id or local directory → a Scorer. The family comes from the model's config and tokenizer, never
from its name: a causal LM whose vocabulary has "yes" and "no" is a yes/no reranker, a
sequence-classification model is a cross-encoder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from rerankd.config import DTYPE_CHOICES as _NAMES
from rerankd.errors import ModelLoadError, UnsupportedModelError
from rerankd.models.base import Family, ModelInfo, Scorer

SUPPORTED = (
    "causal LMs with single 'yes'/'no' tokens (*ForCausalLM, e.g. Qwen3-Reranker 0.6B/4B/8B) and "
    "sequence-classification cross-encoders (*ForSequenceClassification with 1 or 2 labels, e.g. "
    "bge-reranker-v2-m3, cross-encoder/ms-marco-MiniLM-L-6-v2)"
)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# int8: dynamic quantisation of the backbone's nn.Linear layers (weights int8 per output channel,
# activations quantised per batch), CPU only. The model is loaded in fp32 first; embeddings, norms,
# attention and the two yes/no rows stay fp32.
INT8 = ("int8", "qint8")
DTYPE_CHOICES = ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]

_threads_configured = False


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


def cpu_supports_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (avx512_bf16 or AMX), so bf16 is not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


class _MappedFiles:
    """Address ranges of this process's memory-mapped safetensors files (from /proc/self/maps).

    Weights loaded in their stored dtype live in these mappings, unread pages cost no memory. After a
    tensor has been converted (bf16) or quantised (int8), `release` tells the kernel to drop its pages
    from this process (madvise MADV_DONTNEED), so the fp32 source never sits in memory next to its
    converted copy. Only mappings of safetensors files are touched, only whole pages inside a released
    tensor, and only after its converted copy exists: a later read of those pages would fault them back
    in from the file (weights are never written in place, so the file holds the same values).
    """

    MADV_DONTNEED = 4

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self._madvise: Any = None
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and parts[5].strip().endswith(".safetensors"):
                        lo, hi = (int(x, 16) for x in parts[0].split("-"))
                        self.ranges.append((lo, hi))
            if self.ranges:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                self._madvise = libc.madvise
        except (OSError, AttributeError):
            self.ranges = []

    def release(self, t: torch.Tensor) -> None:
        if not self.ranges or self._madvise is None or t.device.type != "cpu":
            return
        start = t.data_ptr()
        end = start + t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        lo, hi = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if hi > lo and any(a <= lo and hi <= b for a, b in self.ranges):
            self._madvise(lo, hi - lo, self.MADV_DONTNEED)


def convert_in_place(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating-point parameters to `dtype` one at a time, releasing each mapped source at once:
    peak memory is the converted model plus one tensor, not both models."""
    mapped = _MappedFiles()
    for p in model.parameters():  # tied parameters come once
        if p.is_floating_point() and p.dtype != dtype:
            old = p.data
            p.data = old.to(dtype)
            mapped.release(old)
            del old


class _Int8Linear(torch.nn.Module):
    """nn.Linear with int8 weights (per output channel) and activations quantised per batch (fbgemm /
    x86 engine). Full 8-bit activation range where the CPU has VNNI (no int16 saturation to avoid),
    7 bits elsewhere, as torch's own DynamicQuantizedLinear does."""

    def __init__(self, linear: torch.nn.Linear, full_range: bool) -> None:
        super().__init__()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            q = quantize_dynamic(
                torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True
            )
        self.inner = q[0]
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = not full_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self.inner._packed_params._packed_params
        y = torch.ops.quantized.linear_dynamic(x.float(), packed, reduce_range=self.reduce_range)
        return y.to(x.dtype)


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every nn.Linear inside `module`, in place, one layer at a time
    (each fp32 weight is released as soon as its int8 copy exists)."""
    mapped = _MappedFiles()
    full_range = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & _cpu_flags())

    def walk(m: torch.nn.Module) -> None:
        for name, child in list(m.named_children()):
            if isinstance(child, torch.nn.Linear):
                weight = child.weight.data
                setattr(m, name, _Int8Linear(child, full_range))
                mapped.release(weight)
                del weight
            else:
                walk(child)

    walk(module)
    return module


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the weights load in (int8 loads in fp32, then quantises)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        # fp32 on CPU is exact to the reference (and, on CPUs without AMX, bf16 is no faster: see
        # benchmarks/README.md); GPUs run bf16 (the yes/no logits are still fp32).
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype in INT8:
        if device.type != "cpu":
            raise ModelLoadError("dtype int8 (dynamic quantisation) runs on CPU only; use bfloat16 on GPU")
        return torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use {DTYPE_CHOICES}")
    return _DTYPES[dtype]


def _stored_dtype(config: Any) -> torch.dtype | None:
    """The dtype the checkpoint says its weights are stored in, if it says."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, torch.dtype):
        return value if value.is_floating_point else None
    if isinstance(value, str) and value in _DTYPES:
        return _DTYPES[value]
    return None


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


def load_scorer(
    model: str,
    *,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    max_length: int = 8192,
    family: Family | None = None,
    trust_remote_code: bool = False,
) -> Scorer:
    """Load a model and its tokenizer and wrap them in the scorer for their family."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    if max_length < 1:
        raise ModelLoadError(f"max_length must be positive, got {max_length}")
    config = _load_config(model, trust_remote_code)
    family = family or detect_family(config)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    int8 = isinstance(dtype, str) and dtype in INT8
    dtype_name = "int8" if int8 else str(torch_dtype).removeprefix("torch.")
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
        stored = _stored_dtype(config)
        load_dtype = stored if dev.type == "cpu" and stored is not None else torch_dtype
        net: Any = auto.from_pretrained(
            source, dtype=load_dtype, trust_remote_code=trust_remote_code, attn_implementation="sdpa"
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not load {model!r} as a {family} model: {e}") from e
    if load_dtype != torch_dtype:
        convert_in_place(net, torch_dtype)
    net.to(dev).eval()
    if int8:
        # Only the backbone: the yes/no rows (and a cross-encoder's head) are read in fp32.
        quantize_int8(net.base_model)
    arch = (getattr(config, "architectures", None) or [type(net).__name__])[0]
    if family == "yes_no":
        from rerankd.models.causal_lm import YesNoScorer

        info = ModelInfo(model, "yes_no", arch, max_length, dtype_name, str(dev), True)
        return YesNoScorer(net, tokenizer, info=info)

    from rerankd.models.cross_encoder import CrossEncoderScorer

    limits = [max_length, getattr(config, "max_position_embeddings", max_length)]
    if isinstance(getattr(tokenizer, "model_max_length", None), int) and tokenizer.model_max_length < 10**9:
        limits.append(tokenizer.model_max_length)
    # Absolute position embeddings may reserve slots (RoBERTa's padding offset); stay inside them.
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits.append(getattr(config, "max_position_embeddings", max_length) - 2)
    info = ModelInfo(model, "cross_encoder", arch, min(limits), dtype_name, str(dev), False)
    return CrossEncoderScorer(net, tokenizer, info=info)
