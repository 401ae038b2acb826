"""Reloading policies: a changed valid policy is adopted; a broken one never replaces a good one."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from app.errors import PolicyError, Unavailable
from app.policy import registry as registry_module
from app.policy.registry import PolicyRegistry
from tests.builders import whole

GOOD = "version: 1\nowner: {login: acme, id: 1}\nrules:\n  - {name: r, actions: [read], repositories: '*'}\n"
BROKEN = GOOD + "  - {name: s, actions: [nope], repositories: '*'}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "acme.yml").write_text(whole(GOOD))
    return tmp_path


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_gate_refuses_to_start_on_an_invalid_policy(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole("version: 2\nowner: {login: acme, id: 1}\n"))
    with pytest.raises(PolicyError, match="1 policy problem in 1 file"):
        PolicyRegistry(tmp_path).load()


def test_a_changed_policy_is_adopted_after_the_check_interval(files: Path, clock: Clock) -> None:
    registry = PolicyRegistry(files, check_interval=2, clock=clock)
    first = registry.load().digest
    (files / "acme.yml").write_text(whole(GOOD + "description: v2\n"))
    clock.now = 1.9
    assert registry.current().digest == first, "not re-checked before the interval"
    clock.now = 2.0
    assert registry.current().digest != first


def test_unchanged_files_are_only_stat_ed(files: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    registry.load()
    loads: list[Path] = []
    real = registry_module.load_policies  # type: ignore[attr-defined]  # the name the registry calls

    def counting(path: Path) -> object:
        loads.append(path)
        return real(path)

    monkeypatch.setattr(registry_module, "load_policies", counting)
    for tick in range(1, 6):
        clock.now = tick
        registry.current()
    assert loads == []
    (files / "acme.yml").write_text(whole(GOOD + "description: v2\n"))
    clock.now = 10
    registry.current()
    assert len(loads) == 1


def test_a_replaced_file_is_noticed_even_with_the_same_size_and_mtime(files: Path, clock: Clock) -> None:
    (files / "acme.yml").write_text(whole(GOOD + "description: aaaa\n"))
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    first = registry.load().digest
    before = (files / "acme.yml").stat()
    (files / "new.tmp").write_text(whole(GOOD + "description: bbbb\n"))
    os.utime(files / "new.tmp", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(files / "new.tmp", files / "acme.yml")  # how deploy tools swap files atomically
    clock.now = 1
    assert registry.current().digest != first


def test_a_broken_policy_keeps_the_last_good_one_and_reports_it(
    files: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock, logger=logging.getLogger("test.policy"))
    good = registry.load().digest
    (files / "acme.yml").write_text(whole(BROKEN))
    clock.now = 1
    with caplog.at_level(logging.ERROR, logger="test.policy"):
        assert registry.current().digest == good
    where = f"{files / 'acme.yml'}:5: rules[1].actions[0]: unknown action 'nope'"
    assert registry.last_error is not None
    assert registry.last_error.startswith(f"1 policy problem in 1 file; keeping {good}: {where}")
    assert any(where in r.getMessage() for r in caplog.records), "each problem is logged with file:line"
    (files / "acme.yml").write_text(whole(GOOD + "description: fixed\n"))
    clock.now = 2
    assert registry.current().digest != good
    assert registry.last_error is None


def test_reverting_to_the_good_version_clears_the_error(files: Path, clock: Clock) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    good = registry.load().digest
    (files / "acme.yml").write_text(whole(BROKEN))
    clock.now = 1
    registry.current()
    (files / "acme.yml").write_text(whole(GOOD))
    clock.now = 2
    assert registry.current().digest == good and registry.last_error is None


def test_a_vanished_policy_directory_keeps_the_last_good_version(files: Path, clock: Clock) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    good = registry.load().digest
    (files / "acme.yml").unlink()
    files.rmdir()
    clock.now = 1
    assert registry.current().digest == good
    assert registry.last_error is not None and "no such file or directory" in registry.last_error


def test_a_long_list_of_problems_is_summarised_for_readyz(files: Path, clock: Clock) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    registry.load()
    bad_rules = "".join(f"  - {{name: r{i}, actions: [nope], repositories: '*'}}\n" for i in range(25))
    (files / "acme.yml").write_text(whole("version: 1\nowner: {login: acme, id: 1}\nrules:\n" + bad_rules))
    clock.now = 1
    registry.current()
    assert registry.last_error is not None
    assert registry.last_error.count("unknown action") == 20
    assert registry.last_error.endswith("... and 5 more problem(s), see the log")


def test_reload_forces_a_check_and_says_whether_a_new_version_was_adopted(files: Path) -> None:
    registry = PolicyRegistry(files, check_interval=3600)
    registry.load()
    assert registry.reload() is False, "unchanged"
    (files / "acme.yml").write_text(whole(GOOD + "description: v2\n"))
    assert registry.reload() is True
    (files / "acme.yml").write_text(whole(BROKEN))
    assert registry.reload() is False and registry.last_error is not None


def test_without_an_initial_load_current_loads_or_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole(GOOD))
    assert 1 in PolicyRegistry(tmp_path).current().by_owner
    (tmp_path / "acme.yml").write_text(whole(BROKEN))
    with pytest.raises(Unavailable, match="no valid policy is loaded") as info:
        PolicyRegistry(tmp_path).current()
    assert info.value.code == "policy-unavailable" and info.value.status == 503


def test_deciding_threads_never_wait_for_a_check(files: Path, clock: Clock) -> None:
    registry = PolicyRegistry(files, check_interval=1, clock=clock)
    good = registry.load()
    clock.now = 5  # a check is due
    with registry._lock:  # another thread is checking (white-box: hold its lock)
        assert registry.current() is good


def test_many_threads_read_while_the_policy_changes(files: Path) -> None:
    registry = PolicyRegistry(files, check_interval=0)  # every call checks: the most contention
    written = {registry.load().digest}
    seen: set[str] = set()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(200):
                seen.add(registry.current().digest)
        except BaseException as exc:  # noqa: BLE001  # any failure in a reader fails the test
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(8)]
    for t in readers:
        t.start()
    for version in range(5):
        (files / "next.tmp").write_text(whole(GOOD + f"description: v{version}\n"))
        os.replace(files / "next.tmp", files / "acme.yml")
        registry.reload()
        written.add(registry.current().digest)
    for t in readers:
        t.join()
    assert errors == []
    assert seen <= written, "readers only ever see complete, valid versions"
    assert registry.current().digest in written and registry.last_error is None


def test_sighup_reloads_without_waiting_in_the_signal_handler(files: Path) -> None:
    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    registry = PolicyRegistry(files, check_interval=3600)
    first = registry.load().digest
    previous = signal.getsignal(signal.SIGHUP)
    try:
        registry.install_sighup()
        (files / "acme.yml").write_text(whole(GOOD + "description: v2\n"))
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 5
        while registry.current().digest == first and time.monotonic() < deadline:
            time.sleep(0.005)
        assert registry.current().digest != first
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sighup_is_installed_only_from_the_main_thread(files: Path) -> None:
    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    registry = PolicyRegistry(files)
    before = signal.getsignal(signal.SIGHUP)
    worker = threading.Thread(target=registry.install_sighup)
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGHUP) is before


# --- a worker that starts while the files are broken (issue 12, section 7) ---------------------------


def test_a_worker_starting_on_broken_files_decides_with_the_last_good_version(
    tmp_path: Path, clock: Clock
) -> None:
    policies, kept = tmp_path / "policies", tmp_path / "data" / "policy-last-good"
    policies.mkdir()
    (policies / "acme.yml").write_text(whole(GOOD))
    good = PolicyRegistry(policies, check_interval=0, clock=clock, last_good=kept).start()
    assert good is not None
    (policies / "acme.yml").write_text(whole(BROKEN))

    restarted = PolicyRegistry(policies, check_interval=0, clock=clock, last_good=kept)
    assert restarted.start() is not None  # no exception: the worker boots
    assert restarted.current().digest == good.digest
    assert restarted.last_error is not None and "keeping nothing" in restarted.last_error
    # Fixed on disk: adopted by itself, and kept as the new last good version.
    (policies / "acme.yml").write_text(whole(GOOD + "description: fixed\n"))
    fixed = restarted.current()
    assert fixed.digest != good.digest and restarted.last_error is None
    (policies / "acme.yml").write_text(whole(BROKEN))
    again = PolicyRegistry(policies, check_interval=0, clock=clock, last_good=kept)
    again.start()
    assert again.current().digest == fixed.digest
    assert sorted(p.name for p in kept.iterdir() if not p.name.startswith(".")) == [
        "current",
        fixed.digest.replace(":", "-"),
    ]


def test_a_worker_starting_with_nothing_kept_answers_503_and_recovers(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "acme.yml").write_text(whole(BROKEN))
    registry = PolicyRegistry(tmp_path, check_interval=0, clock=clock, last_good=tmp_path / "kept")
    assert registry.start() is None
    with pytest.raises(Unavailable) as info:
        registry.current()
    assert info.value.code == "policy-unavailable"
    (tmp_path / "acme.yml").write_text(whole(GOOD))
    assert registry.current().digest.startswith("sha256:")


# --- whole files only: a file caught half-written is never adopted ------------------------------------


def test_a_file_changed_moments_ago_is_adopted_only_once_it_settles(files: Path, clock: Clock) -> None:
    wall = [0.0]
    registry = PolicyRegistry(files, check_interval=0, clock=clock, settle=1.0, wall_clock=lambda: wall[0])
    first = registry.start()
    assert first is not None
    (files / "acme.yml").write_text(whole(GOOD + "description: v2\n"))
    mtime = (files / "acme.yml").stat().st_mtime
    wall[0] = mtime + 0.5
    assert registry.current().digest == first.digest, "still being written, perhaps"
    wall[0] = mtime + 1.001  # just past the settle time (exactly 1.0 would depend on float rounding of mtime)
    assert registry.current().digest != first.digest


def test_a_file_written_while_it_is_read_is_not_adopted(
    files: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = PolicyRegistry(files, check_interval=0, clock=clock)
    first = registry.load()
    real_load = registry_module.load_policies
    writes = iter([GOOD + "description: the rest of it\n"])

    def load_while_written(path: Path):
        loaded = real_load(path)
        for text in writes:  # the writer appends while the gate parses the first half
            (files / "acme.yml").write_text(whole(text))
        return loaded

    monkeypatch.setattr(registry_module, "load_policies", load_while_written)
    (files / "acme.yml").write_text(whole(GOOD + "description: half\n"))
    assert registry.current().digest == first.digest, "what was read may be half a file"
    final = registry.current()
    assert final.digest != first.digest
    assert final.digest == real_load(files).digest, "the whole file, once it stopped changing"
