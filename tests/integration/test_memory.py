"""Memory stays flat while batch shapes keep changing (issue 12, "Memory grows with traffic").

A server sees a new (rows, columns) shape in nearly every batch. In bf16 on CPU each new matmul shape
used to add ~0.7 MiB that was never given back (oneDNN's primitive cache and ideep's LRU cache, 1024
entries each by default), +304 MiB/min in the soak. `rerankd.models` now caps both; this loop of
forward passes, each with a shape not seen before, fails without the caps (~+500 MiB) and passes with
them. It runs in a fresh interpreter: the caps are read once per process, at the first bf16 matmul."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerankd.models import NATIVE_CACHE_VARS

SCRIPT = r"""
import json, sys
import rerankd.models  # the caps are set here, before any matmul
from rerankd.config import ModelConfig, load_scorer
from rerankd.models.base import EncodedPair, PlannedBatch

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

scorer = load_scorer(ModelConfig(sys.argv[1], dtype="bfloat16", device="cpu"))
warm, measured = int(sys.argv[2]), int(sys.argv[3])
points = []
for i in range(warm + measured):
    # Rows x (16 + i) columns: every pass multiplies matrices of a shape no earlier pass had.
    rows = 1 + i % 3
    pair = EncodedPair([1000 + (j * 7) % 3000 for j in range(16 + i)])
    scorer.forward(PlannedBatch.of([pair] * rows))
    if i + 1 in (warm, warm + measured):
        points.append(rss_mib())
print(json.dumps({"dtype": scorer.info.dtype, "grew_mib": points[1] - points[0]}))
"""


def run_loop(model: Path, env: dict[str, str], warm: int = 64, measured: int = 96) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), str(warm), str(measured)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_rss_stays_flat_over_new_bf16_shapes(qwen3_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NATIVE_CACHE_VARS}  # the package's caps
    env["OMP_NUM_THREADS"] = "1"  # the same work on any machine, and no oversubscribed shared CPU
    result = run_loop(qwen3_dir, env)
    assert result["dtype"] == "bfloat16"
    # 96 passes with new shapes once the caps are full: uncapped, this grew +200 MiB (caps 1024).
    assert result["grew_mib"] < 25, result
