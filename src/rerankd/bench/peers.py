"""The peers `rerankd bench` runs beside rerankd on the same model: sentence-transformers' CrossEncoder
and OpenVINO. Each needs a one-off copy of the model in its own form, made by `prepare` in a child of its
own (so neither its time nor its memory lands in the timed row) and cached beside the model:

- `st-crossencoder`: the "seq-cls" conversion of a yes/no causal LM, in the checkpoint's own dtype
  (vLLM's convert_model_to_seq_cls.py, tomaarsen/Qwen3-Reranker-0.6B-seq-cls): `*ForSequenceClassification` with one label whose score row is
  lm_head[yes] - lm_head[no], so sigmoid(logit) = softmax([no, yes])[yes] = the reference's P(yes). The
  caller templates the pair: query = prefix + instruction + query, document = document + suffix, split
  at a newline so that the two halves tokenize as the whole prompt does.
- `openvino`: the causal LM converted by OpenVINO's PyTorch frontend (`openvino.convert_model`, what
  optimum-intel's export calls) to IR with fp32 weights, run on the CPU plugin with bf16 inference where
  the CPU has it. Its graph returns the logits of the last position only (transformers'
  `logits_to_keep=1`, as sentence-transformers' own causal-LM path does); the prompts are the reference's
  (same template, truncation, left padding, batches of 8), P(yes) from the yes/no logits.

Only what the timed child needs is imported, so a peer can run under another interpreter
(`rerankd bench --peer-python`) that has openvino but not rerankd's server dependencies."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rerankd.templates import DEFAULT_INSTRUCTION, QWEN3_RERANKER

PEERS = ("st-crossencoder", "openvino")
OV_PRECISION_ENV = "RERANKD_BENCH_OV_PRECISION"  # auto (default: bf16 where the CPU has it), bf16, f32
_STAMP = "rerankd-source.json"
_FORMATS = {"st-crossencoder": 2, "openvino": 1}  # bumped when a conversion changes what it writes

Score = Callable[[str, list[str]], list[float]]
Count = Callable[[str, list[str]], int]
Peer = tuple[Score, Count, dict[str, Any]]


# --- where the copies live ------------------------------------------------------------------------


def cache_dir(model_dir: str | Path, peer: str) -> Path:
    """`<model>/.rerankd-peers/<peer>`, or under rerankd's cache (`bench/`) when the model dir is read-only."""
    from rerankd.smoke import cache_root

    model = Path(model_dir).resolve()
    if os.access(model, os.W_OK):
        return model / ".rerankd-peers" / peer
    digest = hashlib.sha256(str(model).encode()).hexdigest()[:12]
    return cache_root() / "bench" / f"{model.name}-{digest}" / peer


def _source(model_dir: str | Path) -> dict[str, Any]:
    """What a copy was made from: the config and every weights file's size and mtime."""
    model = Path(model_dir).resolve()
    files = sorted([*model.glob("*.safetensors"), *model.glob("*.bin"), model / "config.json"])
    return {
        "model": str(model),
        "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()],
    }


def _stamp(cache: Path, model_dir: str | Path) -> dict[str, Any]:
    # The copy's format too: a copy made by an older conversion (st-crossencoder 1: fp32) is remade.
    return _source(model_dir) | {"format": _FORMATS.get(cache.name, 1)}


def is_fresh(cache: Path, model_dir: str | Path) -> bool:
    """True when `cache` holds a finished copy of the model as it is now, made the current way."""
    stamp = cache / _STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == _stamp(cache, model_dir)


def _finish(cache: Path, model_dir: str | Path) -> None:
    # Written last, so an interrupted conversion is never taken for a finished one.
    (cache / _STAMP).write_text(json.dumps(_stamp(cache, model_dir)))


def _is_causal_lm(model_dir: str | Path) -> bool:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return any(a.endswith("ForCausalLM") for a in config.get("architectures") or [])


