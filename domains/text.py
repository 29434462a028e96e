"""Input validation and the matching form of text that every screen and check reads.

Cleaning (broken unicode, mojibake, control characters) is ``persona_agents.messages.clean_text``,
the project's one cleaner. On top of it, ``fold`` turns look-alike letters into ASCII (Cyrillic
"і" in "kіll", fullwidth "ＫＩＬＬ", accents) and ``normalise`` undoes what people type to get
past filters ("k i l l", "k1ll mys3lf", "s.u.i.c.i.d.e", "unalive", "kms", "diiieee"), giving
plain lowercase text that the rules and the classifiers both see.
"""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii

from persona_agents.messages import MAX_MESSAGE_CHARS, clean_text


class InvalidInputError(ValueError):
    """User text that cannot be screened (wrong type, empty, too long)."""


def validate_user_text(text: object, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """Return ``text`` cleaned (``clean_text``), or raise ``InvalidInputError``."""
    if not isinstance(text, str):
        raise InvalidInputError(f"user text must be a str, got {type(text).__name__}")
    repaired = clean_text(text)
    if not repaired.strip():
        raise InvalidInputError("user text is empty or whitespace only")
    if len(repaired) > max_chars:
        raise InvalidInputError(
            f"user text is {len(repaired)} characters; the limit is {max_chars}"
        )
    return repaired


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
# Digits followed by a unit or ordinal are quantities, not leetspeak ("10mg", "3am", "2nd").
_QUANTITY = re.compile(
    r"^\d+(?:[.,]\d+)?(?:mg|mcg|ml|g|kg|lbs?|am|pm|st|nd|rd|th|k|x|h|hrs?|mins?|s|yo|yrs?|m|ft|km)?$"
)
_LEET_TOKEN = re.compile(r"[a-z0-9@$!]+")
# Three or more single letters with the same separator between them: "k i l l", "s.u.i.c.i.d.e",
# "d-i-e", "k. i. l. l.". Ordinary text almost never has three one-letter words in a row.
# Whole phrases spelled out, words set apart by two or more spaces: "i w a n t  t o  d i e".
_SPACED_PHRASE = re.compile(r"\b[a-z](?: [a-z])+(?: {2,}[a-z](?: [a-z])*)+\b")
_SPACED_LETTERS = re.compile(r"\b[a-z](?P<sep>[ .\-_*/]{1,2})[a-z](?:(?P=sep)[a-z])+\b\.?")
_STAR_IN_WORD = re.compile(r"(?<=[a-z])\*+(?=[a-z])")
_ONE_LETTER_WORDS = frozenset("ai")

# Community slang and self-censored spellings, mapped to the plain words the rules expect.
_SLANG: tuple[tuple[str, str], ...] = (
    (
        r"\bunalive\b(?!\s*(?:myself|yourself|himself|herself|themselves|me|him|her|them|my|your))",
        "die",
    ),
    (r"\bunalive(?:d)?\b", "kill"),
    (r"\bkil\b", "kill"),
    (r"\bi (?:sh|sh'd|shd)\b", "i self-harmed"),
    (r"\bunaliving\b", "killing"),
    (r"\bkms\b", "kill myself"),
    (r"\bkys\b", "kill yourself"),
    (r"\bsewer ?slide\b", "suicide"),
    (r"\bcommit sudoku\b", "commit suicide"),
    (r"\bself[- ]?delet(?:e|ing)\b", "kill myself"),
    (r"\bsu(?:i|y)?(?:c|s)i?(?:d|t)e\b", "suicide"),
    (r"\bsuicid(?:le|el)\b", "suicidal"),
    (r"\bs/h\b", "self-harm"),
    (r"\bself harm", "self-harm"),
    (r"\bod'?(?:ing)\b", "overdosing"),
    (r"\bod'?(?:e?d)\b", "overdosed"),
    (r"\bo\.?d\.?\b(?=\s+on\b)", "overdose"),
    (r"\bwanna\b", "want to"),
    (r"\bgonna\b", "going to"),
    (r"\bgotta\b", "got to"),
    (r"\bim\b", "i'm"),
    (r"\bive\b", "i've"),
    (r"\bid\b(?= (?:rather|be|never|like|love))", "i'd"),
    (r"\b(do|does|did|can|could|would|should|is|are|was|were|have|has|had|wo|ai)nt\b", r"\1n't"),
    (r"\bu\b", "you"),
    (r"\bur\b", "your"),
    (r"\br\b", "are"),
    (r"\brn\b", "right now"),
    (r"\b(?:cuz|coz|bc)\b", "because"),
    (r"\bppl\b", "people"),
    (r"\bmy self\b", "myself"),
    (r"\bkill ?my ?self\b", "kill myself"),
    (r"\bnoone\b", "no one"),
    (r"\bany ?more\b", "anymore"),
)
_SLANG_RE = tuple((re.compile(p), r) for p, r in _SLANG)


def fold(text: str) -> str:
    """Cleaned text with every character folded to ASCII; case and word spacing kept.

    NFKC first (fullwidth and compatibility forms), then anyascii, which maps look-alike letters
    from other scripts to the Latin letter they imitate and drops accents. Zero-width and other
    format characters, used to split words, become nothing; line breaks and tabs become spaces.
    """
    t = unicodedata.normalize("NFKC", clean_text(text))
    t = "".join(
        " " if ch in "\n\t" else ch for ch in t if unicodedata.category(ch) != "Cf"
    )
    return anyascii(t.translate(_APOSTROPHES))


def _decode_leet(match: re.Match[str]) -> str:
    token = match.group(0)
    # "!" and "$" at the edges are punctuation and prices, not letters.
    core = token.strip("!$")
    lead = token[: len(token) - len(token.lstrip("!$"))]
    trail = token[len(lead) + len(core) :]
    letters = sum(c.isalpha() for c in core)
    if letters < 2 or core.isalpha() or _QUANTITY.match(core):
        return token
    return lead + core.translate(_LEET) + trail


def collapse_repeats(text: str, keep: int = 2) -> str:
    """Runs of 3+ identical letters shrink to ``keep`` ("soooo" -> "soo" or "so")."""
    return re.sub(r"([a-z])\1{2,}", lambda m: m.group(1) * keep, text)


def _join_spaced(run: str, edge_words: bool) -> str:
    """ "k i l l" -> "kill". With ``edge_words``, a one-letter word at either end stays a word:
    "s u i c i d e a" -> "suicide a" ("about s u i c i d e a lot"), "i k i l l" -> "i kill"."""
    letters = re.sub(r"[^a-z]", "", run)
    if not edge_words or len(letters) < 5:
        return letters
    lead = letters[0] if letters[0] in _ONE_LETTER_WORDS and run[1:2] == " " else ""
    trail = letters[-1] if letters[-1] in _ONE_LETTER_WORDS and run[-2:-1] == " " else ""
    core = letters[len(lead) : len(letters) - len(trail)]
    return " ".join(part for part in (lead, core, trail) if part)


def _decode_leet_text(text: str) -> str:
    decoded = _LEET_TOKEN.sub(_decode_leet, text)
    if decoded != text:  # once a message is written in leetspeak, a lone "1" is the word "I"
        decoded = re.sub(r"(?<![\d.,])\b1\b(?![\d.,])", "i", decoded)
    return decoded


def normalise(text: str, *, keep_repeats: int = 2, edge_words: bool = False) -> str:
    """Lowercased, de-obfuscated text for matching. Not for display.

    ``edge_words`` reads a spelled-out run's first or last letter as a word of its own when it can
    be one ("a", "i"); ``normalised_variants`` tries both readings."""
    t = fold(text).casefold()
    t = _STAR_IN_WORD.sub("i", t)
    t = _SPACED_PHRASE.sub(lambda m: " ".join(w.replace(" ", "") for w in re.split(r" {2,}", m.group(0))), t)
    t = _SPACED_LETTERS.sub(lambda m: _join_spaced(m.group(0), edge_words), t)
    t = _decode_leet_text(t)
    t = collapse_repeats(t, keep_repeats)
    for pattern, repl in _SLANG_RE:
        t = pattern.sub(repl, t)
    return re.sub(r"[ ]{2,}", " ", t).strip()


def normalised_variants(text: str) -> list[str]:
    """Every reading the rules try: repeated letters kept at two or one ("killll" -> "kill",
    "dieeee" -> "die"), and spelled-out runs with or without one-letter words at their edges."""
    readings = (
        normalise(text, keep_repeats=keep, edge_words=edge) for edge in (False, True) for keep in (2, 1)
    )
    return list(dict.fromkeys(readings))


_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|\n+")


def sentences(text: str, min_words: int = 4) -> list[str]:
    """The sentences of ``text`` with at least ``min_words`` words; [] when it is one sentence.

    For reading a long text piece by piece: a warning sign in one sentence of an otherwise cheerful
    review weighs little in an embedding of the whole.
    """
    parts = [p for p in (p.strip() for p in _SENTENCE_BREAK.split(text)) if p]
    return [p for p in parts if len(p.split()) >= min_words] if len(parts) >= 2 else []
