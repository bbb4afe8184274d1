"""Model resolution and download (`rerankd.hub`), with only the network edge replaced: the hub's and
ModelScope's `snapshot_download`. Everything else (cache lookups, offline rules, messages) is real."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from rerankd import hub
from rerankd.errors import ModelLoadError


class FakeHub:
    """snapshot_download: `cached` ids are in the cache; others download into `root` (or fail)."""

    def __init__(self, root: Path, cached: tuple[str, ...] = (), fail: BaseException | None = None) -> None:
        self.root, self.cached, self.fail = root, set(cached), fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, **kwargs})
        if kwargs.get("local_files_only"):
            if repo_id not in self.cached:
                raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
            return str(self.root / "cache" / repo_id)
        if self.fail is not None:
            raise self.fail
        out = Path(kwargs.get("local_dir") or self.root / "cache" / repo_id)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}")
        self.cached.add(repo_id)
        return str(out)


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return fake


def downloads(fake: FakeHub) -> list[dict[str, Any]]:
    return [c for c in fake.calls if not c.get("local_files_only")]


def test_a_local_directory_is_used_as_is(tmp_path: Path, fake_hub: FakeHub) -> None:
    assert hub.resolve(str(tmp_path)) == tmp_path
    assert fake_hub.calls == []


def test_a_missing_path_is_named_not_downloaded(tmp_path: Path, fake_hub: FakeHub) -> None:
    with pytest.raises(ModelLoadError, match="no such directory"):
        hub.resolve(str(tmp_path / "nope"))
    assert fake_hub.calls == []


def test_a_cached_hub_id_needs_no_network(fake_hub: FakeHub) -> None:
    fake_hub.cached.add("Qwen/Qwen3-Reranker-0.6B")
    assert hub.resolve("Qwen/Qwen3-Reranker-0.6B") == fake_hub.root / "cache" / "Qwen/Qwen3-Reranker-0.6B"
    assert downloads(fake_hub) == []


def test_an_uncached_hub_id_is_downloaded_once(fake_hub: FakeHub) -> None:
    path = hub.resolve("org/model")
    assert (path / "config.json").exists()
    assert [c["repo_id"] for c in downloads(fake_hub)] == ["org/model"]
    hub.resolve("org/model")  # now in the cache
    assert len(downloads(fake_hub)) == 1


def test_offline_and_uncached_says_how_to_get_it(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.ModelNotAvailable) as e:
        hub.resolve("org/model")
    message = str(e.value)
    assert "HF_HUB_OFFLINE" in message
    assert "rerankd download org/model" in message and "HF_ENDPOINT" in message
    assert "copy the model directory" in message and "\n" not in message
    assert downloads(fake_hub) == []  # offline means offline


def test_a_failed_download_names_the_endpoint(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    fake_hub.fail = ConnectionError("Name or service not known")
    with pytest.raises(hub.ModelNotAvailable, match=r"https://mirror\.example failed \(ConnectionError"):
        hub.download("org/model")


def test_download_to_a_directory(tmp_path: Path, fake_hub: FakeHub) -> None:
    path = hub.download("org/model", to=tmp_path / "here")
    assert path == tmp_path / "here" and (path / "config.json").exists()
    assert downloads(fake_hub)[0]["local_dir"] == str(tmp_path / "here")


def test_download_refuses_a_path(fake_hub: FakeHub) -> None:
    with pytest.raises(ModelLoadError, match="is a path"):
        hub.download("./some/dir")


def test_modelscope_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_hub: FakeHub) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def snapshot_download(model_id: str, **kwargs: Any) -> str:
        calls.append((model_id, kwargs))
        return str(kwargs.get("local_dir", tmp_path / "ms"))

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=snapshot_download))
    assert hub.download("Qwen/Qwen3-Reranker-0.6B", to=tmp_path / "q", source="modelscope") == tmp_path / "q"
    assert calls == [("Qwen/Qwen3-Reranker-0.6B", {"local_dir": str(tmp_path / "q")})]
    assert fake_hub.calls == []  # the Hugging Face hub is not asked


def test_modelscope_not_installed_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import modelscope -> ModuleNotFoundError
    with pytest.raises(hub.MissingExtra, match=r"pip install modelscope"):
        hub.download("org/model", source="modelscope")


def test_huggingface_hub_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(hub.MissingExtra, match=r'pip install "rerankd\[local\]"'):
        hub.download("org/model")
    assert hub.cached("org/model") is None


def test_offline_download_to_copies_the_cached_copy(
    tmp_path: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.download("org/model")  # now in the (fake) cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = hub.download("org/model", to=tmp_path / "copy")
    assert (out / "config.json").read_text() == "{}" and out == tmp_path / "copy"
    assert len(downloads(fake_hub)) == 1