def _is_qwen3(model_dir: str | Path) -> bool:
    """The peers apply Qwen3-Reranker's template and yes/no tokens: other LLM families are not theirs."""
    return json.loads((Path(model_dir) / "config.json").read_text()).get("model_type") == "qwen3"


def prepare(peer: str, model_dir: str) -> dict[str, Any]:
    """Make (or find) the peer's copy of the model; {"skipped": why} when the peer cannot run here."""
    missing = _missing(peer)
    if missing is not None:
        return {"skipped": missing}
    cache = cache_dir(model_dir, peer)
    if peer == "st-crossencoder" and not _is_causal_lm(model_dir):
        return {"cache": str(model_dir), "seconds": 0.0, "made": False}  # a cross-encoder: used as it is
    if peer == "openvino" and not _is_causal_lm(model_dir):
        return {"skipped": "the openvino peer runs yes/no causal-LM rerankers only"}
    if not _is_qwen3(model_dir):
        return {"skipped": "the peers apply the Qwen3-Reranker template only; this model is another family"}
    if is_fresh(cache, model_dir):
        return {"cache": str(cache), "seconds": 0.0, "made": False}
    t = time.perf_counter()
    if peer == "st-crossencoder":
        convert_to_seq_cls(model_dir, cache)
    else:
        export_openvino(model_dir, cache)
    return {"cache": str(cache), "seconds": time.perf_counter() - t, "made": True}


def _missing(peer: str) -> str | None:
    """Why the peer cannot run in this interpreter, or None."""
    import importlib.util

    module = "sentence_transformers" if peer == "st-crossencoder" else "openvino"
    if importlib.util.find_spec(module) is None:
        name = "sentence-transformers" if peer == "st-crossencoder" else "openvino"
        return f"{name} is not installed (for another interpreter: --peer-python)"
    return None


def _threads() -> int:
    # rerankd's own rule (the cores in the affinity mask, $RERANKD_THREADS), so both sides use the same
    # cores. (The child is `python -m rerankd.bench`, so rerankd.models is imported anyway and its oneDNN
    # cache caps apply to the peers too: they bound memory, not speed.)
    from rerankd.models.loading import cpu_threads

    return cpu_threads()


# --- sentence-transformers --------------------------------------------------------------------------


def _head_rows(model_dir: str | Path, config: Any, ids: list[Any]) -> Any:
    """Rows `ids` of the LM head (the tied embedding where the model ties them), in fp32, read from the
    checkpoint's safetensors: a few rows, not the whole head. None where they cannot be read so."""
    import torch
    from safetensors import safe_open

    model = Path(model_dir)
    name = "model.embed_tokens.weight" if getattr(config, "tie_word_embeddings", False) else "lm_head.weight"
    index = model / "model.safetensors.index.json"
    if index.is_file():
        file = json.loads(index.read_text())["weight_map"].get(name)
        path = model / file if file else None
    else:
        path = model / "model.safetensors"
    if path is None or not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        if name not in f.keys():  # noqa: SIM118 - safe_open has no __contains__
            return None
        rows = f.get_slice(name)
        return torch.cat([rows[i : i + 1] for i in ids]).float()


