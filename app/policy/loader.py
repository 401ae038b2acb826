"""Loading policy YAML into validated, indexed policies, with file:line errors.

YAML is composed into a node tree first (the C loader when available), so every pydantic error can
be traced back to the line of the offending key or value. Duplicate keys are errors (PyYAML would
silently keep the last). Every problem names the file, the line, the field (``rules[2].refs``),
what was found and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.agents import AgentCatalog, builtin_catalog
from app.errors import PolicyError, PolicyProblem
from app.policy.schema import ActionSpec, Policy, Rule

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
POLICY_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    catalog: dict[str, ActionSpec]
    agents: AgentCatalog
    _by_action: dict[str, list[Rule]] = field(default_factory=dict, repr=False)
    _lines: dict[str, int] = field(default_factory=dict, repr=False)

    def rules_for(self, action: str) -> list[Rule]:
        """The rules naming ``action``, in file order (a dict lookup, not a scan)."""
        return self._by_action.get(action, [])

    def line_of(self, rule_name: str) -> int | None:
        return self._lines.get(rule_name)


@dataclass(frozen=True)
class PolicySet:
    digest: str
    by_owner: dict[int, LoadedPolicy]

    def for_owner(self, owner_id: int) -> LoadedPolicy | None:
        return self.by_owner.get(owner_id)


# -- YAML with lines ---------------------------------------------------------------------------


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)  # a safe loader: CSafeLoader or SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise PolicyError(
            f"{path}: not valid YAML",
            [PolicyProblem(path, line, "", f"YAML syntax error: {exc.problem or exc.context}")],
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(
            f"{path}: not valid YAML", [PolicyProblem(path, None, "", f"YAML error: {exc}")]
        ) from exc


def _check_duplicates(node: yaml.Node | None, path: str, where: str, problems: list[PolicyProblem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            here = f"{where}.{name}" if where else name
            if name in seen:
                problems.append(
                    PolicyProblem(
                        path,
                        key.start_mark.line + 1,
                        here,
                        f"duplicate key {name!r} (first at line {seen[name]})",
                    )
                )
            else:
                seen[name] = key.start_mark.line + 1
            _check_duplicates(value, path, here, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, path, f"{where}[{i}]", problems)


def _line_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the node at ``loc`` (pydantic's error location), or of its nearest ancestor."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            # pydantic adds union-member names ("str", "Pattern") to locations: skip them.
            continue
    return line


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (
            str(part)[:1].isupper()
            or str(part) in {"str", "int", "literal['*']", "list[...]"}
            or "[" in str(part)
        ):
            continue  # a union member's name, not a field
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: Any, model_fields: dict[str, list[str]]) -> str:
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        parent = ".".join(str(p) for p in err["loc"][:-1] if not isinstance(p, int))
        allowed = model_fields.get(parent.split(".")[-1] if parent else "", [])
        hint = difflib.get_close_matches(name, allowed, n=1)
        expected = f"; expected one of {', '.join(allowed)}" if allowed else ""
        return f"unknown field {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + expected
    if kind == "missing":
        return "required field is missing"
    shown = repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"got {shown}: {message}"


def _known_fields() -> dict[str, list[str]]:
    from app.policy import schema

    names: dict[str, list[str]] = {"": list(Policy.model_fields)}
    for model, parent in (
        (schema.Rule, "rules"),
        (schema.Owner, "owner"),
        (schema.Agents, "agents"),
        (schema.Approvals, "approvals"),
        (schema.ActionSpec, "actions"),
        (schema.Workflow, "workflows"),
        (schema.Repository, "repositories"),
    ):
        names[parent] = list(model.model_fields)
    return names


def parse_policy_text(text: str, path: str = "<string>") -> LoadedPolicy:
    """Validate one policy document. Raises :class:`PolicyError` listing every problem."""
    root = _compose(text, path)
    problems: list[PolicyProblem] = []
    _check_duplicates(root, path, "", problems)
    if problems:
        raise PolicyError(f"{path}: {len(problems)} problem(s)", problems)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  # a safe loader: CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:  # composed fine above; kept for safety
        raise PolicyError(f"{path}: not valid YAML", [PolicyProblem(path, None, "", str(exc))]) from exc
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path}: not a policy",
            [
                PolicyProblem(
                    path, 1, "", f"expected a mapping with version, owner, rules; got {type(data).__name__}"
                )
            ],
        )
    try:
        policy = Policy.model_validate(data, strict=False)
    except ValidationError as exc:
        fields = _known_fields()
        errors = exc.errors(include_url=False)
        paths = [_field_path(tuple(e["loc"])) for e in errors]
        for err, where in zip(errors, paths, strict=True):
            # A union (exact value or {pattern}) reports a failure per member; when a deeper error
            # explains the value, the shallow "should be a string" one is noise.
            deeper = any(other != where and other.startswith(where + ".") for other in paths)
            if deeper and err["type"].endswith("_type"):
                continue
            loc = tuple(err["loc"])
            problems.append(PolicyProblem(path, _line_at(root, loc), where, _describe(err, fields)))
        problems.sort(key=lambda p: (p.line or 0, p.field))
        raise PolicyError(f"{path}: {len(problems)} problem(s)", problems) from exc
    return _index(policy, path, root)


def _index(policy: Policy, path: str, root: yaml.Node | None) -> LoadedPolicy:
    by_action: dict[str, list[Rule]] = {}
    lines: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        for action in rule.actions:
            by_action.setdefault(action, []).append(rule)
        line = _line_at(root, ("rules", i))
        if line is not None:
            lines[rule.name] = line
    agents = builtin_catalog().extended(
        ai_agents=[(a.login, a.id, a.name) for a in policy.agents.ai],
        bots=[(a.login, a.id, a.name) for a in policy.agents.bots],
        emails=[(e.email, e.name) for e in policy.agents.emails],
        branch_prefixes=[(b.prefix, b.name) for b in policy.agents.branch_prefixes],
        labels=policy.agents.labels,
    )
    return LoadedPolicy(
        policy=policy, path=path, catalog=policy.catalog(), agents=agents, _by_action=by_action, _lines=lines
    )


def load_policy_file(path: Path) -> LoadedPolicy:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"{path}: cannot be read", [PolicyProblem(str(path), None, "", f"cannot read: {exc}")]
        ) from exc
    return parse_policy_text(text, str(path))


def policy_files(path: Path) -> list[Path]:
    """The policy files at ``path``: the file itself, or a directory's *.yml/*.yaml, sorted."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in POLICY_SUFFIXES)
    return [path]


