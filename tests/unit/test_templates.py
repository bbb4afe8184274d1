from rerankd.templates import (
    DEFAULT_INSTRUCTION,
    QWEN3_PREFIX,
    QWEN3_RERANKER,
    QWEN3_SUFFIX,
    is_templated,
    split_templated,
)


def test_plain_pair_is_wrapped_with_default_instruction() -> None:
    p = QWEN3_RERANKER.build("q?", "doc")
    assert p.prefix == QWEN3_PREFIX and p.suffix == QWEN3_SUFFIX
    assert p.body == f"<Instruct>: {DEFAULT_INSTRUCTION}\n<Query>: q?\n<Document>: doc"
    assert not p.templated_by_caller


def test_custom_and_empty_instruction() -> None:
    assert QWEN3_RERANKER.build("q", "d", "find code").body.startswith("<Instruct>: find code\n")
    # An explicit empty instruction is the caller's choice, not "use the default".
    assert QWEN3_RERANKER.build("q", "d", "").body.startswith("<Instruct>: \n")


def test_split_vllm_recipe_gives_reference_parts() -> None:
    query = f"{QWEN3_PREFIX}<Instruct>: I\n<Query>: q\n"
    doc = f"<Document>: d{QWEN3_SUFFIX}"
    p = split_templated(query, doc)
    assert p is not None and p.templated_by_caller
    assert (p.prefix, p.body, p.suffix) == (
        QWEN3_PREFIX,
        "<Instruct>: I\n<Query>: q\n<Document>: d",
        QWEN3_SUFFIX,
    )
    assert QWEN3_RERANKER.build(query, doc, "ignored") == p


def test_split_keeps_callers_own_answer_slot() -> None:
    custom_tail = "<|im_end|>\n<|im_start|>assistant\n"
    p = split_templated(f"{QWEN3_PREFIX}body", custom_tail)
    assert p is not None and p.body == "body" and p.suffix == custom_tail


def test_split_adds_missing_suffix() -> None:
    p = split_templated(f"{QWEN3_PREFIX}<Query>: q\n", "<Document>: d")
    assert p is not None and p.suffix == QWEN3_SUFFIX and p.body == "<Query>: q\n<Document>: d"


def test_not_templated() -> None:
    assert split_templated("what is <|im_start|>?", "doc") is None
    assert not is_templated("plain")
    assert is_templated("  <|im_start|>system\n")
