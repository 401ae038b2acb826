"""Delegation chains of grants: how deep a chain is, how many delegations it may still take, and
which steps hold its grants (docs/grants.md#chains-of-agents)."""

from __future__ import annotations

from typing import Any

from app.policy.schema import DEFAULT_DELEGATION_DEPTH, MAX_DELEGATION_DEPTH


def delegation_depth(claims: dict[str, Any]) -> int:
    """How many delegations led to this grant: the length of its ``act`` chain."""
    depth, act = 0, claims.get("act")
    while isinstance(act, dict):
        depth, act = depth + 1, act.get("act")
    return depth


def delegations_left(claims: dict[str, Any]) -> int:
    """The signed ``delegations_left``; a grant signed before the claim existed gets the default depth."""
    left = claims.get("delegations_left")
    if isinstance(left, int) and not isinstance(left, bool):
        return min(left, MAX_DELEGATION_DEPTH - delegation_depth(claims))
    return DEFAULT_DELEGATION_DEPTH - delegation_depth(claims)


def steps_of(claims: dict[str, Any]) -> list[str]:
    """The step names of the chain that led to this grant, this grant's own included."""
    steps, node = [], claims
    while isinstance(node, dict):
        if isinstance(node.get("step"), str):
            steps.append(str(node["step"]))
        node = node.get("act")  # type: ignore[assignment]  # a nested act, or None at the root
    return steps
