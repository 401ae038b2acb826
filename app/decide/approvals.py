"""Which human approvals count: independence applied with full evidence. Pure.

An approval counts only when it is exactly ``APPROVED`` (reviews) or ``approved`` (environment
reviews), names the exact commit being executed, and comes from an eligible human: a person (not a
bot or an agent) with write permission, in one of the rule's teams when it names teams, and not
tied to the change (actor, triggering actor, PR author, commit author, committer, co-author,
requester; the last pusher when the rule asks). Every approval considered is reported with why it
counted or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from app.decide.decision import ApprovalAssessment, ApprovalCode, Reason
from app.decide.provenance import Provenance
from app.evidence.model import Account, Evidence, Review
from app.policy.agents import AgentCatalog, Kind
from app.policy.schema import Rule

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
# Approvals refused because the approver is tied to the change: nobody approves their own change,
# so no mode and no override relaxes a deny that refused one (app/decide/audit_mode.py).
SELF_APPROVAL_CODES: frozenset[ApprovalCode] = frozenset({"self", "requester", "co-author"})
# Review states that change a reviewer's verdict; COMMENTED and PENDING do not replace an approval.
_VERDICT_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


@dataclass
class ApprovalOutcome:
    reason: Reason
    assessments: list[ApprovalAssessment] = field(default_factory=list)
    remedy: str | None = None


def _key(account: Account) -> str:
    return f"id:{account.id}" if account.id is not None else f"login:{account.login.lower()}"


def _same(a: Account, b: Account) -> bool:
    if a.id is not None and b.id is not None:
        return a.id == b.id
    return a.login.lower() == b.login.lower()


def _latest_reviews(reviews: list[Review]) -> tuple[dict[str, Review], list[Review]]:
    """The latest verdict per reviewer, and the earlier verdicts it superseded."""
    ordered = sorted(
        (r for r in reviews if r.state in _VERDICT_STATES),
        key=lambda r: (r.submitted_at.timestamp() if r.submitted_at else 0.0, r.id),
    )
    latest: dict[str, Review] = {}
    superseded: list[Review] = []
    for review in ordered:
        key = _key(review.reviewer)
        if key in latest:
            superseded.append(latest[key])
        latest[key] = review
    return latest, superseded


def _tied_code(roles: list[str]) -> ApprovalCode:
    """The code of an approval refused for these roles: ``self`` before ``requester`` before ``co-author``."""
    if any(role not in {"requester", "co-author"} for role in roles):
        return "self"
    return "requester" if "requester" in roles else "co-author"


def _ineligible(
    account: Account,
    evidence: Evidence,
    prov: Provenance,
    rule: Rule,
    catalog: AgentCatalog,
    org: str,
) -> tuple[ApprovalCode, str] | None:
    """Why this account's approval cannot count (a code and the words), or None when it is an
    eligible independent human."""
    known = catalog.classify(account.login, account.id, account.type)
    if known.kind is Kind.AI_AGENT:
        return "agent", f"@{account.login} is an AI agent ({known.name}); only humans approve"
    if known.kind is Kind.BOT:
        return "bot", f"@{account.login} is a bot; only humans approve"
    roles = prov.roles_of(account.login, account.id)
    if roles:
        return (
            _tied_code(roles),
            f"@{account.login} is tied to the change ({', '.join(roles)}); self-approval never counts",
        )
    pr = evidence.pull_request
    last_push = bool(rule.approvals and rule.approvals.last_push)
    if last_push and pr and pr.last_pusher and _same(pr.last_pusher, account):
        return (
            "last-pusher",
            f"@{account.login} pushed the last commit, and the rule requires last-push approval by someone else",
        )
    standing = evidence.standings.get(account.login.lower())
    permission = standing.permission if standing else None
    if permission not in WRITE_PERMISSIONS:
        shown = permission or "unknown"
        return (
            "no-write-access",
            f"@{account.login} has {shown} permission on the repository; write or higher is needed",
        )
    teams = rule.approvals.teams if rule.approvals else []
    if teams and not (standing and set(standing.teams) & set(teams)):
        names = " or ".join(f"@{org}/{t}" for t in teams)
        return "not-in-team", f"@{account.login} is not an active member of {names}"
    return None


def assess_approvals(
    evidence: Evidence,
    prov: Provenance,
    rule: Rule,
    *,
    commit: str,
    environment: str | None,
    catalog: AgentCatalog,
    required: int,
    org: str = "",
    executed: str | None = None,
) -> ApprovalOutcome:
    """Count independent human approvals of the change; explain every approval considered.

    A pull-request review counts when it names ``commit`` (the PR head the change came from). An
    environment approval approves the run, so it counts when the run is at ``executed``, the commit
    being executed (default ``commit``): for a deploy of a merge commit, that is the merge commit.
    """
    executed = executed or commit
    sources = rule.approvals.sources if rule.approvals else ["review", "environment"]
    assessments: list[ApprovalAssessment] = []
    counted: set[str] = set()
    short = commit[:7]

    def record(
        source: Literal["review", "environment"],
        who: Account,
        state: str,
        approved: str | None,
        refused: tuple[ApprovalCode, str] | None,
        counted_because: str,
        submitted_at: datetime | None = None,
    ) -> None:
        if refused is None:
            counted.add(_key(who))
        code, why = refused or ("counted", counted_because)
        assessments.append(
            ApprovalAssessment(
                source=source,
                login=who.login,
                id=who.id,
                state=state,
                commit=approved,
                counted=refused is None,
                code=code,
                why=why,
                submitted_at=submitted_at,
                after_commit_seconds=_after_commit(evidence, approved, submitted_at),
            )
        )

    latest, superseded = _latest_reviews(evidence.reviews)
    for review in superseded:
        assessments.append(
            ApprovalAssessment(
                source="review",
                login=review.reviewer.login,
                id=review.reviewer.id,
                state=review.state,
                commit=review.commit_id,
                counted=False,
                code="superseded",
                why="superseded by a later review from the same reviewer",
                submitted_at=review.submitted_at,
                after_commit_seconds=_after_commit(evidence, review.commit_id, review.submitted_at),
            )
        )
    for review in latest.values():
        refused: tuple[ApprovalCode, str] | None
        if review.state != "APPROVED":
            refused = "not-approved", f"latest review is {review.state}, which cancels any earlier approval"
        elif "review" not in sources:
            refused = "source-not-counted", "the rule does not count pull-request reviews"
        elif review.commit_id != commit:
            got = review.commit_id[:7] if review.commit_id else "no commit"
            refused = "stale", f"stale: approved commit {got}, but the change being executed is {short}"
        else:
            refused = _ineligible(review.reviewer, evidence, prov, rule, catalog, org)
        record(
            "review",
            review.reviewer,
            review.state,
            review.commit_id,
            refused,
            "independent human with write permission approved this exact commit",
            review.submitted_at,
        )

    run_sha = evidence.run.head_sha if evidence.run else None
    for approval in evidence.environment_approvals:
        if approval.state != "approved":
            refused = "not-approved", f"environment review is {approval.state}"
        elif "environment" not in sources:
            refused = "source-not-counted", "the rule does not count environment approvals"
        elif environment is None or environment not in approval.environments:
            refused = (
                "wrong-environment",
                f"approved {', '.join(approval.environments) or 'no environment'}, not {environment or 'an environment'}",
            )
        elif run_sha is not None and run_sha != executed:
            refused = (
                "stale",
                f"stale: the run is at commit {run_sha[:7]}, but the change being executed is {executed[:7]}",
            )
        else:
            refused = _ineligible(approval.approver, evidence, prov, rule, catalog, org)
        record(
            "environment",
            approval.approver,
            approval.state,
            run_sha,
            refused,
            f"independent human with write permission approved the {environment} deployment",
        )

    have = len(counted)
    if have >= required:
        return ApprovalOutcome(
            Reason(
                code="approvals",
                ok=True,
                message=f"{have} independent human approval(s) of commit {short} (needs {required})",
            ),
            assessments,
        )
    return ApprovalOutcome(
        Reason(
            code="approvals",
            ok=False,
            message=(
                f"needs {required} independent human approval(s) of commit {short}, has {have}"
                + ("" if assessments else "; no approvals were found")
            ),
        ),
        assessments,
        _remedy(required - have, short, rule, prov, org, catalog),
    )


def _after_commit(evidence: Evidence, sha: str | None, submitted_at: datetime | None) -> int | None:
    """Seconds from commit ``sha``'s committer date to a review submitted at ``submitted_at``.

    A review-quality signal, never a control: the committer date is set by whoever made the commit,
    so a forged date in the future reads as 0 (reviewed at once), never as a long review.
    """
    if sha is None or submitted_at is None or evidence.pull_request is None:
        return None
    made = next((c.committed_at for c in evidence.pull_request.commits if c.sha == sha), None)
    if made is None:
        return None
    made, submitted_at = _aware(made), _aware(submitted_at)
    return max(0, int((submitted_at - made).total_seconds()))


def _aware(moment: datetime) -> datetime:
    """A time without a zone (an evidence file may write one) is UTC, as GitHub's are."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _remedy(missing: int, short: str, rule: Rule, prov: Provenance, org: str, catalog: AgentCatalog) -> str:
    teams = rule.approvals.teams if rule.approvals else []
    who = "a human with write access"
    if teams:
        who = "a member of " + " or ".join(f"@{org}/{t}" if org else t for t in teams)
    # Name the people who cannot approve; agents and bots never can, so they are not listed.
    names: dict[str, str] = {}
    roles: dict[str, list[str]] = {}
    for person in prov.involved:
        if person.login is None or catalog.classify(person.login, person.id).kind is not Kind.HUMAN:
            continue
        key = f"id:{person.id}" if person.id is not None else f"login:{person.login.lower()}"
        names.setdefault(key, person.login)
        if person.role not in roles.setdefault(key, []):
            roles[key].append(person.role)
    excluded = [f"@{names[key]} ({', '.join(r)})" for key, r in roles.items()]
    other = ""
    if excluded:
        other = " other than " + (
            ", ".join(excluded[:-1]) + " and " + excluded[-1] if len(excluded) > 1 else excluded[0]
        )
    plural = "approval" if missing == 1 else "approvals"
    return f"needs {missing} {plural} of commit {short} from {who}{other}"
