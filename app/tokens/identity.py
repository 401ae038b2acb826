"""The verified workload: who is asking, keyed on GitHub's numeric ids.

A :class:`WorkloadIdentity` is built only from claims whose signature, issuer, audience and times
were verified (see ``app.tokens.verify``). Names (repository, owner, actor) are for display; decisions key
on ``repository_id``, ``repository_owner_id`` and ``actor_id``. ``sub`` is kept for display and
never parsed: GitHub's immutable-subject format changes its shape.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from app.errors import TokenError

# Claims GitHub Actions always sends and that the gate needs. ``environment`` is present only for
# jobs that reference one; ``job_workflow_sha``, ``workflow_ref`` and the others are optional.
REQUIRED_CLAIMS: tuple[str, ...] = (
    "iss",
    "aud",
    "sub",
    "exp",
    "iat",
    "jti",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "actor",
    "actor_id",
    "event_name",
    "ref",
    "sha",
    "run_id",
    "run_attempt",
    "job_workflow_ref",
    "runner_environment",
)

# Claims safe to show to a person for debugging: identifiers and names, no signature material.
DISPLAY_CLAIMS: tuple[str, ...] = (
    "iss",
    "aud",
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "repository_visibility",
    "actor",
    "actor_id",
    "event_name",
    "ref",
    "ref_type",
    "head_ref",
    "base_ref",
    "sha",
    "environment",
    "workflow",
    "workflow_ref",
    "job_workflow_ref",
    "job_workflow_sha",
    "run_id",
    "run_number",
    "run_attempt",
    "runner_environment",
    "iat",
    "exp",
)


class Origin(StrEnum):
    """Where a workload identity came from, and so which of its facts were verified how.

    Only ``OIDC_TOKEN`` identities come from a token; the others are built by the gate from a
    verified webhook and GitHub's own answers (app/gate/workloads.py). The engine reads the origin,
    never the issuer, to know which conditions apply.
    """

    OIDC_TOKEN = "oidc-token"  # noqa: S105  # a name, not a secret: a job's verified OIDC token
    PULL_REQUEST_CHECK = "pull-request-check"  # a pull request's required merge check (no run)
    HELD_DEPLOYMENT = "held-deployment"  # a job held by the deployment protection rule (not started)
    MERGE_GROUP = "merge-group"  # a pull request of a merge queue's group, judged for the group's check


# The issuers the gate names its own identities by (for display: they can never verify as a token,
# they are no URL). Decisions branch on :class:`Origin`, never on these.
PR_CHECK_ISSUER = "agent-gate:pull-request-check"
DEPLOYMENT_ISSUER = "agent-gate:deployment-protection-rule"
MERGE_GROUP_ISSUER = "agent-gate:merge-group"


def display_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The non-secret subset of ``claims`` that may be shown to a person or written to a log."""
    return {k: claims[k] for k in DISPLAY_CLAIMS if k in claims}


class WorkloadIdentity(BaseModel):
    """A GitHub Actions job, as its verified OIDC token describes it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    origin: Origin = Origin.OIDC_TOKEN
    issuer: str
    subject: str
    jti: str
    issued_at: int
    expires_at: int

    repository: str
    repository_id: int
    repository_owner: str
    repository_owner_id: int
    actor: str
    actor_id: int

    event_name: str
    ref: str
    ref_type: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    sha: str
    environment: str | None = None
    workflow: str | None = None
    job_workflow_ref: str
    job_workflow_sha: str | None = None
    run_id: int
    run_attempt: int
    runner_environment: str

    @field_validator("head_ref", "base_ref", "environment", "ref_type", "job_workflow_sha", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # GitHub sends head_ref/base_ref as "" outside pull-request events.
        return None if value == "" else value

    @property
    def workflow_url(self) -> str:
        """The Actions run page, for people reading a decision."""
        host = "https://github.com"
        return f"{host}/{self.repository}/actions/runs/{self.run_id}/attempts/{self.run_attempt}"

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> WorkloadIdentity:
        """Build the identity from verified claims.

        Raises :class:`TokenError` (``missing-claim`` / ``invalid-claim``) when a claim the gate
        needs is absent or of the wrong shape (ids must be decimal strings or integers).
        """
        missing = [c for c in REQUIRED_CLAIMS if c not in claims or claims[c] in (None, "")]
        if missing:
            raise TokenError(
                f"the token lacks required claim(s): {', '.join(missing)}; expected a GitHub Actions "
                "OIDC token, which always carries them",
                code="missing-claim",
                claims=display_claims(claims),
            )
        data = {
            "issuer": claims["iss"],
            "subject": claims["sub"],
            "issued_at": claims["iat"],
            "expires_at": claims["exp"],
            **{k: v for k, v in claims.items() if k not in {"iss", "sub", "iat", "exp", "aud"}},
            # Whatever the claims say: a claim named "origin" must never pass a token off as a
            # pull request check or a held deployment (their run conditions are relaxed).
            "origin": Origin.OIDC_TOKEN,
        }
        for key in ("repository_id", "repository_owner_id", "actor_id", "run_id", "run_attempt"):
            value = data[key]
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit())
            ):
                raise TokenError(
                    f"claim {key!r} must be a decimal number, got {value!r}",
                    code="invalid-claim",
                    claims=display_claims(claims),
                )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise TokenError(
                f"the token's claims are not of the expected shape ({fields})",
                code="invalid-claim",
                claims=display_claims(claims),
            ) from exc
