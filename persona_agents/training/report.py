"""The training report: held-out numbers (JSON), loss curves and expert pole strength (PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(expert_losses: dict[str, list[float]], router_history: dict[str, list[float]], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, losses in expert_losses.items():
        style = "-" if name.endswith("_high") else "--"
        left.plot(range(1, len(losses) + 1), losses, style, label=name, linewidth=1.2)
    left.set_title("Persona experts: training loss (response tokens)")
    left.set_xlabel("step")
    left.set_ylabel("cross-entropy")
    left.legend(fontsize=7, ncol=2)
    for key, values in router_history.items():
        right.plot(range(1, len(values) + 1), values, label=key)
    right.set_title("Router: training losses")
    right.set_xlabel("step")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pole_strength(experts: dict[str, Any], path: Path) -> None:
    names = list(experts)
    expert_share = [experts[n]["expert_share_as_pole"] for n in names]
    base_share = [experts[n]["base_share_as_pole"] for n in names]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], base_share, width=0.4, label="base model", color="#999999")
    ax.bar([x + 0.2 for x in xs], expert_share, width=0.4, label="expert", color="#3b7dd8")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("share of replies classified as the expert's pole")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out prompts: how often replies read as each pole")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "training_report.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path
