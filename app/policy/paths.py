"""Path patterns: which files of a change a rule or an approval requirement is about.

A pattern is matched against the whole path of a changed file, from the repository's root, case
sensitively (git paths are), with ``/`` as the only separator:

- ``*`` matches any characters within one path segment (not ``/``), ``?`` exactly one;
- ``**`` as a whole segment matches any number of segments: ``.github/workflows/**`` is every file
  under that folder, ``**/AGENTS.md`` an ``AGENTS.md`` at any depth (the root included),
  ``docs/**/*.md`` a Markdown file anywhere under ``docs/``;
- every other character stands for itself (no character classes, no negation).

So ``CODEOWNERS`` is the root's only; write ``**/CODEOWNERS`` for every place GitHub reads it from.
Patterns are compiled once, when the policy is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field

_MAX_PATTERN = 200


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The anchored regular expression of ``pattern`` (module docstring); raises ValueError when the
    pattern is not one."""
    if not pattern or len(pattern) > _MAX_PATTERN:
        raise ValueError(f"expected a path pattern of 1 to {_MAX_PATTERN} characters")
    if pattern.startswith("/") or pattern.endswith("/") or "//" in pattern:
        raise ValueError(
            f"got {pattern!r}: a path pattern is relative to the repository's root, without a leading or "
            "trailing / (e.g. .github/workflows/**)"
        )
    segments = pattern.split("/")
    if any(s in {".", ".."} for s in segments):
        raise ValueError(f"got {pattern!r}: . and .. are not path segments a change can have")
    out = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out += ".+" if last else "(?:[^/]+/)*"
            continue
        if "**" in segment:
            raise ValueError(f"got {pattern!r}: ** stands for whole path segments only (a/**/b, not a**b)")
        out += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment)
        out += "" if last else "/"
    return re.compile(out)


def _valid(pattern: str) -> str:
    compile_glob(pattern)
    return pattern


PathGlob = Annotated[
    str,
    AfterValidator(_valid),
    Field(
        min_length=1,
        max_length=_MAX_PATTERN,
        description="A path from the repository's root: * within a segment, ** for any segments, "
        "e.g. .github/workflows/** or **/AGENTS.md.",
    ),
]


def matching(patterns: Sequence[str], files: Iterable[str]) -> list[str]:
    """The files that match any of ``patterns``, in their order."""
    compiled = [compile_glob(p) for p in patterns]
    return [f for f in files if any(c.fullmatch(f) for c in compiled)]


def shown(files: Sequence[str], limit: int = 5) -> str:
    """Files for a reason: the first few, and how many more."""
    head = ", ".join(files[:limit])
    return head + (f" and {len(files) - limit} more" if len(files) > limit else "")