def load_policies(path: Path) -> PolicySet:
    """Load a file or a directory of policies. One owner per file; all problems are reported together."""
    path = Path(path)
    if not path.exists():
        raise PolicyError(
            f"{path}: no such policy file or directory",
            [PolicyProblem(str(path), None, "", "no such file or directory; set GATE_POLICY_PATH")],
        )
    files = policy_files(path)
    if not files:
        raise PolicyError(
            f"{path}: no policy files", [PolicyProblem(str(path), None, "", "no *.yml or *.yaml file")]
        )
    problems: list[PolicyProblem] = []
    by_owner: dict[int, LoadedPolicy] = {}
    digest = hashlib.sha256()
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            problems.append(PolicyProblem(str(file), None, "", f"cannot read: {exc.strerror}"))
            continue
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
        try:
            loaded = parse_policy_text(raw.decode("utf-8"), str(file))
        except UnicodeDecodeError:
            problems.append(PolicyProblem(str(file), None, "", "not UTF-8 text"))
            continue
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        owner = loaded.policy.owner.id
        if owner in by_owner:
            problems.append(
                PolicyProblem(
                    str(file),
                    _line_at(_compose(raw.decode(), str(file)), ("owner", "id")),
                    "owner.id",
                    f"owner id {owner} is already governed by {by_owner[owner].path}; "
                    "expected one policy file per owner",
                )
            )
            continue
        by_owner[owner] = loaded
    if problems:
        raise PolicyError(f"{len(problems)} policy problem(s)", problems)
    return PolicySet(digest="sha256:" + digest.hexdigest(), by_owner=by_owner)
