"""Evidence from GitHub, end to end: POST /v1/decisions -> the real client -> the fake GitHub over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.evidence.gather import GitHubEvidence
from app.github.client import GitHubClient
from app.settings import Settings
from app.tokens.devissuer import DevIssuer
from tests.builders import whole
from tests.fake_github import PR, Commit, FakeGitHub, Person, Scenario
from tests.github.conftest import (
    ALICE,
    BOB,
    CAROL,
    CLAUDE,
    COPILOT,
    DAVE,
    DEPENDABOT,
    HEAD,
    OLD,
    base_scenario,
    github_settings,
)

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - {name: read, actions: [read], repositories: "*"}
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
  - name: merge-dependencies
    actions: [merge]
    repositories: "*"
    allow_agents: false
  - name: deploy-production
    actions: [deploy]
    repositories: "*"
    environments: [production]
    approvals: {count: 1, teams: [release-managers]}
"""


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Callable[..., tuple[Any, FakeGitHub]]]:
    """gate(scenario) -> (ask, fake): a gate whose GitHub App talks to a fake GitHub with that scenario."""
    started: list[FakeGitHub] = []
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "octo.yml").write_text(whole(POLICY))

    def build(scenario: Scenario, **client_kw: Any) -> tuple[Callable[..., Any], FakeGitHub]:
        fake = FakeGitHub(scenario).__enter__()
        started.append(fake)
        settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url="http://gate.test",
            policy_check_interval=0,
        )
        client = GitHubClient(github_settings(fake.url), backoff=0, **client_kw)
        app = create_app(settings, github=client, evidence=GitHubEvidence(client))
        web: FlaskClient = app.test_client()
        issuer = DevIssuer(settings.data_dir)

        def ask(body: dict[str, Any], **claims: Any) -> Any:
            token = issuer.mint(audience="agent-gate", **{"sha": HEAD, **claims})
            return web.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {token}"})

        ask.app = app  # type: ignore[attr-defined]
        return ask, fake

    yield build
    for fake in started:
        fake.__exit__()


def reviews(*items: tuple[Person, str, str]) -> list[dict[str, Any]]:
    return [
        {"user": who, "state": state, "commit_id": commit, "id": i + 1}
        for i, (who, state, commit) in enumerate(items)
    ]


def with_reviews(*items: tuple[Person, str, str]) -> Scenario:
    s = base_scenario()
    s.prs[12].reviews = reviews(*items)
    return s


def human_pr_with_trailer() -> Scenario:
    s = base_scenario()
    s.prs[12] = PR(
        number=12,
        author=ALICE,
        head_sha=HEAD,
        head_ref="feature/login",
        commits=[
            Commit(
                sha=HEAD,
                author=ALICE,
                committer=ALICE,
                author_email="alice@example.com",
                message="Add login\n\nCo-authored-by: Claude <noreply@anthropic.com>",
            )
        ],
        reviews=reviews((BOB, "APPROVED", HEAD)),
    )
    return s


def dependabot_pr() -> Scenario:
    s = base_scenario()
    s.prs[12] = PR(
        number=12,
        author=DEPENDABOT,
        head_sha=HEAD,
        head_ref="dependabot/pip/requests-2.32.4",
        commits=[
            Commit(
                sha=HEAD,
                author=DEPENDABOT,
                committer=DEPENDABOT,
                author_email="49699333+dependabot[bot]@users.noreply.github.com",
            )
        ],
    )
    return s


def env_approval(who: Person) -> Scenario:
    s = base_scenario()
    s.prs = {}
    s.runs[9000].approvals = [{"user": who, "state": "approved", "environments": ["production"]}]
    return s


MERGE = {"action": "merge", "pull_request": 12}
DEPLOY = {"action": "deploy", "environment": "production"}

SCENARIOS = [
    (
        "copilot-pr-approved-only-by-its-requester",
        with_reviews((ALICE, "APPROVED", HEAD)),
        MERGE,
        403,
        "@alice is tied to the change",
    ),
    (
        "approved-by-an-independent-human-at-the-head",
        with_reviews((BOB, "APPROVED", HEAD)),
        MERGE,
        200,
        "independent human with write permission approved this exact commit",
    ),
    (
        "approval-on-an-older-commit",
        with_reviews((BOB, "APPROVED", OLD)),
        MERGE,
        403,
        "stale: approved commit bbbbbbb",
    ),
    (
        "approval-then-changes-requested",
        with_reviews((BOB, "APPROVED", HEAD), (BOB, "CHANGES_REQUESTED", HEAD)),
        MERGE,
        403,
        "latest review is CHANGES_REQUESTED",
    ),
    ("approval-by-a-bot", with_reviews((DEPENDABOT, "APPROVED", HEAD)), MERGE, 403, "is a bot"),
    ("approval-by-an-agent", with_reviews((CLAUDE, "APPROVED", HEAD)), MERGE, 403, "is an AI agent"),
    (
        "approval-without-write-permission",
        with_reviews((CAROL, "APPROVED", HEAD)),
        MERGE,
        403,
        "@carol has read permission",
    ),
    (
        "approval-from-outside-the-required-team",
        with_reviews((DAVE, "APPROVED", HEAD)),
        {**DEPLOY, "pull_request": 12},
        403,
        "@dave is not an active member of @octo-org/release-managers",
    ),
    (
        "environment-approval-by-an-independent-human",
        env_approval(BOB),
        DEPLOY,
        200,
        "approved the production deployment",
    ),
    ("environment-approval-by-the-triggering-actor", env_approval(ALICE), DEPLOY, 403, "triggering actor"),
]


