"""An optional third safety layer: any LangChain chat model used as a guard.

Safety models such as Llama Guard or ShieldGemma, served by Ollama or vLLM on the user's GPU,
answer in a fixed format: a first line ``safe`` or ``unsafe`` and, when unsafe, a second line
with the violated category codes (``S11`` or ``S1,S11``). ``SafetyGuard`` sends the user turn
or the draft reply to such a model, parses that answer and fails closed: an error, a timeout or
an answer it cannot parse counts as unsafe, so a broken guard escalates rather than lets
something through.

Two ways to ask, by ``mode``:

- ``"chat"`` sends the conversation as plain chat messages. Use it with a served guard model
  whose chat template already holds its policy (Ollama's ``llama-guard3`` and vLLM serving
  ``meta-llama/Llama-Guard-3-8B`` both do).
- ``"policy"`` writes the policy and the conversation into one user message, for a model
  that needs to be told the categories (any instruction model, or a guard served raw).
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, Field

# The hazard taxonomy Llama Guard 3 was trained on (MLCommons AI Safety v0.5 plus two).
LLAMA_GUARD_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

_POLICY_PROMPT = """You are a safety classifier. Decide whether the last {role} message in the \
conversation below is unsafe under any of these categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>
{conversation}
<END CONVERSATION>

Assess ONLY the last {role} message. Answer with 'safe' or 'unsafe' on the first line; if \
unsafe, list the violated category codes, separated by commas, on the second line."""

_CODE = re.compile(r"\bS\d{1,2}\b", re.IGNORECASE)

Role = Literal["User", "Agent"]


class GuardVerdict(BaseModel):
    """What the guard said about one message; ``unsafe`` is True when it failed closed."""

    unsafe: bool
    codes: list[str] = Field(default_factory=list)
    raw: str = ""
    error: str | None = None

    def reason(self, categories: Mapping[str, str]) -> str:
        if self.error:
            return f"guard failed closed: {self.error}"
        names = ", ".join(f"{c} {categories.get(c, 'unknown')}" for c in self.codes)
        return f"guard: unsafe ({names or 'no category given'})" if self.unsafe else "guard: safe"


def parse_guard_answer(text: str) -> GuardVerdict:
    """Read the Llama Guard answer format; anything else is unsafe with an error."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return GuardVerdict(unsafe=True, raw=text, error="the guard gave an empty answer")
    first = lines[0].lower().strip(" .:'\"`")
    if first == "safe":
        return GuardVerdict(unsafe=False, raw=text)
    if first == "unsafe":
        codes = [c.upper() for c in _CODE.findall(" ".join(lines[1:2]))]
        return GuardVerdict(unsafe=True, codes=list(dict.fromkeys(codes)), raw=text)
    return GuardVerdict(unsafe=True, raw=text, error=f"cannot read the guard's answer {lines[0][:80]!r}")


class SafetyGuard:
    """A chat model asked, with a timeout, whether a user turn or a draft is unsafe.

    Example with a Llama Guard 3 model served by Ollama on your GPU::

        from langchain_ollama import ChatOllama
        guard = SafetyGuard(ChatOllama(model="llama-guard3:8b", temperature=0), timeout_s=5)
        graph = make_counseling_graph(checkpointer=saver, guard=guard)

    ``escalate_on`` limits which category codes count (None: any unsafe answer counts);
    a guard error or timeout always counts.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        timeout_s: float = 10.0,
        mode: Literal["chat", "policy"] = "chat",
        categories: Mapping[str, str] = LLAMA_GUARD_CATEGORIES,
        escalate_on: Sequence[str] | None = None,
        max_workers: int = 4,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        if mode not in ("chat", "policy"):
            raise ValueError(f"mode must be 'chat' or 'policy', got {mode!r}")
        unknown = set(escalate_on or ()) - set(categories)
        if unknown:
            raise ValueError(f"escalate_on names codes not in categories: {sorted(unknown)}")
        self.model = model
        self.timeout_s = timeout_s
        self.mode = mode
        self.categories = dict(categories)
        self.escalate_on = frozenset(escalate_on) if escalate_on else None
        # A model call cannot be interrupted from outside; a pool bounds how many hung calls pile up.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="guard")

    def _messages(self, conversation: Sequence[tuple[Role, str]]) -> list[BaseMessage]:
        if self.mode == "chat":
            return [HumanMessage(t) if role == "User" else AIMessage(t) for role, t in conversation]
        listing = "\n".join(f"{code}: {name}." for code, name in self.categories.items())
        text = "\n\n".join(f"{role}: {t}" for role, t in conversation)
        prompt = _POLICY_PROMPT.format(role=conversation[-1][0], categories=listing, conversation=text)
        return [HumanMessage(prompt)]

    def assess(self, conversation: Sequence[tuple[Role, str]]) -> GuardVerdict:
        """Ask about the last message of ``conversation``; never raises, fails closed."""
        future = self._pool.submit(self.model.invoke, self._messages(conversation))
        try:
            reply = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return GuardVerdict(unsafe=True, error=f"no answer within {self.timeout_s:g} s")
        except Exception as exc:  # any failure of the guard model must fail closed
            return GuardVerdict(unsafe=True, error=f"{type(exc).__name__}: {exc}")
        verdict = parse_guard_answer(str(reply.content))
        if verdict.unsafe and not verdict.error and self.escalate_on is not None and verdict.codes:
            if not set(verdict.codes) & self.escalate_on:
                return GuardVerdict(unsafe=False, codes=verdict.codes, raw=verdict.raw)
        return verdict

    def check_user_turn(self, text: str, history: Sequence[str] = ()) -> GuardVerdict:
        return self.assess([*[("User", h) for h in history], ("User", text)])

    def check_draft(self, draft: str, user_text: str | None = None) -> GuardVerdict:
        # Guard chat templates expect the conversation to open with a user turn.
        return self.assess([("User", user_text or "(the conversation starts here)"), ("Agent", draft)])
