"""The inventory of workload and agent identities the gate has seen, with owners and staleness.

A workload is what asks the gate: a repository (by id), the workflow file and ref it runs
(``job_workflow_ref``) and the environment. An agent is an AI agent account a decision found
involved (as actor, pull-request author, commit author...), with the humans who asked it where known.

Built from the decisions in the audit chain (:mod:`app.governance.history`) and the policies: each
row says who owns it (the owners of the rules that decided it, of its pinned repository or workflow),
and is flagged when no rule names it (``unnamed``: only ``'*'`` or a pattern reached it) or when it
was not seen for a while (``stale``). Identities a policy names that never asked anything are rows
of their own (``never-seen``): candidates for removal from the policy. Each active freeze is a row
too (``freeze``, flagged ``frozen``): what it stops, who started it and since when.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.governance.history import DecisionRecord, GrantLedger
from app.policy.loader import PolicySet
from app.policy.ownership import rule_owners
from app.policy.schema import Policy, Repository

Kind = Literal["workload", "agent", "never-seen", "freeze"]

# "actor @Copilot is GitHub Copilot coding agent" (app/decide/provenance.py's account signals).
_ACCOUNT_SIGNAL = re.compile(r"@(?P<login>[A-Za-z0-9][A-Za-z0-9_-]*(?:\[bot\])?) is (?P<name>.+)$")
_ACCOUNT_ROLES = frozenset({"actor", "triggering-actor", "pr-author", "commit-author", "commit-committer"})


@dataclass
class Identity:
    """One row of the inventory."""

    kind: Kind
    key: str
    repository: str = ""
    repository_id: int | None = None
    workflow: str = ""
    environment: str = ""
    login: str = ""
    account_id: int | None = None
    agent_name: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    asked: int = 0
    allowed: int = 0
    denied: int = 0
    would_deny: int = 0
    actions: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)
    requesters: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)
    grants_held: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        """Who this row is, for a reader: an account, a repository, or a workflow; never empty."""
        if self.kind == "freeze":
            agents = f"agents ({self.agent_name})" if self.agent_name else "agents"
            return f"{self.key}: {agents} of {self.repository}"
        if self.login:
            return f"@{self.login}" + (f" ({self.agent_name})" if self.agent_name else "")
        if self.repository:
            return self.repository
        if self.workflow:
            return self.workflow
        if self.account_id is not None:
            return f"account id {self.account_id}" + (f" ({self.agent_name})" if self.agent_name else "")
        if self.repository_id is not None:
            return f"repository id {self.repository_id}"
        return self.key

    @property
    def detail(self) -> str:
        """The second line under the label: where a workload runs, where an agent was seen, who froze."""
        if self.kind == "freeze":
            return "frozen by @" + ", @".join(sorted(self.requesters)) if self.requesters else ""
        if self.login or (self.account_id is not None and not self.repository):
            return ", ".join(sorted(self.repositories))
        if self.repository and self.workflow:
            return self.workflow + (f" · {self.environment}" if self.environment else "")
        return ""

    def see(self, record: DecisionRecord) -> None:
        body = record.body
        self.first_seen = self.first_seen or record.time
        self.last_seen = record.time
        self.asked += 1
        if body.get("would_deny") is True:
            self.would_deny += 1
        elif body.get("allowed") is True:
            self.allowed += 1
        else:
            self.denied += 1
        self.actions.add(str(body.get("action")))

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "repository": self.repository or None,
            "repository_id": self.repository_id,
            "workflow": self.workflow or None,
            "environment": self.environment or None,
            "login": self.login or None,
            "account_id": self.account_id,
            "agent": self.agent_name or None,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "asked": self.asked,
            "allowed": self.allowed,
            "denied": self.denied,
            "would_deny": self.would_deny,
            "actions": sorted(self.actions),
            "repositories": sorted(self.repositories),
            "requesters": sorted(self.requesters),
            "owners": sorted(self.owners),
            "grants_held": sorted(self.grants_held),
            "flags": sorted(self.flags),
        }


@dataclass(frozen=True)
class Filters:
    unowned: bool = False
    stale_days: int | None = None
    agents: bool = False
    repository: str | None = None

    def keep(self, row: Identity) -> bool:
        if self.unowned and row.owners:
            return False
        if self.stale_days is not None and "stale" not in row.flags:
            return False
        if self.agents and row.kind != "agent":
            return False
        wanted = (self.repository or "").lower()
        return not wanted or wanted in {r.lower() for r in (row.repository, *row.repositories) if r}


def build_inventory(
    decisions: list[DecisionRecord],
    ledger: GrantLedger,
    policies: PolicySet | None,
    *,
    now: datetime,
    stale_days: int = 90,
) -> list[Identity]:
    """Every identity seen (workloads, agents), then every one a policy names but that never asked."""
    workloads: dict[str, Identity] = {}
    agents: dict[str, Identity] = {}
    held = ledger.held(int(now.timestamp()))
    for record in decisions:
        subject = record.subject
        repository_id = subject.get("repository_id")
        workflow = str(subject.get("workflow") or "")
        environment = str(subject.get("environment") or "")
        key = f"{repository_id}:{workflow}:{environment}"
        row = workloads.get(key)
        if row is None:
            row = workloads[key] = Identity(
                "workload",
                key,
                repository=str(subject.get("repository") or ""),
                repository_id=repository_id if isinstance(repository_id, int) else None,
                workflow=workflow,
                environment=environment,
            )
        row.see(record)
        row.grants_held += held.get(str(record.body["decision_id"]), [])
        policy = _policy(policies, subject.get("owner_id"))
        if policy is not None:
            row.owners |= _owners_of(policy, record)
        for login, name, account_id in _agents_of(subject):
            agent = agents.setdefault(
                login.lower(), Identity("agent", login.lower(), login=login, agent_name=name)
            )
            agent.see(record)
            agent.account_id = agent.account_id or account_id
            agent.repositories.add(str(subject.get("repository") or ""))
            requester = subject.get("triggering_actor")
            if (
                isinstance(requester, str)
                and requester.lower() != login.lower()
                and not requester.endswith("]")
            ):
                agent.requesters.add(requester)
            if policy is not None:
                agent.owners |= _owners_of(policy, record)
    rows = [*workloads.values(), *agents.values()]
    for row in rows:
        if row.last_seen is not None and now - row.last_seen > timedelta(days=stale_days):
            row.flags.add("stale")
        if not row.owners:
            row.flags.add("unowned")
    for row in workloads.values():
        if not _named(policies, row):
            row.flags.add("unnamed")
    rows += _never_seen(policies, workloads.values(), agents)
    return rows


def freeze_rows(freezes: list[dict[str, Any]]) -> list[Identity]:
    """A row for each active freeze (app/governance/freeze.py): its scope, who started it and when."""
    return [
        Identity(
            "freeze",
            str(r["id"]),
            repository=str(r.get("repository") or r["organisation"]),
            repository_id=r.get("repository_id"),
            agent_name=str(r.get("agent") or ""),
            first_seen=datetime.fromtimestamp(int(r["created_at"]), UTC),
            actions={str(r["scope"])},
            requesters={str(r["invoker"])},
            flags={"frozen"},
        )
        for r in freezes
    ]


def _policy(policies: PolicySet | None, owner_id: Any) -> Policy | None:
    if policies is None or not isinstance(owner_id, int):
        return None
    loaded = policies.for_owner(owner_id)
    return loaded.policy if loaded else None


def _owners_of(policy: Policy, record: DecisionRecord) -> set[str]:
    """The owners of the rule that decided (or came closest), of the workload's pinned repository
    and of its workflow."""
    owners: set[str] = set()
    subject = record.subject
    for rule in policy.rules:
        if rule.name == record.body.get("rule"):
            owners.update(rule_owners(policy, rule))
        for entry in [] if rule.repositories == "*" else rule.repositories:
            if isinstance(entry, Repository) and entry.id == subject.get("repository_id"):
                owners.update(entry.owners or [])
        for workflow in rule.workflows or []:
            if workflow.ref == subject.get("workflow"):
                owners.update(workflow.owners or [])
    return owners


def _agents_of(subject: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(login, what it is, account id when it was the actor) of each agent account a decision found."""
    found: dict[str, tuple[str, str, int | None]] = {}
    for signal in subject.get("agent_signals") or []:
        if not isinstance(signal, dict) or signal.get("name") not in _ACCOUNT_ROLES:
            continue
        match = _ACCOUNT_SIGNAL.search(str(signal.get("detail") or ""))
        if match is None:
            continue
        login = match["login"]
        account_id = subject.get("actor_id") if login == subject.get("actor") else None
        found.setdefault(
            login.lower(), (login, match["name"], account_id if isinstance(account_id, int) else None)
        )
    return list(found.values())


