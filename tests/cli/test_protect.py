"""``agent-gate protect``: from an unprotected repository to one ``doctor`` passes, against the fake GitHub.

Reads go through the App, writes with an administrator's token (``GH_TOKEN`` here). The refusals
come first: no token, a classic token without ``repo``, a person who is not an admin, a fine-grained
token without Administration: write, a dead token. Then what protect does: the first run changes
what is missing and doctor then finds nothing open; a second run changes nothing and says so;
``--dry-run`` changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.cli import main, options
from app.cli.doctor import MERGE_CHECK
from app.settings import GitHubSettings, Settings
from tests.cli.test_doctor import REPO, protected, required_check
from tests.fake_github import APP_ID, AdminToken, DeploymentRule, Failure, FakeGitHub, Scenario
from tests.github.conftest import app_key_pem

TOKEN = "ghp_admin0token0for0protect0000000000"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def unprotected(**changes: Any) -> Scenario:
    """The doctor's protected repository without its protection: production has no rule, no ruleset."""
    fields: dict[str, Any] = {
        "environments": {"production": []},
        "branch_rules": {},
        "admin_tokens": {TOKEN: AdminToken()},
    }
    return protected(**{**fields, **changes})


def writes(scenario: Scenario) -> list[str]:
    """The writes made with the admin token (the App's own token requests are not protect's)."""
    return [
        f"{r['method']} {r['path']}"
        for r in scenario.requests
        if r["method"] in WRITES and r["headers"].get("Authorization") == f"Bearer {TOKEN}"
    ]


def added(diff: str) -> list[str]:
    """The lines a diff adds, without the ``+`` and the indentation."""
    return [
        line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")
    ]


@pytest.fixture
def gate(monkeypatch, tmp_path) -> Iterator[Any]:
    """``gate(scenario, *argv)`` runs ``agent-gate`` against the fake serving ``scenario``, with the
    App configured and GH_TOKEN set: ``(exit code, stdout, stderr)``."""
    servers: list[FakeGitHub] = []
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)

    def run(scenario: Scenario, *argv: str, capsys: Any) -> tuple[int, str, str]:
        server = FakeGitHub(scenario).start()
        servers.append(server)
        github = GitHubSettings(app_id=APP_ID, private_key=SecretStr(app_key_pem()), api_url=server.url)
        monkeypatch.setattr(
            options, "load_settings", lambda: Settings(data_dir=tmp_path / "var", github=github)
        )
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert TOKEN not in out + err, "the admin token is never shown"
        return code, out, err

    yield run
    for server in servers:
        server.close()  # fails the test if the fake answered outside GitHub's schemas


# --- refusals ---------------------------------------------------------------------------------------------


def test_without_an_admin_token_nothing_is_written_and_it_says_what_to_set(
    gate, monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("GH_TOKEN")
    monkeypatch.setenv("PATH", str(tmp_path))  # no gh either
    scenario = unprotected()
    code, _, err = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 2
    assert "needs an administrator's token the App does not hold: set GH_TOKEN" in err
    assert writes(scenario) == [] and scenario.rulesets == {}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (
            AdminToken(scopes=("read:org", "workflow")),
            "is a classic token without the `repo` scope (it has: read:org, workflow)",
        ),
        (AdminToken(scopes=()), "is a classic token without the `repo` scope (it has: none)"),
        (AdminToken(role="write"), "belongs to someone who is not an admin of octo-org/octo-repo"),
        (AdminToken(role="maintain", scopes=None), "belongs to someone who is not an admin"),
    ],
    ids=[
        "classic-without-repo",
        "classic-without-scopes",
        "a-writer-not-an-admin",
        "fine-grained-maintainer",
    ],
)
def test_a_token_that_cannot_administer_the_repository_is_refused_before_any_write(
    gate, capsys, token, expected
):
    scenario = unprotected(admin_tokens={TOKEN: token})
    code, _, err = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 2
    assert expected in err
    assert "Administration: Read and write" in err  # and what would do
    assert writes(scenario) == []
    assert scenario.environments == {"production": []}


def test_a_fine_grained_token_without_administration_is_refused_naming_the_permission(gate, capsys):
    # GitHub does not show a fine-grained token's permissions: the first write finds out, and stops.
    scenario = unprotected(admin_tokens={TOKEN: AdminToken(scopes=None, permissions={"contents": "read"})})
    code, _, err = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 2
    assert "Resource not accessible by personal access token; it accepts administration=write" in err
    assert "needs Administration: Read and write" in err
    assert len([r for r in scenario.requests if r["method"] in WRITES and r["status"] == 403]) == 1
    assert scenario.environments == {"production": []} and scenario.rulesets == {}


