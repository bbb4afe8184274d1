"""Several models in one server: a real `rerankd serve` process with a tiny Qwen3 yes/no reranker and a
tiny cross-encoder, each answering as the library does on the same weights; the request's `model` picks
one (absent: the first; unknown: 404 naming both); /v1/models, /metrics and the startup log per model.
In-process apps (FakeScorer engines) for the routing rules that need no model; the CLI's usage errors
through `model_entries` and one real process."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from rerankd import Reranker
from rerankd.cli.models_file import ModelEntry, env_list
from rerankd.cli.serve import model_entries
from rerankd.config import BatchConfig, ModelConfig
from rerankd.engine.engine import RerankEngine
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client as asgi_client
from rerankd.testing.fake import FakeScorer
from rerankd.testing.servers import RunningServer, rerankd_server

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force.",
    "北京是中国的首都。",
    "pandas is a Python library.",
]


@pytest.fixture(scope="module")
def cross_encoder(cross_encoder_dir: Path) -> Reranker:
    return Reranker.from_pretrained(str(cross_encoder_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def two_models(
    qwen3_dir: Path, cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`--model` twice, names and dtype by position (the dtype once: for both)."""
    args = ["--model", str(cross_encoder_dir), "--served-model-name", "qwen", "--served-model-name", "ce"]
    with rerankd_server(
        qwen3_dir,
        *args,
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--no-ui",
        log_dir=tmp_path_factory.mktemp("multi"),
    ) as running:
        yield running


def rerank(server: RunningServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": DOCS, **body}, timeout=60)


def by_index(results: list[dict[str, Any]], key: str = "relevance_score") -> list[float]:
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


def test_each_model_answers_as_the_library_does(
    two_models: RunningServer, qwen3_reranker: Reranker, cross_encoder: Reranker
) -> None:
    expected = {"qwen": qwen3_reranker.score(QUERY, DOCS), "ce": cross_encoder.score(QUERY, DOCS)}
    assert expected["qwen"] != pytest.approx(expected["ce"], abs=1e-3)  # two models that tell apart
    for name, scores in expected.items():
        r = rerank(two_models, model=name)  # Cohere v1 / Jina body
        assert r.status_code == 200, r.text
        assert r.json()["model"] == name
        assert by_index(r.json()["results"]) == pytest.approx(scores, abs=1e-5)
        s = httpx.post(  # vLLM's score API, 1:N
            f"{two_models.url}/v1/score", json={"model": name, "text_1": QUERY, "text_2": DOCS}, timeout=60
        )
        assert s.status_code == 200, s.text
        assert s.json()["model"] == name
        assert [d["score"] for d in s.json()["data"]] == pytest.approx(scores, abs=1e-5)


def test_cohere_sdk_picks_the_model(two_models: RunningServer, cross_encoder: Reranker) -> None:
    cohere = pytest.importorskip("cohere")
    res = cohere.Client(api_key="unused", base_url=two_models.url).rerank(
        model="ce", query=QUERY, documents=DOCS
    )
    got = {r.index: r.relevance_score for r in res.results}
    assert [got[i] for i in range(len(DOCS))] == pytest.approx(cross_encoder.score(QUERY, DOCS), abs=1e-5)


def test_no_model_field_is_the_first(two_models: RunningServer, qwen3_reranker: Reranker) -> None:
    r = rerank(two_models)
    assert r.status_code == 200 and r.json()["model"] == "qwen"
    assert by_index(r.json()["results"]) == pytest.approx(qwen3_reranker.score(QUERY, DOCS), abs=1e-5)


def test_unknown_model_is_404_naming_both(two_models: RunningServer) -> None:
    r = rerank(two_models, model="rerank-v3.5")
    assert r.status_code == 404
    body = r.json()
    assert body["error"]["code"] == "model_not_found" and body["error"]["type"] == "not_found_error"
    assert "'rerank-v3.5'" in body["message"] and "'qwen'" in body["message"] and "'ce'" in body["message"]
    s = httpx.post(
        f"{two_models.url}/score", json={"model": "nope", "text_1": "q", "text_2": "d"}, timeout=30
    )
    assert s.status_code == 404 and "'ce'" in s.json()["message"]
    # TEI's route keeps TEI's body (a `texts` request that names a model).
    t = httpx.post(
        f"{two_models.url}/rerank", json={"model": "nope", "query": "q", "texts": ["a"]}, timeout=30
    )
    assert t.status_code == 404
    assert t.json()["error_type"] == "Validation" and "'qwen'" in t.json()["error"]


def safetensors_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))


