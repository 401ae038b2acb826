"""The house rules of app/: folders by layer, data flowing one way, no import circles, small modules.

Every import is read with ``ast`` (including those inside functions and ``if TYPE_CHECKING:``), so
a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# Top to bottom: a module may import its own layer or a lower one, never a higher one. Folders that
# share a layer are independent of each other (except within one folder).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "composition",
        ("app", "app.factory", "app.cli", "app.server", "app.gunicorn_conf"),
    ),
    ("the HTTP face", ("app.web",)),
    ("the GitHub events the gate reacts to", ("app.events",)),
    ("the decision pipeline and the gate's collaborators", ("app.gate",)),
    ("side effects of decisions", ("app.credentials", "app.publish")),
    # The inventory and reports read the audit chain and the policies; the web and CLI show them.
    ("governance", ("app.governance",)),
    ("the pure core", ("app.decide",)),
    ("evidence", ("app.evidence",)),
    ("sources of facts", ("app.github", "app.store", "app.policy", "app.tokens")),
    ("foundation", ("app.settings", "app.errors", "app.observe")),
]
# decide/ is the pure core: whatever the layers say, it never reaches I/O or the HTTP face.
PURE_CORE_NEVER_IMPORTS = ("app.web", "app.store", "app.github")

# Modules allowed past ~450 lines, and why.
LONG_MODULES = {
    # Declarative pydantic models whose fields carry the descriptions docs/policy.md and
    # policies/schema.json are generated from; splitting would scatter one language over files.
    "app.policy.schema": 720,
    # The pure engine: the decision's steps in the order they run (governing policy, action,
    # invariants, rule, evidence, approvals), each a small function over one state; a split would
    # hide the order in which the invariants are checked before any rule.
    "app.decide.engine": 490,
}
MAX_LINES = 470


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The app modules ``name`` imports (a package import counts as its ``__init__``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    # "from app.web import decisions" adds both app.web and app.web.decisions; keep the most specific.
    return {t for t in found if not any(o.startswith(t + ".") for o in found) or t in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[int, str]:
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__name__}")


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_only_go_down_the_layers() -> None:
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        level, folder = _layer(module)
        for target in sorted(targets):
            target_level, target_folder = _layer(target)
            if target_level < level:
                wrong.append(f"{module} imports {target}, a higher layer ({LAYERS[target_level][0]})")
            elif target_level == level and target_folder != folder and level != 0:
                wrong.append(f"{module} imports {target}: {folder} and {target_folder} are independent")
    assert wrong == []


def test_the_pure_core_reaches_no_io() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith("app.decide")
        for target in targets
        if target.startswith(PURE_CORE_NEVER_IMPORTS)
    ]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        pytest.param({"a": {"b"}, "b": {"a"}}, [["a", "b"]], id="two-modules"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]], id="three-modules"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": set()}, [], id="a-chain"),
    ],
)
def test_the_circle_finder_finds_circles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _cycles(graph) == expected


def test_lazy_imports_are_seen() -> None:
    # A function-level import is an edge too: app/__init__.py imports the factory lazily.
    assert "app.factory" in GRAPH["app"]


def test_modules_stay_small() -> None:
    long = {}
    for module, path in MODULES.items():
        lines = len(path.read_text("utf-8").splitlines())
        if lines > LONG_MODULES.get(module, MAX_LINES):
            long[module] = lines
    assert long == {}, "split these modules by role, or say in LONG_MODULES why they are long"


def _names_used(path: Path) -> set[str]:
    """The names a module imports from other app modules, as ``module.name``, and the attributes it
    reads off imported modules (``engine.decide``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text("utf-8"))
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.add(f"{modules[node.value.id]}.{node.attr}")
    return found


def _users_of(qualified: str) -> set[str]:
    return {module for module, path in MODULES.items() if qualified in _names_used(path)}


def _callers_of_method(method: str) -> set[str]:
    """Modules outside app.store that call ``<anything>.<method>(...)``."""
    callers = set()
    for module, path in MODULES.items():
        if module.startswith("app.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method
            ):
                callers.add(module)
    return callers


def test_the_engine_has_one_caller_the_pipeline() -> None:
    # Every way of asking (the API, the merge check, a held deployment, explain) asks the pipeline.
    assert _users_of("app.decide.engine.decide") == {"app.gate.pipeline"}


def test_decisions_are_recorded_only_by_the_pipeline_and_in_one_transaction() -> None:
    # The audit record, the page, the token's replay record and what the origin keeps: together.
    assert _callers_of_method("record_decision") == {"app.gate.pipeline"}
    assert _callers_of_method("save_decision") == set(), "a page written apart from its audit record"


def test_overlays_are_applied_only_by_the_pipeline() -> None:
    assert _users_of("app.gate.overlays.overlay") == {"app.gate.pipeline"}
    for rewrite in ("app.decide.audit_mode.audit_mode", "app.decide.agent_free.pass_agent_free"):
        assert _users_of(rewrite) == {"app.gate.overlays"}, rewrite


def test_the_one_caller_finder_sees_imports_and_attributes(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from app.decide import engine\nfrom app.x import y as z\nengine.decide()\n", "utf-8")
    assert {"app.decide.engine", "app.decide.engine.decide", "app.x.y"} <= _names_used(source)
