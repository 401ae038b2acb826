"""The decision engine, as a specification: identity + request + policy + evidence -> Decision."""

from __future__ import annotations

import pytest

from app.decide.decision import DecisionRequest
from app.decide.engine import evidence_needs
from app.evidence.model import Account, EnvironmentApproval, Evidence, GitActor, Standing
from tests.builders import (
    ALICE,
    BOB,
    CAROL,
    CLAUDE,
    COPILOT,
    DEPENDABOT,
    HEAD,
    MERGE,
    OCTOCAT,
    OLD,
    POLICY_TEXT,
    agent_identity,
    commit,
    copilot_commit,
    evidence,
    failed,
    identity,
    policy_set,
    pull_request,
    review,
    run,
)

POLICY = policy_set(POLICY_TEXT)


# --- issue 2: decisions from the verified identity alone -------------------------------------------


@pytest.mark.parametrize(
    ("who", "action", "request_kw", "allowed", "expected"),
    [
        # An agent may read and propose.
        (agent_identity(), "read", {}, True, "rule 'read-anything' allows read"),
        (agent_identity(), "open-pull-request", {}, True, "rule 'propose' allows open-pull-request"),
        # It never executes without approval evidence; no evidence means deny, saying why.
        (
            agent_identity(environment="staging"),
            "deploy",
            {"environment": "staging"},
            False,
            "no approval evidence is available",
        ),
        # A human matching an execute rule without approval requirements is allowed.
        (
            identity(environment="staging"),
            "deploy",
            {"environment": "staging"},
            True,
            "the rule requires no approval",
        ),
        # A human on a rule that needs an approval, without evidence: deny.
        (
            identity(environment="production"),
            "deploy",
            {"environment": "production"},
            False,
            "no approval evidence is available",
        ),
        # Default deny, and the reason names the closest rule and the failing condition.
        (
            identity(ref="refs/heads/dev", environment="staging"),
            "deploy",
            {"environment": "staging"},
            False,
            "ref: got refs/heads/dev, expected refs/heads/main",
        ),
        (identity(), "frobnicate", {}, False, "unknown action 'frobnicate'"),
        (identity(repository_owner_id="999"), "read", {}, False, "no policy governs owner"),
        (
            identity(repository="octo-org/renamed", environment="staging"),
            "deploy",
            {"environment": "staging"},
            False,
            "if it was renamed, update the policy",
        ),
        (
            identity(repository_id="3000", repository="octo-org/other", environment="staging"),
            "deploy",
            {"environment": "staging"},
            False,
            "repository: got octo-org/other (id 3000), expected octo-org/octo-repo (id 2000)",
        ),
        (
            identity(
                job_workflow_ref="octo-org/octo-repo/.github/workflows/evil.yml@refs/heads/main",
                environment="production",
            ),
            "deploy",
            {"environment": "production"},
            False,
            "workflow: got octo-org/octo-repo/.github/workflows/evil.yml",
        ),
        (
            identity(runner_environment="self-hosted", environment="production"),
            "deploy",
            {"environment": "production"},
            False,
            "runner: got self-hosted, expected github-hosted",
        ),
        (identity(ref="refs/tags/v1.2"), "release", {}, False, "expected /refs/tags/v[0-9]+"),
        # Invariant (d): execute is refused for pull-request events, whatever the rules say.
        (
            identity(event_name="pull_request", environment="staging"),
            "deploy",
            {"environment": "staging"},
            False,
            "execute actions are refused for pull_request events",
        ),
        (identity(event_name="pull_request_target"), "merge", {}, False, "refused for pull_request_target"),
        # Invariant (c): an agent is never allowed an approval action.
        (agent_identity(), "approve", {}, False, "an AI agent is never allowed an approval action"),
        (identity(), "approve", {}, True, "rule 'approve' allows approve"),
        # A rule closed to agents does not match an agent.
        (agent_identity(), "preview-deploy", {}, False, "does not allow agent-driven workloads"),
        # Policy agents count as agents.
        (identity(actor="acme-agent[bot]", actor_id="77"), "approve", {}, False, "never allowed an approval"),
        # Non-AI bots are not agents, but policy can treat them on their own terms.
        (identity(actor="dependabot[bot]", actor_id="49699333"), "approve", {}, True, "allows approve"),
        (identity(actor="dependabot[bot]", actor_id="49699333"), "publish", {}, False, "does not allow bots"),
    ],
    ids=[
        "agent-read-allowed",
        "agent-propose-allowed",
        "agent-execute-no-evidence-denied",
        "human-execute-no-approvals-needed-allowed",
        "human-execute-approval-needed-no-evidence-denied",
        "wrong-ref-names-closest-rule",
        "unknown-action",
        "ungoverned-owner",
        "repository-renamed",
        "other-repository",
        "wrong-workflow",
        "self-hosted-runner",
        "tag-not-matching-anchored-pattern",
        "pull-request-event-execute-refused",
        "pull-request-target-execute-refused",
        "agent-approval-refused",
        "human-approval-allowed",
        "agent-excluded-by-rule",
        "policy-agent-is-agent",
        "dependabot-is-not-an-agent",
        "rule-excludes-bots",
    ],
)
def test_decisions_without_github_evidence(who, action, request_kw, allowed, expected):
    decision = run(POLICY, who, action, **request_kw)
    assert decision.allowed is allowed, decision.reasons
    assert any(expected in r.message for r in decision.reasons), [r.message for r in decision.reasons]
    if not allowed:
        assert decision.remedy, "every denial says what would make it pass"
    assert decision.policy_digest == "sha256:test"


