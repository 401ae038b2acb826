"""The SQLite store's schema, as ordered migrations (see :mod:`app.store.migrations`).

Version 1 is the schema every earlier gate created with ``CREATE ... IF NOT EXISTS``, so a file made
before migrations existed adopts version 1 without change (a ``deliveries`` table left by a gate older
than the queue stays, unused).
"""

from __future__ import annotations

import sqlite3

from app.store.migrations import MIGRATIONS_TABLE, Migration, pending

STEPS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE IF NOT EXISTS audit (
                seq INTEGER PRIMARY KEY,
                time TEXT NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL UNIQUE
            )""",
            "CREATE INDEX IF NOT EXISTS audit_time ON audit(time)",
            """CREATE TABLE IF NOT EXISTS replay (
                issuer TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (issuer, jti)
            )""",
            """CREATE TABLE IF NOT EXISTS decisions (
                decision_id TEXT PRIMARY KEY,
                created_at INTEGER NOT NULL,
                record TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS grants (
                jti TEXT PRIMARY KEY,
                kid TEXT NOT NULL,
                parent_jti TEXT,
                decision_id TEXT NOT NULL,
                repository_id INTEGER NOT NULL,
                run_id INTEGER NOT NULL,
                run_attempt INTEGER NOT NULL,
                pull_request INTEGER,
                sha TEXT NOT NULL,
                audience TEXT NOT NULL,
                permission TEXT NOT NULL,
                issued_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                github_token_sha256 TEXT,
                github_token_sealed BLOB,
                revoked_at INTEGER,
                revoked_reason TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS grants_pr ON grants(repository_id, pull_request)",
            "CREATE INDEX IF NOT EXISTS grants_parent ON grants(parent_jti)",
            """CREATE TABLE IF NOT EXISTS signing_keys (
                kid TEXT PRIMARY KEY,
                private_pem BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                retired_at INTEGER
            )""",
            "CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
            # The durable queue (app.store.sqlite_queue) and the deployments held by the protection rule.
            """CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                topic TEXT NOT NULL,
                body BLOB NOT NULL,
                body_sha256 TEXT NOT NULL,
                state TEXT NOT NULL,            -- queued, running, done, dead
                attempts INTEGER NOT NULL DEFAULT 0,
                due_at INTEGER NOT NULL,
                lease_owner TEXT,
                lease_until INTEGER,
                last_error TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, due_at)",
            "CREATE INDEX IF NOT EXISTS jobs_body ON jobs(body_sha256)",
            """CREATE TABLE IF NOT EXISTS deployment_gates (
                repository_id INTEGER NOT NULL,
                run_id INTEGER NOT NULL,
                environment TEXT NOT NULL,
                state TEXT NOT NULL,            -- pending, approved, rejected
                updated_at INTEGER NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (repository_id, run_id, environment)
            )""",
            "CREATE INDEX IF NOT EXISTS deployment_gates_state ON deployment_gates(repository_id, state)",
        ),
    ),
    Migration(
        2,
        "indexes for retention purges",
        (
            "CREATE INDEX IF NOT EXISTS replay_expires ON replay(expires_at)",
            "CREATE INDEX IF NOT EXISTS decisions_created ON decisions(created_at)",
            "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(state, updated_at)",
        ),
    ),
    Migration(
        3,
        "break-glass overrides",
        (
            """CREATE TABLE IF NOT EXISTS break_glass (
                id TEXT PRIMARY KEY,
                repository_id INTEGER NOT NULL,
                action TEXT NOT NULL,
                state TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS break_glass_scope ON break_glass(repository_id, action, state)",
        ),
    ),
    Migration(
        4,
        "webhook coalescing, the redelivery sweep's lease and its requests",
        (
            "ALTER TABLE jobs ADD COLUMN subject TEXT",  # what a job is about (app.events.coalesce)
            "CREATE INDEX IF NOT EXISTS jobs_subject ON jobs(subject, state)",
            """CREATE TABLE IF NOT EXISTS leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                until INTEGER NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS redeliveries (
                delivery_id INTEGER PRIMARY KEY,  -- GitHub's id of the failed delivery asked again
                guid TEXT NOT NULL,               -- its event's X-GitHub-Delivery
                asked_at INTEGER NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS redeliveries_guid ON redeliveries(guid)",
        ),
    ),
    Migration(
        5,
        "agent freezes",
        (
            """CREATE TABLE IF NOT EXISTS freezes (
                id TEXT PRIMARY KEY,
                owner_id INTEGER NOT NULL,
                state TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS freezes_owner ON freezes(owner_id, state)",
        ),
    ),
)


def migrate(conn: sqlite3.Connection, *, where: str, now: int) -> list[Migration]:
    """Apply the missing steps under the write lock (``BEGIN IMMEDIATE``), durably; returns them.

    Raises SchemaTooNew (a newer gate's file) or sqlite3.Error.
    """
    # A read first: an up-to-date file (every open but the first) takes no write lock at all.
    if has_migrations_table(conn) and not pending(version(conn), STEPS, where=where):
        return []
    conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            steps = pending(version(conn), STEPS, where=where)
            for step in steps:
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",  # noqa: S608  # a constant
                    (step.version, step.name, now),
                )
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    finally:
        conn.execute("PRAGMA synchronous = NORMAL")
    return steps


def version(conn: sqlite3.Connection) -> int:
    """The recorded schema version (the migrations table must exist)."""
    row = conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()  # noqa: S608  # a constant
    return int(row[0]) if row and row[0] is not None else 0


def has_migrations_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,))
    return row.fetchone() is not None
