"""The HTTP contract: every request and response body of the Serve app, defined once.

Decoding parameters come from :class:`seqlab.lm.config.DecodingParams` (the same model the CLI and the
report use). ``/v1/completions`` follows OpenAI's legacy completions API (as vLLM serves it: ``top_k`` and
``repetition_penalty`` are accepted too). Errors have one shape everywhere, OpenAI's::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "texts", "code": 422}}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from seqlab.lm.config import DecodingParams
from seqlab.lm.requests import MAX_TOP_LOGPROBS

__all__ = [
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionStreamResponse",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "ErrorBody",
    "ErrorResponse",
    "GenerateCandidate",
    "GenerateRequest",
    "GenerateResponse",
    "HealthResponse",
    "ModelCard",
    "ModelList",
    "ReadyResponse",
    "ScoreRequest",
    "ScoreResponse",
    "TokenizeRequest",
    "TokenizeResponse",
    "Usage",
    "check_text",
    "check_texts",
]

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def check_text(value: str) -> str:
    """Reject text a model cannot take: NUL characters and lone UTF-16 surrogates (e.g. JSON "\\ud800")."""
    bad = _BAD_CHARS.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate U+{ord(bad.group()):04X}"
        raise ValueError(f"text contains {what} at index {bad.start()}")
    return value


def check_texts(values: list[str], field: str) -> list[str]:
    """:func:`check_text` on every item, the error naming the item (``texts[3]: ...``)."""
    for i, value in enumerate(values):
        try:
            check_text(value)
        except ValueError as exc:
            raise ValueError(f"{field}[{i}]: {exc}") from None
    return values


class _Body(BaseModel):
    """Request bodies: unknown fields are errors (a misspelt parameter must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


# --- errors ---


class ErrorBody(BaseModel):
    message: str = Field(description="what went wrong, naming the field when a field is at fault")
    type: str = Field(
        description="invalid_request_error, authentication_error, not_found_error, overloaded..."
    )
    param: str | None = Field(None, description="the request field at fault, when one is")
    code: int = Field(description="the HTTP status")


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- /v1/score ---


class ScoreRequest(_Body):
    texts: list[str] = Field(min_length=1, description="raw texts to score (normalized as in training)")
    return_normalized: bool = Field(
        False, description="also return each text as the model saw it (after its training normalization)"
    )

    @field_validator("texts")
    @classmethod
    def _clean(cls, texts: list[str]) -> list[str]:
        return check_texts(texts, "texts")


class ModelInfo(BaseModel):
    id: str
    role: Literal["scorer", "generator"]
    artifact: str | None = None


class ScoreResponse(BaseModel):
    scores: list[float] = Field(description="one relevance score in [0, 10] per text, in request order")
    no_arabic: list[bool] = Field(
        default_factory=list,
        description="per text: true when it has no Arabic letter (empty, emoji, Latin only); its score is "
        "then made of unknown tokens only and says nothing about the text's content",
    )
    normalized: list[str] | None = Field(
        None, description="per text, what the model saw (only with return_normalized: true; else null)"
    )
    model: ModelInfo


# --- /v1/generate ---


# A text field a model reads: no NUL, no lone surrogate (see check_text).
ModelText = Annotated[str, AfterValidator(check_text)]


class GenerateRequest(DecodingParams):
    """A prompt, every decoding parameter of :class:`DecodingParams`, and seqlab's own options."""

    prompt: ModelText = Field(description="text to continue (empty: start a new document)")
    rerank: bool = Field(
        False, description="score every candidate with the scorer and return them best first"
    )
    stream: bool = Field(False, description="server-sent events: text pieces as they are generated")


class GenerateCandidate(BaseModel):
    text: str
    score: float | None = Field(None, description="relevance of the text (when reranked)")
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    candidates: list[GenerateCandidate]
    model: ModelInfo
    usage: Usage
    prompt_truncated: bool = Field(False, description="the prompt's start was cut to fit the context")


# --- /v1/completions (OpenAI-compatible) ---


class StreamOptions(_Body):
    include_usage: bool = False


TokenIds = list[int]


class CompletionRequest(_Body):
    """OpenAI's completions request (the fields seqlab supports; others are rejected by name)."""

    model: str = Field(description="the generator's id from /v1/models")
    prompt: str | list[str] | TokenIds | list[TokenIds] = Field(
        description="one prompt, a list of prompts, or prompts as token ids (a list of ints, or of such lists)"
    )
    max_tokens: int = Field(
        16, ge=0, description="tokens to generate per choice (0 with echo: score the prompt alone)"
    )
    temperature: float = Field(1.0, ge=0, le=2, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description="up to 4 strings that end a choice")
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = Field(
        False, description="put the prompt in front of each choice's text (and its tokens' logprobs)"
    )
    logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_TOP_LOGPROBS,
        description="log-probability of every token, with this many most likely alternatives per position",
    )
    best_of: int | None = Field(None, description="accepted only as 1 (n gives several choices)")
    suffix: str | None = Field(None, description="not supported (no fill-in-the-middle): must be null")
    user: str | None = None
    # vLLM's extensions, sent by the openai client through extra_body
    top_k: int = Field(0, ge=0, description="0 disables (vLLM also accepts -1)")
    repetition_penalty: float = Field(1.0, gt=0, le=10)

    @field_validator("top_k", mode="before")
    @classmethod
    def _vllm_top_k(cls, value: Any) -> Any:
        return 0 if value == -1 else value

    @field_validator("prompt")
    @classmethod
    def _clean_prompt(cls, prompt: Any) -> Any:
        if isinstance(prompt, str):
            return check_text(prompt)
        if not prompt:
            raise ValueError("the list of prompts is empty")
        if isinstance(prompt[0], str):
            return check_texts(prompt, "prompt")
        for i, ids in enumerate([prompt] if isinstance(prompt[0], int) else prompt):
            if not ids:
                raise ValueError(f"prompt[{i}]: an empty list of token ids")
            if min(ids) < 0:
                raise ValueError(f"prompt[{i}]: token ids are >= 0 (got {min(ids)})")
        return prompt

    @field_validator("stop")
    @classmethod
    def _clean_stop(cls, stop: str | list[str] | None) -> list[str] | None:
        if stop is None:
            return None
        stops = [stop] if isinstance(stop, str) else stop
        if len(stops) > 4:
            raise ValueError(f"at most 4 stop strings (got {len(stops)})")
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return [check_text(s) for s in stops]

    def prompts(self) -> list[str | tuple[int, ...]]:
        """Each prompt: a text, or a tuple of token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if isinstance(self.prompt[0], int):
            return [tuple(self.prompt)]
        return [p if isinstance(p, str) else tuple(p) for p in self.prompt]

    def scored(self) -> bool:
        """Whether this request asks for log-probabilities (the non-streamed scoring path)."""
        return self.logprobs is not None or self.max_tokens == 0

    def decoding(self) -> DecodingParams:
        """The request's decoding parameters as seqlab's model (temperature 0 becomes greedy there)."""
        return DecodingParams(
            strategy="sample",
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            max_new_tokens=max(self.max_tokens, 1),  # 0 (echo: scoring) generates nothing; see scored()
            num_candidates=self.n,
            seed=self.seed,
        )


class CompletionLogprobs(BaseModel):
    """Per token of the choice (the prompt's first when echoed): its text, log-probability (null for the
    very first token, which nothing predicts), the most likely alternatives, and where it starts in the text."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class CompletionStreamResponse(CompletionResponse):
    """One server-sent event of a streamed completion (``data: {json}``); the stream ends with ``data: [DONE]``."""


# --- /v1/models, /healthz ---


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "seqlab"
    seqlab: dict[str, Any] = Field(description="role (scorer|generator), artifact, metrics, model details")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    scorer: bool
    generator: bool


class TokenizeRequest(_Body):
    """vLLM's ``/tokenize`` request (``model`` is optional: the app serves one generator)."""

    model: str | None = None
    prompt: ModelText = Field(description="text to tokenize with the generator's tokenizer")
    add_special_tokens: bool = False


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int | None
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: list[int] = Field(description="token ids of the generator's tokenizer")


class DetokenizeResponse(BaseModel):
    prompt: str


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    scorer: bool
    generator: bool