def test_agent_verdict_lists_the_signals_that_produced_it():
    decision = run(POLICY, agent_identity(), "read")
    assert decision.subject.agent is True
    assert [s.name for s in decision.subject.agent_signals] == ["actor"]
    assert "GitHub Copilot coding agent" in decision.subject.agent_signals[0].detail


def test_identity_is_keyed_on_numeric_ids_not_names():
    # A human who renamed themselves "Copilot" is not the Copilot agent: the id decides.
    impostor = identity(actor="Copilot", actor_id="12345")
    decision = run(POLICY, impostor, "read")
    assert decision.subject.agent is False


# --- evidence needs: a read decision asks GitHub for nothing -----------------------------------------


@pytest.mark.parametrize(
    ("action", "needs"),
    [("read", None), ("open-pull-request", None), ("preview-deploy", []), ("deploy", ["release-managers"])],
    ids=[
        "read-needs-nothing",
        "propose-needs-nothing",
        "provenance-rule-needs-evidence",
        "execute-needs-teams",
    ],
)
def test_evidence_needs(action, needs):
    result = evidence_needs(POLICY, identity(), DecisionRequest(action=action))
    assert (None if result is None else result.teams) == needs


# --- issue 3: independence applied with full evidence --------------------------------------------------

COPILOT_PR = pull_request()


@pytest.mark.parametrize(
    ("reviews", "allowed", "why"),
    [
        ([review(ALICE)], False, "@alice is tied to the change (triggering actor, co-author, requester)"),
        ([review(BOB)], True, "independent human with write permission approved this exact commit"),
        ([review(BOB, commit_id=OLD)], False, "stale: approved commit bbbbbbb"),
        (
            [review(BOB, n=1), review(BOB, "CHANGES_REQUESTED", n=2)],
            False,
            "latest review is CHANGES_REQUESTED",
        ),
        ([review(BOB, n=1), review(BOB, "DISMISSED", n=2)], False, "latest review is DISMISSED"),
        ([review(BOB, n=1), review(BOB, "COMMENTED", n=2)], True, "approved this exact commit"),
        ([review(DEPENDABOT)], False, "@dependabot[bot] is a bot"),
        ([review(CLAUDE)], False, "@claude[bot] is an AI agent"),
        ([review(CAROL)], False, "@carol has read permission on the repository; write or higher is needed"),
        ([review(OCTOCAT)], False, "@octocat is tied to the change (actor)"),
        ([review(COPILOT)], False, "is an AI agent"),
    ],
    ids=[
        "copilot-pr-approved-only-by-requester",
        "independent-human-at-head",
        "approval-on-older-commit",
        "approval-then-changes-requested",
        "approval-then-dismissed",
        "comment-does-not-cancel-approval",
        "approval-by-bot",
        "approval-by-agent",
        "approval-without-write-permission",
        "approval-by-the-actor",
        "agent-approves-itself",
    ],
)
def test_merge_of_a_copilot_pr(reviews, allowed, why):
    decision = run(
        POLICY,
        identity(event_name="workflow_dispatch"),
        "merge",
        evidence(pr=COPILOT_PR, reviews=reviews),
        pull_request=12,
    )
    assert decision.subject.agent is True
    assert decision.allowed is allowed, failed(decision)
    assert any(why in a.why for a in decision.approvals), [a.why for a in decision.approvals]


