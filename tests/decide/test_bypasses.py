"""Requests found to get an allow they should not, when the gate was tried as an attacker would.

Each case failed on the engine before it was fixed; together with tests/web and tests/credentials
they keep the mission honest: an agent identity cannot deploy or merge without an independent
human approval, however the request is worded.
"""

from __future__ import annotations

import pytest

from app.credentials.grants import GrantSubject
from app.evidence.model import EnvironmentApproval
from app.publish.checks import check_run_body
from tests.builders import (
    ALICE,
    BOB,
    HEAD,
    MERGE,
    OLD,
    POLICY_TEXT,
    agent_identity,
    commit,
    evidence,
    failed,
    identity,
    policy_set,
    pull_request,
    review,
    run,
)

POLICY = policy_set(POLICY_TEXT)


# --- the environment of an execute action comes from the token --------------------------------------


@pytest.mark.parametrize(
    ("who", "environment"),
    [
        pytest.param(identity(), "staging", id="human-names-staging-without-the-claim"),
        pytest.param(agent_identity(), "production", id="agent-names-production-without-the-claim"),
    ],
)
def test_an_execute_action_may_not_name_an_environment_its_job_does_not_run_in(who, environment):
    # GitHub's environment protections (required reviewers, wait timer, branch policy) ran for no
    # environment: the job never declared one, so its token has no environment claim.
    decision = run(POLICY, who, "deploy", evidence(), environment=environment)
    assert not decision.allowed
    assert failed(decision) == [
        f"environment: the request names environment {environment!r}, but the job's token has no "
        "environment claim: GitHub's environment protections never ran for this job"
    ]
    assert decision.remedy is not None and f"add 'environment: {environment}' to the job" in decision.remedy


def test_the_request_may_repeat_the_tokens_environment():
    decision = run(POLICY, identity(environment="staging"), "deploy", environment="staging")
    assert decision.allowed, failed(decision)


def test_read_and_propose_actions_may_still_name_an_environment():
    decision = run(POLICY, agent_identity(), "read", environment="staging")
    assert decision.allowed, failed(decision)


# --- environment approvals count for the commit the run deploys ------------------------------------


def merged_pr_evidence(approver=BOB, run_sha=MERGE, reviews=None):
    return evidence(
        pr=pull_request(merged=True, merge_commit_sha=MERGE),
        reviews=reviews or [],
        run_sha=run_sha,
        environment_approvals=[
            EnvironmentApproval(approver=approver, state="approved", environments=["production"])
        ],
    )


def test_an_environment_approval_of_the_run_counts_for_a_deploy_of_a_merge_commit():
    # main at the merge commit of PR #12, a release manager approved the production deployment of
    # this very run: that approves the commit being deployed.
    decision = run(
        POLICY,
        agent_identity(sha=MERGE, environment="production"),
        "deploy",
        merged_pr_evidence(),
        environment="production",
    )
    assert decision.allowed, failed(decision)
    [approval] = decision.approvals
    assert (approval.source, approval.counted, approval.commit) == ("environment", True, MERGE)


def test_the_pr_head_approval_remains_another_way_to_deploy_a_merge_commit():
    decision = run(
        POLICY,
        agent_identity(sha=MERGE, environment="production"),
        "deploy",
        merged_pr_evidence(approver=BOB, run_sha=OLD, reviews=[review(BOB)]),
        environment="production",
    )
    assert decision.allowed, failed(decision)
    assert [(a.source, a.counted) for a in decision.approvals] == [("review", True), ("environment", False)]


def test_an_environment_approval_of_a_run_at_another_commit_never_counts():
    decision = run(
        POLICY,
        agent_identity(sha=MERGE, environment="production"),
        "deploy",
        merged_pr_evidence(run_sha=OLD),
        environment="production",
    )
    assert not decision.allowed
    assert decision.approvals[0].why == (
        f"stale: the run is at commit {OLD[:7]}, but the change being executed is {MERGE[:7]}"
    )


# --- a merge names the commit that was judged -------------------------------------------------------


def test_merging_a_named_pr_without_a_sha_names_the_pr_head_everywhere():
    # The merging workflow runs at main (OLD); approvals were judged on the PR's head (HEAD). The
    # decision, its check run and its grant must all name the head, never main.
    who = identity(sha=OLD, event_name="workflow_dispatch")
    decision = run(POLICY, who, "merge", evidence(pr=pull_request(), reviews=[review(BOB)]), pull_request=12)
    assert decision.allowed, failed(decision)
    assert decision.subject.sha == HEAD
    assert check_run_body(decision)["head_sha"] == HEAD
    assert GrantSubject.of(decision, who).sha == HEAD


def test_merging_a_named_pr_at_a_named_sha_keeps_the_named_sha():
    who = identity(sha=OLD, event_name="workflow_dispatch")
    decision = run(POLICY, who, "merge", evidence(pr=pull_request(), reviews=[review(BOB)]), sha=HEAD)
    assert decision.subject.sha == HEAD and decision.subject.commit_named


# --- GitHub's legacy noreply address (no id) names an account too ---------------------------------


def test_a_legacy_noreply_agent_co_author_is_an_agent_signal():
    pr = pull_request(
        author=ALICE,
        head_ref="feature",
        commits=[
            commit(author=ALICE, message="Fix\n\nCo-authored-by: Copilot <Copilot@users.noreply.github.com>")
        ],
    )
    decision = run(POLICY, identity(), "merge", evidence(pr=pr, reviews=[review(BOB)]), pull_request=12)
    assert decision.subject.agent is True
    assert [s.name for s in decision.subject.agent_signals] == ["co-author-trailer"]
