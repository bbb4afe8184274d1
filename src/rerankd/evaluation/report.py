"""What an evaluation writes: report.json, report.md, chart.png and one TREC run per stage."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import re
import sys
from pathlib import Path
from typing import Any

from rerankd.evaluation.harness import EvalResult
from rerankd.evaluation.metrics import METRICS
from rerankd.evaluation.runs import write_trec_run

METRIC_DEFINITIONS = {
    "nDCG@10": "pytrec_eval ndcg_cut_10 (gain = relevance grade, log2 discount)",
    "MRR@10": "pytrec_eval recip_rank over the top 10",
    "Recall@10": "pytrec_eval recall_10",
    "Recall@100": "pytrec_eval recall_100",
    "MAP": "pytrec_eval map, over the whole ranking (first-stage top k)",
}

_PACKAGES = (
    "rerankd",
    "pytrec-eval-terrier",
    "bm25s",
    "numpy",
    "matplotlib",
    "torch",
    "transformers",
    "httpx",
)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def _delta(
    after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    return {lang: {m: after[lang][m] - before[lang][m] for m in METRICS} for lang in after if lang in before}


def build_report(
    result: EvalResult, run_files: dict[str, str], command: list[str] | None = None
) -> dict[str, Any]:
    ds = result.dataset
    first = result.first_stage
    return {
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "dataset": {
            "name": ds.name,
            "path": str(ds.path),
            "split": ds.split,
            "documents": len(ds.corpus),
            "queries": len(result.query_ids),
            "languages": ds.languages(result.query_ids),
            "qrels_queries_missing_from_queries_jsonl": ds.missing_queries,
        },
        "first_stage": first | {"run_file": run_files.get(first["name"])},
        "metrics": result.stages,
        "metric_definitions": METRIC_DEFINITIONS,
        "rerankers": [
            {
                "name": s.name,
                "kind": s.spec.kind,
                **s.spec.details,
                "instruction": s.instruction,
                "run_file": run_files.get(s.name),
                "delta_vs_first_stage": _delta(s.metrics, result.first_stage_metrics),
                "timing": s.timing.summary(),
            }
            for s in result.systems
        ],
        "cache": result.cache,
        "versions": versions(),
    }


def _fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    ds, first = report["dataset"], report["first_stage"]
    stages: dict[str, dict[str, dict[str, float]]] = report["metrics"]
    langs = [lang for lang in next(iter(stages.values())) if lang != "all"]
    source = (
        f"BM25 (bm25s), top {first['top_k']}"
        if first["method"] == "bm25"
        else f"`{first['candidates']}`, top {first['top_k']}"
    )
    out = [
        f"# Reranking evaluation: {ds['name']} ({ds['split']})",
        "",
        f"{ds['queries']} queries, {ds['documents']} documents"
        + (
            f"; languages: {', '.join(f'{k} ({v})' for k, v in ds['languages'].items())}"
            if ds["languages"]
            else ""
        )
        + f". First stage: {source}. Created {report['created_at']}.",
        "",
        "## All queries",
        "",
        _table(
            ["stage", *METRICS], [[name, *(_fmt(m["all"][k]) for k in METRICS)] for name, m in stages.items()]
        ),
    ]
    for metric in ("nDCG@10", "MRR@10") if langs else ():
        out += [
            "",
            f"## {metric} by language",
            "",
            _table(
                ["stage", "all", *langs],
                [[name, *(_fmt(m[lang][metric]) for lang in ["all", *langs])] for name, m in stages.items()],
            ),
        ]
    out += ["", "## Speed", "", "Latency: one scoring call per query, all its candidates at once.", ""]
    out.append(
        _table(
            [
                "reranker",
                "pairs/s",
                "p50 ms/query",
                "p95 ms/query",
                "timed queries",
                "scored now",
                "from cache",
            ],
            [
                [
                    r["name"],
                    _fmt(r["timing"]["pairs_per_second"], 1),
                    _fmt(r["timing"]["latency_ms"]["p50"], 1),
                    _fmt(r["timing"]["latency_ms"]["p95"], 1),
                    str(r["timing"]["timed_queries"]),
                    str(r["timing"]["pairs_scored"]),
                    str(r["timing"]["pairs_cached"]),
                ]
                for r in report["rerankers"]
            ],
        )
    )
    out += ["", "## Rerankers", ""]
    for r in report["rerankers"]:
        what = ", ".join(f"{k}: `{r[k]}`" for k in ("model", "url", "provider") if r.get(k))
        instr = "the model's default" if r["instruction"] is None else f"`{r['instruction']}`"
        out.append(f"- **{r['name']}** ({r['kind']}; {what}); instruction: {instr}; run: `{r['run_file']}`")
    v = report["versions"]
    out += ["", "## Versions", "", ", ".join(f"{k} {val}" for k, val in v.items() if k != "platform"), ""]
    return "\n".join(out)


def render_chart(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars: one panel per language ("all" first), metrics on x, one bar per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages: dict[str, dict[str, dict[str, float]]] = report["metrics"]
    langs = list(next(iter(stages.values())))
    cols = min(4, len(langs))
    rows = (len(langs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    width = 0.8 / len(stages)
    for idx, lang in enumerate(langs):
        ax = axes[idx // cols][idx % cols]
        for s, (name, m) in enumerate(stages.items()):
            xs = [i + (s - (len(stages) - 1) / 2) * width for i in range(len(METRICS))]
            ax.bar(xs, [m[lang][k] for k in METRICS], width, label=name)
        ax.set_title("all languages" if lang == "all" else lang)
        ax.set_xticks(range(len(METRICS)), METRICS, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    for idx in range(len(langs), rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(stages), 4), fontsize=8, frameon=False)
    fig.suptitle(f"{report['dataset']['name']} ({report['dataset']['split']}): before and after reranking")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: EvalResult, output: str | Path, command: list[str] | None = None) -> dict[str, Any]:
    """Write everything under `output`; returns the report (as written to report.json)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    run_files: dict[str, str] = {}
    rankings = {result.first_stage["name"]: result.first_stage_ranking} | {
        s.name: s.ranking for s in result.systems
    }
    for name, ranking in rankings.items():
        base = file = slug(name)
        n = 2
        while f"runs/{file}.trec" in run_files.values():
            file, n = f"{base}-{n}", n + 1
        write_trec_run(out / "runs" / f"{file}.trec", ranking, name)
        run_files[name] = f"runs/{file}.trec"
    report = build_report(result, run_files, command if command is not None else sys.argv)
    (out / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    render_chart(report, out / "chart.png")
    return report
