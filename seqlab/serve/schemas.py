"""The HTTP contract: every request and response body of the Serve app, defined once.

Decoding parameters come from :class:`seqlab.lm.config.DecodingParams` (the same model the CLI and the
report use). ``/v1/completions`` follows OpenAI's legacy completions API (as vLLM serves it: ``top_k`` and
``repetition_penalty`` are accepted too). Errors have one shape everywhere, OpenAI's::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "texts", "code": 422}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seqlab.lm.config import DecodingParams

__all__ = [
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionStreamResponse",
    "ErrorBody",
    "ErrorResponse",
    "GenerateCandidate",
    "GenerateRequest",
    "GenerateResponse",
    "HealthResponse",
    "ModelCard",
    "ModelList",
    "ScoreRequest",
    "ScoreResponse",
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


class GenerateRequest(DecodingParams):
    """A prompt, every decoding parameter of :class:`DecodingParams`, and seqlab's own options."""

    prompt: str = Field(description="text to continue (empty: start a new document)")
    rerank: bool = Field(
        False, description="score every candidate with the scorer and return them best first"
    )
    stream: bool = Field(False, description="server-sent events: text pieces as they are generated")

    @field_validator("prompt")
    @classmethod
    def _clean(cls, prompt: str) -> str:
        return check_text(prompt)


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


class CompletionRequest(_Body):
    """OpenAI's completions request (the fields seqlab supports; others are rejected by name)."""

    model: str = Field(description="the generator's id from /v1/models")
    prompt: str | list[str] = Field(description="one prompt, or a list of prompts")
    max_tokens: int = Field(16, ge=1, description="tokens to generate per choice")
    temperature: float = Field(1.0, ge=0, le=2, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description="up to 4 strings that end a choice")
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = Field(False, description="put the prompt in front of each choice's text")
    logprobs: None = Field(None, description="not supported: must be null")
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
    def _clean_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list):
            if not prompt:
                raise ValueError("prompt: the list of prompts is empty")
            return check_texts(prompt, "prompt")
        return check_text(prompt)

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

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def decoding(self) -> DecodingParams:
        """The request's decoding parameters as seqlab's model (temperature 0 becomes greedy there)."""
        return DecodingParams(
            strategy="sample",
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            max_new_tokens=self.max_tokens,
            num_candidates=self.n,
            seed=self.seed,
        )


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


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


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    scorer: bool
    generator: bool
