"""Reading a workflow file as GitHub runs it: per job, its environment, its OIDC identity, whether it
asks the gate and which reusable workflow it calls."""

from __future__ import annotations

import pytest

from app.github.workflows import workflow_jobs
from tests.cli.test_doctor import CALLER, CI, DEPLOY, MERGE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEPLOY, {"environment": "production", "id_token": True, "asks_gate": False}),
        (MERGE, {"environment": None, "id_token": True, "asks_gate": True}),
        (CI, {"environment": None, "id_token": False, "asks_gate": False}),
        (
            DEPLOY.replace("environment: production", "environment: {name: prod, url: https://x}"),
            {"environment": "prod"},
        ),
        (DEPLOY.replace("    permissions: {id-token: write, contents: read}\n", ""), {"id_token": False}),
        ("permissions: {id-token: write}\n" + CI, {"id_token": True}),
    ],
    ids=[
        "environment-and-identity",
        "asks-the-gate",
        "neither",
        "environment-object",
        "workflow-level-read",
        "inherits-write",
    ],
)
def test_a_job_is_read_as_github_runs_it(text, expected):
    [job] = workflow_jobs("w.yml", text)
    assert {k: getattr(job, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            CALLER.replace("CALLEE", "./.github/workflows/x.yml"),
            {"calls": "./.github/workflows/x.yml", "id_token": True},
        ),
        (CI, {"inherits_permissions": True}),
        ("permissions: {}\n" + CI, {"inherits_permissions": False}),
    ],
    ids=["calls-a-reusable-workflow", "inherits-the-callers-permissions", "says-its-own"],
)
def test_what_a_reusable_workflow_passes_on_is_read(text, expected):
    [job] = workflow_jobs("w.yml", text)
    assert {k: getattr(job, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("jobs: [\n", "not valid YAML"), ("on: push\n", "no jobs: mapping"), ("- a\n", "no jobs: mapping")],
    ids=["not-yaml", "no-jobs", "not-a-mapping"],
)
def test_a_file_that_is_not_a_workflow_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        workflow_jobs("w.yml", text)
