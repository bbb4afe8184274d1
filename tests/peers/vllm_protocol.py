"""vLLM's rerank and score response models (and the request shapes of its score API).

Source: https://github.com/vllm-project/vllm, `vllm/entrypoints/pooling/score/protocol.py` (RerankDocument,
RerankResult, RerankUsage, RerankResponse, ScoreResponseData, ScoreResponse, the ScoreRequest union) and
`vllm/entrypoints/openai/protocol.py` (OpenAIBaseModel, UsageInfo), read at commit
08a48e2b51ac2ea9c2cfad361806fc8cdaef866a and the later `scoring/protocol.py` (RerankUsage.prompt_tokens).
Licence: Apache-2.0 (SPDX-License-Identifier: Apache-2.0, Copyright contributors to the vLLM project).

Changes: the PoolingParams/TokenizeParams helpers and the multi-modal content types (rerankd scores
text) are left out; `multi_modal` is typed `Any`. The field definitions are vLLM's.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field


class OpenAIBaseModel(BaseModel):
    # vLLM: "OpenAI API does allow extra fields".
    model_config = ConfigDict(extra="allow")


class UsageInfo(OpenAIBaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int | None = 0
    prompt_tokens_details: Any | None = None


ScoreInput: TypeAlias = str | dict[str, Any]
ScoreInputs: TypeAlias = ScoreInput | list[ScoreInput]


class ScoreRequestMixin(OpenAIBaseModel):
    model: str | None = None
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    use_activation: bool | None = None


class ScoreDataRequest(ScoreRequestMixin):
    data_1: ScoreInputs
    data_2: ScoreInputs


class ScoreQueriesDocumentsRequest(ScoreRequestMixin):
    queries: ScoreInputs
    documents: ScoreInputs


class ScoreQueriesItemsRequest(ScoreRequestMixin):
    queries: ScoreInputs
    items: ScoreInputs


class ScoreTextRequest(ScoreRequestMixin):
    text_1: ScoreInputs
    text_2: ScoreInputs


ScoreRequest: TypeAlias = (
    ScoreQueriesDocumentsRequest | ScoreQueriesItemsRequest | ScoreDataRequest | ScoreTextRequest
)


class RerankRequest(ScoreRequestMixin):
    query: ScoreInput
    documents: ScoreInputs
    top_n: int = Field(default_factory=lambda: 0, ge=0)


class RerankDocument(BaseModel):
    text: str | None = None
    multi_modal: Any | None = None


class RerankResult(BaseModel):
    index: int
    document: RerankDocument
    relevance_score: float


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(OpenAIBaseModel):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


class ScoreResponseData(OpenAIBaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreResponse(OpenAIBaseModel):
    id: str = Field(default_factory=lambda: f"embd-{uuid.uuid4().hex}")
    object: str = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[ScoreResponseData]
    usage: UsageInfo
