"""agent-gate policy check: exit codes and messages an admin can act on."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from app.policy.validate import check_paths
from tests.builders import whole
from tests.policy.builders import HEADER

REPO = Path(__file__).resolve().parents[2]

CAREFUL_RULE = (
    "rules:\n"
    "  - name: deploy\n"
    "    actions: [deploy]\n"
    "    repositories: [{id: 2, name: acme/api}]\n"
    "    refs: [refs/heads/main]\n"
    "    events: [push]\n"
    "    workflows: [{ref: acme/api/.github/workflows/deploy.yml@refs/heads/main}]\n"
    "    runner_environments: [github-hosted]\n"
    "    approvals: {count: 1}\n"
    "    owners: ['@acme/platform']\n"
)


def run(*paths: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check_paths(list(paths), out)
    return code, out.getvalue().splitlines()


def test_the_shipped_policies_pass_with_their_one_instructive_warning() -> None:
    code, lines = run(REPO / "policies")
    assert code == 0
    assert lines[-1] == "ok: 0 error(s), 1 warning(s); 1 of 1 policy file(s) valid"
    assert lines[0].startswith(f"warning: {REPO / 'policies' / 'example.yml'}:")
    assert "rules[2].approvals: rule 'deploy-staging' lets an agent-driven workload match deploy" in lines[0]


def test_a_valid_policy_without_warnings(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole(HEADER + CAREFUL_RULE))
    assert run(tmp_path / "acme.yml") == (0, ["ok: 0 error(s), 0 warning(s); 1 of 1 policy file(s) valid"])


def test_a_broken_copy_of_the_example_fails_with_its_line_number(tmp_path: Path) -> None:
    broken = tmp_path / "example.yml"
    shutil.copy(REPO / "policies" / "example.yml", broken)
    text = broken.read_text()
    assert "      count: 1\n" in text
    broken.write_text(whole(text.replace("      count: 1\n", "      count: lots\n")))
    line = broken.read_text().splitlines().index("      count: lots") + 1
    code, lines = run(broken)
    assert code == 1
    assert lines == [
        f"error: {broken}:{line}: rules[3].approvals.count: got 'lots', expected a whole number",
        "FAILED: 1 error(s), 0 warning(s); 0 of 1 policy file(s) valid",
    ]


def test_errors_and_warnings_of_a_directory_are_all_printed(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        whole(
            "version: 1\nowner: {login: a, id: 1}\nrules:\n  - {name: r, actions: [nope], repositories: '*'}\n"
        )
    )
    (tmp_path / "b.yml").write_text(whole("version: 1\nowner: {login: b, id: 2}\n"))
    code, lines = run(tmp_path)
    assert code == 1
    assert lines == [
        f"error: {tmp_path / 'a.yml'}:4: rules[0].actions[0]: unknown action 'nope'; "
        "expected one of approve, comment, deploy, merge, open-pull-request, preview-deploy, publish, push-branch, "
        "read, read-contents, read-secrets, release, or declare it under 'actions:'",
        f"warning: {tmp_path / 'b.yml'}:1: rules: the policy has no rules: every action in b's repositories is denied",
        "FAILED: 1 error(s), 1 warning(s); 1 of 2 policy file(s) valid",
    ]


def test_warnings_never_fail_the_check(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(
        whole(HEADER + "rules:\n  - {name: yolo, actions: [deploy], repositories: '*'}\n")
    )
    code, lines = run(tmp_path)
    assert code == 0
    assert all(line.startswith(f"warning: {tmp_path / 'acme.yml'}:4: rules[0]") for line in lines[:-1])
    assert lines[-1] == "ok: 0 error(s), 7 warning(s); 1 of 1 policy file(s) valid"


def test_several_paths_are_each_checked_as_the_gate_would_load_them(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "acme.yml").write_text(whole(HEADER + CAREFUL_RULE))
    code, lines = run(tmp_path / "one", tmp_path / "two")
    assert (code, lines) == (0, ["ok: 0 error(s), 0 warning(s); 2 of 2 policy file(s) valid"])


def test_two_files_for_one_owner_fail(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text(whole(HEADER + CAREFUL_RULE))
    code, lines = run(tmp_path)
    assert code == 1
    assert lines[0].startswith(
        f"error: {tmp_path / 'b.yml'}:2: owner.id: got 1, expected an owner no other file governs"
    )
    assert lines[-1] == "FAILED: 1 error(s), 0 warning(s); 1 of 2 policy file(s) valid"


def test_a_directory_without_policies_fails(tmp_path: Path) -> None:
    assert run(tmp_path) == (
        1,
        [
            f"error: {tmp_path}: the directory holds no *.yml or *.yaml policy file",
            "FAILED: 1 error(s), 0 warning(s); 0 of 0 policy file(s) valid",
        ],
    )


@pytest.mark.parametrize(
    "paths",
    [pytest.param(["nope.yml"], id="missing"), pytest.param(["ok", "nope.yml"], id="one-of-several-missing")],
)
def test_a_missing_path_is_a_usage_error(tmp_path: Path, paths: list[str]) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "acme.yml").write_text(whole(HEADER + CAREFUL_RULE))
    code, lines = run(*(tmp_path / p for p in paths))
    assert (code, lines) == (2, [f"error: {tmp_path / 'nope.yml'}: no such file or directory"])


def test_no_path_at_all_is_a_usage_error() -> None:
    code, lines = run()
    assert code == 2 and lines[0].startswith("usage: agent-gate policy check PATH...")


def test_rules_in_audit_mode_are_listed_after_the_warnings(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole(HEADER + "mode: audit\n" + CAREFUL_RULE))
    code, lines = run(tmp_path / "acme.yml")
    assert code == 0
    assert lines == [
        f"audit: {tmp_path / 'acme.yml'}:5: rule 'deploy' is in audit mode (the policy's mode): its denies are "
        "answered as allows marked would_deny; see `agent-gate audit report`, then write mode: enforce",
        "ok: 0 error(s), 0 warning(s); 1 of 1 policy file(s) valid",
    ]


def run_as(format: str, *paths: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = check_paths(list(paths), out, format)
    return code, out.getvalue()


def _broken_and_warned(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "a.yml").write_text("version: 1\nowner:\n  login: a\n   id: 1\n")
    (tmp_path / "b.yml").write_text(whole("version: 1\nowner: {login: b, id: 2}\n"))
    return tmp_path / "a.yml", tmp_path / "b.yml"


def test_json_names_every_problem_with_its_place(tmp_path: Path) -> None:
    a, b = _broken_and_warned(tmp_path)
    code, text = run_as("json", a, b)
    assert code == 1
    report = json.loads(text)
    assert {k: report[k] for k in ("ok", "errors", "warnings", "files", "valid", "audit_mode")} == {
        "ok": False, "errors": 1, "warnings": 1, "files": 2, "valid": 1, "audit_mode": [],
    }  # fmt: skip
    assert [(p["severity"], p["path"], p["line"], p["column"], p["field"]) for p in report["problems"]] == [
        ("error", str(a), 4, 4, ""),
        ("warning", str(b), 1, None, "rules"),
    ]
    assert report["problems"][0]["message"].startswith("bad indentation: the line is indented 3 spaces")


def test_json_of_a_valid_policy_is_ok() -> None:
    code, text = run_as("json", REPO / "policies")
    assert code == 0 and json.loads(text)["ok"] is True


def test_json_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    code, text = run_as("json", tmp_path / "nowhere.yml")
    report = json.loads(text)
    assert (code, report["ok"], report["problems"][0]["message"]) == (2, False, "no such file or directory")


def test_github_annotates_each_problem_on_its_file_line_and_column(tmp_path: Path) -> None:
    a, b = _broken_and_warned(tmp_path)
    code, text = run_as("github", a, b)
    lines = text.splitlines()
    assert code == 1
    assert lines[0].startswith(
        f"::error file={a},line=4,col=4,title=agent-gate policy check::bad indentation: the line is indented"
    )
    assert lines[1] == (
        f"::warning file={b},line=1,title=agent-gate policy check::rules: the policy has no rules: every "
        "action in b's repositories is denied"
    )
    assert lines[2] == "FAILED: 1 error(s), 1 warning(s); 1 of 2 policy file(s) valid"


def test_github_escapes_what_would_end_a_workflow_command(tmp_path: Path) -> None:
    odd = tmp_path / "a:b,c.yml"
    odd.write_text("version: 1\nowner:\n\tlogin: a\n")
    code, text = run_as("github", odd)
    assert code == 1
    assert text.splitlines()[0].startswith(f"::error file={tmp_path}/a%3Ab%2Cc.yml,line=3,col=1,")
    assert "::a tab character at column 1" in text


def test_github_names_a_missing_path(tmp_path: Path) -> None:
    code, text = run_as("github", tmp_path / "gone.yml")
    assert (code, text) == (2, f"::error file={tmp_path}/gone.yml::no such file or directory\n")
