"""Token ids to streamed text: incremental decoding, stop strings and whitespace held back.

The same :class:`StreamAssembler` serves the sync and async streams of the engine, so
``stream`` and ``generate`` agree on the text: pieces join to the final, stripped text (the
generation's text, cut at a stop string or back to a sentence end as the engine cut it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persona_agents.sentences import last_sentence_end


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
    """Feed it token ids as they come; it returns the text that is safe to show.

    Held back: the last ``len(longest stop) - 1`` characters (a stop string may be arriving a
    token at a time), trailing whitespace (the final text is stripped) and, with
    ``sentences=True``, the sentence in progress (a reply cut by its token budget ends at its
    last complete sentence, and text already shown cannot be taken back). Everything released
    is a prefix of the final text; :meth:`finish` returns the rest of it.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], *, sentences: bool = False) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.sentences = sentences
        self.ids: list[int] = []
        self.emitted = ""
        self.stopped = False
        self.holdback = max((len(s) for s in self.stop), default=1) - 1

    def feed(self, ids: Sequence[int]) -> str:
        self.ids.extend(ids)
        if self.stopped:
            return ""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character is still arriving
            return ""
        cut, self.stopped = cut_at_stop(text, self.stop)
        ready = cut if self.stopped else text[: max(0, len(text) - self.holdback)]
        if self.sentences:
            ready = ready[: last_sentence_end(ready, final=False)]
        return self._release(ready.strip())

    def _release(self, ready: str) -> str:
        if len(ready) <= len(self.emitted) or not ready.startswith(self.emitted):
            return ""
        piece, self.emitted = ready[len(self.emitted) :], ready
        return piece

    def finish(self, final_text: str) -> str:
        """The rest of the final text (``Generation.text``) once generation has ended."""
        return self._release(final_text)
