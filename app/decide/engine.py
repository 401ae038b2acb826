"""The pure decision function: verified identity + request + policy + evidence in, Decision out.

No I/O happens here, which is what makes the engine exhaustively testable and lets
``agent-gate explain`` answer "what if" offline. Its one caller is the decision pipeline
(app/gate/pipeline.py), which gathers the facts first (:func:`evidence_needs` says which), calls
:func:`decide`, then applies the overlays.

Invariants no policy can switch off:

a. An AI agent may read and propose. It never executes without at least one independent human
   approval of the exact commit being executed; policy may require more, never fewer.
b. Self-approval never counts (actor, triggering actor, PR author, commit authors, committers,
   co-authors, the agent's requester, bots and agents).
c. An AI agent is never allowed an approval action.
d. Execute is refused for tokens from pull-request-triggered events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.decide.approvals import ApprovalOutcome, assess_approvals
from app.decide.commits import approved_commit, executed_commit
from app.decide.decision import Decision, DecisionRequest, Reason, RemedyFor, Subject
from app.decide.paths import FILES_REMEDY, PathCheck, assess, check, needs_files, teams_of
from app.decide.provenance import Provenance, analyse
from app.decide.rules import PATHS_UNKNOWN, REPOSITORY_WEIGHT, RuleCheck, check_rule
from app.evidence.model import Evidence, EvidenceNeeds
from app.policy.loader import LoadedPolicy, PolicySet
from app.policy.schema import ActionSpec, PermissionClass, Rule
from app.tokens.identity import WorkloadIdentity

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
    provenance. Propose decisions do only when a rule for the action depends on provenance or paths.
    The change's files are read only when a rule for the action names paths.
    """
    loaded = policies.for_owner(identity.repository_owner_id)
    if loaded is None:
        return None
    spec = loaded.catalog.get(request.action)
    if spec is None or spec.permission is PermissionClass.READ:
        return None
    rules = loaded.rules_for(request.action)
    plain = all(r.allow_agents and r.allow_bots and r.paths is None for r in rules)
    if spec.permission is PermissionClass.PROPOSE and plain:
        return None
    environment, files = effective_environment(identity, request), needs_files(rules)
    return EvidenceNeeds(teams=sorted(teams_of(rules)), environment=environment, files=files)


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
        sha=executed_commit(request, identity, evidence.pull_request),
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


