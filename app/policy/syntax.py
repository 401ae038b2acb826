"""YAML syntax errors told for the person who wrote the file: a tab, a line out of alignment, a colon
inside a value, each with its line and column, instead of the parser's own words ("found character
that cannot start any token", "mapping values are not allowed in this context").

PyYAML (libyaml) reports where it gave up, not why; the reason is read from the text around that
place. What cannot be recognised keeps the parser's words, with the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class SyntaxProblem:
    line: int | None  # 1-based
    column: int | None  # 1-based
    message: str


def _content_lines(lines: list[str], before: int) -> list[tuple[int, str]]:
    """The lines above ``before`` (0-based) that hold YAML, nearest first: no blanks, no comments."""
    return [
        (n, lines[n])
        for n in range(min(before, len(lines)) - 1, -1, -1)
        if lines[n].strip() and not lines[n].lstrip().startswith("#")
    ]


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _levels(lines: list[str], before: int) -> list[tuple[int, int]]:
    """The indentations a line at ``before`` may line up with: each enclosing block's, nearest first,
    as (spaces, 1-based line); a list entry (``- key: v``) offers its dash's and its key's."""
    levels: list[tuple[int, int]] = []
    limit: int | None = None
    for n, text in _content_lines(lines, before):
        spaces = _indent(text)
        if limit is not None and spaces >= limit:
            continue
        body = text[spaces:]
        inner = spaces
        while body.startswith("- "):  # "- - x", "- name: a": the entry's content starts further in
            inner += 2 + _indent(body[2:])
            body = body[2:].lstrip(" ")
        if inner != spaces and (limit is None or inner < limit):
            levels.append((inner, n + 1))
        levels.append((spaces, n + 1))
        limit = spaces
        if spaces == 0:
            break
    return levels


def _opens_a_block(text: str) -> bool:
    """Whether a line ends where a more indented block may follow (``key:``, ``-``, ``key: |``)."""
    code = text.split(" #", 1)[0].rstrip()
    return code.endswith((":", "-", "|", ">", "|-", ">-", "|+", ">+"))


def _spaces(n: int) -> str:
    return f"{n} space" if n == 1 else f"{n} spaces"


def syntax_problem(exc: yaml.MarkedYAMLError, text: str) -> SyntaxProblem:
    """What is wrong at the place PyYAML gave up, in words; the line and column are 1-based."""
    mark = exc.problem_mark or exc.context_mark
    raw = " ".join(part for part in (exc.context, exc.problem) if part)
    if mark is None:
        return SyntaxProblem(None, None, f"YAML syntax error: {raw}")
    lines = text.splitlines()
    here = lines[mark.line] if mark.line < len(lines) else ""
    line = mark.line + 1
    lead = here[: len(here) - len(here.lstrip(" \t"))]
    if "\t" in lead or here[mark.column : mark.column + 1] == "\t":
        column = (lead.index("\t") if "\t" in lead else mark.column) + 1
        return SyntaxProblem(
            line,
            column,
            f"a tab character at column {column}: YAML indents with spaces only; replace the tab with spaces",
        )
    spaces = _indent(here)
    levels = _levels(lines, mark.line)
    above = _content_lines(lines, mark.line)
    if here.strip() and levels and spaces not in {s for s, _ in levels}:
        child_of_above = above and spaces > _indent(above[0][1]) and _opens_a_block(above[0][1])
        if not child_of_above:
            nearest: dict[int, int] = {}
            for s, n in levels:
                nearest.setdefault(s, n)
            expected = " or ".join(
                f"{_spaces(s)} (like line {n})" for s, n in sorted(nearest.items(), reverse=True)
            )
            return SyntaxProblem(
                line,
                spaces + 1,
                f"bad indentation: the line is indented {_spaces(spaces)}, expected {expected}; the keys of "
                "one mapping, and the entries of one list, line up exactly",
            )
    if exc.problem == "did not find expected key" and here.lstrip(" ").startswith("-"):
        return SyntaxProblem(
            line,
            spaces + 1,
            "a list entry ('- ') among the keys of a mapping: indent the list under its key, or write "
            "key: value here",
        )
    if (
        exc.problem == "mapping values are not allowed in this context"
        and here[mark.column : mark.column + 1] == ":"
    ):
        return SyntaxProblem(
            line,
            mark.column + 1,
            f"a ': ' inside a value at column {mark.column + 1}: write the value in quotes",
        )
    return SyntaxProblem(line, mark.column + 1, f"YAML syntax error at column {mark.column + 1}: {raw}")
