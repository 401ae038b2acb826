"""The workloads the gate builds itself: a pull request's merge check and a held job, each marked
with its origin so the engine knows which conditions apply."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.gate.workloads import (
    RUNNER_NOT_STARTED,
    Repo,
    held_job_identity,
    merge_group_identity,
    pull_request_check_identity,
)
from app.github.payloads import GhRun
from app.tokens.identity import DEPLOYMENT_ISSUER, MERGE_GROUP_ISSUER, Origin

RUN = {
    "id": 9,
    "head_branch": "main",
    "actor": {"login": "alice", "id": 1001},
    "event": "push",
    "head_sha": "a" * 40,
    "path": ".github/workflows/deploy.yml@refs/heads/main",
    "run_attempt": 2,
}
REPO = Repo("o/r", 1, "o", 2)


def test_a_held_job_is_read_from_githubs_run_and_a_run_without_its_fields_is_refused():
    identity = held_job_identity(
        GhRun.model_validate(RUN), REPO, environment="prod", run_id=9, delivery="d", now=0
    )
    assert (identity.origin, identity.issuer) == (Origin.HELD_DEPLOYMENT, DEPLOYMENT_ISSUER)
    assert (identity.ref, identity.job_workflow_ref, identity.run_attempt) == (
        "refs/heads/main",
        "o/r/.github/workflows/deploy.yml@refs/heads/main",
        2,
    )
    assert identity.runner_environment == RUNNER_NOT_STARTED
    with pytest.raises(InvalidRequest, match="lacks a field the gate needs"):
        held_job_identity(
            GhRun.model_validate({**RUN, "actor": None}),
            REPO,
            environment="prod",
            run_id=9,
            delivery="d",
            now=0,
        )


def test_a_pull_request_check_is_its_authors_at_its_head_into_its_base():
    identity = pull_request_check_identity(
        REPO, author="alice", author_id=1001,
        number=7, head_sha="b" * 40, head_ref="feature", base_ref="main", delivery="d", now=0,
    )  # fmt: skip
    assert identity.origin is Origin.PULL_REQUEST_CHECK
    assert (identity.actor_id, identity.sha, identity.ref) == (1001, "b" * 40, "refs/heads/main")


def test_a_merge_groups_pull_request_is_its_checks_identity_with_the_groups_origin():
    check = pull_request_check_identity(
        REPO, author="alice", author_id=1001,
        number=7, head_sha="b" * 40, head_ref="copilot/x", base_ref="main", delivery="d", now=0,
    )  # fmt: skip
    identity = merge_group_identity(check, number=7, group_sha="2" * 40)
    assert (identity.origin, identity.issuer, identity.event_name) == (
        Origin.MERGE_GROUP, MERGE_GROUP_ISSUER, "merge_group",
    )  # fmt: skip
    assert identity.subject == f"merge-group:1:{'2' * 40}:7"
    assert (identity.actor_id, identity.sha, identity.head_ref, identity.ref) == (
        1001, "b" * 40, "copilot/x", "refs/heads/main",
    ), "judged as its own check is: its author, at its current head, into its base"  # fmt: skip
