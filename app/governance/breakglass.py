"""Break-glass: an emergency override that is loud, narrow and reviewed.

Asked for by a named human with a justification, for one repository and one action (and one
environment of it when the request names one: an override for production never covers staging or
the reverse; without one it covers every environment of the action), for minutes
(at most the policy's ``break_glass.max_minutes``); when the policy says ``confirm: true`` a second
person among the invokers confirms it before it counts. While live, a denied decision for that
repository and action is allowed, marked with the override's id and a ``break-glass`` reason that
names who invoked and confirmed it and why. Every step is an audit event of its own
(``break-glass-requested``, ``break-glass-confirmed``, ``break-glass-used``) and ``agent-gate
break-glass list`` shows them for review.

Who asks is the verified actor of a GitHub Actions OIDC token from a ``workflow_dispatch`` run (a
person pressed the button). Never by or for an agent: an AI agent or bot account may not invoke or
confirm one, and a decision about an agent-driven workload is never overridden. The invariants
(app/decide/audit_mode.py lists them) are never overridden either, and no grant or GitHub token is
issued with an overridden decision.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.decide.audit_mode import is_invariant_denial
from app.decide.decision import Decision, Reason
from app.errors import GateError
from app.github.protocol import GitHubAPI
from app.governance.people import is_named
from app.policy.agents import Kind
from app.policy.loader import LoadedPolicy, PolicySet
from app.store.base import Store
from app.store.clock import shared_time
from app.tokens.identity import WorkloadIdentity

BREAK_GLASS_REASON = "break-glass"
HUMAN_EVENT = "workflow_dispatch"


class BreakGlassRefused(GateError):
    """The break-glass may not be invoked or confirmed (403)."""

    status: ClassVar[int] = 403
    default_code: ClassVar[str] = "break-glass-refused"


class BreakGlassRequest(BaseModel):
    """The body of ``POST /v1/break-glass``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$", description="The one action it overrides.")
    environment: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="The one environment it overrides (the decision's environment must be this one); "
        "omitted: every environment of the action.",
    )
    minutes: int = Field(ge=1, le=240, description="How long it lasts (at most the policy's max_minutes).")
    justification: str = Field(
        min_length=20, max_length=2000, description="Why, for the people who review it afterwards."
    )


