"""The sentence encoder the safety heads read, and the one place its default is chosen.

The heads in ``domains.classifier`` take any object with ``encode(texts) -> (n, 384) tensor``
(:class:`SentenceEncoder`); a caller such as a graph can pass its own. When none is passed,
:func:`default_safety_encoder` builds one, once per process, from the shared MiniLM
(``persona_agents.encoder.shared_encoder``) in one of two variants:

- ``"int8"`` (the default): a copy of MiniLM whose ``nn.Linear`` layers are dynamically
  quantised to int8 (per-channel weights, ``torch.ao.quantization.quantize_dynamic``), encoding
  one text per forward pass. The copy shares the word-embedding tables with the shared encoder,
  so it costs about 11 MB more than the shared encoder alone, and the router's encoder and
  numerics are untouched.
- ``"float32"``: the shared encoder itself.

The variant is a property of the trained heads: ``python -m domains.train_classifiers --encoder``
records it in each head's sidecar, and a head loaded without an explicit encoder gets the variant
it was trained on. Both variants run their forward pass on ``PERSONA_AGENTS_SAFETY_THREADS``
intra-op threads (default 1), set for the calling thread only and restored afterwards.

Why (numbers in README "Safety layer: cost"): almost all of the safety layer's cost is MiniLM's
forward pass. On this machine's two shared cores, int8 took the per-text time to about half of
float32, and one thread was far faster than two whenever the other agents kept both cores busy
(two OpenMP threads then wait on each other at every layer).
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Literal, Protocol, get_args, runtime_checkable

import torch

EncoderVariant = Literal["int8", "float32"]
ENCODER_VARIANTS: tuple[str, ...] = get_args(EncoderVariant)
DEFAULT_VARIANT: EncoderVariant = "int8"
THREADS_ENV = "PERSONA_AGENTS_SAFETY_THREADS"
DEFAULT_THREADS = 1


@runtime_checkable
class SentenceEncoder(Protocol):
    """Texts in, one L2-normalised vector per text out: an (n, dim) float32 tensor."""

    def encode(self, texts: list[str]) -> torch.Tensor: ...


def safety_threads() -> int:
    """Intra-op threads for the safety encoder (``PERSONA_AGENTS_SAFETY_THREADS``, default 1)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a whole number of threads, got {raw!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be at least 1, got {threads}")
    return threads


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: as it is), then restore the setting."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ThreadLimitedEncoder:
    """Runs another encoder with a fixed number of intra-op threads for the calling thread.

    ``torch.set_num_threads`` is per calling thread here (OpenMP), so a generation running in
    another thread keeps its own setting; the caller's setting is restored afterwards.
    """

    def __init__(self, inner: SentenceEncoder, threads: int, variant: EncoderVariant) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.inner = inner
        self.threads = threads
        self.variant = variant

    @property
    def dim(self) -> int:
        return int(getattr(self.inner, "dim", 384))

    def encode(self, texts: list[str]) -> torch.Tensor:
        with intra_op_threads(self.threads):
            return self.inner.encode(texts)


def quantised_copy(encoder: object) -> object:
    """A ``MiniLMEncoder`` whose Linear layers are int8 (dynamic, per-channel); ``encoder`` is unchanged.

    The embedding tables (47 MB of the model's 91 MB) are shared with ``encoder``, not copied:
    dynamic quantisation leaves them in float32 and nothing writes to them.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model: torch.nn.Module = encoder.model  # type: ignore[attr-defined]
    shared = {id(t): t for t in model.get_input_embeddings().parameters()}
    clone = copy.deepcopy(model, memo=dict(shared))
    with warnings.catch_warnings():
        # torch announces that eager-mode quantisation moves to the separate torchao package;
        # torch 2.x still ships it, with the fbgemm int8 kernels this needs on CPU.
        warnings.simplefilter("ignore")
        quantize_dynamic(clone, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    quantised = copy.copy(encoder)
    quantised.model = clone.eval()  # type: ignore[attr-defined]
    # Dynamic quantisation scales each batch's activations by the batch's own range, so a text's
    # vector would depend on the texts (and padding) beside it: cosine 0.96 on average (0.93 at
    # worst) between batches of 32 and one text at a time. One text per pass keeps it a function
    # of the text alone, in training and at run time.
    quantised.batch_size = 1  # type: ignore[attr-defined]
    quantised.tokenizer = copy.deepcopy(encoder.tokenizer)  # type: ignore[attr-defined]  # fast tokenizers are not thread-safe
    quantised._lock = threading.Lock()  # type: ignore[attr-defined]
    return quantised


def check_variant(variant: str) -> EncoderVariant:
    if variant not in ENCODER_VARIANTS:
        raise ValueError(f"unknown safety encoder variant {variant!r}; use one of {list(ENCODER_VARIANTS)}")
    return variant  # type: ignore[return-value]


@cache
def default_safety_encoder(variant: EncoderVariant = DEFAULT_VARIANT) -> ThreadLimitedEncoder:
    """The process-wide safety encoder of this variant, built on first use."""
    from persona_agents.encoder import shared_encoder

    base = shared_encoder()
    inner = base if check_variant(variant) == "float32" else quantised_copy(base)
    return ThreadLimitedEncoder(inner, safety_threads(), variant)  # type: ignore[arg-type]
