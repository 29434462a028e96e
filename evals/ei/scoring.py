"""Log-likelihood of each answer option given a chat-templated prompt, in batches.

A batch of prompts runs once, left-padded (keeping the KV cache and only the last position's
logits); the cache is then copied once per option and every option of every prompt runs in one
right-padded batch. That is exactly the per-option full-sequence computation (padding is masked
or sits after every real token) at a fraction of the cost: each prompt, usually the long part, is
computed once instead of once per option, and the matrices are large enough for the CPU to use
well (8 prompts per batch cost about a third of the CPU time per token of one at a time here).

Expert weights are per prompt: ``ScoringRequest.weights`` is given to the engine's
:class:`~persona_agents.mixer.ExpertMixer` as one row per batch row (zeros for base-model rows),
the mechanism the engine's own batched decoding uses.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from persona_agents.mixer import ExpertMixer

METRICS: tuple[str, ...] = ("mean", "sum")
# The primary metric: options differ in length, and a sum of log-probabilities falls with every
# extra token, so "sum" favours short options whatever they say. The per-token mean removes that
# direct length penalty (evals/README.md reports both and the length-only baselines).
PRIMARY_METRIC = "mean"


@dataclass(frozen=True)
class OptionScore:
    """Log-probability of one option's tokens: their sum, and the mean per token."""

    logprob_sum: float
    n_tokens: int

    @property
    def logprob_mean(self) -> float:
        return self.logprob_sum / self.n_tokens


def option_token_ids(tokenizer: PreTrainedTokenizerBase, options: Sequence[str]) -> list[list[int]]:
    """Each option's tokens as the model would generate them right after the assistant header."""
    ids = [list(tokenizer(option, add_special_tokens=False)["input_ids"]) for option in options]
    for option, tokens in zip(options, ids):
        if not tokens:
            raise ValueError(f"option {option!r} has no tokens")
    return ids


def _forward_kwargs(model: PreTrainedModel) -> tuple[str, dict[str, int]]:
    """The cache argument's name (transformers 5.2x: ``cache``; older: ``past_key_values``) and,
    where supported, ``logits_to_keep=1`` so the prompt pass skips the vocabulary projection."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), ({"logits_to_keep": 1} if "logits_to_keep" in params else {})


@dataclass(frozen=True)
class ScoringRequest:
    """A prompt, its options' tokens and the expert weights to score them with (None: base model)."""

    prompt_ids: Sequence[int]
    options_ids: Sequence[Sequence[int]]
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("the prompt has no tokens")
        if not self.options_ids or any(not o for o in self.options_ids):
            raise ValueError("every option needs at least one token")


def _row_weights(weights: Sequence[Sequence[float] | None], num_experts: int) -> torch.Tensor | None:
    """(rows, num_experts) with zeros for base-model rows; None when every row is base-model."""
    if all(w is None for w in weights):
        return None
    zero = [0.0] * num_experts
    return torch.tensor([zero if w is None else list(w) for w in weights], dtype=torch.float32)


@torch.inference_mode()
def score_batch(
    model: PreTrainedModel, requests: Sequence[ScoringRequest], pad_id: int, mixer: ExpertMixer | None = None
) -> list[list[OptionScore]]:
    """Per request, per option: the sum of ``log p(token | prompt, earlier option tokens)``.

    With ``mixer``, each request is scored under its own ``weights``; without, under whatever the
    model runs as (e.g. inside a caller's ``mixer.active(...)``).
    """
    from transformers import DynamicCache

    if not requests:
        return []
    if mixer is None and any(r.weights is not None for r in requests):
        raise ValueError("requests carry expert weights but no mixer was given")
    cache_arg, last_only = _forward_kwargs(model)
    device = next(model.parameters()).device
    width = max(len(r.prompt_ids) for r in requests)
    ids = torch.full((len(requests), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(requests), width), dtype=torch.long)
    for i, request in enumerate(requests):
        ids[i, width - len(request.prompt_ids) :] = torch.tensor(list(request.prompt_ids))
        mask[i, width - len(request.prompt_ids) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    owner = [i for i, r in enumerate(requests) for _ in r.options_ids]  # the request of each option row
    options = [o for r in requests for o in r.options_ids]
    longest = max(len(o) for o in options)
    batch = torch.full((len(options), longest), pad_id, dtype=torch.long)
    for row, tokens in enumerate(options):
        batch[row, : len(tokens)] = torch.tensor(list(tokens))
    batch = batch.to(device)
    index = torch.tensor(owner, device=device)
    option_mask = torch.cat([mask.index_select(0, index), torch.ones_like(batch)], dim=1)
    option_positions = mask.sum(1).index_select(0, index).unsqueeze(1) + torch.arange(longest, device=device)

    def weights_for(rows: Sequence[int]) -> Any:
        if mixer is None:
            return contextlib.nullcontext()
        return mixer.active(_row_weights([requests[i].weights for i in rows], mixer.num_experts))

    cache = DynamicCache()
    with weights_for(range(len(requests))):
        head = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                     use_cache=True, **{cache_arg: cache}, **last_only)
    first_logp = torch.log_softmax(head.logits[:, -1].float(), dim=-1)  # predicts each option's first token
    cache.reorder_cache(index)
    with weights_for(owner):
        logits = model(input_ids=batch, attention_mask=option_mask, position_ids=option_positions,
                       use_cache=True, **{cache_arg: cache}).logits.float()
    # log p(next token) = logit - logsumexp over the vocabulary, without a full log-softmax copy
    following = torch.cat([batch[:, 1:], batch.new_full((len(options), 1), pad_id)], dim=1)
    token_logp = logits.gather(2, following.unsqueeze(2)).squeeze(2) - torch.logsumexp(logits, dim=-1)
    scores: list[list[OptionScore]] = [[] for _ in requests]
    for row, tokens in enumerate(options):
        total = float(first_logp[owner[row], tokens[0]]) + float(token_logp[row, : len(tokens) - 1].sum())
        scores[owner[row]].append(OptionScore(logprob_sum=total, n_tokens=len(tokens)))
    return scores


def score_options(
    model: PreTrainedModel, prompt_ids: Sequence[int], options_ids: Sequence[Sequence[int]], pad_id: int
) -> list[OptionScore]:
    """One prompt's options, scored under whatever the model currently runs as."""
    return score_batch(model, [ScoringRequest(prompt_ids, options_ids)], pad_id)[0]


def choose(scores: Sequence[OptionScore], metric: str) -> int:
    """Index of the best option under ``metric`` ("mean" or "sum"); ties go to the first."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "mean":
        values = [s.logprob_mean for s in scores]
    else:
        values = [s.logprob_sum for s in scores]
    return max(range(len(values)), key=lambda i: (values[i], -i))
