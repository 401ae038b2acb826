"""Group commit: concurrent audit appends share one durable commit, and each is answered only after it.

The first half specifies :class:`app.store.group.GroupCommit` with a writer that records its batches
(deterministic: the first batch is held until the others have queued behind it). The second half runs
the real batch writer of each store with batches built by hand: replays inside a batch and against
the store, a chain linked in batch order, and nothing written for a refused append.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.errors import AlreadyUsed, Unavailable
from app.store.base import Replay, Store
from app.store.group import GroupCommit, Outcome, PendingAppend, chain, prepare, settle
from tests.store.conftest import T0

ISS = "https://token.actions.githubusercontent.com"


def item(n: int, *, jti: str | None = None, page: bool = False) -> PendingAppend:
    return prepare(
        "decision",
        {"n": n},
        T0 + timedelta(seconds=n),
        decision=(f"dec_{n}", f'{{"n": {n}}}') if page else None,
        replay=Replay(ISS, jti, 10**10) if jti else None,
    )


class HeldWriter:
    """A batch writer that records its batches; the first one waits until released."""

    def __init__(self, fail: Callable[[list[PendingAppend]], BaseException | None] = lambda _: None) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self._fail = fail

    def __call__(self, batch: list[PendingAppend]) -> list[Outcome]:
        self.entered.set()
        if not self.batches:
            assert self.release.wait(10)
        self.batches.append([i.normal["n"] for i in batch])
        failure = self._fail(batch)
        if failure is not None:
            raise failure
        admitted = [i.replay is None or i.replay.jti != "used" for i in batch]
        return settle(admitted, chain([i for i, ok in zip(batch, admitted, strict=True) if ok], None))


def submit_all(
    group: GroupCommit, items: list[PendingAppend]
) -> tuple[dict[int, Any], list[threading.Thread]]:
    results: dict[int, Any] = {}

    def run(it: PendingAppend) -> None:
        try:
            results[it.normal["n"]] = group.submit(it)
        except Exception as exc:  # noqa: BLE001  # the test inspects it
            results[it.normal["n"]] = exc

    threads = [threading.Thread(target=run, args=(it,)) for it in items]
    for t in threads:
        t.start()
    return results, threads


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def held() -> Iterator[tuple[HeldWriter, GroupCommit]]:
    writer = HeldWriter()
    yield writer, GroupCommit(writer)
    writer.release.set()


def test_a_lone_append_is_written_at_once_in_a_batch_of_its_own() -> None:
    writer = HeldWriter()
    writer.release.set()
    group = GroupCommit(writer)
    record = group.submit(item(1))
    assert (record.seq, record.payload) == (1, {"n": 1})
    assert writer.batches == [[1]]
    assert (group.commits, group.appends) == (1, 1)


def test_appends_arriving_during_a_commit_share_the_next_one(held: tuple[HeldWriter, GroupCommit]) -> None:
    writer, group = held
    _, first_threads = submit_all(group, [item(0)])
    assert writer.entered.wait(10)
    rest, threads = submit_all(group, [item(n) for n in range(1, 9)])
    wait_until(lambda: group.waiting() == 8)
    assert not rest, "nothing is answered before its commit"
    writer.release.set()
    for t in first_threads + threads:
        t.join(10)
    assert writer.batches[0] == [0]
    assert sorted(writer.batches[1]) == list(range(1, 9)), "the eight waiting appends: one commit"
    assert (group.commits, group.appends) == (2, 9)
    assert all(not isinstance(r, Exception) for r in rest.values())


def test_a_batch_never_exceeds_its_bound(held: tuple[HeldWriter, GroupCommit]) -> None:
    writer, group = held
    group.max_batch = 3
    submit_all(group, [item(0)])
    assert writer.entered.wait(10)
    _, threads = submit_all(group, [item(n) for n in range(1, 8)])
    wait_until(lambda: group.waiting() == 7)
    writer.release.set()
    for t in threads:
        t.join(10)
    assert [len(b) for b in writer.batches] == [1, 3, 3, 1]
    assert sorted(n for b in writer.batches for n in b) == list(range(8))


def test_a_failed_commit_fails_every_append_of_its_batch_and_only_those() -> None:
    def fail(batch: list[PendingAppend]) -> BaseException | None:
        return Unavailable("the disk is full", code="audit-unavailable") if len(batch) > 1 else None

    writer = HeldWriter(fail)
    group = GroupCommit(writer)
    submit_all(group, [item(0)])
    assert writer.entered.wait(10)
    results, threads = submit_all(group, [item(n) for n in range(1, 5)])
    wait_until(lambda: group.waiting() == 4)
    writer.release.set()
    for t in threads:
        t.join(10)
    errors = list(results.values())
    assert len(errors) == 4 and all(isinstance(e, Unavailable) for e in errors)
    assert all(e.code == "audit-unavailable" and e.message == "the disk is full" for e in errors)
    assert len({id(e) for e in errors}) == 4, "each thread raises its own copy"
    assert group.submit(item(9)).seq == 1, "the next batch is written"


def test_a_refused_append_fails_alone(held: tuple[HeldWriter, GroupCommit]) -> None:
    writer, group = held
    submit_all(group, [item(0)])
    assert writer.entered.wait(10)
    results, threads = submit_all(group, [item(1), item(2, jti="used"), item(3)])
    wait_until(lambda: group.waiting() == 3)
    writer.release.set()
    for t in threads:
        t.join(10)
    assert isinstance(results[2], AlreadyUsed) and results[2].code == "replayed"
    assert not isinstance(results[1], Exception) and not isinstance(results[3], Exception)


# --- the stores' batch writers ------------------------------------------------------------------


def write_batch(store: Store, batch: list[PendingAppend]) -> list[Outcome]:
    return store._write_batch(batch)  # type: ignore[attr-defined,no-any-return]  # each store's writer


def test_a_batch_links_its_records_in_order_after_the_head(any_store: Store) -> None:
    any_store.append_audit("before", {})
    outcomes = write_batch(any_store, [item(1, page=True), item(2), item(3, page=True)])
    assert [o.seq for o in outcomes if not isinstance(o, Exception)] == [2, 3, 4]
    assert any_store.verify_audit().ok
    assert any_store.get_decision("dec_1") == {"n": 1} and any_store.get_decision("dec_3") == {"n": 3}


def test_within_a_batch_a_token_is_spent_once_and_a_spent_token_writes_nothing(any_store: Store) -> None:
    assert any_store.claim_jti(ISS, "spent-before", 10**10)
    outcomes = write_batch(
        any_store,
        [
            item(1, jti="twice", page=True),
            item(2, jti="spent-before", page=True),
            item(3, jti="twice", page=True),
            item(4, jti="once", page=True),
        ],
    )
    kinds = ["replayed" if isinstance(o, AlreadyUsed) else o.seq for o in outcomes]  # type: ignore[union-attr]
    assert kinds == [1, "replayed", "replayed", 2]
    assert [r.payload["n"] for r in any_store.iter_audit()] == [1, 4]
    assert any_store.get_decision("dec_2") is None and any_store.get_decision("dec_3") is None
    assert any_store.jti_used(ISS, "twice") and any_store.jti_used(ISS, "once")
    assert any_store.verify_audit().ok


def test_record_decision_spends_the_token_with_the_record(any_store: Store) -> None:
    replay = Replay(ISS, "jti-1", 10**10)
    assert not any_store.jti_used(ISS, "jti-1")
    any_store.record_decision("dec_a", {"a": 1}, "decision", {"a": 1}, replay=replay)
    assert any_store.jti_used(ISS, "jti-1")
    with pytest.raises(AlreadyUsed):
        any_store.record_decision("dec_b", {"b": 1}, "decision", {"b": 1}, replay=replay)
    with pytest.raises(AlreadyUsed):
        any_store.append_audit("decision-not-made", {}, replay=replay)
    assert [r.payload for r in any_store.iter_audit()] == [{"a": 1}]
    assert any_store.get_decision("dec_b") is None


def test_one_token_raced_by_many_threads_is_recorded_once(any_store: Store) -> None:
    replay = Replay(ISS, "raced", 10**10)
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def run(n: int) -> None:
        start.wait()
        try:
            any_store.record_decision(f"dec_{n}", {"n": n}, "decision", {"n": n}, replay=replay)
            outcome = "recorded"
        except AlreadyUsed:
            outcome = "replayed"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["recorded"] + ["replayed"] * 11
    records = list(any_store.iter_audit())
    assert len(records) == 1 and any_store.get_decision(f"dec_{records[0].payload['n']}") is not None


def test_concurrent_appends_form_one_gap_free_chain(any_store: Store) -> None:
    def run(t: int) -> None:
        for n in range(20):
            any_store.record_decision(
                f"dec_{t}_{n}", {}, "decision", {"t": t, "n": n}, replay=Replay(ISS, f"{t}-{n}", 10**10)
            )

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    report = any_store.verify_audit()
    assert report.ok and report.records == 160
    assert sorted((r.payload["t"], r.payload["n"]) for r in any_store.iter_audit()) == [
        (t, n) for t in range(8) for n in range(20)
    ]


def test_the_time_of_a_record_is_when_it_was_asked_for(any_store: Store) -> None:
    when = datetime.fromisoformat("2026-01-02T03:04:05+00:00")
    assert any_store.append_audit("x", {}, time=when).time == when


def test_a_writer_answering_for_the_wrong_number_of_appends_fails_them_all_never_hangs() -> None:
    group = GroupCommit(lambda batch: [])
    with pytest.raises(Unavailable, match="wrong number of records") as info:
        group.submit(item(1))
    assert info.value.code == "audit-unavailable"
