"""Fixtures for the GitHub App: an App key, a scenario on the fake GitHub, a client aimed at it.

Reusable outside tests/github: import ``base_scenario``, ``github_settings`` and the people below,
start the fake with ``tests.fake_github.start_fake_github(scenario)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from app.github.client import GitHubClient
from app.github.config import GitHubAppConfig
from tests.fake_github import APP_ID, PR, Commit, FakeGitHub, Person, Run, Scenario, start_fake_github
from tests.issuer import rsa_key

HEAD = "a" * 40
OLD = "b" * 40
MERGE = "c" * 40
COPILOT = Person("Copilot", 198982749, "Bot")
ALICE = Person("alice", 1001)  # asks Copilot for changes: the requester
BOB = Person("bob", 1002)  # independent, write, release manager
CAROL = Person("carol", 1003)  # read only
DAVE = Person("dave", 1004)  # write, not a release manager
DEPENDABOT = Person("dependabot[bot]", 49699333, "Bot")
CLAUDE = Person("claude[bot]", 209825114, "Bot")
WEB_FLOW = Person("web-flow", 19864447)


def app_key_pem() -> str:
    return (
        rsa_key("github-app")
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def github_settings(url: str, **overrides: object) -> GitHubAppConfig:
    """The App's configuration for a fake GitHub at ``url`` (no backoff: tests don't wait)."""
    return GitHubAppConfig.model_validate(
        {"app_id": APP_ID, "private_key": SecretStr(app_key_pem()), "api_url": url, "backoff": 0, **overrides}
    )


def copilot_pr(number: int = 12, head: str = HEAD, requester: Person = ALICE) -> PR:
    """A PR the Copilot coding agent opened for ``requester``, who it adds as co-author."""
    return PR(
        number=number,
        author=COPILOT,
        head_sha=head,
        head_ref="copilot/fix-thing",
        commits=[
            Commit(
                sha=head,
                author=COPILOT,
                author_email="198982749+Copilot@users.noreply.github.com",
                committer=COPILOT,
                committer_email="198982749+Copilot@users.noreply.github.com",
                message=f"Fix the thing\n\nCo-authored-by: {requester.login} "
                f"<{requester.id}+{requester.login}@users.noreply.github.com>",
            )
        ],
    )


def base_scenario() -> Scenario:
    """octo-org/octo-repo with Copilot's PR #12 at HEAD and run 9000 triggered by alice."""
    return Scenario(
        prs={12: copilot_pr()},
        runs={9000: Run(id=9000, triggering_actor=ALICE, actor=ALICE, head_sha=HEAD)},
        permissions={"alice": "admin", "bob": "write", "carol": "read", "dave": "write"},
        teams={"release-managers": {"alice", "bob", "carol"}},
    )


@pytest.fixture
def scenario() -> Scenario:
    return base_scenario()


@pytest.fixture
def fake_github(scenario: Scenario) -> Iterator[FakeGitHub]:
    """The ``scenario`` served on loopback; fails the test if it answered outside GitHub's schemas."""
    _, server = start_fake_github(scenario)
    yield server
    server.close()


@pytest.fixture
def fake(fake_github: FakeGitHub) -> FakeGitHub:
    return fake_github


@pytest.fixture
def client(fake_github: FakeGitHub) -> GitHubClient:
    return GitHubClient(github_settings(fake_github.url))
