"""Checkpointers and stores for the agents, opened from one connection string.

    open_checkpointer(db)         SqliteSaver        | PostgresSaver        (with-block)
    open_async_checkpointer(db)   AsyncSqliteSaver   | AsyncPostgresSaver   (async with-block)
    open_store(db)                SqliteStore        | PostgresStore        (with-block)
    open_async_store(db)          AsyncSqliteStore   | AsyncPostgresStore   (async with-block)
    postgres_thread_lock(saver, thread_id, timeout)   one writer per thread across processes

``db`` is one of

    postgresql://user:password@host:5432/dbname   (or postgres://; libpq URL, ?host=/socket/dir works)
    sqlite:///relative/file.sqlite                (three slashes: relative to the working folder)
    sqlite:////absolute/file.sqlite               (four slashes: absolute)
    sqlite:///:memory:  or  :memory:              (SQLite in memory, gone when closed)
    a plain path (str or os.PathLike)             (a SQLite file; its folder is created)

Tables are created on open (``setup()``: idempotent migrations). Errors are
``DatabaseError`` (a ``ValueError``) naming the database without its password: an unknown
scheme, a folder or a non-SQLite file given as a SQLite path, a server that cannot be reached.
The Postgres parts need the ``postgres`` extra (``langgraph-checkpoint-postgres``, ``psycopg``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

__all__ = [
    "Database",
    "DatabaseError",
    "describe_db",
    "open_async_checkpointer",
    "open_async_store",
    "open_checkpointer",
    "open_store",
    "parse_db",
    "postgres_thread_lock",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout: an unreachable host fails, not hangs
SQLITE_HEADER = b"SQLite format 3\x00"
# Advisory-lock class for thread locks (the first of pg_try_advisory_lock's two int4 keys), so
# they cannot collide with an application's own advisory locks on single bigint keys.
THREAD_LOCK_CLASS = int.from_bytes(hashlib.sha256(b"persona-agents thread").digest()[:4], "big", signed=True)
SUPPORTED = "postgresql://user:password@host/dbname, sqlite:///relative.sqlite, sqlite:////absolute.sqlite, :memory:, or a file path"


class DatabaseError(ValueError):
    """The database string is not usable: unknown kind, wrong file, unreachable server."""


@dataclass(frozen=True)
class Database:
    """A parsed connection string: what kind of database and how to reach it."""

    kind: Literal["sqlite", "postgres"]
    target: str  # the SQLite path (or ":memory:"), or the full Postgres URL
    shown: str  # the same without any password, for messages and logs


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        name, has_password, password = user.partition(":")
        if has_password:
            netloc = f"{name}:{'***' if password else ''}@{host}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_db(db: str | os.PathLike[str]) -> Database:
    """Which database ``db`` names; raises ``DatabaseError`` for a scheme it does not support."""
    if isinstance(db, os.PathLike):
        path = os.fspath(db)
        return Database("sqlite", path, path)
    if not isinstance(db, str) or not db.strip():
        raise DatabaseError(f"the database must be a non-empty string or path ({SUPPORTED}), got {db!r}")
    if db == ":memory:":
        return Database("sqlite", db, db)
    scheme, sep, rest = db.partition("://")
    if not sep:
        return Database("sqlite", db, db)
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        url = f"{scheme}://{rest}"  # libpq knows the scheme in lower case only
        shown = _without_password(url)
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except Exception as exc:  # psycopg.ProgrammingError: malformed URL or option
            raise DatabaseError(f"{shown} is not a valid PostgreSQL URL: {_first_line(exc)}") from None
        return Database("postgres", url, shown)
    if scheme == "sqlite":
        if rest and not rest.startswith("/"):
            raise DatabaseError(f"{db}: write sqlite:///relative.sqlite or sqlite:////absolute.sqlite (three or four slashes)")
        path = rest[1:] or ":memory:"  # sqlite:// and sqlite:/// alone: in memory, as in SQLAlchemy
        return Database("sqlite", path, db)
    raise DatabaseError(f"unknown database scheme {scheme + '://'!r} in {_without_password(db)}; use {SUPPORTED}")


def describe_db(db: str | os.PathLike[str]) -> str:
    """``db`` as it may be shown to people: a Postgres URL loses its password."""
    try:
        return parse_db(db).shown
    except DatabaseError:
        return "<invalid database>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_path(database: Database) -> str:
    """Check a SQLite path (not a folder; an existing file must be SQLite) and create its folder."""
    if database.target == ":memory:":
        return database.target
    path = Path(database.target)
    if path.is_dir():
        raise DatabaseError(f"{database.shown} is a folder; give a file such as {path / 'chat.sqlite'}")
    if path.exists():
        try:
            with open(path, "rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise DatabaseError(f"{database.shown} cannot be read: {exc.strerror}") from None
        if header and header != SQLITE_HEADER:
            raise DatabaseError(f"{database.shown} is not a SQLite database")
    elif path.parent.exists() and not path.parent.is_dir():
        raise DatabaseError(f"{database.shown}: {path.parent} is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def _sqlite_errors(database: Database) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:  # a damaged file that still starts like a database
        raise DatabaseError(f"{database.shown} is not a usable SQLite database: {exc}") from None


# --- Postgres ---------------------------------------------------------------------------------


def _postgres_kwargs(database: Database) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row

    # what langgraph's from_conn_string passes, plus a bounded connect
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    if "connect_timeout" not in conninfo_to_dict(database.target):
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    return kwargs


def _unreachable(database: Database, exc: BaseException) -> DatabaseError:
    return DatabaseError(f"cannot connect to {database.shown}: {_first_line(exc)}")


@contextlib.contextmanager
def _postgres_connection(database: Database) -> Iterator[Any]:
    import psycopg

    try:
        connection = psycopg.Connection.connect(database.target, **_postgres_kwargs(database))
    except psycopg.OperationalError as exc:
        raise _unreachable(database, exc) from None
    with connection:
        yield connection


# --- the public openers -----------------------------------------------------------------------


@contextlib.contextmanager
def open_checkpointer(db: str | os.PathLike[str]) -> Iterator[BaseCheckpointSaver]:
    """A synchronous checkpointer for ``db``, closed when the block ends (tables set up)."""
    database = parse_db(db)
    if database.kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        with _postgres_connection(database) as connection:
            saver = PostgresSaver(connection)
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = _sqlite_path(database)
    with contextlib.closing(sqlite3.connect(path, check_same_thread=False)) as connection:
        saver = SqliteSaver(connection)
        with _sqlite_errors(database):
            saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def open_async_checkpointer(db: str | os.PathLike[str]) -> AsyncIterator[BaseCheckpointSaver]:
    """An asyncio checkpointer for ``db`` (for ``ainvoke``/``astream``), closed when the block ends."""
    database = parse_db(db)
    if database.kind == "postgres":
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        try:
            connection = await psycopg.AsyncConnection.connect(database.target, **_postgres_kwargs(database))
        except psycopg.OperationalError as exc:
            raise _unreachable(database, exc) from None
        async with connection:
            saver = AsyncPostgresSaver(connection)
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = _sqlite_path(database)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        with _sqlite_errors(database):
            await saver.setup()
        yield saver


@contextlib.contextmanager
def open_store(db: str | os.PathLike[str]) -> Iterator[BaseStore]:
    """A long-term memory store for ``db`` (``make_*_graph(..., store=...)``), closed when the block ends."""
    database = parse_db(db)
    if database.kind == "postgres":
        from langgraph.store.postgres import PostgresStore

        with _postgres_connection(database) as connection:
            store = PostgresStore(connection)
            store.setup()
            yield store
        return
    from langgraph.store.sqlite import SqliteStore

    path = _sqlite_path(database)
    # autocommit: SqliteStore opens its own transactions
    with contextlib.closing(sqlite3.connect(path, check_same_thread=False, isolation_level=None)) as connection:
        store = SqliteStore(connection)
        with _sqlite_errors(database):
            store.setup()
        yield store


@contextlib.asynccontextmanager
async def open_async_store(db: str | os.PathLike[str]) -> AsyncIterator[BaseStore]:
    """An asyncio store for ``db`` (a graph run with ``ainvoke``/``astream``: ``SqliteStore`` has
    no async methods), closed when the block ends."""
    database = parse_db(db)
    if database.kind == "postgres":
        import psycopg
        from langgraph.store.postgres.aio import AsyncPostgresStore

        try:
            connection = await psycopg.AsyncConnection.connect(database.target, **_postgres_kwargs(database))
        except psycopg.OperationalError as exc:
            raise _unreachable(database, exc) from None
        async with connection:
            store = AsyncPostgresStore(connection)
            await store.setup()
            yield store
        return
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    path = _sqlite_path(database)
    async with AsyncSqliteStore.from_conn_string(path) as store:
        with _sqlite_errors(database):
            await store.setup()
        yield store


# --- one writer per thread across processes ---------------------------------------------------


def _thread_key(thread_id: str) -> int:
    return int.from_bytes(hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).digest()[:4], "big", signed=True)


@contextlib.contextmanager
def postgres_thread_lock(
    checkpointer: Any, thread_id: str, timeout: float, *, busy: Callable[[str], Exception] = TimeoutError
) -> Iterator[bool]:
    """Hold a Postgres advisory lock for ``thread_id`` while the block runs; yields whether it did.

    Only for a ``PostgresSaver`` (yields False and locks nothing for any other checkpointer). The
    lock is a session lock on the saver's own connection, or on a connection taken from its pool
    for the whole block, so the server drops it when a process dies, even by SIGKILL. Waiting
    polls ``pg_try_advisory_lock`` rather than blocking the connection other threads share.
    Raises ``busy(message)`` when another process holds the thread longer than ``timeout``.
    """
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg_pool import ConnectionPool
    except ImportError:  # the postgres extra is not installed: no PostgresSaver can exist
        yield False
        return
    if not isinstance(checkpointer, PostgresSaver):
        yield False
        return
    key = (THREAD_LOCK_CLASS, _thread_key(thread_id))
    pool = checkpointer.conn if isinstance(checkpointer.conn, ConnectionPool) else None
    with pool.connection() if pool is not None else contextlib.nullcontext(checkpointer.conn) as connection:
        # a shared single connection is guarded by the saver's lock, like its own queries
        guard = contextlib.nullcontext() if pool is not None else checkpointer.lock

        def call(function: str) -> bool:
            with guard:
                row = connection.execute(f"SELECT {function}(%s, %s) AS ok", key).fetchone()
            return bool(row["ok"] if isinstance(row, dict) else row[0])

        deadline = time.monotonic() + timeout
        while not call("pg_try_advisory_lock"):
            if time.monotonic() > deadline:
                raise busy(f"thread {thread_id!r} is busy in another process")
            time.sleep(0.05)
        try:
            yield True
        finally:
            with contextlib.suppress(psycopg.OperationalError):  # a lost session has lost its locks too
                call("pg_advisory_unlock")
