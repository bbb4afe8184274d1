"""Scale-out pieces that need neither Ray nor a model: the one scale builder (values, RERANKD_RAY_*
variables, defaults), a Serve config's args, what `serve` mounts on both paths, and `run_batch` over a
torch-free BatchScorer (its exit codes and resuming)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from rerankd.config import BatchConfig, ModelConfig
from rerankd.scaleout.batch import (
    EXIT_BAD_LINES,
    EXIT_COMPLETE,
    EXIT_INCOMPLETE,
    BadLine,
    BatchScorer,
    Job,
    Outcome,
    run_batch,
)
from rerankd.scaleout.batch_scorers import chunk_jobs
from rerankd.scaleout.scale import ScaleConfig, scale_config
from rerankd.scaleout.serve import serve_args, settings_from_args
from rerankd.server.settings import ServerSettings

CPU = ModelConfig(model="m", device="cpu")


def test_scale_config_takes_values_then_environment_then_defaults() -> None:
    assert scale_config(CPU, env={}) == ScaleConfig()
    env = {
        "RERANKD_RAY_NUM_CPUS": "0.5",
        "RERANKD_RAY_NUM_GPUS": "0.25",
        "RERANKD_RAY_TARGET_ONGOING_REQUESTS": "8",
        "RERANKD_RAY_MAX_ONGOING_REQUESTS": "16",
    }
    from_env = scale_config(CPU, replicas=3, address="head:6379", env=env)
    assert from_env == ScaleConfig(
        replicas=3,
        num_cpus=0.5,
        num_gpus=0.25,
        target_ongoing_requests=8.0,
        max_ongoing_requests=16,
        address="head:6379",
    )
    # A passed value wins over its variable; strings (a Serve config's args) are parsed.
    passed = scale_config(CPU, autoscale="1:4", num_cpus="2", num_gpus=0, max_ongoing_requests="32", env=env)
    assert (passed.autoscale, passed.num_cpus, passed.num_gpus, passed.max_ongoing_requests) == (
        (1, 4),
        2.0,
        0.0,
        32,
    )
    assert passed.shape == "autoscaling 1-4" and from_env.shape == "3 replica(s)"


def test_scale_config_gives_cuda_models_a_gpu_each() -> None:
    assert scale_config(ModelConfig(model="m", device="cuda:1"), env={}).num_gpus == 1.0
    assert scale_config(CPU, env={}).num_gpus == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 2, "autoscale": "1:2"}, "not both"),
        ({"autoscale": "4"}, "MIN:MAX"),
        ({"autoscale": "3:1"}, "MIN <= MAX"),
        ({"replicas": 0}, "at least 1"),
        ({"num_cpus": "lots"}, "bad Ray scale setting"),
        ({"num_gpus": -1}, "cannot be negative"),
    ],
)
def test_scale_config_refuses_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scale_config(CPU, env={}, **kwargs)  # type: ignore[arg-type]


def test_model_options_fixed_or_autoscaled() -> None:
    fixed = ScaleConfig(replicas=2, num_cpus=0.5).model_options(graceful_shutdown_timeout_s=7)
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0}
    assert fixed["graceful_shutdown_timeout_s"] == 7
    auto = ScaleConfig(autoscale=(0, 3)).model_options(graceful_shutdown_timeout_s=7)
    assert "num_replicas" not in auto
    assert auto["autoscaling_config"] == {
        "min_replicas": 0,
        "initial_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 4.0,
    }


def test_serve_config_args_become_settings_and_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_API_KEY", "k1, k2")
    monkeypatch.delenv("RERANKD_RAY_NUM_GPUS", raising=False)
    settings, scale = settings_from_args(
        {
            "model": "org/m",
            "device": "cpu",
            "max_batch_tokens": "1024",
            "ui": "false",
            "autoscale": "1:3",
            "num_cpus": 2,
        }
    )
    assert settings.api_keys == ("k1", "k2") and settings.ui is False
    assert settings.batch_config() == BatchConfig(max_batch_tokens=1024)
    assert settings.model_config() == ModelConfig(model="org/m", device="cpu")
    assert (scale.autoscale, scale.num_cpus, scale.num_gpus) == ((1, 3), 2.0, 0.0)
    with pytest.raises(ValueError, match="unknown rerankd args: colour"):
        settings_from_args({"model": "m", "colour": "red"})


def test_serve_config_args_take_several_models() -> None:
    settings, _ = settings_from_args(
        {"model": "org/a", "models": [{"model": "org/b", "served_name": "b", "max_length": 512}]}
    )
    assert settings.model_names == ("org/a", "b")
    assert settings.models == (ModelConfig(model="org/b", served_name="b", max_length=512),)
    with pytest.raises(ValueError, match=r"args\.models must be a list"):
        settings_from_args({"model": "org/a", "models": "org/b"})


def test_serve_mounts_the_ui_on_both_paths_and_the_mount_pickles() -> None:
    """The same list goes to the one-process app and to the Ray ingress, which gets it pickled."""
    from rerankd.cli.serve import mount_ui, mounts

    with_ui = mounts(ServerSettings(model="m"))
    assert with_ui == [mount_ui]
    assert pickle.loads(pickle.dumps(with_ui)) == [mount_ui]
    assert mounts(ServerSettings(model="m", ui=False)) == []


class LengthScorer:
    """A BatchScorer without a model: each document's score is its length; `fail_at` raises there."""

    description = "lengths"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.closed = False

    def stream(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        for chunk in chunk_jobs(jobs, max_pairs=3):
            for job in chunk:
                if job.line == self.fail_at:
                    raise RuntimeError("replica lost")
                if "" in job.documents:
                    yield job, BadLine(job.line, "could not be scored: empty document")
                else:
                    yield job, [float(len(d)) for d in job.documents]

    def close(self) -> None:
        self.closed = True


def test_run_batch_over_any_batch_scorer(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        {"query": "q", "documents": ["a", "bb"], "id": 1},
        {"query": "q", "document": "ccc"},
        {"query": "q", "documents": ["", "x"]},  # the scorer refuses it: a bad line
        {"query": "q", "documents": ["dddd"]},
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    scorer: BatchScorer = LengthScorer(fail_at=4)
    stopped = run_batch(src, out, scorer)
    assert stopped.exit_code == EXIT_INCOMPLETE and "replica lost" in str(stopped.stopped)
    assert [b.line for b in stopped.bad] == [3]

    resumed = run_batch(src, out, LengthScorer())
    assert resumed.exit_code == EXIT_BAD_LINES and (resumed.already_done, resumed.scored) == (2, 1)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows == [
        {"line": 1, "id": 1, "scores": [1.0, 2.0]},
        {"line": 2, "id": None, "score": 3.0},
        {"line": 4, "id": None, "scores": [4.0]},
    ]
    src.write_text("".join(json.dumps(x) + "\n" for i, x in enumerate(lines) if i != 2))
    assert run_batch(src, tmp_path / "fresh.jsonl", LengthScorer()).exit_code == EXIT_COMPLETE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "-m", "m", "--replicas", "2"], "need --ray"),
        (["serve", "-m", "m", "--ray", "--replicas", "2", "--autoscale", "1:2"], "not both"),
        (["serve", "-m", "m", "--ray", "--autoscale", "2"], "MIN:MAX"),
        (["serve", "-m", "m", "--ray", "--replicas", "0"], "--replicas must be positive"),
        (["serve", "-m", "m", "--api-key-file", "/no/such/keys"], "--api-key-file /no/such/keys: no such"),
        (["batch", "--input", "{src}", "-o", "{out}", "-m", "m", "--concurrency", "0"], "--concurrency"),
        (["batch", "--input", "{src}", "-o", "{out}", "-m", "m", "--batch-size", "0"], "--batch-size"),
        (["batch", "--input", "{src}", "-o", "{out}", "--url", "ftp://x"], "http:// or https://"),
        (["batch", "--input", "{src}", "-o", "{out}", "--url", "http://x", "--ray"], "do not go together"),
        (["batch", "--input", "/no/such.jsonl", "-o", "{out}", "-m", "m"], "--input /no/such.jsonl: no such"),
    ],
)
def test_serve_and_batch_usage_errors_exit_2_before_loading(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Refused by the shared option checks and the scale builder: nothing loaded, Ray never started."""
    from typer.testing import CliRunner

    from rerankd.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text('{"query": "q", "document": "d"}\n')
    argv = [a.format(src=src, out=tmp_path / "out.jsonl") for a in args]
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_app_builder_mounts_the_ui_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rerankd.cli.serve:app_builder` (a Serve config's import_path) builds what `serve --ray` builds."""
    import rerankd.scaleout.serve as ray_serve
    from rerankd.cli.serve import app_builder, mount_ui

    built: list[tuple[ServerSettings, ScaleConfig, list[object]]] = []
    monkeypatch.setattr(
        ray_serve,
        "build_application",
        lambda s, scale, mounts=(), scales=None: built.append((s, scale, list(mounts))),
    )
    app_builder({"model": "m", "device": "cpu", "replicas": "2"})
    app_builder({"model": "m", "device": "cpu", "ui": False})
    assert [b[2] for b in built] == [[mount_ui], []]
    assert built[0][1].replicas == 2 and built[0][0].model_config() == CPU


def test_serve_config_gives_each_model_the_gpus_of_its_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU model first and a CUDA one after: the second reserves a GPU, the first none."""
    monkeypatch.delenv("RERANKD_RAY_NUM_GPUS", raising=False)
    _, scales = serve_args(
        {"model": "org/a", "device": "cpu", "models": [{"model": "org/b", "device": "cuda"}]}
    )
    assert [s.num_gpus for s in scales] == [0.0, 1.0]


def test_serve_config_reads_several_models_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_MODEL", "org/a, org/b")
    settings, scales = serve_args({})
    assert settings.model_names == ("org/a", "org/b") and len(scales) == 2
