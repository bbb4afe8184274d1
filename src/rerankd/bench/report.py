"""One row per (workload, variant), built in one place, and the ways it is shown: a progress line while
the run goes, the markdown table at its end, and the JSON that `--output` writes and `--reference-from`
reads back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rerankd.bench.machine import Limits


@dataclass(frozen=True)
class BenchRow:
    workload: str
    variant: str
    pairs: int
    tokens: int
    seconds: float
    peak_fraction: float
    peak_rss_gib: float
    rss_over_weights: float
    max_diff: float | None  # max |probability difference| against the row it is compared with
    scores: list[list[float]]
    vs_offline: float | None = None  # the server's pairs/s over the offline run's (workload C)
    reused: bool = False  # read from an earlier run's JSON (--reference-from)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @classmethod
    def measured(
        cls,
        workload: str,
        variant: str,
        *,
        pairs: int,
        tokens: int,
        seconds: float,
        rss_kib: int,
        scores: list[list[float]],
        limits: Limits,
        dtype: str,
        compared_with: list[list[float]] | None = None,
        vs_offline: float | None = None,
    ) -> BenchRow:
        """A row from one run's measurements; `dtype` picks the matmul peak it is set against."""
        return cls(
            workload=workload,
            variant=variant,
            pairs=pairs,
            tokens=tokens,
            seconds=seconds,
            peak_fraction=limits.peak_fraction(tokens, seconds, dtype),
            peak_rss_gib=rss_kib / 2**20,
            rss_over_weights=limits.rss_over_weights(rss_kib),
            max_diff=max_diff(scores, compared_with) if compared_with is not None else None,
            scores=scores,
            vs_offline=vs_offline,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON row (the same keys as earlier runs wrote: rates included, optional keys only when set)."""
        out = asdict(self)
        out |= {"pairs_per_s": self.pairs_per_s, "tokens_per_s": self.tokens_per_s}
        order = ["workload", "variant", "pairs", "tokens", "seconds", "pairs_per_s", "tokens_per_s"]
        order += ["peak_fraction", "peak_rss_gib", "rss_over_weights", "max_diff", "vs_offline", "scores"]
        row = {k: out[k] for k in order if k != "vs_offline" or self.vs_offline is not None}
        if self.reused:
            row["reused"] = True
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> BenchRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def _reference(row: BenchRow, rows: list[BenchRow]) -> BenchRow | None:
    return next((r for r in rows if r.workload == row.workload and r.variant == "reference"), None)


def progress_line(row: BenchRow, rows: list[BenchRow]) -> str:
    ref = _reference(row, rows)
    speed = f" ({row.pairs_per_s / ref.pairs_per_s:.2f}x ref)" if ref else ""
    diff = f", max diff {row.max_diff:.2e}" if row.max_diff is not None else ""
    return (
        f"[{row.workload}] {row.variant}: {row.pairs_per_s:.2f} pairs/s{speed}, "
        f"{row.tokens_per_s:.0f} tok/s, {100 * row.peak_fraction:.0f}% of peak, "
        f"RSS {row.peak_rss_gib:.2f} GiB{diff}"
    )


def markdown_table(rows: list[BenchRow]) -> str:
    lines = [
        "| workload | variant | pairs | tokens | s | pairs/s | x ref | tokens/s | % matmul peak | peak RSS GiB "
        "| RSS / weights | max diff |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ref = _reference(r, rows)
        if r.vs_offline is not None:
            speed = f"{r.vs_offline:.2f}x offline"
        else:
            speed = f"{r.pairs_per_s / ref.pairs_per_s:.2f}" if ref else "-"
        diff = f"{r.max_diff:.1e}" if r.max_diff is not None else "-"
        variant = r.variant + (" (earlier run)" if r.reused else "")
        lines.append(
            f"| {r.workload} | {variant} | {r.pairs} | {r.tokens} | {r.seconds:.1f} "
            f"| {r.pairs_per_s:.2f} | {speed} | {r.tokens_per_s:.0f} | {100 * r.peak_fraction:.0f}% "
            f"| {r.peak_rss_gib:.2f} | {r.rss_over_weights:.2f} | {diff} |"
        )
    return "\n".join(lines)
