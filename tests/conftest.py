"""Session fixtures: tiny random-weight models built with save_pretrained, loaded through the real
loading code. The real Qwen3 tokenizer comes from ../shared/assets/qwen3-tokenizer when it is there; a
tokenizer trained at test time stands in elsewhere, so the suite runs on any machine. Tests that exercise
serving rather than scores use `fake_engine`, which needs no model and no torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# dtype "auto" picks bf16 on AMX CPUs: the suite compares servers with fp32 library scores, so auto is
# pinned to the exact mode here (tests/integration/test_cpu_dtype.py covers the pick itself).
os.environ.setdefault("RERANKD_AUTO_DTYPE", "float32")

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output"


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path | None:
    from rerankd.testing.synthetic import default_tokenizer_dir

    return default_tokenizer_dir()


@pytest.fixture(scope="session")
def qwen3_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path | None) -> Path:
    from rerankd.testing.synthetic import build_qwen3_reranker

    return build_qwen3_reranker(
        tmp_path_factory.mktemp("models") / "tiny-qwen3-reranker", tokenizer_dir=tokenizer_dir
    )


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rerankd.testing.synthetic import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def qwen3_reranker(qwen3_dir: Path):  # type: ignore[no-untyped-def]
    from rerankd import Reranker

    return Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")


@pytest.fixture
def fake_engine():  # type: ignore[no-untyped-def]
    """A RerankEngine over the torch-free FakeScorer, not started (an app's lifespan, or the test, starts
    it). One per test: stopping an engine shuts its inference thread down."""
    from rerankd.config import BatchConfig
    from rerankd.engine.engine import RerankEngine
    from rerankd.testing.fake import FakeScorer

    return RerankEngine(FakeScorer(), BatchConfig())


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def server(qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real `rerankd serve` process with the tiny Qwen3 model, shared by the session's HTTP tests."""
    from rerankd.testing.servers import rerankd_server

    with rerankd_server(qwen3_dir, log_dir=tmp_path_factory.mktemp("server-logs")) as running:
        yield running
