"""What a loaded model says about itself: the dtype "auto" picked and why, a smoke-test model's warning
(in ModelInfo and /v1/models), and a family that does not fit the architecture refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rerankd.config import ModelConfig, load_scorer
from rerankd.errors import UnsupportedModelError
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.smoke import MARKER as SMOKE_MARKER
from rerankd.testing.asgi import app_client


def test_a_family_that_does_not_fit_the_architecture_is_refused(qwen3_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="ForCausalLM"):
        load_scorer(ModelConfig(model=str(qwen3_dir), device="cpu", family="cross_encoder"))


def test_a_cross_encoder_is_not_a_yes_no_model(cross_encoder_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="ForSequenceClassification"):
        load_scorer(ModelConfig(model=str(cross_encoder_dir), device="cpu", family="yes_no"))


def test_auto_says_why(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_AUTO_DTYPE", "float32")
    info = load_scorer(ModelConfig(model=str(qwen3_dir), device="cpu", dtype="auto")).info
    assert (info.dtype, info.dtype_reason) == ("float32", "$RERANKD_AUTO_DTYPE=float32")
    asked = load_scorer(ModelConfig(model=str(qwen3_dir), device="cpu", dtype="float32")).info
    assert asked.dtype_reason == "" and asked.warning is None


async def test_a_smoke_model_is_labelled_in_v1_models(qwen3_dir: Path, tmp_path: Path) -> None:
    smoke = tmp_path / "smoke"
    shutil.copytree(qwen3_dir, smoke)
    (smoke / SMOKE_MARKER).write_text("{}")
    scorer = load_scorer(ModelConfig(model=str(smoke), device="cpu", dtype="float32"))
    assert scorer.info.warning and "NOT a real reranker" in scorer.info.warning
    app = create_app(ServerSettings(model=str(smoke), ui=False), scorer=scorer)
    async with app_client(app) as client:
        card = (await client.get("/v1/models")).json()["data"][0]
    assert "NOT a real reranker" in card["warning"]
    assert card["dtype"] == "float32" and card["dtype_reason"] is None


def test_max_token_chars_bounds_every_token(qwen3_dir: Path, cross_encoder_dir: Path) -> None:
    """ModelInfo.max_token_chars is what the server counts with before tokenizing: no token of a text
    covers more characters (a run of spaces and a row of dashes are single long tokens in Qwen3)."""
    scorer = load_scorer(ModelConfig(model=str(qwen3_dir), device="cpu", dtype="float32"))
    limit = scorer.info.max_token_chars
    assert limit is not None and limit >= 8
    tokenizer = scorer.tokenizer  # type: ignore[attr-defined]
    text = " " * 300 + "-" * 300 + "word " * 50 + "\u00e9\u4e2d\U0001f600" * 20
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert max(end - start for start, end in enc["offset_mapping"]) <= limit
    # WordPiece reads an over-long word as one [UNK] of any length: it has no bound, and says so.
    wordpiece = load_scorer(ModelConfig(model=str(cross_encoder_dir), device="cpu", dtype="float32"))
    assert wordpiece.info.max_token_chars is None
    enc = wordpiece.tokenizer("a" * 5000 + " word", add_special_tokens=False, return_offsets_mapping=True)  # type: ignore[attr-defined]
    assert max(end - start for start, end in enc["offset_mapping"]) == 5000
