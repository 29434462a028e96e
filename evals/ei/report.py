"""Presenting an evals.ei result: the terminal table, the markdown report and the plot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evals.common import fmt, md_table, pyplot, text_table
from evals.ei.summary import COMPARISONS, comparison_name
from evals.ei.systems import SYSTEM_LABELS, SYSTEMS

SYSTEM_COLOURS = {"base": "#8c8c8c", "prompt_only": "#4c72b0", "routed": "#55a868"}


def _acc(cell: Mapping[str, Any]) -> str:
    return f"{cell['accuracy']:.3f} [{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]"


def _diff(cell: Mapping[str, Any]) -> str:
    return f"{cell['diff']:+.3f} [{cell['ci_low']:+.2f}, {cell['ci_high']:+.2f}] p={cell['p_mcnemar']:.2f}"


def accuracy_rows(result: Mapping[str, Any], metric: str) -> list[list[Any]]:
    rows = []
    for name, s in result["sets"].items():
        rows.append([name, s["n"], fmt(s["chance"]), *(_acc(s["accuracy"][sys][metric]) for sys in SYSTEMS)])
    return rows


def difference_rows(result: Mapping[str, Any], metric: str) -> list[list[Any]]:
    return [[name, *(_diff(s["differences"][comparison_name(a, b)][metric]) for a, b in COMPARISONS)]
            for name, s in result["sets"].items()]


ACC_HEADERS = ["set", "n", "chance", *(SYSTEM_LABELS[s] for s in SYSTEMS)]
DIFF_HEADERS = ["set", *(f"{a} - {b}" for a, b in COMPARISONS)]


def print_table(result: Mapping[str, Any]) -> None:
    primary = result["primary_metric"]
    for metric in (primary, *(m for m in result["metrics"] if m != primary)):
        label = "primary" if metric == primary else "secondary"
        print(f"accuracy, option scored by {metric} log-prob ({label}), 95% Wilson CI:")
        print(text_table(ACC_HEADERS, accuracy_rows(result, metric)))
        print("differences, paired bootstrap 95% CI, exact McNemar p:")
        print(text_table(DIFF_HEADERS, difference_rows(result, metric)))
        print()
    rt = result["runtime"]
    print(f"{rt['items']} items x {len(SYSTEMS)} systems in {rt['scoring_seconds']:.0f} s "
          f"(+{rt['engine_load_seconds']:.0f} s loading)")


def markdown(result: Mapping[str, Any]) -> str:
    primary = result["primary_metric"]
    rt = result["runtime"]
    lines = [
        "# evals.ei: social-emotional intelligence, general ability and safety", "",
        f"Model `{result['model']}`, bundle `{result['bundle']}`. Every option is scored by its log-likelihood "
        f"given the chat-templated item; primary metric: **{primary}** log-prob per option token. "
        f"{rt['items']} items x {len(SYSTEMS)} systems in {rt['scoring_seconds']:.0f} s wall, {rt['scoring_cpu_seconds']:.0f} CPU-s, "
        f"on {rt['torch_threads']} CPU threads, batches of {rt['batch_size']} prompts, load average {fmt(rt['load_average_1min'], 1)} "
        f"at the end (+{rt['engine_load_seconds']:.0f} s loading the engine).", "",
    ]
    for metric in (primary, *(m for m in result["metrics"] if m != primary)):
        lines += [f"## Accuracy ({metric} log-prob{', primary' if metric == primary else ''}; 95% Wilson CI)", "",
                  md_table(ACC_HEADERS, accuracy_rows(result, metric)), "",
                  f"## Differences ({metric}; paired bootstrap 95% CI, exact McNemar p)", "",
                  md_table(DIFF_HEADERS, difference_rows(result, metric)), ""]
    lines += ["## Option length alone", "",
              md_table(["set", "always longest", "always shortest"],
                       [[n, fmt(s["length_baselines"]["longest_option"]), fmt(s["length_baselines"]["shortest_option"])]
                        for n, s in result["sets"].items()]), "",
              "## Router's top pole per set", ""]
    for name, counts in result["routing"].items():
        lines.append(f"- **{name}**: " + ", ".join(f"{pole} {count}" for pole, count in counts.items()))
    return "\n".join(lines)


def _error_bars(values: list[float], cells: list[Mapping[str, Any]]) -> list[list[float]]:
    """matplotlib's (below, above) error lengths; clipped at 0 against rounding at the bounds."""
    return [[max(0.0, v - c["ci_low"]) for v, c in zip(values, cells)], [max(0.0, c["ci_high"] - v) for v, c in zip(values, cells)]]


def figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """Grouped bars per set (accuracy with 95% CI, chance marked) and the paired differences."""
    plt = pyplot()
    metric = result["primary_metric"]
    names = list(result["sets"])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8.5), gridspec_kw={"height_ratios": [3, 2]})
    width = 0.26
    for k, system in enumerate(SYSTEMS):
        xs = [i + (k - 1) * width for i in range(len(names))]
        cells = [result["sets"][n]["accuracy"][system][metric] for n in names]
        acc = [c["accuracy"] for c in cells]
        err = _error_bars(acc, cells)
        ax1.bar(xs, acc, width, yerr=err, capsize=3, label=SYSTEM_LABELS[system], color=SYSTEM_COLOURS[system])
    for i, n in enumerate(names):
        ax1.hlines(result["sets"][n]["chance"], i - 1.5 * width, i + 1.5 * width, colors="k", linestyles=":", lw=1.2,
                   label="chance" if i == 0 else None)
    ax1.set_xticks(range(len(names)), [f"{n}\n(n={result['sets'][n]['n']})" for n in names])
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("accuracy")
    ax1.set_title(f"evals.ei on {result['model']} (option {metric} log-prob; 95% Wilson CI)")
    ax1.legend(fontsize=8, ncol=4, loc="upper left")
    width = 0.26
    colours = ["#55a868", "#c44e52", "#4c72b0"]
    for k, (a, b) in enumerate(COMPARISONS):
        xs = [i + (k - 1) * width for i in range(len(names))]
        cells = [result["sets"][n]["differences"][comparison_name(a, b)][metric] for n in names]
        diffs = [c["diff"] for c in cells]
        err = _error_bars(diffs, cells)
        ax2.bar(xs, diffs, width, yerr=err, capsize=3, label=f"{a} - {b}", color=colours[k])
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks(range(len(names)), names)
    ax2.set_ylabel("accuracy difference")
    ax2.set_title("Paired differences (bootstrap 95% CI)")
    ax2.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    return {"accuracy": fig}
