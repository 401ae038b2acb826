"""Counting a decision's GitHub requests: per thread, plus the work it hands over in a copy of its context."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from app.github.counting import CallCounter


def test_another_thread_counts_for_itself() -> None:
    counter = CallCounter()
    counter.add(2)
    thread = threading.Thread(target=lambda: counter.add(5, not_modified=5))
    thread.start()
    thread.join()
    assert (counter.calls, counter.not_modified) == (2, 0), "another decision's calls are not this one's"


def test_work_handed_to_a_pool_in_a_copy_of_the_context_counts_for_the_thread_that_asked() -> None:
    counter = CallCounter()
    assert counter.calls == 0  # read first: the tally exists before the context is copied
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(contextvars.copy_context().run, counter.add, 1) for _ in range(40)]:
            future.result()
        pool.submit(counter.add, 100).result()  # not in this context: not counted here
    counter.add(1, not_modified=1)
    assert (counter.calls, counter.not_modified) == (41, 1)


def test_two_clients_count_apart() -> None:
    first, second = CallCounter(), CallCounter()
    first.add(3)
    assert (first.calls, second.calls) == (3, 0)
