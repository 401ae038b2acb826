"""Builders for the facts a decision rests on: identities, policies and evidence.

Defaults describe octo-org/octo-repo (owner id 1000, repository id 2000) as in policies/example.yml,
a human actor (octocat), and the Copilot coding agent and its requester for agent scenarios.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.decide.audit_mode import audit_mode
from app.decide.decision import Decision, DecisionRequest
from app.decide.engine import decide
from app.evidence.model import Account, CommitFacts, Evidence, PullRequestFacts, Review, RunFacts, Standing
from app.policy.loader import END_LINE, PolicySet, parse_policy_text
from app.tokens.devissuer import HUMAN_PRESET
from app.tokens.identity import WorkloadIdentity

HEAD = "a" * 40
OLD = "b" * 40
MERGE = "c" * 40

OCTOCAT = Account(login="octocat", id=583231, type="User")
ALICE = Account(login="alice", id=1001, type="User")  # asks Copilot for changes (the requester)
BOB = Account(login="bob", id=1002, type="User")  # independent reviewer with write access
CAROL = Account(login="carol", id=1003, type="User")  # read-only
COPILOT = Account(login="Copilot", id=198982749, type="Bot")
CLAUDE = Account(login="claude[bot]", id=209825114, type="Bot")
DEPENDABOT = Account(login="dependabot[bot]", id=49699333, type="Bot")
RENOVATE = Account(login="renovate[bot]", id=29139614, type="Bot")

# The policy the engine specification runs under (also used by the check-run and page tests).
POLICY_TEXT = """
version: 1
owner: {login: octo-org, id: 1000}
agents:
  ai:
    - {login: "acme-agent[bot]", name: ACME agent}
  labels: [ai-generated]
rules:
  - name: read-anything
    actions: [read]
    repositories: "*"
  - name: propose
    actions: [open-pull-request, push-branch, comment]
    repositories: "*"
  - name: humans-only-comment
    actions: [preview-deploy]
    repositories: "*"
    allow_agents: false
  - name: deploy-staging
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [staging]
    events: [push, workflow_dispatch]
  - name: deploy-production
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [production]
    events: [push, workflow_dispatch]
    workflows:
      - ref: octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main
    runner_environments: [github-hosted]
    approvals: {count: 1, teams: [release-managers]}
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1, last_push: true}
  - name: release-two
    actions: [release]
    repositories: "*"
    refs: [{pattern: 'refs/tags/v[0-9]+\\.[0-9]+\\.[0-9]+'}]
    approvals: {count: 2}
  - name: approve
    actions: [approve]
    repositories: "*"
  - name: publish-no-bots
    actions: [publish]
    repositories: "*"
    allow_bots: false
"""

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def claims(**overrides: Any) -> dict[str, Any]:
    """GitHub-shaped claims: the dev issuer's human preset at HEAD, fixed times, then ``overrides``."""
    base: dict[str, Any] = {
        **HUMAN_PRESET,
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "agent-gate",
        "jti": "example-id",
        "iat": 1_790_000_000,
        "exp": 1_790_000_300,
        "nbf": 1_790_000_000,
        "event_name": "push",
        "sha": HEAD,
        "workflow_sha": HEAD,
        "job_workflow_sha": HEAD,
    }
    base.update(overrides)
    return base


def identity(**overrides: Any) -> WorkloadIdentity:
    return WorkloadIdentity.from_claims(claims(**overrides))


def agent_identity(**overrides: Any) -> WorkloadIdentity:
    return identity(actor="Copilot", actor_id="198982749", **overrides)


def whole(text: str) -> str:
    """``text`` as a whole policy file: with its end line (``...``) when it has none."""
    return text if text.rstrip().endswith(END_LINE) else text.rstrip("\n") + f"\n{END_LINE}\n"


def policy_set(text: str) -> PolicySet:
    loaded = parse_policy_text(whole(text), "policy.yml")
    return PolicySet(digest="sha256:test", by_owner={loaded.policy.owner.id: loaded})


def commit(
    sha: str = HEAD,
    *,
    author: Account | None = None,
    email: str | None = None,
    committer: Account | None = None,
    message: str = "Change",
) -> CommitFacts:
    return CommitFacts(
        sha=sha,
        message=message,
        author=author,
        author_email=email,
        committer=committer,
        committer_email=email,
    )


def copilot_commit(sha: str = HEAD, requester: Account = ALICE) -> CommitFacts:
    """A commit as the Copilot coding agent writes it: authored by Copilot, the requester as co-author."""
    return commit(
        sha,
        author=COPILOT,
        email="198982749+Copilot@users.noreply.github.com",
        message=f"Fix the thing\n\nCo-authored-by: {requester.login} <{requester.id}+{requester.login}@users.noreply.github.com>",
    )


def pull_request(
    *,
    author: Account = COPILOT,
    head_sha: str = HEAD,
    head_ref: str = "copilot/fix-thing",
    commits: list[CommitFacts] | None = None,
    merged: bool = False,
    merge_commit_sha: str | None = None,
    labels: list[str] | None = None,
    last_pusher: Account | None = None,
    number: int = 12,
) -> PullRequestFacts:
    return PullRequestFacts(
        number=number,
        author=author,
        head_sha=head_sha,
        head_ref=head_ref,
        base_ref="main",
        state="closed" if merged else "open",
        merged=merged,
        merge_commit_sha=merge_commit_sha,
        labels=labels or [],
        commits=commits if commits is not None else [copilot_commit(head_sha)],
        last_pusher=last_pusher,
    )


def review(who: Account, state: str = "APPROVED", commit_id: str = HEAD, n: int = 1) -> Review:
    return Review(
        id=n,
        reviewer=who,
        state=state,
        commit_id=commit_id,
        submitted_at=datetime(2026, 11, 23, 10, n % 60, tzinfo=UTC),
    )


def evidence(
    *,
    pr: PullRequestFacts | None = None,
    reviews: list[Review] | None = None,
    triggering: Account | None = ALICE,
    run_sha: str = HEAD,
    standings: dict[str, Standing] | None = None,
    **extra: Any,
) -> Evidence:
    default_standings = {
        "bob": Standing(permission="write", teams=["release-managers"]),
        "alice": Standing(permission="admin", teams=["release-managers"]),
        "octocat": Standing(permission="admin", teams=["release-managers"]),
        "carol": Standing(permission="read", teams=["release-managers"]),
    }
    return Evidence(
        source="github",
        pull_request=pr,
        run=RunFacts(id=9000, triggering_actor=triggering, head_sha=run_sha, event="push"),
        reviews=reviews or [],
        standings=standings if standings is not None else default_standings,
        **extra,
    )


def run(
    policies: PolicySet, who: WorkloadIdentity, action: str, ev: Evidence | None = None, **request: Any
) -> Decision:
    """The engine's decision, answered in audit mode where the policy says so (the first of the
    pipeline's overlays, app/gate/overlays.py; the others need a pull request check or the store)."""
    decided = decide(
        who,
        DecisionRequest(action=action, **request),
        policies,
        ev or Evidence.none("the GitHub App is not configured"),
        decision_id="dec_test",
        now=NOW,
    )
    return audit_mode(decided, policies)


def failed(decision: Decision) -> list[str]:
    return [f"{r.code}: {r.message}" for r in decision.reasons if not r.ok]
