"""The benchmark's report: one BenchRow type read from and written to the JSON of earlier runs unchanged,
and the table in benchmarks/README.md is what the committed results render to."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from rerankd.bench import _reused_reference
from rerankd.bench.machine import Limits
from rerankd.bench.report import BenchRow, markdown_table, progress_line
from rerankd.bench.workloads import make_workloads

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def _rows(name: str) -> list[dict[str, Any]]:
    return json.loads((RESULTS / name).read_text())["rows"]


@pytest.mark.parametrize("name", ["AB-reference.json", "AB.json", "C.json", "A-amx.json"])
def test_rows_of_earlier_runs_round_trip(name: str) -> None:
    for row in _rows(name):
        assert BenchRow.from_json(row).to_json() == row


def test_the_readme_table_is_what_the_committed_results_render_to() -> None:
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for group in (["AB.json", "C.json"], ["A-amx.json"]):  # the earlier machine's table, the AMX one's
        rows = [BenchRow.from_json(r) for name in group for r in _rows(name)]
        for line in markdown_table(rows).splitlines():
            assert line in readme, line


def test_a_measured_row_is_set_against_its_limits() -> None:
    limits = Limits(peaks={"float32": 100.0}, flops_per_token=1e9, weights_bytes=2**30)
    ref = BenchRow.measured(
        "A", "reference", pairs=2, tokens=50, seconds=1.0, rss_kib=2**20, scores=[[0.5, 0.25]],
        limits=limits, dtype="float32", compared_with=[[0.5, 0.25]],
    )  # fmt: skip
    row = BenchRow.measured(
        "A", "float32", pairs=2, tokens=50, seconds=0.5, rss_kib=2**19, scores=[[0.5, 0.3]],
        limits=limits, dtype="float32", compared_with=ref.scores,
    )  # fmt: skip
    assert row.pairs_per_s == 4 and row.tokens_per_s == 100 and row.peak_fraction == 1.0
    assert row.peak_rss_gib == 0.5 and row.rss_over_weights == 0.5
    assert row.max_diff == pytest.approx(0.05)
    assert "(2.00x ref)" in progress_line(row, [ref, row])
    assert "vs_offline" not in row.to_json() and "reused" not in row.to_json()


def test_reference_rows_are_reused_only_from_a_run_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"quick": False, "rows": _rows("AB-reference.json")}))
    reused = _reused_reference(path, ["float32"], quick=False)
    assert [r.workload for r in reused] == ["A", "B"] and all(r.reused for r in reused)
    assert _reused_reference(path, ["reference", "float32"], quick=False) == []
    with pytest.raises(typer.BadParameter, match="another --quick"):
        _reused_reference(path, ["float32"], quick=True)


class _WordTokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()


def test_workloads_are_seeded() -> None:
    a, b = make_workloads(_WordTokenizer(), quick=True), make_workloads(_WordTokenizer(), quick=True)
    assert a == b and [len(a[w]) for w in "ABC"] == [1, 2, 8]
    assert len(a["A"][0]["documents"]) == 8
    random.seed(0)  # the workloads use their own generator, not the global one
    assert make_workloads(_WordTokenizer(), quick=True) == a


def test_importing_the_command_loads_neither_torch_nor_transformers() -> None:
    code = "import sys, rerankd.bench\nassert not {'torch', 'transformers'} & set(sys.modules)\n"
    subprocess.run([sys.executable, "-c", code], check=True)
