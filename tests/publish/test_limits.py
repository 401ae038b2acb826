"""GitHub's limits hold for every text: check-run output and protection-rule comments never exceed
their bytes, are never cut inside a character, and keep the decision page's link."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.decide.decision import Decision, Reason
from app.publish.checks import MAX_OUTPUT_BYTES, check_run_body
from app.publish.deployments import MAX_COMMENT_BYTES, comment
from app.publish.limits import clean, cut_utf8, fit, utf8_size
from tests.builders import POLICY_TEXT, agent_identity, evidence, policy_set, run

LINK = "http://gate.test/decisions/dec_0123456789abcdef"
# Any code point, lone surrogates included (JSON lets a payload carry "\ud800").
ANY_CHAR = st.characters(codec=None, categories=None)
# Latin, accented, CJK, symbols (✅ ✖), emoji: one to four bytes each.
WIDE = st.sampled_from(["x", "é", "ß", "✅", "✖", "漢", "🙂", "\u200d", "\ud800"])
texts = st.text(alphabet=ANY_CHAR, max_size=200)


def long_text(unit: str, times: int) -> str:
    return unit * times


long_texts = st.builds(long_text, st.text(alphabet=WIDE, min_size=1, max_size=8), st.integers(1, 20_000))


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=0, max_value=400))
def test_a_cut_is_the_longest_prefix_that_fits_and_ends_on_a_character(text, max_bytes):
    cut = cut_utf8(text, max_bytes)
    assert utf8_size(cut) <= max_bytes
    assert clean(text).startswith(cut)
    rest = clean(text)[len(cut) :]
    assert not rest or utf8_size(cut + rest[0]) > max_bytes, "no longer prefix fits"


@settings(max_examples=200, deadline=None)
@given(long_texts, st.integers(min_value=64, max_value=70_000))
def test_fit_never_exceeds_and_always_keeps_its_tail(text, max_bytes):
    out = fit(text, max_bytes, tail=" [link]", note=" …cut")
    assert utf8_size(out) <= max_bytes
    assert out.endswith(" [link]")
    out.encode("utf-8")  # valid UTF-8: no lone surrogate left


def decision_saying(message: str, remedy: str) -> Decision:
    decision = run(policy_set(POLICY_TEXT), agent_identity(environment="production"), "deploy", evidence())
    reasons = [*decision.reasons, Reason(code="ref", ok=False, message=message)]
    return decision.model_copy(update={"reasons": reasons, "remedy": remedy, "details_url": LINK})


@settings(max_examples=40, deadline=None)
@given(long_texts, long_texts)
def test_no_check_run_output_exceeds_githubs_bytes(message, remedy):
    body = check_run_body(decision_saying(message, remedy))
    for field in ("summary", "text"):
        assert utf8_size(body["output"][field]) <= MAX_OUTPUT_BYTES
        body["output"][field].encode("utf-8")
    summary = body["output"]["summary"]
    assert summary.rstrip().endswith(f"({LINK})") or summary.endswith(f"decision page: {LINK})")


@settings(max_examples=60, deadline=None)
@given(long_texts, long_texts, st.one_of(st.none(), st.integers(1, 10)))
def test_no_protection_rule_comment_exceeds_1024_bytes_and_each_keeps_its_link(message, remedy, attempt):
    text = comment(decision_saying(message, remedy), attempt=attempt)
    assert utf8_size(text) <= MAX_COMMENT_BYTES
    assert len(text.encode("utf-16-le")) // 2 <= MAX_COMMENT_BYTES, "fits if GitHub counts UTF-16 units"
    assert text.endswith(f"Decision: {LINK}")


@pytest.mark.parametrize(
    ("unit", "why"),
    [
        ("✖", "three bytes a character: 400 characters are 1,200 bytes"),
        ("🙂", "four bytes, two UTF-16 units"),
    ],
)
def test_a_comment_of_multibyte_reasons_is_cut_by_bytes(unit, why):
    text = comment(decision_saying(unit * 400, ""), attempt=1)
    assert len(text) < MAX_COMMENT_BYTES, why
    assert utf8_size(text) <= MAX_COMMENT_BYTES
    assert text.endswith(f"Decision: {LINK}")
