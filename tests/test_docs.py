"""The documentation renders: every Markdown file of README.md, action/ and docs/ goes through a
CommonMark parser with GitHub's tables (markdown-it-py), and fails on what a reader would see broken
on GitHub: a table row that renders as a paragraph of pipes (a table cut by a stray line), and a
relative link to a file or heading that does not exist."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *REPO.glob("action/**/*.md"), *REPO.glob("docs/**/*.md")])
# A line that looks like a table row: starts and ends with a pipe, with a cell between.
ROW = re.compile(r"^\s*\|.*\|\s*$")
# A file of this repository named in a sentence (a path under one of its top-level folders, or a
# Markdown file such as ``PERFORMANCE.md``), or in a code span (a path under one of its source folders:
# a code span also names files of the repositories the gate governs, ``AGENTS.md``, ``docs/CODEOWNERS``).
TOP = sorted(p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith("."))
SOURCES = [name for name in TOP if name != "docs"]
NAMED = re.compile(rf"(?<![\w/.<-])((?:(?:{'|'.join(TOP)})/[\w./-]*[\w/-])|(?:[\w./-]+\.md))(?![\w/-])")
NAMED_IN_CODE = re.compile(rf"(?<![\w/.<-])((?:{'|'.join(SOURCES)})/[\w./-]*[\w/-])(?![\w/-])")
# An HTML anchor a document may place itself (<a id="..."> or name=).
HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)=["']([^"']+)["']""")


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


@dataclass
class Rendered:
    """What the test reads of one document: its lines, paragraphs' line spans, links and anchors."""

    path: Path
    lines: list[str]
    paragraphs: list[tuple[int, int]] = field(default_factory=list)
    links: list[tuple[int, str]] = field(default_factory=list)  # (line number, href)
    named: list[tuple[int, str]] = field(default_factory=list)  # (line number, a file named in text)
    anchors: set[str] = field(default_factory=set)


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (but - and _), spaces to -."""
    text = unicodedata.normalize("NFC", text).lower()
    kept = "".join(c for c in text if c.isalnum() or c in "-_ " or unicodedata.category(c) == "Mn")
    return kept.replace(" ", "-")


def _plain(inline: Token) -> str:
    """A heading's text as GitHub slugs it: the text of its words and code spans, no markup."""
    return "".join(child.content for child in inline.children or [] if child.type in ("text", "code_inline"))


@cache
def render(path: Path) -> Rendered:
    source = path.read_text("utf-8")
    doc = Rendered(path, source.splitlines())
    tokens = parser().parse(source)
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token.type == "paragraph_open" and token.map:
            doc.paragraphs.append((token.map[0], token.map[1]))
        if token.type == "heading_open":
            slug = github_slug(_plain(tokens[i + 1]))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            doc.anchors.add(slug if count == 0 else f"{slug}-{count}")
        if token.type in ("html_block", "inline"):
            doc.anchors.update(HTML_ANCHOR.findall(token.content))
        if token.type == "inline":
            line = (token.map[0] + 1) if token.map else 0
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    named = NAMED if child.type == "text" else NAMED_IN_CODE
                    doc.named.extend((line, name) for name in named.findall(child.content))
                if child.type == "link_open":
                    doc.links.append((line, str(child.attrs["href"])))
                elif child.type == "image":
                    doc.links.append((line, str(child.attrs["src"])))
    return doc


