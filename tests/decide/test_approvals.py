"""Approval codes: every approval considered says why it counted or not as a code (for logic: audit
mode, break-glass) beside the words (for people)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.decide.approvals import SELF_APPROVAL_CODES
from app.decide.explain import explanation, to_markdown, to_text
from app.evidence.model import Review
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


# --- review-quality signals (OWASP AISVS C14.8.3): how long after the commit each review came ---------

REVIEWED_AT = datetime(2026, 11, 23, 10, 1, tzinfo=UTC)  # review(BOB, n=1)


def _after(committed_at: datetime | None, *reviews: Review) -> list[tuple[str, int | None]]:
    head = copilot_commit().model_copy(update={"committed_at": committed_at})
    ev = evidence(pr=pull_request(commits=[head]), reviews=list(reviews) or [review(BOB)])
    decision = run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge", ev, **MERGE)
    return [(a.code or "", a.after_commit_seconds) for a in decision.approvals]


@pytest.mark.parametrize(
    ("committed_at", "expected"),
    [
        pytest.param(REVIEWED_AT - timedelta(minutes=10), [("counted", 600)], id="ten-minutes-after-the-commit"),
        pytest.param(None, [("counted", None)], id="commit-time-unknown"),
        pytest.param(REVIEWED_AT + timedelta(days=3), [("counted", 0)], id="a-future-commit-date-reads-as-at-once"),
        pytest.param(datetime(2026, 11, 23, 9, 1), [("counted", 3600)], id="a-time-without-zone-is-utc"),
    ],
)  # fmt: skip
def test_each_review_says_how_long_after_the_commit_it_came(
    committed_at: datetime | None, expected: list[tuple[str, int | None]]
) -> None:
    assert _after(committed_at) == expected


def test_a_review_of_another_commit_or_superseded_keeps_its_own_timing() -> None:
    made = REVIEWED_AT - timedelta(hours=1)
    stale = review(BOB, commit_id=OLD, n=1)
    later = review(BOB, state="CHANGES_REQUESTED", n=2)
    assert _after(made, stale) == [("stale", None)], "the old commit is not in the PR's commits"
    assert _after(made, review(BOB, n=1), later) == [("superseded", 3600), ("not-approved", 3660)]
    decision_time = {a.submitted_at for a in run(
        POLICIES, agent_identity(event_name="workflow_dispatch"), "merge",
        evidence(pr=pull_request(), reviews=[review(BOB)]), **MERGE).approvals}  # fmt: skip
    assert decision_time == {REVIEWED_AT}


def test_the_explanation_shows_how_long_after_the_commit() -> None:
    head = copilot_commit().model_copy(update={"committed_at": REVIEWED_AT - timedelta(minutes=10)})
    ev = evidence(pr=pull_request(commits=[head]), reviews=[review(BOB)])
    e = explanation(run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge", ev, **MERGE))
    assert "| `aaaaaaa` | 10 min | yes |" in to_markdown(e)
    assert "(review, APPROVED, aaaaaaa, 10 min after the commit)" in to_text(e)
