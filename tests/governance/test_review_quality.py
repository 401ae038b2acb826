"""Review-quality signals (OWASP AISVS C14.8.3) in ``agent-gate audit report``: each reviewer's reviews,
approvals, approval rate, and time from the approved commit to the approval, over a period."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.cli import main
from app.decide.explain import duration
from app.governance.history import DecisionRecord
from app.governance.review_quality import ReviewQuality, Thresholds
from app.store.opener import open_store

REPO = {"repository": "octo-org/octo-repo", "repository_id": 2000}


def _approval(login: str, state: str = "APPROVED", commit: str = "a" * 40, after: int | None = 60,
              at: str = "2026-11-23T10:00:00Z", source: str = "review") -> dict[str, Any]:  # fmt: skip
    return {"login": login, "source": source, "state": state, "commit": commit, "counted": True,
            "why": "", "submitted_at": at, "after_commit_seconds": after}  # fmt: skip


def _decision(n: int, *approvals: dict[str, Any], subject: dict[str, Any] = REPO) -> DecisionRecord:
    body = {"decision_id": f"dec_{n}", "subject": subject, "approvals": list(approvals)}
    return DecisionRecord(n, datetime(2026, 11, 23, tzinfo=UTC), "merge-check", body)


def test_a_review_seen_by_many_decisions_counts_once() -> None:
    quality = ReviewQuality()
    for n in range(5):  # the merge check re-decided on every event sees bob's review again
        quality.add(_decision(n, _approval("bob")))
    [bob] = quality.reviewers
    assert (bob.reviews, bob.approvals, bob.after_commit) == (1, 1, [60])


def test_rate_and_times_per_reviewer_most_approvals_first() -> None:
    quality = ReviewQuality()
    quality.add(_decision(1, _approval("bob", after=30, commit="1" * 40), _approval("Carol", after=7200)))
    quality.add(
        _decision(2, _approval("bob", after=45, commit="2" * 40), _approval("carol", "CHANGES_REQUESTED"))
    )
    quality.add(_decision(3, _approval("bob", after=None, commit="3" * 40)))
    quality.add(_decision(4, _approval("dave", "approved", source="environment", after=None, at=None)))  # type: ignore[arg-type]
    assert quality.as_json() == [
        {"login": "bob", "flagged": False, "reviews": 3, "approvals": 3, "approval_rate": 1.0, "median_seconds_after_commit": 37,
         "fastest_seconds_after_commit": 30, "repositories": ["octo-org/octo-repo"]},
        {"login": "Carol", "flagged": False, "reviews": 2, "approvals": 1, "approval_rate": 0.5, "median_seconds_after_commit": 7200,
         "fastest_seconds_after_commit": 7200, "repositories": ["octo-org/octo-repo"]},
        {"login": "dave", "flagged": False, "reviews": 1, "approvals": 1, "approval_rate": 1.0, "median_seconds_after_commit": None,
         "fastest_seconds_after_commit": None, "repositories": ["octo-org/octo-repo"]},
    ]  # fmt: skip
    assert quality.text().splitlines()[1:] == [
        "  @bob: 3/3 approved (100%), median 37 s, fastest 30 s",
        "  @Carol: 1/2 approved (50%), median 2 h, fastest 2 h",
        "  @dave: 1/1 approved (100%), median -, fastest -",
    ]


def test_records_without_approvals_or_with_odd_ones_are_skipped() -> None:
    quality = ReviewQuality()
    quality.add(_decision(1))
    quality.add(_decision(2, {"login": 5}, "not an approval", _approval("bob", after=True)))  # type: ignore[arg-type]
    [bob] = quality.reviewers
    assert bob.after_commit == [], "a bool is no number of seconds"
    assert ReviewQuality().text() == "reviewers: no reviews in the recorded decisions\n"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"), (3660, "1 h 1 min"),
     (86400, "1 d"), (90000, "1 d 1 h")],
)  # fmt: skip
def test_durations_read_as_a_person_says_them(seconds: int | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_audit_report_lists_reviewers_since_a_time(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    store = open_store(url)
    try:
        store.append_audit("merge-check", _decision(1, _approval("bob", after=20)).body)
        store.append_audit("grant-issued", {"jti": "gr_1"})
    finally:
        store.close()
    assert main(["audit", "report", "--database", url, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["login"] for r in report["reviewers"]] == ["bob"] and report["decisions"] == 1
    assert main(["audit", "report", "--database", url]) == 0
    assert "  @bob: 1/1 approved (100%), median 20 s, fastest 20 s" in capsys.readouterr().out
    assert (
        main(["audit", "report", "--database", url, "--since", "2999-01-01T00:00:00Z", "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["reviewers"] == []


def _stamps(login: str, n: int, after: int, approved: int | None = None) -> list[DecisionRecord]:
    approved = n if approved is None else approved
    return [
        _decision(i, _approval(login, "APPROVED" if i < approved else "CHANGES_REQUESTED", commit=f"{i:040d}",
                               after=after))
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("records", "flagged"),
    [
        pytest.param(_stamps("fast", 5, after=30), True, id="five-approvals-in-30-s-each"),
        pytest.param(_stamps("fast", 4, after=30), False, id="too-few-reviews-to-say"),
        pytest.param(_stamps("slow", 5, after=3600), False, id="approves-all-but-takes-time"),
        pytest.param(_stamps("picky", 10, after=30, approved=8), False, id="approves-80-percent"),
    ],
)
def test_a_rubber_stamp_is_flagged(records: list[DecisionRecord], flagged: bool) -> None:
    quality = ReviewQuality()
    for record in records:
        quality.add(record)
    [reviewer] = quality.as_json()
    assert reviewer["flagged"] is flagged
    assert ("FLAGGED" in quality.text()) is flagged


def test_the_thresholds_are_the_operators() -> None:
    quality = ReviewQuality(Thresholds(rate=0.5, seconds=7200, min_reviews=2))
    for record in _stamps("slow", 2, after=3600):
        quality.add(record)
    assert quality.as_json()[0]["flagged"] is True


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--flag-rate", "1.5", "between 0 and 1"), ("--flag-rate", "x", "between 0 and 1"),
     ("--flag-seconds", "0", "at least 1"), ("--flag-min-reviews", "-2", "at least 1")],
)  # fmt: skip
def test_bad_thresholds_are_refused_with_the_expected_form(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "report", "--database", f"sqlite:///{tmp_path / 'gate.db'}", flag, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
