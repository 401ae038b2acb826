"""The explanation a reviewer reads (check run, decision page, ``explain``): it never shows a pass for
what was not checked, puts what failed first, says who can act on the remedy, and names audit mode and
break-glass in the title rather than only in the body."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.decide.decision import Decision, Reason
from app.decide.explain import Check, explanation, readable_time, to_markdown, to_text
from app.evidence.model import Evidence as Facts
from tests.builders import (
    BOB,
    POLICY_TEXT,
    agent_identity,
    evidence,
    identity,
    policy_set,
    pull_request,
    review,
    run,
)

POLICIES = policy_set(POLICY_TEXT)


def _deploy_without_evidence() -> Decision:
    # No GitHub App: change provenance cannot be read, approvals cannot be counted.
    return run(POLICIES, identity(environment="production"), "deploy", Facts.none("the GitHub App is not configured"),
               environment="production")  # fmt: skip


def test_what_was_not_checked_is_never_shown_as_a_pass() -> None:
    e = explanation(_deploy_without_evidence())
    provenance = next(c for c in e.reasons if c.code == "provenance")
    assert (provenance.state, provenance.mark, provenance.ok) == ("not-checked", "○", True)
    markdown, text = to_markdown(e), to_text(e)
    assert "- ○ **provenance**:" in markdown and "- ✔ **provenance**" not in markdown
    assert "No agent signal fired." not in markdown, "no signal could fire: provenance was never read"
    assert "Not checked: only the actor was classified" in markdown
    assert "[not checked] provenance:" in text and "not checked: only the actor was classified" in text


def test_failing_checks_come_first_then_the_unchecked() -> None:
    states = [c.state for c in explanation(_deploy_without_evidence()).reasons]
    assert states == sorted(states, key=["fail", "not-checked", "pass"].index)
    assert states[0] == "fail" and "pass" in states


@pytest.mark.parametrize(
    ("decision", "heading"),
    [
        pytest.param(run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge",
                         evidence(pr=pull_request(), reviews=[]), pull_request=12),
                     "For reviewers", id="a-missing-approval-is-the-reviewers"),
        pytest.param(run(POLICIES, identity(), "deploy", None, environment="production"),
                     "For the workflow's author", id="a-job-without-its-environment-is-the-authors"),
        pytest.param(_deploy_without_evidence(), "For the gate's operator", id="no-app-is-the-operators"),
        pytest.param(run(POLICIES, identity(), "launch-rocket"), "For the workflow's author", id="unknown-action"),
    ],
)  # fmt: skip
def test_the_remedy_is_addressed_to_who_can_act(decision: Decision, heading: str) -> None:
    e = explanation(decision)
    assert e.remedy and e.remedy_heading == heading
    assert f"### {heading}\n\n{e.remedy}" in to_markdown(e)


def test_no_rule_matched_is_said_so_not_a_rule_named_none() -> None:
    e = explanation(run(POLICIES, identity(), "launch-rocket"))
    assert e.rule is None and e.rule_shown == "no rule matched"
    assert "**Rule** no rule matched" in to_markdown(e) and "`none`" not in to_markdown(e)
    assert "no rule matched" in to_text(e)


def test_times_read_with_their_zone() -> None:
    assert readable_time(datetime(2026, 12, 4, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-12-04 01:04:05 UTC"
    )
    assert readable_time(datetime(2026, 12, 4, 3, 4, 5)) == "2026-12-04 03:04:05 UTC"
    assert explanation(_deploy_without_evidence()).decided_at.endswith(" UTC")


def _denied() -> Decision:
    return run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge", evidence(pr=pull_request()),
               pull_request=12)  # fmt: skip


@pytest.mark.parametrize(
    ("update", "verdict", "title", "icon"),
    [
        pytest.param({"allowed": True, "would_deny": True}, "Would deny (audit mode)",
                     "Would deny (audit mode): needs 1 independent human approval", "⚠️", id="audit-mode"),
        pytest.param({"allowed": True, "break_glass": "bg_1"}, "Allowed by break-glass",
                     "Allowed by break-glass bg_1; otherwise denied: needs 1", "⚠️", id="break-glass"),
        pytest.param({}, "Blocked", "Blocked: agent change needs an independent human approval", "⛔", id="denied"),
    ],
)  # fmt: skip
def test_the_title_says_what_happened(update: dict[str, object], verdict: str, title: str, icon: str) -> None:
    e = explanation(_denied().model_copy(update=update))
    assert e.verdict == verdict and e.title.startswith(title)
    assert to_markdown(e).startswith(f"## {icon} {title}")


def test_an_allowed_decision_is_still_plainly_allowed() -> None:
    ok = run(POLICIES, agent_identity(event_name="workflow_dispatch"), "merge",
             evidence(pr=pull_request(), reviews=[review(BOB)]), pull_request=12)  # fmt: skip
    e = explanation(ok)
    assert (e.verdict, e.title) == ("Allowed", "Allowed: merge by rule merge")
    assert all(c.state == "pass" for c in e.reasons), [c for c in e.reasons if c.state != "pass"]
    assert to_markdown(e).startswith("## ✅ ")


def test_a_check_of_a_reason() -> None:
    assert Check.of(Reason(code="x", ok=False, message="m", checked=False)).state == "fail", (
        "a failure is a failure"
    )
    assert Check.of(Reason(code="x", ok=True, message="m")).state == "pass"
