"""One model of "the explanation" of a decision, rendered to text, Markdown and JSON.

The check-run summary, the decision page and ``agent-gate explain`` all come from
:func:`explanation`, so they never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from app.decide.decision import Decision


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    url: str | None = None


@dataclass(frozen=True)
class ApprovalRow:
    who: str
    source: str
    state: str
    commit: str
    counted: bool
    why: str


@dataclass(frozen=True)
class Explanation:
    decision_id: str
    allowed: bool
    title: str  # one-line verdict
    verdict: str  # "Allowed" / "Blocked"
    action: str
    permission: str | None
    rule: str | None
    workload: list[Row]
    agent: bool
    agent_signals: list[str]
    approvals: list[ApprovalRow]
    reasons: list[tuple[bool, str, str]]  # (ok, code, message)
    remedy: str | None
    policy_digest: str
    decided_at: str
    details_url: str | None
    notes: list[str] = field(default_factory=list)


def _title(decision: Decision) -> str:
    if decision.allowed:
        return f"Allowed: {decision.action} by rule {decision.rule}"
    failed = [r for r in decision.reasons if not r.ok]
    codes = {r.code for r in failed}
    if "approvals" in codes and decision.subject.agent:
        return "Blocked: agent change needs an independent human approval"
    if "approvals" in codes:
        return "Blocked: needs an independent human approval"
    if "agent-approval" in codes:
        return "Blocked: an AI agent cannot approve"
    if "event" in codes:
        return "Blocked: execute actions are refused for pull-request events"
    return f"Blocked: {failed[0].message}" if failed else f"Blocked: {decision.action}"


def explanation(decision: Decision) -> Explanation:
    s = decision.subject
    server = "https://github.com"
    workload = [
        Row("Repository", f"{s.repository} (id {s.repository_id})", f"{server}/{s.repository}"),
        # A merge check evaluated from a webhook has no run (run_id 0): no link rather than a dead one.
        Row(
            "Workflow",
            s.workflow,
            f"{server}/{s.repository}/actions/runs/{s.run_id}/attempts/{s.run_attempt}"
            if s.run_id > 0
            else None,
        ),
    ]
    if s.check_run_id is not None:
        # The job itself (the token's check_run_id): its check run on GitHub, under its run.
        workload.append(
            Row("Job", f"check run {s.check_run_id}", f"{server}/{s.repository}/runs/{s.check_run_id}")
        )
    workload += [
        Row("Actor", f"@{s.actor} (id {s.actor_id})"),
        Row("Event", s.event),
        Row("Ref", s.ref),
        Row("Commit", s.sha, f"{server}/{s.repository}/commit/{s.sha}"),
        Row("Runner", s.runner_environment),
    ]
    if s.triggering_actor and s.triggering_actor != s.actor:
        after_actor = next(i for i, r in enumerate(workload) if r.label == "Actor") + 1
        workload.insert(after_actor, Row("Triggered by", f"@{s.triggering_actor}"))
    if s.environment:
        workload.append(Row("Environment", s.environment))
    if s.pull_request:
        workload.append(
            Row("Pull request", f"#{s.pull_request}", f"{server}/{s.repository}/pull/{s.pull_request}")
        )
    approvals = [
        ApprovalRow(
            who=f"@{a.login}",
            source="review" if a.source == "review" else "environment",
            state=a.state,
            commit=(a.commit or "")[:7] or "-",
            counted=a.counted,
            why=a.why,
        )
        for a in decision.approvals
    ]
    notes = []
    if decision.evidence_source != "none":
        notes.append(
            f"Evidence from {decision.evidence_source}; {decision.github_api_calls} GitHub API call(s)."
        )
    return Explanation(
        decision_id=decision.decision_id,
        allowed=decision.allowed,
        title=_title(decision),
        verdict="Allowed" if decision.allowed else "Blocked",
        action=decision.action,
        permission=decision.permission,
        rule=decision.rule,
        workload=workload,
        agent=s.agent,
        agent_signals=list(dict.fromkeys(f"{sig.name}: {sig.detail}" for sig in s.agent_signals)),
        approvals=approvals,
        reasons=[(r.ok, r.code, r.message) for r in decision.reasons],
        remedy=decision.remedy,
        policy_digest=decision.policy_digest,
        decided_at=decision.decided_at.isoformat(),
        details_url=decision.details_url,
        notes=notes,
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(e: Explanation) -> str:
    lines = [f"## {'✅' if e.allowed else '⛔'} {e.title}", ""]
    lines.append(
        f"**Action** `{e.action}` ({e.permission or 'unknown'}) · **Rule** `{e.rule or 'none'}` · "
        f"**Decision** `{e.decision_id}`"
    )
    lines += ["", "### Workload", "", "| | |", "|---|---|"]
    for row in e.workload:
        value = f"[{_md_escape(row.value)}]({row.url})" if row.url else _md_escape(row.value)
        lines.append(f"| {row.label} | {value} |")
    lines += ["", "### Agent involvement", ""]
    if e.agent:
        lines += [f"- {_md_escape(sig)}" for sig in e.agent_signals]
    else:
        lines.append("No agent signal fired.")
    lines += ["", "### Approvals considered", ""]
    if e.approvals:
        lines += ["| Approver | Source | State | Commit | Counted | Why |", "|---|---|---|---|---|---|"]
        for a in e.approvals:
            lines.append(
                f"| {a.who} | {a.source} | {a.state} | `{a.commit}` | {'yes' if a.counted else 'no'} | {_md_escape(a.why)} |"
            )
    else:
        lines.append("None.")
    lines += ["", "### Checks", ""]
    lines += [f"- {'✔' if ok else '✖'} **{code}**: {_md_escape(msg)}" for ok, code, msg in e.reasons]
    if e.remedy:
        lines += ["", "### What would make it pass", "", e.remedy]
    lines += ["", f"Policy digest `{e.policy_digest}` · decided {e.decided_at}"]
    lines += [f"{n}" for n in e.notes]
    if e.details_url:
        lines += ["", f"[Decision page]({e.details_url})"]
    return "\n".join(lines) + "\n"


def to_text(e: Explanation) -> str:
    lines = [e.title, "=" * min(len(e.title), 78), ""]
    lines.append(f"action: {e.action} ({e.permission or 'unknown'})   rule: {e.rule or 'none'}")
    lines += ["", "Workload:"] + [f"  {r.label + ':':<14} {r.value}" for r in e.workload]
    lines += ["", "Agent involvement:"]
    lines += [f"  - {s}" for s in e.agent_signals] if e.agent else ["  none detected"]
    if e.approvals:
        lines += ["", "Approvals considered:"]
        lines += [
            f"  {'+' if a.counted else '-'} {a.who} ({a.source}, {a.state}, {a.commit}): {a.why}"
            for a in e.approvals
        ]
    lines += ["", "Checks:"] + [f"  [{'ok' if ok else 'FAIL'}] {code}: {msg}" for ok, code, msg in e.reasons]
    if e.remedy:
        lines += ["", f"To pass: {e.remedy}"]
    lines += ["", f"policy {e.policy_digest}"]
    return "\n".join(lines) + "\n"


def render(decision: Decision, fmt: str) -> str:
    """Render a decision as ``text``, ``markdown`` or ``json`` (the API's body plus the explanation)."""
    e = explanation(decision)
    if fmt == "markdown":
        return to_markdown(e)
    if fmt == "json":
        return (
            json.dumps({"decision": decision.model_dump(mode="json"), "explanation": asdict(e)}, indent=2)
            + "\n"
        )
    return to_text(e)
