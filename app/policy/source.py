"""Policy YAML read into plain data, with the line of every key and value.

The document is built from the YAML event stream (libyaml's C parser when PyYAML has it: several
times faster than the pure-Python one) in one pass that also enforces what a policy needs and PyYAML does not:

- a duplicate key in a mapping is an error (PyYAML silently keeps the last one);
- keys are text: ``on:`` or ``yes:`` (booleans in YAML 1.1) are refused, with the fix;
- an empty value (``refs:`` with nothing after it) is refused: it would silently mean "anything";
- one document, and whether it ends with ``...`` (the loader requires it: a torn file lacks it);
- only the plain YAML types (no ``!!python/...`` or custom tags);
- bounded: at most :data:`MAX_BYTES`, :data:`MAX_DEPTH` levels of nesting and :data:`MAX_VALUES`
  values once aliases are expanded (an "alias bomb" is refused, not expanded).

PyYAML's own composer is not used: the C one recurses without limit and crashes the process on
deeply nested input. Events are read lazily, so a deep document stops at the first level too many.
Flow collections (``[[[...``) are measured before PyYAML sees the text: its scanner reads a flow
collection ahead to the end (any ``[`` may open a key), and whether it then gives up, and with
which message, depends on the PyYAML release (6.0.4 added a limit of its own). The gate's bound and
its message hold whatever the YAML library does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from app.errors import PolicyError, PolicyProblem
from app.policy.syntax import syntax_problem

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 1_048_576
MAX_DEPTH = 32
MAX_VALUES = 100_000

_T = "tag:yaml.org,2002:"
STR, NULL, BOOL, MERGE = _T + "str", _T + "null", _T + "bool", _T + "merge"
_SCALAR_TAGS = {STR, NULL, BOOL, MERGE, _T + "int", _T + "float", _T + "timestamp"}
_TYPE_WORDS = {
    BOOL: "a boolean",
    NULL: "empty",
    _T + "int": "a number",
    _T + "float": "a number",
    _T + "timestamp": "a date",
}
_COLLECTION_TAGS = {_T + "seq", _T + "map"}
# What the flow-depth pre-scan stops at: brackets, quotes, comments and line ends.
_FLOW_MARKS = re.compile(r"[\[\]{}'\"#\n]")
_QUOTE_OPENERS = frozenset(" \t\n[{,:")  # a quote after one of these (or at the start) opens a quoted scalar
# The rest of a quoted scalar after its opening quote: '' escapes a single quote, \ a double one.
_QUOTE_ENDS = {"'": re.compile(r"(?:[^']|'')*'"), '"': re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)}


@dataclass(frozen=True, slots=True)
class Scalar:
    """How a scalar was written: its text, whether it was quoted, and the type YAML gave it."""

    text: str
    quoted: bool
    tag: str

    def type_name(self) -> str:
        return self.tag.removeprefix(_T)


@dataclass(slots=True)
class Position:
    """Where a value was written. For a mapping entry, ``line`` is the line of its key."""

    line: int
    keys: dict[str, Position] | None = None
    items: list[Position] | None = None
    scalar: Scalar | None = None

    def child(self, part: str | int) -> Position | None:
        if self.keys is not None and isinstance(part, str):
            return self.keys.get(part)
        if self.items is not None and isinstance(part, int) and 0 <= part < len(self.items):
            return self.items[part]
        return None

    def at(self, line: int) -> Position:
        return Position(line, self.keys, self.items, self.scalar)


@dataclass(frozen=True)
class Document:
    """The document's data and positions, and the problems found while reading it (their values
    are left out of ``data``)."""

    data: Any
    root: Position
    problems: list[PolicyProblem] = field(default_factory=list)
    # True when the document ends with YAML's end-of-document line ``...``: the loader refuses a
    # policy without it, since a file cut short (a crash mid-write, a truncated copy) may still parse.
    explicit_end: bool = False
    last_line: int = 1


@dataclass
class _Frame:
    line: int
    anchor: str | None
    value: dict[str, Any] | list[Any]
    position: Position
    path: str = ""
    size: int = 1
    # A key waiting for its value: (key, line, is a merge key, drop the value).
    key: tuple[str, int, bool, bool] | None = None
    merges: list[tuple[Any, Position, int]] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, line: int | None, message: str, field: str = "") -> None:
        super().__init__(message)
        self.line, self.message, self.field = line, message, field


def not_text_hint(scalar: Scalar | None) -> str | None:
    """Why a value that looks like text is not text, and the fix (the "Norway problem")."""
    if scalar is None or scalar.quoted or scalar.tag == STR:
        return None
    what = _TYPE_WORDS.get(scalar.tag, scalar.type_name())
    return f"YAML reads an unquoted {scalar.text} as {what}; write '{scalar.text}' in quotes"


def _shown(tag: str | None) -> str:
    return "!!" + tag.removeprefix(_T) if tag and tag.startswith(_T) else str(tag)


class _Reader:
    def __init__(self) -> None:
        self.resolver = Resolver()
        self.constructor = SafeConstructor()
        self.anchors: dict[str, tuple[Any, Position, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.values = 0
        self.root: tuple[Any, Position] | None = None
        self.documents = 0
        # Whether the document was closed by YAML's end-of-document line ``...`` (a torn file is not).
        self.explicit_end = False
        self.problems: list[tuple[int, str, str]] = []
        self.tags: dict[str, str] = {}

    def read(self, text: str) -> tuple[Any, Position] | None:
        # The parser's events, pulled one by one (yaml.parse() wraps this loop in a slower generator).
        parser = _Loader(text)
        try:
            while True:
                event = parser.get_event()  # type: ignore[no-untyped-call]  # untyped in PyYAML's stubs
                if event is None or isinstance(event, yaml.StreamEndEvent):
                    break
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                kind = type(event)
                if kind is yaml.ScalarEvent:
                    self._scalar(event, line)
                elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    self._start(event, line)
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    self._end()
                elif kind is yaml.AliasEvent:
                    self._alias(event, line)
                elif kind is yaml.DocumentEndEvent:
                    self.explicit_end = bool(event.explicit)
                elif kind is yaml.DocumentStartEvent:
                    self.documents += 1
                    if self.documents > 1:
                        raise _Refused(line, "expected one YAML document, found a second one ('---')")
        finally:
            parser.dispose()
        return self.root

    def _count(self, n: int, line: int) -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise _Refused(
                line,
                f"more than {MAX_VALUES} values once YAML aliases are expanded; a policy never needs that many",
            )

    def _scalar(self, event: yaml.ScalarEvent, line: int) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(event.value, event.implicit[0])
        if tag not in _SCALAR_TAGS:
            raise _Refused(
                line,
                f"the YAML tag {_shown(tag)} is not allowed in a policy; write plain values",
                self._path_here(),
            )
        scalar = Scalar(event.value, event.style not in (None, ""), tag)
        if tag in (STR, MERGE):
            value: Any = event.value
        else:
            try:
                value = self.constructor.yaml_constructors[tag](
                    self.constructor, yaml.ScalarNode(tag, event.value)
                )
            except (yaml.YAMLError, ValueError) as exc:
                what = _TYPE_WORDS.get(tag, scalar.type_name())
                raise _Refused(
                    line,
                    f"YAML reads an unquoted {event.value} as {what}, but it is not a valid one; write "
                    f"'{event.value}' in quotes",
                    self._path_here(),
                ) from exc
        self._count(1, line)
        self._deliver(value, Position(line, scalar=scalar), 1, event.anchor, line)

    def _resolve(self, text: str, plain: bool) -> str:
        """The type YAML gives an untagged scalar: text when quoted, else by its look (cached)."""
        if not plain:
            return STR
        tag = self.tags.get(text)
        if tag is None:
            # PyYAML's stubs leave Resolver.resolve untyped; it returns the tag as a str.
            resolved = self.resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
            tag = self.tags[text] = str(resolved)
        return tag

    def _start(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent, line: int) -> None:
        if event.tag not in (None, "!") and event.tag not in _COLLECTION_TAGS:
            raise _Refused(
                line, f"the YAML tag {_shown(event.tag)} is not allowed in a policy", self._path_here()
            )
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep; a policy never needs that")
        self._count(1, line)
        path = self._path_here()
        if isinstance(event, yaml.MappingStartEvent):
            frame = _Frame(line, event.anchor, {}, Position(line, keys={}), path)
        else:
            frame = _Frame(line, event.anchor, [], Position(line, items=[]), path)
        if event.anchor:
            self.open_anchors.add(event.anchor)
        self.stack.append(frame)

    def _path_here(self) -> str:
        """The dotted path of the value about to be delivered (``rules[2].refs``), for messages."""
        if not self.stack:
            return ""
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            return f"{frame.path}[{len(frame.value)}]"
        if frame.key is None:
            return frame.path
        return f"{frame.path}.{frame.key[0]}" if frame.path else frame.key[0]

    def _end(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            self._merge(frame)
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
        self._deliver(frame.value, frame.position, frame.size, frame.anchor, frame.line)

    def _merge(self, frame: _Frame) -> None:
        """YAML merge keys (``<<: *defaults``): keys written in the mapping itself win."""
        assert isinstance(frame.value, dict) and frame.position.keys is not None
        for value, position, size in frame.merges:
            sources = (
                list(zip(value, position.items or [], strict=True))
                if isinstance(value, list)
                else [(value, position)]
            )
            for source, source_position in sources:
                if not isinstance(source, dict) or source_position.keys is None:
                    raise _Refused(position.line, "expected a mapping (or a list of mappings) after '<<'")
                for key, item in source.items():
                    if key not in frame.value:
                        frame.value[key] = item
                        frame.position.keys[key] = source_position.keys[key]
            frame.size += size

    def _alias(self, event: yaml.AliasEvent, line: int) -> None:
        name = event.anchor or ""
        if name in self.open_anchors:
            raise _Refused(line, f"the alias *{name} refers to a value that contains it")
        if name not in self.anchors:
            raise _Refused(line, f"the alias *{name} names no anchor &{name} written before it")
        value, position, size = self.anchors[name]
        self._count(size, line)
        self._deliver(value, position.at(line), size, None, line)

    def _note(self, line: int, message: str, where: str) -> None:
        """A problem that does not stop the reading: the value concerned is left out, and the
        document is still validated, so that every problem of the file is reported at once."""
        self.problems.append((line, where, message))

    def _deliver(self, value: Any, position: Position, size: int, anchor: str | None, line: int) -> None:
        if anchor:
            self.anchors[anchor] = (value, position, size)
        if not self.stack:
            self.root = (value, position)
            return
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            if value is None:
                self._note(line, "empty list entry; write a value or remove the '-'", self._path_here())
                return
            assert frame.position.items is not None
            frame.value.append(value)
            frame.position.items.append(position)
            frame.size += size
            return
        if frame.key is None:
            if position.scalar is not None and position.scalar.tag == MERGE:
                frame.key = ("<<", line, True, False)
            else:
                key, keep = self._key(value, position, frame, line)
                frame.key = (key, line, False, not keep)
            return
        key, key_line, merge, drop = frame.key
        if merge:
            frame.key = None
            frame.merges.append((value, position, size))
            return
        assert frame.position.keys is not None
        if drop:
            frame.key = None
            return
        if value is None:
            self._note(
                key_line,
                "empty value; write a value, or remove the key (an omitted condition matches anything)",
                self._path_here(),
            )
            frame.key = None
            del frame.position.keys[key]
            return
        frame.key = None
        frame.value[key] = value
        frame.position.keys[key] = position.at(key_line)
        frame.size += size

    def _key(self, value: Any, position: Position, frame: _Frame, line: int) -> tuple[str, bool]:
        """The key, and whether its value is kept (not for a key that is not text or is a duplicate)."""
        assert isinstance(frame.value, dict) and frame.position.keys is not None
        if not isinstance(value, str):
            hint = not_text_hint(position.scalar)
            written = position.scalar.text if position.scalar is not None else str(value)
            where = f"{frame.path}.{written}" if frame.path else written
            if hint and written.lower() == "on" and re.fullmatch(r"rules\[\d+\]", frame.path):
                # GitHub Actions' `on:` habit: the policy's name for triggering events is `events`.
                hint = f"YAML reads an unquoted {written} as a boolean; did you mean 'events'?"
            self._note(line, "a key must be text" + (f": {hint}" if hint else ""), where)
            return written, False
        if value in frame.position.keys:
            first = frame.position.keys[value].line
            self._note(
                line,
                f"duplicate key {value!r} (first at line {first}); each key may appear once",
                f"{frame.path}.{value}" if frame.path else value,
            )
            return value, False
        frame.position.keys[value] = position  # reserved until its value arrives; replaced then
        return value, True


def flow_depth_exceeded(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line at which flow collections (``[`` / ``{``) nest deeper than ``limit``, or None.

    A conservative lexer: brackets inside quoted scalars and comments do not count; a quote opens a
    scalar only where YAML would start one (at a line start, after a space, ``[``, ``{``, ``,`` or
    ``:``), so the apostrophe in ``don't`` is text. Brackets in a plain scalar do count (a policy
    never needs 33 of them in one value). It never accepts anything: the event reader still checks
    every level, block collections included.
    """
    if "[" not in text and "{" not in text:
        return None
    depth, line, pos = 0, 1, 0
    while (match := _FLOW_MARKS.search(text, pos)) is not None:
        mark, at = match.group(), match.start()
        pos = at + 1
        if mark == "\n":
            line += 1
        elif mark in "[{":
            depth += 1
            if depth > limit:
                return line
        elif mark in "]}":
            depth = max(depth - 1, 0)
        elif mark == "#":
            if at == 0 or text[at - 1] in " \t\n":
                end = text.find("\n", at)
                pos = len(text) if end < 0 else end
        elif at == 0 or text[at - 1] in _QUOTE_OPENERS:
            end_match = _QUOTE_ENDS[mark].match(text, at + 1)
            end = len(text) if end_match is None else end_match.end()
            line += text.count("\n", at, end)
            pos = end
    return None


