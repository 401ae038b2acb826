"""``agent-gate break-glass list``: an override whose window has passed is listed as expired."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from app.cli import main
from app.governance.breakglass import listed_state
from app.store.sqlite import SQLiteStore

NOW = 1_800_000_000


def record(id: str, state: str, *, expires_at: int, confirmer: str | None = "alice") -> dict[str, Any]:
    return {
        "id": id,
        "repository": "octo-org/octo-repo",
        "repository_id": 2000,
        "owner_id": 1000,
        "action": "deploy",
        "justification": "INC-42",
        "invoker": "octocat",
        "invoker_id": "1",
        "run_id": "7",
        "confirmer": confirmer,
        "state": state,
        "created_at": expires_at - 900,
        "expires_at": expires_at,
        "uses": [],
    }


@pytest.mark.parametrize(
    ("state", "expires_at", "shown"),
    [
        pytest.param("active", NOW + 60, "active", id="active-within-its-window"),
        pytest.param("active", NOW, "expired", id="active-at-its-end"),
        pytest.param("active", NOW - 60, "expired", id="active-past-its-end"),
        pytest.param("pending", NOW + 60, "pending", id="awaiting-confirmation"),
        pytest.param("pending", NOW - 60, "expired", id="never-confirmed-in-time"),
    ],
)
def test_the_listed_state_follows_the_clock(state, expires_at, shown):
    assert listed_state(record("bg_1", state, expires_at=expires_at), NOW) == shown


def test_break_glass_list_shows_an_expired_one_as_expired(data_dir, capsys):
    now = int(time.time())
    store = SQLiteStore(data_dir / "agent-gate.db")
    store.save_break_glass(record("bg_old", "active", expires_at=now - 3600))
    store.save_break_glass(record("bg_live", "active", expires_at=now + 600))
    store.close()
    assert main(["break-glass", "list", "--format", "json"]) == 0
    states = {r["id"]: r["state"] for r in json.loads(capsys.readouterr().out)}
    assert states == {"bg_old": "expired", "bg_live": "active"}
    assert main(["break-glass", "list"]) == 0
    out = capsys.readouterr().out
    assert "bg_old expired deploy on octo-org/octo-repo" in out
    assert "bg_live active deploy on octo-org/octo-repo" in out
