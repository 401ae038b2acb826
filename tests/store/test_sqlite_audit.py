"""The SQLite store's audit chain: appends, reads, verification, tampering, and failing writes."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.errors import ConfigError, GateError, Unavailable
from app.store.canonical import GENESIS, record_hash
from app.store.opener import open_store
from app.store.sqlite import SQLiteStore
from tests.store.conftest import T0, run_sql

Fill = Callable[[int], None]


# --- appending and reading ---------------------------------------------------------------------


def test_each_record_links_to_the_one_before(store: SQLiteStore, fill: Fill) -> None:
    fill(3)
    records = list(store.iter_audit())
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    last = records[-1]
    assert last.hash == record_hash(3, last.time, "decision", last.payload, records[1].hash)
    assert store.head() == (3, last.hash)


def test_append_returns_the_record_as_it_reads_back(store: SQLiteStore) -> None:
    written = store.append_audit("token-refused", {"code": "expired", "token_sha256": "ab" * 32})
    assert written.time == T0, "the store's clock stamps records given no time"
    assert list(store.iter_audit()) == [written]


def test_an_empty_log_has_no_head_and_verifies(store: SQLiteStore) -> None:
    assert store.head() is None
    report = store.verify_audit()
    assert report.ok and report.records == 0 and report.head is None


def test_payloads_are_hashed_in_the_form_they_read_back(store: SQLiteStore) -> None:
    # Integer keys sort differently once they are JSON strings; datetimes and tuples become text and lists.
    written = store.append_audit(
        "decision",
        {10: "ten", 9: "nine", "at": T0, "pair": (1, 2), "name": "é\u2028"},  # type: ignore[dict-item]  # int keys on purpose
    )
    assert written.payload == {
        "10": "ten",
        "9": "nine",
        "at": "2026-11-23T10:00:00.000000+00:00",
        "pair": [1, 2],
        "name": "é\u2028",
    }
    assert next(iter(store.iter_audit())).payload == written.payload
    assert store.verify_audit().ok


@pytest.mark.parametrize(
    ("payload", "when"),
    [
        ({"x": object()}, None),  # not JSON at all
        (
            {"x": float("nan")},
            None,
        ),  # Python writes NaN, but it is not JSON: other verifiers could not read it
        ({"at": datetime(2026, 1, 1)}, None),  # a naive datetime: which zone?
        ({"x": 1}, datetime(2026, 1, 1)),  # a naive record time
        ({1: "a", "1": "b"}, None),  # two keys that become one in JSON: one value would be lost
    ],
    ids=["unserialisable", "nan", "naive-datetime-in-payload", "naive-record-time", "keys-collide-in-json"],
)
def test_a_record_that_cannot_be_encoded_is_refused_and_the_chain_stays_whole(
    store: SQLiteStore, fill: Fill, payload: dict[str, object], when: datetime | None
) -> None:
    fill(1)
    with pytest.raises(Unavailable, match="cannot be encoded") as info:
        store.append_audit("decision", payload, time=when)
    assert info.value.code == "audit-unavailable"
    fill(1)
    assert store.verify_audit().ok and store.head() is not None and store.head()[0] == 2  # type: ignore[index]


def test_since_starts_at_the_first_record_at_or_after_it(store: SQLiteStore, fill: Fill) -> None:
    fill(5)  # T0, T0+1min, ... T0+4min
    assert [r.seq for r in store.iter_audit(since=T0 + timedelta(minutes=2))] == [3, 4, 5]
    assert [r.seq for r in store.iter_audit(since=T0 + timedelta(seconds=61))] == [3, 4, 5]
    assert [r.seq for r in store.iter_audit(since=T0 - timedelta(days=1))] == [1, 2, 3, 4, 5]
    assert list(store.iter_audit(since=T0 + timedelta(days=1))) == []


def test_since_compares_instants_not_time_zones(store: SQLiteStore, fill: Fill) -> None:
    fill(3)
    one_past_ten_utc = datetime(2026, 11, 23, 11, 1, tzinfo=timezone(timedelta(hours=1)))
    assert [r.seq for r in store.iter_audit(since=one_past_ten_utc)] == [2, 3]


def test_since_keeps_the_export_contiguous_when_a_clock_was_behind(store: SQLiteStore) -> None:
    # Workers' clocks differ: record 3 carries a time before record 2's. It still belongs to the piece.
    store.append_audit("decision", {"i": 1}, time=T0)
    store.append_audit("decision", {"i": 2}, time=T0 + timedelta(seconds=10))
    store.append_audit("decision", {"i": 3}, time=T0 + timedelta(seconds=9))
    assert [r.seq for r in store.iter_audit(since=T0 + timedelta(seconds=5))] == [2, 3]


def test_since_must_say_its_time_zone(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        list(store.iter_audit(since=datetime(2026, 11, 23)))  # the point of the test


def test_reading_crosses_page_boundaries(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.store.sqlite._PAGE", 3)
    for i in range(7):
        store.append_audit("decision", {"i": i})
    assert [r.payload["i"] for r in store.iter_audit()] == list(range(7))
    assert store.verify_audit().records == 7


# --- verification and tampering ----------------------------------------------------------------


def _rehash_record_2(path: Path) -> None:
    """Edit record 2 and recompute its own hash, as a careful forger would."""
    conn = sqlite3.connect(path)
    seq, when, kind, prev = conn.execute(
        "SELECT seq, time, kind, prev_hash FROM audit WHERE seq = 2"
    ).fetchone()
    payload = {"allowed": True, "decision_id": "dec_2"}
    digest = record_hash(seq, datetime.fromisoformat(when), kind, payload, prev)
    conn.execute(
        "UPDATE audit SET payload = ?, hash = ? WHERE seq = 2",
        ('{"allowed":true,"decision_id":"dec_2"}', digest),
    )
    conn.commit()
    conn.close()


def _sql(script: str) -> Callable[[Path], None]:
    return lambda path: run_sql(path, script)


_SWAP_ROWS_2_AND_3 = """
UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = -3 WHERE seq = 3;
UPDATE audit SET seq = 2 WHERE seq = -3; UPDATE audit SET seq = 3 WHERE seq = -2;
"""

TAMPERING = [
    # (tamper, first broken seq, what the report says)
    (
        _sql('UPDATE audit SET payload = \'{"allowed":true,"decision_id":"dec_2"}\' WHERE seq = 2'),
        2,
        "record 2: its contents do not match its hash (edited?)",
    ),
    (_sql("UPDATE audit SET kind = 'token-refused' WHERE seq = 3"), 3, "record 3: its contents do not match"),
    (
        _sql("UPDATE audit SET time = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 4"),
        4,
        "record 4: its contents do not match",
    ),
    (_rehash_record_2, 3, "record 3 does not follow record 2: its prev_hash is not the hash of record 2"),
    (
        _sql("DELETE FROM audit WHERE seq = 3"),
        3,
        "record 3 is missing: the chain goes from record 2 to record 4 (deleted?)",
    ),
    (_sql("DELETE FROM audit WHERE seq IN (2, 3)"), 2, "records 2-3 are missing"),
    (_sql("DELETE FROM audit WHERE seq = 1"), 1, "record 1 is missing: the chain starts at record 2"),
    (
        _sql("DELETE FROM audit WHERE seq = 3; UPDATE audit SET seq = seq - 1 WHERE seq > 3"),
        3,
        "record 3 does not follow record 2",
    ),
    (
        _sql("UPDATE audit SET payload = (SELECT payload FROM audit WHERE seq = 4) WHERE seq = 2"),
        2,
        "record 2: its contents do not match",
    ),
    (_sql(_SWAP_ROWS_2_AND_3), 2, "record 2 does not follow record 1"),
    (
        _sql(f"UPDATE audit SET prev_hash = '{'f' * 64}' WHERE seq = 1"),
        1,
        "record 1 does not start the chain",
    ),
    (
        _sql("UPDATE audit SET payload = '{not json' WHERE seq = 2"),
        2,
        "record 2 cannot be read: its payload is not valid JSON (edited?)",
    ),
    (_sql("UPDATE audit SET payload = '[1, 2]' WHERE seq = 2"), 2, "its payload is not a JSON object"),
    (
        _sql("UPDATE audit SET time = 'yesterday' WHERE seq = 2"),
        2,
        "its time 'yesterday' is not an ISO-8601 time",
    ),
    (_sql("UPDATE audit SET time = '2026-11-23T10:01:00' WHERE seq = 2"), 2, "has no time zone"),
]


@pytest.mark.parametrize(
    ("tamper", "first_bad", "problem"),
    TAMPERING,
    ids=[
        "edit-payload",
        "edit-kind",
        "edit-time",
        "edit-and-rehash-the-record",
        "delete-middle",
        "delete-two",
        "delete-first",
        "delete-and-renumber",
        "copy-another-records-payload",
        "swap-two-rows",
        "replace-the-genesis-link",
        "payload-not-json",
        "payload-not-an-object",
        "time-not-a-time",
        "time-without-zone",
    ],
)
def test_tampering_is_detected_at_the_first_broken_record(
    store: SQLiteStore,
    fill: Fill,
    db_path: Path,
    tamper: Callable[[Path], None],
    first_bad: int,
    problem: str,
) -> None:
    fill(5)
    assert store.verify_audit().ok
    tamper(db_path)
    report = store.verify_audit()
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert problem in (report.problem or "")
    assert report.head is None


def test_a_sound_chain_reports_its_length_and_head(store: SQLiteStore, fill: Fill) -> None:
    fill(4)
    report = store.verify_audit()
    assert report == type(report)(ok=True, records=4, head=store.head())


def test_a_truncated_tail_is_invisible_to_the_chain_alone_but_not_to_an_anchor(
    store: SQLiteStore, fill: Fill, db_path: Path
) -> None:
    fill(5)
    anchor = store.head()
    assert anchor is not None
    run_sql(db_path, "DELETE FROM audit WHERE seq >= 4")
    assert store.verify_audit().ok, "a pure hash chain cannot see a cut tail: docs/audit.md says so"
    report = store.verify_audit(anchor=anchor)
    assert not report.ok and report.first_bad_seq == 4
    assert "record 5 was anchored, but the log ends at record 3" in (report.problem or "")


def test_an_anchor_catches_a_log_rewritten_and_rehashed_from_the_start(
    store: SQLiteStore, fill: Fill
) -> None:
    fill(2)
    anchor = (2, "0" * 63 + "1")
    report = store.verify_audit(anchor=anchor)
    assert not report.ok and report.first_bad_seq == 2
    assert "was anchored: the log was rewritten and re-hashed" in (report.problem or "")
    assert store.verify_audit(anchor=store.head()).ok


def test_reading_a_corrupt_record_says_which_and_what_to_do(
    store: SQLiteStore, fill: Fill, db_path: Path
) -> None:
    fill(3)
    run_sql(db_path, "UPDATE audit SET payload = 'oops' WHERE seq = 2")
    records = store.iter_audit()
    assert next(records).seq == 1
    with pytest.raises(
        GateError, match=r"audit record 2 cannot be read: .* run `agent-gate audit verify`"
    ) as info:
        next(records)
    assert info.value.code == "audit-corrupt"


# --- failing writes ------------------------------------------------------------------------------


@pytest.fixture
def blocked(db_path: Path) -> Iterator[Callable[[str], None]]:
    """Obstacles to writing, each as someone or something outside the gate would cause it."""
    holders: list[sqlite3.Connection] = []

    def _block(how: str) -> None:
        if how == "locked":  # another process holds the write lock longer than the busy timeout
            conn = sqlite3.connect(db_path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holders.append(conn)
        elif how == "refused":  # the database refuses writes (as a full disk or a read-only mount would)
            run_sql(
                db_path,
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full /secret/path'); END;"
                "CREATE TRIGGER no_replay BEFORE INSERT ON replay BEGIN SELECT RAISE(ABORT, 'no'); END;"
                "CREATE TRIGGER no_beat_i BEFORE INSERT ON heartbeat BEGIN SELECT RAISE(ABORT, 'no'); END;"
                "CREATE TRIGGER no_beat_u BEFORE UPDATE ON heartbeat BEGIN SELECT RAISE(ABORT, 'no'); END;",
            )
        else:
            raise AssertionError(how)

    yield _block
    for conn in holders:
        conn.rollback()
        conn.close()


OBSTACLES = [
    # (obstacle, words in the message)
    ("locked", "the database is locked by another writer"),
    ("refused", "a constraint of the database refused the write"),
    ("closed", "the store is closed"),
]


@pytest.mark.parametrize(("obstacle", "cause"), OBSTACLES, ids=[o[0] for o in OBSTACLES])
def test_a_failed_audit_write_is_a_503_never_a_silent_loss(
    db_path: Path, blocked: Callable[[str], None], obstacle: str, cause: str
) -> None:
    store = SQLiteStore(db_path, busy_timeout_ms=50)
    store.append_audit("decision", {"i": 1})
    if obstacle == "closed":
        store.close()
    else:
        blocked(obstacle)
    with pytest.raises(Unavailable) as info:
        store.append_audit("decision", {"i": 2})
    error = info.value
    assert (error.code, error.status) == ("audit-unavailable", 503)
    assert error.message.startswith("the audit log cannot be written, so nothing was allowed")
    assert cause in error.message
    assert str(db_path.parent) not in error.message and "/secret/path" not in error.message
    assert isinstance(error.__cause__, sqlite3.Error), "wrapped at the boundary, cause kept for the log"
    store.close()
    reopened = SQLiteStore(db_path)
    assert [r.seq for r in reopened.iter_audit()] == [1], "nothing half-written"
    reopened.close()


@pytest.mark.parametrize(("obstacle", "cause"), OBSTACLES, ids=[o[0] for o in OBSTACLES])
def test_check_writable_really_writes(
    db_path: Path, blocked: Callable[[str], None], obstacle: str, cause: str
) -> None:
    store = SQLiteStore(db_path, busy_timeout_ms=50)
    store.check_writable()
    if obstacle == "closed":
        store.close()
    else:
        blocked(obstacle)
    with pytest.raises(Unavailable) as info:
        store.check_writable()
    assert info.value.code == "store-unavailable"
    assert info.value.message.startswith(f"the store cannot be written: {cause}; ")
    assert str(db_path.parent) not in info.value.message, "no filesystem path in HTTP answers"
    store.close()


def test_a_store_that_cannot_be_opened_says_where_and_what_to_check(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    with pytest.raises(
        Unavailable, match=r"cannot be opened .* check that its directory is writable"
    ) as info:
        SQLiteStore(tmp_path / "a-directory.db")
    assert info.value.code == "store-unavailable"


# --- the file, decisions, opening ------------------------------------------------------------------


def test_the_directory_and_file_are_private_to_the_gates_user(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gate.db"
    old = os.umask(0o022)
    try:
        SQLiteStore(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file holds grant-signing keys"


def test_the_store_runs_in_wal_mode(store: SQLiteStore, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_decision_records_are_kept_for_the_decision_page(store: SQLiteStore) -> None:
    record = {"decision_id": "dec_abc", "allowed": False, "reasons": [{"code": "no-approval"}], "at": T0}
    store.save_decision("dec_abc", record)
    kept = store.get_decision("dec_abc")
    assert kept == {**record, "at": "2026-11-23T10:00:00.000000+00:00"}
    assert list(kept) == list(record), "in the record's own order, as the page shows it"
    assert store.get_decision("dec_missing") is None
    store.save_decision("dec_abc", {"allowed": True})
    assert store.get_decision("dec_abc") == {"allowed": True}, "saving again replaces"


def test_a_closed_store_refuses_reads_too(store: SQLiteStore) -> None:
    store.close()
    with pytest.raises(Unavailable, match=r"the decision record cannot be read: the store is closed; "):
        store.get_decision("dec_abc")


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite:///{tmp}/a.db", "a.db"),
        ("sqlite:////{tmp}/b.db", "b.db"),
        ("{tmp}/c.db", "c.db"),
        ("  sqlite:///{tmp}/d.db ", "d.db"),
        ("relative/e.db", "relative/e.db"),
    ],
    ids=["sqlite-url", "sqlite-url-four-slashes", "absolute-path", "surrounding-spaces", "relative-path"],
)
def test_open_store_accepts_sqlite_urls_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, file: str
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(
        url.format(tmp=str(tmp_path).lstrip("/")) if "sqlite:" in url else url.format(tmp=tmp_path)
    )
    assert isinstance(store, SQLiteStore)
    store.close()
    assert (tmp_path / file).is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/gate", "the 'mysql' store is not supported"),
        ("sqlite://host/gate.db", "names no absolute file path"),
        ("sqlite:///", "names no absolute file path"),
        ("sqlite:////tmp/x.db?mode=ro", "has URL options"),
        (":memory:", "is not a file"),
        ("", "is not a file"),
    ],
    ids=[
        "mysql",
        "sqlite-with-host",
        "sqlite-without-path",
        "sqlite-with-options",
        "memory",
        "empty",
    ],
)
def test_open_store_refuses_anything_else_and_says_what_works(url: str, message: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"expected sqlite:///ABSOLUTE/PATH\.db, a file path or postgresql://USER@HOST:PORT/DB",
    ) as info:
        open_store(url)
    assert message in info.value.message
    assert info.value.message.startswith("GATE_DATABASE: ")


# --- no sqlite3 error ever escapes -------------------------------------------------------------------

GATE_RECORD = {"repository_id": 1, "run_id": 2, "environment": "production", "state": "pending"}

EVERY_METHOD: list[tuple[str, Callable[[SQLiteStore], object]]] = [
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
    ("fail_job", lambda s: s.fail_job("d", "w", now=1, error="x", retry_at=2)),
    ("queue_stats", lambda s: s.queue_stats(now=1)),
    ("save_deployment_gate", lambda s: s.save_deployment_gate(GATE_RECORD)),
    ("find_deployment_gates", lambda s: s.find_deployment_gates(1)),
    ("get_grant", lambda s: s.get_grant("j")),
    ("find_grants", lambda s: s.find_grants("jti = ?", ("j",))),
    ("revoke_grant", lambda s: s.revoke_grant("j", "why", 1)),
    ("purge_grants", lambda s: s.purge_grants(1)),
    ("signing_keys", lambda s: s.signing_keys()),
    ("add_signing_key", lambda s: s.add_signing_key("k", b"pem", 1)),
    ("add_seal_key", lambda s: s.add_seal_key("__seal__", b"key", 1)),
    ("max_grant_expiry", lambda s: s.max_grant_expiry("k")),
    ("check_writable", lambda s: s.check_writable()),
]


@pytest.mark.parametrize("call", [c for _, c in EVERY_METHOD], ids=[n for n, _ in EVERY_METHOD])
def test_every_method_of_a_closed_store_answers_unavailable(
    store: SQLiteStore, call: Callable[[SQLiteStore], object]
) -> None:
    store.close()
    with pytest.raises(Unavailable, match=r": the store is closed; ") as info:
        call(store)
    assert info.value.code in {"audit-unavailable", "store-unavailable"}
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_audit_appends_are_fsynced_and_other_writes_are_not(store: SQLiteStore) -> None:
    statements: list[str] = []
    store._db.get().set_trace_callback(statements.append)  # what the connection really runs
    store.claim_jti("https://iss", "jti", 2_000)
    store.save_decision("dec_1", {"allowed": True})
    assert not any("synchronous = FULL" in s for s in statements), (
        "no fsync for replay rows and decision pages"
    )
    statements.clear()
    store.append_audit("decision", {"decision_id": "dec_1"})
    sequence = [s for s in statements if s.startswith(("PRAGMA", "BEGIN", "COMMIT"))]
    assert sequence == [
        "PRAGMA synchronous = FULL",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "PRAGMA synchronous = NORMAL",
    ]
