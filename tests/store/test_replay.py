"""Replay records, on both stores: a token's (issuer, jti) is accepted once, until well after the token expired."""

from __future__ import annotations

import pytest
from annotated_types import Le

from app.errors import Unavailable
from app.settings import Settings
from app.store.base import Store
from app.store.sqlite import REPLAY_MARGIN_SECONDS
from tests.store.conftest import T0

ISS = "https://token.actions.githubusercontent.com"


def test_a_jti_is_claimed_once(any_store: Store) -> None:
    assert any_store.claim_jti(ISS, "jti-1", 2_000) is True
    assert any_store.claim_jti(ISS, "jti-1", 2_000) is False
    assert any_store.claim_jti(ISS, "jti-1", 9_999) is False, "a later expiry does not make it new"


def test_claims_are_keyed_on_issuer_and_jti(any_store: Store) -> None:
    assert any_store.claim_jti(ISS, "jti-1", 2_000) is True
    assert any_store.claim_jti(f"{ISS}/my-enterprise", "jti-1", 2_000) is True, (
        "another issuer's jti is another token"
    )
    assert any_store.claim_jti(ISS, "jti-2", 2_000) is True


def test_the_margin_outlasts_the_largest_leeway_the_settings_allow() -> None:
    (largest_leeway,) = [m.le for m in Settings.model_fields["leeway"].metadata if isinstance(m, Le)]
    assert isinstance(largest_leeway, int)
    assert largest_leeway + 60 <= REPLAY_MARGIN_SECONDS, (
        "exp leeway, plus a minute of clock difference between workers"
    )


PURGE = [
    # (token exp relative to the store's clock, still refused as a replay after the purge?)
    (-REPLAY_MARGIN_SECONDS - 2, False),  # past exp + margin: no verifier accepts the token anymore
    (-REPLAY_MARGIN_SECONDS + 2, True),  # just inside the margin: kept
    (-61, True),  # expired, but within the leeway a verifier may still grant: must stay
    (0, True),
    (300, True),  # not yet expired
]


def _store_now(store: Store) -> int:
    """The clock the purge goes by: PostgreSQL's own, or the SQLite store's (at T0 here)."""
    return int(store.database_time() or T0.timestamp())


@pytest.mark.parametrize(
    ("exp_offset", "kept"),
    PURGE,
    ids=["past-the-margin", "inside-the-margin", "within-the-leeway", "expiring-now", "still-valid"],
)
def test_purge_drops_only_records_no_verifier_could_still_need(
    any_store: Store, exp_offset: int, kept: bool
) -> None:
    now = _store_now(any_store)
    any_store.claim_jti(ISS, "jti", now + exp_offset)
    assert any_store.purge_expired() == (0 if kept else 1)
    assert any_store.claim_jti(ISS, "jti", now + exp_offset) is (not kept)


def test_purge_counts_what_it_dropped(any_store: Store) -> None:
    now = _store_now(any_store)
    for i in range(5):
        any_store.claim_jti(ISS, f"old-{i}", now - 9_000)
    any_store.claim_jti(ISS, "fresh", now)
    assert any_store.purge_expired() == 5
    assert any_store.purge_expired() == 0


def test_a_claim_that_cannot_be_recorded_refuses_the_token(any_store: Store) -> None:
    any_store.close()
    with pytest.raises(
        Unavailable, match="the replay record cannot be written, so the token was not accepted"
    ) as info:
        any_store.claim_jti(ISS, "jti-1", 2_000)
    assert info.value.code == "store-unavailable"