def test_v1_models_lists_both_with_their_memory(
    two_models: RunningServer, qwen3_dir: Path, cross_encoder_dir: Path
) -> None:
    cards = httpx.get(f"{two_models.url}/v1/models", timeout=30).json()["data"]
    assert [c["id"] for c in cards] == ["qwen", "ce"]
    qwen, ce = cards
    assert qwen["family"] == "yes_no" and qwen["template"] == "qwen3-reranker"
    assert ce["family"] == "cross_encoder" and ce["template"] is None
    for card in cards:
        assert card["dtype"] == "float32" and card["device"] == "cpu" and card["max_model_len"] > 0
    # fp32 checkpoints loaded in fp32: the weights take what the files hold, less their JSON headers.
    for card, model_dir in ((qwen, qwen3_dir), (ce, cross_encoder_dir)):
        assert card["weight_bytes"] == pytest.approx(safetensors_bytes(model_dir), rel=0.05)
    log = two_models.log()
    for name in ("qwen", "ce"):
        assert re.search(rf"loaded: {name} \(.*MiB of weights\)", log), log


def test_metrics_carry_the_model_label(two_models: RunningServer) -> None:
    for name in ("qwen", "ce"):
        assert rerank(two_models, model=name).status_code == 200
    text = httpx.get(f"{two_models.url}/metrics", timeout=30).text
    for name in ("qwen", "ce"):
        assert re.search(rf'^rerankd_pairs_scored_total{{model="{name}"}} [1-9]', text, re.M), text
        assert f'rerankd_queue_depth{{model="{name}"}} 0.0' in text
        assert f'rerankd_batch_pairs_count{{model="{name}"}}' in text
        assert re.search(rf'^rerankd_prompt_tokens_total{{model="{name}"}} [1-9]', text, re.M), text


