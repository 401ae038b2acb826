"""Path-sensitive rules end to end: webhook -> queue -> the PR's files read from the fake GitHub ->
decision -> the merge check, which names the paths that asked for more approvals; a pull request
GitHub cannot list in full fails closed and says so on the check and the decision page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.evidence.gather import PR_FILES_LIMIT
from tests.fake_github import Person
from tests.github.conftest import BOB, DAVE, HEAD, base_scenario
from tests.web.test_webhook import Hub

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals:
      count: 1
      paths:
        - {paths: [".github/workflows/**", "**/AGENTS.md"], count: 2, teams: [security], agents_only: true}
"""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    scenario = base_scenario()  # Copilot's PR 12
    scenario.teams["security"] = {"bob", "dave"}
    h = Hub(tmp_path, scenario, policy=POLICY)
    yield h
    h.close()


def _approve(hub: Hub, *people: Person) -> None:
    """Each person approves the head; GitHub sends a review event for the last of them."""
    pr = hub.scenario.prs[12]
    for who in people:
        pr.reviews.append({"user": who, "state": "APPROVED", "commit_id": HEAD, "id": 10 + len(pr.reviews)})
    last = {"login": people[-1].login, "id": people[-1].id}
    hub.deliver("pull_request_review", hub.payload("submitted", review={"user": last}))


def test_an_agents_workflow_change_needs_two_approvals_from_security(hub: Hub) -> None:
    hub.scenario.prs[12].files = ["src/app.py", ".github/workflows/release.yml"]
    hub.deliver("pull_request", hub.payload("opened"))
    _approve(hub, BOB)
    check = hub.merge_check()
    assert check["conclusion"] == "action_required"
    summary = check["output"]["summary"]
    assert "the change touches .github/workflows/release.yml (.github/workflows/**, **/AGENTS.md)" in summary
    assert "needs 2 independent approval(s) from @octo-org/security of commit aaaaaaa, has 1" in summary
    _approve(hub, DAVE)
    assert hub.merge_check()["conclusion"] == "success"
    assert hub.scenario.schema_errors == []


def test_an_agents_change_elsewhere_needs_the_one_approval(hub: Hub) -> None:
    hub.scenario.prs[12].files = ["src/app.py"]
    hub.deliver("pull_request", hub.payload("opened"))
    _approve(hub, BOB)
    check = hub.merge_check()
    assert check["conclusion"] == "success"
    assert "the change touches none of .github/workflows/**, **/AGENTS.md" in check["output"]["summary"]


def test_a_pull_request_github_cannot_list_in_full_fails_closed_saying_why(hub: Hub) -> None:
    hub.scenario.prs[12].files = [f"gen/{i}.txt" for i in range(PR_FILES_LIMIT + 1)]
    hub.deliver("pull_request", hub.payload("opened"))
    _approve(hub, BOB, DAVE)
    check = hub.merge_check()
    assert check["conclusion"] != "success"
    why = "PR #12 changes 3001 files and GitHub lists at most 3000; split the pull request"
    assert why in check["output"]["summary"]
    decision_id = check["details_url"].rsplit("/", 1)[-1]
    page = hub.web.get(f"/decisions/{decision_id}").get_data(as_text=True)
    assert "split the pull request" in page
