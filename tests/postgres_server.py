"""A private PostgreSQL server for the tests, started and stopped by the test session.

    server = start_postgres()   # server.url, server.how, server.pid, server.started_in_s
    ...
    server.stop()

It listens only on a unix socket in its own data folder (no TCP port at all), trusts local
connections, and is stopped with ``pg_ctl stop`` (then its folder is deleted) when the block ends.
The ways to get the binaries, tried in order (``PERSONA_AGENTS_TEST_POSTGRES=pgserver,system``
picks and orders them):

- ``pgserver`` (PyPI, in the ``postgres`` extra) ships PostgreSQL binaries in its wheel; as root
  it creates a ``pgserver`` system user (``useradd``) and runs the server as that user.
- ``system``: ``initdb`` and ``pg_ctl`` on PATH or in ``/usr/lib/postgresql/*/bin``; PostgreSQL
  refuses to run as root, so as root they run as the ``postgres`` user through ``runuser``.

When none works, ``PostgresUnavailable`` says why, for each way tried.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

METHODS = ("pgserver", "system")
ENV_METHODS = "PERSONA_AGENTS_TEST_POSTGRES"
SYSTEM_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")
SYSTEM_USER = "postgres"  # the OS user the system binaries run as when we are root
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No way of starting a PostgreSQL server worked here; the message has each reason."""


@dataclass
class RunningPostgres:
    url: str  # postgresql://postgres@/postgres?host=<socket dir>
    how: str  # which binaries, e.g. "pgserver (PostgreSQL 16.2)"
    pid: int  # the postmaster
    started_in_s: float
    stop: Callable[[], None]


def _data_root() -> Path:
    # Not under pytest's basetemp: that tree is 0700 (the server's own user could not enter
    # it), and another pytest run resets its mode while ours is still running.
    root = Path(tempfile.mkdtemp(prefix="persona-agents-pg-"))
    root.chmod(0o755)
    return root


def _server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0])


def _start_with_pgserver() -> RunningPostgres:
    begun = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, on import: XDG_RUNTIME_DIR is not set
        try:
            import pgserver
        except ImportError as exc:
            raise PostgresUnavailable(f"pgserver is not installed ({exc}); pip install -e '.[postgres]'") from None
        root = _data_root()
        try:
            server = pgserver.get_server(root / "data", cleanup_mode="delete")
        except Exception as exc:
            shutil.rmtree(root, ignore_errors=True)
            detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else exc
            raise PostgresUnavailable(f"pgserver could not start a server: {detail}") from None
    url = server.get_uri()
    started = time.perf_counter() - begun

    def stop() -> None:
        server.cleanup()  # pg_ctl stop, then deletes the data folder
        shutil.rmtree(root, ignore_errors=True)

    return RunningPostgres(url, f"pgserver (PostgreSQL {_server_version(url)})", int(server.get_pid() or 0), started, stop)


def _system_bin_dir() -> Path:
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    for pattern in SYSTEM_BIN_GLOBS:
        # newest major version first: /usr/lib/postgresql/16/bin before .../15/bin
        matches = sorted(Path("/").glob(pattern.lstrip("/")), key=lambda p: [int(s) if s.isdigit() else 0 for s in p.parts], reverse=True)
        candidates.extend(matches)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(f"no initdb and pg_ctl on PATH or in {', '.join(SYSTEM_BIN_GLOBS)}")


def _start_with_system_binaries() -> RunningPostgres:
    folder = _system_bin_dir()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        try:
            account = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and PostgreSQL refuses root; there is no {SYSTEM_USER!r} user to run {folder} as"
            ) from None
        if not shutil.which("runuser"):
            raise PostgresUnavailable("running as root, and PostgreSQL refuses root; runuser is missing")
        prefix = ["runuser", "-u", SYSTEM_USER, "--"]
    begun = time.perf_counter()
    root = _data_root()
    data = root / "data"
    data.mkdir(mode=0o700)
    if as_root:
        os.chown(data, account.pw_uid, account.pw_gid)

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")

    try:
        run(str(folder / "initdb"), "-D", str(data), "--auth=trust", "--encoding=UTF8", "-U", "postgres")
        # -h '' : no TCP at all; -k : the socket lives in the data folder
        run(str(folder / "pg_ctl"), "-D", str(data), "-w", "-t", str(START_TIMEOUT_S), "-l", str(data / "log"),
            "-o", f"-h '' -k {data}", "start")
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        with contextlib.suppress(Exception):
            subprocess.run([*prefix, str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"system binaries in {folder}: {exc}") from None
    url = f"postgresql://postgres@/postgres?host={data}"
    pid = int((data / "postmaster.pid").read_text().split()[0])
    started = time.perf_counter() - begun

    def stop() -> None:
        subprocess.run([*prefix, str(folder / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    return RunningPostgres(url, f"system binaries {folder} (PostgreSQL {_server_version(url)})", pid, started, stop)


STARTERS: dict[str, Callable[[], RunningPostgres]] = {
    "pgserver": _start_with_pgserver,
    "system": _start_with_system_binaries,
}


def methods_from_env() -> tuple[str, ...]:
    raw = os.environ.get(ENV_METHODS, "")
    chosen = tuple(m.strip() for m in raw.split(",") if m.strip()) or METHODS
    if unknown := [m for m in chosen if m not in STARTERS]:
        raise PostgresUnavailable(f"{ENV_METHODS}: unknown {unknown}; use a comma-separated subset of {list(STARTERS)}")
    return chosen


def start_postgres(methods: Sequence[str] = METHODS) -> RunningPostgres:
    """The first server that starts, trying ``methods`` in order; else why none did."""
    reasons = []
    for method in methods:
        try:
            return STARTERS[method]()
        except PostgresUnavailable as exc:
            reasons.append(f"{method}: {exc}")
    raise PostgresUnavailable("no PostgreSQL server could be started for the tests:\n  " + "\n  ".join(reasons or ["no method given"]))
