"""One running batch for continuous batching: rows, a left-padded KV cache and the next token.

Every row is right-aligned in a shared ``DynamicCache`` of shape (batch, heads, T, dim); a
row's padding sits on the left and is hidden by the attention mask, and each row's position
ids count only its own tokens, so a row computes what it would compute alone. Rows join after
a prefill of their own (the two caches are left-padded to one width and concatenated), leave
with an index select, and columns that are padding for every remaining row are trimmed.

Sampling follows transformers' order per row: repetition penalty (over the row's prompt and
output), minimum length, temperature, top-p; each row samples with its own seeded generator.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Row:
    """A request's decoding state. ``ids`` holds the prompt and every sampled token."""

    prompt: list[int]
    weights: tuple[float, ...] | None  # one per expert; None for the base model
    max_new_tokens: int
    min_new_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    owner: Any = None  # the scheduler's request
    ids: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        self.ids = list(self.prompt)
        if self.temperature > 0:
            self.generator = torch.Generator().manual_seed(
                self.seed if self.seed is not None else random.getrandbits(63)
            )

    @property
    def generated(self) -> list[int]:
        return self.ids[len(self.prompt) :]


def check_supported(model: Any) -> None:
    """Refuse models whose attention this batch cannot reproduce exactly."""
    config = model.config
    layer_types = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)
    if window or any("sliding" in str(t) for t in layer_types):
        # the cache here keeps every position; a sliding-window layer would attend too far back
        raise NotImplementedError(
            f"{type(model).__name__} uses sliding-window attention, which the batching scheduler does not "
            "support yet; use a base model with full attention"
        )


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class DecodeBatch:
    """The rows being decoded together, their cache and attention mask."""

    def __init__(self, model: Any, eos_ids: set[int], num_experts: int) -> None:
        self.model = model
        self.eos_ids = sorted(eos_ids)
        self.num_experts = num_experts
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # (batch, T) long, 1 for real tokens
        # transformers 5.2x names the argument ``cache``; older releases ``past_key_values``
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # only the last position's logits are needed: skips the vocabulary projection of the prompt
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def row_weights(self, rows: Sequence[Row]) -> torch.Tensor | None:
        """(batch, num_experts), zeros for base-only rows; None when every row is base-only."""
        if all(r.weights is None for r in rows):
            return None
        zero = (0.0,) * self.num_experts
        return torch.tensor([zero if r.weights is None else r.weights for r in rows])

    # --- the two forward passes ----------------------------------------------------------
    def prefill(self, rows: Sequence[Row]) -> list[int]:
        """Run the joining rows' prompts (left-padded together), merge them in, sample their
        first tokens. The caller holds the mixer with :meth:`row_weights` of ``rows``."""
        from transformers import DynamicCache

        width = max(len(r.prompt) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt) :] = torch.tensor(row.prompt)
            mask[i, width - len(row.prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        device = self.device
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{self._cache_arg: cache},
            **self._last_only,
        )
        tokens = self._sample(rows, out.logits[:, -1, :])
        self._merge(list(rows), cache, mask.to(device))
        return tokens

    def step(self) -> list[int]:
        """Feed every row its last sampled token; sample the next one."""
        device = self.device
        last = torch.tensor([[r.ids[-1]] for r in self.rows], device=device)
        positions = torch.tensor([[len(r.ids) - 1] for r in self.rows], device=device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = self.model(
            input_ids=last,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_arg: self.cache},
        )
        return self._sample(self.rows, out.logits[:, -1, :])

    # --- joining and leaving ---------------------------------------------------------------
    def _merge(self, rows: list[Row], cache: Any, mask: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.rows, self.cache, self.mask = rows, cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for ours, theirs in zip(self.cache.layers, cache.layers):
            ours.keys = torch.cat([_left_pad(ours.keys, width, 2), _left_pad(theirs.keys, width, 2)])
            ours.values = torch.cat([_left_pad(ours.values, width, 2), _left_pad(theirs.values, width, 2)])
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        self.rows = self.rows + rows

    def keep(self, keep: Sequence[int]) -> None:
        """Keep only these row indices; drop columns that are now padding in every row."""
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        index = torch.tensor(list(keep), device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask.index_select(0, index)
        first = int(self.mask.any(0).nonzero()[0])  # leading columns that every row pads
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]

    # --- sampling --------------------------------------------------------------------------
    def _sample(self, rows: Sequence[Row], logits: torch.Tensor) -> list[int]:
        logits = logits.float()
        if all(r.temperature == 0 and r.repetition_penalty == 1.0 and r.min_new_tokens == 0 for r in rows):
            tokens = logits.argmax(-1).tolist()
        else:
            tokens = [_next_token(row, logits[i : i + 1], self.eos_ids) for i, row in enumerate(rows)]
        for row, token in zip(rows, tokens):
            row.ids.append(int(token))
        return [int(t) for t in tokens]


def _next_token(row: Row, logits: torch.Tensor, eos_ids: list[int]) -> int:
    """One row's next token from its (1, vocab) logits."""
    logits = logits.clone()
    if row.repetition_penalty != 1.0:
        seen = torch.tensor([row.ids], device=logits.device)
        score = logits.gather(1, seen)
        score = torch.where(score < 0, score * row.repetition_penalty, score / row.repetition_penalty)
        logits.scatter_(1, seen, score)
    if len(row.generated) < row.min_new_tokens and eos_ids:
        logits[:, eos_ids] = -float("inf")
    if row.temperature == 0:
        return int(logits.argmax(-1))
    logits = logits / row.temperature
    if row.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=False)
        cumulative = ordered.softmax(-1).cumsum(-1)
        remove = cumulative <= (1 - row.top_p)
        remove[..., -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(remove.scatter(1, order, remove), -float("inf"))
    probs = logits.softmax(-1).cpu()
    return int(torch.multinomial(probs, 1, generator=row.generator))
