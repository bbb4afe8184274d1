"""Where a model's files come from: a local directory, the Hugging Face hub (or a mirror via HF_ENDPOINT),
or ModelScope. `resolve` turns `--model` into a local directory before anything heavy starts (the server
binds no port for a model it cannot get); `download` is `rerankd download`.

Imports nothing heavy: huggingface_hub (the `local` extra) and modelscope load only when called."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rerankd.errors import ModelLoadError

Source = Literal["hf", "modelscope"]
SOURCES: tuple[Source, ...] = ("hf", "modelscope")


class ModelNotAvailable(ModelLoadError):
    """The model is neither a local directory nor in the cache, and could not be fetched."""

    code = "model_not_available"


class MissingExtra(ModelLoadError):
    """An optional dependency is not installed; the message names the pip command that installs it."""

    code = "missing_extra"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", os.environ.get("TRANSFORMERS_OFFLINE", "")).lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


def looks_like_path(model: str) -> bool:
    """A path, not a hub id: hub ids are `name` or `org/name`."""
    return model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1 or "\\" in model


def how_to_get(model: str, why: str) -> str:
    """The one message a user sees when the model cannot be had here: why, then the three ways to get it."""
    name = model.rsplit("/", 1)[-1]
    return (
        f"model {model!r} is not here: {why}. Get it one of three ways: "
        f"(1) on a machine that can reach the hub: `rerankd download {model} --to ./{name}`, then "
        f"--model ./{name}; "
        "(2) through a mirror: HF_ENDPOINT=https://hf-mirror.com (or your own), or "
        f"`rerankd download {model} --source modelscope`; "
        "(3) copy the model directory (config.json, weights, tokenizer) from a connected machine and "
        "pass that local directory to --model"
    )


def _hf_snapshot_download() -> Callable[..., str]:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingExtra(
            'getting a model from the hub needs huggingface_hub: pip install "rerankd[local]"'
        ) from None
    # Looked up on the module at call time so that tests can replace the network edge.
    fn: Callable[..., str] = huggingface_hub.snapshot_download
    return fn


def _modelscope_snapshot_download() -> Callable[..., str]:
    try:
        import modelscope
    except ImportError:
        raise MissingExtra(
            'downloading from ModelScope needs its package: pip install "rerankd[modelscope]" '
            "(or pip install modelscope)"
        ) from None
    fn: Callable[..., str] = modelscope.snapshot_download
    return fn


def cached(model: str) -> Path | None:
    """The hub cache's copy of `model`, without asking the network; None when there is none."""
    try:
        snapshot = _hf_snapshot_download()
    except MissingExtra:
        return None
    try:
        return Path(snapshot(model, local_files_only=True))
    except Exception:  # any "not in the cache" (LocalEntryNotFoundError, a bad id, a broken cache)
        return None


def download(model: str, *, to: Path | None = None, source: Source = "hf") -> Path:
    """Fetch `model` (a hub id) with a progress bar and return its local directory. Resumable: files
    already complete are skipped and partial ones continue. HF_ENDPOINT and HF_HUB_OFFLINE apply."""
    if source not in SOURCES:
        raise ModelLoadError(f"unknown source {source!r}: use hf or modelscope")
    if looks_like_path(model):
        raise ModelLoadError(f"{model!r} is a path, not a hub id such as Qwen/Qwen3-Reranker-0.6B")
    kwargs: dict[str, Any] = {} if to is None else {"local_dir": str(to)}
    if source == "modelscope":
        fetch = _modelscope_snapshot_download()
        try:
            return Path(fetch(model, **kwargs))
        except Exception as e:
            raise ModelNotAvailable(
                how_to_get(model, f"ModelScope download failed ({type(e).__name__}: {first_line(e)})")
            ) from e
    fetch = _hf_snapshot_download()
    if offline():
        hit = cached(model)
        if hit is not None and to is None:
            return hit
        if hit is not None and to is not None:
            # The cache's snapshot is symlinks into its blob store: copy the files themselves.
            shutil.copytree(hit, to, dirs_exist_ok=True)
            return Path(to)
        raise ModelNotAvailable(how_to_get(model, "HF_HUB_OFFLINE is set and the hub cache has no copy"))
    try:
        return Path(fetch(model, **kwargs))
    except Exception as e:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if type(e).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
            why = f"{endpoint} has no such model, or it is gated (log in with `hf auth login`)"
        else:
            why = f"downloading from {endpoint} failed ({type(e).__name__}: {first_line(e)})"
        raise ModelNotAvailable(how_to_get(model, why)) from e


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""


def resolve(model: str) -> Path:
    """`--model` as a local directory: the directory itself, the hub cache's copy, or a fresh download.
    Raises ModelNotAvailable (with how to get it) before anything binds a port or loads torch."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"{model!r} is a file; pass the directory that holds config.json")
    if looks_like_path(model):
        raise ModelLoadError(
            f"no such directory: {model!r}. Pass a local model directory (with config.json) or a hub id "
            "such as Qwen/Qwen3-Reranker-0.6B"
        )
    hit = cached(model)
    if hit is not None:
        return hit
    return download(model)
