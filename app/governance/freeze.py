"""The freeze: a kill-switch that stops every agent in a scope at once, until a person lifts it.

Started by a person the policy names (``freeze.freezers``) with a justification, for the whole
organisation, one repository, or one kind of agent (an AI agent's name in the agent catalog, e.g.
``Claude``). While it is active:

- no new execute decision, merge check or held deployment of an agent-driven workload in scope is
  allowed, and no grant is issued to one: the pipeline's ``frozen`` overlay (app/gate/overlays.py)
  denies it with a reason that names the freeze, its author and why (shown on decision pages, check
  runs and deployment comments);
- the grants already issued to agents in scope, and their GitHub tokens, are revoked, and held agent
  deployments in scope are decided again (and so rejected) — app/events/freeze.py does that at once.

Reading and proposing stay allowed (an agent may still open a pull request), and people are never
affected. It is lifted by a person the policy names, with a justification; both acts are audit
events (``freeze-started``, ``freeze-lifted``) and ``agent-gate freeze list`` shows them.

Who asks is the verified actor of a GitHub Actions OIDC token from a ``workflow_dispatch`` run (a
person pressed the button), as for break-glass; the token is spent by the request, so it cannot be
replayed. Never an agent or a bot, whatever the policy says.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.decide.decision import Decision, Reason, Subject
from app.errors import GateError
from app.github.protocol import GitHubAPI
from app.governance.people import is_named
from app.policy.agents import Kind
from app.policy.loader import LoadedPolicy, PolicySet
from app.store.base import Store
from app.tokens.identity import WorkloadIdentity

FROZEN_REASON = "frozen"
HUMAN_EVENT = "workflow_dispatch"
ACTIVE, LIFTED = "active", "lifted"

Scope = Literal["organisation", "repository", "agent"]


class FreezeRefused(GateError):
    """The freeze may not be started or lifted (403)."""

    status: ClassVar[int] = 403
    default_code: ClassVar[str] = "freeze-refused"


class Frozen(GateError):
    """What was asked is stopped by a freeze (403): no credentials for an agent in its scope."""

    status: ClassVar[int] = 403
    default_code: ClassVar[str] = FROZEN_REASON


_JUSTIFICATION = Field(min_length=20, max_length=2000, description="Why, for the people who review it.")


class FreezeRequest(BaseModel):
    """The body of ``POST /v1/freeze``."""

    # The schema says what _scope_fields checks: repository with scope repository, agent with scope agent.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"scope": {"const": scope}}},
                    "then": {"required": [scope], "properties": {scope: {"type": "string"}}},
                    "else": {"properties": {scope: {"type": "null"}}},
                }
                for scope in ("repository", "agent")
            ]
        },
    )

    scope: Scope = Field(
        description="organisation: every agent of the run's organisation; repository: every agent in "
        "the run's repository; agent: one kind of agent (by its catalog name) in the organisation."
    )
    organisation: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$",
        description="The organisation frozen, for the record: it must be the run's own.",
    )  # fmt: skip
    repository: str | None = Field(
        None, pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$",
        description="scope repository: the repository frozen (owner/name); it must be the run's own.",
    )  # fmt: skip
    agent: str | None = Field(
        None, min_length=1, max_length=100,
        description="scope agent: the agent's name in the agent catalog, e.g. Claude or Devin.",
    )  # fmt: skip
    justification: str = _JUSTIFICATION

    @model_validator(mode="after")
    def _scope_fields(self) -> FreezeRequest:
        if (self.scope == "repository") != (self.repository is not None):
            raise ValueError("repository: expected it with scope repository, and only then")
        if (self.scope == "agent") != (self.agent is not None):
            raise ValueError("agent: expected it with scope agent, and only then")
        return self


class LiftRequest(BaseModel):
    """The body of ``POST /v1/freeze/{id}/lift``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    justification: str = _JUSTIFICATION


def covers(record: dict[str, Any], subject: Subject) -> bool:
    """Whether the active freeze ``record`` stops the agent-driven workload ``subject``."""
    if not subject.agent or record.get("state") != ACTIVE or record["owner_id"] != subject.owner_id:
        return False
    if record["scope"] == "repository":
        return bool(record["repository_id"] == subject.repository_id)
    if record["scope"] == "agent":
        named = {s.agent.lower() for s in subject.agent_signals if s.agent}
        return str(record["agent"]).lower() in named
    return True


def describe(record: dict[str, Any]) -> str:
    """The scope of a freeze, for people: "organisation octo-org", "repository octo-org/x"..."""
    if record["scope"] == "repository":
        return f"repository {record['repository']}"
    if record["scope"] == "agent":
        return f"{record['agent']} agents of {record['organisation']}"
    return f"organisation {record['organisation']}"


