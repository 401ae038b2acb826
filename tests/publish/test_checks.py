"""Check-run bodies from decisions: verdict, explanation, limits, create-or-update."""

from __future__ import annotations

from typing import Any

import pytest

from app.decide.decision import ApprovalAssessment, Decision
from app.publish.checks import MAX_OUTPUT_CHARS, CheckRunPublisher, check_run_body, truncate, update_body
from tests.builders import ALICE, POLICY_TEXT, agent_identity, evidence, policy_set, pull_request, review, run

POLICY = policy_set(POLICY_TEXT)


def denied_merge() -> Decision:
    decision = run(
        POLICY,
        agent_identity(event_name="workflow_dispatch"),
        "merge",
        evidence(pr=pull_request(), reviews=[review(ALICE)]),
        pull_request=12,
    )
    return decision.model_copy(update={"details_url": "http://gate.test/decisions/dec_x"})


def test_denied_agent_merge_explains_itself_to_a_reviewer():
    body = check_run_body(denied_merge())
    assert body["name"] == "agent-gate / merge"
    assert body["head_sha"] == "a" * 40
    assert body["status"] == "completed"
    assert body["conclusion"] == "action_required"
    assert body["details_url"] == "http://gate.test/decisions/dec_x"
    assert body["output"]["title"] == "Blocked: agent change needs an independent human approval"
    summary = body["output"]["summary"]
    for expected in (
        "### Workload",
        "### Agent involvement",
        "actor @Copilot is GitHub Copilot coding agent",
        "| @alice | review | APPROVED | `aaaaaaa` | - | no |",
        "self-approval never counts",
        "### For reviewers",
        "needs 1 approval of commit aaaaaaa",
        "sha256:test",
    ):
        assert expected in summary
    assert "for debugging only" in body["output"]["text"]


def test_a_denial_that_is_not_about_approvals_is_a_failure():
    decision = run(POLICY, agent_identity(), "approve")
    assert check_run_body(decision)["conclusion"] == "failure"


def test_an_allowed_decision_is_a_success():
    decision = run(POLICY, agent_identity(), "read")
    body = check_run_body(decision)
    assert body["conclusion"] == "success"
    assert body["output"]["title"].startswith("Allowed: read")


def test_update_never_changes_the_commit():
    assert "head_sha" not in update_body(check_run_body(denied_merge()))


@pytest.mark.parametrize(
    "size", [MAX_OUTPUT_CHARS - 1, MAX_OUTPUT_CHARS, MAX_OUTPUT_CHARS + 1, 10 * MAX_OUTPUT_CHARS]
)
def test_truncation_at_github_limits(size):
    text = truncate("x" * size)
    assert len(text) <= MAX_OUTPUT_CHARS
    assert text.endswith("decision page)") is (size > MAX_OUTPUT_CHARS)


def test_a_huge_explanation_is_cut_with_a_note():
    decision = denied_merge()
    many = [
        ApprovalAssessment(
            source="review",
            login=f"user{i}",
            id=i,
            state="APPROVED",
            commit="b" * 40,
            counted=False,
            why="stale: " + "y" * 200,
        )
        for i in range(1000)
    ]
    body = check_run_body(decision.model_copy(update={"approvals": many}))
    for field in ("title", "summary", "text"):
        assert len(body["output"][field]) <= MAX_OUTPUT_CHARS
    assert "truncated to fit GitHub's 65,535-character limit" in body["output"]["summary"]


class RecordingChecks:
    def __init__(self, existing: int | None = None) -> None:
        self.existing = existing
        self.calls: list[tuple[str, Any]] = []

    def find_check_run(self, repository: str, sha: str, name: str) -> int | None:
        self.calls.append(("find", (repository, sha, name)))
        return self.existing

    def create_check_run(self, repository: str, body: dict[str, Any]) -> int:
        self.calls.append(("create", body))
        return 7

    def update_check_run(self, repository: str, check_run_id: int, body: dict[str, Any]) -> None:
        self.calls.append(("update", (check_run_id, body)))


@pytest.mark.parametrize(
    ("existing", "verb"), [(None, "create"), (42, "update")], ids=["first-time", "again"]
)
def test_publisher_creates_or_updates(existing, verb):
    api = RecordingChecks(existing)
    CheckRunPublisher(api).publish(denied_merge())
    assert [c[0] for c in api.calls] == ["find", verb]
    assert api.calls[0][1] == ("octo-org/octo-repo", "a" * 40, "agent-gate / merge")


def test_publisher_hook_skips_decisions_not_about_a_commit():
    api = RecordingChecks()
    CheckRunPublisher(api)(run(POLICY, agent_identity(), "read"))
    assert api.calls == []


@pytest.mark.parametrize(
    ("action", "request_kw", "wanted"),
    [
        ("read", {}, False),
        ("open-pull-request", {}, False),
        ("open-pull-request", {"sha": "c" * 40}, True),
        ("comment", {"pull_request": 3}, True),
        ("merge", {}, True),
    ],
    ids=["read", "propose", "propose-naming-a-sha", "naming-a-pr", "execute"],
)
def test_which_decisions_get_a_check_run(action, request_kw, wanted):
    assert (
        CheckRunPublisher(RecordingChecks()).wants(run(POLICY, agent_identity(), action, **request_kw))
        is wanted
    )