@dataclass
class _Deciding:
    """One decision in the making: the facts, the reasons found so far, and what they settled."""

    identity: WorkloadIdentity
    request: DecisionRequest
    policies: PolicySet
    evidence: Evidence
    decision_id: str
    now: datetime
    environment: str | None
    loaded: LoadedPolicy | None
    prov: Provenance
    subject: Subject
    reasons: list[Reason] = field(default_factory=list)
    spec: ActionSpec | None = None
    rule: Rule | None = None
    required: int = 0
    approved_commit: str | None = None
    executed_commit: str | None = None
    paths: PathCheck | None = None  # the rule's path requirements the change triggered

    def finish(
        self,
        *,
        remedy: str | None = None,
        remedy_for: RemedyFor = "workflow",
        rule: str | None = None,
        outcome: ApprovalOutcome | None = None,
    ) -> Decision:
        """The Decision: allowed only when there are reasons and every one of them held. What may
        change it afterwards (audit mode, break-glass...) is the pipeline's list of overlays
        (app/gate/overlays.py), never the engine."""
        allowed = bool(self.reasons) and all(r.ok for r in self.reasons)
        spec = self.spec
        return Decision(
            decision_id=self.decision_id,
            allowed=allowed,
            action=self.request.action,
            permission=spec.permission.value if spec else None,
            approval_action=spec.approval if spec else False,
            rule=rule if rule is not None else (self.rule.name if self.rule else None),
            subject=self.subject,
            reasons=self.reasons,
            remedy=None if allowed else remedy,
            remedy_for=None if allowed or remedy is None else remedy_for,
            policy_digest=self.policies.digest,
            approvals=outcome.assessments if outcome else [],
            evidence_source=self.evidence.source,
            github_api_calls=self.evidence.github_api_calls,
            decided_at=self.now,
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
    """Decide one request. Default deny; every reason says what was checked and what it found.

    Each step either settles the decision or adds its reasons and hands on to the next.
    """
    d = _start(identity, request, policies, evidence, decision_id=decision_id, now=now)
    for step in (
        _governing_policy,
        _known_action,
        _invariants,
        _matching_rule,
        _path_requirements,
        _no_approval_needed,
        _approval_evidence,
    ):
        if (settled := step(d)) is not None:
            return settled
    return _independent_approvals(d)


def _start(
    identity: WorkloadIdentity,
    request: DecisionRequest,
    policies: PolicySet,
    evidence: Evidence,
    *,
    decision_id: str,
    now: datetime,
) -> _Deciding:
    """The facts every step reads: the environment, the governing policy, and who wrote the change."""
    environment = effective_environment(identity, request)
    loaded = policies.for_owner(identity.repository_owner_id)
    prov = analyse(identity, evidence, loaded.agents) if loaded else Provenance()
    return _Deciding(
        identity=identity,
        request=request,
        policies=policies,
        evidence=evidence,
        decision_id=decision_id,
        now=now,
        environment=environment,
        loaded=loaded,
        prov=prov,
        subject=_subject(identity, request, environment, prov, evidence),
    )


def _governing_policy(d: _Deciding) -> Decision | None:
    """Denied when no policy governs the repository's owner."""
    if d.loaded is not None:
        return None
    owner, owner_id = d.identity.repository_owner, d.identity.repository_owner_id
    d.reasons.append(
        Reason(
            code="policy",
            ok=False,
            message=f"no policy governs owner {owner} (repository_owner_id {owner_id})",
        )
    )
    return d.finish(
        remedy=f"add a policy file with owner: {{login: {owner}, id: {owner_id}}} to the gate's policy directory",
        remedy_for="operator",
    )


def _known_action(d: _Deciding) -> Decision | None:
    """Denied for an action the catalog does not know; otherwise note what the action and the change are."""
    assert d.loaded is not None
    action = d.request.action
    spec = d.loaded.catalog.get(action)
    if spec is None:
        known = ", ".join(sorted(d.loaded.catalog))
        d.reasons.append(
            Reason(code="action", ok=False, message=f"unknown action {action!r}; expected one of {known}")
        )
        return d.finish(
            remedy=f"ask for one of the catalog's actions, or declare {action!r} under 'actions:' in the policy"
        )
    d.spec = spec
    permission = spec.permission.value
    d.reasons.append(
        Reason(code="action", ok=True, message=f"{action} is {_article(permission)} {permission} action")
    )
    if d.prov.agent:
        detail = "; ".join(s.detail for s in d.prov.agent_signals)
        d.reasons.append(Reason(code="agent", ok=True, message="agent-driven: " + detail))
    unavailable = d.evidence.unavailable_reason
    if d.evidence.source == "none" and spec.permission is not PermissionClass.READ and unavailable:
        d.reasons.append(
            Reason(
                code="provenance",
                ok=True,
                message="only the actor was classified; change provenance not checked: " + unavailable,
                checked=False,
            )
        )
    return None


def _invariants(d: _Deciding) -> Decision | None:
    """Checked before any rule, so no rule can switch them off: agents never approve; execute about an
    environment needs the token's environment claim; execute is refused for tokens from pull-request
    events."""
    assert d.spec is not None
    if d.spec.approval and d.prov.agent:
        d.reasons.append(
            Reason(code="agent-approval", ok=False, message="an AI agent is never allowed an approval action")
        )
        return d.finish(remedy="approvals must be given by an independent human")
    named = d.request.environment
    if d.spec.permission is PermissionClass.EXECUTE and named and d.identity.environment is None:
        # GitHub's environment protections (required reviewers, wait timer, branch policy) run only
        # for a job that declares the environment, and only then does its token carry the claim.
        d.reasons.append(
            Reason(
                code="environment",
                ok=False,
                message=(
                    f"the request names environment {named!r}, but the job's token has no environment "
                    "claim: GitHub's environment protections never ran for this job"
                ),
            )
        )
        return d.finish(
            remedy=(
                f"add 'environment: {named}' to the job that asks the gate; for execute actions the "
                "request may only repeat the token's environment"
            )
        )
    event = d.identity.event_name
    if d.spec.permission is PermissionClass.EXECUTE and event in PULL_REQUEST_EVENTS:
        d.reasons.append(
            Reason(
                code="event",
                ok=False,
                message=(
                    f"execute actions are refused for {event} events: the workflow runs code "
                    "from the pull request"
                ),
            )
        )
        return d.finish(
            remedy=(
                "run execute actions from push, workflow_dispatch or release events; declare a preview "
                "deploy as a propose action (preview-deploy)"
            )
        )
    return None


def _matching_rule(d: _Deciding) -> Decision | None:
    """The first rule whose every condition holds; denied, naming the closest rule, when none does.
    Read and propose actions are settled here.

    Only the rules that could match this repository (the candidates) are checked, in file order, up
    to the first that matches. When none does, the closest rule is named: the rule the workload is
    nearest to (:attr:`RuleCheck.distance`), a candidate before a rule for another repository at the
    same distance, then the first in the file. A rule for another repository is at least
    ``REPOSITORY_WEIGHT`` away, so the others are checked only when no candidate is that close."""
    assert d.loaded is not None and d.spec is not None
    action = d.request.action
    matched: RuleCheck | None = None
    checks: list[RuleCheck] = []
    files = d.evidence.changed_files
    for rule in d.loaded.candidates(action, d.identity.repository_id):
        check = check_rule(rule, d.identity, d.environment, d.prov, files)
        if check.failures == 0:
            matched = check
            break
        if all(r.ok or r.code == PATHS_UNKNOWN for r in check.reasons):  # fail closed: no later rule
            d.reasons.extend(check.reasons)
            return d.finish(rule=rule.name, remedy=FILES_REMEDY)
        checks.append(check)
    if matched is None:
        every = d.loaded.rules_for(action)
        if not every:
            d.reasons.append(Reason(code="rule", ok=False, message=f"no rule of the policy allows {action}"))
            return d.finish(
                remedy=f"add a rule allowing {action} to the policy for this repository",
                remedy_for="operator",
            )
        if not checks or min(c.distance for c in checks) > REPOSITORY_WEIGHT:
            seen = {id(c.rule) for c in checks}
            checks += [
                check_rule(rule, d.identity, d.environment, d.prov, files)
                for rule in every
                if id(rule) not in seen
            ]
        closest = min(checks, key=lambda c: c.distance)  # candidates first, each group in file order
        name = closest.rule.name
        d.reasons.append(
            Reason(code="rule", ok=False, message=f"no rule allows {action}; closest is {name!r}")
        )
        d.reasons.extend(closest.reasons)
        failed = "; ".join(r.message for r in closest.reasons if not r.ok)
        return d.finish(
            rule=name, remedy=f"meet rule {name!r} ({failed}), or add a rule that allows this workload"
        )
    d.rule = matched.rule
    d.reasons.append(Reason(code="rule", ok=True, message=f"rule {d.rule.name!r} allows {action}"))
    d.reasons.extend(matched.reasons)
    if d.spec.permission is not PermissionClass.EXECUTE:
        return d.finish()
    return None


def _path_requirements(d: _Deciding) -> Decision | None:
    """Execute: the approvals the change's paths call for (app/decide/paths.py); denied when its files
    are not known."""
    assert d.rule is not None
    d.paths = check(d.rule, d.evidence.changed_files, agent=d.prov.agent)
    needed = d.rule.required_approvals() or d.prov.agent
    if d.paths is None or (d.paths.unknown and d.evidence.source == "none" and needed):
        return None  # without any evidence, the approvals step denies (it needs approvals anyway)
    d.reasons.extend(d.paths.reasons)
    if d.paths.unknown:
        return d.finish(remedy=FILES_REMEDY)
    return None


def _no_approval_needed(d: _Deciding) -> Decision | None:
    """Execute: allowed when the rule requires no approval and no agent is involved (invariant a:
    an agent always needs at least one; policy may require more, never fewer)."""
    assert d.rule is not None
    d.required = max(d.rule.required_approvals(), d.paths.required if d.paths else 0)
    if d.prov.agent and d.required < 1:
        d.required = 1
    if d.required == 0:
        d.reasons.append(Reason(code="approvals", ok=True, message="the rule requires no approval"))
        return d.finish()
    return None


def _approval_evidence(d: _Deciding) -> Decision | None:
    """Denied when approvals cannot be checked (no evidence), or the change being executed is ambiguous."""
    if d.evidence.source == "none":
        why = d.evidence.unavailable_reason or "no approval evidence was gathered"
        d.reasons.append(
            Reason(
                code="approvals",
                ok=False,
                message=f"needs {d.required} independent human approval(s), but no approval evidence is available: {why}",
            )
        )
        remedy = (
            d.evidence.unavailable_remedy or f"configure the GitHub App so approvals can be checked ({why})"
        )
        return d.finish(remedy=remedy, remedy_for="operator")
    commit, problem = approved_commit(d.request, d.identity, d.evidence.pull_request)
    if problem is not None or commit is None:
        d.reasons.append(
            problem or Reason(code="change", ok=False, message="the change could not be identified")
        )
        return d.finish(remedy="name the pull request being executed")
    d.approved_commit = commit
    d.executed_commit = executed_commit(d.request, d.identity, d.evidence.pull_request)
    return None


def _independent_approvals(d: _Deciding) -> Decision:
    """The last step: enough independent human approvals of the exact commit, or denied saying who could."""
    assert d.loaded is not None and d.rule is not None and d.approved_commit is not None
    outcome = assess_approvals(
        d.evidence,
        d.prov,
        d.rule,
        commit=d.approved_commit,
        executed=d.executed_commit,
        environment=d.environment,
        catalog=d.loaded.agents,
        required=d.required,
        org=d.identity.repository_owner,
    )
    d.reasons.append(outcome.reason)
    remedy = outcome.remedy
    if d.paths is not None and d.paths.triggered:
        found, more = assess(
            d.paths,
            outcome.assessments,
            d.evidence,
            commit=d.approved_commit,
            org=d.identity.repository_owner,
        )
        d.reasons.extend(found)
        remedy = "; and ".join([*([remedy] if remedy else []), *more]) or None
    policy = d.rule.approvals.unresolved_co_authors if d.rule.approvals else "block"
    if d.prov.unresolved_co_authors and policy == "block":
        names = ", ".join(d.prov.unresolved_co_authors[:3])
        d.reasons.append(
            Reason(
                code="co-authors",
                ok=False,
                message=(
                    f"co-author {names} is tied to no GitHub account, so it cannot be told apart from an "
                    "approver"
                ),
            )
        )
        remedy = (
            ((remedy + "; and ") if remedy else "")
            + "link the co-author's address to their GitHub account (or set approvals.unresolved_co_authors: allow)"
        )
    # A missing approval is the reviewers' to give; a co-author without an account is the author's to link.
    return d.finish(remedy=remedy, remedy_for="reviewer" if outcome.remedy else "workflow", outcome=outcome)
