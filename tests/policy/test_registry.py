"""Reloading policies: a changed valid policy is adopted; a broken one never replaces a good one."""

from __future__ import annotations

import threading

import pytest

from app.errors import PolicyError
from app.policy.registry import PolicyRegistry

GOOD = "version: 1\nowner: {login: acme, id: 1}\nrules:\n  - {name: r, actions: [read], repositories: '*'}\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "acme.yml").write_text(GOOD)
    return tmp_path


def test_the_gate_refuses_to_start_on_an_invalid_policy(tmp_path):
    (tmp_path / "acme.yml").write_text("version: 2\n")
    with pytest.raises(PolicyError):
        PolicyRegistry(tmp_path).load()


def test_a_changed_policy_is_adopted(files):
    clock = [0.0]
    registry = PolicyRegistry(files, check_interval=2, clock=lambda: clock[0])
    first = registry.load().digest
    (files / "acme.yml").write_text(GOOD + "description: v2\n")
    assert registry.current().digest == first, "not re-checked before the interval"
    clock[0] = 3
    assert registry.current().digest != first


def test_a_broken_policy_keeps_the_last_good_one_and_reports_it(files):
    registry = PolicyRegistry(files, check_interval=0)
    good = registry.load().digest
    (files / "acme.yml").write_text(GOOD + "  - {name: s, actions: [nope], repositories: '*'}\n")
    assert registry.current().digest == good
    assert (
        registry.last_error
        and "unknown action 'nope'" in registry.last_error
        and "acme.yml:" in registry.last_error
    )
    (files / "acme.yml").write_text(GOOD + "description: fixed\n")
    assert registry.current().digest != good
    assert registry.last_error is None


def test_reload_reports_adoption(files):
    registry = PolicyRegistry(files, check_interval=3600)
    registry.load()
    assert registry.reload() is False
    (files / "acme.yml").write_text(GOOD + "description: v2\n")
    assert registry.reload() is True


def test_many_threads_read_one_policy(files):
    registry = PolicyRegistry(files, check_interval=0)
    registry.load()
    seen: set[str] = set()

    def read() -> None:
        for _ in range(50):
            seen.add(registry.current().digest)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 1
