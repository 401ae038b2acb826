"""The Re-run button on a fork's pull request: GitHub lists no pull request in the event, so the
gate finds it from the check's commit (every page of ``GET /commits/{sha}/pulls``) and decides again.

Only an open pull request into this repository whose head is that commit is decided again: a pull
request that merely contains the commit, a closed one, or one into another repository is not.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_github import APP_ID, PR, Commit
from tests.github.conftest import ALICE, BOB, HEAD, base_scenario
from tests.web.test_webhook import Hub

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "github-webhooks" / "examples.json"
FORK = (3000, "forker/octo-repo")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    scenario = base_scenario()
    scenario.prs[12].head_repo = FORK  # the pull request comes from a fork
    h = Hub(tmp_path, scenario)
    yield h
    h.close()


def rerequested(hub: Hub, event: str, sha: str = HEAD) -> dict[str, Any]:
    """@octokit/webhooks-examples' ``check_run`` / ``check_suite`` ``rerequested`` (whose
    ``pull_requests`` GitHub leaves empty for a fork's pull request), on the gate's check of ``sha``."""
    payload = copy.deepcopy(json.loads(EXAMPLES.read_text())["examples"][event]["rerequested"])
    item = payload[event]
    item.update({"head_sha": sha, "pull_requests": []})
    item["app"]["id"] = APP_ID
    if event == "check_run":
        item["name"] = "agent-gate / merge"
    payload["repository"].update({"id": 2000, "full_name": "octo-org/octo-repo"})
    payload["repository"]["owner"].update({"login": "octo-org", "id": 1000})
    return payload


def gate_checks(hub: Hub) -> list[dict[str, Any]]:
    return [c for c in hub.scenario.check_runs.values() if c["app_id"] == APP_ID and c["head_sha"] == HEAD]


def approve(hub: Hub) -> None:
    hub.scenario.prs[12].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_a_rerun_on_a_forks_pull_request_decides_it_again(hub, event):
    hub.deliver("pull_request", hub.payload("opened"))
    [check] = gate_checks(hub)
    assert check["conclusion"] == "action_required"
    approve(hub)
    hub.deliver(event, rerequested(hub, event))
    [check] = gate_checks(hub)
    assert check["conclusion"] == "success", "decided again, with the new approval"
    assert hub.scenario.count(rf"/commits/{HEAD}/pulls$") >= 1


def test_the_forks_pull_request_is_found_past_the_first_100(hub):
    """A commit on a long-lived branch belongs to many pull requests; the one whose head it is may be
    on GitHub's second page."""
    others = {
        n: PR(number=n, author=ALICE, head_sha=f"{n:040x}", commits=[Commit(sha=HEAD, author=ALICE)])
        for n in range(100, 230)
    }
    hub.scenario.prs = {**others, 12: hub.scenario.prs[12]}
    approve(hub)
    hub.deliver("check_run", rerequested(hub, "check_run"))
    [check] = gate_checks(hub)
    assert check["conclusion"] == "success"
    assert hub.scenario.count(rf"/commits/{HEAD}/pulls$") == 2, "every page, 100 a page"
    assert hub.scenario.count(r"/pulls/1\d\d$") == 0, "the pull requests merely containing it are not read"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"state": "closed"}, id="closed"),
        pytest.param({"base_repo": (4000, "elsewhere/octo-repo")}, id="into-another-repository"),
        pytest.param({"head_sha": "c" * 40}, id="merely-contains-the-commit"),
    ],
)
def test_only_an_open_pull_request_into_this_repository_headed_at_the_commit_is_decided(hub, change):
    pr = hub.scenario.prs[12]
    for name, value in change.items():
        setattr(pr, name, value)
    pr.commits.append(Commit(sha=HEAD, author=ALICE))  # the commit is still part of it
    hub.deliver("check_run", rerequested(hub, "check_run"))
    assert gate_checks(hub) == [], "nothing was decided or posted"
    assert hub.scenario.count(r"/pulls/12$") == 0


def test_a_listed_pull_request_of_another_repository_is_not_read_as_ours(hub):
    """GitHub may list a pull request of another repository with the same head: its number means
    another pull request here."""
    payload = rerequested(hub, "check_run")
    other = copy.deepcopy(json.loads(EXAMPLES.read_text())["examples"]["check_suite"]["rerequested"])
    listed = other["check_suite"]["pull_requests"][0]
    listed.update({"number": 12})
    listed["base"]["repo"]["id"] = 4000
    payload["check_run"]["pull_requests"] = [listed]
    hub.scenario.prs[12].head_repo = None  # our own #12 has the same head
    hub.deliver("check_run", payload)
    assert hub.scenario.count(r"/pulls/12$") >= 1, "found from the commit instead"
    assert hub.scenario.count(rf"/commits/{HEAD}/pulls$") == 1
