"""The workloads the gate builds itself, for the questions no OIDC token asks.

A pull request's required merge check (on its head, or on its merge queue's group) and a job held
by the deployment protection rule have no token: their identity is built from a verified webhook
and GitHub's own answers (re-fetched, never taken from the webhook alone), marked with its :class:`~app.tokens.identity.Origin` so the engine
knows which conditions apply when (a held job's runner is not known yet; a pull request check has
no run at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest
from app.github.payloads import GhRepository, GhRun
from app.tokens.identity import (
    DEPLOYMENT_ISSUER,
    MERGE_GROUP_ISSUER,
    PR_CHECK_ISSUER,
    Origin,
    WorkloadIdentity,
)

PR_CHECK_EVENT = "agent-gate-check"  # the event name of a pull request check (it has no run)
MERGE_GROUP_EVENT = "merge_group"  # the event name of a merge group's judgment (it has no run)
RUNNER_NOT_STARTED = "not-started"  # the runner of a held job: it has not started


@dataclass(frozen=True)
class Repo:
    """The repository a workload acts on, as GitHub reports it (ids decide, names are shown)."""

    full_name: str
    id: int
    owner: str
    owner_id: int

    @classmethod
    def of(cls, repository: GhRepository) -> Repo:
        """From a REST or webhook ``repository`` object."""
        return cls(repository.full_name, repository.id, repository.owner.login, repository.owner.id)


def _built(repo: Repo, origin: Origin, issuer: str, **facts: Any) -> WorkloadIdentity:
    return WorkloadIdentity(
        origin=origin,
        issuer=issuer,
        repository=repo.full_name,
        repository_id=repo.id,
        repository_owner=repo.owner,
        repository_owner_id=repo.owner_id,
        **facts,
    )


def pull_request_check_identity(
    repo: Repo,
    *,
    author: str,
    author_id: int,
    number: int,
    head_sha: str,
    head_ref: str,
    base_ref: str,
    delivery: str,
    now: int,
) -> WorkloadIdentity:
    """The identity a pull request's merge check is evaluated as: its author, at its head, into its base.

    The engine treats event, workflow and runner conditions as not applicable to it (they apply when
    the merge itself runs and its job asks the gate with a token).
    """
    return _built(
        repo,
        Origin.PULL_REQUEST_CHECK,
        PR_CHECK_ISSUER,
        subject=f"pull-request:{repo.id}:{number}",
        jti=delivery,
        issued_at=now,
        expires_at=now,
        actor=author,
        actor_id=author_id,
        event_name=PR_CHECK_EVENT,
        ref=f"refs/heads/{base_ref}",
        head_ref=head_ref,
        base_ref=base_ref,
        sha=head_sha,
        job_workflow_ref=f"{repo.full_name}/pull/{number}",
        run_id=0,
        run_attempt=1,
        runner_environment="github-hosted",
    )


def merge_group_identity(pr_check: WorkloadIdentity, *, number: int, group_sha: str) -> WorkloadIdentity:
    """The identity a pull request is judged as for its merge group's check: its own check's
    (``pull_request_check_identity``: its author, at its current head, into its base) with its own
    origin and the group's commit in its subject, so the record tells a group's judgment from the
    pull request's check."""
    return pr_check.model_copy(
        update={
            "origin": Origin.MERGE_GROUP,
            "issuer": MERGE_GROUP_ISSUER,
            "subject": f"merge-group:{pr_check.repository_id}:{group_sha}:{number}",
            "event_name": MERGE_GROUP_EVENT,
        }
    )


def held_job_identity(
    run: GhRun,
    repo: Repo,
    *,
    environment: str,
    run_id: int,
    delivery: str,
    now: int,
) -> WorkloadIdentity:
    """The identity of a job GitHub holds for the deployment protection rule, from its workflow run
    (``GET .../actions/runs/{id}``): the run's actor, event, ref, head commit and top-level workflow
    file. The one reading of a run, shared by the protection rule and ``agent-gate explain --run``.

    The runner is not known yet (the job has not started), so the engine treats runner conditions
    as applying when the job itself asks the gate. Raises :class:`InvalidRequest` when the run
    lacks a field the gate needs.
    """
    if run.actor is None:
        raise InvalidRequest(
            f"GitHub's answer for run {run_id} lacks a field the gate needs (actor)", code="invalid-payload"
        )
    branch = run.head_branch or ""
    ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    return _built(
        repo,
        Origin.HELD_DEPLOYMENT,
        DEPLOYMENT_ISSUER,
        subject=f"repo:{repo.full_name}:environment:{environment}",
        jti=delivery,
        issued_at=now,
        expires_at=now,
        actor=run.actor.login,
        actor_id=run.actor.id,
        event_name=run.event,
        ref=ref,
        sha=run.head_sha,
        environment=environment,
        job_workflow_ref=f"{repo.full_name}/{run.path.split('@', 1)[0]}@{ref}",
        job_workflow_sha=run.head_sha,
        run_id=run_id,
        run_attempt=run.run_attempt or 1,
        runner_environment=RUNNER_NOT_STARTED,
    )
