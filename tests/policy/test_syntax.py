"""YAML syntax errors in words: a tab, a line out of alignment, a colon in a value, with line and column."""

from __future__ import annotations

import pytest
import yaml

from app.policy.syntax import SyntaxProblem, syntax_problem
from tests.policy.builders import problems

OWNER = "version: 1\nowner:\n"

CASES = [
    pytest.param(
        OWNER + "\tlogin: acme\n",
        "p.yml:3:1: a tab character at column 1: YAML indents with spaces only; replace the tab with spaces",
        id="a-tab-indents-a-key",
    ),
    pytest.param(
        OWNER + "  login: acme\n  \tid: 1\n",
        "p.yml:4:3: a tab character at column 3",
        id="a-tab-after-spaces",
    ),
    pytest.param(
        OWNER + "  login: acme\n  id: 1\nrules:\n  - name: r\n\t\n",
        "p.yml:7:1: a tab character at column 1",
        id="a-line-of-only-a-tab",
    ),
    pytest.param(
        OWNER + "  login: acme\n   id: 1\n",
        "p.yml:4:4: bad indentation: the line is indented 3 spaces, expected 2 spaces (like line 3) or 0 spaces "
        "(like line 2); the keys of one mapping, and the entries of one list, line up exactly",
        id="a-key-one-space-too-far",
    ),
    pytest.param(
        OWNER + "  login: acme\n id: 1\n",
        "p.yml:4:2: bad indentation: the line is indented 1 space, expected 2 spaces (like line 3)",
        id="a-key-one-space-short",
    ),
    pytest.param(
        OWNER + "  login: acme\n      id: 1\n",
        "p.yml:4:7: bad indentation: the line is indented 6 spaces",
        id="a-key-under-a-value",
    ),
    pytest.param(
        OWNER + "  login: acme\n  id: 1\nrules:\n  - name: r\n    # a comment\n\n   actions: [read]\n",
        "p.yml:9:4: bad indentation: the line is indented 3 spaces, expected 4 spaces (like line 6) or 2 spaces "
        "(like line 6) or 0 spaces (like line 5)",
        id="a-rule-key-out-of-line-past-a-comment",
    ),
    pytest.param(
        OWNER + "  login: acme\n  - id: 1\n",
        "p.yml:4:3: a list entry ('- ') among the keys of a mapping",
        id="a-list-entry-among-keys",
    ),
    pytest.param(
        OWNER + "  login: acme: inc\n",
        "p.yml:3:14: a ': ' inside a value at column 14: write the value in quotes",
        id="a-colon-in-a-value",
    ),
    pytest.param(
        "version: 1\nrules: [\n",
        "p.yml:3:1: YAML syntax error at column 1: while parsing a flow node did not find expected node content",
        id="anything-else-keeps-the-parsers-words",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_syntax_errors_say_what_and_where(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_an_error_without_a_place_keeps_the_parsers_words() -> None:
    exc = yaml.MarkedYAMLError(context="while reading", problem="something odd")
    assert syntax_problem(exc, "") == SyntaxProblem(
        None, None, "YAML syntax error: while reading something odd"
    )
