"""``agent-gate dev token``: a GitHub-shaped token from the dev issuer."""

from __future__ import annotations

import jwt

from app.cli import main
from app.tokens.devissuer import DEV_ISSUER_URL


def test_dev_token_is_github_shaped(capsys):
    assert main(["dev", "token", "--agent", "--environment", "production"]) == 0
    token = capsys.readouterr().out.strip()
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == DEV_ISSUER_URL and payload["aud"] == "agent-gate"
    assert payload["actor"] == "Copilot" and payload["actor_id"] == "198982749"
    assert payload["repository_id"] == "2000" and payload["environment"] == "production"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_dev_token_rejects_bad_claim_syntax(capsys):
    assert main(["dev", "token", "--claim", "novalue"]) == 1
    assert "--claim expects NAME=VALUE" in capsys.readouterr().err
