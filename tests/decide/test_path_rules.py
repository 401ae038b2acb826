"""Path-sensitive rules, decided by the pure engine: a rule's ``paths`` condition and its
``approvals.paths`` requirements, the files that triggered them named in the reasons, and a change
whose files are not all known denied (never passed to a laxer rule, never decided as untouched)."""

from __future__ import annotations

from typing import Any

import pytest

from app.decide.decision import DecisionRequest
from app.decide.engine import evidence_needs
from app.evidence.model import ChangedFiles, Evidence, Standing
from tests.builders import (
    ALICE,
    BOB,
    OCTOCAT,
    Account,
    agent_identity,
    commit,
    evidence,
    failed,
    identity,
    policy_set,
    pull_request,
    review,
    run,
)

DAVE = Account(login="dave", id=1004, type="User")  # a second independent writer, in security
POLICY = policy_set(
    """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: workflow-merges
    actions: [merge]
    repositories: "*"
    paths: [.github/workflows/**]
    approvals: {count: 2, teams: [security]}
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals:
      count: 1
      paths:
        - {paths: [AGENTS.md, CLAUDE.md, .github/copilot-instructions.md, .mcp.json], count: 2, teams: [security], agents_only: true}
        - {paths: ["**/CODEOWNERS"], count: 2}
  - name: propose-docs
    actions: [open-pull-request]
    repositories: "*"
    paths: ["docs/**"]
"""
)
STANDINGS = {
    "bob": Standing(permission="write", teams=["security"]),
    "dave": Standing(permission="write", teams=["security"]),
    "octocat": Standing(permission="write", teams=[]),
}
MERGE = {"pull_request": 12}


def _files(*paths: str, complete: bool = True, problem: str | None = None) -> ChangedFiles:
    return ChangedFiles(paths=list(paths), complete=complete, problem=problem)


ERIN = Account(login="erin", id=1005, type="User")  # a person who writes her change herself
PERSONS_PR = pull_request(
    author=ERIN, head_ref="feature", commits=[commit(author=ERIN, email="erin@example.com")]
)


def _ev(files: ChangedFiles | None, *approvers: Account, agent: bool = True) -> Evidence:
    reviews = [review(a, n=i) for i, a in enumerate(approvers, 1)]
    pr = pull_request() if agent else PERSONS_PR
    return evidence(pr=pr, reviews=reviews, standings=STANDINGS, changed_files=files, triggering=ERIN)


def _merge(files: ChangedFiles | None, *approvers: Account, agent: bool = True) -> Any:
    who = (
        agent_identity(event_name="workflow_dispatch") if agent else identity(event_name="workflow_dispatch")
    )
    return run(POLICY, who, "merge", _ev(files, *approvers, agent=agent), **MERGE)


def test_a_rule_that_names_paths_governs_the_changes_that_touch_them() -> None:
    decision = _merge(_files("src/app.py", ".github/workflows/ci.yml"), BOB)
    assert decision.rule == "workflow-merges" and not decision.allowed
    touched = next(r for r in decision.reasons if r.code == "paths")
    assert touched.ok and ".github/workflows/ci.yml" in touched.message
    assert "needs 2 independent human approval(s)" in " ".join(failed(decision))
    assert _merge(_files(".github/workflows/ci.yml"), BOB, DAVE).allowed


def test_a_change_that_touches_none_of_a_rules_paths_goes_to_the_next_rule() -> None:
    decision = _merge(_files("src/app.py"), BOB)
    assert decision.allowed and decision.rule == "merge"
    assert any(
        r.code == "paths" and r.ok and "touches none of AGENTS.md" in r.message for r in decision.reasons
    )


UNKNOWN = [
    pytest.param(_files(complete=False, problem="PR #12 changes 3001 files and GitHub lists at most 3000; split the pull request"), "changes 3001 files and GitHub lists at most 3000", id="truncated-at-3000"),
    pytest.param(_files(complete=False, problem="GitHub answered 403 while listing the files of PR #12"), "GitHub answered 403", id="unreadable"),
    pytest.param(None, "they were not read", id="not-gathered"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "why"), UNKNOWN)
def test_a_change_whose_files_are_not_known_is_denied_saying_why(
    files: ChangedFiles | None, why: str
) -> None:
    decision = _merge(files, BOB, DAVE)
    assert not decision.allowed and decision.rule == "workflow-merges", "never handed to the laxer rule"
    [reason] = failed(decision)
    assert (
        reason.startswith("paths-unknown: paths: the files the change touches are not known")
        and why in reason
    )
    assert "the change's files are needed: act on a pull request" in (decision.remedy or "")


