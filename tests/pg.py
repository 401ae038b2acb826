"""The real PostgreSQL server the tests use: a uniquely named database per test run, a schema per test.

The server is the one ``.ci/run`` starts (127.0.0.1:5432, trust auth); ``GATE_TEST_POSTGRES`` names
another (an admin URL to its ``postgres`` database). Databases are created from ``postgres`` and
dropped at the end of the run, so parallel runs (other checkouts, CI jobs) never share state.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("GATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def create_database() -> str:
    """A new, empty database for this run; returns its URL. Fails with what to do if no server answers."""
    name = f"agent_gate_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"the store tests need a PostgreSQL server at {ADMIN_URL} ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (as .ci/run does) "
            "or point GATE_TEST_POSTGRES at one"
        ) from exc
    return _with_database(ADMIN_URL, name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_schema(database_url: str) -> tuple[str, str]:
    """A new schema in the run's database; returns (its name, a store URL whose search_path is it)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema, f"{database_url}?options={quote(f'-csearch_path={schema}')}"


def drop_schema(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run_sql(store_url: str, statement: str) -> None:
    """Edit the database behind the store's back, as someone with database access could."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(statement.encode())
