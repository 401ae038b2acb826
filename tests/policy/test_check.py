"""agent-gate policy check: exit codes and messages an admin can act on."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from app.policy.check import check_paths
from app.policy.lint import lint
from app.policy.loader import parse_policy_text

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_policies_pass():
    out = io.StringIO()
    assert check_paths([REPO / "policies"], out) == 0
    assert out.getvalue().splitlines()[-1].startswith("ok: 0 error(s)")


def test_a_broken_copy_fails_with_a_line_number(tmp_path):
    broken = tmp_path / "example.yml"
    shutil.copy(REPO / "policies" / "example.yml", broken)
    broken.write_text(broken.read_text().replace("count: 1\n      teams", "count: lots\n      teams"))
    out = io.StringIO()
    assert check_paths([broken], out) == 1
    assert f"error: {broken}:" in out.getvalue() and "approvals.count: got 'lots'" in out.getvalue()


def test_a_missing_path_is_a_usage_error(tmp_path):
    assert check_paths([tmp_path / "nope.yml"], io.StringIO()) == 2


def test_dangerous_patterns_are_warned_about():
    loaded = parse_policy_text(
        "version: 1\nowner: {login: acme, id: 1}\nrules:\n"
        "  - {name: yolo, actions: [deploy], repositories: '*'}\n",
        "p.yml",
    )
    found = {p.field.split(".")[-1]: p.message for p in lint(loaded)}
    assert "self-hosted runners" in found["runner_environments"]
    assert "pull_request/pull_request_target" in found["events"] and "refuses" in found["events"]
    assert "wildcard" in found["repositories"]
    assert "zero approvals" in found["approvals"] and "the engine refuses that anyway" in found["approvals"]
    assert all(p.severity == "warning" and p.line == 4 for p in lint(loaded))


def test_a_careful_rule_has_no_warnings():
    loaded = parse_policy_text(
        "version: 1\nowner: {login: acme, id: 1}\nrules:\n"
        "  - name: careful\n    actions: [deploy]\n    repositories: [{id: 2, name: acme/api}]\n"
        "    refs: [refs/heads/main]\n    events: [push]\n    runner_environments: [github-hosted]\n"
        "    workflows: [{ref: acme/api/.github/workflows/d.yml@refs/heads/main}]\n    approvals: {count: 1}\n",
        "p.yml",
    )
    assert lint(loaded) == []
