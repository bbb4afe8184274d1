"""The peers of `rerankd bench` are the same model: sentence-transformers' CrossEncoder on the seq-cls
copy and OpenVINO on the exported IR score what rerankd and the reference score, on a tiny random Qwen3.

The OpenVINO test runs where the peers' interpreter can import openvino: this one, or the one named by
$RERANKD_BENCH_PEER_PYTHON (e.g. a separate venv with openvino), which is what `--peer-python` is for."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. " * 6,
    "Paris\nis the capital\n\nof France.",
    "x",
]


@pytest.fixture()
def own_model(qwen3_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model: the peers write their copies beside it."""
    return Path(shutil.copytree(qwen3_dir, tmp_path / "model"))


def test_st_crossencoder_on_the_seq_cls_copy_scores_as_rerankd(own_model: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from transformers import AutoTokenizer

    from rerankd.bench.peers import cache_dir, is_fresh, prepare, st_pair, st_peer
    from rerankd.config import ModelConfig
    from rerankd.reranker import load_reranker
    from rerankd.templates import QWEN3_RERANKER

    first = prepare("st-crossencoder", str(own_model))
    assert first["made"] and Path(first["cache"]) == cache_dir(own_model, "st-crossencoder")
    peer = st_peer(str(own_model))
    assert not isinstance(peer, str), peer
    score, count, facts = peer
    rr = load_reranker(ModelConfig(model=str(own_model), device="cpu", dtype="float32"))
    ours, theirs = rr.score(QUERY, DOCS), score(QUERY, DOCS)
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-5
    assert max(ours) - min(ours) > 1e-3  # distinct scores: the comparison can fail
    # The split prompt is the reference's token sequence, so both count the same tokens.
    assert count(QUERY, DOCS) == sum(len(e) for e in rr.encode(QUERY, DOCS))
    tok = AutoTokenizer.from_pretrained(str(own_model))
    left, right = st_pair(QUERY, DOCS[2])
    whole = QWEN3_RERANKER.build(QUERY, DOCS[2])
    expected = [tok.encode(p, add_special_tokens=False) for p in (whole.prefix, whole.body, whole.suffix)]
    assert tok(left, right)["input_ids"] == [i for part in expected for i in part]
    assert facts["dtype"] == "float32"
    # Made once: a second prepare reuses the copy; a changed model makes it stale.
    assert prepare("st-crossencoder", str(own_model))["made"] is False
    os.utime(own_model / "config.json", ns=(1, 1))
    assert not is_fresh(cache_dir(own_model, "st-crossencoder"), own_model)


def _can_import(python: str, module: str) -> bool:
    return (
        subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=300).returncode == 0
    )


def test_bench_runs_the_peers_beside_the_reference(own_model: Path, tmp_path: Path) -> None:
    python = os.environ.get("RERANKD_BENCH_PEER_PYTHON") or sys.executable
    has = {m: _can_import(python, m) for m in ("sentence_transformers", "openvino")}
    if not any(has.values()):
        pytest.skip(f"{python} has neither sentence-transformers nor openvino")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "rerankd.bench", "--model", str(own_model), "--quick", "--workloads", "A"]
    cmd += ["--variants", "reference,st-crossencoder,openvino", "--peer-python", python, "--output", str(out)]
    # f32 inference, so that OpenVINO's scores can be held to the reference's within 1e-5.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RERANKD_BENCH_OV_PRECISION": "f32"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    ref = rows["reference"]
    for module, variant in (("sentence_transformers", "st-crossencoder"), ("openvino", "openvino=float32")):
        name = variant.split("=")[0]
        if not has[module]:
            assert variant not in rows and f"{name}: skipped (" in proc.stderr
            continue
        row = rows[variant]
        assert row["max_diff"] < 1e-5, (variant, row["max_diff"])
        assert row["tokens"] == ref["tokens"] and row["pairs"] == ref["pairs"]
        assert f"{name}: python {python}" in proc.stderr  # ran under the peer interpreter
    if has["openvino"]:
        assert "inference precision f32" in proc.stderr
        assert (own_model / ".rerankd-peers" / "openvino" / "model.xml").is_file()


