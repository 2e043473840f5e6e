"""The generator artifact as one object: ``load_generator(path) -> Generator`` (no Ray).

A generator directory is what ``seqlab finetune`` writes to ``OUT/model/``: a Hugging Face directory
(``save_pretrained`` of the model and its tokenizer) plus ``manifest.json``. :class:`Generator` mirrors
:class:`seqlab.models.Scorer`: the CLI, the demo and the Serve app all decode through it::

    gen = load_generator("runs/demo/finetune/model")
    gen.generate("يعتمد الذكاء الاصطناعي على", DecodingConfig(strategy="greedy"))  # -> [Candidate(...)]
    for events in gen.stream_batch([GenerationRequest("...", cfg_a), GenerationRequest("...", cfg_b)]):
        ...  # one list of StreamEvents per request per step: both decode in one forward pass per step
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from seqlab import artifacts
from seqlab.lm.config import DecodingConfig, DecodingParams
from seqlab.lm.generate import RunningBatch, context_limit
from seqlab.lm.logprobs import request_ids, score_request
from seqlab.lm.requests import (
    Candidate,
    Collected,
    GenerationRequest,
    ScoredChoice,
    ScoringRequest,
    StreamEvent,
    prompt_room,
)

__all__ = [
    "Candidate",
    "DecodeSession",
    "GenerationRequest",
    "Generator",
    "StreamEvent",
    "TextDelta",
    "load_generator",
    "load_model_and_tokenizer",
]

log = logging.getLogger(__name__)


class Generator:
    """A loaded causal LM + tokenizer that turns prompts into continuations.

    Decoding parameters are :class:`~seqlab.lm.config.DecodingParams` as a person (or a request) sets
    them; a :class:`~seqlab.lm.config.DecodingConfig` also sets the engine switches (KV cache, stopping
    at end-of-text).

    Args:
        model: a Hugging Face causal LM (moved to eval mode).
        tokenizer: its tokenizer.
        manifest: the artifact's manifest (empty when built in memory).
        path: where it was loaded from (for metadata).
    """

    def __init__(
        self, model: Any, tokenizer: Any, manifest: dict[str, Any] | None = None, path: str = ""
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.manifest = manifest or {}
        self.path = path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int | None:
        """Maximum prompt + new tokens the model accepts (None when unknown)."""
        return context_limit(self.model)

    def encode(self, prompt: str | Sequence[int], max_new_tokens: int) -> tuple[list[int], bool]:
        """Prompt ids (a text's, or the ids given) cut from the left to fit ``context_length -
        max_new_tokens``; and whether it was cut.

        Raises:
            ValueError: ``max_new_tokens`` leaves no room for a prompt in the context, or a given id is
                outside the vocabulary.
        """
        ids = request_ids(self.tokenizer, prompt)
        room = prompt_room(self.context_length, max_new_tokens)
        return (ids[-room:], True) if room is not None and len(ids) > room else (ids, False)

    def generate(
        self, prompt: str, config: DecodingParams | None = None, stop: Sequence[str] = ()
    ) -> list[Candidate]:
        """``config.num_candidates`` continuations of ``prompt`` (the prompt itself not included)."""
        return self.generate_batch([GenerationRequest(prompt, config or DecodingParams(), tuple(stop))])[0]

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[list[Candidate]]:
        """Decode every request together (one forward pass per step); candidates per request."""
        encoded = [self.encode(r.prompt, r.config.max_new_tokens) for r in requests]
        got = [Collected(r.config.num_candidates) for r in requests]
        for step in self._stream(requests, encoded):
            for fold, events in zip(got, step, strict=True):
                fold.add(events)
        return [fold.candidates(len(ids), cut) for fold, (ids, cut) in zip(got, encoded, strict=True)]

    def stream(
        self, prompt: str, config: DecodingParams | None = None, stop: Sequence[str] = ()
    ) -> Iterator[str]:
        """Text pieces of one candidate as they are generated; they concatenate to the generated text."""
        config = config or DecodingParams()
        if config.num_candidates != 1:
            raise ValueError(f"num_candidates must be 1 when streaming (got {config.num_candidates})")
        for step in self.stream_batch([GenerationRequest(prompt, config, tuple(stop))]):
            piece = "".join(ev.text for ev in step[0])
            if piece:
                yield piece

    def stream_batch(self, requests: Sequence[GenerationRequest]) -> Iterator[list[list[StreamEvent]]]:
        """Decode requests together; per step, one list of :class:`StreamEvent` per request.

        A request's list is empty on steps where it produced no visible text. Each candidate gets exactly
        one event with a ``finish_reason`` (``"stop"``: end-of-text or a stop string; ``"length"``:
        ``max_new_tokens`` reached), after which it produces nothing more.
        """
        encoded = [self.encode(r.prompt, r.config.max_new_tokens) for r in requests]
        yield from self._stream(requests, encoded)

    def _stream(
        self, requests: Sequence[GenerationRequest], encoded: list[tuple[list[int], bool]]
    ) -> Iterator[list[list[StreamEvent]]]:
        session = self.session()
        for i, (request, (ids, _)) in enumerate(zip(requests, encoded, strict=True)):
            session.add(i, request, ids)
        while len(session):
            out: list[list[StreamEvent]] = [[] for _ in requests]
            for i, events in session.step():
                out[i] = events
            yield out

    def score(self, request: ScoringRequest) -> list[ScoredChoice]:
        """Choices with every token's log-probability (OpenAI's ``logprobs``/``echo``; see
        :mod:`seqlab.lm.logprobs`)."""
        return score_request(self.model, self.tokenizer, request, self.context_length)

    def session(self) -> DecodeSession:
        """A continuous-batching session: requests join and leave between decoding steps (Serve uses it)."""
        return DecodeSession(self)

    def describe(self) -> dict[str, Any]:
        """Metadata for ``/v1/models`` and logs: size, context, where it came from, its metrics."""
        cfg = getattr(self.model, "config", None)
        return {
            "path": self.path,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "context_length": self.context_length,
            "model_type": getattr(cfg, "model_type", None),
            "model_source": self.manifest.get("model_source"),
            "metrics": self.manifest.get("metrics", {}),
        }


def load_model_and_tokenizer(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """The Hugging Face model and tokenizer of a local generator directory, ready for inference.

    Raises:
        FileNotFoundError: ``model_dir`` does not exist or holds no ``config.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a local load is quick; its bar only garbles logs and replicas' output

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} is not a Hugging Face model directory (no config.json); "
            "pass the model/ folder written by 'seqlab finetune'"
        )
    try:  # transformers reads it for the tokenizer too, and would blame "the tokenizer files"
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path / 'config.json'} is broken: not valid JSON ({exc})") from None
    if artifacts.artifact_stage(path) == "scorer":
        raise FileNotFoundError(
            f"{model_dir} is a scorer artifact, not a generator (load it with load_scorer)"
        )
    tokenizer_files = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model")
    if not any((path / name).is_file() for name in tokenizer_files):
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer (none of {', '.join(tokenizer_files)}); "
            "a generator directory holds the tokenizer 'seqlab finetune' saved with the model"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ValueError(
            f"the tokenizer files in {model_dir} are corrupt ({type(exc).__name__}: {exc})"
        ) from None
    if len(tokenizer) <= 1:
        raise ValueError(
            f"the tokenizer in {model_dir} is empty (vocabulary {len(tokenizer)}): its files are broken"
        )
    weights = sorted(p.name for p in path.glob("*.safetensors")) or sorted(p.name for p in path.glob("*.bin"))
    if not weights:
        raise FileNotFoundError(f"{model_dir} has no weights (no *.safetensors or *.bin file)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as exc:  # SafetensorError on a truncated file, OSError, size mismatches
        raise ValueError(
            f"the weights in {model_dir} ({', '.join(weights)}) are corrupt or do not match config.json "
            f"({type(exc).__name__})"
        ) from None
    from seqlab.train.regressor import resolve_device

    model.to(resolve_device(device)).eval()
    return model, tokenizer


def load_generator(path: str | Path, device: str | None = None) -> Generator:
    """Load a generator artifact from a local directory or any URI ``seqlab.artifacts`` understands.

    Args:
        path: the ``model/`` directory written by ``seqlab finetune`` (or any HF causal-LM directory).
        device: ``cpu``, ``cuda``, ``cuda:1``...; default: cuda when present.
    """
    path = str(path)
    if artifacts.is_uri(path):
        with artifacts.local_copy(path) as local:
            gen = load_generator(str(local), device)
            gen.path = path
            return gen
    local = artifacts.local_path(path)
    model, tokenizer = load_model_and_tokenizer(local, device)
    try:
        manifest = artifacts.read_manifest(local)
    except FileNotFoundError:
        manifest = {}
    return Generator(model, tokenizer, manifest, path)


class TextDelta:
    """Turns one candidate's tokens into text pieces whose concatenation is the decoded text.

    Byte-level BPE can end a step in the middle of a UTF-8 character; such a piece is held back until
    the character is complete. ``stop`` strings end the candidate: the text is cut before the first one,
    and text that might be the start of one is held back until it is known not to be.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.tokens: list[int] = []
        self.emitted = ""
        self.text = ""
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; returns the new text that is safe to show (possibly empty)."""
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # wait for the rest of the character
            return ""
        return self._advance(text, final=False)

    def finish(self) -> str:
        """The rest of the text once the candidate has ended."""
        if self.stopped:
            return ""
        return self._advance(self.tokenizer.decode(self.tokens, skip_special_tokens=True), final=True)

    def _advance(self, text: str, final: bool) -> str:
        for s in self.stop:
            cut = text.find(s)
            if cut >= 0:
                text, final, self.stopped = text[:cut], True, True
        self.text = text
        safe = text if final else text[: max(len(self.emitted), len(text) - self._hold())]
        if not safe.startswith(self.emitted):  # decoding changed earlier text (rare): show nothing new
            return ""
        piece, self.emitted = safe[len(self.emitted) :], safe
        return piece

    def _hold(self) -> int:
        return max((len(s) - 1 for s in self.stop), default=0)


class _Text:
    """One candidate's text so far: its detokenizer, token count and whether it has finished."""

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self.delta = TextDelta(tokenizer, stop)
        self.tokens = 0
        self.done = False


class DecodeSession:
    """Requests decoding together, joining and leaving between steps: text events in, per request.

    Wraps :class:`seqlab.lm.generate.RunningBatch` (which says when a row ends: end-of-text or its
    length) with what turns token ids into text: a detokenizer per candidate (stop strings, UTF-8 held
    back until complete). Not thread safe: one thread calls every method (the Serve replica's decoding
    thread).
    """

    def __init__(self, generator: Generator) -> None:
        tok = generator.tokenizer
        self.tokenizer = tok
        self.batch = RunningBatch(generator.model, tok.eos_token_id, tok.pad_token_id)
        self.generator = generator
        self.texts: dict[Any, list[_Text]] = {}

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def rows(self) -> int:
        return self.batch.rows

    def accepts(self) -> bool:
        return self.batch.accepts()

    def add(self, key: Any, request: GenerationRequest, ids: list[int] | None = None) -> None:
        """Queue ``request`` under ``key`` (its prompt encoded and fitted unless ``ids`` is given).

        Raises:
            ValueError: ``max_new_tokens`` leaves no room for a prompt in the context.
        """
        if key in self.texts:
            raise ValueError(f"request key {key!r} is already decoding")
        if ids is None:
            ids, _ = self.generator.encode(request.prompt, request.config.max_new_tokens)
        tensor = torch.tensor([ids], dtype=torch.long)  # (1, T)
        self.batch.add(key, tensor, DecodingConfig.of(request.config))
        self.texts[key] = [_Text(self.tokenizer, request.stop) for _ in range(request.config.num_candidates)]

    def cancel(self, key: Any) -> None:
        """Forget ``key`` (its client went away); unknown keys are ignored."""
        self.batch.cancel(key)
        self.texts.pop(key, None)

    def step(self) -> list[tuple[Any, list[StreamEvent]]]:
        """One decoding step: ``(key, events)`` per request that was decoding (events may be empty).

        Each candidate gets exactly one event with a ``finish_reason`` (``"stop"``: end-of-text or a stop
        string; ``"length"``: ``max_new_tokens`` reached); a request leaves after its last candidate's.
        """
        out = []
        for key, tokens, reasons in self.batch.step():
            texts = self.texts.get(key)
            if texts is None:
                continue
            events: list[StreamEvent] = []
            for c, (token, reason) in enumerate(zip(tokens.tolist(), reasons, strict=True)):
                text = texts[c]
                if text.done:
                    continue
                if reason != "stop":  # the batch's "stop" is end-of-text: no text of the candidate's
                    text.tokens += 1
                    piece = text.delta.push(token)
                    if text.delta.stopped:
                        reason = "stop"
                    if piece or reason:
                        events.append(StreamEvent(c, piece))
                if reason is not None:
                    text.done = True
                    events.append(StreamEvent(c, text.delta.finish(), reason, text.tokens))
            if all(t.done for t in texts):
                self.batch.cancel(key)  # a stop string can end a request before the model would
                del self.texts[key]
            out.append((key, events))
        return out
