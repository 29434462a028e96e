"""graphs.persistence: connection strings, SQLite and PostgreSQL checkpointers and stores.

The PostgreSQL tests run on the session's private server (``postgres_url``, tests/conftest.py).
"""

from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.postgres import PostgresStore
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite import SqliteStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from graphs.persistence import (
    DatabaseError,
    describe_db,
    open_async_checkpointer,
    open_async_store,
    open_checkpointer,
    open_store,
    parse_db,
    postgres_thread_lock,
)

# --- connection strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "kind", "target"),
    [
        ("chat.sqlite", "sqlite", "chat.sqlite"),
        ("/var/data/chat.sqlite", "sqlite", "/var/data/chat.sqlite"),
        ("sqlite:///rel/chat.sqlite", "sqlite", "rel/chat.sqlite"),
        ("sqlite:////abs/chat.sqlite", "sqlite", "/abs/chat.sqlite"),
        ("sqlite:///:memory:", "sqlite", ":memory:"),
        ("sqlite://", "sqlite", ":memory:"),
        (":memory:", "sqlite", ":memory:"),
        ("postgresql://u:pw@db.example:5432/agents", "postgres", "postgresql://u:pw@db.example:5432/agents"),
        ("POSTGRES://u@/agents?host=/run/pg", "postgres", "postgres://u@/agents?host=/run/pg"),
    ],
)
def test_parse_db_kinds(db: str, kind: str, target: str) -> None:
    parsed = parse_db(db)
    assert (parsed.kind, parsed.target) == (kind, target)


def test_a_path_object_is_a_sqlite_file(tmp_path: Path) -> None:
    assert parse_db(tmp_path / "x.sqlite").target == str(tmp_path / "x.sqlite")


