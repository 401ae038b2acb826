"""Just-in-time, task-scoped credentials: gate-signed grants and down-scoped GitHub tokens.

A grant is a JWT signed by the gate (ES256, with a ``kid``) for one allowed decision: one workload
(repository id, run id, run attempt), one audience (the rule's target, e.g. ``deploy:production``),
one permission, a short TTL. Downstream systems verify it offline against
``/.well-known/jwks.json`` or online with ``/v1/grants/introspect`` (RFC 7662).

The lifecycle stays on the server: every grant is recorded (jti, decision, PR and sha, expiry, a
hash of its GitHub token); revoking a grant revokes its GitHub token and its children; the webhook
revokes grants tied to a PR when the evidence behind them changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from app.credentials.chain import delegation_depth, delegations_left, steps_of
from app.credentials.keys import ALGORITHM as ALGORITHM  # re-exported: the grant algorithm
from app.credentials.keys import GRANT_LEEWAY
from app.credentials.keys import SigningKeys as SigningKeys  # re-exported: where it lived before
from app.credentials.spiffe import spiffe_id
from app.decide.decision import Decision
from app.errors import GateError, InvalidRequest, NotNarrower, TokenError
from app.evidence.model import EvidenceChange
from app.github.client import GitHubClient
from app.policy.lint import AGENT_FORBIDDEN_PERMISSIONS
from app.policy.schema import DEFAULT_DELEGATION_DEPTH, PermissionClass
from app.store.clock import shared_time
from app.tokens.identity import WorkloadIdentity

log = logging.getLogger("agent_gate.grants")

DEFAULT_TTL = 600
MAX_TTL = 3600


@dataclass(frozen=True)
class GrantSubject:
    """What a grant is for: one decision's workload and target."""

    action: str
    permission: str
    decision_id: str
    repository: str
    repository_id: int
    run_id: int
    run_attempt: int
    sha: str
    environment: str | None
    pull_request: int | None
    agent: bool

    @classmethod
    def of(cls, decision: Decision, identity: WorkloadIdentity) -> GrantSubject:
        return cls(
            action=decision.action,
            permission=decision.permission or "read",
            decision_id=decision.decision_id,
            repository=identity.repository,
            repository_id=identity.repository_id,
            run_id=identity.run_id,
            run_attempt=identity.run_attempt,
            sha=decision.subject.sha,
            environment=decision.subject.environment,
            pull_request=decision.subject.pull_request,
            agent=decision.subject.agent,
        )

    @classmethod
    def from_claims(cls, claims: dict[str, Any], *, permission: str) -> GrantSubject:
        return cls(
            action=claims["action"],
            permission=permission,
            decision_id=claims["decision_id"],
            repository=claims["repository"],
            repository_id=int(claims["repository_id"]),
            run_id=int(claims["run_id"]),
            run_attempt=int(claims["run_attempt"]),
            sha=claims["sha"],
            environment=claims.get("environment"),
            pull_request=claims.get("pull_request"),
            agent=bool(claims.get("agent")),
        )


@dataclass(frozen=True)
class IssuedGrant:
    token: SecretStr
    jti: str
    audience: str
    expires_at: int
    github_token: SecretStr | None = None
    github_token_expires_at: str | None = None
    github_permissions: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"IssuedGrant(jti={self.jti!r}, audience={self.audience!r}, expires_at={self.expires_at})"


def _permission_rank(permission: str) -> int:
    return PermissionClass(permission).rank


