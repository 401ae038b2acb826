"""``agent-gate doctor``: what it reports about a repository, read through the App from the fake GitHub.

The protected repository: every environment a workflow targets has the agent-gate App's deployment
protection rule enabled, the default branch's ruleset requires ``agent-gate / merge`` from the
agent-gate App, and no job has an OIDC identity outside a gated environment unless it only asks
the gate. Each test takes one of those away and expects exactly one open finding saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.cli import main, options
from app.cli.doctor import MERGE_CHECK, Report, diagnose
from app.errors import GitHubError
from app.github.client import GitHubClient
from app.publish.checks import check_name
from app.settings import GitHubSettings, Settings
from tests.fake_github import APP_ID, DeploymentRule, Failure, FakeGitHub, Scenario
from tests.github.conftest import app_key_pem, github_settings

REPO = "octo-org/octo-repo"
OTHER_APP = 4242

DEPLOY = """\
name: deploy
on: {push: {branches: [main]}}
permissions: {contents: read}
jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: production
    permissions: {id-token: write, contents: read}
    steps:
      - run: ./deploy.sh
"""
MERGE = """\
name: merge
on: workflow_dispatch
permissions: {}
jobs:
  merge:
    runs-on: ubuntu-latest
    permissions: {id-token: write, pull-requests: read}
    steps:
      - uses: acme/agent-gate/action@0123456789abcdef0123456789abcdef01234567
        with: {gate-url: "https://gate.example.com", action: merge}
"""
CI = """\
on: pull_request
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: make test
"""


def required_check(context: str, integration_id: int | None, ruleset_id: int = 7) -> dict[str, Any]:
    check: dict[str, Any] = {"context": context}
    if integration_id is not None:
        check["integration_id"] = integration_id
    return {
        "type": "required_status_checks",
        "parameters": {"required_status_checks": [check], "strict_required_status_checks_policy": False},
        "ruleset_id": ruleset_id,
        "ruleset_source": REPO,
        "ruleset_source_type": "Repository",
    }


def merge_queue(ruleset_id: int = 9) -> dict[str, Any]:
    """A ``merge_queue`` rule (``repository-rule-merge-queue``) as GitHub lists a branch's rules."""
    return {
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
        "ruleset_id": ruleset_id,
        "ruleset_source": REPO,
        "ruleset_source_type": "Repository",
    }


def protected(**changes: Any) -> Scenario:
    """A repository that defers to the gate everywhere; ``changes`` take one protection away."""
    fields: dict[str, Any] = {
        "environments": {"production": [DeploymentRule(APP_ID)]},
        "branch_rules": {"main": [required_check(MERGE_CHECK, APP_ID)]},
        "files": {
            ".github/workflows/deploy.yml": DEPLOY,
            ".github/workflows/merge.yml": MERGE,
            ".github/workflows/ci.yml": CI,
            ".github/workflows/README.md": "not a workflow",
        },
    }
    return Scenario(**{**fields, **changes})


@pytest.fixture
def run() -> Iterator[Any]:
    servers: list[FakeGitHub] = []

    def diagnose_on(scenario: Scenario) -> Report:
        server = FakeGitHub(scenario).start()
        servers.append(server)
        client = GitHubClient(github_settings(server.url))
        return diagnose(client, REPO, app_id=APP_ID, app_events=client.app_events())

    yield diagnose_on
    for server in servers:
        server.close()  # fails the test if the fake answered outside GitHub's schemas


