"""Token ids to streamed text: incremental decoding, stop strings and whitespace held back.

The same :class:`StreamAssembler` serves the sync and async streams of the engine, so
``stream`` and ``generate`` agree on the text: pieces join to the final, stripped text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class StreamPiece:
    """A piece of streamed text; the last piece carries the finished ``Generation``."""

    text: str
    final: Any = None  # persona_agents.engine.Generation on the last piece


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text up to the earliest stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StreamAssembler:
    """Feed it token ids as they come; it returns the text that is safe to show."""

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.decoded = ""  # text of self.ids already handed to the holdback buffer
        self.emitted = ""
        self.buffer = ""
        self.stopped = False
        # keep the last holdback characters: a stop string may be arriving a token at a time
        self.holdback = max((len(s) for s in self.stop), default=1) - 1

    def feed(self, ids: Sequence[int]) -> str:
        self.ids.extend(ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character is still arriving
            return ""
        piece, self.decoded = text[len(self.decoded) :], text
        return self._push(piece) if piece else ""

    def _push(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.buffer += piece
        cut, found = cut_at_stop(self.buffer, self.stop)
        if found:
            self.stopped = True
            ready, self.buffer = cut.rstrip(), ""
        else:
            split = max(0, len(self.buffer) - self.holdback)
            ready, self.buffer = self.buffer[:split], self.buffer[split:]
            # hold trailing whitespace back until more text follows: the final text is stripped
            kept = ready.rstrip()
            ready, self.buffer = kept, ready[len(kept) :] + self.buffer
        if ready and not self.emitted:
            ready = ready.lstrip()
        self.emitted += ready
        return ready

    def finish(self) -> str:
        """The text still held back once generation ended."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.decoded):  # characters held back as incomplete bytes
            head = self._push(text[len(self.decoded) :])
            self.decoded = text
        else:
            head = ""
        if self.stopped or not self.buffer:
            return head
        tail = (self.buffer if self.emitted else self.buffer.lstrip()).rstrip()
        self.buffer = ""
        self.emitted += tail
        return head + tail
