"""app/publish/merge_group.py: a merge group's check passes only when all of it does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.decide.decision import Decision, Reason
from app.publish.merge_group import group_check_body, group_conclusion, in_progress_body
from tests.decide.test_merge_group import pr_decision

GROUP = "2" * 40
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def passed(number: int = 7) -> Decision:
    d = pr_decision()
    return d.model_copy(
        update={
            "details_url": f"http://gate.test/decisions/dec_{number}",
            "decision_id": f"dec_{number}",
            "subject": d.subject.model_copy(update={"pull_request": number}),
        }
    )


def unapproved(number: int = 8) -> Decision:
    d = passed(number)
    return d.model_copy(
        update={"allowed": False, "reasons": [Reason(code="approvals", ok=False, message="no approval")]}
    )


def audit_only(number: int = 9) -> Decision:
    return unapproved(number).model_copy(update={"allowed": True, "would_deny": True})


@pytest.mark.parametrize(
    ("decisions", "problems", "expected"),
    [
        pytest.param([passed()], [], "success", id="every-pull-request-passes"),
        pytest.param([passed(), unapproved()], [], "failure", id="one-unapproved"),
        pytest.param([unapproved()], [], "failure", id="never-action-required"),
        pytest.param([passed(), audit_only()], [], "neutral", id="audit-mode-does-not-block"),
        pytest.param([passed()], ["#9 is not open"], "failure", id="a-problem"),
        pytest.param([], [], "failure", id="nothing-judged"),
    ],
)
def test_the_group_passes_only_when_every_pull_request_does(decisions, problems, expected):
    assert group_conclusion(decisions, problems) == expected
    assert group_check_body(GROUP, decisions, problems, now=NOW)["conclusion"] == expected


def test_the_check_links_the_first_failing_decision_and_lists_each_pull_request():
    body = group_check_body(GROUP, [passed(), unapproved()], ["#9 is not open"], now=NOW)
    assert (body["details_url"], body["external_id"]) == ("http://gate.test/decisions/dec_8", "dec_8")
    assert body["output"]["title"] == "Merge group of #7, #8: not exactly approved changes"
    summary = body["output"]["summary"]
    assert "- ✖ #9 is not open" in summary and "- ✅ #7 at aaaaaaa" in summary
    assert "- ✖ #8 at aaaaaaa: Denied: no approval" in summary and "  - ✖ no approval" in summary
    assert (body["head_sha"], body["status"], body["completed_at"]) == (
        GROUP,
        "completed",
        "2026-12-04T02:00:00Z",
    )


def test_in_progress_is_never_a_conclusion():
    body = in_progress_body(GROUP)
    assert (body["name"], body["head_sha"], body["status"]) == ("agent-gate / merge", GROUP, "in_progress")
    assert "conclusion" not in body
