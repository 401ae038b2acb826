"""agent-gate inventory: the identities the gate has seen, with owners, flags and filters, from the
decisions it recorded (through POST /v1/decisions, end to end)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.cli import main
from app.governance.history import read
from app.governance.inventory import Filters, build_inventory
from app.policy.loader import load_policies
from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy

DEPLOY = "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"

# The test policy, owned in part, naming a repository and an agent that never ask anything.
POLICY = (
    TEST_POLICY.replace(
        "  - name: deploy-staging\n", "  - name: deploy-staging\n    owners: ['@octo-org/platform']\n", 1
    )
    + """  - name: deploy-docs
    owners: ['@octo-org/docs']
    actions: [deploy]
    repositories: [{id: 4000, name: octo-org/docs, owners: ['@octo-org/docs']}]
agents:
  ai:
    - {login: "acme-agent[bot]", name: ACME agent}
"""
)


@pytest.fixture
def seen(app: Flask, policy_file: Path, ask: Callable[..., Any]) -> Path:
    """Three decisions: a human deploy to staging twice (one allowed, one denied), an agent reading."""
    write_policy(policy_file, POLICY)
    assert ask({"action": "deploy"}, environment="staging").status_code == 200
    assert (
        ask(
            {"action": "deploy", "environment": "staging"}, ref="refs/heads/dev", environment="staging"
        ).status_code
        == 403
    )
    assert (
        ask({"action": "read"}, agent=True, repository="octo-org/other", repository_id="3000").status_code
        == 200
    )
    return policy_file


def _run(capsys: pytest.CaptureFixture[str], settings: Any, *args: str) -> str:
    assert (
        main(["inventory", "--database", settings.database_url, "--policy", str(settings.policy_path), *args])
        == 0
    )
    return capsys.readouterr().out


def _json(capsys: pytest.CaptureFixture[str], settings: Any, *args: str) -> list[dict[str, Any]]:
    return json.loads(_run(capsys, settings, "--format", "json", *args))


def test_every_workload_and_agent_seen_is_listed_with_counts(
    seen: Path, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {r["key"]: r for r in _json(capsys, settings)}
    staging = rows[f"2000:{DEPLOY}:staging"]
    assert (staging["kind"], staging["repository"], staging["environment"]) == (
        "workload",
        "octo-org/octo-repo",
        "staging",
    )
    assert (staging["asked"], staging["allowed"], staging["denied"]) == (2, 1, 1)
    assert staging["owners"] == ["@octo-org/platform"]
    assert staging["first_seen"] <= staging["last_seen"]
    assert "unnamed" not in staging["flags"] and "unowned" not in staging["flags"]
    [agent] = [r for r in rows.values() if r["kind"] == "agent"]
    assert (agent["login"], agent["account_id"], agent["asked"], agent["allowed"]) == (
        "Copilot",
        198982749,
        1,
        1,
    )
    assert agent["agent"] and agent["repositories"] == ["octo-org/other"]


def test_policy_named_identities_that_never_asked_are_flagged(
    seen: Path, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {r["key"]: r for r in _json(capsys, settings)}
    docs = rows["repository:4000"]
    assert (docs["kind"], docs["flags"], docs["owners"]) == ("never-seen", ["never-seen"], ["@octo-org/docs"])
    assert rows["agent:acme-agent[bot]"]["flags"] == ["never-seen", "unowned"]


def test_a_workload_no_rule_names_is_flagged_unnamed(
    seen: Path, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = [r for r in _json(capsys, settings) if r["kind"] == "workload" and r["actions"] == ["read"]]
    assert reader and all("unnamed" in r["flags"] and "unowned" in r["flags"] for r in reader)


FILTERS = [
    pytest.param(["--agents"], {"agent"}, id="agents"),
    pytest.param(["--unowned"], {"workload", "agent", "never-seen"}, id="unowned"),
    pytest.param(["--repository", "octo-org/docs"], {"never-seen"}, id="repository"),
    pytest.param(["--stale", "30"], set(), id="stale-none-yet"),
]


@pytest.mark.parametrize(("args", "kinds"), FILTERS)
def test_filters(
    seen: Path, settings: Any, capsys: pytest.CaptureFixture[str], args: list[str], kinds: set[str]
) -> None:
    rows = _json(capsys, settings, *args)
    assert {r["kind"] for r in rows} == kinds
    if "--unowned" in args:
        assert all(r["owners"] == [] for r in rows)


def test_stale_identities_are_offboarding_candidates(seen: Path, settings: Any) -> None:
    from app.store.opener import open_store

    decisions, ledger = read(open_store(settings.database_url).iter_audit())
    later = datetime.now(UTC) + timedelta(days=31)
    rows = build_inventory(decisions, ledger, load_policies(settings.policy_path), now=later, stale_days=30)
    stale = [r for r in rows if Filters(stale_days=30).keep(r)]
    assert stale and {r.kind for r in stale} == {"workload", "agent"}


def test_table_and_csv(seen: Path, settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table = _run(capsys, settings)
    assert table.splitlines()[0].split()[:3] == ["kind", "key", "owners"]
    assert table.rstrip().endswith("identities")
    rows = list(csv.DictReader(io.StringIO(_run(capsys, settings, "--format", "csv"))))
    assert {r["kind"] for r in rows} == {"workload", "agent", "never-seen"}
    assert all(r["first_seen"] for r in rows)


def test_a_negative_stale_is_refused(settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "inventory",
                "--database",
                settings.database_url,
                "--policy",
                str(settings.policy_path),
                "--stale",
                "-1",
            ]
        )
        == 1
    )
    assert "--stale: got -1, expected a number of days" in capsys.readouterr().err
