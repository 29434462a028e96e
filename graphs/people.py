"""What outlives a thread, per person: kept in a LangGraph store under ``("persona_agents",
"people", <user_id>)``.

Two items per person, both plain JSON:

    "profile"  {"locale": "en-GB"}
    "risk"     {"events": [{"at": ISO-8601 UTC, "thread_id", "turn", "category", "score"}, ...]}

The counseling screen is told a person was at risk (``ScreenRequest.prior_risk``) when the
newest risk event is at most ``RISK_MEMORY`` (30 days) old: long enough to cover the weeks
after a crisis, when risk stays high, and short enough that one hard night does not colour
every conversation for good. Only ``store.get`` and ``store.put`` are used, so any
``BaseStore`` works (``InMemoryStore``, ``PostgresStore``, the one ``langgraph dev`` brings).
Two threads of one person escalating at the same instant may keep only one of the two events
(read, append, write); either way the person has a recent event. The locale is a convenience: a
store error there is logged and ignored; the counseling screen treats an unreadable risk history
as earlier risk (it fails closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

log = logging.getLogger(__name__)

NAMESPACE = ("persona_agents", "people")
RISK_MEMORY = timedelta(days=30)
MAX_RISK_EVENTS = 50  # per person; the oldest go first
PROFILE, RISK = "profile", "risk"


class RememberedRisk(TypedDict):
    """One escalation, as the store keeps it."""

    at: str
    thread_id: str | None
    turn: int
    category: str
    score: float


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Person:
    """One person's items in the store."""

    store: BaseStore
    user_id: str

    @property
    def namespace(self) -> tuple[str, ...]:
        return (*NAMESPACE, self.user_id)

    def _value(self, key: str) -> dict[str, Any]:
        item = self.store.get(self.namespace, key)
        return dict(item.value) if item is not None and isinstance(item.value, dict) else {}

    def locale(self) -> str | None:
        """The locale the person used last, if any (None too when the store cannot be read)."""
        try:
            locale = self._value(PROFILE).get("locale")
        except Exception as exc:  # a convenience: a store outage must not hold up a message
            log.warning("could not read the locale of %r: %s", self.user_id, exc)
            return None
        return locale if isinstance(locale, str) else None

    def remember_locale(self, locale: str) -> None:
        """Keep the person's locale (best effort, like ``locale``)."""
        try:
            profile = self._value(PROFILE)
            if profile.get("locale") != locale:
                self.store.put(self.namespace, PROFILE, {**profile, "locale": locale})
        except Exception as exc:
            log.warning("could not store the locale of %r: %s", self.user_id, exc)

    def risk_events(self) -> list[RememberedRisk]:
        events = self._value(RISK).get("events")
        return [e for e in events if isinstance(e, dict) and _when(e) is not None] if isinstance(events, list) else []

    def record_risk(self, event: RememberedRisk) -> None:
        """Add an escalation (once per thread and turn, so a replayed node does not count twice)."""
        events = [e for e in self.risk_events() if (e.get("thread_id"), e.get("turn")) != (event["thread_id"], event["turn"])]
        events.append(event)
        self.store.put(self.namespace, RISK, {"events": events[-MAX_RISK_EVENTS:]})

    def recent_risk(self, now: datetime | None = None, window: timedelta = RISK_MEMORY) -> RememberedRisk | None:
        """The newest escalation within ``window`` of ``now``, else None."""
        now = now or now_utc()
        skew = timedelta(minutes=5)  # another machine's clock may run a little ahead
        recent = [e for e in self.risk_events() if now - window <= _when(e) <= now + skew]  # type: ignore[operator]
        return max(recent, key=lambda e: _when(e)) if recent else None  # type: ignore[arg-type,return-value]


def risk_event(thread_id: str | None, turn: int, category: str, score: float, at: datetime | None = None) -> RememberedRisk:
    return RememberedRisk(at=(at or now_utc()).isoformat(), thread_id=thread_id, turn=turn, category=category, score=float(score))


def _when(event: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(event.get("at")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
