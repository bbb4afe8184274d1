"""`pick_dtype` (what dtype="auto" becomes): faked CPU flags and GEMM timings for each kind of machine
the project has met, and one real call on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerankd.models.cpu import CpuFeatures, bf16_speedup, pick_dtype, read_cpu_flags

AMX = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}), "AVX512")
ZEN4 = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}), "AVX512")
OLD = CpuFeatures(frozenset({"avx2", "fma"}), "AVX2")


def _never() -> float:
    raise AssertionError("AMX decides without timing anything")


def test_amx_picks_bf16_without_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANKD_AUTO_DTYPE", raising=False)
    name, why = pick_dtype("cpu", AMX, _never)
    assert name == "bfloat16" and "AMX" in why


def test_without_amx_the_timing_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANKD_AUTO_DTYPE", raising=False)
    assert pick_dtype("cpu", ZEN4, lambda: 1.8)[0] == "bfloat16"  # native bf16 that pays
    name, why = pick_dtype("cpu", ZEN4, lambda: 1.05)  # native but no faster: stay exact
    assert name == "float32" and "1.05" in why
    assert pick_dtype("cpu", OLD, lambda: 0.5)[0] == "float32"  # emulated bf16


def test_cuda_is_bf16_and_the_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANKD_AUTO_DTYPE", raising=False)
    assert pick_dtype("cuda", OLD, _never)[0] == "bfloat16"
    monkeypatch.setenv("RERANKD_AUTO_DTYPE", "float32")
    assert pick_dtype("cpu", AMX, _never) == ("float32", "$RERANKD_AUTO_DTYPE=float32")


def test_flags_parse_and_summary(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile avx512_vnni\n")
    feats = CpuFeatures(read_cpu_flags(str(info)), "AVX512")
    assert feats.amx and feats.vnni and not feats.avx512_bf16
    assert feats.summary().startswith("AMX yes, avx512_bf16 no, VNNI yes")
    assert read_cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_real_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANKD_AUTO_DTYPE", raising=False)  # the suite's conftest pins it
    feats = CpuFeatures.detect()
    ratio = bf16_speedup()
    assert ratio > 0 and bf16_speedup() == ratio  # measured once, cached
    name, why = pick_dtype("cpu")
    assert name in ("float32", "bfloat16") and why
    if feats.amx:
        assert name == "bfloat16"
