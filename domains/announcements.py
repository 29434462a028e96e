"""Events, offers and plans a draft announces for the business, and whether anyone vouched for them.

A small model answering a happy review likes to make up the business's news: "we've got a
special tasting menu coming", "join us for our wine night on Friday", "our new loyalty
programme starts soon", "next month we're launching a summer range", "we'll be back in 2
weeks". A reader turns up for the band, asks for the new dish, waits for the launch. Found by
code, sentence by sentence (English only, like ``domains.stated_facts``). A sentence announces
when it speaks for the business (we/our/us, "the restaurant", "there's", or an invitation:
"join us", "come along", "don't miss", "look out for") and

- names something the business would offer or hold, not the reader's own ("your special
  night"): a menu, dish or tasting, an event, party, band or class, a sale, promotion or
  giveaway, a surprise; and says it is news: a time ("on Friday", "next month", "in two weeks",
  "this summer", "at 8pm", a date), a novelty just before it ("new", "special", "upcoming",
  "seasonal") or an announcing verb ("launching", "coming soon", "starts on", "lined up", "in
  the works"). Words that are also ordinary ("offer", "sale", "range", "collection", "store")
  count only after "our", "the", "a" or a novelty word, and a time alone does not make them
  news ("thanks for visiting our shop, we hope you'll be back next week"); a theme night, live
  music, a loyalty programme or a giveaway is news whenever the business names it; or
- puts a plan of the business's own at a time: "we're reopening next month", "we'll be back
  in 2 weeks", "we will be hosting a party on the 14th of May".

An invitation with no event ("we hope to see you again soon", "we look forward to welcoming
you back"), passing feedback on, apologies and thanks name nothing offered and are not news.

An announcement is vouched for when every term it states (each thing offered, each plan, each
time; normalised: "menus" = "menu", "Fridays" = "friday", "two weeks" = "2 week") also appears
in the pack's facts or in the person's own message ("see you at the quiz night on Thursday!").
"""

from __future__ import annotations

import re

from domains.stated_facts import StatedFact, policy_terms

ANNOUNCEMENT = "announcement"

_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_SEASON = r"(?:spring|summer|autumn|fall|winter|christmas|xmas|easter|halloween|new year|the holidays|festive season)"
_PERIOD = rf"(?:week|weekend|month|year|season|{_SEASON}|{_WEEKDAY})"
_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"

# Who is speaking: the business in its own voice, or an invitation to something it holds.
_SPEAKS_FOR_BUSINESS = re.compile(
    r"\b(?:we|we're|we've|we'll|we'd|our|ours|us)\b"
    r"|\b(?:the|this) (?:restaurant|bar|pub|cafe|bistro|bakery|shop|store|hotel|venue|kitchen|chef|business"
    r"|company|brand)\b"
    r"|\b(?:join|don't miss|do not miss|come (?:along|and|by|down|over)|pop (?:in|by|along|down)|look out for"
    r"|keep an eye out|watch this space|stay tuned|mark your calendars?|save the date|book (?:now|early|ahead)"
    r"|bring (?:your|the|a) (?:friends|family|kids|partner)|see you there)\b"
    r"|\bthere(?:'s| is| are|'ll be| will be)\b",
    re.IGNORECASE,
)
_THEME = (r"wine|beer|gin|whisky|cocktail|quiz|trivia|jazz|karaoke|comedy|games?|music|movie|film|cinema|tasting"
          r"|curry|steak|burger|taco|pizza|pasta|open[- ]mic|bingo|salsa|dance|paint|student|ladies'?")