@pytest.mark.parametrize(
    ("scenario", "body", "status", "why"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_approval_scenarios(gate, scenario, body, status, why):
    ask, _ = gate(scenario)
    # An execute action about an environment runs in a job that declares it (its token says so).
    claims = {"environment": body["environment"]} if "environment" in body else {}
    response = ask(body, event_name="workflow_dispatch", **claims)
    decision = response.get_json()
    assert response.status_code == status, decision
    assert decision["evidence_source"] == "github"
    assert any(why in a["why"] for a in decision["approvals"]), decision["approvals"]
    if status == 403:
        assert decision["remedy"] and decision["remedy"].startswith("needs 1 approval of commit aaaaaaa")


def test_a_human_pr_with_a_claude_trailer_is_agent_driven(gate):
    ask, _ = gate(human_pr_with_trailer())
    decision = ask(MERGE).get_json()
    assert decision["subject"]["agent"] is True
    assert [s["name"] for s in decision["subject"]["agent_signals"]] == ["co-author-trailer"]
    assert decision["allowed"] is True, "bob approved independently"


def test_a_dependabot_pr_is_a_bot_treated_by_its_own_rule(gate):
    ask, _ = gate(dependabot_pr())
    decision = ask(MERGE).get_json()
    assert decision["subject"]["agent"] is False
    assert decision["allowed"] is False and decision["rule"] == "merge"


def test_more_than_100_reviews_are_read_across_pages(gate):
    s = base_scenario()
    s.prs[12].reviews = reviews(
        *[(Person(f"reviewer{i}", 5000 + i), "COMMENTED", HEAD) for i in range(150)], (BOB, "APPROVED", HEAD)
    )
    ask, fake = gate(s)
    decision = ask(MERGE).get_json()
    assert decision["allowed"] is True
    assert fake.scenario.paths().count("/repos/octo-org/octo-repo/pulls/12/reviews") == 2


def test_a_read_decision_makes_no_github_call(gate):
    ask, fake = gate(base_scenario())
    assert ask({"action": "read"}).status_code == 200
    assert fake.scenario.requests == []


def test_api_calls_are_counted_and_recorded_in_the_audit_record(gate):
    ask, _ = gate(with_reviews((BOB, "APPROVED", HEAD)))
    decision = ask(MERGE).get_json()
    # installation, token, run, PR, commits, reviews, bob's permission
    assert decision["github_api_calls"] == 7
    store = ask.app.extensions["agent_gate"].store  # type: ignore[attr-defined]
    [record] = [r for r in store.iter_audit() if r.kind == "decision"]
    assert record.payload["github_api_calls"] == 7


def test_a_warm_decision_is_served_from_caches_and_etags(gate):
    ask, fake = gate(with_reviews((BOB, "APPROVED", HEAD)))
    ask(MERGE)
    warm = ask(MERGE).get_json()
    # installation, token and permission are cached; run, PR, commits, reviews are re-validated.
    assert warm["github_api_calls"] == 4
    conditional = [
        r for r in fake.scenario.requests if "If-None-Match" in r["headers"] and "check-runs" not in r["path"]
    ]
    assert len(conditional) == 4, "each re-validation is a conditional request, answered 304"


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        ({"path": r"/pulls/12/reviews$", "status": 500}, "github-unavailable"),
        (
            {"path": r"/pulls/12/reviews$", "status": 403, "headers": {"Retry-After": "60"}},
            "github-rate-limited",
        ),
        (
            {
                "path": r"/pulls/12$",
                "status": 429,
                "headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"},
            },
            "github-rate-limited",
        ),
    ],
    ids=["server-error", "secondary-rate-limit", "primary-rate-limit"],
)
def test_github_failures_are_503_never_an_allow(gate, failure, code):
    s = with_reviews((BOB, "APPROVED", HEAD))
    s.failures.append(failure)
    ask, _ = gate(s)
    response = ask(MERGE)
    assert response.status_code == 503
    assert response.get_json()["errors"][0]["code"] == code
    assert "Retry-After" in response.headers or code == "github-unavailable"


