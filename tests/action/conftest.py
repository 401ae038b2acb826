"""Fixtures for the action's tests: the real gate on loopback, and jobs that run action.yml against it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.settings import Settings
from app.tokens.devissuer import DevIssuer
from tests.action.runner import ACTION_DIR, ActionRun, SimulatedRunner, TokenService

POLICY = Path(__file__).with_name("policy.yml")


@dataclass(frozen=True)
class LiveGate:
    url: str
    issuer: DevIssuer


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGate]:
    """The gate app (dev mode: it trusts the dev issuer), served on a loopback port."""
    data_dir = tmp_path_factory.mktemp("gate")
    settings = Settings(
        dev_mode=True,
        issuers=(),
        data_dir=data_dir,
        policy_path=POLICY,
        public_url="http://127.0.0.1",
        policy_check_interval=0,
    )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield LiveGate(f"http://127.0.0.1:{server.server_port}", DevIssuer(data_dir))
    server.shutdown()
    server.server_close()


@dataclass
class Job:
    """One job on a simulated runner: its token service (if it may have a token), event and context."""

    runner: SimulatedRunner
    gate_url: str
    tokens: TokenService | None

    def run(self, inputs: Mapping[str, str], *, action_dir: Path = ACTION_DIR) -> ActionRun:
        """Run the action with ``inputs``; ``gate-url`` defaults to the live gate."""
        return self.runner.run({"gate-url": self.gate_url, **inputs}, action_dir=action_dir)


@dataclass
class _Cleanup:
    closers: list[Callable[[], None]] = field(default_factory=list)


@pytest.fixture
def make_job(tmp_path: Path, gate: LiveGate) -> Iterator[Callable[..., Job]]:
    """``make_job(claims=..., event=..., event_name=..., id_token=True, reuse=False, failures=())``.

    ``id_token=False`` is a job without ``permissions: id-token: write`` (no request variables).
    """
    cleanup = _Cleanup()
    count = 0

    def make(
        *,
        claims: Mapping[str, Any] | None = None,
        event: dict[str, Any] | None = None,
        event_name: str = "push",
        id_token: bool = True,
        reuse: bool = False,
        failures: tuple[int, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> Job:
        nonlocal count
        count += 1
        tokens = None
        runner_env = dict(env or {})
        if id_token:
            tokens = TokenService(gate.issuer, claims=claims, reuse=reuse, failures=failures)
            cleanup.closers.append(tokens.close)
            runner_env.update(tokens.env)
        runner = SimulatedRunner(
            tmp_path / f"job-{count}",
            runner_env=runner_env,
            github={"event_name": event_name},
            event=event,
        )
        return Job(runner, gate.url, tokens)

    yield make
    for close in cleanup.closers:
        close()


@pytest.fixture
def job(make_job: Callable[..., Job]) -> Job:
    """A job on main of octo-org/octo-repo, run by a human, with id-token: write."""
    return make_job()
