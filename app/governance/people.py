"""Whether a person is one the policy names: a user (``@login``) or an active member of a team
(``@org/team``), for break-glass invokers and freezers alike."""

from __future__ import annotations

from app.github.protocol import GitHubAPI
from app.policy.schema import OwnerRef
from app.tokens.identity import WorkloadIdentity


def is_named(entries: list[OwnerRef], who: WorkloadIdentity, github: GitHubAPI | None) -> bool:
    """True when ``who``'s actor is one of ``entries``. Without the App (``github`` None) team
    membership cannot be checked, so a team entry never matches: fail closed."""
    for entry in entries:
        name = entry.removeprefix("@")
        if "/" not in name:
            if name.lower() == who.actor.lower():
                return True
        elif github is not None:
            org, team = name.split("/", 1)
            if github.is_active_team_member(who.repository, org, team, who.actor):
                return True
    return False
