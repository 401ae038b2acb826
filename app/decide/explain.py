"""One model of "the explanation" of a decision, rendered to text, Markdown and JSON.

The check-run summary, the decision page and ``agent-gate explain`` all come from
:func:`explanation`, so they never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from app.decide.decision import Decision, Reason


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
    after_commit: str = "-"  # how long after the approved commit was made it was reviewed


def duration(seconds: int | None) -> str:
    """``seconds`` for a reader: "40 s", "12 min", "3 h 5 min", "2 d 4 h"; "-" for unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


CheckState = Literal["fail", "not-checked", "pass"]
_MARK: dict[CheckState, str] = {"fail": "✖", "not-checked": "○", "pass": "✔"}
_TEXT_MARK: dict[CheckState, str] = {"fail": "FAIL", "not-checked": "not checked", "pass": "ok"}
_ORDER: dict[CheckState, int] = {"fail": 0, "not-checked": 1, "pass": 2}
_REMEDY_HEADING = {
    "reviewer": "For reviewers",
    "workflow": "For the workflow's author",
    "operator": "For the gate's operator",
}


@dataclass(frozen=True)
class Check:
    """One reason as a reader sees it: failed, not checked (never shown as a pass), or passed."""

    state: CheckState
    code: str
    message: str

    @property
    def ok(self) -> bool:
        return self.state != "fail"

    @property
    def mark(self) -> str:
        return _MARK[self.state]

    @classmethod
    def of(cls, reason: Reason) -> Check:
        state: CheckState = "fail" if not reason.ok else ("pass" if reason.checked else "not-checked")
        return cls(state, reason.code, reason.message)


