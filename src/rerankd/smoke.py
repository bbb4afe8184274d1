"""`--model tiny-random`: a small random-weight Qwen3 reranker for smoke tests of pipelines and CI, built
in seconds on first use and cached. Its scores are random: it is NOT a real reranker, and says so.

The tokenizer is the real Qwen3 one when $RERANKD_TOKENIZER_DIR points at its files, else a small one
trained on the spot (the same as the test suite's). The model goes through the real loading code."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from rerankd.config import SMOKE_MARKER, SMOKE_WARNING

TINY_RANDOM = "tiny-random"
#: The served name (what /v1/models and every response's `model` show): it carries the warning itself.
SERVED_NAME = "tiny-random-NOT-A-REAL-RERANKER"
WARNING = SMOKE_WARNING
#: Written beside config.json, so that anything reading the directory can tell it is a smoke-test model.
MARKER = SMOKE_MARKER
# Bumped when the builder changes, so an old cached build is not reused.
BUILD = 1


def is_tiny_random(model: str | None) -> bool:
    return model == TINY_RANDOM


def is_smoke_dir(path: Path) -> bool:
    return (Path(path) / MARKER).exists()


def cache_root() -> Path:
    """$RERANKD_CACHE, else $XDG_CACHE_HOME/rerankd (~/.cache/rerankd)."""
    env = os.environ.get("RERANKD_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rerankd"


def tokenizer_dir() -> Path | None:
    """The real Qwen3 tokenizer, only when RERANKD_TOKENIZER_DIR names a directory that holds it."""
    env = os.environ.get("RERANKD_TOKENIZER_DIR")
    if env and (Path(env) / "tokenizer.json").exists():
        return Path(env)
    return None


def tiny_random_dir(cache: Path | None = None) -> Path:
    """The smoke-test model's directory, built on first use (a few seconds on a laptop CPU).

    Built in a temporary directory and renamed into place, so that two processes starting at once (or a
    build cut short) never leave a half-written model behind."""
    from rerankd.testing.synthetic import build_qwen3_reranker

    tok = tokenizer_dir()
    root = Path(cache) if cache is not None else cache_root()
    target = root / f"tiny-random-v{BUILD}-{'qwen3' if tok is not None else 'fallback'}-tokenizer"
    if is_smoke_dir(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tiny-random-", dir=root))
    try:
        build_qwen3_reranker(scratch / "model", tokenizer_dir=tok)
        marker = {"not_a_real_reranker": True, "warning": WARNING, "served_name": SERVED_NAME, "build": BUILD}
        (scratch / "model" / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        try:
            (scratch / "model").rename(target)
        except OSError:
            if not is_smoke_dir(target):  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
