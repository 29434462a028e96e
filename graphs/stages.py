"""The open turn's stage: the node a turn goes on with, recorded in state by every node.

Nodes write ``stage``; routers only read it. A checkpoint therefore says where an unfinished
turn stands, so a turn cut short by a crash is finished by ``invoke(None, config)`` and a new
input that arrives meanwhile can be refused while the open turn goes on where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphs.state import IDLE


def open_stage(state: Mapping[str, Any]) -> str | None:
    """The node the open turn continues with, or None when no turn is open."""
    stage = state.get("stage")
    return None if not stage or stage == IDLE else str(stage)


def turn_of(state: Mapping[str, Any]) -> int:
    turn = state.get("turn")
    return turn if isinstance(turn, int) and not isinstance(turn, bool) else 0