@pytest.fixture
def fake_app() -> Iterator[Any]:
    servers: list[FakeGitHub] = []

    def start(scenario: Scenario) -> FakeGitHub:
        servers.append(FakeGitHub(scenario).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def opened(report: Report) -> list[str]:
    return [f"{f.subject}: {f.message}" for f in report.open]


# --- what is open -------------------------------------------------------------------------------------


def test_an_environment_without_the_rule_is_open_and_says_how_to_enable_it(run):
    report = run(protected(environments={"production": []}))
    [finding] = opened(report)
    assert finding.startswith("environment production: no agent-gate deployment protection rule")
    assert (
        ".github/workflows/deploy.yml job deploy get its secrets and an OIDC identity without the gate"
        in finding
    )
    assert (
        f'POST /repos/{REPO}/environments/production/deployment_protection_rules {{"integration_id": {APP_ID}}}'
        in finding
    )


def test_an_app_github_does_not_offer_as_a_rule_is_told_what_it_lacks(run):
    [finding] = opened(run(protected(environments={"production": []}, rule_apps={OTHER_APP: "another-gate"})))
    assert (
        "GitHub does not offer the agent-gate App as a rule yet: give the App Deployments: read and write"
        in finding
    )


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([DeploymentRule(OTHER_APP, slug="another-gate")], "no agent-gate deployment protection rule"),
        ([DeploymentRule(APP_ID, enabled=False)], "the agent-gate rule is added but disabled"),
    ],
    ids=["another-apps-rule-does-not-count", "a-disabled-rule-does-not-count"],
)
def test_only_the_agent_gate_apps_enabled_rule_gates_an_environment(run, rules, expected):
    [finding] = opened(run(protected(environments={"production": rules})))
    assert expected in finding


def test_a_targeted_environment_that_does_not_exist_yet_is_open(run):
    [finding] = opened(run(protected(environments={})))
    assert "environment production: does not exist yet, so GitHub creates it unprotected" in finding


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([], f"nothing requires {MERGE_CHECK}, so an agent's pull request can be merged"),
        (
            [required_check(MERGE_CHECK, None)],
            f"ruleset 7 requires {MERGE_CHECK} from any source, so a workflow or another App can post",
        ),
        ([required_check(MERGE_CHECK, OTHER_APP)], f"ruleset 7 requires {MERGE_CHECK} from App {OTHER_APP}"),
        ([required_check("agent-gate / deploy", APP_ID)], f"nothing requires {MERGE_CHECK}"),
    ],
    ids=["no-ruleset", "any-source", "another-app", "another-check"],
)
def test_the_merge_check_must_be_required_from_the_agent_gate_app(run, rules, expected):
    [finding] = opened(run(protected(branch_rules={"main": rules})))
    assert finding.startswith("ruleset on main: " + expected)
    assert f"integration_id {APP_ID}" in finding


def test_a_job_with_an_identity_outside_a_gated_environment_is_open(run):
    files = {
        **protected().files,
        ".github/workflows/cloud.yml": DEPLOY.replace("    environment: production\n", ""),
    }
    [finding] = opened(run(protected(files=files)))
    assert finding.startswith(
        ".github/workflows/cloud.yml job deploy: requests id-token: write outside an environment"
    )
    assert "drop id-token: write" in finding


def test_write_all_is_an_identity_too(run):
    files = {
        **protected().files,
        ".github/workflows/all.yml": CI.replace("on: pull_request", "on: push\npermissions: write-all"),
    }
    [finding] = opened(run(protected(files=files)))
    assert finding.startswith(".github/workflows/all.yml job test: requests id-token: write")


CALLER = """\
on: push
jobs:
  release:
    permissions: {id-token: write, contents: read}
    uses: CALLEE
"""
CALLEE = """\
on: workflow_call
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - run: ./publish.sh
"""


@pytest.mark.parametrize(
    ("callee", "files", "expected"),
    [
        (
            "./.github/workflows/publish.yml",
            {".github/workflows/publish.yml": CALLEE},
            ".github/workflows/publish.yml job publish: gets id-token: write from .github/workflows/caller.yml job "
            "release outside an environment",
        ),
        (
            "octo-org/shared/.github/workflows/publish.yml@0123456789abcdef0123456789abcdef01234567",
            {},
            ".github/workflows/caller.yml job release: passes id-token: write to octo-org/shared/.github/workflows/"
            "publish.yml@0123456789abcdef0123456789abcdef01234567, which doctor does not read",
        ),
    ],
    ids=["local-callee-inherits-it", "remote-callee-is-not-read"],
)
def test_an_identity_passed_to_a_reusable_workflow_is_followed(run, callee, files, expected):
    all_files = {
        **protected().files,
        ".github/workflows/caller.yml": CALLER.replace("CALLEE", callee),
        **files,
    }
    [finding] = opened(run(protected(files=all_files)))
    assert finding.startswith(expected)


def test_a_local_callee_in_a_gated_environment_holds(run):
    gated = CALLEE.replace(
        "    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    environment: production\n"
    )
    files = {
        **protected().files,
        ".github/workflows/caller.yml": CALLER.replace("CALLEE", "./.github/workflows/publish.yml"),
        ".github/workflows/publish.yml": gated,
    }
    assert opened(run(protected(files=files))) == []


