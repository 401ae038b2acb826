"""Live simulation: explain --repo O/R --pr N / --run ID decides a real PR's merge or a run's deploy
with the evidence read through the App from the fake GitHub, and records and mints nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.cli import main, options
from app.settings import GitHubSettings, Settings
from tests.builders import whole
from tests.fake_github import APP_ID, FakeGitHub, ReviewSpec, Scenario
from tests.github.conftest import BOB, HEAD, app_key_pem, base_scenario

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
owners: ['@octo-org/platform']
rules:
  - name: merge
    actions: [merge]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    approvals: {count: 1}
  - name: deploy-production
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [production]
    approvals: {count: 1, sources: [environment]}
"""


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "octo-org.yml").write_text(whole(POLICY))
    servers: list[FakeGitHub] = []

    def explain(scenario: Scenario, *args: str) -> tuple[int, dict[str, Any]]:
        server = FakeGitHub(scenario).start()
        servers.append(server)
        github = GitHubSettings(
            app_id=APP_ID, private_key=SecretStr(app_key_pem()), api_url=server.url, backoff=0
        )
        monkeypatch.setattr(
            options, "load_settings", lambda: Settings(data_dir=tmp_path / "var", github=github)
        )
        code = main(["explain", "--policy", str(tmp_path / "policies"), "--format", "json", *args])
        return code, {"requests": list(scenario.requests)}

    yield explain
    for server in servers:
        server.close()  # fails the test if the fake answered outside GitHub's schemas
    assert not (tmp_path / "var").exists(), "a simulation records nothing"


def _decision(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)["decision"]


def test_a_copilot_pr_without_approval_would_not_merge(live: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, seen = live(base_scenario(), "--repo", "octo-org/octo-repo", "--pr", "12", "--action", "merge")
    decision = _decision(capsys)
    assert code == 3 and decision["allowed"] is False
    assert decision["subject"]["agent"] is True and decision["subject"]["sha"] == HEAD
    assert decision["evidence_source"] == "github" and decision["github_api_calls"] > 0
    assert all(
        r["method"] == "GET" or r["path"].endswith("/access_tokens") or r["path"] == "/graphql"
        for r in seen["requests"]
    ), "nothing is written to GitHub: no check run, no comment"


def test_the_same_pr_approved_by_an_independent_human_would_merge(
    live: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = base_scenario()
    scenario.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    code, _ = live(scenario, "--repo", "octo-org/octo-repo", "--pr", "12", "--action", "merge")
    decision = _decision(capsys)
    assert (code, decision["allowed"], decision["rule"]) == (0, True, "merge"), decision["reasons"]


def test_a_run_deploy_is_decided_from_the_run(live: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = live(
        base_scenario(),
        "--repo",
        "octo-org/octo-repo",
        "--run",
        "9000",
        "--action",
        "deploy",
        "--environment",
        "production",
    )
    decision = _decision(capsys)
    assert (
        code == 3
        and decision["subject"]["run_id"] == 9000
        and decision["subject"]["environment"] == "production"
    )
    assert decision["subject"]["actor"] == "alice"
    assert any(r["code"] == "approvals" and not r["ok"] for r in decision["reasons"]), decision["reasons"]


REFUSED = [
    pytest.param(["--repo", "octo-org/octo-repo", "--action", "merge"], "exactly one of --pr N", id="neither-pr-nor-run"),
    pytest.param(["--repo", "octo-org/octo-repo", "--pr", "1", "--run", "2", "--action", "merge"], "exactly one of", id="both"),
    pytest.param(["--repo", "octo-org/octo-repo", "--run", "9000", "--action", "deploy"], "--run needs --environment", id="run-without-environment"),
    pytest.param(["--repo", "not a repo", "--pr", "1", "--action", "merge"], "expected OWNER/REPO", id="bad-repository"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSED)
def test_malformed_questions(
    live: Any, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _ = live(base_scenario(), *args)
    assert code == 1 and message in capsys.readouterr().err


def test_offline_the_remedy_names_evidence_not_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.builders import claims, whole

    (tmp_path / "claims.json").write_text(json.dumps(claims(environment="production")))
    (tmp_path / "p.yml").write_text(whole(POLICY))
    args = [
        "explain",
        "--claims",
        str(tmp_path / "claims.json"),
        "--action",
        "deploy",
        "--environment",
        "production",
    ]
    assert main([*args, "--policy", str(tmp_path / "p.yml"), "--format", "json"]) == 3
    remedy = json.loads(capsys.readouterr().out)["decision"]["remedy"]
    assert remedy.startswith("pass the approvals and provenance as --evidence FILE")
    assert "configure the GitHub App" not in remedy


def test_without_the_app_it_says_what_to_configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(options, "load_settings", lambda: Settings(data_dir=tmp_path / "var"))
    assert main(["explain", "--repo", "octo-org/octo-repo", "--pr", "12", "--action", "merge"]) == 1
    assert "set GATE_GITHUB_APP_ID and its key, or explain offline" in capsys.readouterr().err
