"""The gate as a custom deployment protection rule: jobs that target a protected environment wait
for the gate's answer, whether or not their workflow ever calls it.

On ``deployment_protection_rule`` (signature checked by the webhook, then queued), the workload is
rebuilt from GitHub's facts: the workflow run is re-fetched (actor, event, head commit, workflow
file), its ref resolved from the run and what the event says is deployed (a tag is ``refs/tags/``,
a fork's branch is never the repository's: app/events/held_ref.py), and the evidence (its pull requests, reviews, environment approvals, provenance) is
gathered as for ``POST /v1/decisions``. The same pipeline decides the ``deploy`` action for that
environment under the same policy, and records the decision, its page and the held deployment in
one transaction (its page is linked).

- allowed: ``approved``;
- denied only for want of an independent human approval (a person can fix it): a progress comment
  saying who could unblock it; the job stays held, and the gate decides again when the evidence
  changes (``deployment_review``, ``pull_request_review``);
- denied for anything else (the policy forbids it): ``rejected``, with the reason.

An error never approves and never rejects: the job is retried by the queue with backoff (a
rejection would end the job). GitHub holds a job for up to 30 days; meanwhile the gate keeps the
held deployment in its store and re-decides on every relevant event.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from app.decide.decision import Decision, DecisionRequest
from app.errors import InvalidRequest
from app.events.held_ref import Deployed, held_ref
from app.evidence.model import Evidence
from app.gate.core import Gate
from app.gate.question import Keeps, KeepsFor, Question
from app.gate.workloads import Repo, held_job_identity
from app.github.auth import repo_path
from app.github.payloads import GhRun, parse
from app.github.protocol import GitHubAPI
from app.github.webhooks import DeploymentProtectionRuleEvent, DeploymentReviewEvent, PullRequestReviewEvent
from app.publish.deployments import MAX_PROGRESS_COMMENTS, Verdict, answer_body, news, verdict
from app.tokens.identity import WorkloadIdentity

log = logging.getLogger("agent_gate.deployments")

DEPLOY_ACTION = "deploy"
# GitHub's callback URL for the run: the gate answers only the run named there, and only through its
# own client (never by POSTing to a URL taken from a payload).
_CALLBACK_PATH = re.compile(
    r"/repos/(?P<repo>[^/]+/[^/]+)/actions/runs/(?P<run>[0-9]{1,19})/deployment_protection_rule$"
)


def run_id_of(url: str, repository: str) -> int:
    """The run a protection rule event is about, from its callback URL (checked against the repository)."""
    match = _CALLBACK_PATH.search(url)
    if match is None or match.group("repo").lower() != repository.lower():
        raise InvalidRequest(
            "the deployment_protection_rule payload has no callback URL for a run of "
            f"{repository}; is the App subscribed to the documented event?",
            code="invalid-payload",
        )
    return int(match.group("run"))


def on_protection_rule(g: Gate, event: DeploymentProtectionRuleEvent, delivery: str) -> dict[str, Any]:
    """A job waits for the gate: record the held deployment and decide it."""
    if event.action != "requested":
        return {"handled": False, "why": f"deployment_protection_rule action {event.action!r}"}
    repo, environment = event.repository, event.environment
    run_id = run_id_of(event.deployment_callback_url, repo.full_name)
    deployment_id = event.deployment.id if event.deployment is not None else None
    deployed = Deployed(
        ref=event.ref,
        sha=event.sha,
        deployment_ref=event.deployment.ref if event.deployment is not None else None,
        deployment_sha=event.deployment.sha if event.deployment is not None else None,
    )
    held: dict[str, Any] = {
        "repository_id": repo.id,
        "repository": repo.full_name,
        "owner": repo.owner.login,
        "owner_id": repo.owner.id,
        "run_id": run_id,
        "environment": environment,
        "deployment_id": deployment_id,
        "deployed": deployed.record(),
        "state": "pending",
        "comments": 0,
        "last_comment": None,
        "requested_at": int(g.clock()),
        "delivery": delivery,
    }
    for earlier in g.store.find_deployment_gates(repo.id, run_id=run_id, state=None):
        # The same deployment asked again (a redelivery): keep its comment count against GitHub's limit.
        if earlier["environment"] == environment and earlier.get("deployment_id") == deployment_id:
            held["comments"], held["last_comment"] = earlier.get("comments", 0), earlier.get("last_comment")
    return decide_held(g, held, delivery=delivery, why="requested")


def on_deployment_review(g: Gate, event: DeploymentReviewEvent, delivery: str) -> dict[str, Any]:
    """An environment approval (or rejection) of a run: decide its held deployments again."""
    if event.workflow_run is None:
        raise InvalidRequest("the deployment_review payload has no workflow_run", code="invalid-payload")
    held = g.store.find_deployment_gates(event.repository.id, run_id=event.workflow_run.id)
    results = [decide_held(g, h, delivery=delivery, why=f"deployment review {event.action}") for h in held]
    return {"handled": bool(results), "results": results}


def on_pull_request_review(g: Gate, event: PullRequestReviewEvent, delivery: str) -> dict[str, Any]:
    """A review of a PR: decide again the held deployments of its head commit or naming it."""
    number, head = event.pull_request.number, event.pull_request.head.sha
    held = [
        h
        for h in g.store.find_deployment_gates(event.repository.id)
        if number in h.get("pull_requests", []) or h.get("sha") == head
    ]
    results = [decide_held(g, h, delivery=delivery, why=f"review of PR #{number}") for h in held]
    return {"handled": bool(results), "results": results}


def read_held_job(
    github: GitHubAPI,
    repo: Repo,
    *,
    environment: str,
    run_id: int,
    delivery: str,
    now: int,
    deployed: Deployed | None = None,
) -> WorkloadIdentity:
    """The held job's identity, from its workflow run as GitHub reports it now (re-fetched) and what
    the protection rule event said is deployed (``None`` for a simulation: the run alone)."""
    run = parse(
        GhRun,
        github.get_json(
            repo.full_name,
            f"/repos/{repo_path(repo.full_name)}/actions/runs/{run_id}",
            what=f"reading run {run_id} of {repo.full_name} for its deployment to {environment}",
        ),
        f"reading run {run_id} of {repo.full_name}",
    )
    ref = held_ref(github, repo, run, deployed)
    return held_job_identity(
        run, repo, ref=ref, environment=environment, run_id=run_id, delivery=delivery, now=now
    )


def deploy_question(
    identity: WorkloadIdentity, audit_extra: dict[str, Any], keeps: KeepsFor | None = None
) -> Question:
    """What a held job asks: may it deploy to its environment (its identity says which)."""
    return Question(
        identity,
        DecisionRequest(action=DEPLOY_ACTION, environment=identity.environment),
        audit_kind="deployment-protection",
        audit_extra=audit_extra,
        keeps=keeps,
    )


def decide_held(g: Gate, held: dict[str, Any], *, delivery: str, why: str) -> dict[str, Any]:
    """Ask the pipeline about a held deployment, from GitHub's facts, and answer GitHub. Raises on any
    failure (the queue retries): an error never approves and never rejects.

    The decision is recorded with the held deployment (its decision, commit and pull requests, still
    pending) in one transaction; its state changes only once GitHub has taken the answer, so a failed
    answer leaves it pending and decided again."""
    if g.github is None:
        raise InvalidRequest(
            "a deployment protection rule event arrived, but the GitHub App is not configured",
            code="github-not-configured",
        )
    run_id = int(held["run_id"])
    held_repo = Repo(held["repository"], int(held["repository_id"]), held["owner"], int(held["owner_id"]))
    identity = read_held_job(
        g.github,
        held_repo,
        environment=held["environment"],
        run_id=run_id,
        delivery=delivery,
        now=int(g.clock()),
        deployed=Deployed.of_record(held.get("deployed")),
    )

    def keeps(decision: Decision, evidence: Evidence) -> Keeps:
        pulls = [evidence.pull_request.number] if evidence.pull_request else []
        pending = {**held, "sha": identity.sha, "pull_requests": pulls, "decision_id": decision.decision_id}
        pending["state"] = "pending"  # until GitHub has taken the answer
        return Keeps(audit={"verdict": verdict(decision).value}, deployment=pending)

    question = deploy_question(identity, {"delivery": delivery, "trigger": why, "run_id": run_id}, keeps)
    outcome = g.pipeline.decide(question)
    decision = outcome.decision
    assert outcome.keeps.deployment is not None
    held = outcome.keeps.deployment
    kind = verdict(decision)
    if kind is Verdict.WAIT:
        return _progress(g, held, decision)
    body = answer_body(decision, held["environment"], kind)
    g.github.review_deployment_protection_rule(held["repository"], held["run_id"], body)
    g.store.save_deployment_gate({**held, "state": kind.value})
    log.info(
        "deployment of run %s to %s %s (%s)",
        held["run_id"],
        held["environment"],
        kind.value,
        decision.decision_id,
    )
    return {"handled": True, "decision_id": decision.decision_id, "verdict": kind.value}


def _progress(g: Gate, held: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """Keep the job held; comment when there is something new to say, within GitHub's 10 comments."""
    assert g.github is not None
    attempt = int(held.get("comments", 0)) + 1
    body = answer_body(decision, held["environment"], Verdict.WAIT, attempt=attempt)
    gist = news(decision)
    posted = False
    if attempt <= MAX_PROGRESS_COMMENTS and gist != held.get("last_comment"):
        g.github.review_deployment_protection_rule(held["repository"], held["run_id"], body)
        g.store.save_deployment_gate({**held, "comments": attempt, "last_comment": gist, "state": "pending"})
        posted = True
    return {
        "handled": True,
        "decision_id": decision.decision_id,
        "verdict": Verdict.WAIT.value,
        "commented": posted,
    }
