"""Every way a decision can change after the engine, in the order applied.

The engine (app/decide/engine.py) decides from the policy and the facts; then each overlay below
may rewrite the decision, adding a reason of its own that says so. Nothing else changes a decision:
the pipeline (app/gate/pipeline.py) applies this list, and only it.

1. **audit mode** (app/decide/audit_mode.py): a deny under a rule or policy in ``mode: audit`` is
   answered as an allow marked ``would_deny`` (reason ``audit-mode``). Never for the invariants.
2. **agent-free pass** (app/decide/agent_free.py): a pull request's merge check passes when no agent
   signal fired, saying what was looked for (reason ``no-agent``). Only for pull request checks and
   the pull requests of a merge group (a group with no agent in it passes as its pull requests do).
3. **merge group** (app/decide/merge_group.py): a pull request judged for its merge group is denied
   when the group's commit is not exactly the approved changes, one reason per finding (reason
   ``merge-group``). Only for merge groups; after the agent-free pass, which it never undoes except
   for what is not the pull requests' own changes (a file or lines no pull request of the group
   brings could be an agent's); audit mode does not soften it.
4. **break-glass** (app/governance/breakglass.py): a person's denied decision is allowed under a live
   break-glass of its repository and action (reason ``break-glass``). Never for an agent, never past
   the invariants; not in a simulation (it reads the store).
4. **freeze** (app/governance/freeze.py): an agent-driven decision in the scope of an active freeze is
   denied when it executes, asks for (or its rule issues) a grant, or is a merge check or a held
   deployment (reason ``frozen``, naming the freeze). Last, so nothing after it allows again; not in a
   simulation (it reads the store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.decide.agent_free import pass_agent_free
from app.decide.audit_mode import audit_mode
from app.decide.decision import Decision
from app.decide.merge_group import apply_group
from app.gate.question import Question
from app.governance.breakglass import BreakGlass
from app.governance.freeze import Freezes
from app.policy.loader import PolicySet
from app.tokens.identity import Origin


@dataclass(frozen=True)
class Context:
    """What an overlay may read: the question, the policies it was decided under, the break-glass
    overrides and the freezes (None in a simulation)."""

    question: Question
    policies: PolicySet
    break_glass: BreakGlass | None
    freezes: Freezes | None = None


@dataclass(frozen=True)
class Overlay:
    name: str
    apply: Callable[[Decision, Context], Decision]


def _audit_mode(decision: Decision, ctx: Context) -> Decision:
    return audit_mode(decision, ctx.policies)


def _merge_group(decision: Decision, ctx: Context) -> Decision:
    group = ctx.question.merge_group
    if group is None or ctx.question.identity.origin is not Origin.MERGE_GROUP:
        return decision
    return apply_group(decision, group.findings, group.group_sha)


def _agent_free_pass(decision: Decision, ctx: Context) -> Decision:
    if ctx.question.identity.origin not in (Origin.PULL_REQUEST_CHECK, Origin.MERGE_GROUP):
        return decision
    return pass_agent_free(decision)


def _break_glass(decision: Decision, ctx: Context) -> Decision:
    return ctx.break_glass.override(decision) if ctx.break_glass is not None else decision


_STOPPED_ORIGINS = frozenset({Origin.PULL_REQUEST_CHECK, Origin.HELD_DEPLOYMENT})


def _wants_grant(decision: Decision, ctx: Context) -> bool:
    """The question asks for a grant, or the decision's rule issues one anyway."""
    if ctx.question.grant:
        return True
    loaded = ctx.policies.for_owner(decision.subject.owner_id)
    rule = next((r for r in loaded.policy.rules if r.name == decision.rule), None) if loaded else None
    return bool(rule is not None and rule.grant is not None and rule.grant.required)


def _frozen(decision: Decision, ctx: Context) -> Decision:
    if ctx.freezes is None or not decision.subject.agent:
        return decision
    stops = (
        decision.permission == "execute"
        or ctx.question.identity.origin in _STOPPED_ORIGINS
        or _wants_grant(decision, ctx)
    )
    return ctx.freezes.overlay(decision, stops=stops)


OVERLAYS: tuple[Overlay, ...] = (
    Overlay("audit-mode", _audit_mode),
    Overlay("agent-free-pass", _agent_free_pass),
    Overlay("merge-group", _merge_group),
    Overlay("break-glass", _break_glass),
    Overlay("frozen", _frozen),
)


def overlay(decision: Decision, ctx: Context) -> Decision:
    """``decision`` after every overlay, in order."""
    for each in OVERLAYS:
        decision = each.apply(decision, ctx)
    return decision
