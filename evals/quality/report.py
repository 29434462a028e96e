"""Showing a quality result: the table on stdout, the markdown report and the figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evals.common import fmt, md_table, pyplot, text_table
from evals.quality.checks import CS_CHECKS
from evals.quality.judge import ARMS, CRITERIA


def _summary_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    keys = [k for k in result["arms"]["persona_fuse"] if k != "n" and not k.endswith("_n")]
    return ["metric", *ARMS], [[k, *[result["arms"][arm].get(k) for arm in ARMS]] for k in keys]


def _judge_lines(result: Mapping[str, Any]) -> list[str]:
    if "judge_scores" in result:
        per = result["judge_scores"]["per_arm"]
        return [f"judge {result['judge']} (1-10): " + "; ".join(
            f"{arm}: overall {fmt(per[arm]['overall'], 2)}" for arm in ARMS)] + [
            f"  {c:<24}" + "  ".join(f"{arm} {fmt(per[arm][c], 2)}" for arm in ARMS) for c in CRITERIA]
    if "pairwise" in result:
        p = result["pairwise"]
        return [f"judge {result['judge']}: persona_fuse vs base win rate {fmt(p['win_rate'])} "
                f"(wins {p['wins']}, losses {p['losses']}, ties/split {p['ties']}, n {p['n']}, "
                f"position consistency {fmt(p['position_consistency'])})"]
    return [str(result["judge"])]


def print_table(result: Mapping[str, Any]) -> None:
    print(f"quality  domain={result['domain']}  n={result['n']}  max_tokens={result['max_tokens']}"
          f"{'  (saved replies re-scored)' if result.get('rescored') else ''}")
    headers, rows = _summary_rows(result)
    print(text_table(headers, rows))
    for line in _judge_lines(result):
        print(line)


def markdown(result: Mapping[str, Any]) -> str:
    headers, rows = _summary_rows(result)
    lines = [f"# Quality eval: {result['domain']}", "",
             f"n = {result['n']} rows; replies of up to {result['max_tokens']} new tokens (greedy; decoding "
             f"{result.get('decoding', 'not recorded')}); "
             "arms: persona_fuse (routed experts) and base (no experts), same system prompt.", "",
             md_table(headers, rows), "", "## Judge", "", *_judge_lines(result), "", "## Replies", ""]
    for row in result["rows"][:12]:
        lines.append(f"**{row['id']}**{' (' + str(row['rating']) + '/5)' if 'rating' in row else ''}: {row['text']}")
        for arm in ARMS:
            lines.append(f"- *{arm}*: {row['arms'][arm]['reply']}")
        lines.append("")
    return "\n".join(lines)


def figures(result: Mapping[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    if result["domain"] == "counseling":
        keys = ["reflection_rate", "open_question_rate", "unsafe_rate"]
    else:
        keys = [f"{k}_rate" for k in CS_CHECKS] + ["all_pass_rate"]
    keys += ["repeated_run_rate", "ends_complete_rate"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    for k, (arm, colour) in enumerate(zip(ARMS, ("#c44e52", "#8c8c8c"))):
        xs = [i + (k - 0.5) * width for i in range(len(keys))]
        ax1.bar(xs, [result["arms"][arm][key] or 0.0 for key in keys], width, label=arm, color=colour)
    ax1.set_xticks(range(len(keys)), [k.removesuffix("_rate") for k in keys], rotation=25, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("share of replies")
    ax1.set_title(f"{result['domain']}: deterministic checks")
    ax1.legend(fontsize=8)
    lengths = {arm: [r["arms"][arm]["checks"]["length_words"] for r in result["rows"]] for arm in ARMS}
    ax2.hist([lengths[a] for a in ARMS], bins=10, label=list(ARMS), color=["#c44e52", "#8c8c8c"])
    ax2.set_xlabel("reply length (words)")
    ax2.set_title(_judge_lines(result)[0][:70], fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return {"checks": fig}


def print_both(result: Mapping[str, Any]) -> None:
    """The table of a run over both domains, then the headline."""
    for domain_result in result["domains"].values():
        print_table(domain_result)
        print()
    print("headline (persona_fuse / base):")
    for domain, arms in result["headline"].items():
        for key in arms["persona_fuse"]:
            print(f"  {domain:<17}{key:<28}{fmt(arms['persona_fuse'][key])} / {fmt(arms['base'][key])}")
