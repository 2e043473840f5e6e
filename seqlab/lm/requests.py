"""What goes in and out of a :class:`seqlab.lm.generator.Generator`, without torch.

The Serve ingress builds :class:`GenerationRequest` and reads :class:`StreamEvent` from the generator
deployment; keeping these plain dataclasses here means the ingress never imports torch (3 s on a small
machine, and 170 MB per ingress replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqlab.lm.config import DecodingConfig

__all__ = [
    "MAX_TOP_LOGPROBS",
    "Candidate",
    "FinishReason",
    "GenerationRequest",
    "PromptError",
    "PromptFit",
    "ScoredChoice",
    "ScoringRequest",
    "StreamEvent",
    "TokenLogprobs",
]

FinishReason = Literal["stop", "length"]
MAX_TOP_LOGPROBS = 20  # alternatives per position at most (vLLM's default cap; OpenAI's is 5)


class PromptError(ValueError):
    """A prompt the model cannot take as sent (token ids outside the vocabulary, too long to score): the
    client's mistake, answered with ``status`` (422, or 413 for a size)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue (text, or token ids as OpenAI's API allows): its decoding config and optional
    stop strings (OpenAI's ``stop``)."""

    prompt: str | tuple[int, ...]
    config: DecodingConfig = field(default_factory=DecodingConfig)
    stop: tuple[str, ...] = ()


@dataclass
class Candidate:
    """One finished continuation."""

    text: str
    finish_reason: FinishReason
    completion_tokens: int
    prompt_tokens: int
    prompt_truncated: bool = False


@dataclass
class StreamEvent:
    """What one candidate produced in one step: new text, and its finish reason once it has ended."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0  # set on the finishing event: tokens this candidate generated


@dataclass(frozen=True)
class PromptFit:
    """How a prompt fits the model's context: the first item of a generator deployment's stream."""

    tokens: int  # prompt tokens the model sees
    truncated: bool  # whether the prompt's start was cut to make room for max_new_tokens
    text: str | None = None  # the prompt as text, when it was sent as token ids (for echo)


@dataclass(frozen=True)
class ScoringRequest:
    """A completion whose tokens' log-probabilities are wanted (OpenAI's ``logprobs`` / ``echo``; what
    evaluation harnesses send to score a text): no streaming, no truncation."""

    prompt: str | tuple[int, ...]
    config: DecodingConfig  # how the new tokens are chosen (its max_new_tokens is ignored)
    max_new_tokens: int = 0  # 0: score the prompt alone (with echo)
    top_logprobs: int = 0  # alternatives per position (OpenAI's logprobs=N), 0: only the chosen token's
    echo: bool = False  # include the prompt's own tokens (the first has no log-probability)
    stop: tuple[str, ...] = ()


@dataclass
class TokenLogprobs:
    """OpenAI's completions ``logprobs`` object: per token its text, log-probability, the most likely
    alternatives, and where it starts in the choice's text. Values are the model's own distribution
    (before temperature, top-k/top-p or the repetition penalty), as vLLM reports them."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


@dataclass
class ScoredChoice:
    """One choice of a :class:`ScoringRequest`."""

    text: str  # the prompt (echo) and the generated text
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    logprobs: TokenLogprobs