def test_an_environment_chosen_at_run_time_is_open_while_an_environment_is_ungated(run):
    chooser = DEPLOY.replace("environment: production", "environment: ${{ inputs.target }}")
    files = {**protected().files, ".github/workflows/choose.yml": chooser}
    report = run(protected(files=files, environments={"production": [DeploymentRule(APP_ID)], "staging": []}))
    assert any(
        f.startswith(".github/workflows/choose.yml job deploy: picks its environment at run time")
        and "staging" in f
        for f in opened(report)
    )


def test_a_broken_workflow_is_open(run):
    files = {**protected().files, ".github/workflows/broken.yml": "jobs: [\n"}
    [finding] = opened(run(protected(files=files)))
    assert finding.startswith(".github/workflows/broken.yml: not valid YAML")


def test_a_part_github_refuses_is_open_and_names_the_permission(run):
    scenario = protected(
        failures=[Failure("/environments$", 403, message="Resource not accessible by integration")]
    )
    [finding] = opened(run(scenario))
    assert finding.startswith("environments: could not be read (GitHub refused access (403")
    assert "the App needs Actions: read" in finding


QUEUED = [required_check(MERGE_CHECK, APP_ID), merge_queue()]


def test_a_merge_queue_whose_groups_the_app_does_not_receive_is_open(run):
    events = ["check_run", "check_suite", "pull_request", "pull_request_review"]
    [finding] = opened(run(protected(branch_rules={"main": QUEUED}, app_events=events)))
    assert finding.startswith(
        f"merge queue on main: ruleset 9 queues merges into main, and GitHub requires {MERGE_CHECK} on each merge "
        "group, but the App does not receive merge_group, so every queued pull request waits for the queue's timeout"
    )


def test_a_merge_queue_whose_groups_the_app_answers_holds(run):
    report = run(protected(branch_rules={"main": QUEUED}))
    assert report.open == []
    assert report.findings[-1].line() == (
        f"ok    merge queue on main: ruleset 9 queues merges into main, and GitHub requires {MERGE_CHECK} on each "
        "merge group; the App receives merge_group and answers each group"
    )


def test_a_merge_queue_with_the_apps_events_unread_is_open(fake_app):
    server = fake_app(protected(branch_rules={"main": QUEUED}))
    report = diagnose(GitHubClient(github_settings(server.url)), REPO, app_id=APP_ID)
    [finding] = opened(report)
    assert "the App's events could not be read (GET /app)" in finding


# --- what holds ------------------------------------------------------------------------------------------


def test_a_protected_repository_has_nothing_open(run):
    report = run(protected())
    assert report.open == []
    assert [f.line() for f in report.findings] == [
        "ok    environment production: the agent-gate deployment protection rule is enabled (used by "
        ".github/workflows/deploy.yml job deploy)",
        "ok    .github/workflows: 3 jobs read; none gets an OIDC identity outside a gated environment (1 use theirs "
        "to ask the gate)",
        f"ok    ruleset on main: ruleset 7 requires {MERGE_CHECK} from the agent-gate App ({APP_ID})",
    ]
    assert report.lines()[-1] == f"nothing open: {REPO} defers to agent-gate (App {APP_ID})"


def test_the_default_branch_is_the_one_read(run):
    scenario = protected(
        default_branch="trunk", branch_rules={"trunk": [required_check(MERGE_CHECK, APP_ID)]}
    )
    assert run(scenario).open == []
    assert all("ref=trunk" in r["query"] for r in scenario.requests if "/contents/" in r["path"])


def test_an_untargeted_ungated_environment_is_only_a_note(run):
    report = run(protected(environments={"production": [DeploymentRule(APP_ID)], "sandbox": []}))
    assert report.open == []
    assert (
        "note  environment sandbox: no agent-gate rule, and no workflow on the default branch targets it"
        in report.lines()
    )


def test_environments_are_read_past_the_first_page(run):
    many = {f"env-{i:03d}": [DeploymentRule(APP_ID)] for i in range(120)}
    files = {".github/workflows/deploy.yml": DEPLOY.replace("production", "env-119")}
    report = run(protected(environments=many, files=files))
    assert report.open == []


