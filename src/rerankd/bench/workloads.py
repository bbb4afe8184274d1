"""What every variant is measured on: the model (a random-weight Qwen3-Reranker-0.6B, built once) and
seeded requests per workload, the same for every variant and every run with the same `--quick`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

WORKLOADS = ("A", "B", "C")
DEFAULT_MODEL_DIR = Path("benchmarks/.models/qwen3-reranker-0.6b-random")

# Common English words; random prose of them tokenizes like text. The order (and the repeated
# "language") is part of the seeded workloads: change it and earlier --reference-from rows no longer match.
WORDS = """
the of and to in is was for on that with as by at from his her an which were are this be had not or
have one they first also after who its new has their two but been other when there all during into
school time may years more most only over city some world would where later up such used many can
state about national out known university united then made he she it team under film system water
river between three high number government century history music part series game area early
population member group house north south center power energy market model data study process
control design light human cell protein gene climate ocean forest mountain capital language science
research company product service network computer software language library museum
""".split()  # noqa: SIM905 (one list of words, not 134 lines)

Request = dict[str, Any]  # {"query": str, "documents": [str]}: the JSON body the server is sent


def _text(rng: random.Random, tokenizer: Any, tokens: int) -> str:
    """Random prose of about `tokens` tokens (counted with the model's tokenizer)."""
    words = [rng.choice(WORDS) for _ in range(tokens)]
    text = " ".join(words)
    ids = tokenizer.encode(text, add_special_tokens=False)
    while len(ids) > tokens:
        words = words[: max(1, len(words) - max(1, len(ids) - tokens))]
        text = " ".join(words)
        ids = tokenizer.encode(text, add_special_tokens=False)
    return text.capitalize() + "."


def _query(rng: random.Random) -> str:
    return "What " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) + "?"


def make_workloads(tokenizer: Any, quick: bool) -> dict[str, list[Request]]:
    """Fixed (seeded) requests per workload: A (1 query x 32 documents of ~290 tokens), B (8 queries x 16
    documents of 50-500 tokens), C (16 requests of 4-16 such documents over 8 queries); fewer if quick."""
    rng = random.Random(4)
    a_docs = 8 if quick else 32
    b_queries, b_docs = (2, 8) if quick else (8, 16)
    c_requests = 8 if quick else 16
    out: dict[str, list[Request]] = {}
    out["A"] = [{"query": _query(rng), "documents": [_text(rng, tokenizer, 290) for _ in range(a_docs)]}]
    out["B"] = [
        {
            "query": _query(rng),
            "documents": [_text(rng, tokenizer, rng.randint(50, 500)) for _ in range(b_docs)],
        }
        for _ in range(b_queries)
    ]
    queries = [_query(rng) for _ in range(8)]
    out["C"] = [
        {
            "query": rng.choice(queries),
            "documents": [_text(rng, tokenizer, rng.randint(50, 500)) for _ in range(rng.randint(4, 16))],
        }
        for _ in range(c_requests)
    ]
    return out


def ensure_model(model_dir: Path, say: Any = print) -> Path:
    """The model directory, building the random-weight 0.6B there first if it holds no model."""
    if (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors")):
        return model_dir
    from rerankd.testing.synthetic import build_qwen3_reranker, default_tokenizer_dir

    tok = default_tokenizer_dir()
    if tok is None:
        raise SystemExit(
            "the real Qwen3 tokenizer was not found (set RERANKD_TOKENIZER_DIR); the benchmark needs it"
        )
    say(f"building a random-weight Qwen3-Reranker-0.6B in {model_dir} (once) ...")
    return build_qwen3_reranker(model_dir, tokenizer_dir=tok, full_size=True)
