"""The changed files of a pull request, gathered through the real client from the fake GitHub:
paginated, a renamed file under both names, GitHub's 3,000-file cap and a refused list recorded as
incomplete (the rule then denies, saying why), and read only when a rule names paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.decide.decision import DecisionRequest
from app.errors import GitHubError
from app.evidence.gather import PR_FILES_LIMIT, GitHubEvidence
from app.evidence.model import EvidenceNeeds
from app.github.client import GitHubClient
from tests.builders import identity
from tests.fake_github import Failure, Scenario, start_fake_github
from tests.github.conftest import base_scenario, github_settings

FILES = EvidenceNeeds(files=True)
MERGE_PR = DecisionRequest(action="merge", pull_request=12)


@pytest.fixture
def gather() -> Iterator[Any]:
    servers: list[Any] = []

    def _gather(scenario: Scenario, request: DecisionRequest = MERGE_PR, needs: EvidenceNeeds = FILES) -> Any:
        url, server = start_fake_github(scenario)
        servers.append(server)
        source = GitHubEvidence(GitHubClient(github_settings(url)))
        return source.gather(identity(run_id="9000"), request, needs)

    yield _gather
    for server in servers:
        server.close()


def _requests(scenario: Scenario) -> list[str]:
    return [r["path"] for r in scenario.requests if r["path"].endswith("/files")]


def test_every_page_is_read_and_a_rename_counts_under_both_names(gather: Any) -> None:
    s = base_scenario()
    s.prs[12].files = [f"src/f{i}.py" for i in range(150)] + [
        {"filename": "docs/agents.md", "status": "renamed", "previous_filename": "AGENTS.md"}
    ]
    files = gather(s).changed_files
    assert files.complete and files.problem is None
    assert len(files.paths) == 152 and files.paths[-2:] == ["docs/agents.md", "AGENTS.md"]
    assert len(_requests(s)) == 2, "100 a page"
    assert s.schema_errors == []


def test_a_list_github_cut_at_3000_files_is_incomplete(gather: Any) -> None:
    s = base_scenario()
    s.prs[12].files = [f"f/{i}" for i in range(PR_FILES_LIMIT + 1)]
    files = gather(s).changed_files
    assert not files.complete
    assert files.problem == "PR #12 changes 3001 files and GitHub lists at most 3000; split the pull request"


def test_exactly_3000_files_the_pull_request_counts_are_complete(gather: Any) -> None:
    s = base_scenario()
    s.prs[12].files = [f"f/{i}" for i in range(PR_FILES_LIMIT)]
    assert gather(s).changed_files.complete


def test_a_refused_list_is_incomplete_and_says_why(gather: Any) -> None:
    s = base_scenario()
    s.failures = [Failure(r"/pulls/12/files$", 403)]
    files = gather(s).changed_files
    assert (
        not files.complete
        and files.problem == "GitHub answered 403 while listing the files of PR #12 of octo-org/octo-repo"
    )


def test_a_transient_failure_is_raised_never_decided_on(gather: Any) -> None:
    s = base_scenario()
    s.failures = [Failure(r"/pulls/12/files$", 502)]
    with pytest.raises(GitHubError):
        gather(s)


def test_without_a_pull_request_the_files_are_unknown(gather: Any) -> None:
    s = base_scenario()
    s.prs.clear()
    files = gather(s, DecisionRequest(action="deploy")).changed_files
    assert not files.complete and "has no pull request" in (files.problem or "")


def test_the_files_are_not_read_when_no_rule_names_paths(gather: Any) -> None:
    s = base_scenario()
    assert gather(s, needs=EvidenceNeeds()).changed_files is None
    assert _requests(s) == []