def _name(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def stray_rows(doc: Rendered) -> list[str]:
    """Lines that look like table rows but render inside a paragraph."""
    return [
        f"{_name(doc.path)}:{n + 1}: {doc.lines[n][:80]}"
        for start, end in doc.paragraphs
        for n in range(start, end)
        if ROW.match(doc.lines[n])
    ]


def broken_links(doc: Rendered) -> list[str]:
    """Relative links whose file does not exist, or whose #anchor is no heading of the target."""
    problems = []
    for line, href in doc.links:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("mailto:"):
            continue  # another site: not checked offline
        target = (doc.path.parent / unquote(parts.path)).resolve() if parts.path else doc.path
        where = f"{_name(doc.path)}:{line}: {href}"
        if not target.exists():
            problems.append(f"{where}: no file {_name(target)}")
        elif (
            parts.fragment
            and target.suffix == ".md"
            and unquote(parts.fragment) not in render(target).anchors
        ):
            problems.append(f"{where}: no heading #{parts.fragment} in {_name(target)}")
    return problems


def missing_files(doc: Rendered) -> list[str]:
    """Files named in the text that exist neither beside the document nor from the repository's root."""
    return [
        f"{_name(doc.path)}:{line}: no file {name}"
        for line, name in doc.named
        if not (doc.path.parent / name).exists() and not (REPO / name).exists()
    ]


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_tables_render_as_tables(path):
    assert stray_rows(render(path)) == []


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_relative_links_resolve(path):
    assert broken_links(render(path)) == []


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_files_named_exist(path):
    assert missing_files(render(path)) == []


# The checks themselves, on documents written to fail them.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("| a | b |\n|---|---|\n| 1 | 2 |\n", [], id="a-whole-table"),
        pytest.param(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\nA half sentence\n| 3 | 4 |\n",
            ["doc.md:6: | 3 | 4 |"],
            id="a-row-after-a-cut",
        ),
        pytest.param("```\n| in | code |\n```\n", [], id="a-row-in-a-code-block"),
        pytest.param("- `a \\| b`, and | c |\n", [], id="pipes-inside-a-sentence"),
    ],
)
def test_a_row_outside_a_table_is_found(tmp_path, text, expected):
    path = tmp_path / "doc.md"
    path.write_text(text, "utf-8")
    assert stray_rows(render(path)) == expected


@pytest.mark.parametrize(
    ("href", "problem"),
    [
        pytest.param("other.md", None, id="an-existing-file"),
        pytest.param("other.md#the-store", None, id="an-existing-heading"),
        pytest.param("other.md#growth-per-decision-1", None, id="a-repeated-heading"),
        pytest.param("#local-heading", None, id="a-heading-here"),
        pytest.param("https://example.com/missing.md", None, id="another-site-not-checked"),
        pytest.param("missing.md", "no file", id="a-missing-file"),
        pytest.param("other.md#nowhere", "no heading #nowhere", id="a-missing-heading"),
        pytest.param("#nowhere", "no heading #nowhere", id="a-missing-heading-here"),
    ],
)
def test_a_broken_link_is_found(tmp_path, href, problem):
    (tmp_path / "other.md").write_text(
        "# Other\n\n## The store\n\n## Growth per decision\n\n## Growth per decision\n", "utf-8"
    )
    path = tmp_path / "doc.md"
    path.write_text(f"## Local `heading`\n\nSee [there]({href}).\n", "utf-8")
    problems = broken_links(render(path))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Measured by `tests/test_docs.py`.", [], id="an-existing-test"),
        pytest.param("See README.md and docs/api.md.", [], id="existing-documents"),
        pytest.param(
            "Measured by `tests/github/test_nowhere.py`.",
            ["tests/github/test_nowhere.py"],
            id="a-missing-test",
        ),
        pytest.param("(PERFORMANCE.md: 4x worse)", ["PERFORMANCE.md"], id="a-missing-document"),
        pytest.param("the ref `octo-org/octo-repo/.github/workflows/deploy.yml`", [], id="not-a-path-here"),
        pytest.param("a governed repository's `AGENTS.md` or `docs/CODEOWNERS`", [], id="a-file-elsewhere"),
        pytest.param("```\nsee tests/nowhere.py\n```\n", [], id="in-a-code-block"),
    ],
)
def test_a_missing_named_file_is_found(tmp_path, text, expected):
    path = tmp_path / "doc.md"
    path.write_text(text + "\n", "utf-8")
    assert [p.rsplit("no file ", 1)[1] for p in missing_files(render(path))] == expected
