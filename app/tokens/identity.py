"""The verified workload: who is asking, keyed on GitHub's numeric ids.

A :class:`WorkloadIdentity` is built only from claims whose signature, issuer, audience and times
were verified (see ``app.tokens.verify``). Names (repository, owner, actor) are for display; decisions key
on ``repository_id``, ``repository_owner_id`` and ``actor_id``. ``sub`` is kept for display and
never parsed: GitHub's immutable-subject format changes its shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from app.errors import InvalidRequest, TokenError

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


# The issuer of identities the gate builds itself to evaluate a pull request's required merge check
# from a webhook (no OIDC token exists there). It can never verify as a token: it is no URL.
PR_CHECK_ISSUER = "agent-gate:pull-request-check"
PR_CHECK_EVENT = "agent-gate-check"
# Jobs held by the App's deployment protection rule: the workload is built from the run GitHub
# reports, before the job (and so its runner) starts.
DEPLOYMENT_ISSUER = "agent-gate:deployment-protection-rule"
RUNNER_NOT_STARTED = "not-started"


def display_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The non-secret subset of ``claims`` that may be shown to a person or written to a log."""
    return {k: claims[k] for k in DISPLAY_CLAIMS if k in claims}


class WorkloadIdentity(BaseModel):
    """A GitHub Actions job, as its verified OIDC token describes it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

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


def pull_request_check_identity(
    *,
    repository: str,
    repository_id: int,
    owner: str,
    owner_id: int,
    author: str,
    author_id: int,
    number: int,
    head_sha: str,
    head_ref: str,
    base_ref: str,
    delivery: str,
    now: int,
) -> WorkloadIdentity:
    """The identity a pull request's merge check is evaluated as: its author, at its head, into its base.

    Built from a verified webhook, never from a token; the engine treats event, workflow and runner
    conditions as not applicable to it (they apply when the merge itself runs).
    """
    return WorkloadIdentity(
        issuer=PR_CHECK_ISSUER,
        subject=f"pull-request:{repository_id}:{number}",
        jti=delivery,
        issued_at=now,
        expires_at=now,
        repository=repository,
        repository_id=repository_id,
        repository_owner=owner,
        repository_owner_id=owner_id,
        actor=author,
        actor_id=author_id,
        event_name=PR_CHECK_EVENT,
        ref=f"refs/heads/{base_ref}",
        head_ref=head_ref,
        base_ref=base_ref,
        sha=head_sha,
        job_workflow_ref=f"{repository}/pull/{number}",
        run_id=0,
        run_attempt=1,
        runner_environment="github-hosted",
    )


def deployment_identity(
    *,
    repository: str,
    repository_id: int,
    owner: str,
    owner_id: int,
    actor: str,
    actor_id: int,
    event: str,
    ref: str,
    sha: str,
    workflow_path: str,
    environment: str,
    run_id: int,
    run_attempt: int,
    delivery: str,
    now: int,
) -> WorkloadIdentity:
    """The identity of a job GitHub holds for the gate's deployment protection rule.

    Built from the workflow run as GitHub reports it (re-fetched, never taken from the webhook
    alone): its actor, event, ref, commit and top-level workflow file. The runner is not known yet
    (the job has not started), so the engine treats runner conditions as applying when the job
    itself asks the gate.
    """
    return WorkloadIdentity(
        issuer=DEPLOYMENT_ISSUER,
        subject=f"repo:{repository}:environment:{environment}",
        jti=delivery,
        issued_at=now,
        expires_at=now,
        repository=repository,
        repository_id=repository_id,
        repository_owner=owner,
        repository_owner_id=owner_id,
        actor=actor,
        actor_id=actor_id,
        event_name=event,
        ref=ref,
        sha=sha,
        environment=environment,
        job_workflow_ref=f"{repository}/{workflow_path}@{ref}",
        job_workflow_sha=sha,
        run_id=run_id,
        run_attempt=run_attempt,
        runner_environment=RUNNER_NOT_STARTED,
    )


def held_job_identity(
    run: Any,
    *,
    repository: str,
    repository_id: int,
    owner: str,
    owner_id: int,
    environment: str,
    run_id: int,
    delivery: str,
    now: int,
) -> WorkloadIdentity:
    """:func:`deployment_identity` from GitHub's ``workflow-run`` answer (``GET .../actions/runs/{id}``):
    the one reading of a run shared by the deployment protection rule and ``agent-gate explain --run``.
    Raises :class:`InvalidRequest` when the answer lacks a field the gate needs."""
    try:
        branch = str(run["head_branch"] or "")
        return deployment_identity(
            repository=repository,
            repository_id=repository_id,
            owner=owner,
            owner_id=owner_id,
            actor=str(run["actor"]["login"]),
            actor_id=int(run["actor"]["id"]),
            event=str(run["event"]),
            ref=branch if branch.startswith("refs/") else f"refs/heads/{branch}",
            sha=str(run["head_sha"]),
            workflow_path=str(run["path"]).split("@", 1)[0],
            environment=environment,
            run_id=run_id,
            run_attempt=int(run.get("run_attempt") or 1),
            delivery=delivery,
            now=now,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidRequest(
            f"GitHub's answer for run {run_id} lacks a field the gate needs ({exc.__class__.__name__})",
            code="invalid-payload",
        ) from exc