REQUIREMENTS = [
    pytest.param(("AGENTS.md",), (BOB,), True, False, "needs 2 independent approval(s) from @octo-org/security of commit aaaaaaa, has 1", id="agent-instructions-need-two-from-security"),
    pytest.param(("AGENTS.md",), (BOB, DAVE), True, True, "has 2", id="two-from-security-pass"),
    pytest.param(("AGENTS.md",), (BOB, OCTOCAT), True, False, "from @octo-org/security of commit aaaaaaa, has 1", id="an-approver-outside-the-team-does-not-count-for-it"),
    pytest.param(("AGENTS.md",), (BOB,), False, True, None, id="agents-only-leaves-a-persons-change-alone"),
    pytest.param(("docs/CODEOWNERS",), (BOB,), False, False, "the change touches docs/CODEOWNERS (**/CODEOWNERS): needs 2 independent approval(s) of commit", id="codeowners-anywhere-for-everyone"),
]  # fmt: skip


@pytest.mark.parametrize(("paths", "approvers", "agent", "allowed", "message"), REQUIREMENTS)
def test_approval_requirements_by_path(
    paths: tuple[str, ...], approvers: tuple[Account, ...], agent: bool, allowed: bool, message: str | None
) -> None:
    decision = _merge(_files("src/app.py", *paths), *approvers, agent=agent)
    assert decision.allowed is allowed, failed(decision)
    shown = [r.message for r in decision.reasons if r.code == "path-approvals"]
    if message is None:
        assert shown == []
    else:
        assert any(message in m for m in shown), shown
        assert paths[0] in shown[0]
    if not allowed:
        assert "more approval(s) of commit aaaaaaa" in (decision.remedy or "")


REQUIREMENT_ONLY = policy_set(
    """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1, paths: [{paths: [AGENTS.md], count: 2, agents_only: true}]}
"""
)


def test_a_requirement_whose_files_are_unknown_denies_and_a_persons_change_is_not_asked() -> None:
    unknown = _files(
        complete=False, problem="the change has no pull request, so the files it touches are not known"
    )
    who = agent_identity(event_name="workflow_dispatch")
    decision = run(REQUIREMENT_ONLY, who, "merge", _ev(unknown, BOB, DAVE), **MERGE)
    assert failed(decision) == [
        "paths: rule 'merge' asks more approvals for changes to AGENTS.md, but the files the change touches "
        "are not known (the change has no pull request, so the files it touches are not known)"
    ]
    person = identity(event_name="workflow_dispatch")
    assert run(REQUIREMENT_ONLY, person, "merge", _ev(unknown, BOB, agent=False), **MERGE).allowed, (
        "an agents-only requirement never asks a person's change for its files"
    )


def test_a_persons_change_needs_no_approval_but_what_its_paths_call_for() -> None:
    policy = policy_set(
        """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 0, paths: [{paths: [".github/**"], count: 1}]}
"""
    )
    who = identity(event_name="workflow_dispatch")
    plain = run(policy, who, "merge", _ev(_files("src/app.py"), agent=False), **MERGE)
    assert plain.allowed, failed(plain)
    touched = run(policy, who, "merge", _ev(_files(".github/dependabot.yml"), agent=False), **MERGE)
    assert not touched.allowed and "needs 1 independent human approval(s)" in " ".join(failed(touched))


def test_a_propose_rule_with_paths_reads_them() -> None:
    ev = evidence(pr=pull_request(), changed_files=_files("docs/index.md"))
    assert run(POLICY, agent_identity(), "open-pull-request", ev).allowed
    ev = evidence(pr=pull_request(), changed_files=_files("src/app.py"))
    assert "paths: paths: the change touches none of docs/**" in failed(
        run(POLICY, agent_identity(), "open-pull-request", ev)
    )


@pytest.mark.parametrize(
    ("action", "files", "teams"),
    [
        pytest.param("merge", True, ["security"], id="merge-rules-name-paths"),
        pytest.param("open-pull-request", True, [], id="a-propose-rule-names-paths"),
        pytest.param("read", None, None, id="reads-need-nothing"),
    ],
)
def test_the_files_are_gathered_only_when_a_rule_names_paths(
    action: str, files: bool | None, teams: list[str] | None
) -> None:
    needs = evidence_needs(POLICY, identity(), DecisionRequest(action=action))
    if files is None:
        assert needs is None
    else:
        assert needs is not None and (needs.files, needs.teams) == (files, teams)


def test_the_alice_fixture_is_a_requester_not_an_approver() -> None:
    # The requester (a human co-author of the agent's commit) never counts, for paths either.
    decision = _merge(_files("AGENTS.md"), ALICE, BOB)
    assert not decision.allowed