# News whenever the business names them.
_ALWAYS_NEWS = (
    rf"(?:{_THEME}) nights?|live (?:music|jazz|bands?|entertainment|sports?|comedy|acoustic sets?|djs?)"
    r"|(?:loyalty|rewards?|membership|vip) (?:programmes?|programs?|schemes?|cards?|clubs?)"
    r"|giveaways?|raffles?|prize draws?|happy hours?|pop-ups?|open days?|open house|buy one,? get one(?: free)?"
    r"|bogof|(?:2|two)[- ]for[- ](?:1|one)"
)
# Offered or held: news with a time, an announcing verb or a novelty word before them.
_HELD = (
    r"menus?|specials|dish(?:es)?|desserts?|cocktails?|tastings?|flavou?rs?|brunch(?:es)?|buffets?|festivals?|concerts?"
    r"|gigs?|bands?|djs?|quiz(?:zes)?|workshops?|masterclass(?:es)?|tours?|exhibitions?|screenings?|fundraisers?"
    r"|part(?:y|ies)|celebrations?|promotions?|promos?|reopenings?|renovations?|refurbishments?|makeovers?"
    r"|surprises?|treats?"
)
# Ordinary words too ("a fair deal", "the sales team", "collection of the parcel"): offered only
# after a determiner or a novelty word, and never followed by "of".
_ALSO_ORDINARY = (
    r"offers?|deals?|sales?|events?|shows?|classes|courses|collections?|ranges?|editions?|launch(?:es)?|openings?"
    r"|locations?|branch(?:es)?|venues?|outlets?|shops?|stores?|plans|competitions?|markets?|products?"
)
_OFFERED = re.compile(
    rf"\b(?:(?P<always>{_ALWAYS_NEWS})|(?P<held>{_HELD})|(?P<ordinary>{_ALSO_ORDINARY})(?! of\b| team| staff| assistant))\b",
    re.IGNORECASE,
)
_NOVELTY = (r"new|brand[- ]new|special|upcoming|exclusive|limited[- ](?:edition|time|run)|seasonal|latest|first[- ]ever"
            rf"|one[- ]off|exciting|grand|{_SEASON}(?:'s)?|valentine'?s?|mother'?s day|father'?s day")
