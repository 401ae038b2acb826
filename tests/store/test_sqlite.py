"""The SQLite store: a tamper-evident audit chain, single-use token ids, safe across processes."""

from __future__ import annotations

import io
import json
import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.audit import export_jsonl, verify_chain
from app.errors import ConfigError, Unavailable
from app.store.canonical import GENESIS, record_hash
from app.store.sqlite import SQLiteStore, open_store


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "gate.db")
    yield s
    s.close()


def fill(store: SQLiteStore, n: int = 5) -> None:
    for i in range(n):
        store.append_audit("decision", {"decision_id": f"dec_{i}", "allowed": i % 2 == 0})


def test_records_are_chained(store):
    fill(store, 3)
    records = list(store.iter_audit())
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert records[1].prev_hash == records[0].hash and records[2].prev_hash == records[1].hash
    assert records[2].hash == record_hash(3, records[2].time, "decision", records[2].payload, records[1].hash)
    assert store.verify_audit().ok and store.verify_audit().records == 3
    assert store.head() == (3, records[2].hash)


def _sql(store: SQLiteStore, statement: str) -> None:
    conn = sqlite3.connect(store.path)
    conn.executescript(statement)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("tamper", "first_bad", "problem"),
    [
        ('UPDATE audit SET payload = \'{"allowed":true,"decision_id":"dec_1"}\' WHERE seq = 2', 2, "edited?"),
        ("UPDATE audit SET kind = 'nothing' WHERE seq = 3", 3, "edited?"),
        ("UPDATE audit SET time = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 4", 4, "edited?"),
        ("DELETE FROM audit WHERE seq = 3", 4, "record 3 is missing"),
        ("DELETE FROM audit WHERE seq = 1", 2, "record 1 is missing"),
        (
            "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; "
            "UPDATE audit SET seq = 3 WHERE seq = 100;",
            2,
            "does not link",
        ),
    ],
    ids=["edit-payload", "edit-kind", "edit-time", "delete-middle", "delete-first", "reorder"],
)
def test_tampering_is_detected_and_the_first_broken_record_named(store, tamper, first_bad, problem):
    fill(store, 5)
    _sql(store, tamper)
    report = verify_chain(store)
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert problem in (report.problem or "")


def test_iter_since(store):
    t0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
    for i in range(4):
        store.append_audit("decision", {"i": i}, time=t0 + timedelta(hours=i))
    assert [r.payload["i"] for r in store.iter_audit(since=t0 + timedelta(hours=2))] == [2, 3]


def test_export_is_json_lines_that_reverify(store):
    fill(store, 3)
    out = io.StringIO()
    assert export_jsonl(store, out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    prev = GENESIS
    for line in lines:
        when = datetime.fromisoformat(line["time"])
        assert line["prev_hash"] == prev
        assert (
            record_hash(line["seq"], when, line["kind"], line["payload"], line["prev_hash"]) == line["hash"]
        )
        prev = line["hash"]


def test_a_failed_audit_write_is_unavailable_never_silent(store, monkeypatch):
    fill(store, 1)
    _sql(store, "CREATE TRIGGER no_more BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(Unavailable) as info:
        store.append_audit("decision", {"x": 1})
    assert info.value.code == "audit-unavailable" and info.value.status == 503
    assert "disk full" not in info.value.message
    assert store.verify_audit().ok


def test_unserialisable_payload_is_refused_without_breaking_the_chain(store):
    with pytest.raises(Unavailable):
        store.append_audit("decision", {"x": object()})
    fill(store, 1)
    assert store.verify_audit().ok


def test_replay_claims(store):
    assert store.claim_jti("https://iss", "jti-1", 100) is True
    assert store.claim_jti("https://iss", "jti-1", 100) is False
    assert store.claim_jti("https://other", "jti-1", 100) is True, "keyed on (issuer, jti)"


def test_purge_keeps_rows_within_the_leeway_margin(store):
    store.claim_jti("i", "old", 1000)
    store.claim_jti("i", "recent", 1900)
    assert store.purge_expired(2000) == 1
    assert store.claim_jti("i", "recent", 1900) is False
    assert store.claim_jti("i", "old", 1000) is True


def test_decisions_and_deliveries(store):
    store.save_decision("dec_abc", {"allowed": True})
    assert store.get_decision("dec_abc") == {"allowed": True}
    assert store.get_decision("dec_missing") is None
    assert store.claim_delivery("d-1", "pull_request") is True
    assert store.claim_delivery("d-1", "pull_request") is False


def test_check_writable(store, tmp_path):
    store.check_writable()
    _sql(store, "CREATE TRIGGER ro BEFORE INSERT ON heartbeat BEGIN SELECT RAISE(ABORT, 'read-only'); END")
    _sql(store, "CREATE TRIGGER ro2 BEFORE UPDATE ON heartbeat BEGIN SELECT RAISE(ABORT, 'read-only'); END")
    with pytest.raises(Unavailable) as info:
        store.check_writable()
    assert info.value.code == "store-unavailable"
    assert str(tmp_path) not in info.value.message, "no filesystem path in answers"


@pytest.mark.parametrize(
    ("url", "ok"),
    [("sqlite:///{tmp}/a.db", True), ("{tmp}/b.db", True), ("postgresql://db/gate", False)],
    ids=["sqlite-url", "plain-path", "unsupported"],
)
def test_open_store(tmp_path, url, ok):
    url = url.format(tmp=tmp_path)
    if ok:
        open_store(url).close()
    else:
        with pytest.raises(ConfigError, match="not supported"):
            open_store(url)


# --- several processes at once ---------------------------------------------------------------------


def _append_many(path: str, worker: int, n: int) -> None:
    store = SQLiteStore(Path(path))
    for i in range(n):
        store.append_audit("decision", {"worker": worker, "i": i})
    store.close()


def _claim(path: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = SQLiteStore(Path(path))
    results.put(store.claim_jti("https://iss", "the-same-jti", 10**10))
    store.close()


@pytest.mark.slow
def test_concurrent_writers_from_several_processes_leave_a_valid_chain(tmp_path):
    path = str(tmp_path / "shared.db")
    SQLiteStore(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = SQLiteStore(Path(path))
    records = list(store.iter_audit())
    assert [r.seq for r in records] == list(range(1, 201))
    assert sorted((r.payload["worker"], r.payload["i"]) for r in records) == [
        (w, i) for w in range(4) for i in range(50)
    ]
    assert store.verify_audit().ok
    store.close()


@pytest.mark.slow
def test_racing_processes_claim_a_jti_exactly_once(tmp_path):
    path = str(tmp_path / "shared.db")
    SQLiteStore(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(path, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(results.get(timeout=5) for _ in range(4)) == [False, False, False, True]
