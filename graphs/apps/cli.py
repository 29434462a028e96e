"""The ``persona-agents`` command: the engine's commands and the agents' apps.

generate, route, train, synth and serve come from ``persona_agents.cli`` (the engine); this
module adds demo, chat, screen and check-output, which need the agents and the domain packs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from domains.schema import DOMAINS
from persona_agents.cli import (
    add_engine_commands,
    add_engine_options,
    engine_config,
    new_parser,
    run,
)


def cmd_demo(args: argparse.Namespace) -> int:
    from graphs.apps.demo import run_demo

    return run_demo(engine_config(args), max_tokens=args.max_tokens)


def cmd_chat(args: argparse.Namespace) -> int:
    from graphs.apps.chat import default_db, run_chat
    from graphs.persistence import DatabaseError

    try:
        return run_chat(args.domain, args.thread, args.db or default_db(), show_history=not args.quiet)
    except DatabaseError as exc:  # a folder, a non-SQLite file, an unknown scheme, no server
        raise ValueError(f"--db {exc}") from None


def cmd_screen(args: argparse.Namespace) -> int:
    from graphs.apps.checks import run_screen

    return run_screen(args.domain, args.message, args.rating, args.json)


def cmd_check_output(args: argparse.Namespace) -> int:
    from graphs.apps.checks import run_check_output

    return run_check_output(args.domain, args.message, args.json)


def add_app_commands(sub: argparse._SubParsersAction) -> None:
    """Register demo, chat, screen and check-output on ``sub``."""
    p = sub.add_parser("demo", help="a short conversation with the routed weights per turn")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="new tokens per reply (default: the reply default, GenerationParams.max_new_tokens)")
    add_engine_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("chat", help="an interactive agent session persisted in SQLite")
    p.add_argument("--domain", choices=DOMAINS, required=True)
    p.add_argument("--thread", default="default", help="conversation id; the same id resumes the conversation")
    p.add_argument("--db", help="SQLite file or postgresql://user:password@host/dbname "
                   "(default: $PERSONA_AGENTS_HOME/chat.sqlite)")
    p.add_argument("--quiet", action="store_true", help="do not print the earlier messages on resume")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("screen", help="risk screening of one message")
    p.add_argument("--domain", choices=DOMAINS, required=True)
    p.add_argument("--message", required=True)
    p.add_argument("--rating", type=int, help="star rating (customer_service)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("check-output", help="the output check of one draft reply")
    p.add_argument("--domain", choices=DOMAINS, required=True)
    p.add_argument("--message", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_output)


def build_parser() -> argparse.ArgumentParser:
    parser, sub = new_parser(__doc__)
    add_engine_commands(sub)
    add_app_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
