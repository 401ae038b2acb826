"""``agent-gate db upgrade``: creates or upgrades either store's schema, and refuses a newer one."""

from __future__ import annotations

import pytest

from app.cli import main
from app.store.migrations import latest
from app.store.sqlite_schema import STEPS
from tests.store.conftest import open_any, raw_sql

NEWEST = latest(STEPS)


def test_db_upgrade_creates_then_reports_up_to_date(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--database", store_url]) == 0
    assert capsys.readouterr().out == f"schema version 0 -> {NEWEST}\n"
    assert main(["db", "upgrade", "--database", store_url]) == 0
    assert capsys.readouterr().out == f"schema version {NEWEST} (up to date)\n"


def test_db_upgrade_refuses_a_schema_from_a_newer_gate(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    open_any(store_url).close()
    raw_sql(store_url, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
    assert main(["db", "upgrade", "--database", store_url]) == 1
    assert f"has schema version 99, newer than this gate knows ({NEWEST})" in capsys.readouterr().err


def test_db_upgrade_as_json(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["db", "upgrade", "--database", store_url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"before": 0, "after": NEWEST}
    assert main(["db", "upgrade", "--database", store_url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"before": NEWEST, "after": NEWEST}
