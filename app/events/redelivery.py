"""The redelivery sweep: the webhook deliveries GitHub will never send again, asked for again.

GitHub does not retry a failed delivery. While the gate is down, restarting or refusing (a full
queue answers 503), every review, label and held deployment of that window would be lost to it, and
the merge check or the held job would wait for an event that never comes. So, after start-up and
every ``GATE_REDELIVERY_INTERVAL`` seconds, the gate lists the App's recent deliveries
(``GET /app/hook/deliveries``, as the App, newest first, cursor-paginated) back to
``GATE_REDELIVERY_WINDOW`` seconds ago, and asks GitHub to redeliver
(``POST /app/hook/deliveries/{id}/attempts``) each event that:

- is one the gate handles (app.events.dispatch.EVENTS);
- has no successful delivery (GitHub's "success": a status code from 200 to 399);
- the gate does not hold: the queue keeps every delivery it accepted under its X-GitHub-Delivery,
  which is the listed deliveries' ``guid`` (shared by an event's redeliveries; ``id`` is each
  attempt's own);
- has not had its latest failed delivery asked for already (each delivery id is asked at most once,
  recorded in the store), and has been asked for fewer than :data:`MAX_ASKS_PER_EVENT` times.

Bounded: at most ``GATE_REDELIVERY_MAX`` redeliveries a sweep, never more than the queue has room
for, and none while the queue is more than half full (it recovers the rest once drained);
:data:`MAX_PAGES` pages listed at most. With several workers and replicas, one sweeps at a time:
the store's lease :data:`LEASE`, judged by the database's clock.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from app.errors import GateError, GitHubError
from app.github.payloads import GhHookDelivery
from app.observe.metrics import metrics
from app.store.base import Store
from app.store.clock import shared_time

log = logging.getLogger("agent_gate.redelivery")

LEASE = "redelivery-sweep"
MAX_PAGES = 20  # of 100 deliveries: a sweep reads at most 2,000
MAX_ASKS_PER_EVENT = 3  # a delivery the gate keeps refusing (a wrong secret) is not asked for forever
STARTUP_DELAY = 10.0  # seconds after start-up: the worker's first requests come first
GITHUB_RETENTION = 3 * 86_400  # GitHub keeps (and redelivers) deliveries of the past 3 days


class HookDeliveries(Protocol):
    """The two calls the sweep makes, as the App (app.github.client.GitHubClient implements them)."""

    def webhook_deliveries(self, page: str | None = None) -> tuple[list[GhHookDelivery], str | None]: ...

    def redeliver_webhook_delivery(self, delivery_id: int) -> None: ...


@dataclass(frozen=True)
class SweepReport:
    listed: int  # deliveries read within the window
    failed: int  # events of the gate's with no successful delivery
    held: int  # of those, the ones the gate holds all the same (its answer was lost)
    asked: tuple[int, ...]  # the delivery ids GitHub was asked to send again
    waiting: int  # asked already, the redelivery not yet seen
    given_up: int  # asked MAX_ASKS_PER_EVENT times already
    left: int  # over this sweep's bound: for the next one


@dataclass
class RedeliverySweep:
    store: Store
    github: HookDeliveries
    clock: Callable[[], float]
    events: frozenset[str]
    interval: int
    window: int
    per_sweep: int
    queue_limit: int
    owner: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(4)}")
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def sweep(self) -> SweepReport | None:
        """One sweep, if this worker holds the lease and the queue has room (else None). Raises
        ``GateError`` when GitHub or the store cannot be asked (the next sweep tries again)."""
        if not self.store.take_lease(LEASE, self.owner, max(60, self.interval)):
            metrics().redelivery_sweeps.labels("skipped").inc()
            return None
        now = int(shared_time(self.store, self.clock))
        depth = self.store.queue_stats(now=now).depth
        room = min(self.per_sweep, self.queue_limit - depth)
        if depth * 2 > self.queue_limit or room <= 0:
            log.info("redelivery sweep skipped: the queue holds %d of %d jobs", depth, self.queue_limit)
            metrics().redelivery_sweeps.labels("skipped").inc()
            return None
        deliveries = self._list(since=now - self.window)
        report = self._ask(deliveries, room, now)
        self.store.forget_redeliveries(now - GITHUB_RETENTION - 86_400)
        metrics().redelivery_sweeps.labels("done").inc()
        if report.asked or report.left:
            log.warning(
                "redelivery sweep: asked GitHub to send %d missed delivery(ies) again (%d left for the "
                "next sweep, %d given up after %d asks)",
                len(report.asked),
                report.left,
                report.given_up,
                MAX_ASKS_PER_EVENT,
            )
        return report

    def _list(self, *, since: int) -> list[GhHookDelivery]:
        found: list[GhHookDelivery] = []
        page: str | None = None
        for _ in range(MAX_PAGES):
            items, page = self.github.webhook_deliveries(page)
            recent = [d for d in items if d.delivered_at.timestamp() >= since]
            found.extend(recent)
            if page is None or len(recent) < len(items):  # newest first: the rest is older still
                break
        return found

    def _ask(self, deliveries: list[GhHookDelivery], room: int, now: int) -> SweepReport:
        by_event: dict[str, list[GhHookDelivery]] = {}
        for delivery in deliveries:
            by_event.setdefault(delivery.guid, []).append(delivery)
        failed = {
            guid: attempts
            for guid, attempts in by_event.items()
            if attempts[0].event in self.events and not any(a.succeeded for a in attempts)
        }
        held = self.store.known_deliveries(list(failed)) if failed else set()
        missing = {guid: attempts for guid, attempts in failed.items() if guid not in held}
        asked_before = self.store.redeliveries_asked(list(missing)) if missing else {}
        asked: list[int] = []
        waiting = given_up = left = 0
        # The oldest first: the events waited on longest (ids grow with time within one second).
        for guid, attempts in sorted(
            missing.items(), key=lambda kv: min((a.delivered_at, a.id) for a in kv[1])
        ):
            latest = max(attempts, key=lambda a: a.id)
            before = asked_before.get(guid, set())
            if latest.id in before:
                waiting += 1
                continue
            if len(before) >= MAX_ASKS_PER_EVENT:
                given_up += 1
                continue
            if len(asked) >= room:
                left += 1
                continue
            try:
                self.github.redeliver_webhook_delivery(latest.id)
            except GitHubError as exc:
                log.warning("redelivery of %s (%s) not asked: %s", latest.id, guid, exc.message)
                metrics().redeliveries.labels("failed").inc()
                left += 1
                continue
            self.store.record_redelivery(latest.id, guid, now=now)
            metrics().redeliveries.labels("asked").inc()
            asked.append(latest.id)
        if given_up:
            metrics().redeliveries.labels("gave-up").inc(given_up)
        return SweepReport(
            listed=len(deliveries),
            failed=len(failed),
            held=len(failed) - len(missing),
            asked=tuple(asked),
            waiting=waiting,
            given_up=given_up,
            left=left,
        )

    # -- the background thread ----------------------------------------------------------------------------
    def start(self, delay: float = STARTUP_DELAY) -> None:
        """Sweep ``delay`` seconds after start-up, then every ``interval`` seconds, until :meth:`stop`."""
        if self._thread is not None or self.interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(delay,), name="agent-gate-redelivery", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self, delay: float) -> None:
        wait = delay
        while not self._stop.wait(wait):
            wait = float(self.interval)
            try:
                self.sweep()
            except GateError as exc:
                metrics().redelivery_sweeps.labels("failed").inc()
                log.warning("redelivery sweep failed (%s): %s", exc.code, exc.message)
            except Exception:  # the thread outlives any bug in one sweep
                metrics().redelivery_sweeps.labels("failed").inc()
                log.exception("redelivery sweep: unexpected error")
