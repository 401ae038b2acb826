"""Warnings about valid but dangerous policies (``agent-gate policy check`` prints them)."""

from __future__ import annotations

from app.errors import PolicyProblem
from app.policy.loader import LoadedPolicy
from app.policy.schema import PermissionClass, Rule

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
# Never given to an agent-driven workload, whatever a rule says.
AGENT_FORBIDDEN_PERMISSIONS = frozenset({"administration", "workflows", "secrets", "members"})


def _execute_actions(loaded: LoadedPolicy, rule: Rule) -> list[str]:
    return [a for a in rule.actions if loaded.catalog[a].permission is PermissionClass.EXECUTE]


def lint(loaded: LoadedPolicy) -> list[PolicyProblem]:
    """Every warning names the file, the rule's line and the field."""
    out: list[PolicyProblem] = []

    def warn(rule: Rule, i: int, field: str, message: str) -> None:
        out.append(
            PolicyProblem(loaded.path, loaded.line_of(rule.name), f"rules[{i}].{field}", message, "warning")
        )

    for i, rule in enumerate(loaded.policy.rules):
        execute = _execute_actions(loaded, rule)
        name = f"rule {rule.name!r}"
        forbidden = sorted(set(rule.github_permissions or {}) & AGENT_FORBIDDEN_PERMISSIONS)
        if forbidden and rule.allow_agents:
            warn(
                rule,
                i,
                "github_permissions",
                f"{name} asks for {', '.join(forbidden)}; an agent-driven workload never gets them (they are "
                "withheld from its token), set allow_agents: false if only people should use this rule",
            )
        if not execute:
            if rule.approvals is not None:
                warn(
                    rule,
                    i,
                    "approvals",
                    f"{name} allows no execute action, so its approvals are never checked",
                )
            continue
        acts = ", ".join(execute)
        if rule.runner_environments is None or "self-hosted" in rule.runner_environments:
            warn(
                rule,
                i,
                "runner_environments",
                f"{name} allows {acts} on self-hosted runners; add runner_environments: [github-hosted] unless "
                "your self-hosted runners are as trusted as the target",
            )
        if rule.events is None or any(e in PULL_REQUEST_EVENTS for e in rule.events):
            warn(
                rule,
                i,
                "events",
                f"{name} does not exclude pull_request/pull_request_target events for {acts}; the engine refuses "
                "execute from them anyway, list the events you mean (e.g. [push, workflow_dispatch])",
            )
        if rule.repositories == "*" or any(hasattr(r, "name_pattern") for r in rule.repositories):
            warn(
                rule,
                i,
                "repositories",
                f"{name} allows {acts} for repositories matched by a wildcard; pin {{id, name}} for execute",
            )
        if rule.refs is None:
            warn(rule, i, "refs", f"{name} allows {acts} from any ref; pin refs (e.g. [refs/heads/main])")
        if rule.allow_agents and rule.required_approvals() == 0:
            warn(
                rule,
                i,
                "approvals",
                f"{name} lets an agent-driven workload match {acts} with zero approvals; the engine refuses that "
                "anyway (agents always need at least one independent human approval), so say so with approvals",
            )
        if rule.workflows is None:
            warn(
                rule,
                i,
                "workflows",
                f"{name} allows {acts} from any workflow; pin workflows (job_workflow_ref, and sha) for execute",
            )
    return out
