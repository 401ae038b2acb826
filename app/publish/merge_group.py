"""The merge group's check: ``agent-gate / merge`` on the commit GitHub's merge queue built.

One check run for the group, from the decisions of its pull requests (each judged for the group by
the pipeline) and what stopped the gate from judging some of it (``problems``: a pull request that
is not open, a branch that is no merge queue's...). It succeeds only when there is no problem and
every decision succeeds as its own check would; while the gate is still judging (or retrying after
GitHub failed) it is in progress, never a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.decide.agent_free import AGENT_FREE_REASON
from app.decide.decision import Decision
from app.decide.merge_group import GROUP_REASON
from app.publish.checks import check_name, conclusion, truncate

MERGE_ACTION = "merge"
_SHOWN = frozenset({GROUP_REASON, AGENT_FREE_REASON})  # reasons shown when they hold, as well as failed ones


def in_progress_body(head_sha: str) -> dict[str, Any]:
    """The check while the group is being judged (and while a failed attempt waits to be retried)."""
    return {
        "name": check_name(MERGE_ACTION),
        "head_sha": head_sha,
        "status": "in_progress",
        "output": {
            "title": "Judging the merge group",
            "summary": "agent-gate is judging the pull requests of this merge group and comparing the group's "
            "commit with their approved changes. If GitHub cannot be read, it tries again; this check never "
            "passes before it has judged the group.",
        },
    }


def group_conclusion(decisions: Sequence[Decision], problems: Sequence[str]) -> str:
    """``success`` only when every pull request's decision is a success and nothing else was found;
    ``neutral`` when some are only allowed in audit mode or by break-glass; else ``failure`` (in a
    queue nobody can act on the check, so a missing approval is a failure too)."""
    if problems or not decisions:
        return "failure"
    each = {conclusion(d) for d in decisions}
    if each <= {"success"}:
        return "success"
    if each <= {"success", "neutral"}:
        return "neutral"
    return "failure"


def group_check_body(
    head_sha: str, decisions: Sequence[Decision], problems: Sequence[str], *, now: datetime
) -> dict[str, Any]:
    """The body of the group's completed check run on ``head_sha``."""
    verdict = group_conclusion(decisions, problems)
    numbers = ", ".join(f"#{d.subject.pull_request}" for d in decisions) or "no pull request"
    titles = {
        "success": f"Merge group of {numbers}: approved, and exactly their approved changes",
        "neutral": f"Merge group of {numbers}: not blocking (audit mode or break-glass)",
        "failure": f"Merge group of {numbers}: not exactly approved changes",
    }
    lines = [
        f"## {'✅' if verdict == 'success' else '✖' if verdict == 'failure' else '⚠'} {titles[verdict]}",
        "",
    ]
    lines += [f"- ✖ {problem}" for problem in problems]
    for d in decisions:
        link = f" ([decision]({d.details_url}))" if d.details_url else ""
        mark = "✅" if conclusion(d) == "success" else "✖" if conclusion(d) != "neutral" else "⚠"
        lines.append(f"- {mark} #{d.subject.pull_request} at {d.subject.sha[:7]}: {d.summary}{link}")
        lines += [
            f"  - {'✅' if r.ok else '✖'} {r.message}" for r in d.reasons if not r.ok or r.code in _SHOWN
        ]
    failing = [d for d in decisions if conclusion(d) != "success"]
    body: dict[str, Any] = {
        "name": check_name(MERGE_ACTION),
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": verdict,
        "completed_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "output": {"title": truncate(titles[verdict], 1000), "summary": truncate("\n".join(lines) + "\n")},
    }
    shown = (failing or list(decisions))[:1]
    if shown and shown[0].details_url:
        body["details_url"] = shown[0].details_url
        body["external_id"] = shown[0].decision_id
    return body