@dataclass
class Freezes:
    store: Store
    policies: Callable[[], PolicySet]
    clock: Callable[[], float]
    github: GitHubAPI | None = None

    # -- starting and lifting ------------------------------------------------------------------------
    def start(self, who: WorkloadIdentity, body: FreezeRequest) -> dict[str, Any]:
        """Record a freeze asked by ``who``; raises FreezeRefused saying why not. The caller then stops
        what is already running (app/events/freeze.py)."""
        loaded = self._freezer_policy(who, "start")
        if body.organisation is not None and body.organisation.lower() != who.repository_owner.lower():
            raise FreezeRefused(
                f"organisation: got {body.organisation}, expected {who.repository_owner}: a freeze is "
                "asked from a run of the organisation it freezes"
            )
        if body.repository is not None and body.repository.lower() != who.repository.lower():
            raise FreezeRefused(
                f"repository: got {body.repository}, expected {who.repository}: a repository is frozen from "
                "a run of that repository (freeze the organisation to stop more)"
            )
        agent = None
        if body.agent is not None:
            names = {n.lower(): n for n in loaded.agents.agent_names()}
            agent = names.get(body.agent.lower())
            if agent is None:
                raise FreezeRefused(
                    f"agent: got {body.agent!r}, expected the name of an AI agent of the catalog: "
                    f"{', '.join(sorted(names.values()))}"
                )
        now = int(self.clock())
        record: dict[str, Any] = {
            "id": "fr_" + secrets.token_urlsafe(16),
            "scope": body.scope,
            "organisation": who.repository_owner,
            "owner_id": who.repository_owner_id,
            "repository": who.repository if body.scope == "repository" else None,
            "repository_id": who.repository_id if body.scope == "repository" else None,
            "agent": agent,
            "justification": body.justification,
            "invoker": who.actor,
            "invoker_id": who.actor_id,
            "run_id": who.run_id,
            "asked_from": who.repository,
            "state": ACTIVE,
            "created_at": now,
            "lifted_at": None,
            "lifter": None,
            "lift_justification": None,
        }
        self.store.append_audit("freeze-started", record)
        self.store.save_freeze(record)
        return record

    def lift(self, who: WorkloadIdentity, freeze_id: str, body: LiftRequest) -> dict[str, Any]:
        """A person the policy names lifts an active freeze of their organisation."""
        found = self.store.find_freezes(id=freeze_id)
        record = found[0] if found else None
        if record is None or record["owner_id"] != who.repository_owner_id:
            raise FreezeRefused(f"no freeze {freeze_id} of {who.repository_owner}", code="freeze-not-found")
        if record["scope"] == "repository" and record["repository_id"] != who.repository_id:
            raise FreezeRefused(
                f"freeze {freeze_id} is of repository {record['repository']}: it is lifted from a run of "
                f"that repository, not of {who.repository}"
            )
        self._freezer_policy(who, "lift")
        if record["state"] != ACTIVE:
            raise FreezeRefused(f"freeze {freeze_id} is {record['state']}, not active")
        record = {
            **record,
            "state": LIFTED,
            "lifted_at": int(self.clock()),
            "lifter": who.actor,
            "lifter_id": who.actor_id,
            "lift_justification": body.justification,
        }
        self.store.append_audit("freeze-lifted", record)
        self.store.save_freeze(record)
        return record

    def _freezer_policy(self, who: WorkloadIdentity, verb: str) -> LoadedPolicy:
        loaded = self.policies().for_owner(who.repository_owner_id)
        if loaded is None or loaded.policy.freeze is None:
            raise FreezeRefused(
                f"the policy of {who.repository_owner} names nobody who may freeze agents (no freeze: section)"
            )
        if who.event_name != HUMAN_EVENT:
            raise FreezeRefused(
                f"a freeze is asked from a workflow_dispatch run a person starts; got a {who.event_name} run"
            )
        known = loaded.agents.classify(who.actor, who.actor_id)
        if known.kind is not Kind.HUMAN:
            raise FreezeRefused(f"@{who.actor} is {known.name}: an agent or bot may never {verb} a freeze")
        if not is_named(loaded.policy.freeze.freezers, who, self.github):
            raise FreezeRefused(
                f"@{who.actor} may not {verb} a freeze: expected one of "
                f"{', '.join(loaded.policy.freeze.freezers)} (freeze.freezers)"
            )
        return loaded

    # -- applying -------------------------------------------------------------------------------------
    def active(self, owner_id: int | None = None) -> list[dict[str, Any]]:
        """The active freezes (of one owner, when given), oldest first."""
        return self.store.find_freezes(owner_id=owner_id, state=ACTIVE)

    def covering(self, subject: Subject) -> dict[str, Any] | None:
        """The oldest active freeze that stops ``subject`` (None for a person's workload)."""
        if not subject.agent:
            return None
        return next((r for r in self.active(subject.owner_id) if covers(r, subject)), None)

    def overlay(self, decision: Decision, *, stops: bool) -> Decision:
        """``decision``, denied with a ``frozen`` reason when an active freeze covers its agent-driven
        workload and ``stops`` (it executes, or would hand over credentials, or is a merge check or a
        held deployment). Reads only."""
        if not stops:
            return decision
        record = self.covering(decision.subject)
        if record is None:
            return decision
        since = datetime.fromtimestamp(record["created_at"], UTC).isoformat(timespec="minutes")
        note = Reason(
            code=FROZEN_REASON,
            ok=False,
            message=f"agents are frozen in {describe(record)} by freeze {record['id']} of @{record['invoker']} "
            f"since {since}: {record['justification']}",
        )
        remedy = (
            f"a person named in the policy's freeze.freezers lifts freeze {record['id']} "
            f"(POST /v1/freeze/{record['id']}/lift); until then agents in its scope may read and propose only"
        )
        return decision.model_copy(
            update={
                "allowed": False,
                "would_deny": False,
                "reasons": [*decision.reasons, note],
                "remedy": remedy,
            }
        )

    def review(self, since: int | None = None) -> list[dict[str, Any]]:
        """Every freeze since ``since`` (unix time), for the review afterwards."""
        return self.store.find_freezes(since=since)
