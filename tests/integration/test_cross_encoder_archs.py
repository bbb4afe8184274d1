"""Cross-encoders of each architecture users run, on random-weight models: XLM-RoBERTa (bge-reranker-v2-m3),
BERT (cross-encoder/ms-marco-MiniLM-L-6-v2), DeBERTa-v2 (mxbai-rerank-base-v1). rerankd's scores (one
batch, and one pair at a time) against a plain AutoModelForSequenceClassification forward on the
tokenizer's own padded, truncated pairs; fp32, <= 1e-5, long documents included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rerankd.models.base import PlannedBatch, score_encoded
from rerankd.models.loading import load_scorer
from rerankd.testing.synthetic import build_cross_encoder

TOL = 1e-5
QUERY = "what is the capital of france"
DOCS = [
    "paris is the capital and largest city of france",
    "gravity is a force that attracts bodies",
    "北 京 中 国 首 都",
    "",
    "the quick brown fox jumps over the lazy dog " * 30,  # longer than the model: truncated
]
TEXT = (
    "what is the capital of france paris is the capital and largest city of france berlin germany "
    "gravity is a force that attracts bodies python asyncio crawler the quick brown fox jumps over the "
    "lazy dog 北 京 中 国 首 都"
)


def _tokenizer(specials: list[str], single: str, pair: str, **kwargs: Any) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token=kwargs["unk_token"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator([TEXT] * 50, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    ids = [(s, tok.token_to_id(s)) for s in specials if s in single + pair]
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=ids)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128, **kwargs)


def build_xlm_roberta(out_dir: Path) -> Path:
    """XLMRobertaForSequenceClassification, 1 label, "<s> A </s></s> B </s>", no token types."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = _tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        "<s> $A </s>",
        "<s> $A </s> </s> $B </s>",
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )
    torch.manual_seed(1)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,  # 128 + RoBERTa's padding offset, as bge-reranker-v2-m3's 8194
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.3,
        num_labels=1,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_deberta_v2(out_dir: Path) -> Path:
    """DebertaV2ForSequenceClassification (relative attention, no absolute positions), 1 label."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer = _tokenizer(
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
        "[CLS] $A [SEP]",
        "[CLS] $A [SEP] $B:1 [SEP]:1",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    torch.manual_seed(2)
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        pooler_hidden_size=32,
        pad_token_id=0,
        initializer_range=0.3,
        num_labels=1,
        architectures=["DebertaV2ForSequenceClassification"],
    )
    DebertaV2ForSequenceClassification(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


BUILDERS = {
    "xlm-roberta": build_xlm_roberta,
    "bert": lambda d: build_cross_encoder(d, seed=3),
    "deberta-v2": build_deberta_v2,
}


def _plain(model_dir: Path, max_length: int) -> list[float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    batch = tok(
        [QUERY] * len(DOCS), DOCS, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**batch).logits[:, 0].float().tolist()


@pytest.mark.parametrize("arch", list(BUILDERS))
def test_cross_encoder_matches_plain_transformers(arch: str, tmp_path: Path) -> None:
    model_dir = BUILDERS[arch](tmp_path / arch)
    scorer: Any = load_scorer(str(model_dir), device="cpu", dtype="float32")
    assert scorer.info.family == "cross_encoder" and scorer.info.template is None
    assert scorer.info.max_length == 128
    encoded = [scorer.encode(QUERY, d) for d in DOCS]
    assert [e.truncated for e in encoded] == [False, False, False, False, True]
    assert (encoded[0].token_type_ids is not None) == (arch != "xlm-roberta")
    theirs = _plain(model_dir, scorer.info.max_length)
    assert max(theirs) - min(theirs) > 0.05  # a head scoring all alike would make this vacuous
    batched = score_encoded(scorer, encoded, max_batch_tokens=4096)
    single = [scorer.forward(PlannedBatch.of([e]))[0] for e in encoded]
    for ours in (batched, single):
        diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
        assert diff <= TOL, f"{arch}: max |difference| {diff:.3g} > {TOL}"
