"""Reducers that keep a thread's protected fields valid whoever writes to them.

Nodes are the only intended writers of these fields, but ``Command(update=...)`` and
``graph.update_state`` (operator tools) go through the same reducers. Each reducer keeps the
previous value when the new one is malformed, so no write can leave a thread that raises on
every later call, and risk once raised stays raised.

LangGraph lets any write skip a reducer with ``Overwrite(value)`` or its JSON form
``{"__overwrite__": value}``; ``Guarded`` is the channel these fields use instead, which sends
every write through the reducer, so an overwrite is just another malformed value. (The
conversation has a channel of its own: ``graphs.conversation``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langgraph.channels.binop import BinaryOperatorAggregate


class Guarded(BinaryOperatorAggregate):
    """A reducer channel that no write bypasses: ``Overwrite`` forms reach the reducer too."""

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        for value in values:
            self.value = self.operator(self.value, value)
        return True


def guarded(typ: type, reducer: Callable[[Any, Any], Any]) -> Guarded:
    """The ``Annotated[...]`` metadata for a protected field: ``Annotated[int, guarded(int, valid_turn)]``."""
    return Guarded(typ, reducer)


def keep_risk_raised(left: dict[str, Any] | None, right: Any) -> dict[str, Any]:
    """Risk is monotonic: a write that would lower or clear a raised risk is ignored."""
    left = left if isinstance(left, dict) else {}
    if not isinstance(right, dict) or "__overwrite__" in right or right.get("type") == "__overwrite__":
        return left
    if left.get("raised") and right.get("raised") is not True:
        return left
    return dict(right)


def valid_turn(left: int | None, right: Any) -> int:
    """The turn counter accepts only non-negative whole numbers that do not go backwards."""
    left = left if isinstance(left, int) and not isinstance(left, bool) else 0
    if isinstance(right, int) and not isinstance(right, bool) and right >= left:
        return right
    return left


def append_decisions(left: list[dict[str, Any]] | None, right: Any) -> list[dict[str, Any]]:
    """The decision log only grows, and only by well-formed entries."""
    log = list(left or [])
    items = right if isinstance(right, list) else []
    keys = {"turn", "node", "decision", "reason"}
    log.extend(dict(d) for d in items if isinstance(d, dict) and keys <= set(d))
    return log


def one_of(*allowed: str) -> Callable[[str | None, Any], str | None]:
    """A reducer that keeps the previous value unless the new one is one of ``allowed``."""

    def reduce(left: str | None, right: Any) -> str | None:
        return right if isinstance(right, str) and right in allowed else left

    reduce.__name__ = f"one_of_{'_'.join(a.strip('_') for a in allowed)}"
    return reduce
