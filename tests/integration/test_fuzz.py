"""Schema fuzzing against a real `rerankd serve`: schemathesis reads the live /openapi.json and sends
what it generates (positive: fits the schema; negative: does not), with and without the API key.
Whatever it sends: no 5xx, no hang, and only statuses the schema documents. Bounded so it fits the suite.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from rerankd.testing.servers import RunningServer, rerankd_server  # noqa: E402

KEY = "fuzz-key"
MAX_EXAMPLES = 60  # per test (all operations together); the whole file stays well under 90 s
TIMEOUT = 20.0  # a request slower than this is a hang
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def keyed_server(qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rerankd_server(
        qwen3_dir, "--api-key", KEY, "--no-ui", log_dir=tmp_path_factory.mktemp("fuzz-logs")
    ) as running:
        yield running


def documented(case: Any) -> set[str]:
    return {str(s) for s in case.operation.definition.raw.get("responses", {})}


def fuzz(
    server: RunningServer, mode: GenerationMode, headers: dict[str, str], key: str | None = None
) -> Counter[int]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=auth, timeout=TIMEOUT)
    seen: Counter[int] = Counter()
    bad: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same examples every run: a failure reproduces
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        start = time.monotonic()
        response = case.call(headers=headers, timeout=TIMEOUT)
        elapsed = time.monotonic() - start
        status = response.status_code
        seen[status] += 1
        where = f"{case.method} {case.path} -> {status} ({elapsed:.1f}s) body={str(case.body)[:200]!r}"
        if status >= 500 or elapsed >= TIMEOUT:
            bad.append(where)
        allowed = documented(case)
        if str(status) not in allowed and "default" not in allowed:
            bad.append(f"undocumented status: {where}")

    run()
    assert not bad, "\n".join(bad[:20]) + "\n" + server.log()[-3000:]
    STATUSES.update(seen)
    return seen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_without_key(server: RunningServer, mode: GenerationMode) -> None:
    seen = fuzz(server, mode, {})
    assert sum(seen.values()) >= MAX_EXAMPLES  # it did send requests
    assert server.process.poll() is None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_with_key(keyed_server: RunningServer, mode: GenerationMode) -> None:
    seen = fuzz(keyed_server, mode, {"Authorization": f"Bearer {KEY}"}, key=KEY)
    assert 401 not in seen  # the key opens every route
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= s < 300 for s in seen)


def test_fuzz_wrong_key_is_always_401_on_the_api(keyed_server: RunningServer) -> None:
    seen = fuzz(keyed_server, GenerationMode.POSITIVE, {"Authorization": "Bearer wrong"}, key=KEY)
    assert 401 in seen
    print(f"fuzz statuses so far: {dict(sorted(STATUSES.items()))}")