@dataclass
class BreakGlass:
    store: Store
    policies: Callable[[], PolicySet]
    clock: Callable[[], float]
    github: GitHubAPI | None = None

    # -- invoking and confirming ---------------------------------------------------------------------
    def request(self, who: WorkloadIdentity, body: BreakGlassRequest) -> dict[str, Any]:
        """Record a break-glass for ``who``'s repository; raises BreakGlassRefused saying why not."""
        loaded = self._invoker_policy(who, "invoke")
        assert loaded.policy.break_glass is not None
        spec = loaded.catalog.get(body.action)
        if spec is None or spec.approval:
            raise BreakGlassRefused(
                f"action {body.action!r}: expected an action of the catalog that is not an approval action "
                "(approvals are never given by override)"
            )
        limit = loaded.policy.break_glass.max_minutes
        if body.minutes > limit:
            raise BreakGlassRefused(
                f"minutes: got {body.minutes}, expected at most {limit} (break_glass.max_minutes)"
            )
        now = int(shared_time(self.store, self.clock))
        record: dict[str, Any] = {
            "id": "bg_" + secrets.token_urlsafe(16),
            "repository": who.repository,
            "repository_id": who.repository_id,
            "owner_id": who.repository_owner_id,
            "action": body.action,
            "environment": body.environment,
            "justification": body.justification,
            "invoker": who.actor,
            "invoker_id": who.actor_id,
            "run_id": who.run_id,
            "confirmer": None,
            "state": "pending" if loaded.policy.break_glass.confirm else "active",
            "created_at": now,
            "expires_at": now + body.minutes * 60,
            "uses": [],
        }
        self.store.append_audit("break-glass-requested", _public(record))
        self.store.save_break_glass(record)
        return record

    def confirm(self, who: WorkloadIdentity, break_glass_id: str) -> dict[str, Any]:
        """A second person confirms a pending break-glass of the same repository."""
        found = self.store.find_break_glass(id=break_glass_id)
        record = found[0] if found else None
        if record is None or record["repository_id"] != who.repository_id:
            raise BreakGlassRefused(
                f"no break-glass {break_glass_id} for {who.repository}", code="break-glass-not-found"
            )
        self._invoker_policy(who, "confirm")
        if record["state"] != "pending":
            raise BreakGlassRefused(
                f"break-glass {break_glass_id} is {record['state']}, not awaiting confirmation"
            )
        if record["expires_at"] <= shared_time(self.store, self.clock):
            raise BreakGlassRefused(f"break-glass {break_glass_id} has expired")
        if who.actor_id == record["invoker_id"]:
            raise BreakGlassRefused(
                "the confirmation must come from a second person, not the one who invoked it"
            )
        record = {**record, "state": "active", "confirmer": who.actor, "confirmer_id": who.actor_id}
        self.store.append_audit("break-glass-confirmed", _public(record))
        self.store.save_break_glass(record)
        return record

    def _invoker_policy(self, who: WorkloadIdentity, verb: str) -> LoadedPolicy:
        loaded = self.policies().for_owner(who.repository_owner_id)
        if loaded is None or loaded.policy.break_glass is None:
            raise BreakGlassRefused(
                f"the policy of {who.repository_owner} allows no break-glass (no break_glass: section)"
            )
        if who.event_name != HUMAN_EVENT:
            raise BreakGlassRefused(
                f"a break-glass is asked from a workflow_dispatch run a person starts; got a {who.event_name} run"
            )
        known = loaded.agents.classify(who.actor, who.actor_id)
        if known.kind is not Kind.HUMAN:
            raise BreakGlassRefused(
                f"@{who.actor} is {known.name}: an agent or bot may never {verb} a break-glass"
            )
        if not is_named(loaded.policy.break_glass.invokers, who, self.github):
            raise BreakGlassRefused(
                f"@{who.actor} may not {verb} a break-glass: expected one of "
                f"{', '.join(loaded.policy.break_glass.invokers)} (break_glass.invokers)"
            )
        return loaded

    # -- applying -------------------------------------------------------------------------------------
    def override(self, decision: Decision) -> Decision:
        """``decision``, allowed under a live break-glass of its repository and action when one exists
        and nothing forbids it (module docstring). Reads only: the pipeline records the use
        (:meth:`record_use`) once the decision itself is recorded."""
        subject = decision.subject
        if decision.allowed or subject.agent:
            return decision
        loaded = self.policies().for_owner(subject.owner_id)
        if loaded is None or loaded.agents.classify(subject.actor, subject.actor_id).kind is not Kind.HUMAN:
            return decision
        if is_invariant_denial(decision, loaded.catalog.get(decision.action), agent=False):
            return decision
        now = int(shared_time(self.store, self.clock))
        live = [
            record
            for record in self.store.find_break_glass(
                repository_id=subject.repository_id, action=decision.action, state="active", live_at=now
            )
            # Scoped to an environment, it covers that one only (a decision without one is not covered).
            if record.get("environment") is None or record["environment"] == subject.environment
        ]
        if not live:
            return decision
        record = live[-1]
        confirmed = f", confirmed by @{record['confirmer']}" if record.get("confirmer") else ""
        scope = f" for environment {record['environment']}" if record.get("environment") else ""
        until = datetime.fromtimestamp(record["expires_at"], UTC).isoformat(timespec="minutes")
        note = Reason(
            code=BREAK_GLASS_REASON,
            ok=True,
            message=f"allowed by break-glass {record['id']}{scope} of @{record['invoker']}{confirmed}, until {until}: "
            f"{record['justification']} (no grant or GitHub token is issued with it)",
        )
        return decision.model_copy(
            update={"allowed": True, "break_glass": record["id"], "reasons": [*decision.reasons, note]}
        )

    def record_use(self, decision: Decision) -> None:
        """Record that the (recorded) ``decision`` was allowed by its break-glass: an audit event of its
        own, and the decision among the override's uses."""
        if decision.break_glass is None:
            return
        self.store.append_audit(
            "break-glass-used",
            {"id": decision.break_glass, "decision_id": decision.decision_id, "action": decision.action,
             "repository_id": decision.subject.repository_id, "actor": decision.subject.actor},
        )  # fmt: skip
        found = self.store.find_break_glass(id=decision.break_glass)
        if found:
            record = found[0]
            self.store.save_break_glass({**record, "uses": [*record.get("uses", []), decision.decision_id]})

    def review(self, since: int | None = None) -> list[dict[str, Any]]:
        """Every break-glass since ``since`` (unix time), for the review afterwards."""
        return self.store.find_break_glass(since=since)


# The states a stored override may be in that end by themselves when its window passes.
_LIVE_STATES = frozenset({"pending", "active"})


def listed_state(record: dict[str, Any], now: float) -> str:
    """The state a review shows: ``expired`` once the window of a pending or active override has
    passed (the stored row keeps the state it had; only the time has moved on)."""
    state = str(record["state"])
    return "expired" if state in _LIVE_STATES and int(record["expires_at"]) <= now else state


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "uses"}