def test_seq_cls_copy_of_a_bf16_checkpoint_stays_bf16(own_model: Path, tmp_path: Path) -> None:
    """The copy is made in the checkpoint's own dtype (an 8B bf16 model is not doubled to fp32), with
    the yes - no score row in fp32, and it still scores as the reference does on those weights."""
    pytest.importorskip("sentence_transformers")
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerankd.bench.peers import cache_dir, prepare, st_peer
    from rerankd.testing.reference import ReferenceQwen3Reranker

    bf16 = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(str(own_model), dtype=torch.bfloat16).save_pretrained(bf16)
    AutoTokenizer.from_pretrained(str(own_model)).save_pretrained(bf16)
    assert prepare("st-crossencoder", str(bf16))["made"]
    with safe_open(str(cache_dir(bf16, "st-crossencoder") / "model.safetensors"), framework="pt") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118
    assert dtypes.pop("score.weight") == "F32"
    assert set(dtypes.values()) == {"BF16"} and not any(n.startswith("lm_head") for n in dtypes)
    peer = st_peer(str(bf16))
    assert not isinstance(peer, str), peer
    ours, ref = peer[0](QUERY, DOCS), ReferenceQwen3Reranker(str(bf16)).score(QUERY, DOCS)
    assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) < 1e-5  # both compute in fp32


def test_a_default_bench_leaves_the_peers_out_for_a_big_checkpoint(
    own_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their copies of an 8B model would take tens of GB: a default run skips them, and says how to
    run them; naming them in --variants runs them."""
    from typer.testing import CliRunner

    import rerankd.bench as bench
    from rerankd.cli import app

    monkeypatch.setattr(bench, "PEERS_BY_DEFAULT_MAX_GIB", 0)
    monkeypatch.setattr(bench, "DEFAULT_VARIANTS", ("float32", "st-crossencoder", "openvino"))
    args = ["bench", "--model", str(own_model), "--quick", "--workloads", "A"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "st-crossencoder, openvino: left out (" in result.output
    assert "name them in --variants to run them" in result.output
    assert "| A | float32 |" in result.output and "| A | st-crossencoder |" not in result.output
    if importlib.util.find_spec("sentence_transformers") is not None:
        named = CliRunner().invoke(app, [*args, "--variants", "float32,st-crossencoder"])
        assert named.exit_code == 0, named.output
        assert "left out" not in named.output and "| A | st-crossencoder |" in named.output


@pytest.mark.parametrize("tied", [True, False])
def test_head_rows_are_read_from_sharded_safetensors(own_model: Path, tmp_path: Path, tied: bool) -> None:
    """The two LM-head rows come from the checkpoint, tied (the embedding, as the real 0.6B) or not,
    across an index of shards; a .bin checkpoint (no safetensors) gives None, and the caller loads."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rerankd.bench.peers import _head_rows

    model = AutoModelForCausalLM.from_pretrained(str(own_model), dtype=torch.float32)
    if tied:
        model.config.tie_word_embeddings = True
        model.tie_weights()
    out = tmp_path / f"sharded-{tied}"
    model.save_pretrained(out, max_shard_size="5MB")
    assert (out / "model.safetensors.index.json").is_file()
    config = AutoConfig.from_pretrained(str(out))
    assert bool(getattr(config, "tie_word_embeddings", False)) == tied
    ids = [17, 3]
    expected = AutoModelForCausalLM.from_pretrained(str(out)).get_output_embeddings().weight[ids]
    assert torch.equal(_head_rows(out, config, ids), expected.float())
    binary = tmp_path / f"bin-{tied}"  # transformers 5 writes safetensors only: a .bin by hand
    binary.mkdir()
    shutil.copy(out / "config.json", binary)
    torch.save(model.state_dict(), binary / "pytorch_model.bin")
    assert _head_rows(binary, config, ids) is None
