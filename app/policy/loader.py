"""Loading policy YAML into validated, indexed policies, with file:line errors.

:func:`parse_policy_text` reads the YAML with the line of every key and value
(:mod:`app.policy.source`), validates it with the models of :mod:`app.policy.schema`, and tells
every problem as ``file:line: field: got X, expected Y`` (:mod:`app.policy.diagnostics`). All the
problems of a file are reported together. A policy must end with YAML's end-of-document line
``...``: a file cut short that still parses is refused, never adopted (:func:`_torn`). A valid policy is indexed by action, and by action and
pinned repository id, once: the engine finds a decision's candidate rules with dict lookups, not a
scan of the file.

:func:`load_policies` loads a file, or a directory of ``*.yml``/``*.yaml`` files (one owner each;
``schema.json`` and hidden files are ignored), into a :class:`PolicySet` with a digest that every
decision records.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.errors import PolicyError, PolicyProblem
from app.policy.agents import AgentCatalog, builtin_catalog
from app.policy.diagnostics import cross_field_problems, locate, validation_problems
from app.policy.schema import COLLECT_PROBLEMS, ActionSpec, CrossProblem, Loc, Policy, Repository, Rule
from app.policy.source import Document, Position, read_document

POLICY_SUFFIXES = (".yml", ".yaml")
# The line every policy file ends with (YAML's end-of-document marker), so that a torn file is refused.
END_LINE = "..."


@dataclass(frozen=True)
class LoadedPolicy:
    """One valid policy file, indexed for the engine."""

    policy: Policy
    path: str
    catalog: dict[str, ActionSpec]
    agents: AgentCatalog
    _by_action: dict[str, list[Rule]] = field(default_factory=dict, repr=False)
    # (file position, rule): rules open to any repository ("*" or a name pattern) by action, and
    # rules pinning a repository id by (action, id).
    _open: dict[str, list[tuple[int, Rule]]] = field(default_factory=dict, repr=False)
    _pinned: dict[tuple[str, int], list[tuple[int, Rule]]] = field(default_factory=dict, repr=False)
    _rule_lines: dict[str, int] = field(default_factory=dict, repr=False)
    _root: Position | None = field(default=None, repr=False, compare=False)

    def rules_for(self, action: str) -> list[Rule]:
        """The rules naming ``action``, in file order (a dict lookup, not a scan)."""
        return self._by_action.get(action, [])

    def candidates(self, action: str, repository_id: int) -> Iterator[Rule]:
        """The rules naming ``action`` that could match repository ``repository_id``, in file order:
        those for every repository or a name pattern, and those pinning this id. A rule pinning only
        other ids can never match it, so the engine need not check it to find the first match."""
        open_rules = self._open.get(action, [])
        pinned = self._pinned.get((action, repository_id), [])
        for _, rule in heapq.merge(open_rules, pinned, key=lambda entry: entry[0]):
            yield rule

    def line_of(self, rule_name: str) -> int | None:
        """The line where the rule starts in its file, for messages."""
        return self._rule_lines.get(rule_name)

    def line_at(self, *loc: str | int) -> int | None:
        """The line of the value at ``loc`` (e.g. ``"rules", 2, "events"``), or of its nearest
        written ancestor when the field was omitted."""
        if self._root is None:
            return None
        return locate(self._root, loc)[1]


@dataclass(frozen=True)
class PolicySet:
    """Every loaded policy, by owner id, and the digest of the files they came from."""

    digest: str
    by_owner: dict[int, LoadedPolicy]

    def for_owner(self, owner_id: int) -> LoadedPolicy | None:
        return self.by_owner.get(owner_id)


def parse_policy_text(text: str, path: str = "<string>") -> LoadedPolicy:
    """Validate one policy document. Raises :class:`PolicyError` listing every problem."""
    document = read_document(text, path)
    if not isinstance(document.data, dict):
        found = type(document.data).__name__
        problem = PolicyProblem(
            path, document.root.line, "", f"got a {found}, expected a mapping with version, owner, rules"
        )
        raise PolicyError(f"{path}: not a policy", [problem])
    reading = [*document.problems, *_torn(document, path)]
    collected: list[CrossProblem] = []
    try:
        policy = Policy.model_validate(document.data, context={COLLECT_PROBLEMS: collected})
    except ValidationError as exc:
        problems = _together(reading, validation_problems(exc, document, path))
        raise PolicyError(_summary(path, problems), problems) from exc
    if collected or reading:
        problems = _together(reading, cross_field_problems(collected, document, path))
        raise PolicyError(_summary(path, problems), problems)
    return _index(policy, path, document.root)


def _torn(document: Document, path: str) -> list[PolicyProblem]:
    """A policy must end with YAML's end-of-document line ``...``, or it may be torn.

    A file cut short still parses more often than not, and what it lost can widen it: the end of a
    rule (its ``approvals``, ``teams``, ``allow_agents: false``, its last conditions), a digit of
    a number. Rules only allow, but their conditions narrow, so no reading of a prefix is safe.
    The end line is the last thing written: a one-document file that has it is whole, and every
    strict prefix of such a file (one that loses anything but comments and blank lines after it)
    lacks it and is refused (docs/policy.md, "A torn policy never allows more").
    """
    if document.explicit_end:
        return []
    return [
        PolicyProblem(
            path,
            document.last_line,
            "",
            f"expected the last line to be {END_LINE!r} (YAML's end-of-document line): without it the "
            "file may have been cut short (a crash mid-write, a truncated copy), and a torn policy can "
            f"allow what the whole one denies; if the file is complete, add a last line {END_LINE}",
        )
    ]


def _together(reading: list[PolicyProblem], validating: list[PolicyProblem]) -> list[PolicyProblem]:
    """Problems found reading the YAML and validating it, without the echoes of the first: a value
    left out because its key was a duplicate or empty is not "missing" a second time."""

    def echoes(p: PolicyProblem) -> bool:
        return any(
            p.field == r.field or p.field.startswith((r.field + ".", r.field + "["))
            for r in reading
            if r.field
        )

    return sorted(reading + [p for p in validating if not echoes(p)], key=lambda p: (p.line or 0, p.field))


def _summary(path: str, problems: list[PolicyProblem]) -> str:
    return f"{path}: {_count(len(problems), 'problem')}"


def _index(policy: Policy, path: str, root: Position) -> LoadedPolicy:
    by_action: dict[str, list[Rule]] = {}
    open_rules: dict[str, list[tuple[int, Rule]]] = {}
    pinned: dict[tuple[str, int], list[tuple[int, Rule]]] = {}
    lines: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        entries = [] if rule.repositories == "*" else rule.repositories
        ids = dict.fromkeys(e.id for e in entries if isinstance(e, Repository))
        is_open = rule.repositories == "*" or any(not isinstance(e, Repository) for e in entries)
        for action in dict.fromkeys(rule.actions):
            by_action.setdefault(action, []).append(rule)
            if is_open:
                open_rules.setdefault(action, []).append((i, rule))
            else:
                for repository_id in ids:
                    pinned.setdefault((action, repository_id), []).append((i, rule))
        lines[rule.name] = locate(root, ("rules", i))[1]
    agents = builtin_catalog().extended(
        ai_agents=[(a.login, a.id, a.name) for a in policy.agents.ai],
        bots=[(a.login, a.id, a.name) for a in policy.agents.bots],
        emails=[(e.email, e.name) for e in policy.agents.emails],
        branch_prefixes=[(b.prefix, b.name) for b in policy.agents.branch_prefixes],
        labels=policy.agents.labels,
    )
    return LoadedPolicy(
        policy=policy,
        path=path,
        catalog=policy.catalog(),
        agents=agents,
        _by_action=by_action,
        _open=open_rules,
        _pinned=pinned,
        _rule_lines=lines,
        _root=root,
    )


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError(
            f"{path}: not UTF-8", [PolicyProblem(path, line, "", "not UTF-8 text; save the file as UTF-8")]
        ) from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"{path}: cannot be read",
            [PolicyProblem(str(path), None, "", f"cannot read the file: {exc.strerror or exc}")],
        ) from exc


def load_policy_file(path: Path) -> LoadedPolicy:
    """Load one policy file. Raises :class:`PolicyError` with file:line problems."""
    return parse_policy_text(_decode(_read(path), str(path)), str(path))


def policy_files(path: Path) -> list[Path]:
    """The policy files at ``path``: the file itself, or a directory's ``*.yml``/``*.yaml`` files,
    sorted by name (hidden files, such as editors' swap files, are skipped)."""
    if path.is_dir():
        return sorted(
            p
            for p in path.iterdir()
            if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    return [path]


def _digest_part(name: str, raw: bytes) -> bytes:
    encoded = name.encode("utf-8")
    # Length-prefixed, so no two different sets of files can produce the same byte stream.
    return len(encoded).to_bytes(8, "big") + encoded + len(raw).to_bytes(8, "big") + raw


def policy_digest(contents: list[tuple[str, bytes]]) -> str:
    """The digest of policy files given as (file name, bytes) in load order, as :class:`PolicySet` has it."""
    digest = hashlib.sha256()
    for name, raw in contents:
        digest.update(_digest_part(name, raw))
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class PolicySurvey:
    """Every policy file at a path, each loaded or not: what ``policy check`` reports on."""

    files: list[Path]
    loaded: list[LoadedPolicy]  # the valid files, one per owner, in file order
    problems: list[PolicyProblem]  # every error of every file
    digest: str


def survey_policies(path: Path) -> PolicySurvey:
    """Load every policy file at ``path``, collecting problems instead of stopping at the first file.

    Raises :class:`PolicyError` only when the path does not exist or holds no policy file.
    """
    path = Path(path)
    if not path.exists():
        raise PolicyError(
            f"{path}: no such policy file or directory",
            [PolicyProblem(str(path), None, "", "no such file or directory; check GATE_POLICY_PATH")],
        )
    files = policy_files(path)
    if not files:
        raise PolicyError(
            f"{path}: no policy files",
            [PolicyProblem(str(path), None, "", "the directory holds no *.yml or *.yaml policy file")],
        )
    problems: list[PolicyProblem] = []
    by_owner: dict[int, LoadedPolicy] = {}
    digest = hashlib.sha256()
    for file in files:
        try:
            raw = _read(file)
            digest.update(_digest_part(file.name, raw))
            loaded = parse_policy_text(_decode(raw, str(file)), str(file))
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        first = by_owner.get(loaded.policy.owner.id)
        if first is not None:
            problems.append(_same_owner(loaded, first))
            continue
        by_owner[loaded.policy.owner.id] = loaded
    return PolicySurvey(files, list(by_owner.values()), problems, "sha256:" + digest.hexdigest())


def load_policies(path: Path) -> PolicySet:
    """Load a policy file or a directory of them; all problems of all files are reported together.

    Raises :class:`PolicyError` when the path is missing, holds no policy file, a file is invalid,
    or two files govern the same owner id.
    """
    survey = survey_policies(path)
    if survey.problems:
        files = len({p.path for p in survey.problems})
        raise PolicyError(
            f"{_count(len(survey.problems), 'policy problem')} in {_count(files, 'file')}", survey.problems
        )
    return PolicySet(digest=survey.digest, by_owner={p.policy.owner.id: p for p in survey.loaded})


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _same_owner(loaded: LoadedPolicy, first: LoadedPolicy) -> PolicyProblem:
    owner: Loc = ("owner", "id")
    return PolicyProblem(
        loaded.path,
        loaded.line_at(*owner),
        "owner.id",
        f"got {loaded.policy.owner.id}, expected an owner no other file governs: "
        f"{first.path}:{first.line_at(*owner)} already governs owner id {loaded.policy.owner.id}; "
        "keep one policy file per owner",
    )
