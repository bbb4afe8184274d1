"""Several models for `rerankd serve`: the per-model options given by position (like Infinity's
`--model-id A --model-id B --served-model-name a --served-model-name b`) and the `--models-file` TOML.

```toml
[[model]]
model = "Qwen/Qwen3-Reranker-0.6B"
served_name = "qwen3"
dtype = "bfloat16"

[[model]]
model = "BAAI/bge-reranker-v2-m3"
served_name = "bge"
max_length = 1024
```

Every key but `model` is optional; an unset one takes the command line's value for every model."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerankd.cli.options import EXIT_USAGE, fail

#: The keys of a `[[model]]` table and the type each takes.
KEYS: dict[str, type] = {
    "model": str,
    "served_name": str,
    "dtype": str,
    "device": str,
    "max_length": int,
    "family": str,
    "template": str,
    "instruction": str,
    "trust_remote_code": bool,
}
FAMILIES = ("yes_no", "cross_encoder")


@dataclass(frozen=True)
class ModelEntry:
    """One model to serve, as the command line or the file gave it; None: the shared option's value."""

    model: str
    served_name: str | None = None
    dtype: str | None = None
    device: str | None = None
    max_length: int | None = None
    family: str | None = None
    template: str | None = None
    instruction: str | None = None
    trust_remote_code: bool | None = None


def env_list(values: Sequence[str] | None, variable: str) -> list[str] | None:
    """The option's values, or else the environment variable's, split on commas (never on spaces)."""
    if values:
        return list(values)
    raw = os.environ.get(variable, "")
    return [v.strip() for v in raw.split(",") if v.strip()] or None


def split_models(values: Sequence[str] | None) -> list[str]:
    """`--model` values; each may hold several, comma-separated (how RERANKD_MODEL lists them)."""
    return [m.strip() for v in values or [] for m in v.split(",") if m.strip()]


def aligned(
    values: Sequence[str] | None, n: int, option: str, *, once_for_all: bool = True
) -> list[str | None]:
    """A per-model option for `n` models: not given (None each), given once (the same for every model,
    when `once_for_all`), or once per --model, in order. Any other count is a usage error."""
    given: list[str | None] = list(values or [])
    if not given:
        return [None] * n
    if len(given) == n:
        return given
    if len(given) == 1 and once_for_all:
        return given * n
    allowed = f"once or {times(n)}" if once_for_all and n > 1 else times(n)
    raise fail(
        f"{option} was given {times(len(given))} for {n} --model: give it {allowed} (one per --model, in order)",
        EXIT_USAGE,
    )


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def read_models_file(path: Path) -> list[ModelEntry]:
    """The `[[model]]` tables of a TOML file; a wrong key or type is a usage error naming the table."""
    if not path.is_file():
        raise fail(f"--models-file {path}: no such file", EXIT_USAGE)
    try:  # stdlib from Python 3.11; on 3.10 the same parser as the `tomli` package
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ImportError:
            raise fail(
                "--models-file needs Python 3.11+, or on 3.10: pip install tomli", EXIT_USAGE
            ) from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise fail(f"--models-file {path}: not valid TOML ({e})", EXIT_USAGE) from None
    other = sorted(set(data) - {"model"})
    tables = data.get("model")
    if other or not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise fail(
            f"--models-file {path}: expected one or more [[model]] tables and nothing else"
            + (f" (found {', '.join(other)})" if other else ""),
            EXIT_USAGE,
        )
    return [_entry(path, n, table) for n, table in enumerate(tables, 1)]


def _entry(path: Path, n: int, table: dict[str, Any]) -> ModelEntry:
    where = f"--models-file {path}, [[model]] #{n}"
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise fail(
            f"{where}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(KEYS)}", EXIT_USAGE
        )
    if "model" not in table:
        raise fail(f"{where}: `model` is required (a hub id or a local directory)", EXIT_USAGE)
    for key, value in table.items():
        kind = KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise fail(f"{where}: `{key}` must be a {kind.__name__}, got {value!r}", EXIT_USAGE)
    if table.get("family") is not None and table["family"] not in FAMILIES:
        raise fail(f"{where}: `family` must be one of {', '.join(FAMILIES)}", EXIT_USAGE)
    return ModelEntry(**table)


def duplicate_names(names: Sequence[str]) -> list[str]:
    return sorted(n for n, count in Counter(names).items() if count > 1)
