"""One running batch for continuous batching: rows, a left-padded KV cache and the next token.

Every row is right-aligned in a shared ``DynamicCache`` of shape (batch, heads, T, dim); a
row's padding sits on the left and is hidden by the attention mask, and each row's position
ids count only its own tokens, so a row computes what it would compute alone. Rows join after
a prefill of their own (the two caches are left-padded to one width and concatenated), leave
with an index select, and columns that are padding for every remaining row are trimmed.

Sampling follows transformers' order per row: repetition penalty (over the row's prompt and
output), no-repeat n-grams (over the output only), minimum length, temperature, top-p; each
row samples with its own seeded generator. The n-gram rule bans a token that would repeat an
n-token run already in the reply, unless the run holds no letter at all (digits, spaces and
punctuation: phone numbers like "1800 247 247" repeat such runs legitimately). The word-run
guard (``persona_agents.repetition``) keeps a run of three words from occurring once too often,
and one of five words from coming back: the tokens that would start the run's last word are taken out (the model says something else);
if the model is inside that word anyway, the tokens that would end it are taken out; and a
chosen token that would still complete the run (a word ending inside the token) is taken out and
the choice made again.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from persona_agents.repetition import WordRunGuard, starts_word_char, words


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
    no_repeat_ngram_size: int = 0
    word_run_limit: int = 0  # 0: off; else a run of three words may occur at most this many times (five words: once)
    seed: int | None = None
    owner: Any = None  # the scheduler's request
    ids: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None
    # (n-1)-token prefix -> tokens that followed it in the output (the n-gram rule's memory)
    followers: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    word_guard: WordRunGuard | None = None

    def __post_init__(self) -> None:
        self.ids = list(self.prompt)
        if self.word_run_limit:
            self.word_guard = WordRunGuard(self.word_run_limit)
        if self.temperature > 0:
            self.generator = torch.Generator().manual_seed(
                self.seed if self.seed is not None else random.getrandbits(63)
            )

    @property
    def generated(self) -> list[int]:
        return self.ids[len(self.prompt) :]

    @property
    def plain(self) -> bool:
        """No logits processing at all: greedy rows like this are batched in one argmax."""
        return (self.temperature == 0 and self.repetition_penalty == 1.0 and self.min_new_tokens == 0
                and self.no_repeat_ngram_size < 2 and self.word_guard is None)

    def append(self, token: int, has_letter: Callable[[int], bool]) -> None:
        """Add a sampled token and remember the n-gram it closes (if it contains a letter)."""
        self.ids.append(token)
        n = self.no_repeat_ngram_size
        if n < 2 or len(self.ids) - len(self.prompt) < n:
            return
        gram = self.ids[-n:]
        if any(has_letter(t) for t in gram):
            self.followers.setdefault(tuple(gram[:-1]), set()).add(token)

    def banned(self) -> list[int]:
        """Tokens that would repeat an n-gram of the output (empty when the rule is off)."""
        n = self.no_repeat_ngram_size
        if n < 2 or len(self.ids) - len(self.prompt) < n - 1:
            return []
        return sorted(self.followers.get(tuple(self.ids[len(self.ids) - n + 1 :]), ()))


class TokenTable:
    """What the repetition rules need to know about every token, decoded once per tokenizer:
    whether its text holds a letter (n-grams without one are exempt), whether it starts with a
    character that ends a word (appended to a word in progress, it finishes that word), whether
    it starts with whitespace, and the tokens that are (the start of) one word, by that word."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        known = min(len(tokenizer), vocab_size)
        texts = tokenizer.batch_decode([[i] for i in range(known)], skip_special_tokens=False)
        self.has_letter = torch.ones(vocab_size, dtype=torch.bool)
        self.ends_word = torch.ones(vocab_size, dtype=torch.bool)  # ids past the tokenizer: treated as ends
        self.space_start = torch.zeros(vocab_size, dtype=torch.bool)
        self.has_letter[:known] = torch.tensor([any(ch.isalpha() for ch in t) for t in texts], dtype=torch.bool)
        self.ends_word[:known] = torch.tensor([not starts_word_char(t) for t in texts], dtype=torch.bool)
        self.space_start[:known] = torch.tensor([t[:1].isspace() for t in texts], dtype=torch.bool)
        self._letters = self.has_letter.tolist()
        self._space = self.space_start.tolist()
        # "jug" -> ids of "jug", " jug", "Jug", ...: tokens that are one word piece after optional spaces
        self.word_pieces: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            piece = text.lstrip().lower()
            if piece and words(piece) == [piece]:
                self.word_pieces.setdefault(piece, []).append(i)

    def letter(self, token: int) -> bool:
        return self._letters[token] if 0 <= token < len(self._letters) else True

    def starting(self, word: str, *, after_space_only: bool) -> list[int]:
        """Tokens that start ``word`` (any non-empty prefix of it as a whole token)."""
        ids = [i for k in range(1, len(word) + 1) for i in self.word_pieces.get(word[:k], ())]
        return [i for i in ids if self._space[i]] if after_space_only else ids


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

    def __init__(self, model: Any, eos_ids: set[int], num_experts: int, tokens: TokenTable | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> None:
        self.model = model
        self.eos_ids = sorted(eos_ids)
        self.num_experts = num_experts
        # per-token facts for the n-gram rule and the word-run guard; None: every token has a letter
        self.tokens = tokens
        self.has_letter: Callable[[int], bool] = tokens.letter if tokens is not None else (lambda token: True)
        self.decode = decode  # token ids -> text, for the word-run guard (rows with one need it)
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
    def _refuses(self, row: Row, token: int) -> bool:
        """Would ``token`` make a run of words occur once too often in the row's reply?"""
        if row.word_guard is None:
            return False
        final = token in self.eos_ids or len(row.generated) + 1 >= row.max_new_tokens
        ids = row.generated if token in self.eos_ids else [*row.generated, token]
        return row.word_guard.refuses(self._decode(ids), final=final)

    def _word_guard_bans(self, row: Row) -> torch.Tensor | None:
        """A vocabulary mask of the tokens the word-run guard takes out before choosing: those
        that would start a word completing a run once too often, and, when the word in progress
        would complete one, those that would end it (end-of-sequence included). None: no ban."""
        if row.word_guard is None or self.tokens is None:
            return None
        text = self._decode(row.generated)
        forbidden, inside = row.word_guard.forbidden_next(text)
        banned: torch.Tensor | None = None
        if forbidden:
            banned = torch.zeros(self.tokens.vocab_size, dtype=torch.bool)
            for word in forbidden:  # inside a word, only a token starting with a space starts the next one
                banned[self.tokens.starting(word, after_space_only=inside)] = True
        if row.word_guard.ending_refused(text):
            banned = self.tokens.ends_word.clone() if banned is None else banned | self.tokens.ends_word
            banned[self.eos_ids] = True
        return banned

    def _decode(self, ids: list[int]) -> str:
        if self.decode is None:
            raise RuntimeError("a row with a word-run limit needs a DecodeBatch built with decode=")
        return self.decode(ids)

    def _sample(self, rows: Sequence[Row], logits: torch.Tensor) -> list[int]:
        logits = logits.float()
        if all(r.plain for r in rows):
            tokens = logits.argmax(-1).tolist()
        else:
            tokens = [
                _next_token(row, logits[i : i + 1], self.eos_ids, self._refuses, self._word_guard_bans(row))
                for i, row in enumerate(rows)
            ]
        for row, token in zip(rows, tokens):
            row.append(int(token), self.has_letter)
        return [int(t) for t in tokens]


def _next_token(row: Row, logits: torch.Tensor, eos_ids: list[int],
                refuses: Callable[[Row, int], bool] | None = None, banned_mask: torch.Tensor | None = None) -> int:
    """One row's next token from its (1, vocab) logits. ``banned_mask`` (vocab,) takes tokens out
    first; a chosen token ``refuses`` rejects is taken out and the choice made again (greedy:
    the next best; sampled: a new draw)."""
    logits = logits.clone()
    if row.repetition_penalty != 1.0:
        seen = torch.tensor([row.ids], device=logits.device)
        score = logits.gather(1, seen)
        score = torch.where(score < 0, score * row.repetition_penalty, score / row.repetition_penalty)
        logits.scatter_(1, seen, score)
    if banned := row.banned():
        logits[:, banned] = -float("inf")
    if len(row.generated) < row.min_new_tokens and eos_ids:
        logits[:, eos_ids] = -float("inf")
    if banned_mask is not None:
        logits[:, banned_mask.to(logits.device)[: logits.shape[-1]]] = -float("inf")
    if row.temperature > 0:
        logits = logits / row.temperature
    token = _choose(row, logits)
    for _ in range(_MAX_REFUSALS):
        if refuses is None or not refuses(row, token):
            break
        logits[:, token] = -float("inf")
        if not torch.isfinite(logits).any():
            break  # nothing left to choose from: keep the last choice
        token = _choose(row, logits)
    return token


_MAX_REFUSALS = 32


def _choose(row: Row, logits: torch.Tensor) -> int:
    """Greedy, or a draw from the top-p nucleus of (temperature-scaled) logits."""
    if row.temperature == 0:
        return int(logits.argmax(-1))
    if row.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=False)
        cumulative = ordered.softmax(-1).cumsum(-1)
        remove = cumulative <= (1 - row.top_p)
        remove[..., -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(remove.scatter(1, order, remove), -float("inf"))
    probs = logits.softmax(-1).cpu()
    return int(torch.multinomial(probs, 1, generator=row.generator))
