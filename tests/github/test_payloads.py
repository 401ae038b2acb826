"""app/github/payloads.py: the REST answers the gate reads (here: the repository and the run)."""

from __future__ import annotations

import pytest

from app.errors import GitHubError
from app.github.payloads import GhRepository, GhRun, parse
from tests.fake_github import example


def test_a_repository_gives_its_id_name_and_owner():
    repo = parse(GhRepository, example("repos/get"), "reading a repository")
    assert (repo.id, repo.full_name, repo.owner.login, repo.owner.id) == (
        1296269,
        "octocat/Hello-World",
        "octocat",
        1,
    )


def test_a_workflow_run_gives_what_a_held_jobs_identity_needs():
    run = parse(GhRun, example("actions/get-workflow-run"), "reading a run")
    assert (run.path, run.run_attempt) == (".github/workflows/build.yml@main", 1)
    assert run.actor is not None and run.actor.login == "octocat"


def test_a_run_may_come_without_its_attempt_number():
    body = example("actions/get-workflow-run")
    del body["run_attempt"]  # GitHub's schema does not require it
    assert parse(GhRun, body, "reading a run").run_attempt is None


def test_a_run_without_its_workflow_file_is_refused_naming_it():
    body = example("actions/get-workflow-run")
    del body["path"]
    with pytest.raises(GitHubError, match=r"while reading run 9 \(path: Field required\)"):
        parse(GhRun, body, "reading run 9")
