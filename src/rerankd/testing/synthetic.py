"""Random-weight models with real architectures, for tests and benchmarks on machines that cannot
download weights. Loading them goes through the real loading code; only the weights are random.

Speed does not depend on weight values, so a random model of the full Qwen3-Reranker-0.6B architecture
measures what the real one would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

# Qwen3-Reranker-0.6B's config.json, as published.
QWEN3_RERANKER_0_6B: dict[str, Any] = dict(
    vocab_size=151669,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=40960,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    bos_token_id=151643,
    eos_token_id=151645,
)

TINY_QWEN3: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)

# Big enough that the CPU kernels take their real paths (blocked GEMMs, several attention heads of 64),
# small enough to build and run in seconds: the batch-invariance test and benchmark use it.
MID_QWEN3: dict[str, Any] = dict(
    TINY_QWEN3,
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    initializer_range=0.05,
)

_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def default_tokenizer_dir() -> Path | None:
    """The real Qwen3 tokenizer: $RERANKD_TOKENIZER_DIR, else ../shared/assets/qwen3-tokenizer near here."""
    env = os.environ.get("RERANKD_TOKENIZER_DIR")
    if env:
        return Path(env) if (Path(env) / "tokenizer.json").exists() else None
    here = Path.cwd().resolve()
    for base in [here, *here.parents, Path(__file__).resolve().parents[3]]:
        cand = base.parent / "shared" / "assets" / "qwen3-tokenizer"
        if (cand / "tokenizer.json").exists():
            return cand
    return None


def train_fallback_tokenizer(out_dir: Path) -> Any:
    """A small byte-level BPE tokenizer with Qwen's special tokens and single 'yes'/'no' tokens, for
    machines without the real tokenizer files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = [
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "that",
        "for",
        "on",
        "with",
        "as",
        "yes",
        "no",
        "Document",
        "Query",
        "Instruct",
        "Judge",
        "whether",
        "meets",
        "requirements",
        "based",
        "provided",
        "Note",
        "answer",
        "can",
        "only",
        "be",
        "system",
        "user",
        "assistant",
        "think",
        "web",
        "search",
        "retrieve",
        "relevant",
        "passages",
        "query",
        "capital",
        "China",
        "Beijing",
        "Paris",
        "France",
        "gravity",
        "force",
        "python",
        "code",
        "北京",
        "中国",
        "首都",
        "异步",
        "爬虫",
        "数据",
        "🙂",
        "🚀",
        "café",
        "naïve",
    ]
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens(["<think>", "</think>", "yes", "no"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.save_pretrained(out_dir)
    return fast


def load_tokenizer(tokenizer_dir: Path | None, scratch: Path) -> Any:
    from transformers import AutoTokenizer

    if tokenizer_dir is not None:
        return AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return train_fallback_tokenizer(scratch / "fallback-tokenizer")


def build_qwen3_reranker(
    out_dir: Path,
    *,
    tokenizer_dir: Path | None = None,
    full_size: bool = False,
    seed: int = 0,
    spread: float = 0.25,
    sizes: dict[str, Any] | None = None,
) -> Path:
    """Save a random-weight Qwen3ForCausalLM (tiny, or the full 0.6B architecture) with a tokenizer.

    `sizes` replaces TINY_QWEN3 (e.g. MID_QWEN3) for a model of the tokenizer's vocabulary. `spread` sets the std of the "yes"/"no" rows of the LM head, so that scores of different documents
    differ clearly instead of all sitting near 0.5.
    """
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir, out_dir.parent)
    torch.manual_seed(seed)
    if full_size:
        config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    else:
        config = Qwen3Config(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **{"initializer_range": 0.2, **(sizes or TINY_QWEN3)},
        )
    config.architectures = ["Qwen3ForCausalLM"]
    model = Qwen3ForCausalLM(config).eval()
    if not full_size:
        yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
        with torch.no_grad():
            head = model.get_output_embeddings().weight
            head[[yes, no]] = torch.randn(2, head.shape[1]) * spread
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_cross_encoder(out_dir: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """Save a tiny random BertForSequenceClassification with a small WordPiece tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    text = (
        "what is the capital of france paris is the capital and largest city of france berlin germany "
        "gravity is a force that attracts bodies python asyncio aiohttp crawler requests pandas data "
        "the quick brown fox jumps over the lazy dog 北 京 中 国 首 都"
    )
    tok.train_from_iterator([text] * 50, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
        # As BertTokenizerFast: segment ids go to the model (a bare fast tokenizer leaves them out).
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.3,
        pad_token_id=0,
    )
    config.num_labels = num_labels
    config.architectures = ["BertForSequenceClassification"]
    BertForSequenceClassification(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _spread_rows(model: Any, ids: list[int], spread: float) -> None:
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[ids] = torch.randn(len(ids), head.shape[1]) * spread


def build_qwen2_reranker(
    out_dir: Path, *, tokenizer_dir: Path | None = None, seed: int = 0, spread: float = 0.5
) -> Path:
    """A tiny random Qwen2ForCausalLM (the mxbai-rerank-v2 architecture) with the Qwen tokenizer.

    Its weights are smaller than the Qwen3 builder's: Qwen2's q/k/v biases make activations large, and
    the official code's left padding shifts RoPE positions, so fp32 rounding alone reached ~1e-5."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir, out_dir.parent)
    torch.manual_seed(seed)
    tiny = {k: v for k, v in TINY_QWEN3.items() if k != "head_dim"}
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.1,
        **tiny,
    )
    config.architectures = ["Qwen2ForCausalLM"]
    model = Qwen2ForCausalLM(config).eval()
    _spread_rows(model, [tokenizer.encode(t, add_special_tokens=False)[0] for t in ("1", "0")], spread)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_gemma_tokenizer(out_dir: Path) -> Any:
    """A small byte-level BPE tokenizer with Gemma's special tokens (<pad>, <eos>, <bos>) and single
    'Yes'/'No' tokens, as bge-reranker-v2-gemma's tokenizer has them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = (
        "Given a query A and a passage B, determine whether the passage contains an answer to the query "
        "by providing a prediction of either Yes or No. what is the capital of France Paris is the capital "
        "and largest city of France gravity is a force python asyncio crawler 北京 中国 首都 café"
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text] * 20, trainer)
    tok.add_tokens(["Yes", "No"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(out_dir)
    return fast


def build_gemma_reranker(out_dir: Path, *, seed: int = 0, spread: float = 0.25, gemma2: bool = False) -> Path:
    """A tiny random GemmaForCausalLM (bge-reranker-v2-gemma's architecture), or Gemma2ForCausalLM (logit
    soft-capping, sliding-window layers), with a tokenizer built here."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaConfig, GemmaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_gemma_tokenizer(out_dir)
    torch.manual_seed(seed)
    config = (Gemma2Config if gemma2 else GemmaConfig)(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=8192,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    if gemma2:
        config.sliding_window = 16  # short enough that the tests' inputs cross it
        config.final_logit_softcapping = 3.0  # low enough to bend the tiny model's logits
    cls: Any = Gemma2ForCausalLM if gemma2 else GemmaForCausalLM
    config.architectures = [cls.__name__]
    model = cls(config).eval()
    _spread_rows(model, [tokenizer.convert_tokens_to_ids("Yes")], spread)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
