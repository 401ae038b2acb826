"""Does a merge group's commit introduce exactly the approved changes of its pull requests? Pure.

GitHub builds a merge group's commit from its base and the queued pull requests; the gate judges
each pull request on its current head, and this module compares what the group's commit changes
against its base (the compare API's files) with what each pull request's judged head changes (its
files): every file the group changes must be changed by exactly one of its pull requests, with that
pull request's change, either

- the same content: the file's blob at the group's commit is the blob at the pull request's head
  (GitHub's ``sha`` of a diff entry), or
- the same added and removed lines as the pull request's diff, for a file the base moved elsewhere
  meanwhile (an ordinary queue behind a moving main);

and every file a pull request changes must be in the group. Anything else is a :class:`Finding`
that names the file and the pull request. Two pull requests changing the same file fail unless the
policy allows it (``merge_queue.allow_overlapping_changes``): their merged result was never
reviewed; allowed, the group's lines must be the sum of theirs.

:func:`apply_group` is the pipeline's ``merge-group`` overlay (app/gate/overlays.py): it adds the
findings to a pull request's decision as reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from app.decide.agent_free import is_agent_free_pass
from app.decide.decision import Decision, Reason

GROUP_REASON = "merge-group"
# GitHub lists at most this many files of a comparison, and of a pull request.
COMPARE_FILES_LIMIT = 300
PULL_FILES_LIMIT = 3000

ChangedLines = Counter[tuple[str, str]]


@dataclass(frozen=True)
class FileChange:
    """One changed file, as GitHub's ``diff-entry`` (compare API, pull request files) shows it."""

    filename: str
    status: str  # added, removed, modified, renamed, copied, changed, unchanged
    sha: str | None  # the file's blob at the compared head
    patch: str | None = None  # absent for a binary file or a diff too large to show
    previous_filename: str | None = None  # a renamed file's former path


@dataclass(frozen=True)
class PullChanges:
    """The files pull request ``number`` changes at its judged head."""

    number: int
    files: tuple[FileChange, ...]


@dataclass(frozen=True)
class Finding:
    """Something in the group that is not exactly the approved changes, said for a person."""

    code: str  # unapproved-file, other-content, missing-change, overlap, too-many-files
    message: str
    pull_request: int | None = None


def changed_lines(patch: str) -> ChangedLines:
    """The added (``+``) and removed (``-``) lines of a unified diff's hunks, counted: what a change
    does, whatever the line numbers and context around it."""
    lines: ChangedLines = Counter()
    in_hunk = False
    for line in patch.splitlines():
        if line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line[:1] in ("+", "-"):
            lines[(line[0], line[1:])] += 1
    return lines


def compare_group(
    group: Sequence[FileChange], pulls: Sequence[PullChanges], *, allow_overlap: bool = False
) -> list[Finding]:
    """What in the group's changes (``group``: its commit against its base) is not exactly the
    approved changes of its pull requests (``pulls``, at their judged heads); empty when it is."""
    findings: list[Finding] = []
    if len(group) >= COMPARE_FILES_LIMIT:
        findings.append(
            Finding(
                "too-many-files",
                f"the group changes {COMPARE_FILES_LIMIT} files or more, and GitHub lists at most "
                f"{COMPARE_FILES_LIMIT} of a comparison: not every change can be checked",
            )
        )
    for pull in pulls:
        if len(pull.files) >= PULL_FILES_LIMIT:
            findings.append(
                Finding(
                    "too-many-files",
                    f"#{pull.number} changes {PULL_FILES_LIMIT} files or more, and GitHub lists at most "
                    f"{PULL_FILES_LIMIT}: not every change can be checked",
                    pull.number,
                )
            )
    owners: dict[str, list[tuple[int, FileChange]]] = {}
    for pull in pulls:
        for change in pull.files:
            owners.setdefault(change.filename, []).append((pull.number, change))
    in_group = {change.filename for change in group}
    for change in group:
        findings.extend(_judge_file(change, owners.get(change.filename, []), allow_overlap))
    for pull in pulls:
        for change in pull.files:
            if change.filename not in in_group:
                findings.append(
                    Finding(
                        "missing-change",
                        f"#{pull.number} changes {change.filename}, but the group's commit does not: "
                        "it is not the approved change",
                        pull.number,
                    )
                )
    return findings


def _judge_file(
    change: FileChange, owners: list[tuple[int, FileChange]], allow_overlap: bool
) -> list[Finding]:
    name = change.filename
    if not owners:
        return [
            Finding(
                "unapproved-file",
                f"{name} is {change.status} in the group's commit, but no pull request of the group changes it",
            )
        ]
    if len(owners) > 1:
        numbers = " and ".join(f"#{n}" for n, _ in owners)
        if not allow_overlap:
            return [
                Finding(
                    "overlap",
                    f"{name} is changed by {numbers}: their merged result was never reviewed (a policy "
                    "may allow it with merge_queue.allow_overlapping_changes)",
                )
            ]
        lines = _lines_of(change)
        if lines is not None and lines == _sum_lines(owners):
            return []
        return [
            Finding(
                "other-content",
                f"{name} in the group's commit is not the added and removed lines of {numbers} together",
            )
        ]
    number, approved = owners[0]
    if _same_change(change, approved):
        return []
    return [
        Finding(
            "other-content",
            f"{name} in the group's commit is neither the content of #{number}'s judged head nor the "
            f"added and removed lines of its diff",
            number,
        )
    ]


def _same_change(group: FileChange, approved: FileChange) -> bool:
    if (group.status == "removed") != (approved.status == "removed"):
        return False
    if group.previous_filename != approved.previous_filename:
        return False  # renamed from elsewhere (or only in one of them)
    if group.status == "removed":
        return True
    if group.sha is not None and group.sha == approved.sha:
        return True  # the same content as the judged head
    lines = _lines_of(group)
    return lines is not None and lines == _lines_of(approved)  # the base moved elsewhere in the file


def _lines_of(change: FileChange) -> ChangedLines | None:
    return changed_lines(change.patch) if change.patch is not None else None


def _sum_lines(owners: list[tuple[int, FileChange]]) -> ChangedLines | None:
    total: ChangedLines = Counter()
    for _, change in owners:
        lines = _lines_of(change)
        if lines is None:
            return None
        total += lines
    return total


def apply_group(decision: Decision, findings: Sequence[Finding], group_sha: str) -> Decision:
    """``decision`` (a pull request judged for its merge group) with the group's comparison as its
    reasons: one that holds when the group's commit is exactly the approved changes, else one failed
    reason per finding, and then the decision is a deny (audit mode does not soften it).

    A pull request with no agent in it (passed by the agent-free overlay) is not failed for sharing
    a file with another pull request of the group: that is for the repository's own review rules,
    and an agent's pull request sharing it fails on its own decision. Everything else fails it too:
    a change in the group that is not the pull requests' own could be an agent's it did not find."""
    short = group_sha[:7]
    if is_agent_free_pass(decision):
        findings = [f for f in findings if f.code != "overlap"]
    if not findings:
        held = Reason(
            code=GROUP_REASON,
            ok=True,
            message=f"the merge group's commit {short} introduces exactly the approved changes",
        )
        return decision.model_copy(update={"reasons": [*decision.reasons, held]})
    failed = [Reason(code=GROUP_REASON, ok=False, message=f.message) for f in findings]
    return decision.model_copy(
        update={
            "allowed": False,
            "would_deny": False,
            "reasons": [*decision.reasons, *failed],
            "remedy": f"the merge group's commit {short} is not exactly the approved changes: remove the pull "
            "requests named from the queue, have their change reviewed as it is, and queue them again",
        }
    )