def test_a_dead_token_is_refused(gate, capsys):
    code, _, err = gate(unprotected(admin_tokens={}), "protect", REPO, capsys=capsys)
    assert code == 2
    assert "GitHub refused the token from GH_TOKEN (401: expired or revoked)" in err


# --- what it does -------------------------------------------------------------------------------------------


def test_protect_takes_an_unprotected_repository_to_one_doctor_passes_and_a_second_run_changes_nothing(
    gate, capsys
):
    scenario = unprotected()
    assert gate(scenario, "doctor", REPO, capsys=capsys)[0] == 1

    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0, out
    assert writes(scenario) == [
        f"POST /repos/{REPO}/environments/production/deployment_protection_rules",
        f"POST /repos/{REPO}/rulesets",
    ]
    assert "--- a/environment production deployment protection rules" in out
    assert '"integration_id": 42' in added(out)
    assert "--- /dev/null\n+++ b/ruleset agent-gate" in out
    assert f'"context": "{MERGE_CHECK}",' in added(out)
    assert out.splitlines()[-2:] == [
        f"2 changes made on {REPO}",
        f"nothing open: {REPO} defers to agent-gate (App {APP_ID})",
    ]
    [ruleset] = scenario.rulesets.values()
    assert ruleset["enforcement"] == "active"
    assert ruleset["conditions"] == {"ref_name": {"include": ["~DEFAULT_BRANCH"]}}
    assert gate(scenario, "doctor", REPO, capsys=capsys)[0] == 0

    before = len(writes(scenario))
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0
    assert len(writes(scenario)) == before, "a second run writes nothing"
    assert f"nothing to change: {REPO} already has what protect sets" in out
    assert "---" not in out


def test_a_dry_run_prints_the_changes_and_makes_none(gate, capsys):
    scenario = unprotected()
    code, out, _ = gate(scenario, "protect", REPO, "--dry-run", capsys=capsys)
    assert code == 1, "something is still open"
    assert f"dry run: 2 changes would be made on {REPO}; nothing was changed" in out
    assert "+++ b/ruleset agent-gate" in out
    assert writes(scenario) == []
    assert scenario.environments == {"production": []} and scenario.rulesets == {}
    assert gate(scenario, "doctor", REPO, capsys=capsys)[0] == 1


def test_a_targeted_environment_that_does_not_exist_is_created_then_gated(gate, capsys):
    scenario = unprotected(environments={})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0, out
    assert writes(scenario)[:2] == [
        f"PUT /repos/{REPO}/environments/production",
        f"POST /repos/{REPO}/environments/production/deployment_protection_rules",
    ]
    assert "+++ b/environment production" in out


def test_named_environments_are_gated_and_others_left_alone(gate, capsys):
    scenario = unprotected(
        environments={"production": [DeploymentRule(APP_ID)], "staging": [], "sandbox": []}
    )
    code, _, _ = gate(scenario, "protect", REPO, "--environment", "staging", capsys=capsys)
    assert code == 0
    assert [w for w in writes(scenario) if "environments" in w] == [
        f"POST /repos/{REPO}/environments/staging/deployment_protection_rules"
    ]
    assert scenario.environments["sandbox"] == []


def test_a_disabled_rule_is_enabled_again(gate, capsys):
    scenario = unprotected(environments={"production": [DeploymentRule(APP_ID, enabled=False)]})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0
    assert '-  "agent-gate rule": "disabled"' in out.splitlines()


def test_an_environment_github_does_not_offer_the_app_for_stays_open_and_says_why(gate, capsys):
    scenario = unprotected(rule_apps={})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 1
    assert "open  environment production: GitHub does not offer the agent-gate App as a rule" in out
    assert not any("environments" in w for w in writes(scenario))


def test_an_existing_agent_gate_ruleset_is_brought_up_to_date_keeping_its_other_rules(gate, capsys):
    existing = {
        "id": 7,
        "name": "agent-gate",
        "target": "branch",
        "enforcement": "evaluate",
        "conditions": {"ref_name": {"include": ["refs/heads/release"], "exclude": []}},
        "rules": [
            {"type": "deletion"},
            {
                "type": "required_status_checks",
                "parameters": {
                    "required_status_checks": [{"context": "ci / test"}, {"context": MERGE_CHECK}],
                    "strict_required_status_checks_policy": True,
                },
            },
        ],
    }
    scenario = unprotected(rulesets={7: existing})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0, out
    assert f"PUT /repos/{REPO}/rulesets/7" in writes(scenario)
    ruleset = scenario.rulesets[7]
    assert ruleset["enforcement"] == "active"
    assert ruleset["conditions"]["ref_name"]["include"] == ["refs/heads/release", "~DEFAULT_BRANCH"]
    assert ruleset["rules"][0] == {"type": "deletion"}
    assert ruleset["rules"][1]["parameters"] == {
        "required_status_checks": [
            {"context": "ci / test"},
            {"context": MERGE_CHECK, "integration_id": APP_ID},
        ],
        "strict_required_status_checks_policy": True,
    }
    assert '-  "enforcement": "evaluate",' in out.splitlines()
    assert '"enforcement": "active",' in added(out)


