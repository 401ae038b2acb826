"""Who is an AI agent, who is an ordinary bot, and who is a person.

The catalog is data: the built-in list in ``app/data/agents.yml`` plus each policy's ``agents:``
section. Matching is exact: numeric ids first, then full logins of GitHub Apps (``...[bot]``),
then full e-mail addresses. Nothing is matched by substring or by a bare word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

import yaml

# GitHub's noreply addresses: "ID+login@users.noreply.github.com", and the legacy form without the id
# ("login@users.noreply.github.com", for accounts older than July 2017).
_NOREPLY = re.compile(
    r"^(?:(?P<id>[0-9]+)\+)?(?P<login>[A-Za-z0-9-]+(?:\[bot\])?)@users\.noreply\.github\.com$", re.IGNORECASE
)


class Kind(StrEnum):
    AI_AGENT = "ai-agent"
    BOT = "bot"
    HUMAN = "human"


@dataclass(frozen=True)
class Known:
    """A catalog entry: an account or address and the name of what it is."""

    kind: Kind
    name: str


@dataclass(frozen=True)
class AgentCatalog:
    """Immutable lookup tables; build one with :func:`builtin_catalog` and :meth:`extended`."""

    by_id: dict[int, Known] = field(default_factory=dict)
    # Keys lower-cased (logins are case-insensitive); the value carries the entry's id when known, so a
    # login whose id is known never matches an account with another id (names can be re-registered).
    by_login: dict[str, tuple[Known, int | None]] = field(default_factory=dict)
    by_email: dict[str, Known] = field(default_factory=dict)  # keys lower-cased
    footers: tuple[tuple[re.Pattern[str], str], ...] = ()
    branch_prefixes: tuple[tuple[str, str], ...] = ()
    labels: frozenset[str] = frozenset()

    def classify(
        self, login: str | None, user_id: int | None = None, account_type: str | None = None
    ) -> Known:
        """Classify a GitHub account. An id match wins over a login match.

        An account GitHub itself calls a ``Bot`` that is not a known AI agent is a bot.
        """
        if user_id is not None and user_id in self.by_id:
            return self.by_id[user_id]
        if login is not None:
            entry = self.by_login.get(login.lower())
            if entry is not None and (entry[1] is None or user_id is None or entry[1] == user_id):
                return entry[0]
        if account_type is not None and account_type != "User":
            return Known(Kind.BOT, f"{account_type} account")
        if login is not None and login.lower().endswith("[bot]"):
            return Known(Kind.BOT, "GitHub App")
        return Known(Kind.HUMAN, "person")

    def classify_email(self, email: str | None) -> Known | None:
        """Classify a commit e-mail address; ``None`` when it identifies nobody in particular."""
        if not email:
            return None
        email = email.strip().lower()
        if email in self.by_email:
            return self.by_email[email]
        m = _NOREPLY.match(email)
        if m:
            known = self.classify(m.group("login"), int(m.group("id")) if m.group("id") else None)
            if known.kind is not Kind.HUMAN:
                return known
        return None

    def noreply_login(self, email: str | None) -> tuple[int | None, str] | None:
        """The (id, login) a GitHub noreply address names, if it is one (id None: the legacy form)."""
        if not email:
            return None
        m = _NOREPLY.match(email.strip())
        if not m:
            return None
        return (int(m.group("id")) if m.group("id") else None, m.group("login"))

    def agent_names(self) -> frozenset[str]:
        """The name of every AI agent the catalog knows (what a freeze of an agent kind names)."""
        names = {k.name for k in self.by_id.values() if k.kind is Kind.AI_AGENT}
        names |= {k.name for k, _ in self.by_login.values() if k.kind is Kind.AI_AGENT}
        names |= {k.name for k in self.by_email.values() if k.kind is Kind.AI_AGENT}
        names |= {name for _, name in (*self.footers, *self.branch_prefixes)}
        return frozenset(names)

    def footer_match(self, message: str) -> str | None:
        for line in message.splitlines():
            for pattern, name in self.footers:
                if pattern.fullmatch(line.strip()):
                    return name
        return None

    def branch_match(self, branch: str | None) -> str | None:
        if not branch:
            return None
        for prefix, name in self.branch_prefixes:
            if branch.startswith(prefix):
                return name
        return None

    def extended(
        self,
        *,
        ai_agents: Sequence[tuple[str | None, int | None, str]] = (),
        bots: Sequence[tuple[str | None, int | None, str]] = (),
        emails: Sequence[tuple[str, str]] = (),
        branch_prefixes: Sequence[tuple[str, str]] = (),
        labels: Sequence[str] = (),
    ) -> AgentCatalog:
        """A new catalog with policy entries added (policy entries win on conflicts)."""
        by_id = dict(self.by_id)
        by_login = dict(self.by_login)
        by_email = dict(self.by_email)
        for kind, entries in ((Kind.AI_AGENT, ai_agents), (Kind.BOT, bots)):
            for login, user_id, name in entries:
                known = Known(kind, name)
                if user_id is not None:
                    by_id[user_id] = known
                if login is not None:
                    by_login[login.lower()] = (known, user_id)
        for email, name in emails:
            by_email[email.lower()] = Known(Kind.AI_AGENT, name)
        return AgentCatalog(
            by_id=by_id,
            by_login=by_login,
            by_email=by_email,
            footers=self.footers,
            branch_prefixes=self.branch_prefixes + tuple(branch_prefixes),
            labels=self.labels | frozenset(labels),
        )


def _load_builtin() -> AgentCatalog:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("app").joinpath("data/agents.yml").read_text("utf-8")
    )
    by_id: dict[int, Known] = {}
    by_login: dict[str, tuple[Known, int | None]] = {}
    for section, kind in (("ai_agents", Kind.AI_AGENT), ("bots", Kind.BOT)):
        for entry in raw[section]:
            known = Known(kind, entry["name"])
            entry_id = int(entry["id"]) if "id" in entry else None
            if entry_id is not None:
                by_id[entry_id] = known
            by_login[entry["login"].lower()] = (known, entry_id)
    return AgentCatalog(
        by_id=by_id,
        by_login=by_login,
        by_email={e["email"].lower(): Known(Kind.AI_AGENT, e["name"]) for e in raw["agent_emails"]},
        footers=tuple((re.compile(f["pattern"]), f["name"]) for f in raw["agent_footers"]),
        branch_prefixes=tuple((b["prefix"], b["name"]) for b in raw["branch_prefixes"]),
    )


BUILTIN = _load_builtin()


def builtin_catalog() -> AgentCatalog:
    """The built-in catalog (immutable; share it freely)."""
    return BUILTIN
