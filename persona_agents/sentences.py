"""Where sentences end, so a reply cut short by its token budget can end on a whole sentence.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` (a run of them, then any closing quotes or
brackets) followed by whitespace, and at a line break after text (list items and lines without
a full stop count as complete, a line ending in ``:``, ``,`` or ``;`` does not). Not ends: a full stop inside a number or a web address ("3.5",
"site.org") because no whitespace follows it, the full stop of a list marker at the start of a
line ("1. "), and the full stop of a title or abbreviation that introduces more text
("Dr. ", "e.g. ").

:func:`trim_to_sentence` is the rule for a reply that ran out of tokens: keep everything up
to the last sentence end; when the text has no sentence end at all, keep it whole, because
cutting would leave nothing to send.
"""

from __future__ import annotations

import re

# A run of terminal punctuation with its closing quotes/brackets, then whitespace; or a line break.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_LIST_MARKER = re.compile(r"(?:^|\n)[ \t]*(?:\d{1,3}|[a-zA-Z])\.$")
_ABBREVIATION = re.compile(
    r"\b(?:mr|mrs|ms|dr|prof|sr|jr|vs|approx|e\.g|i\.e|cf)\.$", re.IGNORECASE
)


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end in ``text`` (the text is kept up to there)."""
    ends = []
    for m in _END.finditer(text):
        head = text[: m.end()]
        if m.group(0) != "\n" and (_LIST_MARKER.search(head) or _ABBREVIATION.search(head)):
            continue
        if m.group(0) == "\n" and (before := text[: m.start()].rstrip()) and before[-1] in ":,;":
            continue  # "Here are some ideas:" introduces what follows
        if m.group(0) == "\n" and not text[: m.start()].strip():
            continue  # a leading blank line ends nothing
        ends.append(m.end())
    return ends


def last_sentence_end(text: str, *, final: bool) -> int:
    """Offset after the last complete sentence, 0 if there is none.

    ``final``: the text is finished, so terminal punctuation at its very end counts (while
    streaming, "3." might still become "3.5").
    """
    ends = sentence_ends(text)
    end = ends[-1] if ends else 0
    if final:
        tail = text.rstrip()
        if re.search(r"[.!?\u2026][\"'\u201d\u2019)\]]*$", tail) and not (
            _LIST_MARKER.search(tail) or _ABBREVIATION.search(tail)
        ):
            end = max(end, len(tail))
    return end


def trim_to_sentence(text: str) -> str:
    """The text up to its last complete sentence, stripped; the whole (stripped) text when it
    has no sentence end, so the result is never empty unless the text was."""
    end = last_sentence_end(text, final=True)
    kept = text[:end].strip() if end else ""
    return kept or text.strip()