_NOVELTY_BEFORE = re.compile(rf"\b(?:{_NOVELTY})\b(?:\s+[\w'-]+){{0,2}}\s*$", re.IGNORECASE)
_DETERMINER_BEFORE = re.compile(rf"\b(?:our|the|this|these|a|an|{_NOVELTY})\s+(?:[\w'-]+\s+)?$", re.IGNORECASE)
# "your special night", "their new store": the reader's own, not the business's.
_SOMEONE_ELSES = re.compile(r"\b(?:your|their|his|her|my)\s+(?:[\w'-]+\s+){0,2}$", re.IGNORECASE)
_ANNOUNCING = re.compile(
    r"\b(?:launch(?:es|ed|ing)?|introduc(?:e|es|ed|ing)|roll(?:s|ing)? out|unveil(?:s|ed|ing)?|debut(?:s|ing)?"
    r"|kick(?:s|ing)? off|coming (?:soon|up|back|next)|is coming|are coming|on (?:its|their|the) way"
    r"|in the works|in the pipeline|in store for|lined up|(?<!as )planned|planning|announc(?:e|es|ed|ing)"
    r"|(?:starts?|starting|begins?|beginning|opens?|opening|returns?|returning) (?:soon|shortly|on|from|next|this|every)"
    r"|bring(?:s|ing)? back|available (?:soon|from|next|this|on)|ends? (?:on|this|next|soon)|runs? (?:until|till|through))\b",
    re.IGNORECASE,
)
# Times ahead: weekdays, relative times, "in two weeks"; clock times and dates come from ``policy_terms``.
_WHEN = re.compile(
    rf"\b(?P<rel>tonight|tomorrow|(?:this|next|later this|each|every|from|on|until|starting) {_PERIOD}s?)\b"
    rf"|\b(?P<day>{_WEEKDAY})s?\b"
    rf"|\b(?:in|this|next|from|until|by|starting|early|late|mid)[- ](?P<month>{_MONTH})\b"
    r"|\bin the (?:coming|next) (?:few )?(?P<ahead>days|weeks|months)\b"
    r"|\b(?P<span>in (?:a|an|one|two|three|four|five|six|\d+|a few|a couple of) (?:days?|weeks?|months?))\b",
    re.IGNORECASE,
)
# The business's own plans at a time: "we're reopening next month", "we'll be back in 2 weeks".
# No other subject in between ("we hope you'll be back"), nor the reader as object ("host you").
_PLAN = re.compile(
    r"\b(?:we|we're|we'll|we are|we will|we have|we've|the (?:restaurant|bar|shop|store|hotel|venue|cafe|kitchen))"
    r"(?:\s+(?!you\b|you'll\b|you're\b|they\b|i\b|he\b|she\b)[\w']+){0,3}?\s+"
    r"(?P<verb>reopen|open|launch|relaunch|introduc|unveil|host|throw|celebrat|debut|be back|be closed|expand"
    r"|renovat|refurbish)(?:e|es|s|ed|ing)?\b(?! (?:you|your|in touch|to you|with you)\b)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r".+?(?:[.!?]+(?=\s|$)|\n|$)")


def _singular(word: str) -> str:
    word = word.lower().replace("-", " ")
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("zzes"):
        return word[:-3]
    return word if word.endswith(("ss", "'s")) else word.removesuffix("s")


def _term(thing: str) -> str:
    return "offer:" + " ".join(_singular(w) for w in thing.split())


def _offered(sentence: str) -> tuple[list[str], bool, bool]:
    """What ``sentence`` offers or holds, as terms (the reader's own left out); whether one of them
    is news by itself (a theme night, a novelty word just before it); whether one is held (a
    menu, a party), which a time makes news, unlike an ordinary word ("our shop ... next week")."""
    terms: list[str] = []
    news = held = False
    for m in _OFFERED.finditer(sentence):
        before = sentence[max(0, m.start() - 40) : m.start()]
        if _SOMEONE_ELSES.search(before):
            continue
        if m.group("ordinary") and not _DETERMINER_BEFORE.search(before):
            continue
        terms.append(_term(m.group(0)))
        news = news or bool(m.group("always")) or bool(_NOVELTY_BEFORE.search(before))
        held = held or bool(m.group("held"))
    return terms, news, held


def _plans(text: str) -> list[str]:
    return ["plan:" + m.group("verb").lower() for m in _PLAN.finditer(text)]


def time_terms(text: str) -> set[str]:
    """The times ahead a text states: weekdays ("day:friday"), months ("month:june"), relative
    times ("when:next month"), spans ("time:2 week", as ``policy_terms`` writes durations), clock
    times and dates."""
    terms = {t for t in policy_terms(text) if t.startswith(("clock:", "date:"))}
    for m in _WHEN.finditer(text):
        if m.group("day"):
            terms.add("day:" + m.group("day").lower())
        elif m.group("month"):
            terms.add("month:" + m.group("month").lower())
        elif m.group("ahead"):
            terms.add("when:coming " + m.group("ahead").lower())
        elif m.group("span"):
            terms |= {t for t in policy_terms(m.group("span")) if t.startswith("time:")} or {"when:" + m.group("span").lower()}
        else:
            rel = m.group("rel").lower()
            day = re.search(_WEEKDAY, rel)
            terms.add("day:" + day.group(0) if day else "when:" + re.sub(r"^(?:each|every|from|on|until|starting) ", "", rel))
    return terms


def announcement_terms(text: str) -> set[str]:
    """Every offered thing, plan and time ``text`` mentions, announced or not: what vouches."""
    return {_term(m.group(0)) for m in _OFFERED.finditer(text)} | set(_plans(text)) | time_terms(text)


def announcements(text: str) -> list[StatedFact]:
    """Every sentence of ``text`` (already ``fold``-ed) announcing an event, an offer or a dated plan."""
    found: list[StatedFact] = []
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        if not sentence or not _SPEAKS_FOR_BUSINESS.search(sentence):
            continue
        when = time_terms(sentence)
        offered, news, held = _offered(sentence)
        plans = _plans(sentence) if when else []
        if (offered and (news or (held and when) or _ANNOUNCING.search(sentence))) or plans:
            found.append(StatedFact(ANNOUNCEMENT, sentence, frozenset([*offered, *plans, *when])))
    return found


def unvouched_announcements(text: str, known: frozenset[str]) -> list[StatedFact]:
    """The announcements of ``text`` with a term nobody vouched for (``known``: the
    ``announcement_terms`` of the pack's facts and of the person's message)."""
    return [fact for fact in announcements(text) if not fact.terms <= known]
