"""Path-sensitive approvals: more independent approvals for a change that touches some paths. Pure.

A rule's ``approvals.paths`` lists requirements (``{paths, count, teams, agents_only}``). Each one
the change triggers (it touches a matching file; ``agents_only``: and it is agent-driven) needs its
own ``count`` of the approvals that counted, from members of its ``teams`` when it names teams. The
reasons name the files that triggered each requirement, so the check run and the decision page say
why more approvals were asked. When the change's files are not all known (GitHub lists at most
3,000, or could not list them, or there is no pull request), a rule with requirements denies,
saying why: it never decides as if the paths were untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.decide.decision import ApprovalAssessment, Reason
from app.evidence.model import ChangedFiles, Evidence
from app.policy.paths import matching, shown
from app.policy.schema import PathApprovals, Rule

PATH_APPROVALS = "path-approvals"  # the reason code of a requirement, met or not (a person can fix it)
# What makes a change's files known, for a decision denied without them.
FILES_REMEDY = (
    "a rule names paths, so the change's files are needed: act on a pull request (name it), with at most "
    "3,000 changed files (GitHub lists no more: split a larger one)"
)


def needs_files(rules: Iterable[Rule]) -> bool:
    """Whether deciding under ``rules`` needs the change's files."""
    return any(r.paths is not None or (r.approvals is not None and r.approvals.paths) for r in rules)


def teams_of(rules: Iterable[Rule]) -> set[str]:
    """Every team whose membership an approver's standing must say (the rules' and their paths')."""
    teams: set[str] = set()
    for rule in rules:
        if rule.approvals is not None:
            teams.update(rule.approvals.teams)
            teams.update(t for p in rule.approvals.paths for t in p.teams)
    return teams


@dataclass(frozen=True)
class Triggered:
    """A requirement the change triggered, and the files that did."""

    requirement: PathApprovals
    files: list[str]


@dataclass(frozen=True)
class PathCheck:
    """The requirements a change triggered, the reasons to show, and the approvals they need at least;
    ``unknown`` when the change's files are not all known (the decision is denied)."""

    triggered: list[Triggered]
    reasons: list[Reason]
    required: int
    unknown: bool = False


def check(rule: Rule, files: ChangedFiles | None, *, agent: bool) -> PathCheck | None:
    """Which of ``rule``'s path requirements the change triggers; None when it has none that apply."""
    requirements = [p for p in (rule.approvals.paths if rule.approvals else []) if agent or not p.agents_only]
    if not requirements:
        return None
    if files is None or not files.complete:
        why = files.problem if files is not None and files.problem else "they were not read"
        named = ", ".join(p for r in requirements for p in r.paths)
        message = f"rule {rule.name!r} asks more approvals for changes to {named}, but the files the change touches are not known ({why})"
        return PathCheck([], [Reason(code="paths", ok=False, message=message)], 0, unknown=True)
    triggered = [Triggered(r, hit) for r in requirements if (hit := matching(r.paths, files.paths))]
    if not triggered:
        named = ", ".join(p for r in requirements for p in r.paths)
        return PathCheck(
            [], [Reason(code="paths", ok=True, message=f"the change touches none of {named}")], 0
        )
    return PathCheck(triggered, [], max(t.requirement.count for t in triggered))


def assess(
    path_check: PathCheck, assessments: list[ApprovalAssessment], evidence: Evidence, *, commit: str, org: str
) -> tuple[list[Reason], list[str]]:
    """A reason for each triggered requirement (met or not) and, for those not met, what would meet them."""
    reasons: list[Reason] = []
    remedies: list[str] = []
    counted = {a.login.lower() for a in assessments if a.counted}
    for t in path_check.triggered:
        req = t.requirement
        teams = set(req.teams)
        have = [who for who in sorted(counted) if not teams or teams & set(_teams(evidence, who))]
        names = " or ".join(f"@{org}/{team}" for team in req.teams)
        source = f" from {names}" if names else ""
        what = f"the change touches {shown(t.files)} ({', '.join(req.paths)})"
        ok = len(have) >= req.count
        message = f"{what}: needs {req.count} independent approval(s){source} of commit {commit[:7]}, has {len(have)}"
        reasons.append(Reason(code=PATH_APPROVALS, ok=ok, message=message))
        if not ok:
            who = f"a member of {names}" if names else "a human with write access"
            remedies.append(
                f"{req.count - len(have)} more approval(s) of commit {commit[:7]} from {who} (for {shown(t.files, 3)})"
            )
    return reasons, remedies


def _teams(evidence: Evidence, login: str) -> list[str]:
    standing = evidence.standings.get(login)
    return standing.teams if standing is not None else []
