"""Live simulation: the decision the gate would give a real pull request's merge or a real run's
deploy, under the current (or a candidate) policy, with the evidence gathered through the App.

``agent-gate explain --repo OWNER/REPO --pr N --action merge`` decides as the merge check does (the
PR's author, at its head, into its base); ``--run ID --action deploy --environment E`` decides as
the deployment protection rule does (the run's actor, event, ref, commit and workflow). Nothing is
recorded and nothing is minted: no audit record, no saved decision, no grant, no check run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.decide.decision import Decision, DecisionRequest
from app.decide.engine import decide, evidence_needs
from app.errors import InvalidRequest
from app.evidence.gather import GitHubEvidence
from app.evidence.model import Evidence
from app.github.auth import repo_path
from app.github.protocol import GitHubAPI
from app.policy.loader import PolicySet
from app.tokens.identity import WorkloadIdentity, held_job_identity, pull_request_check_identity

REPOSITORY = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
SIMULATED = "simulated"  # the decision id, delivery and jti of a simulation: it is never recorded


def _get(github: GitHubAPI, repository: str, path: str, what: str) -> dict[str, Any]:
    body = github.get_json(repository, f"/repos/{repo_path(repository)}{path}", what=what)
    if not isinstance(body, dict):
        raise InvalidRequest(f"GitHub's answer {what} is not an object", code="invalid-payload")
    return body


def merge_identity(github: GitHubAPI, repository: str, number: int, now: int) -> tuple[WorkloadIdentity, str]:
    """The identity the merge check would decide PR ``number`` as, and its head commit."""
    repo = _get(github, repository, "", f"reading {repository}")
    pr = _get(github, repository, f"/pulls/{number}", f"reading PR #{number} of {repository}")
    try:
        identity = pull_request_check_identity(
            repository=str(repo["full_name"]), repository_id=int(repo["id"]),
            owner=str(repo["owner"]["login"]), owner_id=int(repo["owner"]["id"]),
            author=str(pr["user"]["login"]), author_id=int(pr["user"]["id"]), number=number,
            head_sha=str(pr["head"]["sha"]), head_ref=str(pr["head"]["ref"]), base_ref=str(pr["base"]["ref"]),
            delivery=SIMULATED, now=now,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"GitHub's answer for PR #{number} lacks a field the gate needs ({exc.__class__.__name__})",
            code="invalid-payload",
        ) from exc
    return identity, identity.sha


def deploy_identity(
    github: GitHubAPI, repository: str, run_id: int, environment: str, now: int
) -> WorkloadIdentity:
    """The identity the deployment protection rule would decide run ``run_id``'s deploy as."""
    repo = _get(github, repository, "", f"reading {repository}")
    run = _get(github, repository, f"/actions/runs/{run_id}", f"reading run {run_id} of {repository}")
    return held_job_identity(
        run,
        repository=str(repo["full_name"]),
        repository_id=int(repo["id"]),
        owner=str(repo["owner"]["login"]),
        owner_id=int(repo["owner"]["id"]),
        environment=environment,
        run_id=run_id,
        delivery=SIMULATED,
        now=now,
    )


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
        identity, head = merge_identity(github, repository, pull_request, now)
        request = DecisionRequest(action=action, pull_request=pull_request, sha=head)
    else:
        assert run_id is not None
        if not environment:
            raise InvalidRequest("--run needs --environment E: the environment the run deploys to")
        identity = deploy_identity(github, repository, run_id, environment, now)
        request = DecisionRequest(action=action, environment=environment)
    needs = evidence_needs(policies, identity, request)
    evidence = GitHubEvidence(github).gather(identity, request, needs) if needs else Evidence.none()
    return decide(
        identity, request, policies, evidence, decision_id=SIMULATED, now=datetime.fromtimestamp(now, UTC)
    )
