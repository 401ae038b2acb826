"""The PostgreSQL store's schema, as ordered migrations (see :mod:`app.store.migrations`).

Same tables and columns as the SQLite store, in PostgreSQL's types: integers that hold unix seconds or
GitHub ids are BIGINT, blobs are BYTEA. Audit times and payloads stay TEXT, exactly as they were
hashed (jsonb would reorder keys and lose the bytes an auditor re-hashes).
"""

from __future__ import annotations

from app.store.migrations import Migration

STEPS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE audit (
                seq BIGINT PRIMARY KEY,
                time TEXT NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL UNIQUE
            )""",
            "CREATE INDEX audit_time ON audit(time)",
            """CREATE TABLE replay (
                issuer TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (issuer, jti)
            )""",
            """CREATE TABLE decisions (
                decision_id TEXT PRIMARY KEY,
                created_at BIGINT NOT NULL,
                record TEXT NOT NULL
            )""",
            """CREATE TABLE grants (
                jti TEXT PRIMARY KEY,
                kid TEXT NOT NULL,
                parent_jti TEXT,
                decision_id TEXT NOT NULL,
                repository_id BIGINT NOT NULL,
                run_id BIGINT NOT NULL,
                run_attempt BIGINT NOT NULL,
                pull_request BIGINT,
                sha TEXT NOT NULL,
                audience TEXT NOT NULL,
                permission TEXT NOT NULL,
                issued_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                github_token_sha256 TEXT,
                github_token_sealed BYTEA,
                revoked_at BIGINT,
                revoked_reason TEXT
            )""",
            "CREATE INDEX grants_pr ON grants(repository_id, pull_request)",
            "CREATE INDEX grants_parent ON grants(parent_jti)",
            """CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                private_pem BYTEA NOT NULL,
                created_at BIGINT NOT NULL,
                retired_at BIGINT
            )""",
            "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at BIGINT NOT NULL)",
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                topic TEXT NOT NULL,
                body BYTEA NOT NULL,
                body_sha256 TEXT NOT NULL,
                state TEXT NOT NULL,            -- queued, running, done, dead
                attempts INTEGER NOT NULL DEFAULT 0,
                due_at BIGINT NOT NULL,
                lease_owner TEXT,
                lease_until BIGINT,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )""",
            "CREATE INDEX jobs_due ON jobs(state, due_at)",
            "CREATE INDEX jobs_body ON jobs(body_sha256)",
            """CREATE TABLE deployment_gates (
                repository_id BIGINT NOT NULL,
                run_id BIGINT NOT NULL,
                environment TEXT NOT NULL,
                state TEXT NOT NULL,            -- pending, approved, rejected
                updated_at BIGINT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (repository_id, run_id, environment)
            )""",
            "CREATE INDEX deployment_gates_state ON deployment_gates(repository_id, state)",
        ),
    ),
    Migration(
        2,
        "indexes for retention purges",
        (
            "CREATE INDEX replay_expires ON replay(expires_at)",
            "CREATE INDEX decisions_created ON decisions(created_at)",
            "CREATE INDEX jobs_finished ON jobs(state, updated_at)",
        ),
    ),
    Migration(
        3,
        "break-glass overrides",
        (
            """CREATE TABLE break_glass (
                id TEXT PRIMARY KEY,
                repository_id BIGINT NOT NULL,
                action TEXT NOT NULL,
                state TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX break_glass_scope ON break_glass(repository_id, action, state)",
        ),
    ),
    Migration(
        4,
        "webhook coalescing, the redelivery sweep's lease and its requests",
        (
            "ALTER TABLE jobs ADD COLUMN subject TEXT",
            "CREATE INDEX jobs_subject ON jobs(subject, state)",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                until BIGINT NOT NULL
            )""",
            """CREATE TABLE redeliveries (
                delivery_id BIGINT PRIMARY KEY,
                guid TEXT NOT NULL,
                asked_at BIGINT NOT NULL
            )""",
            "CREATE INDEX redeliveries_guid ON redeliveries(guid)",
        ),
    ),
    Migration(
        5,
        "agent freezes",
        (
            """CREATE TABLE freezes (
                id TEXT PRIMARY KEY,
                owner_id BIGINT NOT NULL,
                state TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX freezes_owner ON freezes(owner_id, state)",
        ),
    ),
)
