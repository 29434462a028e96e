"""Per-run settings (``graphs.context.Context``): validation, environment fallback, and what they change."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import graphs.model
from domains.schema import crisis_reply, load_pack, pack_path
from graphs.context import Context, ContextError, context_of
from graphs.counseling import make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from graphs.model import CRISIS_PERSONA
from graphs.setup import GraphSetup
from persona_agents.chat_model import ChatPersonaFuse

CRISIS = "I want to kill myself tonight"
CALM = {"agreeableness_high": 0.6, "neuroticism_low": 0.4}
_ids = itertools.count()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCALE", "BASE_MODEL", "BUNDLE", "TEMPERATURE", "MAX_NEW_TOKENS", "PERSONA", "USER_ID",
                 "COUNSELING_PACK", "CUSTOMER_SERVICE_PACK", "PACK"):
        monkeypatch.delenv(f"PERSONA_AGENTS_{name}", raising=False)


def agent(**kwargs: Any) -> Any:
    return make_counseling_graph(GenericFakeChatModel(messages=itertools.repeat("I'm listening.")), InMemorySaver(), **kwargs)


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"ctx-{next(_ids)}"}}


# --- the dataclass ---------------------------------------------------------------------------------


def test_unset_fields_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_AGENTS_LOCALE", "en-GB")
    monkeypatch.setenv("PERSONA_AGENTS_TEMPERATURE", "0.3")
    monkeypatch.setenv("PERSONA_AGENTS_MAX_NEW_TOKENS", "48")
    monkeypatch.setenv("PERSONA_AGENTS_PERSONA", json.dumps(CALM))
    monkeypatch.setenv("PERSONA_AGENTS_USER_ID", "everyone")  # never used: it would merge people
    context = Context()
    assert (context.locale, context.temperature, context.max_new_tokens, context.persona) == ("en-GB", 0.3, 48, CALM)
    assert context.user_id is None
    explicit = Context(locale="en-US", temperature=0.0)
    assert (explicit.locale, explicit.temperature, explicit.max_new_tokens) == ("en-US", 0.0, 48)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 9.0}, "context.temperature must be a number from 0 to 5"),
        ({"temperature": "hot"}, "context.temperature"),
        ({"max_new_tokens": 0}, "context.max_new_tokens"),
        ({"max_new_tokens": True}, "context.max_new_tokens"),
        ({"locale": "x" * 100}, "context.locale"),
        ({"persona": {"cheerful": 1.0}}, "context.persona: unknown expert name(s): cheerful"),
        ({"persona": {"agreeableness_high": 0.5}}, "context.persona: persona weights must sum to 1"),
        ({"persona": [1, 2]}, "context.persona"),
        ({"user_id": "  "}, "context.user_id"),
        ({"bundle": ""}, "context.bundle"),
    ],
)
def test_bad_values_name_the_field(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ContextError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        Context(**fields)


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_AGENTS_MAX_NEW_TOKENS", "lots")
    with pytest.raises(ContextError, match="PERSONA_AGENTS_MAX_NEW_TOKENS='lots' is not a valid max_new_tokens"):
        Context()


def test_context_of_takes_a_context_a_dict_or_nothing() -> None:
    assert context_of(None) == Context()
    assert context_of({"locale": "en-GB"}).locale == "en-GB"
    with pytest.raises(ContextError, match="unknown context fields: colour"):
        context_of({"colour": "red"})
    with pytest.raises(ContextError, match="got list"):
        context_of([])


# --- what a run's context changes ------------------------------------------------------------------


def test_context_locale_is_the_default_and_the_input_s_locale_wins() -> None:
    graph = agent()
    result = graph.invoke({"messages": [CRISIS]}, thread(), context=Context(locale="en-GB"))
    assert result["locale"] == "en-GB" and result["messages"][-1].content == crisis_reply(load_pack("counseling"), "en-GB")
    result = graph.invoke({"messages": [CRISIS], "locale": "en-US"}, thread(), context=Context(locale="en-GB"))
    assert result["locale"] == "en-US"


def test_fixed_persona_replaces_the_router_but_not_the_crisis_persona() -> None:
    graph, cfg = agent(), thread()
    fixed = Context(persona=CALM)
    result = graph.invoke({"messages": ["I had a rough day"]}, cfg, context=fixed)
    assert result["persona"]["source"] == "context"
    assert result["persona"]["weights"]["agreeableness_high"] == pytest.approx(0.6)
    assert ("route", "context") in [(d["node"], d["decision"]) for d in result["decisions"]]
    graph.invoke({"messages": [CRISIS]}, cfg, context=fixed)
    graph.invoke(Command(resume={"message": "I'm here.", "return_to_agent": True}), cfg, context=fixed)
    result = graph.invoke({"messages": ["I made pasta for dinner"]}, cfg, context=fixed)
    assert "__interrupt__" not in result
    assert result["persona"]["source"] == "crisis_override" and result["persona"]["weights"] == CRISIS_PERSONA.as_dict()


def test_fixed_persona_in_the_review_agent() -> None:
    graph = make_customer_service_graph(GenericFakeChatModel(messages=itertools.repeat("Thanks!")), InMemorySaver())
    result = graph.invoke({"review": {"text": "Great coffee", "rating": 5}}, thread(), context=Context(persona=CALM))
    assert result["persona"]["source"] == "context"


def test_a_pack_from_a_file(tmp_path: Path) -> None:
    data = json.loads(pack_path("counseling").read_text(encoding="utf-8"))
    data["default_locale"] = "en-GB"
    path = tmp_path / "pack.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = agent().invoke({"messages": [CRISIS]}, thread(), context=Context(pack=str(path)))
    assert result["locale"] == "en-GB" and "Samaritans" in result["messages"][-1].content


@pytest.mark.parametrize(
    ("pack", "expected"),
    [("customer_service", "needs a 'counseling' pack, got 'customer_service'"), ("/no/such/pack.json", "no pack file at")],
)
def test_a_wrong_pack_refuses_the_input_and_names_the_field(pack: str, expected: str) -> None:
    graph, cfg = agent(), thread()
    graph.invoke({"messages": ["I had a rough day"]}, cfg)
    before = graph.get_state(cfg).values["messages"]
    result = graph.invoke({"messages": ["and today too"]}, cfg, context=Context(pack=pack))
    assert result["error"].startswith("context.pack:") and expected in result["error"]
    assert graph.get_state(cfg).values["messages"] == before


def test_pack_variable_per_domain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = json.loads(pack_path("counseling").read_text(encoding="utf-8"))
    data["default_locale"] = "en-GB"
    path = tmp_path / "pack.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv("PERSONA_AGENTS_COUNSELING_PACK", str(path))
    assert agent().invoke({"messages": ["hello"]}, thread())["locale"] == "en-GB"
    reviews = make_customer_service_graph(GenericFakeChatModel(messages=itertools.repeat("Thanks!")), InMemorySaver())
    assert reviews.invoke({"review": {"text": "Great coffee"}}, thread())["error"] is None  # not its variable


# --- which model a run uses ------------------------------------------------------------------------


def test_a_graph_s_own_model_is_used_whatever_the_context() -> None:
    own = GenericFakeChatModel(messages=iter([]))
    setup = GraphSetup("counseling", model=own)
    assert setup.model_for(Context(base_model="other", temperature=0.9)) is own


def test_context_settings_make_one_persona_fuse_model_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    monkeypatch.setattr(graphs.model, "default_model", lambda: made.append("default") or "the default")  # type: ignore[func-returns-value]
    setup = GraphSetup("counseling")
    warm = setup.model_for(Context(temperature=0.7, max_new_tokens=40, bundle="/bundles/b1"))
    assert isinstance(warm, ChatPersonaFuse)
    assert (warm.temperature, warm.max_tokens, warm.bundle, warm.model_name) == (0.7, 40, "/bundles/b1", "default")
    assert setup.model_for(Context(temperature=0.7, max_new_tokens=40, bundle="/bundles/b1")) is warm
    assert setup.model_for(Context(temperature=0.2, max_new_tokens=40, bundle="/bundles/b1")) is not warm
    assert setup.model_for(Context()) == setup.model_for(Context()) == "the default"
    assert made == ["default"]
    assert warm.engine is None  # nothing is loaded until the model is used


def test_a_turn_uses_the_context_s_model_and_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, ...]] = []

    def configured(*settings: Any) -> Any:
        made.append(settings)
        return GenericFakeChatModel(messages=itertools.repeat("a configured reply"))

    monkeypatch.setattr(graphs.model, "configured_model", configured)
    graph = make_counseling_graph(checkpointer=InMemorySaver())
    cfg, context = thread(), Context(temperature=0.5, max_new_tokens=30)
    for text in ("I had a rough day", "and today too"):
        assert graph.invoke({"messages": [text]}, cfg, context=context)["messages"][-1].content == "a configured reply"
    assert made == [(None, None, 0.5, 30)]
