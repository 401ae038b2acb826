"""``agent-gate keys rotate``."""

from __future__ import annotations

from app.cli import main
from app.store.sqlite import SQLiteStore


def test_keys_rotate_adds_a_key_and_keeps_the_old_one_published(data_dir, capsys):
    from app.credentials.keys import SigningKeys

    store = SQLiteStore(data_dir / "agent-gate.db")
    first, _ = SigningKeys(store).current()
    assert main(["keys", "rotate"]) == 0
    assert "new grant-signing key gk_" in capsys.readouterr().out
    second, _ = SigningKeys(store).current()
    assert second != first
    store.close()


def test_keys_rotate_as_json_names_the_new_key(data_dir, capsys):
    import json

    from app.credentials.grants import SigningKeys

    store = SQLiteStore(data_dir / "agent-gate.db")
    SigningKeys(store).current()
    assert main(["keys", "rotate", "--format", "json"]) == 0
    kid = json.loads(capsys.readouterr().out)["kid"]
    assert kid.startswith("gk_") and SigningKeys(store).current()[0] == kid
    store.close()
