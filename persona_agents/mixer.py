"""Exact per-request mixing of LoRA experts, with a weight vector per batch row.

For every target ``nn.Linear`` a forward hook adds

    delta = ((x @ A_cat^T) * w_rep) @ B_cat^T

where ``A_cat`` stacks every expert's ``A`` (r_i x in), ``B_cat`` stacks every expert's
``s_i * B_i`` (out x r_i) and ``w_rep`` repeats each row's expert weight over that expert's
rank. That is exactly ``sum_i w_i * s_i * B_i A_i x``. Measured on these machines (see
docs/ARCHITECTURE.md) it costs +2..10% over the base model, against +16..70% for peft with all
ten adapters active; switching weights is a tensor assignment, so no re-merge per request.

peft stays the training and file format; this module only reads adapters peft saved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


class AdapterFormatError(ValueError):
    """A folder that is not a readable peft LoRA adapter (names the file and the problem)."""


class ExpertFormatError(AdapterFormatError):
    """An expert adapter cannot be used with this model (names the file and the problem)."""


@dataclass(frozen=True)
class LoraExpert:
    """One expert's low-rank factors per target module (module path -> (A, B)) and scaling."""

    name: str
    scaling: float
    factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def rank(self) -> int:
        return next(iter(self.factors.values()))[0].shape[0]


