import sys

import pytest

from rerankd.errors import InvalidRequest
from rerankd.models.base import plan_batches, sigmoid
from rerankd.ranking import max_pool, rank
from rerankd.types import Document, RerankResult


def test_rank_sorts_descending_and_keeps_ties_in_input_order() -> None:
    out = rank([0.1, 0.9, 0.5, 0.9])
    assert [r.index for r in out] == [1, 3, 2, 0]
    assert all(r.document is None for r in out)


def test_rank_top_n_and_documents() -> None:
    docs = [Document("a"), Document("b"), Document("c")]
    out = rank([0.2, 0.3, 0.1], docs, top_n=2, return_documents=True)
    assert [(r.index, r.text) for r in out] == [(1, "b"), (0, "a")]
    assert len(rank([0.2], top_n=50)) == 1


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "2"])
def test_bad_top_n(bad: object) -> None:
    with pytest.raises(InvalidRequest):
        rank([0.1], top_n=bad)  # type: ignore[arg-type]


def test_result_is_a_sequence() -> None:
    res = RerankResult(results=rank([0.3, 0.7]), model="m")
    assert len(res) == 2 and res[0].index == 1 and [r.index for r in res] == res.indices
    assert res.top_k(1).indices == [1]


def test_max_pool() -> None:
    assert max_pool([0.1, 0.8, 0.3, 0.2], [0, 0, 1, 1], 2) == [0.8, 0.3]
    with pytest.raises(ValueError, match="no chunk"):
        max_pool([0.1], [0], 2)


def test_plan_batches_respects_budget_and_covers_all() -> None:
    lengths = [5, 100, 30, 30, 7, 250, 1]
    batches = plan_batches(lengths, max_batch_tokens=120, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 120
    assert batches[0] == [5]  # longer than the budget: alone


def test_sigmoid_is_stable() -> None:
    assert sigmoid(0) == 0.5
    assert sigmoid(-1000) == 0.0 and sigmoid(1000) == 1.0
    assert abs(sigmoid(2.0) + sigmoid(-2.0) - 1) < 1e-15


def test_light_modules_do_not_import_torch() -> None:
    # A client-only install has no torch: the public types, templates and ranking must not need it.
    import subprocess

    code = (
        "import sys, rerankd, rerankd.types, rerankd.templates, rerankd.ranking, rerankd.models.base; "
        "from rerankd import Reranker; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
