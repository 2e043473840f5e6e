"""What goes in and out of a :class:`seqlab.lm.generator.Generator`, without torch.

The Serve ingress builds :class:`GenerationRequest` and reads :class:`StreamEvent` from the generator
deployment; keeping these plain dataclasses here means the ingress never imports torch (3 s on a small
machine, and 170 MB per ingress replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqlab.lm.config import DecodingParams

__all__ = [
    "MAX_TOP_LOGPROBS",
    "Candidate",
    "Collected",
    "FinishReason",
    "GenerationRequest",
    "PromptError",
    "PromptFit",
    "ScoredChoice",
    "ScoringRequest",
    "StreamEvent",
    "TokenLogprobs",
    "prompt_room",
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
    """One prompt to continue (text, or token ids as OpenAI's API allows): its decoding parameters (a
    :class:`~seqlab.lm.config.DecodingConfig` too, for the engine switches) and optional stop strings
    (OpenAI's ``stop``)."""

    prompt: str | tuple[int, ...]
    config: DecodingParams = field(default_factory=DecodingParams)
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


class Collected:
    """A request's candidates folded from their :class:`StreamEvent` lists: per candidate its text, finish
    reason (``"length"`` until one comes) and completion tokens. The one fold of a request's events, for
    :meth:`~seqlab.lm.generator.Generator.generate_batch` and the Serve routes (collected or streamed)."""

    def __init__(self, n: int) -> None:
        self.texts: list[str] = [""] * n
        self.reasons: list[FinishReason] = ["length"] * n
        self.tokens: list[int] = [0] * n

    def add(self, events: list[StreamEvent]) -> None:
        for ev in events:
            self.texts[ev.index] += ev.text
            if ev.finish_reason is not None:
                self.reasons[ev.index], self.tokens[ev.index] = ev.finish_reason, ev.completion_tokens

    @property
    def completion_tokens(self) -> int:
        return sum(self.tokens)

    def candidates(self, prompt_tokens: int, prompt_truncated: bool) -> list[Candidate]:
        return [
            Candidate(text, reason, n, prompt_tokens, prompt_truncated)
            for text, reason, n in zip(self.texts, self.reasons, self.tokens, strict=True)
        ]


def prompt_room(context: int | None, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit the model's ``context`` beside ``max_new_tokens`` new ones (None: no
    limit). The one context-fit rule: a longer prompt keeps its end (:meth:`Generator.encode
    <seqlab.lm.generator.Generator.encode>`); the ingress refuses a ``max_new_tokens`` that leaves no room.

    Raises:
        ValueError: ``max_new_tokens`` leaves no room for a prompt.
    """
    if context is None:
        return None
    if max_new_tokens >= context:
        raise ValueError(f"max_new_tokens must be < the model's context of {context} tokens")
    return context - max_new_tokens


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
    config: DecodingParams  # how the new tokens are chosen (its max_new_tokens is ignored)
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
