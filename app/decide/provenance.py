"""Agent provenance and the people a change belongs to: pure functions over identity and evidence.

A workload is *agent-driven* when any signal fires: the actor or triggering actor is an agent, the
PR author is, a commit is authored or committed by one, a commit carries an agent co-author
trailer or footer, the branch has an agent prefix, or the PR has an agent label. Trailers and branch
names are evidence that an AI was involved, never that a human reviewed.

The same facts say who may *not* approve the change: its actor, triggering actor, PR author, every
author, committer and co-author of its commits, and the agent's requester (a human co-author of an
agent's commits; the Copilot agent adds its requester this way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.decide.decision import Signal
from app.evidence.model import Account, CommitFacts, Evidence, co_authors
from app.policy.agents import AgentCatalog, Kind
from app.tokens.identity import WorkloadIdentity


@dataclass(frozen=True)
class Person:
    """A human (or account) the change belongs to, with the role that excludes them from approving."""

    login: str | None
    id: int | None
    role: str  # "actor", "triggering actor", "PR author", "commit author", "committer", "co-author", "requester", ...


@dataclass
class Provenance:
    """The result of reading the evidence: agent signals and the people tied to the change."""

    agent_signals: list[Signal] = field(default_factory=list)
    bot_signals: list[Signal] = field(default_factory=list)
    involved: list[Person] = field(default_factory=list)
    # Co-author trailers whose address GitHub ties to no account ("Name <email> (commit abc1234)").
    unresolved_co_authors: list[str] = field(default_factory=list)

    @property
    def agent(self) -> bool:
        return bool(self.agent_signals)

    @property
    def bot(self) -> bool:
        return bool(self.bot_signals) and not self.agent_signals

    def roles_of(self, login: str | None, user_id: int | None) -> list[str]:
        """Every role by which this account is tied to the change (empty: independent)."""
        roles: list[str] = []
        for p in self.involved:
            same = (user_id is not None and p.id is not None and p.id == user_id) or (
                login is not None and p.login is not None and p.login.lower() == login.lower()
            )
            if same and p.role not in roles:
                roles.append(p.role)
        return roles


def _account_person(account: Account | None, role: str) -> Person | None:
    return Person(account.login, account.id, role) if account else None


def _email_person(catalog: AgentCatalog, email: str | None, role: str) -> Person | None:
    named = catalog.noreply_login(email)
    return Person(named[1], named[0], role) if named else None


def _resolved_person(commit: CommitFacts, email: str) -> Person | None:
    """The account GitHub resolved a co-author's address to (GraphQL ``Commit.authors``), if any."""
    for actor in commit.authors or []:
        if actor.account is not None and actor.email.strip().lower() == email.strip().lower():
            return Person(actor.account.login, actor.account.id, "co-author")
    return None


def _commit_signals(catalog: AgentCatalog, commit: CommitFacts, out: Provenance) -> bool:
    """Add the commit's agent signals; True when the commit is an agent's."""
    short = commit.sha[:7]
    agent_commit = False
    for who, account, email in (
        ("commit-author", commit.author, commit.author_email),
        ("commit-committer", commit.committer, commit.committer_email),
    ):
        if account is not None:
            known = catalog.classify(account.login, account.id, account.type)
            if known.kind is Kind.AI_AGENT:
                out.agent_signals.append(
                    Signal(
                        name=who, detail=f"commit {short}: @{account.login} is {known.name}", agent=known.name
                    )
                )
                agent_commit = True
                continue
        by_mail = catalog.classify_email(email)
        if by_mail and by_mail.kind is Kind.AI_AGENT:
            out.agent_signals.append(
                Signal(name=who, detail=f"commit {short}: {email} is {by_mail.name}", agent=by_mail.name)
            )
            agent_commit = True
    for co in co_authors(commit.message):
        trailer = catalog.classify_email(co.email)
        if trailer and trailer.kind is Kind.AI_AGENT:
            out.agent_signals.append(
                Signal(
                    name="co-author-trailer",
                    detail=f"commit {short}: Co-authored-by {co.name} <{co.email}>",
                    agent=trailer.name,
                )
            )
            agent_commit = True
    footer = catalog.footer_match(commit.message)
    if footer:
        out.agent_signals.append(
            Signal(name="agent-footer", detail=f"commit {short}: footer of {footer}", agent=footer)
        )
        agent_commit = True
    return agent_commit


