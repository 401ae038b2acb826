"""WorkloadIdentity: verified claims become a typed identity keyed on numeric ids."""

from __future__ import annotations

import pytest

from app.errors import TokenError
from app.tokens.identity import REQUIRED_CLAIMS, WorkloadIdentity, display_claims
from tests.builders import claims


def test_github_sends_ids_as_strings_and_they_become_integers():
    identity = WorkloadIdentity.from_claims(claims())
    assert (identity.repository_id, identity.repository_owner_id, identity.actor_id) == (2000, 1000, 583231)
    assert identity.run_id == 9000 and identity.run_attempt == 1
    assert identity.head_ref is None, "GitHub sends head_ref as '' outside pull-request events"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_every_required_claim_is_required(claim):
    incomplete = claims()
    del incomplete[claim]
    with pytest.raises(TokenError, match=f"lacks required claim.*{claim}") as info:
        WorkloadIdentity.from_claims(incomplete)
    assert info.value.code == "missing-claim"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("repository_id", "12abc"), ("actor_id", "-5"), ("repository_owner_id", True), ("run_id", "١٢")],
    ids=["letters", "negative", "boolean", "non-ascii-digits"],
)
def test_ids_must_be_decimal_numbers(claim, value):
    with pytest.raises(TokenError, match=f"claim '{claim}' must be a decimal number") as info:
        WorkloadIdentity.from_claims(claims(**{claim: value}))
    assert info.value.code == "invalid-claim"


def test_display_claims_hold_no_signature_material():
    shown = display_claims({**claims(), "signature": "x", "jti": "secret-ish"})
    assert "signature" not in shown and "jti" not in shown
    assert shown["repository"] == "octo-org/octo-repo"


def test_a_held_job_is_read_from_githubs_run_and_a_run_without_its_fields_is_refused():
    from app.errors import InvalidRequest
    from app.tokens.identity import DEPLOYMENT_ISSUER, held_job_identity

    run = {
        "head_branch": "main",
        "actor": {"login": "alice", "id": 1001},
        "event": "push",
        "head_sha": "a" * 40,
        "path": ".github/workflows/deploy.yml@refs/heads/main",
        "run_attempt": 2,
    }
    where = {"repository": "o/r", "repository_id": 1, "owner": "o", "owner_id": 2, "environment": "prod"}
    identity = held_job_identity(run, **where, run_id=9, delivery="d", now=0)
    assert identity.issuer == DEPLOYMENT_ISSUER
    assert (identity.ref, identity.job_workflow_ref, identity.run_attempt) == (
        "refs/heads/main",
        "o/r/.github/workflows/deploy.yml@refs/heads/main",
        2,
    )
    with pytest.raises(InvalidRequest, match="lacks a field the gate needs"):
        held_job_identity({**run, "actor": None}, **where, run_id=9, delivery="d", now=0)
