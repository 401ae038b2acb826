"""The Store contract, on SQLite and on PostgreSQL alike: what the gate relies on from either backend.

Every test here runs once per backend (the ``any_store`` / ``store_url`` fixtures), so the two stores
cannot drift apart. Backend-specific behaviour (files, pools, URLs) has its own modules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.errors import AlreadyUsed, Unavailable
from app.store.base import Kept, QueuedJob, Replay, Store
from app.store.migrations import SchemaTooNew
from app.store.postgres_schema import STEPS as PG_STEPS
from app.store.sqlite_schema import STEPS as SQLITE_STEPS
from tests.store.conftest import T0, open_any, raw_sql

GRANT = {
    "jti": "grant-1",
    "kid": "kid-1",
    "parent_jti": None,
    "decision_id": "dec_1",
    "repository_id": 2000,
    "run_id": 9_000_000_001,  # GitHub run ids outgrow 32 bits
    "run_attempt": 1,
    "pull_request": 7,
    "sha": "a" * 40,
    "audience": "pypi",
    "permission": "contents:write",
    "issued_at": 1_000,
    "expires_at": 2_000,
    "github_token_sha256": "b" * 64,
    "github_token_sealed": b"\x00sealed\xff",
}


# --- schema versions ------------------------------------------------------------------------------


def test_both_backends_know_the_same_schema_versions() -> None:
    assert (
        [s.version for s in SQLITE_STEPS]
        == [s.version for s in PG_STEPS]
        == list(range(1, len(SQLITE_STEPS) + 1))
    )


def test_a_store_newer_than_this_gate_is_refused(store_url: str) -> None:
    open_any(store_url).close()
    raw_sql(store_url, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
    with pytest.raises(
        SchemaTooNew, match=rf"has schema version 99, newer than this gate knows \({len(SQLITE_STEPS)}\)"
    ) as info:
        open_any(store_url)
    assert info.value.code == "schema-too-new"
    assert "password" not in info.value.message


def test_a_fresh_store_is_created_at_the_newest_version(any_store: Store) -> None:
    assert any_store.schema_version() == len(SQLITE_STEPS)
    assert any_store.upgrade() == (len(SQLITE_STEPS), len(SQLITE_STEPS)), "upgrading again changes nothing"


def test_upgrade_without_migrating_on_open_reports_what_it_did(store_url: str) -> None:
    store = open_any(store_url, migrate=False)
    try:
        assert store.schema_version() == 0
        assert store.upgrade() == (0, len(SQLITE_STEPS))
    finally:
        store.close()


def test_an_older_schema_is_upgraded_step_by_step_on_open(store_url: str) -> None:
    open_any(store_url).close()
    for index in ("replay_expires", "decisions_created", "jobs_finished"):  # what version 2 added
        raw_sql(store_url, f"DROP INDEX {index}")
    raw_sql(store_url, "DROP TABLE break_glass")  # what version 3 added
    for statement in ("DROP INDEX jobs_subject", "ALTER TABLE jobs DROP COLUMN subject"):
        raw_sql(store_url, statement)  # what version 4 added
    raw_sql(store_url, "DROP TABLE leases")
    raw_sql(store_url, "DROP TABLE redeliveries")
    raw_sql(store_url, "DROP TABLE freezes")  # what version 5 added
    raw_sql(store_url, "DELETE FROM schema_migrations WHERE version >= 2")
    store = open_any(store_url, migrate=False)
    try:
        assert store.schema_version() == 1
        assert store.upgrade() == (1, len(SQLITE_STEPS))
    finally:
        store.close()


# --- the audit chain ------------------------------------------------------------------------------


def test_records_chain_and_verify(any_store: Store) -> None:
    records = [any_store.append_audit("decision", {"i": i}) for i in range(3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert list(any_store.iter_audit()) == records, "what is read back is what was hashed"
    report = any_store.verify_audit(anchor=(2, records[1].hash))
    assert (report.ok, report.records, report.head) == (True, 3, (3, records[2].hash))
    assert any_store.head() == (3, records[2].hash)


def test_an_empty_log(any_store: Store) -> None:
    assert any_store.head() is None
    assert list(any_store.iter_audit()) == []
    assert any_store.verify_audit().ok


def test_since_reads_a_contiguous_piece(any_store: Store) -> None:
    for i in range(4):
        any_store.append_audit("decision", {"i": i}, time=T0 + timedelta(minutes=i))
    assert [r.seq for r in any_store.iter_audit(T0 + timedelta(minutes=2))] == [3, 4]
    assert list(any_store.iter_audit(T0 + timedelta(hours=1))) == []


def test_an_edited_record_is_named(any_store: Store, store_url: str) -> None:
    for i in range(3):
        any_store.append_audit("decision", {"allowed": False, "i": i})
    raw_sql(store_url, 'UPDATE audit SET payload = \'{"allowed":true,"i":1}\' WHERE seq = 2')
    report = any_store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_threads_appending_at_once_leave_one_gap_free_chain(any_store: Store) -> None:
    start = threading.Barrier(4)

    def append() -> None:
        start.wait(10)
        for i in range(15):
            any_store.append_audit("decision", {"thread": threading.get_ident(), "i": i})

    threads = [threading.Thread(target=append) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    report = any_store.verify_audit()
    assert (report.ok, report.records) == (True, 60)


def test_two_stores_on_one_database_share_one_chain_and_one_replay_set(store_url: str) -> None:
    """Two gunicorn workers, or two replicas: each has its own store object and connections."""
    first, second = open_any(store_url), open_any(store_url)
    try:
        first.append_audit("decision", {"by": "first"})
        second.append_audit("decision", {"by": "second"})
        assert [r.payload["by"] for r in first.iter_audit()] == ["first", "second"]
        assert first.verify_audit().ok
        assert first.claim_jti("iss", "jti", 2_000) is True
        assert second.claim_jti("iss", "jti", 2_000) is False
    finally:
        first.close()
        second.close()


# --- decisions, grants, keys ----------------------------------------------------------


def test_decision_records_round_trip(any_store: Store) -> None:
    assert any_store.get_decision("dec_1") is None
    any_store.save_decision("dec_1", {"allowed": True, "reasons": ["ok"]})
    assert any_store.get_decision("dec_1") == {"allowed": True, "reasons": ["ok"]}


def test_grants_round_trip_find_and_revoke(any_store: Store) -> None:
    any_store.save_grant(GRANT)
    child = {**GRANT, "jti": "grant-2", "parent_jti": "grant-1", "pull_request": None, "expires_at": 5_000}
    any_store.save_grant(child)
    got = any_store.get_grant("grant-1")
    assert got is not None
    assert {k: got[k] for k in GRANT} == GRANT
    assert got["revoked_at"] is None
    assert [g["jti"] for g in any_store.find_grants("parent_jti = ?", ("grant-1",))] == ["grant-2"]
    assert [g["jti"] for g in any_store.find_grants("repository_id = ? AND pull_request = ?", (2000, 7))] == [
        "grant-1"
    ]
    assert any_store.max_grant_expiry("kid-1") == 5_000
    assert any_store.max_grant_expiry("other") is None
    assert any_store.revoke_grant("grant-1", "pr-closed", 1_500) is True
    assert any_store.revoke_grant("grant-1", "pr-closed", 1_600) is False, "idempotent"
    revoked = any_store.get_grant("grant-1")
    assert revoked is not None
    assert (revoked["revoked_at"], revoked["revoked_reason"], revoked["github_token_sealed"]) == (
        1_500,
        "pr-closed",
        None,
    ), "the sealed GitHub token is dropped on revocation"
    assert any_store.find_grants("parent_jti IS NULL", ()) == [], "revoked grants are not found"
    assert any_store.purge_grants(3_000) == 1
    assert any_store.get_grant("grant-1") is None


def test_signing_keys_rotate_and_the_seal_key_stays(any_store: Store) -> None:
    any_store.add_signing_key("k1", b"pem-1", 100)
    any_store.add_seal_key("__seal__", b"seal", 100)
    any_store.add_seal_key("__seal__", b"other", 150)  # a second worker racing: the first key stays
    any_store.add_signing_key("k2", b"pem-2", 200)
    assert any_store.signing_keys() == [
        {"kid": "__seal__", "private_pem": b"seal", "created_at": 100, "retired_at": 100},
        {"kid": "k1", "private_pem": b"pem-1", "created_at": 100, "retired_at": 200},
        {"kid": "k2", "private_pem": b"pem-2", "created_at": 200, "retired_at": None},
    ]


BREAK_GLASS: dict[str, Any] = {
    "id": "bg_1", "repository_id": 2000, "action": "deploy", "state": "pending", "expires_at": 1900,
    "created_at": 1000, "invoker": "octocat",
}  # fmt: skip


def test_break_glass_round_trip_and_find(any_store: Store) -> None:
    any_store.save_break_glass(BREAK_GLASS)
    any_store.save_break_glass({**BREAK_GLASS, "id": "bg_2", "action": "merge", "created_at": 1100})
    assert any_store.find_break_glass(id="bg_1") == [BREAK_GLASS]
    assert any_store.find_break_glass(repository_id=2000, action="deploy", state="active") == []
    any_store.save_break_glass({**BREAK_GLASS, "state": "active", "confirmer": "alice"})
    [live] = any_store.find_break_glass(repository_id=2000, action="deploy", state="active", live_at=1500)
    assert live["confirmer"] == "alice"
    assert any_store.find_break_glass(repository_id=2000, action="deploy", state="active", live_at=1900) == []
    assert [r["id"] for r in any_store.find_break_glass(since=1050)] == ["bg_2"]
    assert [r["id"] for r in any_store.find_break_glass()] == ["bg_1", "bg_2"]


FREEZE: dict[str, Any] = {
    "id": "fr_1",
    "owner_id": 1000,
    "scope": "organisation",
    "state": "active",
    "created_at": 1000,
}


def test_freeze_round_trip_and_find(any_store: Store) -> None:
    any_store.save_freeze(FREEZE)
    any_store.save_freeze({**FREEZE, "id": "fr_2", "owner_id": 3000, "created_at": 1100})
    assert any_store.find_freezes(id="fr_1") == [FREEZE]
    any_store.save_freeze({**FREEZE, "state": "lifted", "lifter": "alice"})
    assert [r["id"] for r in any_store.find_freezes(state="active")] == ["fr_2"]
    assert [r["lifter"] for r in any_store.find_freezes(owner_id=1000)] == ["alice"], "replaced, not added"
    assert [r["id"] for r in any_store.find_freezes(since=1050)] == ["fr_2"]
    assert [r["id"] for r in any_store.find_freezes()] == ["fr_1", "fr_2"]


def test_a_freeze_without_its_key_fields_is_refused(any_store: Store) -> None:
    with pytest.raises(Unavailable, match="the freeze cannot be recorded"):
        any_store.save_freeze({"id": "fr_1"})


def test_held_deployments_of_every_repository(any_store: Store) -> None:
    for repository_id in (7, 8):
        any_store.save_deployment_gate({**HELD, "repository_id": repository_id})
    assert [h["repository_id"] for h in any_store.find_deployment_gates(None)] == [7, 8]
    assert [h["repository_id"] for h in any_store.find_deployment_gates(8)] == [8]


def test_check_writable_writes(any_store: Store) -> None:
    any_store.check_writable()
    any_store.check_writable()


# --- failure: always the gate's own error ---------------------------------------------------------

EVERY_METHOD: list[tuple[str, Callable[[Store], object]]] = [
    ("append_audit", lambda s: s.append_audit("decision", {})),
    ("iter_audit", lambda s: list(s.iter_audit())),
    ("iter_audit-since", lambda s: list(s.iter_audit(since=T0))),
    ("verify_audit", lambda s: s.verify_audit()),
    ("head", lambda s: s.head()),
    ("claim_jti", lambda s: s.claim_jti("i", "j", 1)),
    ("purge_expired", lambda s: s.purge_expired()),
    ("save_decision", lambda s: s.save_decision("d", {})),
    ("get_decision", lambda s: s.get_decision("d")),
    ("enqueue_job", lambda s: s.enqueue_job("d", "webhook", "push", b"{}", now=1)),
    ("claim_job", lambda s: s.claim_job("w", now=1, lease=60)),
    ("complete_job", lambda s: s.complete_job("d", "w", now=1)),
    ("fail_job", lambda s: s.fail_job("d", "w", now=1, error="e", retry_at=None)),
    ("queue_stats", lambda s: s.queue_stats(now=1)),
    ("known_deliveries", lambda s: s.known_deliveries(["d"])),
    ("redeliveries_asked", lambda s: s.redeliveries_asked(["g"])),
    ("record_redelivery", lambda s: s.record_redelivery(1, "g", now=1)),
    ("forget_redeliveries", lambda s: s.forget_redeliveries(1)),
    ("take_lease", lambda s: s.take_lease("l", "o", 60)),
    (
        "save_deployment_gate",
        lambda s: s.save_deployment_gate(
            {"repository_id": 1, "run_id": 2, "environment": "p", "state": "pending"}
        ),
    ),
    ("find_deployment_gates", lambda s: s.find_deployment_gates(1)),
    ("save_grant", lambda s: s.save_grant(GRANT)),
    ("get_grant", lambda s: s.get_grant("j")),
    ("find_grants", lambda s: s.find_grants("jti = ?", ("j",))),
    ("revoke_grant", lambda s: s.revoke_grant("j", "why", 1)),
    ("purge_grants", lambda s: s.purge_grants(1)),
    ("signing_keys", lambda s: s.signing_keys()),
    ("add_signing_key", lambda s: s.add_signing_key("k", b"pem", 1)),
    ("add_seal_key", lambda s: s.add_seal_key("__seal__", b"key", 1)),
    ("max_grant_expiry", lambda s: s.max_grant_expiry("k")),
    ("check_writable", lambda s: s.check_writable()),
    ("save_break_glass", lambda s: s.save_break_glass(BREAK_GLASS)),
    ("find_break_glass", lambda s: s.find_break_glass(id="bg_1")),
    ("save_freeze", lambda s: s.save_freeze(FREEZE)),
    ("find_freezes", lambda s: s.find_freezes(id="fr_1")),
    ("upgrade", lambda s: s.upgrade()),
    ("schema_version", lambda s: s.schema_version()),
]


@pytest.mark.parametrize("call", [c for _, c in EVERY_METHOD], ids=[n for n, _ in EVERY_METHOD])
def test_every_method_of_a_closed_store_answers_unavailable(
    any_store: Store, call: Callable[[Store], object]
) -> None:
    any_store.close()
    with pytest.raises(Unavailable, match=r": the store is closed; ") as info:
        call(any_store)
    assert info.value.code in {"audit-unavailable", "store-unavailable"}
    assert info.value.status == 503


# --- one transaction per decision, and retention ----------------------------------------------------


def test_a_decision_and_its_audit_record_are_written_together(any_store: Store) -> None:
    record = any_store.record_decision(
        "dec_1", {"allowed": True, "z": 1, "a": 2}, "decision", {"id": "dec_1"}
    )
    assert (record.seq, record.kind) == (1, "decision")
    assert list(any_store.get_decision("dec_1") or {}) == ["allowed", "z", "a"], "kept in its own order"
    assert any_store.verify_audit().ok


def test_a_decision_that_cannot_be_audited_leaves_no_page(any_store: Store) -> None:
    with pytest.raises(Unavailable) as info:
        any_store.record_decision("dec_1", {"allowed": True}, "decision", {"bad": float("nan")})
    assert info.value.code == "audit-unavailable"
    assert any_store.get_decision("dec_1") is None
    assert any_store.head() is None


HELD = {"repository_id": 7, "run_id": 9, "environment": "production", "state": "pending", "sha": "a" * 40}


def test_what_an_origin_keeps_is_written_with_its_decision(any_store: Store) -> None:
    job = QueuedJob("check:dec_1", "check-run", "dec_1", b'{"decision_id": "dec_1"}')
    any_store.record_decision(
        "dec_1", {"allowed": True}, "decision", {"id": "dec_1"}, keep=Kept(jobs=(job,), deployment=HELD)
    )
    assert any_store.find_deployment_gates(7, run_id=9) == [HELD]
    claimed = any_store.claim_job("w", now=int(T0.timestamp()), lease=60)
    assert claimed is not None and (claimed.id, claimed.kind, claimed.body) == (job.id, job.kind, job.body)


def test_a_decision_refused_as_a_replay_keeps_nothing(any_store: Store) -> None:
    replay = Replay("https://issuer.example", "jti-1", int(T0.timestamp()) + 600)
    any_store.record_decision("dec_1", {"allowed": True}, "decision", {"id": "dec_1"}, replay=replay)
    job = QueuedJob("check:dec_2", "check-run", "dec_2", b"{}")
    with pytest.raises(AlreadyUsed):
        any_store.record_decision(
            "dec_2", {}, "decision", {"id": "dec_2"}, replay=replay, keep=Kept(jobs=(job,), deployment=HELD)
        )
    assert any_store.get_decision("dec_2") is None
    assert any_store.find_deployment_gates(7, run_id=9) == []
    assert any_store.queue_stats(now=int(T0.timestamp())).depth == 0


def test_a_decision_that_cannot_be_audited_keeps_nothing(any_store: Store) -> None:
    with pytest.raises(Unavailable):
        any_store.record_decision(
            "dec_1", {"allowed": True}, "decision", {"bad": float("nan")}, keep=Kept(deployment=HELD)
        )
    assert any_store.find_deployment_gates(7, run_id=9) == []


def test_a_held_deployment_without_its_key_is_refused_before_anything_is_written(any_store: Store) -> None:
    with pytest.raises(Unavailable, match="held deployment cannot be recorded"):
        any_store.record_decision("dec_1", {}, "decision", {}, keep=Kept(deployment={"run_id": 9}))
    assert any_store.head() is None and any_store.get_decision("dec_1") is None


def test_retention_drops_old_pages_and_finished_jobs_but_never_the_chain(any_store: Store) -> None:
    any_store.record_decision("dec_old", {"allowed": True}, "decision", {"id": "dec_old"})
    for job in ("done", "dead", "waiting"):
        any_store.enqueue_job(job, "webhook", "push", job.encode(), now=100)
    done = any_store.claim_job("w", now=100, lease=60)
    assert done is not None and any_store.complete_job(done.id, "w", now=100)
    dead = any_store.claim_job("w", now=100, lease=60)
    assert dead is not None and any_store.fail_job(dead.id, "w", now=100, error="x", retry_at=None)
    now = int(T0.timestamp())
    assert any_store.purge_retained(100) == 0, "nothing was last touched before 100"
    assert any_store.purge_retained(now + 1) == 3, "the page, the done job and the given-up job"
    assert any_store.get_decision("dec_old") is None
    assert any_store.queue_stats(now=200).depth == 1, "a waiting job is never purged"
    assert any_store.verify_audit().records == 1, "the audit chain is never purged"