def test_a_check_already_pinned_by_another_ruleset_is_kept(gate, capsys):
    scenario = unprotected(branch_rules={"main": [required_check(MERGE_CHECK, APP_ID, ruleset_id=3)]})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0
    assert f"ok    ruleset 3 requires {MERGE_CHECK} from the agent-gate App on main" in out
    assert not any("rulesets" in w for w in writes(scenario))


def test_another_branch_gets_a_ruleset_naming_it(gate, capsys):
    scenario = unprotected(environments={"production": [DeploymentRule(APP_ID)]})
    code, _, _ = gate(scenario, "protect", REPO, "--branch", "release", capsys=capsys)
    assert code == 1, "doctor reads the default branch, which is still unprotected"
    [ruleset] = scenario.rulesets.values()
    assert ruleset["conditions"] == {"ref_name": {"include": ["refs/heads/release"]}}


def test_json_output_for_scripts(gate, capsys):
    scenario = unprotected()
    code, out, _ = gate(scenario, "protect", REPO, "--dry-run", "--format", "json", capsys=capsys)
    answer = json.loads(out)
    assert code == 1
    assert answer["status"] == "open" and answer["dry_run"] is True
    assert [c["subject"] for c in answer["changes"]] == [
        "environment production deployment protection rules",
        "ruleset agent-gate",
    ]
    assert answer["doctor"]["status"] == "open"
    code, out, _ = gate(scenario, "protect", REPO, "--format", "json", capsys=capsys)
    assert code == 0 and json.loads(out)["status"] == "protected"


def test_an_organisation_is_protected_repository_by_repository_with_a_summary(gate, capsys):
    scenario = unprotected()
    code, out, _ = gate(scenario, "protect", "--org", "octo-org", capsys=capsys)
    assert code == 0, out
    assert out.splitlines()[-1] == "1 repository: 1 protected, 0 with findings open, 0 could not be checked"
    assert scenario.revoked, "the token minted to list the repositories is revoked"
    code, out, err = gate(scenario, "protect", "--org", "other-org", capsys=capsys)
    assert code == 2
    assert "not installed on other-org" in err


def test_the_token_may_come_from_gh(gate, monkeypatch, tmp_path, capsys):
    gh = tmp_path / "gh"
    gh.write_text(f"#!/bin/sh\n[ \"$1 $2\" = 'auth token' ] && echo {TOKEN}\n")
    gh.chmod(0o755)
    monkeypatch.delenv("GH_TOKEN")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code, _, _ = gate(unprotected(), "protect", REPO, "--dry-run", capsys=capsys)
    assert code == 1  # checked and accepted: the dry run lists what it would change


@pytest.mark.parametrize(
    "argv",
    [["protect"], ["protect", REPO, "--org", "octo-org"], ["protect", "not a repo"]],
    ids=["neither", "both", "not-owner-slash-repo"],
)
def test_it_takes_one_repository_or_one_organisation(gate, capsys, argv):
    code, _, err = gate(unprotected(), *argv, capsys=capsys)
    assert code == 2
    assert "protect takes OWNER/REPO or --org ORG" in err or "expected OWNER/REPO" in err


def test_a_write_that_fails_half_way_says_what_was_already_changed_and_a_second_run_finishes(gate, capsys):
    scenario = unprotected(failures=[Failure("/rulesets$", 500, method="POST", times=1)])
    code, _, err = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 2
    assert "GitHub answered 500 while writing ruleset agent-gate of octo-org/octo-repo" in err
    assert "already changed on octo-org/octo-repo: environment production deployment protection rules" in err
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0, out
    assert out.splitlines()[-2] == f"1 change made on {REPO}"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            Failure("/repos/octo-org/octo-repo$", 404, times=1),
            "the token from GH_TOKEN cannot see octo-org/octo-repo",
        ),
        (Failure.server_error("/repos/octo-org/octo-repo$"), "GitHub answered 500"),
    ],
    ids=["token-cannot-see-the-repository", "github-failing"],
)
def test_what_stops_the_token_check_exits_2(gate, capsys, failure, expected):
    scenario = unprotected(failures=[failure])
    code, out, err = gate(scenario, "protect", REPO, "--format", "json", capsys=capsys)
    assert code == 2
    assert expected in err
    assert json.loads(out)["status"] == "could-not-check"
    assert writes(scenario) == []


