"""The scorer artifact: a trained :class:`RNNRegressor` + its tokenizer, saved and loaded without Ray.

Layout of a scorer directory (local path or URI)::

    model.safetensors   weights (state_dict)
    config.json         {"model": RNNConfig, "tokenizer": TokenizerConfig, "text_column": str,
                         "normalize": {switch: bool} | null}
    tokenizer.json      the Hugging Face tokenizer (vocabulary + truncation length)
    manifest.json       seqlab.artifacts manifest: stage "scorer", config, inputs' hashes, metrics

``load_scorer(path).predict(texts)`` takes raw text and prepares it as the training text was: a model
trained on ``text_norm`` gets ``seqlab.text.normalize`` with the very switches the corpus was built with
(recorded in ``config.json``); a model trained on the raw ``text`` column gets the text as it is. So a
document scores the same in training, in the CLI and over HTTP, and serving needs nothing but this
directory. (Artifacts from before the switches were recorded hold ``"normalize": true`` and get the
default switches.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from seqlab import artifacts
from seqlab.models.rnn import RNNConfig, RNNRegressor
from seqlab.models.tokenizer import TokenizerConfig, encode_texts, load_tokenizer
from seqlab.text.config import NormalizeConfig
from seqlab.text.normalize import has_arabic

__all__ = ["Scorer", "load_scorer", "save_scorer"]

log = logging.getLogger(__name__)

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"


def _identity(text: str) -> str:
    return text


def text_preparer(config: dict[str, Any]) -> Callable[[str], str]:
    """The function that turns raw text into what the model was trained on, from a scorer's config."""
    switches = config.get("normalize", True)
    if switches is False or switches is None:
        return _identity
    from seqlab.text import normalize

    cfg = NormalizeConfig() if switches is True else NormalizeConfig.model_validate(switches)
    return partial(normalize, config=cfg)