def convert_to_seq_cls(model_dir: str | Path, out: Path) -> Path:
    """The yes/no causal LM as a one-label sequence classifier: the same backbone, score = yes - no row.
    The backbone is loaded once, in the checkpoint's own dtype, and saved so (an 8B bf16 model stays
    16 GB, not 32); the score row is kept in fp32, as the reference computes the yes - no difference."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    config = AutoConfig.from_pretrained(str(model_dir))
    yes = tok.convert_tokens_to_ids(QWEN3_RERANKER.yes_token)
    no = tok.convert_tokens_to_ids(QWEN3_RERANKER.no_token)
    rows = _head_rows(model_dir, config, [yes, no])
    if rows is None:  # not in safetensors (a .bin checkpoint): from the loaded model, in its own dtype
        causal = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="auto")
        rows = causal.get_output_embeddings().weight[[yes, no]].detach().float()
        del causal
    config.architectures = [config.architectures[0].replace("ForCausalLM", "ForSequenceClassification")]
    config.num_labels = 1
    config.pad_token_id = tok.pad_token_id  # how the classifier finds each row's last real token
    config.tie_word_embeddings = False  # no lm_head any more: the score row is its own weight
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    # The backbone's weights load into the classifier as they are; lm_head's are left out, and the score
    # row (not in the checkpoint) is set below.
    seq = AutoModelForSequenceClassification.from_pretrained(str(model_dir), config=config, dtype="auto")
    seq.score.to(torch.float32)
    with torch.no_grad():
        seq.score.weight.copy_((rows[0] - rows[1])[None])
    out.mkdir(parents=True, exist_ok=True)
    seq.save_pretrained(str(out))
    # Without a chat template sentence-transformers tokenizes (query, document) as a plain text pair;
    # with the model's chat template (not a reranker's) it would try to render one message per role.
    tok.chat_template = None
    tok.save_pretrained(str(out))
    (out / "chat_template.jinja").unlink(missing_ok=True)
    _finish(out, model_dir)
    return out


def st_pair(query: str, document: str, instruction: str | None = None) -> tuple[str, str]:
    """The templated (query, document) a CrossEncoder gets for a yes/no model: the reference prompt split
    before the document's line, the boundary vLLM's Qwen3-Reranker recipe uses (each half tokenizes as
    that part of the whole prompt does, since the split falls after a newline)."""
    t = QWEN3_RERANKER
    cut = t.body_format.index("{document}")
    head = t.body_format[:cut]
    line = head.rfind("\n") + 1
    fields = {"instruction": DEFAULT_INSTRUCTION if instruction is None else instruction, "query": query}
    left = t.prefix + head[:line].format(**fields)
    right = head[line:].format(**fields) + document + t.body_format[cut + len("{document}") :] + t.suffix
    return left, right


def st_peer(model_dir: str) -> str | Peer:
    """CrossEncoder on the prepared copy (the converted yes/no model, or a cross-encoder as it is)."""
    missing = _missing("st-crossencoder")
    if missing is not None:
        return missing
    import torch
    from sentence_transformers import CrossEncoder

    causal = _is_causal_lm(model_dir)
    path = cache_dir(model_dir, "st-crossencoder") if causal else Path(model_dir)
    if causal and not is_fresh(path, model_dir):
        return "its seq-cls copy is missing (prepare did not run)"
    torch.set_num_threads(_threads())
    ce = CrossEncoder(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    tok = ce.tokenizer

    def pairs(q: str, docs: list[str]) -> list[tuple[str, str]]:
        return [st_pair(q, d) if causal else (q, d) for d in docs]

    def score(q: str, docs: list[str]) -> list[float]:
        return [float(x) for x in ce.predict(pairs(q, docs), show_progress_bar=False)]

    def count(q: str, docs: list[str]) -> int:
        return sum(len(tok(a, b)["input_ids"]) for a, b in pairs(q, docs))

    return score, count, {"dtype": "float32", "path": str(path)}


# --- OpenVINO ---------------------------------------------------------------------------------------


def export_openvino(model_dir: str | Path, out: Path) -> Path:
    """The causal LM as OpenVINO IR (fp32 weights) returning the logits of the last position. Traced in
    fp32: the reference computes in fp32, and OpenVINO's SDPA conversion fails on a bf16 trace (its mask
    and its inputs must share one element type)."""
    import openvino as ov
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()

    class LastLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # An additive causal + padding mask with finite minima: with a boolean mask, a left-padded
            # row's pad positions attend to nothing and OpenVINO's softmax yields NaN there, which their
            # values then carry into the real positions (0 x NaN). transformers takes a 4D mask as given.
            n = input_ids.shape[1]
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            allowed = causal[None, None] & attention_mask.bool()[:, None, None, :]
            mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
            out = self.lm(input_ids=input_ids, attention_mask=mask, logits_to_keep=1, use_cache=False)
            return out.logits[:, -1, :]

    # The example has a padded row, so the traced graph keeps the masking path.
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0
    example = {"input_ids": torch.ones(2, 8, dtype=torch.long), "attention_mask": mask}
    with torch.no_grad():
        model = ov.convert_model(LastLogits(), example_input=example)
    out.mkdir(parents=True, exist_ok=True)
    # fp32 weights even for a 16-bit checkpoint: stored as fp16 (compress_to_fp16), a bf16 test model's
    # f32-precision scores moved 3e-4 from the reference's, against 3e-7 with fp32 weights.
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    _finish(out, model_dir)
    return out


def ov_precision(core: Any) -> str:
    """The inference precision to ask the CPU plugin for: bf16 where the CPU computes it natively."""
    asked = os.environ.get(OV_PRECISION_ENV, "auto").lower()
    if asked in ("bf16", "f32"):
        return asked
    return "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"


def openvino_peer(model_dir: str, max_length: int = 8192, batch_size: int = 8) -> str | Peer:
    """The exported IR on OpenVINO's CPU plugin, fed the reference's prompts: batches of `batch_size`,
    the body truncated to `max_length` minus the template, left padding."""
    missing = _missing("openvino")
    if missing is not None:
        return missing
    import numpy as np
    import openvino as ov
    from transformers import AutoTokenizer

    cache = cache_dir(model_dir, "openvino")
    if not is_fresh(cache, model_dir):
        return "its OpenVINO export is missing (prepare did not run)"
    core = ov.Core()
    precision = ov_precision(core)
    threads = _threads()
    compiled = core.compile_model(
        str(cache / "model.xml"),
        "CPU",
        {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1},
    )
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # what the plugin took: bf16, f32
    dtype = {"bf16": "bfloat16", "f16": "float16"}.get(ran, "float32")
    request = compiled.create_infer_request()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    t = QWEN3_RERANKER
    prefix = tok.encode(t.prefix, add_special_tokens=False)
    suffix = tok.encode(t.suffix, add_special_tokens=False)
    yes, no = tok.convert_tokens_to_ids(t.yes_token), tok.convert_tokens_to_ids(t.no_token)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    body_max = max_length - len(prefix) - len(suffix)

    def texts(q: str, docs: list[str]) -> list[str]:
        return [t.body_format.format(instruction=t.default_instruction, query=q, document=d) for d in docs]

    def bodies(q: str, docs: list[str]) -> list[list[int]]:
        ids = tok(
            texts(q, docs), truncation="longest_first", max_length=body_max, return_attention_mask=False
        )
        return [prefix + list(x) + suffix for x in ids["input_ids"]]

    def score(q: str, docs: list[str]) -> list[float]:
        seqs = bodies(q, docs)
        out: list[float] = []
        for start in range(0, len(seqs), batch_size):
            batch = seqs[start : start + batch_size]
            width = max(len(s) for s in batch)
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for i, s in enumerate(batch):
                ids[i, width - len(s) :] = s
                mask[i, width - len(s) :] = 1
            logits = request.infer({"input_ids": ids, "attention_mask": mask})[0]
            pair = logits[:, [no, yes]].astype(np.float64)
            # softmax([no, yes])[yes], as the reference's log_softmax(...)[:, 1].exp()
            out += (1.0 / (1.0 + np.exp(pair[:, 0] - pair[:, 1]))).tolist()
        return out

    def count(q: str, docs: list[str]) -> int:
        ids = tok(texts(q, docs), add_special_tokens=False)["input_ids"]
        return sum(len(prefix) + len(x) + len(suffix) for x in ids)

    extra = {"dtype": dtype, "precision": ran, "asked": precision, "openvino": ov.get_version()}
    return score, count, extra


def load_peer(peer: str, model_dir: str) -> str | Peer:
    """The peer's (score, count, facts), or why it cannot run (a reason string)."""
    return st_peer(model_dir) if peer == "st-crossencoder" else openvino_peer(model_dir)
