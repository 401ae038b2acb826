"""Matching the policy's rules against a workload: which conditions held, and which rule came closest.

Pure: the workload identity, the environment, the change's provenance and files in, reasons out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.decide.decision import Reason
from app.decide.provenance import Provenance
from app.evidence.model import ChangedFiles
from app.policy.paths import matching, shown
from app.policy.schema import Repository, RepositoryPattern, Rule, describe_matchers, matcher_matches
from app.tokens.identity import Origin, WorkloadIdentity

# What a failed condition adds to a rule's distance; a rule for another repository is at least
# REPOSITORY_WEIGHT away (the engine relies on it to skip them when a closer candidate exists).
REPOSITORY_WEIGHT = 3
_WEIGHTS = {"repository": REPOSITORY_WEIGHT, "environment": 3}
# The code of a ``paths`` condition that cannot be checked: the change's files are not all known.
# The engine denies on it rather than try a later rule (fail closed).
PATHS_UNKNOWN = "paths-unknown"


@dataclass
class RuleCheck:
    """How one rule fared against the workload: its reasons, and how far the workload is from it."""

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


def check_paths(patterns: list[str], files: ChangedFiles | None) -> Reason:
    """Whether the change touches one of ``patterns``, naming the files that do (``paths-unknown``
    when its files are not all known)."""
    if files is None or not files.complete:
        why = files.problem if files is not None and files.problem else "they were not read"
        return Reason(
            code=PATHS_UNKNOWN, ok=False, message=f"paths: the files the change touches are not known ({why})"
        )
    touched = matching(patterns, files.paths)
    if touched:
        return Reason(
            code="paths", ok=True, message=f"the change touches {shown(touched)} ({', '.join(patterns)})"
        )
    return Reason(code="paths", ok=False, message=f"paths: the change touches none of {', '.join(patterns)}")


def check_rule(
    rule: Rule,
    identity: WorkloadIdentity,
    environment: str | None,
    prov: Provenance,
    files: ChangedFiles | None = None,
) -> RuleCheck:
    reasons = [_check_repository(rule, identity)]

    def cond(code: str, matchers: list[object] | None, value: str | None, label: str) -> None:
        if matchers is None:
            return
        ok = any(matcher_matches(m, value) for m in matchers)  # type: ignore[arg-type]  # Matcher list
        shown = value if value is not None else "none"
        if ok:
            reasons.append(Reason(code=code, ok=True, message=f"{label} {shown}"))
            return
        expected = describe_matchers(matchers)  # type: ignore[arg-type]
        reasons.append(Reason(code=code, ok=False, message=f"{label}: got {shown}, expected {expected}"))

    cond("ref", rule.refs, identity.ref, "ref")  # type: ignore[arg-type]
    cond("environment", rule.environments, environment, "environment")  # type: ignore[arg-type]
    if identity.origin in (Origin.PULL_REQUEST_CHECK, Origin.MERGE_GROUP):
        # A pull request's required check (on its head or its merge group) is evaluated without a run: the run's conditions are
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
    if rule.paths is not None:
        reasons.append(check_paths(rule.paths, files))
    if not rule.allow_agents and prov.agent:
        reasons.append(
            Reason(code="agents", ok=False, message="this rule does not allow agent-driven workloads")
        )
    if not rule.allow_bots and prov.bot:
        reasons.append(Reason(code="bots", ok=False, message="this rule does not allow bots"))
    return RuleCheck(rule, reasons)


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
    if rule.runner_environments is not None and identity.origin is Origin.HELD_DEPLOYMENT:
        # A job held by the protection rule has not started: its runner is unknown until it runs,
        # and the condition is checked when the job itself asks the gate.
        reasons.append(
            Reason(
                code="runner",
                ok=True,
                message="the runner condition applies when the job asks the gate",
                checked=False,
            )
        )
    elif rule.runner_environments is not None:
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