class Scorer:
    """A loaded relevance scorer: raw Arabic text in, scores in [0, 10] out.

    Args:
        model: the regressor (moved to ``device`` and put in eval mode).
        tokenizer: its tokenizer.
        config: the artifact's ``config.json`` dict.
        manifest: the artifact's manifest (empty when built in memory).
        device: ``"cpu"``, ``"cuda"``... (default: cpu).
    """

    def __init__(
        self,
        model: RNNRegressor,
        tokenizer: Tokenizer,
        config: dict[str, Any],
        manifest: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        from seqlab.train.regressor import resolve_device  # here: seqlab.train imports seqlab.models

        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.manifest = manifest or {}
        self.prepare = text_preparer(config)

    @staticmethod
    def no_arabic(texts: Sequence[str]) -> list[bool]:
        """True for each text without an Arabic letter: its score says nothing of its content."""
        check_texts(texts)
        return [not has_arabic(t) for t in texts]

    @torch.inference_mode()
    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[float]:
        """Score raw texts; returns one float in [0, 10] per text, in input order.

        A text without Arabic letters (empty, emoji, Latin only) still gets a number, made of unknown
        tokens only; :meth:`no_arabic` says which those are, and ``/v1/score`` returns it too.

        Raises:
            TypeError: ``texts`` is not a list/tuple of str (a bare str, None, or a non-str item).
        """
        check_texts(texts)
        if not texts:
            return []
        ids, offsets = encode_texts(self.tokenizer, [self.prepare(t) for t in texts])
        lengths = np.diff(offsets)
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: little padding
        scores = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            tokens, lens = _pad(ids, offsets, idx)
            out = self.model(tokens.to(self.device), lens)  # (b,)
            scores[idx] = out.float().cpu().numpy()
        return scores.tolist()


def check_texts(texts: Any) -> None:
    """TypeError unless ``texts`` is a sequence of str (not a str itself), naming the first bad item."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        kind = "a single str" if isinstance(texts, str) else type(texts).__name__
        raise TypeError(f"texts must be a list of str, not {kind}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")


def _pad(ids: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad documents ``idx`` into (b, T) int64 tokens and (b,) lengths."""
    lens = offsets[idx + 1] - offsets[idx]
    tokens = np.zeros((len(idx), int(lens.max())), dtype=np.int64)
    for row, (i, n) in enumerate(zip(idx, lens, strict=True)):
        tokens[row, :n] = ids[offsets[i] : offsets[i] + n]
    return torch.from_numpy(tokens), torch.from_numpy(lens.astype(np.int64))


def save_scorer(
    directory: str,
    model: RNNRegressor,
    tokenizer: Tokenizer,
    tokenizer_config: TokenizerConfig | None = None,
    metrics: dict[str, Any] | None = None,
    *,
    job_config: dict[str, Any] | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
    normalize: NormalizeConfig | dict[str, bool] | None = NormalizeConfig(),
    text_column: str = "text_norm",
    **extra: Any,
) -> dict[str, Any]:
    """Write a scorer artifact to ``directory`` (local path or URI) and return its manifest.

    Args:
        directory: destination; created if missing.
        model: the trained regressor (its weights are copied to CPU).
        tokenizer: the tokenizer the model was trained with.
        tokenizer_config: how that tokenizer was built (recorded in config.json).
        metrics: e.g. ``{"val_rmse": ..., "test_rmse": ...}``.
        job_config: the producing job's config (recorded in the manifest).
        inputs: input artifacts' manifests by role, e.g. ``{"corpus": corpus_manifest}`` (hashed).
        normalize: the normalization switches the training text was made with (the corpus's, see
            :func:`seqlab.text.config.corpus_normalization`); ``predict`` applies them to raw text.
            None: the model read raw text and ``predict`` leaves it as it is.
        text_column: the corpus column the model was trained on (recorded for people and checks).
        **extra: more manifest fields (e.g. ``trial_id``, ``architecture``).
    """
    config = {
        "model": model.config.model_dump(mode="json"),
        "tokenizer": (tokenizer_config or TokenizerConfig()).model_dump(mode="json"),
        "text_column": text_column,
        "normalize": None
        if normalize is None
        else NormalizeConfig.model_validate(dict(normalize)).model_dump(),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with artifacts.staged_dir(directory) as local:
        save_file(state, str(local / WEIGHTS))
        artifacts.atomic_write_text(local / CONFIG, json.dumps(config, indent=2))
        artifacts.atomic_write_text(local / TOKENIZER, tokenizer.to_str())
        manifest = artifacts.write_manifest(
            local,
            stage="scorer",
            config=job_config or config,
            inputs=inputs,
            metrics=metrics,
            model=config["model"],
            parameters=model.num_parameters(),
            files=[WEIGHTS, CONFIG, TOKENIZER],
            **extra,
        )
    return manifest


def load_scorer(path: str, device: str | torch.device = "cpu") -> Scorer:
    """Load a scorer artifact (local path or URI) written by :func:`save_scorer`; no Ray needed."""
    path = str(path)
    if artifacts.is_uri(path):
        with artifacts.local_copy(path) as local:
            return load_scorer(str(local), device)
    root = Path(artifacts.local_path(path))
    if not (root / WEIGHTS).exists():
        raise FileNotFoundError(f"{path} is not a scorer artifact: no {WEIGHTS} in it")
    for name in (CONFIG, TOKENIZER):
        if not (root / name).is_file():
            raise FileNotFoundError(f"scorer artifact {path} is incomplete: {root / name} is missing")
    try:
        config = json.loads((root / CONFIG).read_text(encoding="utf-8"))
        model = RNNRegressor.from_config(RNNConfig.model_validate(config["model"]))
    except (ValueError, KeyError, TypeError) as exc:  # JSON, pydantic and shape errors are ValueErrors
        raise ValueError(
            f"{root / CONFIG} is corrupt or not a scorer config ({type(exc).__name__}: {exc})"
        ) from None
    try:
        model.load_state_dict(load_file(str(root / WEIGHTS)))
    except Exception as exc:  # SafetensorError (truncated), RuntimeError (shapes do not match the config)
        raise ValueError(
            f"{root / WEIGHTS} is corrupt or does not match {CONFIG} ({type(exc).__name__})"
        ) from None
    try:
        tokenizer = load_tokenizer(str(root / TOKENIZER))
    except Exception as exc:  # the tokenizers library raises a bare Exception on bad JSON
        raise ValueError(f"{root / TOKENIZER} is corrupt ({type(exc).__name__}: {exc})") from None
    try:
        manifest = artifacts.read_manifest(root)
    except FileNotFoundError:
        manifest = {}
    return Scorer(model, tokenizer, config, manifest, device=device)