def test_a_model_that_fails_to_load_fails_the_start_with_its_name(qwen3_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    models_file = tmp_path / "models.toml"
    models_file.write_text(f'[[model]]\nmodel = "{broken}"\nserved_name = "the-broken-one"\n')
    with rerankd_server(
        qwen3_dir, "--models-file", str(models_file), "--no-ui", log_dir=tmp_path, wait_ready=False
    ) as srv:
        deadline = time.monotonic() + 120
        while srv.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert srv.process.returncode == 1, srv.log()
        assert re.search(r"error: the-broken-one: .*unsupported architecture", srv.log()), srv.log()


def test_usage_error_in_a_real_process() -> None:
    dtypes = ["--dtype", "float32", "--dtype", "bfloat16", "--dtype", "float16"]
    out = subprocess.run(
        [sys.executable, "-m", "rerankd.cli", "serve", "--model", "a", "--model", "b", *dtypes],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "--dtype was given 3 times for 2 --model" in out.stderr and "Traceback" not in out.stderr


# -- the CLI's model list, without a process ---------------------------------------------------------


def usage_error(capsys: pytest.CaptureFixture[str], *args: Any) -> str:
    with pytest.raises(typer.Exit) as e:
        model_entries(*args)
    assert e.value.exit_code == 2
    return " ".join(capsys.readouterr().err.split())


def test_model_given_twice_keeps_both() -> None:
    entries = model_entries(["a", "b,c"], None, ["x", "y", "z"], ["float32"], ["cpu", "cpu", "cuda"])
    assert [(e.model, e.served_name, e.dtype, e.device) for e in entries] == [
        ("a", "x", "float32", "cpu"),
        ("b", "y", "float32", "cpu"),
        ("c", "z", "float32", "cuda"),
    ]


def test_models_file_follows_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text(
        '[[model]]\nmodel = "b"\nserved_name = "bee"\nmax_length = 512\ntrust_remote_code = false\n\n'
        '[[model]]\nmodel = "c"\nfamily = "cross_encoder"\ndtype = "bfloat16"\n'
    )
    entries = model_entries(["a"], f, None, ["float32"], None)
    assert entries == [
        ModelEntry("a", dtype="float32"),
        ModelEntry("b", served_name="bee", dtype="float32", max_length=512, trust_remote_code=False),
        ModelEntry("c", dtype="bfloat16", family="cross_encoder"),
    ]


def test_misaligned_counts_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, ["a", "b"], None, ["x"], None, None)
    assert "--served-model-name was given once for 2 --model" in err and "give it 2 times" in err
    err = usage_error(capsys, ["a", "b", "c"], None, None, None, ["cpu", "cpu"])
    assert "--device was given 2 times for 3 --model: give it once or 3 times" in err


def test_duplicate_names_are_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = usage_error(capsys, ["a", "a"], None, None, None, None)
    assert "both be served as 'a'" in err
    f = tmp_path / "m.toml"
    f.write_text('[[model]]\nmodel = "other"\nserved_name = "x"\n')
    assert "'x'" in usage_error(capsys, ["a"], f, ["x"], None, None)


def test_environment_lists_split_on_commas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """click would split a list option's variable on whitespace: "/models/my model" must stay whole."""
    monkeypatch.setenv("RERANKD_MODEL", "/models/my model, other")
    monkeypatch.setenv("RERANKD_SERVED_MODEL_NAME", "My Reranker,b")
    assert env_list(None, "RERANKD_MODEL") == ["/models/my model", "other"]
    assert env_list(["given"], "RERANKD_MODEL") == ["given"]  # the command line wins
    entries = model_entries(
        env_list(None, "RERANKD_MODEL"), None, env_list(None, "RERANKD_SERVED_MODEL_NAME"), None, None
    )
    assert [(e.model, e.served_name) for e in entries] == [
        ("/models/my model", "My Reranker"),
        ("other", "b"),
    ]
    monkeypatch.delenv("RERANKD_MODEL")
    assert env_list(None, "RERANKD_MODEL") is None


def test_settings_refuse_two_models_under_one_name() -> None:
    """Outside the CLI too (a Serve config, create_app): the second would replace the first's engine."""
    with pytest.raises(ValueError, match="two models are served under the name 'a'"):
        ServerSettings(model="x", served_model_name="a", models=(ModelConfig(model="y", served_name="a"),))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[model]]\nmodel = "a"\ncolour = "red"\n', "unknown key(s) colour"),
        ('[[model]]\nserved_name = "a"\n', "`model` is required"),
        ('[[model]]\nmodel = "a"\nmax_length = "long"\n', "`max_length` must be a int"),
        ('[[model]]\nmodel = "a"\nfamily = "llm"\n', "`family` must be one of yes_no, cross_encoder"),
        ('model = "a"\n', "expected one or more [[model]] tables"),
        ("[[model]\n", "not valid TOML"),
    ],
)
def test_bad_models_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, says: str) -> None:
    f = tmp_path / "models.toml"
    f.write_text(text)
    assert says in usage_error(capsys, None, f, None, None, None)


