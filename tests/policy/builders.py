"""Builders for policy texts: a two-line header, then the body a test cares about.

Line numbers in expectations count the header: the body's first line is line 3.
"""

from __future__ import annotations

import textwrap

import pytest

from app.errors import PolicyError
from app.policy.loader import END_LINE, LoadedPolicy, parse_policy_text

HEADER = "version: 1\nowner: {login: acme, id: 1}\n"
PATH = "p.yml"


def policy_text(body: str = "", *, header: str = HEADER) -> str:
    """A whole policy: the header, ``body``, and the end line (``...``) every policy ends with."""
    return (header + textwrap.dedent(body).lstrip("\n")).rstrip("\n") + f"\n{END_LINE}\n"


def load(body: str = "", *, header: str = HEADER) -> LoadedPolicy:
    return parse_policy_text(policy_text(body, header=header), PATH)


def problems(text: str) -> list[str]:
    """The rendered problems of a policy that must be refused."""
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, PATH)
    return [p.render() for p in info.value.problems]


def rule(body: str, *, name: str = "r") -> str:
    """A one-rule policy body: ``rules:`` on line 3, the rule's ``- name:`` on line 4, ``body`` from line 5."""
    lines = textwrap.dedent(body).strip("\n").splitlines()
    return "rules:\n" + f"  - name: {name}\n" + "".join(f"    {line}\n" for line in lines)