def test_passwords_never_shown() -> None:
    assert describe_db("postgresql://alice:s3cret@db:5432/agents") == "postgresql://alice:***@db:5432/agents"
    shown = describe_db("postgresql://alice@db/agents?password=s3cret&sslmode=require")
    assert "s3cret" not in shown and "sslmode=require" in shown
    assert describe_db("postgresql://alice@db/agents") == "postgresql://alice@db/agents"


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ("mysql://root:pw@db/agents", "unknown database scheme 'mysql://'"),
        ("redis://localhost:6379/0", "unknown database scheme 'redis://'"),
        ("sqlite://relative.sqlite", "three or four slashes"),
        ("   ", "non-empty"),
        ("postgresql://alice:s3cret@db/agents?bogus_option=1", "is not a valid PostgreSQL URL"),
    ],
)
def test_bad_connection_strings_are_named(db: str, expected: str) -> None:
    with pytest.raises(DatabaseError, match=expected) as caught:
        parse_db(db)
    assert "s3cret" not in str(caught.value) and "pw@" not in str(caught.value)


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_checkpointer_and_store(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "agents.sqlite"  # the folder is created
    with open_checkpointer(f"sqlite:///{db}") as saver:
        assert isinstance(saver, SqliteSaver)
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
    assert {"checkpoints", "writes"} <= tables
    with open_store(db) as store:
        assert isinstance(store, SqliteStore)
        store.put(("persona_agents", "people", "u1"), "profile", {"locale": "de-DE"})
    with open_store(str(db)) as store:  # persisted, not in memory
        assert store.get(("persona_agents", "people", "u1"), "profile").value == {"locale": "de-DE"}


async def test_async_sqlite_checkpointer(tmp_path: Path) -> None:
    async with open_async_checkpointer(tmp_path / "a.sqlite") as saver:
        assert isinstance(saver, AsyncSqliteSaver)
        assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None


async def test_async_sqlite_store(tmp_path: Path) -> None:
    async with open_async_store(tmp_path / "s.sqlite") as store:
        assert isinstance(store, AsyncSqliteStore)
        await store.aput(("persona_agents", "people", "u1"), "profile", {"locale": "es-ES"})
    async with open_async_store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        assert (await store.aget(("persona_agents", "people", "u1"), "profile")).value == {"locale": "es-ES"}


def test_sqlite_path_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n")
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    for db, expected in ((tmp_path, "is a folder"), (text, "is not a SQLite database"), (damaged, "is not a usable SQLite database")):
        with pytest.raises(DatabaseError, match=expected), open_checkpointer(db):
            pass
    with pytest.raises(DatabaseError, match="is not a folder"), open_store(text / "x.sqlite"):
        pass
    assert text.read_text() == "hello, not a database\n"


# --- PostgreSQL -------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_is_named_without_password(tmp_path: Path) -> None:
    url = f"postgresql://alice:s3cret@127.0.0.1:{_closed_port()}/agents"
    started = time.monotonic()
    with pytest.raises(DatabaseError, match=r"cannot connect to postgresql://alice:\*\*\*@127\.0\.0\.1") as caught:
        with open_checkpointer(url):
            pass
    assert "s3cret" not in str(caught.value)
    assert time.monotonic() - started < 10
    with pytest.raises(DatabaseError, match="cannot connect to"), open_store(f"postgresql://x@/agents?host={tmp_path}"):
        pass


async def test_unreachable_server_async(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="cannot connect to"):
        async with open_async_checkpointer(f"postgresql://x@/agents?host={tmp_path}"):
            pass


def test_postgres_checkpointer_creates_its_tables(postgres_url: str) -> None:
    with open_checkpointer(postgres_url) as saver:
        assert isinstance(saver, PostgresSaver)
        tables = {row["tablename"] for row in saver.conn.execute("select tablename from pg_tables where schemaname = 'public'")}
    assert {"checkpoints", "checkpoint_writes", "checkpoint_blobs", "checkpoint_migrations"} <= tables
    with open_checkpointer(postgres_url):  # setup() again is harmless
        pass


async def test_async_postgres_checkpointer(postgres_url: str) -> None:
    async with open_async_checkpointer(postgres_url) as saver:
        assert isinstance(saver, AsyncPostgresSaver)
        assert await saver.aget_tuple({"configurable": {"thread_id": f"none-{uuid.uuid4()}"}}) is None


def test_postgres_store_round_trip(postgres_url: str) -> None:
    """The people namespace the agents keep a person's locale and risk history under."""
    user = f"user-{uuid.uuid4()}"
    namespace = ("persona_agents", "people", user)
    with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        store.put(namespace, "profile", {"locale": "en-GB"})
        store.put(namespace, "risk", {"raised": True, "events": [{"turn": 1, "category": "suicidal_ideation"}]})
        store.put(("persona_agents", "people", f"other-{uuid.uuid4()}"), "profile", {"locale": "fr-FR"})
    with open_store(postgres_url) as store:  # another connection: it was written to the server
        assert store.get(namespace, "profile").value == {"locale": "en-GB"}
        found = {item.key: item.value for item in store.search(namespace)}
        assert found == {"profile": {"locale": "en-GB"}, "risk": {"raised": True, "events": [{"turn": 1, "category": "suicidal_ideation"}]}}
        assert [i.key for i in store.search(namespace, filter={"raised": True})] == ["risk"]
        assert (("persona_agents", "people", user)) in store.list_namespaces(prefix=("persona_agents", "people"))
        store.delete(namespace, "risk")
        assert store.get(namespace, "risk") is None


async def test_async_postgres_store_round_trip(postgres_url: str, tmp_path: Path) -> None:
    namespace = ("persona_agents", "people", f"user-{uuid.uuid4()}")
    async with open_async_store(postgres_url) as store:
        assert isinstance(store, AsyncPostgresStore)
        await store.aput(namespace, "profile", {"locale": "pt-BR"})
    with open_store(postgres_url) as store:  # the sync store reads what the async one wrote
        assert store.get(namespace, "profile").value == {"locale": "pt-BR"}
    with pytest.raises(DatabaseError, match="cannot connect to"):
        async with open_async_store(f"postgresql://x@/agents?host={tmp_path}"):  # no server there
            pass


def test_thread_lock_excludes_another_session(postgres_url: str) -> None:
    with open_checkpointer(postgres_url) as first, open_checkpointer(postgres_url) as second:
        with postgres_thread_lock(first, "t-lock", timeout=5) as held:
            assert held is True
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="busy in another process"):
                with postgres_thread_lock(second, "t-lock", timeout=0.3):
                    pass
            assert time.monotonic() - started >= 0.3
            with postgres_thread_lock(second, "t-other", timeout=0.3):  # other threads are free
                pass
        with postgres_thread_lock(second, "t-lock", timeout=0.3):  # released at the end of the block
            pass


def test_thread_lock_is_a_no_op_for_sqlite(tmp_path: Path) -> None:
    with open_checkpointer(tmp_path / "x.sqlite") as saver, postgres_thread_lock(saver, "t", timeout=1) as held:
        assert held is False
