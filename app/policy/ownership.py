"""What ``agent-gate policy check`` says about governance: rules nobody owns, rules in audit mode.

An owner is a GitHub user or team (``@octocat``, ``@octo-org/security``) who answers for a rule. A
rule is owned when it names ``owners``, when the policy names default ``owners``, or when every
repository it pins names its own. Ownerless rules are warned about, never refused: the security
team's first step is the inventory (docs/governance.md), and owners are named as it finds them.
"""

from __future__ import annotations

from app.errors import PolicyProblem
from app.policy.loader import LoadedPolicy
from app.policy.schema import Policy, Repository, Rule


def rule_owners(policy: Policy, rule: Rule) -> list[str]:
    """Who answers for ``rule``: its own owners, else every pinned repository's, else the policy's."""
    if rule.owners:
        return list(rule.owners)
    if rule.repositories != "*" and all(isinstance(e, Repository) and e.owners for e in rule.repositories):
        return sorted({o for e in rule.repositories if isinstance(e, Repository) for o in e.owners or []})
    return list(policy.owners or [])


def ownership_warnings(loaded: LoadedPolicy) -> list[PolicyProblem]:
    """A warning per rule that nobody owns, at the rule's line."""
    policy = loaded.policy
    return [
        PolicyProblem(
            loaded.path,
            loaded.line_at("rules", i),
            f"rules[{i}]",
            f"rule {rule.name!r} has no owner: write owners: ['@user' or '@org/team'] on the rule (or on "
            "each of its repositories, or once at the top of the policy), so someone answers for it",
            "warning",
        )
        for i, rule in enumerate(policy.rules)
        if not rule_owners(policy, rule)
    ]


def audit_mode_notes(loaded: LoadedPolicy) -> list[str]:
    """One line per rule in audit mode (its denies are answered as allows marked would_deny)."""
    policy = loaded.policy
    notes = []
    for i, rule in enumerate(policy.rules):
        if policy.mode_of(rule) != "audit":
            continue
        line = loaded.line_at("rules", i)
        where = f"{loaded.path}:{line}" if line is not None else loaded.path
        source = "its own mode" if rule.mode else "the policy's mode"
        notes.append(
            f"audit: {where}: rule {rule.name!r} is in audit mode ({source}): its denies are answered as "
            "allows marked would_deny; see `agent-gate audit report`, then write mode: enforce"
        )
    return notes
