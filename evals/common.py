"""Shared helpers for the eval scripts: reading eval data, output, reports and exit codes.

The numbers themselves (rates, ratios, means, per-kind tables) are in ``evals.metrics``.

Every ``python -m evals.<name>`` script follows the same contract:

- a JSONL data file (a default set ships under ``evals/data/``);
- a human table on stdout, or with ``--json`` ONE JSON object on stdout and nothing else
  (progress bars and logs go to stderr);
- with ``--out DIR`` also ``<name>.json``, ``<name>.md`` and PNG plots in DIR;
- bad data (missing file, invalid JSON line, unknown label) -> ``error: ...`` on stderr, exit 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.metrics import mean, median  # noqa: F401  (re-exported: evals.ei.summary imports mean from here)
from persona_agents.jsonl import JsonlError
from persona_agents.jsonl import read_jsonl as read_jsonl_lines

DATA_DIR = Path(__file__).resolve().parent / "data"
EXIT_BAD_DATA = 2


class DataError(ValueError):
    """The eval data is missing or malformed (the message names file and line)."""


# --- reading ------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """JSON objects, one per non-blank line; each gets ``_line`` (1-based) for error messages.

    A missing or malformed file, or one without rows, raises ``DataError``.
    """
    try:
        rows = [{**obj, "_line": number} for number, obj in read_jsonl_lines(path)]
    except JsonlError as exc:
        raise DataError(str(exc)) from exc
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def where(path: str | Path, row: Mapping[str, Any]) -> str:
    return f"{path}:{row.get('_line', '?')}"


def require_text(path: str | Path, row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where(path, row)}: {key!r} must be a non-empty string")
    return value


# --- output -------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def to_jsonable(value: Any) -> Any:
    """Make floats JSON-safe (NaN/inf -> None) and tuples lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def emit(result: Mapping[str, Any], as_json: bool, table_fn: Callable[[Mapping[str, Any]], None]) -> None:
    """Print ONE JSON object (``as_json``) or the human table, on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(result), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        table_fn(result)


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """While evaluating in --json mode, anything a library prints goes to stderr."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def write_report(
    out_dir: str | Path,
    name: str,
    result: Mapping[str, Any],
    markdown: str,
    figures: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``<name>.json``, ``<name>.md`` and ``<name>_<figure>.png`` into ``out_dir``.

    ``figures`` maps a short name to a matplotlib Figure (closed after saving).
    Returns the written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(to_jsonable(result), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    written.append(json_path)
    figures = dict(figures or {})
    pngs = []
    if figures:
        import matplotlib.pyplot as plt

        for key, fig in figures.items():
            png = out / f"{name}_{key}.png"
            fig.savefig(png, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(png)
            pngs.append(png)
    md = markdown.rstrip() + "\n"
    if pngs:
        md += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    md_path = out / f"{name}.md"
    md_path.write_text(md, encoding="utf-8")
    written.append(md_path)
    return written


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_DATA


def progress(iterable: Any = None, **kwargs: Any) -> Any:
    """tqdm on stderr (silent when stderr is not a terminal and TQDM_DISABLE is set)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("disable", None)
    return tqdm(iterable, **kwargs)


def load_judge(spec: str) -> Any:
    """``package.module:attribute`` -> a LangChain chat model.

    The attribute may be a chat model, or a callable (class or factory) returning one.
    """
    import importlib

    from langchain_core.language_models import BaseChatModel

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise DataError(f"--judge must look like package.module:attribute, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DataError(f"--judge: cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise DataError(f"--judge: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, BaseChatModel) and callable(obj):
        obj = obj()
    if not isinstance(obj, BaseChatModel):
        raise DataError(f"--judge {spec!r} is a {type(obj).__name__}, not a LangChain chat model")
    return obj
