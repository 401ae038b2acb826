"""Approval codes: every approval considered says why it counted or not as a code (for logic: audit
mode, break-glass) beside the words (for people)."""

from __future__ import annotations

import pytest

from app.decide.approvals import SELF_APPROVAL_CODES
from tests.builders import (
    ALICE,
    BOB,
    CAROL,
    COPILOT,
    OCTOCAT,
    OLD,
    POLICY_TEXT,
    agent_identity,
    commit,
    copilot_commit,
    evidence,
    policy_set,
    pull_request,
    review,
    run,
)

POLICIES = policy_set(POLICY_TEXT)
MERGE = {"pull_request": 12}


def _codes(ev):
    decision = run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge", ev, **MERGE)
    return [(a.login, a.code, a.counted) for a in decision.approvals]


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(BOB)]),
            [("bob", "counted", True)],
            id="independent-writer",
        ),
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(ALICE)]),
            [("alice", "self", False)],
            id="the-triggering-actor-and-requester-is-self",
        ),
        pytest.param(
            evidence(pr=pull_request(commits=[copilot_commit(requester=BOB)]), reviews=[review(BOB)]),
            [("bob", "requester", False)],
            id="the-requester-alone",
        ),
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(BOB, commit_id=OLD)]),
            [("bob", "stale", False)],
            id="another-commit",
        ),
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(CAROL)]),
            [("carol", "no-write-access", False)],
            id="read-only",
        ),
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(COPILOT)]),
            [("Copilot", "agent", False)],
            id="an-agent",
        ),
        pytest.param(
            evidence(pr=pull_request(), reviews=[review(BOB, "CHANGES_REQUESTED", n=2), review(BOB, n=1)]),
            [("bob", "superseded", False), ("bob", "not-approved", False)],
            id="superseded-by-changes-requested",
        ),
        pytest.param(
            evidence(
                pr=pull_request(last_pusher=OCTOCAT, commits=[commit(author=BOB)]), reviews=[review(OCTOCAT)]
            ),
            [("octocat", "last-pusher", False)],
            id="the-last-pusher",
        ),
    ],
)
def test_every_approval_says_why_as_a_code(ev, expected):
    assert _codes(ev) == expected


def test_only_approvers_tied_to_the_change_are_self_approvals():
    assert {"self", "requester", "co-author"} == SELF_APPROVAL_CODES