def test_without_the_app_it_could_not_check(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(options, "load_settings", lambda: Settings(data_dir=tmp_path / "var"))
    assert main(["protect", REPO]) == 2
    assert (
        "protect reads the repository through the GitHub App: set GATE_GITHUB_APP_ID"
        in capsys.readouterr().err
    )


def test_a_broken_workflow_is_skipped_and_left_to_doctor(gate, capsys):
    files = {**protected().files, ".github/workflows/broken.yml": "jobs: [\n"}
    code, out, _ = gate(unprotected(files=files), "protect", REPO, capsys=capsys)
    assert code == 1
    assert "open  .github/workflows/broken.yml: not valid YAML" in out


def test_an_organisation_with_a_repository_that_could_not_be_checked(gate, capsys):
    scenario = unprotected(admin_tokens={TOKEN: AdminToken(role="write")})
    code, out, _ = gate(scenario, "protect", "--org", "octo-org", capsys=capsys)
    assert code == 2
    assert out.splitlines()[-2].startswith(
        f"could not check {REPO}: the token from GH_TOKEN belongs to someone"
    )
    assert out.splitlines()[-1] == "1 repository: 0 protected, 0 with findings open, 1 could not be checked"
    code, out, _ = gate(scenario, "protect", "--org", "octo-org", "--format", "json", capsys=capsys)
    answer = json.loads(out)
    assert answer["repositories"] == [] and answer["could_not_check"][0]["code"] == "admin-token-refused"


def test_the_token_is_never_in_a_repr():
    from app.github.admin import AdminGitHub
    from app.github.admin import AdminToken as Token

    token = Token(SecretStr(TOKEN), "GH_TOKEN")
    assert TOKEN not in repr(token) and TOKEN not in repr(
        AdminGitHub(None, token)
    )  # no transport needed for a repr


def test_a_gh_that_fails_gives_no_token(monkeypatch, tmp_path):
    from app.github.admin import AdminTokenError, find_admin_token

    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\necho 'not logged in' >&2\nexit 1\n")
    gh.chmod(0o755)
    with pytest.raises(AdminTokenError, match="set GH_TOKEN \\(or GITHUB_TOKEN\\)"):
        find_admin_token(environ={"PATH": str(tmp_path)})
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> Any:
        calls.append(argv)
        raise OSError("cannot run")

    with pytest.raises(AdminTokenError):
        find_admin_token(host="ghe.example.com", environ={"PATH": str(tmp_path)}, run=run)
    assert calls == [[str(gh), "auth", "token", "--hostname", "ghe.example.com"]]


def test_without_a_targeted_environment_only_the_ruleset_is_written_and_it_says_so(gate, capsys):
    scenario = unprotected(files={".github/workflows/ci.yml": protected().files[".github/workflows/ci.yml"]})
    code, out, _ = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 0
    assert writes(scenario) == [f"POST /repos/{REPO}/rulesets"]
    assert "note  no workflow on main names an environment: no environment to gate" in out


def test_a_merge_queue_on_the_branch_is_noted_the_check_is_required_there_too(gate, capsys):
    queue = {
        "type": "merge_queue",
        "parameters": {
            "check_response_timeout_minutes": 60,
            "grouping_strategy": "ALLGREEN",
            "max_entries_to_build": 5,
            "max_entries_to_merge": 5,
            "merge_method": "SQUASH",
            "min_entries_to_merge": 1,
            "min_entries_to_merge_wait_minutes": 5,
        },
        "ruleset_id": 9,
        "ruleset_source_type": "Repository",
        "ruleset_source": REPO,
    }
    code, out, _ = gate(unprotected(branch_rules={"main": [queue]}), "protect", REPO, capsys=capsys)
    assert code == 0
    assert (
        f"note  main merges through a merge queue: GitHub requires {MERGE_CHECK} on each merge group's" in out
    )


def test_a_repository_the_app_is_not_installed_on_could_not_be_checked(gate, capsys):
    scenario = unprotected(installed=False)
    code, _, err = gate(scenario, "protect", REPO, capsys=capsys)
    assert code == 2
    assert "is not installed on octo-org/octo-repo" in err
    assert writes(scenario) == []
