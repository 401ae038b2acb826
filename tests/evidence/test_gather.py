"""Evidence gathering, end to end: GitHubEvidence -> the real client -> the fake GitHub over HTTP."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.decide.decision import DecisionRequest
from app.errors import GateError, GitHubError, InvalidRequest
from app.evidence.gather import GitHubEvidence
from app.evidence.model import Account, Evidence, EvidenceNeeds, Standing
from app.evidence.offline import APP_NOT_CONFIGURED, FileEvidence, NoEvidence
from app.github.client import GitHubClient
from tests.builders import identity
from tests.fake_github import (
    PR,
    ApprovalSpec,
    Commit,
    Failure,
    Person,
    ReviewSpec,
    Scenario,
    start_fake_github,
)
from tests.github.conftest import (
    ALICE,
    BOB,
    CAROL,
    COPILOT,
    DAVE,
    DEPENDABOT,
    HEAD,
    MERGE,
    OLD,
    WEB_FLOW,
    base_scenario,
    github_settings,
)

MERGE_PR = DecisionRequest(action="merge", pull_request=12)
NEEDS = EvidenceNeeds()
DEPLOY = DecisionRequest(action="deploy", environment="production")
DEPLOY_NEEDS = EvidenceNeeds(teams=["release-managers"], environment="production")


class Gatherer:
    """A GitHubEvidence over HTTP to a fake GitHub serving ``scenario``."""

    def __init__(self, scenario: Scenario, **client: Any) -> None:
        self.scenario = scenario
        url, self.server = start_fake_github(scenario)
        self.client = GitHubClient(github_settings(url, **client))
        self.source = GitHubEvidence(self.client)

    def __call__(
        self, request: DecisionRequest = MERGE_PR, needs: EvidenceNeeds = NEEDS, **claims: Any
    ) -> Evidence:
        return self.source.gather(identity(**{"run_id": "9000", **claims}), request, needs)


@pytest.fixture
def gatherer():
    started: list[Gatherer] = []

    def make(scenario: Scenario | None = None, **client: Any) -> Gatherer:
        g = Gatherer(scenario or base_scenario(), **client)
        started.append(g)
        return g

    yield make
    for g in started:
        g.server.close()


def reviewed(*reviews: tuple[Person, str, str]) -> Scenario:
    s = base_scenario()
    s.prs[12].reviews = [ReviewSpec(who, state, commit) for who, state, commit in reviews]
    return s


def account(p: Person) -> Account:
    return Account(login=p.login, id=p.id, type=p.type)


# --- the change -------------------------------------------------------------------------------------


def test_a_copilot_pr_is_read_with_its_requester_as_co_author(gatherer):
    evidence = gatherer(reviewed((BOB, "APPROVED", HEAD)))()
    pr = evidence.pull_request
    assert evidence.source == "github" and pr is not None
    assert (pr.number, pr.author, pr.head_sha, pr.head_ref, pr.base_ref) == (
        12,
        account(COPILOT),
        HEAD,
        "copilot/fix-thing",
        "main",
    )
    assert (pr.state, pr.merged, pr.draft) == ("open", False, False)
    [commit] = pr.commits
    assert commit.author == commit.committer == account(COPILOT)
    assert commit.author_email == "198982749+Copilot@users.noreply.github.com"
    assert commit.message.endswith("Co-authored-by: alice <1001+alice@users.noreply.github.com>"), (
        "the full message: the engine reads the trailers"
    )
    assert pr.last_pusher == account(COPILOT)
    assert commit.committed_at == datetime(2011, 4, 14, 16, 0, 49, tzinfo=UTC), "GitHub's committer date"
    assert evidence.run is not None
    assert (evidence.run.triggering_actor, evidence.run.actor) == (account(ALICE), account(ALICE))
    assert (evidence.run.head_sha, evidence.run.event) == (HEAD, "workflow_dispatch")


def pr_at(number: int, head: str, **fields: Any) -> PR:
    return PR(number=number, author=ALICE, head_sha=head, commits=[Commit(sha=head, author=ALICE)], **fields)


@pytest.mark.parametrize(
    ("prs", "request_", "sha", "found"),
    [
        ({12: pr_at(12, HEAD)}, MERGE_PR, HEAD, 12),
        ({12: pr_at(12, HEAD)}, DecisionRequest(action="merge"), HEAD, 12),
        (
            {
                7: pr_at(7, OLD, state="closed", merged=True, merge_commit_sha=MERGE),
                8: pr_at(8, MERGE),  # an open PR that happens to contain the merge commit
            },
            DEPLOY,
            MERGE,
            7,
        ),
        ({5: pr_at(5, HEAD, state="closed"), 6: pr_at(6, HEAD)}, DecisionRequest(action="merge"), HEAD, 6),
        ({}, DEPLOY, HEAD, None),
    ],
    ids=[
        "named-in-the-request",
        "the-pr-whose-head-the-commit-is",
        "deploy-of-a-merge-commit-on-main",
        "an-open-pr-before-a-closed-one",
        "a-commit-without-a-pr",
    ],
)
def test_the_change_is_the_pr_named_or_the_one_the_commit_belongs_to(gatherer, prs, request_, sha, found):
    s = base_scenario()
    s.prs = prs
    g = gatherer(s)
    evidence = g(request_, EvidenceNeeds(environment=request_.environment), sha=sha)
    assert (evidence.pull_request.number if evidence.pull_request else None) == found
    if request_.pull_request is None:
        assert g.scenario.count(rf"/commits/{sha}/pulls$") == 1
        assert g.scenario.count(r"/pulls/\d+$") == 0, "the list's pull-request-simple is enough"
    if found == 7:
        assert evidence.pull_request.merged and evidence.pull_request.head_sha == OLD


def test_an_empty_repository_has_no_change(gatherer):
    evidence = gatherer(Scenario(empty_repository=True, runs=base_scenario().runs))(DEPLOY, DEPLOY_NEEDS)
    assert evidence.pull_request is None and evidence.reviews == []


@pytest.mark.parametrize(
    ("scenario", "request_", "code", "message"),
    [
        (
            base_scenario(),
            DecisionRequest(action="merge", pull_request=99),
            "unknown-pull-request",
            "#99 was not found",
        ),
        (
            Scenario(unknown_commits={"e" * 40}, runs=base_scenario().runs),
            DecisionRequest(action="merge", sha="e" * 40),
            "unknown-commit",
            "commit eeeeeee was not found in octo-org/octo-repo",
        ),
    ],
    ids=["unknown-pull-request", "unknown-commit"],
)
def test_a_change_that_does_not_exist_is_the_callers_mistake(gatherer, scenario, request_, code, message):
    with pytest.raises(InvalidRequest, match=message) as caught:
        gatherer(scenario)(request_)
    assert caught.value.code == code and caught.value.status == 400


@pytest.mark.parametrize(
    ("author", "committer", "pusher"),
    [
        (ALICE, BOB, BOB),
        (ALICE, WEB_FLOW, ALICE),
        (ALICE, None, ALICE),
    ],
    ids=["the-committer", "web-flow-commits-for-the-author", "unlinked-committer-falls-back-to-the-author"],
)
def test_the_last_pusher_is_the_heads_committer_unless_github_committed_it(
    gatherer, author, committer, pusher
):
    s = base_scenario()
    s.prs[12].commits = [
        Commit(sha=OLD, author=DAVE, committer=DAVE),
        Commit(sha=HEAD, author=author, committer=committer),
    ]
    pr = gatherer(s)().pull_request
    assert pr is not None and pr.last_pusher == account(pusher)
    assert [c.sha for c in pr.commits] == [OLD, HEAD]
    assert pr.commits[1].committer == (account(committer) if committer else None)


def test_a_pr_of_more_than_250_commits_is_refused_rather_than_read_in_part(gatherer):
    s = base_scenario()
    s.prs[12].commits = [Commit(sha=f"{i:040x}", author=ALICE) for i in range(260)]
    with pytest.raises(GitHubError, match="has 260 commits but GitHub lists at most 250") as caught:
        gatherer(s)()
    assert caught.value.code == "github-change-too-large"


def test_a_pr_of_exactly_250_commits_is_read_whole(gatherer):
    s = base_scenario()
    s.prs[12].commits = [Commit(sha=f"{i:040x}", author=ALICE) for i in range(249)] + [Commit(sha=HEAD)]
    pr = gatherer(s)().pull_request
    assert pr is not None and len(pr.commits) == 250


# --- approvals and approvers ------------------------------------------------------------------------


def test_every_review_is_kept_across_pages(gatherer):
    many = [(Person(f"reviewer{i}", 5000 + i), "COMMENTED", HEAD) for i in range(230)]
    g = gatherer(reviewed(*many, (BOB, "APPROVED", OLD), (BOB, "CHANGES_REQUESTED", HEAD)))
    evidence = g()
    assert len(evidence.reviews) == 232
    assert [(r.reviewer.login, r.state, r.commit_id) for r in evidence.reviews[-2:]] == [
        ("bob", "APPROVED", OLD),
        ("bob", "CHANGES_REQUESTED", HEAD),
    ]
    assert g.scenario.count(r"/pulls/12/reviews$") == 3, "100 a page"
    assert list(evidence.standings) == ["bob"], "only someone who approved has a standing to check"


def test_a_review_added_after_a_full_page_is_not_missed(gatherer):
    # An ETag covers a page's body, not its Link header: page 1 of exactly 100 reviews is unchanged
    # (304) when a 101st arrives, yet now has a next page. A later change of heart must be seen.
    g = gatherer(
        reviewed(
            *[(Person(f"reviewer{i}", 5000 + i), "COMMENTED", HEAD) for i in range(99)],
            (BOB, "APPROVED", HEAD),
        )
    )
    assert len(g().reviews) == 100
    g.scenario.prs[12].reviews.append(ReviewSpec(BOB, "CHANGES_REQUESTED", HEAD))
    assert [r.state for r in g().reviews[-2:]] == ["APPROVED", "CHANGES_REQUESTED"]


def test_standings_record_permission_and_active_team_membership(gatherer):
    s = reviewed(
        (BOB, "APPROVED", HEAD),
        (CAROL, "APPROVED", HEAD),
        (DAVE, "APPROVED", HEAD),
        (DEPENDABOT, "APPROVED", HEAD),
        (ALICE, "COMMENTED", HEAD),
    )
    s.permissions["dave"] = "maintain"
    s.pending_teams = {"release-managers": {"dave"}}
    g = gatherer(s)
    evidence = g(MERGE_PR, EvidenceNeeds(teams=["release-managers", "security"]))
    assert evidence.standings == {
        "bob": Standing(permission="write", teams=["release-managers"]),
        "carol": Standing(permission="read", teams=["release-managers"]),
        "dave": Standing(permission="maintain", teams=[]),  # invited, not yet active
        "dependabot[bot]": Standing(permission=None, teams=[]),  # bots have no standing
    }
    asked = g.scenario.paths()
    assert not any("dependabot" in p or "/alice" in p for p in asked), "no call for a bot or a non-approver"


def test_environment_approvals_are_read_only_for_a_deployment(gatherer):
    s = base_scenario()
    s.runs[9000].approvals = [
        ApprovalSpec(BOB, "approved", ["production", "staging"], comment="ship it"),
        ApprovalSpec(CAROL, "rejected", ["production"]),
    ]
    g = gatherer(s)
    assert g(MERGE_PR, NEEDS).environment_approvals == []
    assert g.scenario.count(r"/approvals$") == 0
    evidence = g(DEPLOY, DEPLOY_NEEDS)
    assert [
        (a.approver.login, a.state, a.environments, a.comment) for a in evidence.environment_approvals
    ] == [
        ("bob", "approved", ["production", "staging"], "ship it"),
        ("carol", "rejected", ["production"], ""),
    ]
    assert set(evidence.standings) == {"bob"}


def test_a_workload_without_a_run_reads_no_run(gatherer):
    g = gatherer()
    evidence = g(run_id="0")
    assert evidence.run is None and g.scenario.count(r"/actions/runs/") == 0


# --- cost --------------------------------------------------------------------------------------------


def test_calls_cold_and_warm_for_a_merge(gatherer):
    g = gatherer(reviewed((BOB, "APPROVED", HEAD)))
    cold = g()
    # installation, token, run, PR, commits, reviews, bob's permission
    assert cold.github_api_calls == 7
    before = g.client.not_modified
    warm = g()
    # run, PR, commits, reviews: conditional, answered 304 (free of rate limit); the rest is cached
    assert warm.github_api_calls == 4 and g.client.not_modified - before == 4
    assert warm.model_copy(update={"github_api_calls": 7}) == cold, "the 304s served the same facts"


def test_calls_cold_and_warm_for_a_deployment_with_a_team(gatherer):
    s = base_scenario()
    s.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    s.runs[9000].approvals = [ApprovalSpec(DAVE, "approved", ["production"])]
    g = gatherer(s)
    cold = g(DEPLOY, DEPLOY_NEEDS)
    # installation, token, run, PRs of the commit, commits, reviews, approvals,
    # bob's and dave's permission and team membership
    assert cold.github_api_calls == 11
    assert g(DEPLOY, DEPLOY_NEEDS).github_api_calls == 5


def test_a_transient_server_error_is_retried_and_counted(gatherer):
    s = reviewed((BOB, "APPROVED", HEAD))
    s.failures.append(Failure.server_error(r"/pulls/12/reviews$", status=502, times=1))
    evidence = gatherer(s)()
    assert len(evidence.reviews) == 1
    assert evidence.github_api_calls == 8, "the retry was a request too"


def _in_flight_together(s: Scenario, *paths: str) -> bool:
    """Whether the requests for ``paths`` (regexes, one request each) were all in flight at once."""
    found = [next(r for r in s.requests if re.search(p, r["path"])) for p in paths]
    return max(r["started"] for r in found) < min(r["finished"] for r in found)


def _after(s: Scenario, later: str, earlier: str) -> bool:
    first = next(r for r in s.requests if re.search(earlier, r["path"]))
    return next(r for r in s.requests if re.search(later, r["path"]))["started"] >= first["finished"]


def test_independent_calls_are_in_flight_together(gatherer):
    s = base_scenario()
    s.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    s.runs[9000].approvals = [ApprovalSpec(DAVE, "approved", ["production"])]
    s.delay = 0.1  # every answer: long enough that calls made one after another could not overlap
    g = gatherer(s)
    cold = g(DEPLOY, DEPLOY_NEEDS)
    # After the installation and its token, three steps of one GitHub latency each: the run, the
    # PRs of the commit and the environment approvals; then the PR's commits and reviews; then
    # bob's and dave's standing (each: permission, then team membership).
    assert _in_flight_together(s, r"/actions/runs/9000$", r"/commits/[0-9a-f]+/pulls$", r"/approvals$")
    assert _in_flight_together(s, r"/pulls/12/commits$", r"/pulls/12/reviews$")
    assert _after(s, r"/pulls/12/commits$", r"/commits/[0-9a-f]+/pulls$"), "the PR is known first"
    assert _in_flight_together(s, r"/collaborators/bob/permission$", r"/collaborators/dave/permission$")
    assert _after(s, r"/collaborators/bob/permission$", r"/pulls/12/reviews$"), "approvers are known first"
    assert _after(s, r"/collaborators/dave/permission$", r"/approvals$")
    assert cold.github_api_calls == 11 == len(s.requests), "the pool's calls count toward the decision"
    s.delay = 0
    warm = g(DEPLOY, DEPLOY_NEEDS)
    assert warm.model_copy(update={"github_api_calls": 11}) == cold, "the same facts, whatever the order"


def test_a_named_pr_is_read_with_its_commits_and_reviews_in_one_step(gatherer):
    s = reviewed((BOB, "APPROVED", HEAD))
    g = gatherer(s)
    g()  # cold: the installation, its token and bob's standing are cached from now on
    s.requests.clear()
    s.delay = 0.1
    warm = g()
    assert _in_flight_together(
        s, r"/actions/runs/9000$", r"/pulls/12$", r"/pulls/12/commits$", r"/pulls/12/reviews$"
    ), "one GitHub latency for a warm merge, not four"
    assert warm.github_api_calls == 4 == len(s.requests)


def test_when_concurrent_calls_fail_the_first_in_order_is_raised(gatherer):
    s = reviewed((BOB, "APPROVED", HEAD))
    s.failures.append(Failure(r"/pulls/12$", 403, message="Resource not accessible by integration"))
    s.failures.append(Failure.server_error(r"/actions/runs/9000$", status=502))
    with pytest.raises(GitHubError, match=r"GitHub answered 502 while reading workflow run 9000"):
        gatherer(s)()


# --- failing closed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (
            Failure.server_error(r"/pulls/12/reviews$"),
            "github-unavailable",
            r"GitHub answered 500 while listing the reviews of PR #12 of octo-org/octo-repo \(after 3 attempts\)",
        ),
        (
            Failure.secondary_rate_limit(r"/pulls/12/commits$"),
            "github-rate-limited",
            "rate limit was reached .* retry after 60 s",
        ),
        (
            Failure.primary_rate_limit(r"/actions/runs/9000$", reset=4_000_000_000, status=429),
            "github-rate-limited",
            "rate limit was reached",
        ),
        (
            Failure.slow(r"/collaborators/bob/permission$", 1.0),
            "github-unavailable",
            r"did not answer in time \(0.2 s\) while reading @bob's permission",
        ),
        (
            Failure(r"/pulls/12$", 403, message="Resource not accessible by integration"),
            "github-forbidden",
            "Resource not accessible by integration",
        ),
    ],
    ids=["server-error", "secondary-rate-limit", "primary-rate-limit", "timeout", "missing-permission"],
)
def test_any_github_failure_is_a_503_never_partial_evidence(gatherer, failure, code, message):
    s = reviewed((BOB, "APPROVED", HEAD))
    s.failures.append(failure)
    with pytest.raises(GitHubError, match=message) as caught:
        gatherer(s, timeout=0.2)()
    assert caught.value.code == code and caught.value.status == 503
    if code == "github-rate-limited":
        assert int(caught.value.headers["Retry-After"]) > 0


# --- without GitHub ----------------------------------------------------------------------------------


def test_without_the_app_evidence_says_how_to_configure_it():
    evidence = NoEvidence().gather(identity(), MERGE_PR, NEEDS)
    assert evidence.source == "none" and evidence.unavailable_reason == APP_NOT_CONFIGURED
    assert "GATE_GITHUB_APP_ID" in APP_NOT_CONFIGURED and "docs/github-app.md" in APP_NOT_CONFIGURED


def test_gathered_evidence_round_trips_through_a_file_for_explain(gatherer, tmp_path: Path):
    gathered = gatherer(reviewed((BOB, "APPROVED", HEAD)))()
    path = tmp_path / "evidence.json"
    path.write_text(gathered.model_dump_json(indent=2))
    from_file = FileEvidence(path).gather(identity(), MERGE_PR, NEEDS)
    assert from_file == gathered.model_copy(update={"source": "file"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid"),
        ("[]", "expected a JSON object"),
        (json.dumps({"reviews": [{"id": 1}]}), r"reviews\.0\.reviewer: Field required"),
        (json.dumps({"surprise": 1}), "surprise: Extra inputs are not permitted"),
    ],
    ids=["not-json", "not-an-object", "missing-field", "unknown-field"],
)
def test_an_invalid_evidence_file_is_named_with_the_problem(tmp_path: Path, content, message):
    path = tmp_path / "evidence.json"
    path.write_text(content)
    with pytest.raises(GateError, match=message) as caught:
        FileEvidence(path)
    assert caught.value.code == "invalid-evidence" and str(path) in caught.value.message
