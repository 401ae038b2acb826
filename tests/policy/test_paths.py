"""Path patterns: matched against the whole path from the repository's root, * within a segment,
** for whole segments; a pattern that is none is refused when the policy loads, naming it."""

from __future__ import annotations

import pytest

from app.errors import PolicyError
from app.policy.loader import parse_policy_text
from app.policy.paths import compile_glob, matching, shown

CASES = [
    pytest.param(".github/workflows/**", ".github/workflows/ci.yml", True, id="everything-under-a-folder"),
    pytest.param(".github/workflows/**", ".github/workflows/sub/x.yml", True, id="at-any-depth-under-it"),
    pytest.param(".github/workflows/**", ".github/workflows", False, id="not-the-folder-itself"),
    pytest.param(".github/workflows/**", "src/.github/workflows/ci.yml", False, id="anchored-at-the-root"),
    pytest.param("AGENTS.md", "AGENTS.md", True, id="a-root-file"),
    pytest.param("AGENTS.md", "docs/AGENTS.md", False, id="a-bare-name-is-the-roots-only"),
    pytest.param("**/AGENTS.md", "docs/AGENTS.md", True, id="double-star-slash-at-any-depth"),
    pytest.param("**/AGENTS.md", "AGENTS.md", True, id="double-star-slash-includes-the-root"),
    pytest.param("**/CODEOWNERS", ".github/CODEOWNERS", True, id="codeowners-where-github-reads-it"),
    pytest.param("docs/**/*.md", "docs/a/b/c.md", True, id="double-star-between-segments"),
    pytest.param("docs/**/*.md", "docs/c.md", True, id="double-star-between-matches-no-segment"),
    pytest.param("*.yml", "ci.yml", True, id="star-in-a-segment"),
    pytest.param("*.yml", "a/ci.yml", False, id="star-never-crosses-a-slash"),
    pytest.param("?.md", "a.md", True, id="question-mark-one-character"),
    pytest.param("claude.md", "CLAUDE.md", False, id="case-sensitive-like-git"),
    pytest.param(".mcp.json", "xmcpxjson", False, id="dots-are-literal"),
    pytest.param("a+b(c)", "a+b(c)", True, id="regex-characters-are-literal"),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(path)) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        pytest.param("/AGENTS.md", "relative to the repository's root", id="leading-slash"),
        pytest.param(".github/", "relative to the repository's root", id="trailing-slash"),
        pytest.param("a//b", "relative to the repository's root", id="empty-segment"),
        pytest.param("../x", ". and .. are not path segments", id="parent-segment"),
        pytest.param("a**b", "** stands for whole path segments only", id="double-star-inside-a-segment"),
    ],
)
def test_a_pattern_that_is_none_is_refused_when_the_policy_loads(pattern: str, message: str) -> None:
    text = f"""
version: 1
owner: {{login: acme, id: 1}}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    paths: [{pattern!r}]
"""
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, "p.yml")
    assert message in str(info.value.details[0].description) or message in info.value.message


def test_matching_keeps_the_files_order_and_shown_counts_the_rest() -> None:
    files = ["b/AGENTS.md", "src/x.py", "AGENTS.md"]
    assert matching(["**/AGENTS.md"], files) == ["b/AGENTS.md", "AGENTS.md"]
    assert shown([f"f{i}" for i in range(7)]) == "f0, f1, f2, f3, f4 and 2 more"


def test_policy_check_warns_about_paths_on_a_read_rule() -> None:
    from app.policy.lint import lint

    text = """
version: 1
owner: {login: acme, id: 1}
rules:
  - name: read-workflows
    actions: [read]
    repositories: "*"
    paths: [".github/workflows/**"]
"""
    [warning] = lint(parse_policy_text(text, "p.yml"))
    assert "names paths, but a read decision reads no files" in warning.message