def test_deny_names_who_could_unblock_it():
    decision = run(
        POLICY,
        identity(environment="production"),
        "deploy",
        evidence(pr=pull_request(last_pusher=ALICE), reviews=[review(ALICE)]),
        environment="production",
        pull_request=12,
    )
    assert not decision.allowed
    assert decision.remedy is not None
    assert decision.remedy.startswith(
        "needs 1 approval of commit aaaaaaa from a member of @octo-org/release-managers"
    )
    assert "@alice (triggering actor, co-author, requester)" in decision.remedy
    assert "Copilot" not in decision.remedy, "agents never approve, so they are not named"
    assert "@octocat (actor)" in decision.remedy


def test_team_requirement():
    outsider = Account(login="dave", id=1004)
    ev = evidence(
        pr=COPILOT_PR, reviews=[review(outsider)], standings={"dave": Standing(permission="write", teams=[])}
    )
    decision = run(
        POLICY, identity(environment="production"), "deploy", ev, environment="production", pull_request=12
    )
    assert not decision.allowed
    assert decision.approvals[0].why == "@dave is not an active member of @octo-org/release-managers"


def test_last_push_rule_excludes_the_last_pusher():
    human_pr = pull_request(author=ALICE, head_ref="feature", commits=[commit(author=ALICE)], last_pusher=BOB)
    decision = run(POLICY, identity(), "merge", evidence(pr=human_pr, reviews=[review(BOB)]), pull_request=12)
    assert not decision.allowed
    assert "pushed the last commit" in decision.approvals[0].why


def test_policy_may_require_more_approvals_never_fewer():
    human_pr = pull_request(author=ALICE, head_ref="feature", commits=[commit(author=ALICE)])
    dave = Account(login="dave", id=1004)
    standings = {"bob": Standing(permission="write"), "dave": Standing(permission="maintain")}
    one = run(
        POLICY,
        identity(ref="refs/tags/v1.2.3"),
        "release",
        evidence(pr=human_pr, reviews=[review(BOB)], standings=standings),
        pull_request=12,
    )
    two = run(
        POLICY,
        identity(ref="refs/tags/v1.2.3"),
        "release",
        evidence(pr=human_pr, reviews=[review(BOB, n=1), review(dave, n=2)], standings=standings),
        pull_request=12,
    )
    assert (
        not one.allowed and "needs 2 independent human approval(s) of commit aaaaaaa, has 1" in failed(one)[0]
    )
    assert two.allowed


def test_deploy_of_a_merge_commit_needs_approval_of_the_merged_head():
    merged = pull_request(merged=True, merge_commit_sha=MERGE)
    ok = run(
        POLICY,
        identity(sha=MERGE, environment="production"),
        "deploy",
        evidence(pr=merged, reviews=[review(BOB)], run_sha=MERGE),
        environment="production",
    )
    stale = run(
        POLICY,
        identity(sha=MERGE, environment="production"),
        "deploy",
        evidence(pr=merged, reviews=[review(BOB, commit_id=OLD)], run_sha=MERGE),
        environment="production",
    )
    assert ok.allowed, failed(ok)
    assert not stale.allowed


@pytest.mark.parametrize(
    ("approver", "allowed", "why"),
    [
        (BOB, True, "approved the production deployment"),
        (ALICE, False, "@alice is tied to the change (triggering actor"),
    ],
    ids=["environment-approval-by-independent-human", "environment-approval-by-triggering-actor"],
)
def test_environment_approvals(approver, allowed, why):
    ev = evidence(
        environment_approvals=[
            EnvironmentApproval(approver=approver, state="approved", environments=["production"])
        ]
    )
    decision = run(POLICY, agent_identity(environment="production"), "deploy", ev, environment="production")
    assert decision.allowed is allowed, failed(decision)
    assert why in decision.approvals[0].why


def test_environment_approval_for_another_environment_does_not_count():
    ev = evidence(
        environment_approvals=[EnvironmentApproval(approver=BOB, state="approved", environments=["staging"])]
    )
    decision = run(POLICY, agent_identity(environment="production"), "deploy", ev, environment="production")
    assert not decision.allowed
    assert decision.approvals[0].why == "approved staging, not production"


