"""Refused tokens are audited within a per-source bound, and the count of the rest is never lost."""

from __future__ import annotations

import pytest

from app.store.refusals import RefusalAudit
from app.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path):
    opened = SQLiteStore(tmp_path / "audit.db")
    yield opened
    opened.close()


def kinds(store):
    return [r.kind for r in store.iter_audit()]


def test_a_flood_from_one_source_is_bounded_and_counted(store):
    now = [1_000.0]
    audit = RefusalAudit(store, clock=lambda: now[0], burst=3, window=60)
    for n in range(25):
        audit.record("10.0.0.1", {"code": "malformed" if n % 2 else "replayed"})
    assert kinds(store) == ["token-refused"] * 3
    now[0] += 60
    audit.record("10.0.0.1", {"code": "malformed"})  # a new window: its first refusal is recorded
    records = list(store.iter_audit())
    assert [r.kind for r in records] == ["token-refused"] * 3 + ["token-refusals-aggregated", "token-refused"]
    aggregate = records[3].payload
    assert aggregate["count"] == 22 and aggregate["source"] == "10.0.0.1"
    assert aggregate["codes"] == {"malformed": 11, "replayed": 11}
    assert aggregate["recorded_individually"] == 3
    assert 3 + aggregate["count"] == 25, "every refusal is accounted for"


def test_each_source_has_its_own_bound(store):
    audit = RefusalAudit(store, clock=lambda: 0.0, burst=2, window=60)
    for source in ("a", "b"):
        for _ in range(5):
            audit.record(source, {"code": "malformed"})
    assert kinds(store) == ["token-refused"] * 4


def test_at_exit_the_open_windows_are_written_out(store):
    audit = RefusalAudit(store, clock=lambda: 0.0, burst=1, window=60)
    for _ in range(4):
        audit.record("a", {"code": "expired"})
    audit.flush(everything=True)
    aggregate = list(store.iter_audit())[-1]
    assert aggregate.kind == "token-refusals-aggregated" and aggregate.payload["count"] == 3


def test_the_number_of_sources_kept_is_bounded(store):
    audit = RefusalAudit(store, clock=lambda: 0.0, burst=1, window=60, max_sources=3)
    for n in range(3):
        audit.record(f"s{n}", {"code": "malformed"})
        audit.record(f"s{n}", {"code": "malformed"})
    audit.record("s3", {"code": "malformed"})  # past the bound: every window is written out first
    audit.flush(everything=True)
    records = list(store.iter_audit())
    individual = sum(r.kind == "token-refused" for r in records)
    aggregated = sum(r.payload["count"] for r in records if r.kind == "token-refusals-aggregated")
    assert individual + aggregated == 7, "memory is bounded, the count is not lost"
    assert store.verify_audit().ok


def test_every_store_records_the_request_id_of_the_request_being_answered(any_store):
    from app.observe.logs import bind_request_id, reset_request_id

    token = bind_request_id("trace-store-1")
    try:
        inside = any_store.append_audit("test", {"x": 1})
        decided = any_store.record_decision("dec_1", {"decision_id": "dec_1"}, "decision", {"x": 2})
    finally:
        reset_request_id(token)
    outside = any_store.append_audit("test", {"x": 3})
    assert inside.payload["request_id"] == decided.payload["request_id"] == "trace-store-1"
    assert "request_id" not in outside.payload
    assert any_store.verify_audit().ok
