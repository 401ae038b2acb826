"""The JSON docs/cli.md documents is the JSON the commands print: each ```json block under a heading
naming a command is compared, key by key, with that command's output on a store a real gate wrote
(decisions, a grant issued and revoked, an audit-mode would-deny, a confirmed break-glass, a webhook
job given up on)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.cli import main
from app.settings import Settings
from tests.builders import whole
from tests.cli.conftest import REPO
from tests.conftest import TEST_POLICY

DOC = (REPO / "docs" / "cli.md").read_text("utf-8")

POLICY = (
    TEST_POLICY.replace(
        "    environments: [staging]\n",
        "    environments: [staging]\n    grant: {ttl: 300, audience: 'deploy:staging'}\n",
    ).replace(
        "    environments: [production]\n    approvals: {count: 1}\n",
        "    environments: [production]\n    approvals: {count: 1}\n    mode: audit\n",
    )
    + "break_glass: {invokers: ['@octocat', '@alice'], confirm: true, max_minutes: 30}\n"
)
ALICE = {"actor": "alice", "actor_id": "1001"}


def documented() -> dict[str, Any]:
    """Each command a ``## `...` `` heading names, with the JSON block documented for it (in order)."""
    found: dict[str, Any] = {}
    for section in re.split(r"^## ", DOC, flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        commands = re.findall(r"`([^`]+--format json)`", heading)
        blocks = re.findall(r"```json\n(.*?)```", body, re.S)
        for command, block in zip(commands, blocks, strict=False):
            found[command] = json.loads(block)
    return found


def mismatches(doc: Any, real: Any, where: str = "") -> list[str]:
    """Where ``real`` is not shaped as ``doc``: keys (all of them, or those listed where the doc
    writes "..."), and the type of every documented non-null value."""
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return [f"{where or '.'}: expected an object, got {real!r}"]
        listed = set(doc) - {"..."}
        out = [f"{where}.{k}: documented, not printed" for k in sorted(listed - set(real))]
        if "..." not in doc:
            out += [f"{where}.{k}: printed, not documented" for k in sorted(set(real) - listed)]
        for key in sorted(listed & set(real)):
            out += mismatches(doc[key], real[key], f"{where}.{key}")
        return out
    if isinstance(doc, list):
        if not isinstance(real, list):
            return [f"{where}: expected a list, got {real!r}"]
        return mismatches(doc[0], real[0], f"{where}[0]") if doc and real else []
    if doc is None or real is None or type(doc) is type(real):
        return []
    return [f"{where}: documented as {type(doc).__name__}, printed {type(real).__name__}"]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "octo-org.yml"
    path.parent.mkdir()
    path.write_text(whole(POLICY))
    return path


@pytest.fixture
def written(
    client: FlaskClient, mint: Callable[..., str], settings: Settings, policy_file: Path
) -> dict[str, str]:
    """What a gate wrote into its store; the ids the commands are asked about."""

    def post(path: str, body: dict[str, Any], token: str) -> Any:
        answer = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code in (200, 201), (path, answer.get_json())
        return answer.get_json()

    staging = {"environment": "staging", "ref": "refs/heads/main"}
    deployed = post("/v1/decisions", {"action": "deploy", "grant": True}, mint(**staging))
    post("/v1/grants/revoke", {}, deployed["grant"]["token"])
    production = {"environment": "production", "ref": "refs/heads/main"}
    would_deny = post("/v1/decisions", {"action": "deploy"}, mint(**production))
    assert would_deny["would_deny"] is True
    glass = post(
        "/v1/break-glass",
        {"action": "deploy", "minutes": 15, "justification": "INC-42: production is down, ship the fix"},
        mint(),
    )
    post(f"/v1/break-glass/{glass['id']}/confirm", {}, mint(**ALICE))

    store = client.application.extensions["agent_gate"].store
    now = int(time.time())
    store.enqueue_job("d-dead", "webhook", "pull_request", b"{}", now=now)
    job = store.claim_job("w", now=now, lease=60)
    assert job is not None and store.fail_job(job.id, "w", now=now, error="github-unavailable", retry_at=None)
    return {"DECISION_ID": deployed["decision_id"], "ID": "d-dead", "database": settings.database_url}


ARGV = {
    "audit verify --format json": ["audit", "verify"],
    "audit show DECISION_ID --format json": ["audit", "show", "DECISION_ID"],
    "audit report --format json": ["audit", "report"],
    "inventory --format json": ["inventory"],
    "break-glass list --format json": ["break-glass", "list"],
    "queue list --format json": ["queue", "list"],
    "queue retry ID --format json": ["queue", "retry", "ID"],
    "db upgrade --format json": ["db", "upgrade"],
    "keys rotate --format json": ["keys", "rotate"],
}


def test_every_command_documented_is_checked():
    assert sorted(documented()) == sorted(ARGV)


@pytest.mark.parametrize("command", sorted(ARGV))
def test_the_documented_json_is_what_the_command_prints(command, written, policy_file, capsys):
    argv = [written.get(word, word) for word in ARGV[command]]
    extra = ["--policy", str(policy_file)] if argv[0] == "inventory" else []
    assert main([*argv, "--format", "json", "--database", written["database"], *extra]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed, "an empty answer shows nothing of its shape"
    assert mismatches(documented()[command], printed) == []


@pytest.mark.parametrize(
    ("doc", "real", "expected"),
    [
        pytest.param({"a": 1}, {"a": 2}, [], id="same-keys-and-types"),
        pytest.param({"a": 1}, {"a": 1, "b": 2}, [".b: printed, not documented"], id="an-undocumented-key"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, [".b: documented, not printed"], id="a-key-gone"),
        pytest.param({"a": 1, "...": "..."}, {"a": 1, "b": 2}, [], id="an-elided-object"),
        pytest.param(
            [{"a": "x"}], [{"a": 3}], ["[0].a: documented as str, printed int"], id="a-type-changed"
        ),
        pytest.param({"a": None}, {"a": {"b": 1}}, [], id="null-documents-any-value"),
    ],
)
def test_the_comparison_itself(doc, real, expected):
    assert mismatches(doc, real) == expected
