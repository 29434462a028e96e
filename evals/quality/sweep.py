"""How often replies loop across a sweep of settings, under several decodings.

``python -m evals.quality.sweep [--messages 12] [--max-tokens 100] [--json] [--out DIR]``

Messages: the first half from each domain's quality rows, each with its domain's system prompt
(as the graphs send them). Settings: temperatures (0.0 and 0.8) x personas (routed, base, two
one-hot poles), each sampled row seeded by its position. Decodings compared:

- ``raw``: the old engine and chat-model defaults (penalty 1.0, no n-gram rule, no sentence cut);
- ``penalty_only``: what the graphs used to set (repetition penalty 1.15 alone);
- ``token_ngrams``: no repeated run of four tokens (``no_repeat_ngram_size=4``) alone;
- ``defaults``: ``GenerationParams``' reply defaults (the word-run guard and the sentence cut).

For each decoding: the share of replies with a repeated four-word run
(``persona_agents.repetition``), the same for a three-word run (the phrase the guard watches), the share
with a five-word run said twice, and the share that end on a complete sentence.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.common import (
    DATA_DIR,
    DataError,
    emit,
    fail,
    md_table,
    progress,
    pyplot,
    stdout_to_stderr,
    text_table,
    write_report,
)
from evals.quality.data import load_rows
from evals.quality.run import conversation
from persona_agents.repetition import ECHO_RUN_WORDS, GUARD_RUN_WORDS, repeated_run

TEMPERATURES = (0.0, 0.8)
PERSONAS: tuple[str, ...] = ("routed", "base", "extraversion_high", "neuroticism_high")


def decodings(max_tokens: int) -> dict[str, Any]:
    from persona_agents.generation import GenerationParams

    return {
        "raw": GenerationParams.raw(max_new_tokens=max_tokens),
        "penalty_only": GenerationParams.raw(max_new_tokens=max_tokens, repetition_penalty=1.15),
        "token_ngrams": GenerationParams.raw(max_new_tokens=max_tokens, no_repeat_ngram_size=4),
        "defaults": GenerationParams(max_new_tokens=max_tokens),
    }


def sweep_messages(count: int) -> list[list[dict[str, str]]]:
    """``count`` conversations, half counseling and half reviews, from the quality rows."""
    half = (count + 1) // 2
    conversations = [conversation("counseling", r) for r in load_rows(DATA_DIR / "quality_counseling.jsonl", "counseling")[:half]]
    reviews = load_rows(DATA_DIR / "quality_customer_service.jsonl", "customer_service")[: count - half]
    return conversations + [conversation("customer_service", r) for r in reviews]


def _weights(persona: str) -> Any:
    from persona_agents.engine import BASE_ONLY
    from persona_agents.traits import PersonaWeights

    if persona == "routed":
        return None
    return BASE_ONLY if persona == "base" else PersonaWeights.one_hot(persona)


def run_sweep(engine: Any, messages: Sequence[Any], params: Mapping[str, Any], *,
              temperatures: Sequence[float] = TEMPERATURES, personas: Sequence[str] = PERSONAS) -> dict[str, Any]:
    """Every message under every setting, once per decoding; summaries and the looping replies."""
    import dataclasses

    from persona_agents.sentences import last_sentence_end

    jobs = [(name, t, p, i) for name in params for t in temperatures for p in personas for i in range(len(messages))]
    requests = []
    for name, temperature, persona, i in jobs:
        chosen = dataclasses.replace(params[name], temperature=temperature, seed=i if temperature > 0 else None)
        requests.append(engine.submit(engine.prepare(messages[i], _weights(persona), chosen)))
    texts = [r.future.result() for r in progress(requests, desc="sweep replies", unit="reply")]
    out: dict[str, Any] = {"messages": len(messages), "temperatures": list(temperatures), "personas": list(personas),
                           "decodings": {}}
    for name in params:
        rows = [(job, g.text) for job, g in zip(jobs, texts) if job[0] == name]
        loops = [(job, text, run) for job, text in rows if (run := repeated_run(text)) is not None]
        complete = [bool(t.strip()) and last_sentence_end(t.strip(), final=True) == len(t.strip()) for _, t in rows]
        out["decodings"][name] = {
            "settings": {k: v for k, v in dataclasses.asdict(params[name]).items()
                         if k in ("max_new_tokens", "repetition_penalty", "no_repeat_ngram_size", "word_run_limit",
                                  "end_at_sentence")},
            "n": len(rows),
            "repeated_run_replies": len(loops),
            "repeated_run_share": len(loops) / len(rows),
            "repeated_phrase_share": sum(repeated_run(t, n=GUARD_RUN_WORDS) is not None for _, t in rows) / len(rows),
            "echoed_run_share": sum(repeated_run(t, n=ECHO_RUN_WORDS, times=2) is not None for _, t in rows) / len(rows),
            "ends_complete_share": sum(complete) / len(rows),
            "mean_words": sum(len(t.split()) for _, t in rows) / len(rows),
            "loops": [{"temperature": j[1], "persona": j[2], "message": j[3], "run": run, "reply": text}
                      for j, text, run in loops],
        }
    return out


def _table(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["decoding", "n", "repeated-run replies", "share", "3-word share", "5-word echo share", "ends complete",
               "mean words"]
    rows = [[name, d["n"], d["repeated_run_replies"], d["repeated_run_share"], d["repeated_phrase_share"],
             d["echoed_run_share"], d["ends_complete_share"], d["mean_words"]]
            for name, d in result["decodings"].items()]
    return headers, rows


def print_result(result: Mapping[str, Any]) -> None:
    print(f"loop sweep: {result['messages']} messages x temperatures {result['temperatures']} x personas "
          f"{result['personas']}, {result['max_tokens']} new tokens")
    print(text_table(*_table(result)))
    for name, d in result["decodings"].items():
        for loop in d["loops"][:3]:
            print(f"  [{name}] t={loop['temperature']} {loop['persona']}: '{loop['run']}' in {loop['reply'][:120]!r}")


def markdown(result: Mapping[str, Any]) -> str:
    lines = ["# Loop sweep", "", f"{result['messages']} messages x temperatures {result['temperatures']} x personas "
             f"{', '.join(result['personas'])}; {result['max_tokens']} new tokens per reply.", "", md_table(*_table(result)), ""]
    for name, d in result["decodings"].items():
        lines += [f"## {name}: {d['repeated_run_replies']} looping replies", ""]
        lines += [f"- t={x['temperature']} {x['persona']}: *{x['run']}*: {x['reply']}" for x in d["loops"][:8]]
        lines.append("")
    return "\n".join(lines)


def figure(result: Mapping[str, Any]) -> Any:
    plt = pyplot()
    names = list(result["decodings"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [result["decodings"][n]["repeated_run_share"] for n in names], 0.4,
           label="repeated 4-word run", color="#c44e52")
    ax.bar([x + 0.2 for x in xs], [result["decodings"][n]["ends_complete_share"] for n in names], 0.4,
           label="ends on a complete sentence", color="#4c72b0")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of replies")
    ax.set_title(f"loop sweep, n={result['decodings'][names[0]]['n']} replies per decoding")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.quality.sweep", description="Repeated runs across a sweep")
    parser.add_argument("--messages", type=int, default=12, help="conversations, half from each domain (2-44)")
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and a PNG into this folder")
    args = parser.parse_args(argv)
    if not 2 <= args.messages <= 44 or args.max_tokens < 1:
        return fail("--messages must be within 2..44 and --max-tokens positive")
    try:
        messages = sweep_messages(args.messages)
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        from persona_agents.engine import PersonaFuseEngine

        engine = PersonaFuseEngine.load()
        result = {"model": engine.model_name, "max_tokens": args.max_tokens,
                  **run_sweep(engine, messages, decodings(args.max_tokens))}
        if args.out:
            write_report(args.out, "loop_sweep", result, markdown(result), {"loops": figure(result)})
    emit(result, args.json, print_result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
