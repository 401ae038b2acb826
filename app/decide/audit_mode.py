"""Audit mode: a deny under a rule (or policy) in ``mode: audit`` is answered as an allow marked
``would_deny``, with the reasons it would have been denied for.

Pure, like the engine: it only rewrites a finished Decision. It is the first overlay of the decision
pipeline (app/gate/overlays.py), applied to every decision the engine makes.

Never in audit mode, whatever the policy says (the built-in invariants, and what they stand on):

- a deny without a governing policy, or for an action the catalog does not know;
- a deny by a check run before any rule (agents never approve; an execute action's environment comes
  from the token; execute is refused for pull-request events): those leave ``rule`` unset and fail
  with a code other than ``rule``;
- an approval action, and any execute action by an agent-driven workload (an agent never executes
  without an independent human approval of the exact commit);
- a deny where an approval was refused because its approver is tied to the change (codes ``self``,
  ``requester``, ``co-author``: nobody approves their own change).

A rule's own mode applies only when the rule names the workload's repository (its ``repository``
condition held): a rule in audit mode for one repository never lets another repository's workload
through. Otherwise the policy's mode applies.
"""

from __future__ import annotations

from app.decide.approvals import SELF_APPROVAL_CODES
from app.decide.decision import Decision, Reason
from app.policy.loader import PolicySet
from app.policy.schema import ActionSpec, Mode, PermissionClass, Policy

AUDIT_REASON = "audit-mode"

# Codes of the checks the engine runs before matching any rule (app/decide/engine.py, _invariants).
_INVARIANT_CODES = frozenset({"policy", "action", "agent-approval", "environment", "event"})


def governing_mode(decision: Decision, policy: Policy) -> tuple[Mode, str]:
    """The mode a denied decision falls under, and whose mode it is (for the reason's message)."""
    rule = next((r for r in policy.rules if r.name == decision.rule), None)
    repository_held = any(r.code == "repository" and r.ok for r in decision.reasons)
    if rule is not None and rule.mode is not None and repository_held:
        return rule.mode, f"rule {rule.name!r}"
    return policy.mode, f"the policy of {policy.owner.login}"


def is_invariant_denial(decision: Decision, spec: ActionSpec | None, agent: bool) -> bool:
    """True for a deny no mode and no override may turn into an allow (module docstring)."""
    if spec is None or spec.approval:
        return True
    if agent and spec.permission is PermissionClass.EXECUTE:
        return True
    failed = [r.code for r in decision.reasons if not r.ok]
    if decision.rule is None and (not failed or failed[0] in _INVARIANT_CODES):
        return True
    return any(not a.counted and a.code in SELF_APPROVAL_CODES for a in decision.approvals)


def apply_audit_mode(
    decision: Decision, policy: Policy | None, *, spec: ActionSpec | None, agent: bool
) -> Decision:
    """``decision`` as answered: unchanged unless it is a deny under audit mode (module docstring)."""
    if decision.allowed or policy is None or is_invariant_denial(decision, spec, agent):
        return decision
    mode, whose = governing_mode(decision, policy)
    if mode != "audit":
        return decision
    note = Reason(
        code=AUDIT_REASON,
        ok=True,
        message=f"{whose} is in audit mode: this would be denied, and is answered as an allow marked "
        "would_deny (no grant or GitHub token is issued)",
    )
    return decision.model_copy(
        update={"allowed": True, "would_deny": True, "reasons": [*decision.reasons, note]}
    )


def audit_mode(decision: Decision, policies: PolicySet) -> Decision:
    """:func:`apply_audit_mode` under the policy governing the decision's repository owner."""
    loaded = policies.for_owner(decision.subject.owner_id)
    if loaded is None:
        return decision
    spec = loaded.catalog.get(decision.action)
    return apply_audit_mode(decision, loaded.policy, spec=spec, agent=decision.subject.agent)