# --- agent provenance ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pr", "signal"),
    [
        (
            pull_request(
                author=ALICE,
                head_ref="feature",
                commits=[
                    commit(author=ALICE, message="Fix\n\nCo-authored-by: Claude <noreply@anthropic.com>")
                ],
            ),
            "co-author-trailer",
        ),
        (
            pull_request(
                author=ALICE,
                head_ref="feature",
                commits=[
                    commit(
                        author=ALICE, message="Fix\n\nCo-authored-by: Cursor Agent <cursoragent@cursor.com>"
                    )
                ],
            ),
            "co-author-trailer",
        ),
        (
            pull_request(
                author=ALICE,
                head_ref="feature",
                commits=[commit(email="209825114+claude[bot]@users.noreply.github.com")],
            ),
            "commit-author",
        ),
        (
            pull_request(
                author=ALICE,
                head_ref="feature",
                commits=[
                    commit(
                        author=ALICE,
                        message="Fix\n\n🤖 Generated with [Claude Code](https://claude.com/claude-code)",
                    )
                ],
            ),
            "agent-footer",
        ),
        (
            pull_request(author=ALICE, head_ref="claude/fix-bug", commits=[commit(author=ALICE)]),
            "branch-prefix",
        ),
        (
            pull_request(
                author=ALICE, head_ref="feature", commits=[commit(author=ALICE)], labels=["ai-generated"]
            ),
            "label",
        ),
        (pull_request(author=COPILOT, head_ref="feature", commits=[commit(author=ALICE)]), "pr-author"),
    ],
    ids=[
        "claude-co-author-trailer",
        "cursor-co-author-trailer",
        "claude-noreply-email",
        "claude-code-footer",
        "agent-branch-prefix",
        "policy-label",
        "agent-pr-author",
    ],
)
def test_human_authored_change_with_agent_signal_is_agent_driven(pr, signal):
    decision = run(POLICY, identity(), "merge", evidence(pr=pr, reviews=[review(BOB)]), pull_request=12)
    assert decision.subject.agent is True
    assert signal in [s.name for s in decision.subject.agent_signals]


CLAUDE_SMITH = Account(login="claude-smith", id=5005, type="User")


def test_bare_words_are_never_agent_evidence():
    pr = pull_request(
        author=ALICE,
        head_ref="feature",
        commits=[
            commit(
                author=ALICE, message="Ask Claude and Devin\n\nCo-authored-by: Claude <claude@example.com>"
            ).model_copy(
                # GitHub ties the address to a person's account (Claude Smith), not to an agent.
                update={
                    "authors": [GitActor(email="claude@example.com", name="Claude", account=CLAUDE_SMITH)]
                }
            )
        ],
    )
    decision = run(POLICY, identity(), "merge", evidence(pr=pr, reviews=[review(BOB)]), pull_request=12)
    assert decision.subject.agent is False
    assert decision.allowed, failed(decision)


def test_dependabot_pr_is_a_bot_not_an_agent():
    pr = pull_request(
        author=DEPENDABOT,
        head_ref="dependabot/pip/requests-2.32",
        commits=[commit(author=DEPENDABOT, email="49699333+dependabot[bot]@users.noreply.github.com")],
    )
    decision = run(POLICY, identity(), "merge", evidence(pr=pr, reviews=[review(BOB)]), pull_request=12)
    assert decision.subject.agent is False
    assert decision.allowed, failed(decision)


def test_commit_not_part_of_the_change_is_refused():
    decision = run(
        POLICY, identity(), "merge", evidence(pr=COPILOT_PR, reviews=[review(BOB)]), pull_request=12, sha=OLD
    )
    assert not decision.allowed
    assert "is neither the head" in failed(decision)[-1]


def test_requester_found_through_copilot_co_author_trailer():
    pr = pull_request(commits=[copilot_commit(requester=BOB)])
    decision = run(
        POLICY,
        identity(),
        "merge",
        evidence(pr=pr, reviews=[review(BOB)], triggering=OCTOCAT),
        pull_request=12,
    )
    assert not decision.allowed
    assert "requester" in decision.approvals[0].why


def test_evidence_none_reason_is_reported_for_execute():
    decision = run(
        POLICY,
        agent_identity(environment="staging"),
        "deploy",
        Evidence.none("the GitHub App is not configured"),
        environment="staging",
    )
    assert "the GitHub App is not configured" in " ".join(failed(decision))
    assert HEAD  # the builders' head commit is what approvals would have to name


def test_approval_of_another_commit_never_covers_the_commit_being_deployed():
    # The token's commit is not the head of the open PR GitHub associates with it: the PR's
    # approvals say nothing about what is being deployed.
    decision = run(
        POLICY,
        identity(sha=OLD, environment="production"),
        "deploy",
        evidence(pr=pull_request(), reviews=[review(BOB)]),
        environment="production",
    )
    assert not decision.allowed
    assert "is neither the head" in " ".join(failed(decision))


def test_merging_a_named_open_pr_executes_its_head():
    decision = run(
        POLICY,
        identity(sha=OLD, event_name="workflow_dispatch"),
        "merge",
        evidence(pr=pull_request(), reviews=[review(BOB)]),
        pull_request=12,
    )
    assert decision.allowed, failed(decision)