class GrantService:
    def __init__(
        self,
        store: Any,
        *,
        issuer: str,
        github: GitHubClient | None = None,
        clock: Callable[[], float] = time.time,
        spiffe_trust_domain: str | None = None,
    ) -> None:
        self.store = store
        self.issuer = issuer.rstrip("/")
        self.spiffe_trust_domain = spiffe_trust_domain  # the SPIFFE profile (app/credentials/spiffe.py)
        self.keys = SigningKeys(store, clock)
        self._github = github
        self._clock = clock

    # -- issuing -----------------------------------------------------------------------------------
    def _issue_time(self) -> int:
        """A grant's iat and nbf: now, but never later than the database's clock, so a replica whose
        clock runs ahead never mints a grant that is not yet valid everywhere else."""
        now = int(self._clock())
        database = self.store.database_time()
        return now if database is None else min(now, int(database))

    def issue(
        self,
        subject: GrantSubject,
        *,
        audience: str,
        ttl: int,
        github_permissions: dict[str, str] | None,
        parent: dict[str, Any] | None = None,
        delegate_audiences: Sequence[str] = (),
        delegations_left: int = DEFAULT_DELEGATION_DEPTH,
        step: str | None = None,
    ) -> IssuedGrant:
        """Sign a grant for ``subject``. ``delegate_audiences`` (the rule's) are the audiences other
        than its own that a grant delegated from this one may take, and ``delegations_left`` how
        many delegations deep a chain from it may still go; both travel in its signed claims. A
        delegated grant (``parent``) names its ``step``: its subject is the workload's with
        ``:step:NAME`` (``/step/NAME`` under the SPIFFE profile), and its ``act`` chain names the parent's step."""
        now = self._issue_time()
        ttl = max(30, min(ttl, MAX_TTL))
        expires = now + ttl
        if parent is not None:
            expires = min(expires, int(parent["exp"]))
        kid, key = self.keys.current()
        jti = "gr_" + secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self._sub(subject, step),
            "aud": audience,
            "action": subject.action,
            "permission": subject.permission,
            "decision_id": subject.decision_id,
            "repository": subject.repository,
            "repository_id": subject.repository_id,
            "run_id": subject.run_id,
            "run_attempt": subject.run_attempt,
            "sha": subject.sha,
            "environment": subject.environment,
            "pull_request": subject.pull_request,
            "agent": subject.agent,
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "delegations_left": max(0, delegations_left),
        }
        if step:
            claims["step"] = step
        if delegate_audiences:
            claims["delegate_aud"] = sorted(set(delegate_audiences))
        if parent is not None:
            # RFC 8693 "act": who this grant was delegated from, nested for longer chains.
            claims["act"] = {
                "sub": parent["sub"],
                "jti": parent["jti"],
                **({"step": parent["step"]} if "step" in parent else {}),
                **({"act": parent["act"]} if "act" in parent else {}),
            }
        github_token = None
        permissions = None
        if github_permissions:
            permissions = dict(github_permissions)
            if subject.agent:
                dropped = sorted(set(permissions) & AGENT_FORBIDDEN_PERMISSIONS)
                for name in dropped:
                    permissions.pop(name)
                if dropped:
                    log.warning("withheld %s from an agent-driven grant %s", ", ".join(dropped), jti)
            if permissions:
                if self._github is None:
                    raise GateError(
                        "the rule asks for a GitHub token, but the GitHub App is not configured (docs/github-app.md)",
                        code="github-not-configured",
                    )
                github_token = self._github.installation_token(
                    subject.repository, repository_ids=[subject.repository_id], permissions=permissions
                )
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})
        sealed = None
        digest = None
        if github_token is not None:
            raw = github_token.token.get_secret_value().encode()
            digest = hashlib.sha256(raw).hexdigest()
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(self.keys.sealing_key()).encrypt(nonce, raw, jti.encode())
        self.store.save_grant(
            {
                "jti": jti,
                "kid": kid,
                "parent_jti": parent["jti"] if parent else None,
                "decision_id": subject.decision_id,
                "repository_id": subject.repository_id,
                "run_id": subject.run_id,
                "run_attempt": subject.run_attempt,
                "pull_request": subject.pull_request,
                "sha": subject.sha,
                "audience": audience,
                "permission": subject.permission,
                "issued_at": now,
                "expires_at": expires,
                "github_token_sha256": digest,
                "github_token_sealed": sealed,
            }
        )
        self.store.append_audit(
            "grant-issued",
            {
                "jti": jti,
                "parent_jti": parent["jti"] if parent else None,
                "decision_id": subject.decision_id,
                "step": step,
                "sub": claims["sub"],
                "audience": audience,
                "permission": subject.permission,
                "expires_at": expires,
                "repository_id": subject.repository_id,
                "run_id": subject.run_id,
                "sha": subject.sha,
                "pull_request": subject.pull_request,
                "github_permissions": permissions,
                "act": claims.get("act"),
                "github_token_sha256": digest,
            },
        )
        return IssuedGrant(
            token=SecretStr(token),
            jti=jti,
            audience=audience,
            expires_at=expires,
            github_token=github_token.token if github_token else None,
            github_token_expires_at=github_token.expires_at.isoformat() if github_token else None,
            github_permissions=permissions,
        )

    def _sub(self, subject: GrantSubject, step: str | None) -> str:
        """The grant's subject: the workload's run, or its SPIFFE ID under the SPIFFE profile; a
        delegated grant's names its step too (``:step:NAME``, or the SPIFFE path's ``/step/NAME``)."""
        if self.spiffe_trust_domain is None:
            workload = f"repo:{subject.repository_id}:run:{subject.run_id}:attempt:{subject.run_attempt}"
            return f"{workload}:step:{step}" if step else workload
        spiffe = spiffe_id(
            self.spiffe_trust_domain,
            repository_id=subject.repository_id,
            run_id=subject.run_id,
            run_attempt=subject.run_attempt,
            action=subject.action,
        )
        return f"{spiffe}/step/{step}" if step else spiffe

    # -- verifying ---------------------------------------------------------------------------------
    def verify(
        self, token: str, *, audience: str | None = None, allow_revoked: bool = False
    ) -> dict[str, Any]:
        """Verify a grant offline with the published keys, then check it was not revoked."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")  # only selects the key
        except jwt.PyJWTError as exc:
            raise TokenError("the grant is not a JWT", code="malformed") from exc
        public = self.keys.published().get(str(kid))
        if public is None:
            raise TokenError("the grant was not signed by a key this gate publishes", code="unknown-key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=audience,
                leeway=GRANT_LEEWAY,  # other replicas' clocks (docs/grants.md, "Clocks")
                options={
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_iss": True,
                    "verify_aud": audience is not None,
                    "require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the grant expired", code="expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(
                f"the grant does not verify ({exc.__class__.__name__})", code="bad-signature"
            ) from exc
        record = self.store.get_grant(claims["jti"])
        if record is None or (record["revoked_at"] is not None and not allow_revoked):
            raise TokenError(
                "the grant was revoked" if record else "the gate has no record of this grant", code="revoked"
            )
        return claims

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: ``{"active": false}`` for anything not currently valid, details otherwise."""
        try:
            claims = self.verify(token)
        except TokenError:
            return {"active": False}
        return {
            "active": True,
            "scope": f"{claims['action']}:{claims['permission']}",
            "client_id": claims["sub"],
            "token_type": "agent-gate-grant",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": claims["sub"],
            "aud": claims["aud"],
            "iss": claims["iss"],
            "jti": claims["jti"],
            "decision_id": claims["decision_id"],
            "repository_id": claims["repository_id"],
            "run_id": claims["run_id"],
            "sha": claims["sha"],
            **({"step": claims["step"]} if "step" in claims else {}),
            **({"act": claims["act"]} if "act" in claims else {}),
        }

    # -- revoking ----------------------------------------------------------------------------------
    def revoke(self, jti: str, reason: str) -> list[str]:
        """Revoke a grant, its GitHub token and its children. Idempotent; returns the jtis revoked now."""
        revoked: list[str] = []
        pending = [jti]
        while pending:
            current = pending.pop()
            record = self.store.get_grant(current)
            if record is None:
                continue
            sealed = record.get("github_token_sealed")
            if self.store.revoke_grant(current, reason, int(self._clock())):
                revoked.append(current)
                self._revoke_github_token(current, sealed)
                self.store.append_audit(
                    "grant-revoked", {"jti": current, "reason": reason, "decision_id": record["decision_id"]}
                )
            pending.extend(c["jti"] for c in self.store.find_grants("parent_jti = ?", (current,)))
        return revoked

    def _revoke_github_token(self, jti: str, sealed: bytes | None) -> None:
        if not sealed or self._github is None:
            return
        try:
            raw = AESGCM(self.keys.sealing_key()).decrypt(sealed[:12], sealed[12:], jti.encode())
            self._github.revoke_installation_token(SecretStr(raw.decode()))
        except GateError as exc:
            log.warning("could not revoke the GitHub token of %s: %s", jti, exc.message)

    def on_evidence_change(self, change: EvidenceChange) -> None:
        """The webhook listener: revoke the outstanding grants tied to a PR (or its old head)."""
        if change.pull_request is not None:
            grants = self.store.find_grants(
                "repository_id = ? AND pull_request = ?", (change.repository_id, change.pull_request)
            )
        else:
            grants = []
        if change.head_sha:
            grants += self.store.find_grants(
                "repository_id = ? AND sha = ?", (change.repository_id, change.head_sha)
            )
        for grant in {g["jti"]: g for g in grants}.values():
            self.revoke(grant["jti"], change.reason)

    def purge_expired(self) -> int:
        """Drop grants expired for a minute by the database's clock (app.store.clock)."""
        return int(self.store.purge_grants(int(shared_time(self.store, self._clock)) - 60))

    def delegate(
        self, parent_token: str, *, step: str, permission: str | None, audience: str | None, ttl: int | None
    ) -> IssuedGrant:
        """A grant for the next step of a chain, never wider than its parent: same workload, an equal
        or lower permission, its parent's audience or a narrower one its rule declared, an expiry no
        later than its parent's, and one delegation fewer left (an equal child is allowed: it is a
        new holder, named by ``step``, and it counts against the depth). The chain is recorded in
        ``act`` and in the audit trail."""
        parent = self.verify(parent_token)
        left = delegations_left(parent)
        if left <= 0:
            raise InvalidRequest(
                f"this grant may not be delegated further: its chain is {delegation_depth(parent)} delegation(s) deep, "
                "the most its rule allows (grant.max_delegation_depth)",
                code="delegation-too-deep",
            )
        chain_steps = steps_of(parent)
        if step in chain_steps:
            raise InvalidRequest(
                f"step: got {step!r}, expected a step that holds no grant of this chain yet "
                f"({', '.join(chain_steps)}); each step of a chain has its own name",
                code="step-already-in-chain",
            )
        wanted = permission or parent["permission"]
        if wanted not in {"read", "propose", "execute"}:
            raise InvalidRequest(f"permission: got {wanted!r}, expected read, propose or execute")
        if _permission_rank(wanted) > _permission_rank(parent["permission"]):
            raise NotNarrower(
                f"a delegated grant may only narrow: permission {wanted!r} is above its parent's "
                f"{parent['permission']!r}"
            )
        # The audience names who may accept the grant: a child keeps its parent's, or takes one the
        # parent's rule declared narrower (signed into the parent as delegate_aud); never another.
        wanted_audience = audience or parent["aud"]
        narrower = [a for a in parent.get("delegate_aud", []) if isinstance(a, str)]
        if wanted_audience != parent["aud"] and wanted_audience not in narrower:
            allowed = ", ".join([parent["aud"], *narrower])
            raise NotNarrower(
                f"a delegated grant may only narrow: audience {wanted_audience!r} is not its parent's; "
                f"expected one of {allowed} (a rule lists narrower ones in grant.delegate_audiences)"
            )
        subject = GrantSubject.from_claims(parent, permission=wanted)
        remaining = int(parent["exp"]) - self._issue_time()
        return self.issue(
            subject,
            audience=wanted_audience,
            ttl=min(ttl or remaining, remaining),
            github_permissions=None,
            parent=parent,
            # A child at its parent's audience may delegate as its parent could; a narrower one may not widen.
            delegate_audiences=narrower if wanted_audience == parent["aud"] else (),
            delegations_left=left - 1,
            step=step,
        )