def read_document(text: str, path: str) -> Document:
    """Parse one policy document. Raises :class:`PolicyError` naming the line of the problem."""

    def refuse(line: int | None, message: str, where: str = "") -> PolicyError:
        return PolicyError(
            f"{path}: not a valid policy document", [PolicyProblem(path, line, where, message)]
        )

    if len(text) > MAX_BYTES:
        raise refuse(None, "the file is larger than 1 MiB; a policy never needs that much")
    if (deep := flow_depth_exceeded(text)) is not None:
        raise refuse(deep, f"nested more than {MAX_DEPTH} levels deep; a policy never needs that")
    reader = _Reader()
    try:
        root = reader.read(text)
    except _Refused as exc:
        raise refuse(exc.line, exc.message, exc.field) from exc
    except yaml.MarkedYAMLError as exc:
        said = syntax_problem(exc, text)
        raise PolicyError(
            f"{path}: not a valid policy document",
            [PolicyProblem(path, said.line, "", said.message, column=said.column)],
        ) from exc
    except yaml.YAMLError as exc:
        raise refuse(None, f"YAML error: {exc}") from exc
    if root is None or root[0] is None:
        raise refuse(1, "the file is empty; expected a mapping with version, owner and rules")
    problems = [PolicyProblem(path, line, where, message) for line, where, message in reader.problems]
    last_line = text.rstrip().count("\n") + 1
    return Document(root[0], root[1], problems, explicit_end=reader.explicit_end, last_line=last_line)
