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


def test_a_claim_named_origin_never_passes_a_token_off_as_a_check_or_a_held_job():
    from app.tokens.identity import Origin

    for forged in ("pull-request-check", "held-deployment"):
        identity = WorkloadIdentity.from_claims({**claims(), "origin": forged})
        assert identity.origin is Origin.OIDC_TOKEN, forged