def read_lora_adapter(directory: str | Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """The ``peft.LoraConfig`` and the tensors of an adapter folder that peft saved."""
    from peft import LoraConfig, PeftConfig
    from peft.utils import load_peft_weights

    directory = Path(directory)
    for required in ("adapter_config.json", "adapter_model.safetensors"):
        if not (directory / required).is_file():
            raise AdapterFormatError(f"missing {directory / required}")
    try:
        config = PeftConfig.from_pretrained(str(directory))
    except Exception as exc:  # peft raises several types for a corrupt json
        raise AdapterFormatError(f"unreadable adapter_config.json in {directory}: {exc}") from exc
    if not isinstance(config, LoraConfig):
        raise AdapterFormatError(f"{directory} is a {type(config).__name__}, not a LoRA adapter")
    try:
        weights = load_peft_weights(str(directory), device="cpu")
    except Exception as exc:
        raise AdapterFormatError(f"unreadable weights in {directory}: {exc}") from exc
    return config, weights


def load_peft_expert(name: str, directory: str | Path) -> LoraExpert:
    """Read an adapter that peft saved (``adapter_config.json`` + safetensors weights)."""
    directory = Path(directory)
    try:
        config, state = read_lora_adapter(directory)
    except AdapterFormatError as exc:
        raise ExpertFormatError(f"expert {name!r}: {exc}") from exc
    unsupported = [
        label
        for label, present in (
            ("use_dora", config.use_dora),
            ("fan_in_fan_out", config.fan_in_fan_out),
            ("bias", config.bias != "none"),
            ("rank_pattern", bool(config.rank_pattern)),
            ("alpha_pattern", bool(config.alpha_pattern)),
        )
        if present
    ]
    if unsupported:
        raise ExpertFormatError(f"expert {name!r}: unsupported LoRA options {unsupported} in {directory}")
    scaling = config.lora_alpha / (config.r**0.5 if config.use_rslora else config.r)

    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.weight"
            if key.endswith(marker):
                module = key[: -len(marker)].removeprefix("base_model.model.")
                factors.setdefault(module, {})[part] = tensor
    if not factors:
        raise ExpertFormatError(f"expert {name!r}: no LoRA tensors in {directory}")
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module, parts in factors.items():
        if set(parts) != {"lora_A", "lora_B"}:
            raise ExpertFormatError(f"expert {name!r}: {module} lacks lora_A or lora_B")
        a, b = parts["lora_A"], parts["lora_B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != config.r or b.shape[1] != config.r:
            raise ExpertFormatError(
                f"expert {name!r}: {module} has A {tuple(a.shape)} and B {tuple(b.shape)}, "
                f"which do not match rank {config.r}"
            )
        pairs[module] = (a, b)
    return LoraExpert(name=name, scaling=float(scaling), factors=pairs)


class _StackedFactors:
    """All experts' factors for one Linear, on that Linear's device and dtype."""

    def __init__(self, module: nn.Linear, experts: Sequence[LoraExpert], path: str) -> None:
        weight = module.weight
        a_parts, b_parts, owners = [], [], []
        for index, expert in enumerate(experts):
            a, b = expert.factors[path]
            if a.shape[1] != module.in_features or b.shape[0] != module.out_features:
                raise ExpertFormatError(
                    f"expert {expert.name!r}: {path} expects ({module.out_features} x {module.in_features}) "
                    f"but the adapter has A {tuple(a.shape)} and B {tuple(b.shape)}; "
                    "was it trained for another base model?"
                )
            a_parts.append(a)
            b_parts.append(b * expert.scaling)
            owners.extend([index] * a.shape[0])
        self.a_cat = torch.cat(a_parts, 0).to(device=weight.device, dtype=weight.dtype)
        self.b_cat_t = torch.cat(b_parts, 1).t().contiguous().to(device=weight.device, dtype=weight.dtype)
        self.owner = torch.tensor(owners, device=weight.device)


class ExpertMixer:
    """Adds a weighted sum of LoRA experts to a model's Linear layers, per batch row.

    Use :meth:`active` around every forward/generate call. It holds a lock, so a request
    always runs with its own weights; ``active(None)`` runs the base model alone.
    """

    def __init__(self, model: nn.Module, experts: Sequence[LoraExpert]) -> None:
        if not experts:
            raise ValueError("ExpertMixer needs at least one expert")
        self.expert_names = tuple(e.name for e in experts)
        self.num_experts = len(experts)
        targets = set(experts[0].factors)
        for expert in experts[1:]:
            if set(expert.factors) != targets:
                missing = sorted(targets ^ set(expert.factors))[:3]
                raise ExpertFormatError(
                    f"experts {experts[0].name!r} and {expert.name!r} target different modules (e.g. {missing})"
                )
        modules = dict(model.named_modules())
        self._layers: dict[str, _StackedFactors] = {}
        self._handles = []
        for path in sorted(targets):
            module = modules.get(path)
            if module is None:
                raise ExpertFormatError(
                    f"the experts target {path!r}, which this base model does not have; "
                    "was the bundle trained for another base model?"
                )
            if not isinstance(module, nn.Linear):
                raise ExpertFormatError(f"{path} is a {type(module).__name__}; only nn.Linear targets are supported")
            stacked = _StackedFactors(module, experts, path)
            self._layers[path] = stacked
            self._handles.append(module.register_forward_hook(self._make_hook(stacked)))
        self._lock = threading.RLock()
        self._row_weights: torch.Tensor | None = None  # (batch, num_experts) or None for base
        self._rep_cache: dict[tuple[torch.device, torch.dtype, int], torch.Tensor] = {}

    @property
    def target_modules(self) -> list[str]:
        return list(self._layers)

    def _expanded(self, stacked: _StackedFactors, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype, stacked.owner.numel())
        rep = self._rep_cache.get(key)
        if rep is None:
            weights = self._row_weights.to(device=like.device, dtype=like.dtype)
            rep = weights.index_select(1, stacked.owner.to(like.device))
            self._rep_cache[key] = rep
        return rep

    def _make_hook(self, stacked: _StackedFactors):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            if self._row_weights is None:
                return output
            x = inputs[0]
            rep = self._expanded(stacked, x)  # (batch, total_rank)
            if x.ndim == 2:  # (batch, in): no sequence dimension
                rows = rep if rep.shape[0] == x.shape[0] else rep.expand(x.shape[0], -1)
                return output + ((x @ stacked.a_cat.t()) * rows) @ stacked.b_cat_t
            if rep.shape[0] not in (1, x.shape[0]):
                raise RuntimeError(f"persona weights have {rep.shape[0]} rows but the batch has {x.shape[0]}")
            low = (x @ stacked.a_cat.t()) * rep.unsqueeze(1)
            return output + low @ stacked.b_cat_t

        return hook

    @contextmanager
    def active(self, row_weights: torch.Tensor | Sequence[float] | None) -> Iterator[None]:
        """Run the enclosed forward passes with these weights: (num_experts,) or (batch, num_experts)."""
        with self._lock:
            previous, previous_cache = self._row_weights, self._rep_cache
            if row_weights is None:
                self._row_weights = None
            else:
                weights = torch.as_tensor(row_weights, dtype=torch.float32)
                if weights.ndim == 1:
                    weights = weights.unsqueeze(0)
                if weights.ndim != 2 or weights.shape[1] != self.num_experts:
                    raise ValueError(
                        f"persona weights must have shape (batch, {self.num_experts}), got {tuple(weights.shape)}"
                    )
                if not torch.isfinite(weights).all():
                    raise ValueError("persona weights must be finite")
                self._row_weights = weights
            self._rep_cache = {}
            try:
                yield
            finally:
                self._row_weights, self._rep_cache = previous, previous_cache

    def remove(self) -> None:
        """Detach the hooks; the model is the plain base model again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
