"""The canonical form behind every audit hash: the fast paths give exactly the bytes of the plain one.

The chain is hashed from text the store already has (the payload's canonical JSON) rather than by
serialising the record again, and payloads are normalised without checking keys one by one unless a
key was lost. Both are specified here against the straightforward definitions, on generated payloads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.errors import Unavailable
from app.store.canonical import (
    _unique_keys,
    encode_audit,
    normalise_payload,
    record_hash,
    record_hash_of_text,
)

texts = st.text(max_size=12)  # quotes, backslashes, controls, non-ASCII (not lone surrogates: not UTF-8)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts | st.integers(), inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(texts, values, max_size=6)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def _slow_normal(payload: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    normal: dict[str, Any] = json.loads(text, object_pairs_hook=_unique_keys)
    return normal


@settings(max_examples=300, deadline=None)
@given(payloads, times, texts, st.integers(min_value=1, max_value=2**62), st.text(max_size=64))
# Keys that collide are rarely generated: this one makes every run take the refusal branch.
@example({"o": {1: "a", "1": "b"}}, datetime(2026, 1, 1, tzinfo=UTC), "decision", 1, "0" * 64)
def test_the_hash_from_text_is_the_hash_of_the_record(
    payload: dict[str, Any], when: datetime, kind: str, seq: int, prev: str
) -> None:
    try:
        _slow_normal(payload)
    except ValueError:  # two keys that become one once written (1 and "1"): refused, never hashed
        with pytest.raises(Unavailable, match="cannot be encoded") as refused:
            encode_audit(kind, payload, when)
        assert refused.value.code == "audit-unavailable"
        assert "appear twice" in str(refused.value.__cause__)
        return
    # Any other payload is encoded: an error here, of whatever kind, is a bug in the encoder.
    normal, payload_text, time_text = encode_audit(kind, payload, when)
    assert record_hash_of_text(seq, time_text, kind, payload_text, prev) == record_hash(
        seq, when, kind, normal, prev
    )


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_normalising_reads_back_what_checking_every_key_reads_back(payload: dict[str, Any]) -> None:
    try:
        expected = _slow_normal(payload)
    except ValueError:
        with pytest.raises(ValueError, match="appear twice"):
            normalise_payload(payload)
        return
    assert normalise_payload(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [{1: "a", "1": "b"}, {"outer": {2: "x", "2": "much longer value"}}, {"l": [{3: 1, "3": 2}]}],
    ids=["top-level", "nested, the kept value longer", "in a list"],
)
def test_two_keys_that_become_one_are_refused_wherever_they_are(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="appear twice"):
        normalise_payload(payload)


def test_the_record_hash_is_stable_across_the_two_forms_of_time() -> None:
    when = datetime(2026, 11, 29, 4, 0, tzinfo=UTC) + timedelta(microseconds=7)
    normal, text, time_text = encode_audit("decision", {"é": "\u2028", "n": 1.5}, when)
    assert time_text == "2026-11-29T04:00:00.000007+00:00"
    assert record_hash_of_text(3, time_text, "decision", text, "0" * 64) == record_hash(
        3, when, "decision", normal, "0" * 64
    )
