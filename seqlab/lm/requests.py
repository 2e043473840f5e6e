"""What goes in and out of a :class:`seqlab.lm.generator.Generator`, without torch.

The Serve ingress builds :class:`GenerationRequest` and reads :class:`StreamEvent` from the generator
deployment; keeping these plain dataclasses here means the ingress never imports torch (3 s on a small
machine, and 170 MB per ingress replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqlab.lm.config import DecodingConfig

__all__ = ["Candidate", "FinishReason", "GenerationRequest", "PromptFit", "StreamEvent"]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue: its decoding config and optional stop strings (OpenAI's ``stop``)."""

    prompt: str
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
