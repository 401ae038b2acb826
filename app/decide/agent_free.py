"""The merge check's pass for a pull request no agent touched: not the gate's to block.

Pure. A pull request check whose change shows no agent signal passes, saying which signals were
looked for; the repository's own review rules still apply. It is an overlay of the decision
pipeline (app/gate/overlays.py), applied only to pull request checks (and so never to a token's
request, a held deployment or a simulation of anything else).
"""

from __future__ import annotations

from app.decide.decision import Decision, Reason

AGENT_FREE_REASON = "no-agent"
SIGNALS_LOOKED_FOR = (
    "actor or triggering actor is an AI agent; PR author is an agent; a commit authored or committed by an "
    "agent; an agent co-author trailer or footer; an agent branch prefix; an agent label"
)


def pass_agent_free(decision: Decision) -> Decision:
    """``decision`` unchanged when an agent was involved; otherwise allowed with the one reason that
    no agent signal fired (the engine's reasons are about a policy that does not apply to it)."""
    if decision.subject.agent:
        return decision
    looked = Reason(
        code=AGENT_FREE_REASON, ok=True, message=f"no agent signal fired; looked for: {SIGNALS_LOOKED_FOR}"
    )
    return decision.model_copy(
        update={"allowed": True, "remedy": None, "remedy_for": None, "reasons": [looked]}
    )


def is_agent_free_pass(decision: Decision) -> bool:
    """Whether the decision passed only because no agent was involved."""
    return any(r.code == AGENT_FREE_REASON for r in decision.reasons)
