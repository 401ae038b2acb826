"""The pure decision function: verified identity + request + policy + evidence in, Decision out.

No I/O happens here, which is what makes the engine exhaustively testable and lets
``agent-gate explain`` answer "what if" offline. The API gathers the facts first
(:func:`evidence_needs` says which), then calls :func:`decide`.

Invariants no policy can switch off:

a. An AI agent may read and propose. It never executes without at least one independent human
   approval of the exact commit being executed; policy may require more, never fewer.
b. Self-approval never counts (actor, triggering actor, PR author, commit authors, committers,
   co-authors, the agent's requester, bots and agents).
c. An AI agent is never allowed an approval action.
d. Execute is refused for tokens from pull-request-triggered events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.decide.approvals import ApprovalOutcome, assess_approvals
from app.decide.decision import Decision, DecisionRequest, Reason, Subject
from app.decide.provenance import Provenance, analyse
from app.evidence.model import Evidence, EvidenceNeeds, PullRequestFacts
from app.policy.loader import PolicySet
from app.policy.schema import (
    ActionSpec,
    PermissionClass,
    Repository,
    RepositoryPattern,
    Rule,
    describe_matchers,
    matcher_matches,
)
from app.tokens.identity import PR_CHECK_ISSUER, WorkloadIdentity

PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def effective_environment(identity: WorkloadIdentity, request: DecisionRequest) -> str | None:
    """The environment being acted on: the request's, else the token's (the API checks they agree)."""
    return request.environment or identity.environment


def evidence_needs(
    policies: PolicySet, identity: WorkloadIdentity, request: DecisionRequest
) -> EvidenceNeeds | None:
    """What to gather from GitHub for this decision, or None when it needs nothing.

    Read decisions never need evidence. Execute (and approval) decisions always do: approvals and
    provenance. Propose decisions do only when a rule for the action depends on provenance.
    """
    loaded = policies.for_owner(identity.repository_owner_id)
    if loaded is None:
        return None
    spec = loaded.catalog.get(request.action)
    if spec is None or spec.permission is PermissionClass.READ:
        return None
    rules = loaded.rules_for(request.action)
    if spec.permission is PermissionClass.PROPOSE and all(r.allow_agents and r.allow_bots for r in rules):
        return None
    teams = sorted({t for r in rules if r.approvals for t in r.approvals.teams})
    return EvidenceNeeds(teams=teams, environment=effective_environment(identity, request))


_WEIGHTS = {"repository": 3, "environment": 3}


@dataclass
class _RuleCheck:
    rule: Rule
    reasons: list[Reason]

    @property
    def failures(self) -> int:
        return sum(1 for r in self.reasons if not r.ok)

    @property
    def distance(self) -> int:
        """How far the workload is from this rule. Repository and environment name the target the
        caller meant, so a rule for the right target with a wrong ref is closer than one for another."""
        return sum(_WEIGHTS.get(r.code, 1) for r in self.reasons if not r.ok)


def _check_repository(rule: Rule, identity: WorkloadIdentity) -> Reason:
    if rule.repositories == "*":
        return Reason(code="repository", ok=True, message=f"any repository of {identity.repository_owner}")
    for entry in rule.repositories:
        if isinstance(entry, Repository) and entry.id == identity.repository_id:
            if entry.name.lower() != identity.repository.lower():
                return Reason(
                    code="repository",
                    ok=False,
                    message=(
                        f"repository id {entry.id} is pinned as {entry.name} but the token names it "
                        f"{identity.repository}; if it was renamed, update the policy"
                    ),
                )
            return Reason(code="repository", ok=True, message=f"repository {entry.name} (id {entry.id})")
        if isinstance(entry, RepositoryPattern) and entry.matches(identity.repository):
            return Reason(code="repository", ok=True, message=f"repository matches /{entry.name_pattern}/")
    expected = ", ".join(
        f"{e.name} (id {e.id})" if isinstance(e, Repository) else f"/{e.name_pattern}/"
        for e in rule.repositories
    )
    return Reason(
        code="repository",
        ok=False,
        message=f"repository: got {identity.repository} (id {identity.repository_id}), expected {expected}",
    )


def _check_rule(
    rule: Rule, identity: WorkloadIdentity, environment: str | None, prov: Provenance
) -> _RuleCheck:
    reasons = [_check_repository(rule, identity)]

    def cond(code: str, matchers: list[object] | None, value: str | None, label: str) -> None:
        if matchers is None:
            return
        ok = any(matcher_matches(m, value) for m in matchers)  # type: ignore[arg-type]  # Matcher list
        shown = value if value is not None else "none"
        expected = describe_matchers(matchers)  # type: ignore[arg-type]
        reasons.append(
            Reason(
                code=code,
                ok=ok,
                message=f"{label} {shown}" if ok else f"{label}: got {shown}, expected {expected}",
            )
        )

    cond("ref", rule.refs, identity.ref, "ref")  # type: ignore[arg-type]
    cond("environment", rule.environments, environment, "environment")  # type: ignore[arg-type]
    if identity.issuer == PR_CHECK_ISSUER:
        # A pull request's required check is evaluated without a run: the run's conditions are
        # checked again, from its token, when the merge itself is asked for.
        if rule.events is not None or rule.workflows is not None or rule.runner_environments is not None:
            reasons.append(
                Reason(
                    code="run",
                    ok=True,
                    message="event, workflow and runner conditions apply when the merge job asks the gate",
                )
            )
    else:
        _check_run_conditions(rule, identity, reasons, cond)
    if not rule.allow_agents and prov.agent:
        reasons.append(
            Reason(code="agents", ok=False, message="this rule does not allow agent-driven workloads")
        )
    if not rule.allow_bots and prov.bot:
        reasons.append(Reason(code="bots", ok=False, message="this rule does not allow bots"))
    return _RuleCheck(rule, reasons)


def _check_run_conditions(
    rule: Rule,
    identity: WorkloadIdentity,
    reasons: list[Reason],
    cond: Callable[[str, list[object] | None, str | None, str], None],
) -> None:
    cond("event", rule.events, identity.event_name, "event")  # type: ignore[arg-type]
    if rule.workflows is not None:
        ok = False
        pinned_wrong = None
        for wf in rule.workflows:
            if matcher_matches(wf.ref, identity.job_workflow_ref):
                if wf.sha is None or wf.sha == identity.job_workflow_sha:
                    ok = True
                    break
                pinned_wrong = wf.sha
        if ok:
            msg = f"workflow {identity.job_workflow_ref}"
        elif pinned_wrong:
            msg = (
                f"workflow sha: got {identity.job_workflow_sha or 'none'}, expected {pinned_wrong} "
                f"for {identity.job_workflow_ref}"
            )
        else:
            msg = (
                f"workflow: got {identity.job_workflow_ref}, expected "
                f"{describe_matchers([w.ref for w in rule.workflows])}"
            )
        reasons.append(Reason(code="workflow", ok=ok, message=msg))
    if rule.runner_environments is not None:
        ok = identity.runner_environment in rule.runner_environments
        reasons.append(
            Reason(
                code="runner",
                ok=ok,
                message=f"runner {identity.runner_environment}"
                if ok
                else f"runner: got {identity.runner_environment}, expected {' or '.join(rule.runner_environments)}",
            )
        )


def _subject(
    identity: WorkloadIdentity,
    request: DecisionRequest,
    environment: str | None,
    prov: Provenance,
    evidence: Evidence,
) -> Subject:
    run = evidence.run
    return Subject(
        repository=identity.repository,
        repository_id=identity.repository_id,
        owner=identity.repository_owner,
        owner_id=identity.repository_owner_id,
        actor=identity.actor,
        actor_id=identity.actor_id,
        agent=prov.agent,
        agent_signals=prov.agent_signals,
        workflow=identity.job_workflow_ref,
        workflow_sha=identity.job_workflow_sha,
        ref=identity.ref,
        sha=request.sha or identity.sha,
        event=identity.event_name,
        run_id=identity.run_id,
        run_attempt=identity.run_attempt,
        environment=environment,
        runner_environment=identity.runner_environment,
        pull_request=request.pull_request
        or (evidence.pull_request.number if evidence.pull_request else None),
        triggering_actor=run.triggering_actor.login if run and run.triggering_actor else None,
        commit_named=request.sha is not None,
    )


def approved_commit(
    request: DecisionRequest, identity: WorkloadIdentity, pr: PullRequestFacts | None
) -> tuple[str | None, Reason | None]:
    """The commit human approvals must name, or a failed reason when the change is ambiguous.

    For an open PR that is its head. For a deploy of a merge commit, it is the head of the merged PR
    at merge time. Without a PR, it is the commit being executed (environment approvals of the run).
    """
    target = request.sha or identity.sha
    if pr is None:
        return target, None
    if pr.merged and pr.merge_commit_sha == target:
        return pr.head_sha, None
    if target == pr.head_sha:
        return pr.head_sha, None
    # Merging a named, open PR executes its head, whatever commit the merging workflow runs at.
    if (
        request.action == "merge"
        and request.pull_request == pr.number
        and request.sha is None
        and pr.state == "open"
    ):
        return pr.head_sha, None
    return None, Reason(
        code="change",
        ok=False,
        message=(
            f"commit {target[:7]} is neither the head ({pr.head_sha[:7]}) nor the merge commit of PR "
            f"#{pr.number}; name the PR whose change is being executed"
        ),
    )


def decide(
    identity: WorkloadIdentity,
    request: DecisionRequest,
    policies: PolicySet,
    evidence: Evidence,
    *,
    decision_id: str,
    now: datetime,
) -> Decision:
    """Decide one request. Default deny; every reason says what was checked and what it found."""
    environment = effective_environment(identity, request)
    loaded = policies.for_owner(identity.repository_owner_id)
    catalog = loaded.agents if loaded else None
    prov = analyse(identity, evidence, catalog) if catalog else Provenance()
    subject = _subject(identity, request, environment, prov, evidence)

    def finish(
        reasons: list[Reason],
        *,
        spec: ActionSpec | None = None,
        rule: str | None = None,
        remedy: str | None = None,
        outcome: ApprovalOutcome | None = None,
    ) -> Decision:
        allowed = bool(reasons) and all(r.ok for r in reasons)
        return Decision(
            decision_id=decision_id,
            allowed=allowed,
            action=request.action,
            permission=spec.permission.value if spec else None,
            approval_action=spec.approval if spec else False,
            rule=rule,
            subject=subject,
            reasons=reasons,
            remedy=None if allowed else remedy,
            policy_digest=policies.digest,
            approvals=outcome.assessments if outcome else [],
            evidence_source=evidence.source,
            github_api_calls=evidence.github_api_calls,
            decided_at=now,
        )

    if loaded is None:
        return finish(
            [
                Reason(
                    code="policy",
                    ok=False,
                    message=(
                        f"no policy governs owner {identity.repository_owner} "
                        f"(repository_owner_id {identity.repository_owner_id})"
                    ),
                )
            ],
            remedy=(
                f"add a policy file with owner: {{login: {identity.repository_owner}, "
                f"id: {identity.repository_owner_id}}} to the gate's policy directory"
            ),
        )
    spec = loaded.catalog.get(request.action)
    if spec is None:
        known = ", ".join(sorted(loaded.catalog))
        return finish(
            [
                Reason(
                    code="action",
                    ok=False,
                    message=f"unknown action {request.action!r}; expected one of {known}",
                )
            ],
            remedy=f"ask for one of the catalog's actions, or declare {request.action!r} under 'actions:' in the policy",
        )

    reasons: list[Reason] = [
        Reason(
            code="action",
            ok=True,
            message=f"{request.action} is {_article(spec.permission.value)} {spec.permission.value} action",
        )
    ]
    if prov.agent:
        reasons.append(
            Reason(
                code="agent",
                ok=True,
                message="agent-driven: " + "; ".join(s.detail for s in prov.agent_signals),
            )
        )
    if (
        evidence.source == "none"
        and spec.permission is not PermissionClass.READ
        and evidence.unavailable_reason
    ):
        reasons.append(
            Reason(
                code="provenance",
                ok=True,
                message="only the actor was classified; change provenance not checked: "
                + evidence.unavailable_reason,
            )
        )

    # Invariants checked before any rule, so no rule can switch them off.
    if spec.approval and prov.agent:
        reasons.append(
            Reason(code="agent-approval", ok=False, message="an AI agent is never allowed an approval action")
        )
        return finish(reasons, spec=spec, remedy="approvals must be given by an independent human")
    if spec.permission is PermissionClass.EXECUTE and identity.event_name in PULL_REQUEST_EVENTS:
        reasons.append(
            Reason(
                code="event",
                ok=False,
                message=(
                    f"execute actions are refused for {identity.event_name} events: the workflow runs code "
                    "from the pull request"
                ),
            )
        )
        return finish(
            reasons,
            spec=spec,
            remedy=(
                "run execute actions from push, workflow_dispatch or release events; declare a preview "
                "deploy as a propose action (preview-deploy)"
            ),
        )

    checks = [_check_rule(rule, identity, environment, prov) for rule in loaded.rules_for(request.action)]
    matched = next((c for c in checks if c.failures == 0), None)
    if matched is None:
        if not checks:
            reasons.append(
                Reason(code="rule", ok=False, message=f"no rule of the policy allows {request.action}")
            )
            return finish(
                reasons,
                spec=spec,
                remedy=f"add a rule allowing {request.action} to the policy for this repository",
            )
        closest = min(checks, key=lambda c: c.distance)  # the first of the nearest
        reasons.append(
            Reason(
                code="rule",
                ok=False,
                message=f"no rule allows {request.action}; closest is {closest.rule.name!r}",
            )
        )
        reasons.extend(closest.reasons)
        failed = "; ".join(r.message for r in closest.reasons if not r.ok)
        return finish(
            reasons,
            spec=spec,
            rule=closest.rule.name,
            remedy=f"meet rule {closest.rule.name!r} ({failed}), or add a rule that allows this workload",
        )

    rule = matched.rule
    reasons.append(Reason(code="rule", ok=True, message=f"rule {rule.name!r} allows {request.action}"))
    reasons.extend(matched.reasons)
    if spec.permission is not PermissionClass.EXECUTE:
        return finish(reasons, spec=spec, rule=rule.name)

    required = rule.required_approvals()
    if prov.agent and required < 1:
        required = 1  # invariant (a): policy may require more, never fewer
    if required == 0:
        reasons.append(Reason(code="approvals", ok=True, message="the rule requires no approval"))
        return finish(reasons, spec=spec, rule=rule.name)

    if evidence.source == "none":
        why = evidence.unavailable_reason or "no approval evidence was gathered"
        reasons.append(
            Reason(
                code="approvals",
                ok=False,
                message=f"needs {required} independent human approval(s), but no approval evidence is available: {why}",
            )
        )
        return finish(
            reasons,
            spec=spec,
            rule=rule.name,
            remedy=f"configure the GitHub App so approvals can be checked ({why})",
        )

    commit, problem = approved_commit(request, identity, evidence.pull_request)
    if problem is not None or commit is None:
        reasons.append(
            problem or Reason(code="change", ok=False, message="the change could not be identified")
        )
        return finish(reasons, spec=spec, rule=rule.name, remedy="name the pull request being executed")

    outcome = assess_approvals(
        evidence,
        prov,
        rule,
        commit=commit,
        environment=environment,
        catalog=loaded.agents,
        required=required,
        org=identity.repository_owner,
    )
    reasons.append(outcome.reason)
    return finish(reasons, spec=spec, rule=rule.name, remedy=outcome.remedy, outcome=outcome)
