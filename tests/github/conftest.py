"""Fixtures for the GitHub App: an App key, a scenario on the fake GitHub, a client aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from app.github.client import GitHubClient
from app.settings import GitHubSettings
from tests.fake_github import PR, Commit, FakeGitHub, Person, Run, Scenario
from tests.issuer import rsa_key

HEAD = "a" * 40
OLD = "b" * 40
COPILOT = Person("Copilot", 198982749, "Bot")
ALICE = Person("alice", 1001)
BOB = Person("bob", 1002)
CAROL = Person("carol", 1003)
DAVE = Person("dave", 1004)
DEPENDABOT = Person("dependabot[bot]", 49699333, "Bot")
CLAUDE = Person("claude[bot]", 209825114, "Bot")


def app_key_pem() -> str:
    return (
        rsa_key("github-app")
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def github_settings(url: str) -> GitHubSettings:
    return GitHubSettings(app_id=42, private_key=SecretStr(app_key_pem()), api_url=url)


def copilot_pr(number: int = 12, head: str = HEAD, requester: Person = ALICE) -> PR:
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
    return Scenario(
        app_public_key=rsa_key("github-app").public_key(),
        prs={12: copilot_pr()},
        runs={9000: Run(id=9000, triggering_actor=ALICE, actor=ALICE, head_sha=HEAD)},
        permissions={"alice": "admin", "bob": "write", "carol": "read", "dave": "write"},
        teams={"release-managers": {"alice", "bob", "carol"}},
    )


@pytest.fixture
def scenario() -> Scenario:
    return base_scenario()


@pytest.fixture
def fake(scenario: Scenario) -> Iterator[FakeGitHub]:
    with FakeGitHub(scenario) as server:
        yield server


@pytest.fixture
def client(fake: FakeGitHub) -> GitHubClient:
    return GitHubClient(github_settings(fake.url), backoff=0)