def _named(policies: PolicySet | None, row: Identity) -> bool:
    """True when some rule pins the workload's repository by id, or names its workflow exactly."""
    if policies is None:
        return False
    for loaded in policies.by_owner.values():
        for rule in loaded.policy.rules:
            if rule.repositories != "*" and any(
                isinstance(e, Repository) and e.id == row.repository_id for e in rule.repositories
            ):
                return True
            if any(w.ref == row.workflow for w in rule.workflows or []):
                return True
    return False


def _never_seen(policies: PolicySet | None, workloads: Any, agents: dict[str, Identity]) -> list[Identity]:
    if policies is None:
        return []
    seen_repositories = {w.repository_id for w in workloads}
    seen_workflows = {w.workflow for w in workloads}
    out: dict[str, Identity] = {}
    for loaded in policies.by_owner.values():
        policy = loaded.policy
        for rule in policy.rules:
            for entry in [] if rule.repositories == "*" else rule.repositories:
                if isinstance(entry, Repository) and entry.id not in seen_repositories:
                    row = out.setdefault(
                        f"repository:{entry.id}",
                        Identity(
                            "never-seen",
                            f"repository:{entry.id}",
                            repository=entry.name,
                            repository_id=entry.id,
                        ),
                    )
                    row.owners |= set(entry.owners or rule_owners(policy, rule))
            for workflow in rule.workflows or []:
                if isinstance(workflow.ref, str) and workflow.ref not in seen_workflows:
                    row = out.setdefault(
                        f"workflow:{workflow.ref}",
                        Identity("never-seen", f"workflow:{workflow.ref}", workflow=workflow.ref),
                    )
                    row.owners |= set(workflow.owners or rule_owners(policy, rule))
        for account in policy.agents.ai:
            login = (account.login or "").lower()
            if login and login not in agents:
                row = out.setdefault(
                    f"agent:{login}",
                    Identity(
                        "never-seen",
                        f"agent:{login}",
                        login=account.login or "",
                        account_id=account.id,
                        agent_name=account.name,
                    ),
                )
                row.owners |= set(policy.owners or [])
    for row in out.values():
        row.flags.add("never-seen")
        if not row.owners:
            row.flags.add("unowned")
    return list(out.values())


COLUMNS = ("kind", "key", "owners", "first_seen", "last_seen", "asked", "allowed", "denied", "would_deny",
           "grants_held", "flags")  # fmt: skip


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else "-"
    return "-" if value is None or value == "" else str(value)


def render_csv(rows: list[Identity]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = list(rows[0].as_json()) if rows else list(Identity("workload", "").as_json())
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_cell(v) for v in row.as_json().values()])
    return out.getvalue()


def render_table(rows: list[Identity]) -> str:
    table = [list(COLUMNS)]
    for row in rows:
        data = row.as_json()
        data["grants_held"] = len(row.grants_held)
        data["first_seen"] = (data["first_seen"] or "")[:16]
        data["last_seen"] = (data["last_seen"] or "")[:16]
        table.append([_cell(data[c]) for c in COLUMNS])
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines) + f"\n{len(rows)} identit{'y' if len(rows) == 1 else 'ies'}\n"
