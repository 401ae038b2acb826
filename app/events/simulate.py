"""Live simulation: the decision the gate would give a real pull request's merge or a real run's
deploy, under the current (or a candidate) policy, with the evidence gathered through the App.

``agent-gate explain --repo OWNER/REPO --pr N --action merge`` asks what the merge check asks (the
PR's author, at its head, into its base); ``--run ID --action deploy --environment E`` asks what the
deployment protection rule asks (the run's actor, event, ref, commit and workflow). The question is
built by the same functions as the real events' and answered by the same pipeline, without
recording: no audit record, no saved decision, no grant, no check run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from app.decide.decision import Decision, DecisionRequest
from app.errors import InvalidRequest
from app.events.deployments import deploy_question, read_held_job
from app.events.merge_check import merge_question, pr_check_identity
from app.evidence.gather import EvidenceSource, GitHubEvidence
from app.gate.pipeline import Pipeline
from app.gate.question import Question
from app.gate.workloads import Repo
from app.github.auth import repo_path
from app.github.payloads import GhPull, GhRepository, parse
from app.github.protocol import GitHubAPI
from app.policy.loader import PolicySet

REPOSITORY = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
SIMULATED = "simulated"  # the decision id, delivery and jti of a simulation: it is never recorded


def simulation(
    policies: PolicySet, evidence: EvidenceSource, clock: Callable[[], float], *, decision_id: str = SIMULATED
) -> Pipeline:
    """The decision pipeline with recording and minting turned off."""
    return Pipeline(
        policies=lambda: policies, evidence=evidence, clock=clock, recording=None, simulated_id=decision_id
    )


def _get(github: GitHubAPI, repository: str, path: str, what: str) -> dict[str, Any]:
    body = github.get_json(repository, f"/repos/{repo_path(repository)}{path}", what=what)
    if not isinstance(body, dict):
        raise InvalidRequest(f"GitHub's answer {what} is not an object", code="invalid-payload")
    return body


def _merge(github: GitHubAPI, repository: str, number: int, now: int) -> Question:
    repo = parse(GhRepository, _get(github, repository, "", f"reading {repository}"), f"reading {repository}")
    pr = parse(
        GhPull,
        _get(github, repository, f"/pulls/{number}", f"reading PR #{number} of {repository}"),
        f"reading PR #{number} of {repository}",
    )
    return merge_question(pr_check_identity(repo, pr, SIMULATED, now), number, {})


def _deploy(github: GitHubAPI, repository: str, run_id: int, environment: str, now: int) -> Question:
    repo = parse(GhRepository, _get(github, repository, "", f"reading {repository}"), f"reading {repository}")
    where = Repo.of(repo)
    identity = read_held_job(
        github, where, environment=environment, run_id=run_id, delivery=SIMULATED, now=now
    )
    return deploy_question(identity, {})


def simulate(
    github: GitHubAPI,
    policies: PolicySet,
    *,
    repository: str,
    action: str,
    pull_request: int | None = None,
    run_id: int | None = None,
    environment: str | None = None,
    clock: Callable[[], float],
) -> Decision:
    """Decide ``action`` for a real PR or run, gathering its evidence through the App; records nothing.

    Raises InvalidRequest for a malformed question, GitHubError when GitHub cannot answer.
    """
    if not REPOSITORY.fullmatch(repository):
        raise InvalidRequest(f"--repo: expected OWNER/REPO, got {repository!r}")
    if (pull_request is None) == (run_id is None):
        raise InvalidRequest("name exactly one of --pr N (a merge) or --run ID (a deploy)")
    now = int(clock())
    if pull_request is not None:
        question = _merge(github, repository, pull_request, now)
    else:
        assert run_id is not None
        if not environment:
            raise InvalidRequest("--run needs --environment E: the environment the run deploys to")
        question = _deploy(github, repository, run_id, environment, now)
    try:
        request = DecisionRequest.model_validate({**question.request.model_dump(), "action": action})
    except ValidationError as exc:
        raise InvalidRequest(f"--action: expected an action name like deploy, got {action!r}") from exc
    return (
        simulation(policies, GitHubEvidence(github), clock)
        .decide(replace(question, request=request))
        .decision
    )
