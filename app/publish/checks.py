"""Check runs from decisions: every decision about a commit becomes ``agent-gate / <action>`` on it.

The body comes from the same explanation model as the decision page and ``agent-gate explain``.
GitHub's limits are respected: title, summary and text each at most 65,535 characters, truncated
with a note. Writing a check run never changes a decision: a failure is logged and audited by the
gate's hook runner.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from app.decide.agent_free import SIGNALS_LOOKED_FOR, is_agent_free_pass
from app.decide.decision import Decision
from app.decide.explain import explanation, to_markdown
from app.publish.deployments import FIXABLE_CODES

log = logging.getLogger("agent_gate.checks")

MAX_OUTPUT_CHARS = 65_535
CHECK_PREFIX = "agent-gate / "
_TRUNCATED = (
    "\n\n…(truncated to fit GitHub's 65,535-character limit; the full explanation is on the decision page)"
)


class ChecksAPI(Protocol):
    """The part of GitHub's checks API the publisher needs (implemented by the GitHub client)."""

    def find_check_run(self, repository: str, sha: str, name: str) -> int | None:
        """The id of the latest check run with this name on this commit, if any."""
        ...

    def create_check_run(self, repository: str, body: dict[str, Any]) -> int: ...

    def update_check_run(self, repository: str, check_run_id: int, body: dict[str, Any]) -> None: ...


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Fit ``text`` into ``limit`` characters, ending with a note when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def check_name(action: str) -> str:
    return f"{CHECK_PREFIX}{action}"


def conclusion(decision: Decision) -> str:
    if decision.would_deny or decision.break_glass:  # audit mode, override: not blocking, not a pass
        return "neutral"
    if decision.allowed:
        return "success"
    # Missing human approvals (of the change, or those its paths call for) are something reviewers
    # can act on; anything else is a failure.
    failed = {r.code for r in decision.reasons if not r.ok}
    fixable = bool(failed) and failed <= FIXABLE_CODES
    return "action_required" if fixable and decision.details_url else "failure"


def debug_text(decision: Decision) -> str:
    """``output.text``: the non-secret facts of the workload, for debugging."""
    subject = decision.subject.model_dump(mode="json")
    return (
        "Non-secret claims and facts of the workload, for debugging only:\n\n```json\n"
        + json.dumps(
            {
                "decision_id": decision.decision_id,
                "subject": subject,
                "policy_digest": decision.policy_digest,
                "evidence_source": decision.evidence_source,
                "github_api_calls": decision.github_api_calls,
            },
            indent=2,
        )
        + "\n```\n"
    )


AGENT_FREE_SUMMARY = (
    f"## ✅ No agent involvement found\n\nagent-gate looked for: {SIGNALS_LOOKED_FOR}.\n\n"
    "None fired, so this check passes; the repository's own review rules still apply.\n"
)


def check_run_body(decision: Decision) -> dict[str, Any]:
    """The body of ``POST /repos/{owner}/{repo}/check-runs`` (and, without ``head_sha``, of the update)."""
    e = explanation(decision)
    summary = AGENT_FREE_SUMMARY if is_agent_free_pass(decision) else to_markdown(e)
    body: dict[str, Any] = {
        "name": check_name(decision.action),
        "head_sha": decision.subject.sha,
        "status": "completed",
        "conclusion": conclusion(decision),
        "completed_at": decision.decided_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "external_id": decision.decision_id,
        "output": {
            "title": truncate(e.title, 1000),
            "summary": truncate(summary),
            "text": truncate(debug_text(decision)),
        },
    }
    if decision.details_url:
        # GitHub requires details_url with action_required (conclusion() only chooses it when set).
        body["details_url"] = decision.details_url
    return body


def update_body(create_body: dict[str, Any]) -> dict[str, Any]:
    """The update payload: everything but ``head_sha`` (fixed at creation)."""
    return {k: v for k, v in create_body.items() if k != "head_sha"}


class CheckRunPublisher:
    """Creates or updates ``agent-gate / <action>`` on the decision's commit."""

    def __init__(self, api: ChecksAPI) -> None:
        self._api = api

    def wants(self, decision: Decision) -> bool:
        """Decisions about a commit: execute and approval actions, and any naming a pull request or a sha."""
        s = decision.subject
        return decision.permission == "execute" or s.pull_request is not None or s.commit_named

    def publish(self, decision: Decision) -> int:
        return self.write(decision.subject.repository, check_run_body(decision))

    def write(self, repository: str, body: dict[str, Any]) -> int:
        """Create ``body`` (a create body, with ``head_sha``) on its commit, or update the gate's
        check run of that name there."""
        existing = self._api.find_check_run(repository, body["head_sha"], body["name"])
        if existing is None:
            return self._api.create_check_run(repository, body)
        self._api.update_check_run(repository, existing, update_body(body))
        return existing

    def __call__(self, decision: Decision) -> None:
        """The post-decision hook: publish when the decision is about a commit."""
        if self.wants(decision):
            self.publish(decision)