def test_a_transient_500_is_retried(gate):
    s = with_reviews((BOB, "APPROVED", HEAD))
    s.failures.append({"path": r"/pulls/12/reviews$", "status": 502, "times": 1})
    ask, _ = gate(s)
    assert ask(MERGE).status_code == 200


def test_a_timeout_is_503(gate):
    s = with_reviews((BOB, "APPROVED", HEAD))
    s.delay = 0.5
    ask, _ = gate(s, timeout=(0.2, 0.2), retries=0)
    response = ask(MERGE)
    assert response.status_code == 503
    assert "did not answer in time" in response.get_json()["message"]


def test_an_unknown_pull_request_is_a_clear_400(gate):
    ask, _ = gate(base_scenario())
    response = ask({"action": "merge", "pull_request": 999})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "unknown-pull-request"


def test_the_pr_is_found_from_the_commit_when_not_named(gate):
    ask, fake = gate(with_reviews((BOB, "APPROVED", HEAD)))
    decision = ask({"action": "merge"}).get_json()
    assert decision["subject"]["pull_request"] == 12 and decision["allowed"] is True
    assert f"/repos/octo-org/octo-repo/commits/{HEAD}/pulls" in fake.scenario.paths()


def test_copilot_identity_is_recognised_from_github_evidence(gate):
    ask, _ = gate(with_reviews())
    decision = ask(MERGE).get_json()
    names = {s["name"] for s in decision["subject"]["agent_signals"]}
    assert {"pr-author", "commit-author", "branch-prefix"} <= names
    assert COPILOT.login in decision["remedy"] or "@alice" in decision["remedy"]


# --- co-authors, resolved to accounts the way GitHub does ----------------------------------------------


def copilot_pr_co_authored_by(address: str, name: str = "Carol") -> Scenario:
    """Copilot's PR whose commit names a co-author by an address only GitHub can tie to an account."""
    s = base_scenario()
    s.prs[12].commits[0].message = f"Fix the thing\n\nCo-authored-by: {name} <{address}>"
    s.permissions["carol"] = "write"
    s.prs[12].reviews = reviews((CAROL, "APPROVED", HEAD))
    return s


def test_a_co_author_with_a_work_address_cannot_approve_the_change(gate):
    # carol@corp.example is a verified address of @carol: GitHub's Commit.authors says so.
    scenario = copilot_pr_co_authored_by("carol@corp.example")
    scenario.accounts["carol@corp.example"] = CAROL
    ask, fake = gate(scenario)
    decision = ask(MERGE, event_name="workflow_dispatch").get_json()
    assert decision["allowed"] is False
    [carol] = decision["approvals"]
    assert "@carol is tied to the change (co-author, requester)" in carol["why"]
    assert any(r["path"] == "/graphql" for r in fake.scenario.requests), "asked GitHub's GraphQL API"
    assert fake.scenario.schema_errors == []


def test_a_co_author_address_tied_to_no_account_blocks_by_default(gate):
    scenario = copilot_pr_co_authored_by("someone@elsewhere.example", name="Someone")
    scenario.prs[12].reviews = reviews((BOB, "APPROVED", HEAD))
    ask, _ = gate(scenario)
    decision = ask(MERGE, event_name="workflow_dispatch").get_json()
    assert decision["allowed"] is False
    [co] = [r for r in decision["reasons"] if not r["ok"]]
    assert co["code"] == "co-authors"
    assert (
        "Someone <someone@elsewhere.example> (commit aaaaaaa) is tied to no GitHub account" in co["message"]
    )
    assert "approvals.unresolved_co_authors: allow" in decision["remedy"]


def test_a_policy_may_allow_unresolved_co_authors(gate, tmp_path):
    policy = (
        (tmp_path / "policies" / "octo.yml")
        .read_text()
        .replace(
            "    approvals: {count: 1}\n", "    approvals: {count: 1, unresolved_co_authors: allow}\n", 1
        )
    )
    (tmp_path / "policies" / "octo.yml").write_text(whole(policy))
    scenario = copilot_pr_co_authored_by("someone@elsewhere.example", name="Someone")
    scenario.prs[12].reviews = reviews((BOB, "APPROVED", HEAD))
    ask, _ = gate(scenario)
    decision = ask(MERGE, event_name="workflow_dispatch").get_json()
    assert decision["allowed"] is True, decision["reasons"]


def test_no_graphql_call_when_every_co_author_is_a_noreply_address(gate):
    ask, fake = gate(base_scenario())
    ask(MERGE, event_name="workflow_dispatch")
    assert not any(r["path"] == "/graphql" for r in fake.scenario.requests)


def test_a_legacy_noreply_co_author_cannot_approve_either(gate):
    scenario = copilot_pr_co_authored_by("carol@users.noreply.github.com")
    ask, _ = gate(scenario)
    decision = ask(MERGE, event_name="workflow_dispatch").get_json()
    assert decision["allowed"] is False
    assert "@carol is tied to the change (co-author, requester)" in decision["approvals"][0]["why"]