def test_no_workflows_is_a_note(run):
    report = run(protected(files={}))
    assert [f.line() for f in report.findings if f.status == "note"] == [
        "note  .github/workflows: none on main"
    ]


def test_an_uninstalled_app_is_an_error_not_a_clean_bill():
    with (
        FakeGitHub(protected(installed=False)) as server,
        pytest.raises(GitHubError, match="not installed on octo-org/octo-repo"),
    ):
        diagnose(GitHubClient(github_settings(server.url)), REPO, app_id=APP_ID)


# --- the command --------------------------------------------------------------------------------------------


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """The command's settings, with the App's API at the fake (GATE_GITHUB_API_URL takes https only)."""

    def point_at(server: FakeGitHub) -> None:
        github = GitHubSettings(app_id=APP_ID, private_key=SecretStr(app_key_pem()), api_url=server.url)
        monkeypatch.setattr(
            options, "load_settings", lambda: Settings(data_dir=tmp_path / "var", github=github)
        )

    return point_at


def test_the_command_exits_1_and_prints_one_line_per_finding_when_something_is_open(app_env, capsys):
    with FakeGitHub(protected(environments={"production": []})) as server:
        app_env(server)
        assert main(["doctor", REPO]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("open  environment production: no agent-gate deployment protection rule")
    assert out[-1] == f"1 open: {REPO} is not fully protected by agent-gate"


def test_the_command_exits_0_when_nothing_is_open(app_env, capsys):
    with FakeGitHub(protected(branch_rules={"main": QUEUED})) as server:
        app_env(server)
        assert main(["doctor", REPO]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == f"nothing open: {REPO} defers to agent-gate (App {APP_ID})"
    )


def test_the_command_needs_the_app_and_a_repository_name(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path / "var"))
    for name in ("GATE_GITHUB_APP_ID", "GATE_GITHUB_PRIVATE_KEY", "GATE_GITHUB_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["doctor", "not a repo"]) == 2
    assert "expected OWNER/REPO" in capsys.readouterr().err
    assert main(["doctor", REPO]) == 2, "could not check"
    assert "set GATE_GITHUB_APP_ID and its key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (protected(installed=False), "is not installed on octo-org/octo-repo"),
        (protected(failures=[Failure.server_error("/repos/octo-org/octo-repo$")]), "GitHub answered 500"),
        (protected(failures=[Failure.server_error("/environments$", 503)]), "GitHub answered 503"),
        (protected(failures=[Failure.secondary_rate_limit("/rules/branches/")]), "rate limit"),
    ],
    ids=["app-not-installed", "github-failing", "github-failing-midway", "rate-limited"],
)
def test_what_could_not_be_checked_exits_2_never_a_clean_bill_or_a_finding(
    app_env, capsys, scenario, expected
):
    with FakeGitHub(scenario) as server:
        app_env(server)
        assert main(["doctor", REPO]) == 2
        assert expected in capsys.readouterr().err
        assert main(["doctor", REPO, "--format", "json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "could-not-check" and expected in answer["error"]["message"]


def test_unreachable_github_exits_2(app_env, capsys):
    server = FakeGitHub(protected())
    app_env(server)  # never started: nothing listens
    server.close()
    assert main(["doctor", REPO]) == 2
    assert "could not be reached" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("scenario", "code", "status"),
    [(protected(), 0, "protected"), (protected(environments={"production": []}), 1, "open")],
    ids=["protected", "findings-open"],
)
def test_json_for_scripts(app_env, capsys, scenario, code, status):
    with FakeGitHub(scenario) as server:
        app_env(server)
        assert main(["doctor", REPO, "--format", "json"]) == code
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == status and answer["repository"] == REPO and answer["app_id"] == APP_ID
    assert answer["open"] == code
    assert {f["status"] for f in answer["findings"]} <= {"ok", "open", "note"}


def test_the_check_name_is_the_one_the_gate_posts():
    assert check_name("merge") == MERGE_CHECK


def test_the_command_says_when_the_apps_events_cannot_be_read(app_env, capsys):
    scenario = protected(
        branch_rules={"main": QUEUED}, failures=[Failure(r"^/app$", 404, message="Not Found")]
    )
    with FakeGitHub(scenario) as server:
        app_env(server)
        assert main(["doctor", REPO]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("open  merge queue on main:") and "GET /app" in line for line in out)
