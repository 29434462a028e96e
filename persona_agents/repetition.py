"""Loops at the level a reader sees them: runs of words that come back again and again.

Words: the text lower-cased (curly apostrophes made straight) split into runs of letters and
digits; an apostrophe inside a word stays ("it's"), every other character separates words
("wake-up call." gives "wake", "up", "call"), so case, punctuation and stray symbols never hide
a repeat. A run is ``RUN_WORDS`` (4) consecutive words. A reply loops when one run starts at
``LOOP_TIMES`` (3) or more word positions (overlapping starts count: "no no no no no no"
repeats "no no no no" three times). That is the quality eval's loop metric (:func:`repeated_run`).

The decoding guard (:class:`WordRunGuard`) refuses the token that would complete a run once too
often. It watches runs of ``GUARD_RUN_WORDS`` (3) words: a phrase of three words said a third time
("What's the plan? What's the plan? What's the plan?") reads as a loop too, and every four-word
run contains a three-word one, so a reply it lets through never loops by the metric's definition.
It also lets no run of ``ECHO_RUN_WORDS`` (5) words come back at all: a reply that says each
sentence twice ("I'm so proud of you. I'm so proud of you.") keeps every three-word run to two.
"""

from __future__ import annotations

import re
from collections import Counter

RUN_WORDS = 4
LOOP_TIMES = 3
GUARD_RUN_WORDS = 3
ECHO_RUN_WORDS = 5
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_INSIDE_WORD = re.compile(r"(?:[^\W_]|'|\ufffd)$")  # "\ufffd": a multi-byte character still arriving


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'").replace("\u2018", "'"))


def repeated_run(text: str, n: int = RUN_WORDS, times: int = LOOP_TIMES) -> str | None:
    """The first n-word run (by first occurrence) that starts ``times`` times or more, or None."""
    ws = words(text)
    runs = [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    counts = Counter(runs)
    return next((" ".join(run) for run in runs if counts[run] >= times), None)


def starts_word_char(text: str) -> bool:
    """Does ``text`` start with a character that continues a word (a letter, digit or apostrophe)?"""
    return bool(text) and (text[0] == "'" or bool(_WORD.match(text[0])))


def complete_words(text: str, *, final: bool) -> list[str]:
    """The words of ``text`` that are finished: all of them when the text is final or ends
    between words, else all but the last (it may still grow: "it" -> "item")."""
    ws = words(text)
    return ws if final or not _INSIDE_WORD.search(text) else ws[:-1]


def most_run_repeats(ws: list[str], n: int = RUN_WORDS) -> int:
    """How often the most frequent n-word run of ``ws`` occurs (0 for fewer than n words)."""
    counts = Counter(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))
    return max(counts.values(), default=0)


class WordRunGuard:
    """Refuses text in which a run of ``run_words`` words occurs more than ``limit`` times, or a
    run of ``echo_words`` words comes back at all (0: no such rule).

    Decoding asks it three things: which words may not start next (:meth:`forbidden_next`: the
    run is stopped before its last word, so the model says something else rather than
    mangling a word); whether ending the word in progress would complete such a run
    (:meth:`ending_refused`, for a word the model started anyway); and whether the reply, with a
    candidate token appended, holds such a run (:meth:`refuses`; only finished words count).
    """

    def __init__(self, limit: int, run_words: int = GUARD_RUN_WORDS, echo_words: int = ECHO_RUN_WORDS) -> None:
        if limit < 1:
            raise ValueError(f"the word-run limit must be at least 1, got {limit}")
        if run_words < 2:
            raise ValueError(f"a run must be at least 2 words, got {run_words}")
        if echo_words and echo_words <= run_words:
            raise ValueError(f"echo_words must be longer than run_words ({run_words}) or 0, got {echo_words}")
        self.limit = limit
        self.n = run_words
        # (run length, how often a run of that length may occur)
        self.rules: tuple[tuple[int, int], ...] = ((run_words, limit),) + (((echo_words, 1),) if echo_words else ())

    def refuses(self, text: str, *, final: bool) -> bool:
        """Does ``text`` (what the reply would read) hold a run once too often?"""
        ws = complete_words(text, final=final)
        return any(most_run_repeats(ws, n) > times for n, times in self.rules)

    def forbidden_next(self, text: str) -> tuple[set[str], bool]:
        """Words that may not come next, and whether the text ends inside a word.

        The next word completes a run with the last ``n - 1`` words (the word in progress
        counts as finished: the next word can only start once it ends); a run that already
        occurs as often as its rule allows may not occur again, so its last word may not start
        here."""
        inside = bool(_INSIDE_WORD.search(text))
        ws = words(text)
        forbidden: set[str] = set()
        for n, times in self.rules:
            head = tuple(ws[-(n - 1) :])
            if len(head) < n - 1:
                continue
            counts = Counter(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))
            forbidden |= {run[-1] for run, seen in counts.items() if run[:-1] == head and seen >= times}
        return forbidden, inside

    def ending_refused(self, text: str) -> bool:
        """Would ending the word in progress now complete a run once too often?"""
        if not _INSIDE_WORD.search(text):
            return False
        ws = words(text)
        done = ws[:-1]
        for n, times in self.rules:
            if len(ws) < n:
                continue
            run = tuple(ws[-n:])
            seen = sum(tuple(done[i : i + n]) == run for i in range(len(done) - n + 1))
            if seen + 1 > times:
                return True
        return False