def readable_time(moment: datetime) -> str:
    """``2026-12-04 01:56:12 UTC``: seconds, and the zone named (a time without one is UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
    reasons: list[Check]  # failing first, then the ones not checked, then what held
    remedy: str | None
    policy_digest: str
    decided_at: str
    details_url: str | None
    notes: list[str] = field(default_factory=list)
    remedy_heading: str = "What would make it pass"  # addressed to whoever can act on it
    provenance_checked: bool = True  # False: no agent signal could fire, so none is claimed
    provenance_note: str = ""

    @property
    def rule_shown(self) -> str:
        """The rule for a reader: its name, or that none matched (never a rule called "none")."""
        return f"rule {self.rule}" if self.rule else "no rule matched"


def _verdict(decision: Decision) -> str:
    if decision.would_deny:
        return "Would deny (audit mode)"
    if decision.break_glass:
        return "Allowed by break-glass"
    return "Allowed" if decision.allowed else "Blocked"


def _title(decision: Decision) -> str:
    failed = [r for r in decision.reasons if not r.ok]
    if decision.would_deny:
        return f"Would deny (audit mode): {failed[0].message if failed else decision.action}"
    if decision.break_glass:
        why = f"; otherwise denied: {failed[0].message}" if failed else ""
        return f"Allowed by break-glass {decision.break_glass}{why}"
    if decision.allowed:
        return f"Allowed: {decision.action} by rule {decision.rule}"
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
        Row("Actor", f"@{s.actor} (id {s.actor_id})"),
        Row("Event", s.event),
        Row("Ref", s.ref),
        Row("Commit", s.sha, f"{server}/{s.repository}/commit/{s.sha}"),
        Row("Runner", s.runner_environment),
    ]
    if s.triggering_actor and s.triggering_actor != s.actor:
        workload.insert(3, Row("Triggered by", f"@{s.triggering_actor}"))
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
            after_commit=duration(a.after_commit_seconds),
        )
        for a in decision.approvals
    ]
    unchecked = next((r for r in decision.reasons if r.code == "provenance" and not r.checked), None)
    notes = []
    if decision.evidence_source != "none":
        notes.append(
            f"Evidence from {decision.evidence_source}; {decision.github_api_calls} GitHub API call(s)."
        )
    checks = sorted((Check.of(r) for r in decision.reasons), key=lambda c: _ORDER[c.state])
    return Explanation(
        decision_id=decision.decision_id,
        allowed=decision.allowed,
        title=_title(decision),
        verdict=_verdict(decision),
        action=decision.action,
        permission=decision.permission,
        rule=decision.rule,
        workload=workload,
        agent=s.agent,
        agent_signals=list(dict.fromkeys(f"{sig.name}: {sig.detail}" for sig in s.agent_signals)),
        approvals=approvals,
        reasons=checks,
        remedy=decision.remedy,
        policy_digest=decision.policy_digest,
        decided_at=readable_time(decision.decided_at),
        details_url=decision.details_url,
        notes=notes,
        remedy_heading=_REMEDY_HEADING.get(decision.remedy_for or "", "What would make it pass"),
        provenance_checked=unchecked is None,
        provenance_note=unchecked.message if unchecked else "",
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(e: Explanation) -> str:
    icon = "⛔" if not e.allowed else ("✅" if e.verdict == "Allowed" else "⚠️")
    lines = [f"## {icon} {e.title}", ""]
    rule = f"`{e.rule}`" if e.rule else "no rule matched"
    lines.append(
        f"**Action** `{e.action}` ({e.permission or 'unknown'}) · **Rule** {rule} · **Decision** `{e.decision_id}`"
    )
    lines += ["", "### Workload", "", "| | |", "|---|---|"]
    for row in e.workload:
        value = f"[{_md_escape(row.value)}]({row.url})" if row.url else _md_escape(row.value)
        lines.append(f"| {row.label} | {value} |")
    lines += ["", "### Agent involvement", ""]
    if e.agent:
        lines += [f"- {_md_escape(sig)}" for sig in e.agent_signals]
    elif not e.provenance_checked:
        lines.append(f"Not checked: {_md_escape(e.provenance_note)}.")
    else:
        lines.append("No agent signal fired.")
    lines += ["", "### Approvals considered", ""]
    if e.approvals:
        lines += [
            "| Approver | Source | State | Commit | After commit | Counted | Why |",
            "|---|---|---|---|---|---|---|",
        ]
        for a in e.approvals:
            lines.append(
                f"| {a.who} | {a.source} | {a.state} | `{a.commit}` | {a.after_commit} | "
                f"{'yes' if a.counted else 'no'} | {_md_escape(a.why)} |"
            )
    else:
        lines.append("None.")
    lines += ["", "### Checks", ""]
    lines += [f"- {c.mark} **{c.code}**: {_md_escape(c.message)}" for c in e.reasons]
    if e.remedy:
        lines += ["", f"### {e.remedy_heading}", "", e.remedy]
    lines += ["", f"Policy digest `{e.policy_digest}` · decided {e.decided_at}"]
    lines += [f"{n}" for n in e.notes]
    if e.details_url:
        lines += ["", f"[Decision page]({e.details_url})"]
    return "\n".join(lines) + "\n"


def to_text(e: Explanation) -> str:
    lines = [e.title, "=" * min(len(e.title), 78), ""]
    lines.append(f"action: {e.action} ({e.permission or 'unknown'})   {e.rule_shown}")
    lines += ["", "Workload:"] + [f"  {r.label + ':':<14} {r.value}" for r in e.workload]
    lines += ["", "Agent involvement:"]
    if e.agent:
        lines += [f"  - {s}" for s in e.agent_signals]
    else:
        lines += ["  none detected" if e.provenance_checked else f"  not checked: {e.provenance_note}"]
    if e.approvals:
        lines += ["", "Approvals considered:"]
        lines += [
            f"  {'+' if a.counted else '-'} {a.who} ({a.source}, {a.state}, {a.commit}"
            f"{', ' + a.after_commit + ' after the commit' if a.after_commit != '-' else ''}): {a.why}"
            for a in e.approvals
        ]
    lines += ["", "Checks:"] + [f"  [{_TEXT_MARK[c.state]}] {c.code}: {c.message}" for c in e.reasons]
    if e.remedy:
        lines += ["", f"To pass ({e.remedy_heading[0].lower()}{e.remedy_heading[1:]}): {e.remedy}"]
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