def test_no_model_at_all(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "pass --model" in usage_error(capsys, None, None, None, None, None)
    assert "no such file" in usage_error(capsys, None, tmp_path / "missing.toml", None, None, None)


# -- routing rules in-process (FakeScorer engines: no model) -----------------------------------------


@asynccontextmanager
async def app_client(settings: ServerSettings, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(settings, **kw), timeout=30) as c:
        yield c


def fake(name: str, max_length: int = 8192) -> RerankEngine:
    return RerankEngine(FakeScorer(name=name, max_length=max_length), BatchConfig())


async def test_one_model_ignores_the_model_field_as_before() -> None:
    async with app_client(ServerSettings(model="only", ui=False), engine=fake("only")) as c:
        r = await c.post("/v1/rerank", json={"model": "rerank-v3.5", "query": "q", "documents": ["q a"]})
    assert r.status_code == 200 and r.json()["model"] == "only"


async def test_each_model_has_its_own_limits_and_engine() -> None:
    settings = ServerSettings(
        model="a", ui=False, models=(ModelConfig(model="path/b", served_name="b", max_length=64),)
    )
    engines = {"a": fake("a"), "b": fake("b", max_length=64)}
    async with app_client(settings, engines=engines) as c:
        long = {"query": "q", "documents": ["q"], "truncate_prompt_tokens": 100}
        assert (await c.post("/v1/rerank", json={**long, "model": "a"})).status_code == 200
        r = await c.post("/v1/rerank", json={**long, "model": "b"})
        assert r.status_code == 400 and "max_model_len (64)" in r.json()["message"]
        cards = (await c.get("/v1/models")).json()["data"]
        assert [(m["id"], m["max_model_len"]) for m in cards] == [("a", 8192), ("b", 64)]
        text = (await c.get("/metrics")).text
    assert 'rerankd_queue_depth{model="a"}' in text and 'rerankd_queue_depth{model="b"}' in text


async def test_unknown_model_is_404_even_while_loading() -> None:
    settings = ServerSettings(model="a", ui=False, models=(ModelConfig(model="b"),))
    app = create_app(settings)  # lifespan not run: nothing loads
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rerankd") as c:
        r = await c.post("/v1/rerank", json={"model": "c", "query": "q", "documents": ["d"]})
        loading = await c.post("/v1/rerank", json={"model": "b", "query": "q", "documents": ["d"]})
    assert r.status_code == 404 and "'a', 'b'" in r.json()["message"]
    assert loading.status_code == 503


# -- the web UI's model picker ------------------------------------------------------------------------


async def test_the_ui_ranks_with_the_picked_model() -> None:
    """The mounted UI's backend (the CLI's, over the app in-process) sends the picked model's name."""
    from rerankd.cli.serve import ui_backend
    from rerankd.ui.core import run_ranking

    settings = ServerSettings(model="alpha", ui=False, models=(ModelConfig(model="beta"),))
    app = create_app(settings, engines={"alpha": fake("alpha"), "beta": fake("beta")})
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.loading, 30)
        backend = ui_backend(app, settings)
        assert backend.models == ("alpha", "beta") and "<code>beta</code>" in backend.describe()
        picked = await run_ranking(backend, "capital", "the capital\ngravity", None, None, None, "beta")
        default = await run_ranking(backend, "capital", "the capital\ngravity", None, None, None)
    assert "beta" in picked.status and "alpha" not in picked.status
    assert "alpha" in default.status and "beta" not in default.status
    assert picked.table == default.table  # the same fake scores: only the model differs


def test_the_page_shows_the_picker_only_with_several_models() -> None:
    pytest.importorskip("gradio")
    from rerankd.ui.blocks import build_blocks
    from rerankd.ui.core import Backend

    def pickers(models: tuple[str, ...]) -> list[Any]:
        backend = Backend(lambda key, model=None: None, where="x", needs_key=False, models=models)  # type: ignore[arg-type,return-value]
        page = build_blocks(backend)
        return [b for b in page.blocks.values() if getattr(b, "elem_id", None) == "rr-model"]

    (several,) = pickers(("a", "b"))
    assert several.visible and several.value == "a" and [c[0] for c in several.choices] == ["a", "b"]
    (single,) = pickers(("a",))
    assert not single.visible


def test_rerankd_ui_asks_the_server_for_its_models(two_models: RunningServer) -> None:
    """`rerankd ui --url` offers the picker for a server with several models; nothing when it is down."""
    from rerankd.cli.ui import served_models
    from rerankd.testing.servers import free_port

    assert served_models(two_models.url, None) == ["qwen", "ce"]
    assert served_models(f"http://127.0.0.1:{free_port()}", None) == []


async def test_a_later_model_failing_stops_the_ones_started(tmp_path: Path) -> None:
    settings = ServerSettings(
        model="a", ui=False, models=(ModelConfig(model=str(tmp_path / "missing"), served_name="b"),)
    )
    first = fake("a")
    app = create_app(settings, engines={"a": first})
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.loading, 30)
        state = app.state.rerankd
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rerankd") as c:
            r = await c.post("/v1/rerank", json={"model": "a", "query": "q", "documents": ["d"]})
            ready = await c.get("/ready")
    assert state.phase == "failed" and state.load_error.startswith("b: ") and state.engines == {}
    assert first.batcher._task is None  # the first model's batcher was stopped, not left running
    assert r.status_code == 503 and "b: " in r.json()["message"]
    assert ready.status_code == 503 and ready.json()["error"].startswith("b: ")