def _branch(identity: WorkloadIdentity) -> str | None:
    if identity.head_ref:
        return identity.head_ref
    if identity.ref.startswith("refs/heads/"):
        return identity.ref.removeprefix("refs/heads/")
    return None


def analyse(identity: WorkloadIdentity, evidence: Evidence, catalog: AgentCatalog) -> Provenance:
    """Read agent signals and the people tied to the change. Pure; never raises on odd evidence."""
    out = Provenance()

    def account_signal(
        name: str, login: str, user_id: int | None, account_type: str | None, what: str
    ) -> None:
        known = catalog.classify(login, user_id, account_type)
        if known.kind is Kind.AI_AGENT:
            out.agent_signals.append(
                Signal(name=name, detail=f"{what} @{login} is {known.name}", agent=known.name)
            )
        elif known.kind is Kind.BOT:
            out.bot_signals.append(
                Signal(name=name, detail=f"{what} @{login} is a non-AI bot ({known.name})")
            )

    account_signal("actor", identity.actor, identity.actor_id, None, "actor")
    out.involved.append(Person(identity.actor, identity.actor_id, "actor"))

    run = evidence.run
    if run and run.triggering_actor:
        t = run.triggering_actor
        if t.id != identity.actor_id:
            account_signal("triggering-actor", t.login, t.id, t.type, "triggering actor")
        out.involved.append(Person(t.login, t.id, "triggering actor"))

    pr = evidence.pull_request
    branches = [b for b in (_branch(identity), pr.head_ref if pr else None) if b]
    for branch in dict.fromkeys(branches):
        agent = catalog.branch_match(branch)
        if agent:
            out.agent_signals.append(
                Signal(name="branch-prefix", detail=f"branch {branch} is a {agent} branch", agent=agent)
            )

    if pr is not None:
        if pr.author.id is None or pr.author.id != identity.actor_id:  # else said already, as the actor
            account_signal(
                "pr-author", pr.author.login, pr.author.id, pr.author.type, f"PR #{pr.number} author"
            )
        out.involved.append(Person(pr.author.login, pr.author.id, "PR author"))
        for label in pr.labels:
            if label in catalog.labels:
                out.agent_signals.append(Signal(name="label", detail=f"PR #{pr.number} has label {label!r}"))
        for commit in pr.commits:
            agent_commit = _commit_signals(catalog, commit, out)
            for person in (
                _account_person(commit.author, "commit author"),
                _email_person(catalog, commit.author_email, "commit author"),
                _account_person(commit.committer, "committer"),
                _email_person(catalog, commit.committer_email, "committer"),
            ):
                if person:
                    out.involved.append(person)
            for co in co_authors(commit.message):
                person = _email_person(catalog, co.email, "co-author") or _resolved_person(commit, co.email)
                if person is None and catalog.classify_email(co.email) is None:
                    # Nobody GitHub knows: it cannot be told apart from an approver (policy decides).
                    shown = f"{co.name} <{co.email}> (commit {commit.sha[:7]})"
                    if shown not in out.unresolved_co_authors:
                        out.unresolved_co_authors.append(shown)
                if person is None:
                    continue
                out.involved.append(person)
                # A human co-author of an agent's commit is the person who asked the agent for it.
                if agent_commit and catalog.classify(person.login, person.id).kind is Kind.HUMAN:
                    out.involved.append(Person(person.login, person.id, "requester"))
    return out
