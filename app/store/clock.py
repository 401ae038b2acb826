"""One clock for shared state: the database's.

Replicas' clocks drift apart. A replica whose clock ran 200 s ahead used to purge replay records the
others still needed, and a spent token was accepted a second time. So everything compared with rows
that other replicas read or write (a replay record's expiry, a grant's expiry, a job's lease, a
break-glass window, the redelivery sweep's lease) is compared with the database's clock:
PostgreSQL's ``clock_timestamp()``, in the statement itself or read by :meth:`Store.database_time`.
An SQLite store lives on this machine, whose every worker shares one clock: the local clock is then
the database's. Each replica also measures how far its own clock is from the database's
(:func:`measure_skew`); ``/readyz`` reports it (docs/security-model.md, "One clock").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.store.base import Store


def shared_time(store: Store, local: Callable[[], float]) -> float:
    """Now by the database's clock, or by ``local`` when the store is on this machine.

    Raises ``Unavailable(code='store-unavailable')`` when the database cannot be asked.
    """
    database = store.database_time()
    return local() if database is None else database


def measure_skew(store: Store, local: Callable[[], float]) -> float | None:
    """How far ``local`` runs ahead of the database's clock (seconds, negative when behind); None for
    a store on this machine. The local reading is taken mid-way through the round trip.

    Raises ``Unavailable(code='store-unavailable')``.
    """
    started = time.monotonic()
    before = local()
    database = store.database_time()
    if database is None:
        return None
    elapsed = time.monotonic() - started
    return before + elapsed / 2 - database
