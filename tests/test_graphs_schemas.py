"""The JSON schemas Studio shows: input (only a caller's fields), per-run context, output."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from graphs.context import Context
from graphs.counseling import graph as counseling
from graphs.customer_service import graph as customer_service

CONTEXT_FIELDS = {"locale", "pack", "base_model", "bundle", "temperature", "max_new_tokens", "persona", "user_id"}


def test_counseling_input_is_the_caller_s_fields_only() -> None:
    schema = counseling.get_input_jsonschema()
    assert set(schema["properties"]) == {"messages", "locale"}
    assert schema["properties"]["messages"]["type"] == "array"
    assert "New messages join the conversation only through intake" in schema["properties"]["messages"]["description"]


def test_review_input_is_the_review_only() -> None:
    schema = customer_service.get_input_jsonschema()
    assert set(schema["properties"]) == {"review"}
    review = schema["$defs"]["Review"]
    assert set(review["properties"]) == {"text", "rating", "product", "business", "channel", "locale"}


@pytest.mark.parametrize("graph", [counseling, customer_service], ids=["counseling", "customer_service"])
def test_context_schema_describes_every_field(graph: Any) -> None:
    schema = graph.get_context_jsonschema()
    assert set(schema["properties"]) == CONTEXT_FIELDS
    assert all(p.get("description") for p in schema["properties"].values())
    assert graph.builder.context_schema is Context


def test_output_schemas_leave_out_the_internals() -> None:
    assert set(counseling.get_output_jsonschema()["properties"]) == {
        "messages", "locale", "turn", "handoff", "risk", "persona", "error", "decisions"
    }
    out = customer_service.get_output_jsonschema()
    assert set(out["properties"]) == {
        "messages", "turn", "accepted_review", "analysis", "escalated", "persona", "draft", "check", "approval",
        "final_reply", "error", "decisions",
    }
    assert set(out["$defs"]["Approval"]["properties"]) == {"action", "reply", "policy_check_of_edit"}
    assert out["$defs"]["Approval"]["properties"]["action"]["enum"] == ["approve", "edit", "reject"]


@pytest.mark.parametrize("graph", [counseling, customer_service], ids=["counseling", "customer_service"])
def test_every_field_is_described(graph: Any) -> None:
    """The docstring under each field is its description (the state's own fields; the input's are above)."""
    for schema in (graph.get_input_jsonschema(), graph.get_output_jsonschema(), TypeAdapter(graph.builder.state_schema).json_schema()):
        own = schema["properties"]
        if schema["title"].endswith("State"):
            own = {k: v for k, v in own.items() if k not in graph.builder.input_schema.__annotations__}
        assert [k for k, p in own.items() if not p.get("description")] == []
