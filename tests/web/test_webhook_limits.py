"""Webhook bodies as large as GitHub sends them (25 MB) reach the gate; the API keeps its 64 KB.

A pull request whose description an agent made long must still have its merge check decided: its
``pull_request`` events are hundreds of kilobytes. The limit is per route, checked before the body
is read whole, and the signature is verified over the raw body before anything is parsed.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.web.requests import MAX_BODY_BYTES, MAX_WEBHOOK_BYTES
from tests.github.conftest import base_scenario
from tests.web.test_webhook import Hub, sign

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "github-webhooks" / "examples.json"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


def opened_with_description(hub: Hub, description: str) -> dict[str, Any]:
    """@octokit/webhooks-examples' ``pull_request`` ``opened``, as pull request #12 of the fake's
    repository, with the description an agent wrote."""
    example = copy.deepcopy(json.loads(EXAMPLES.read_text())["examples"]["pull_request"]["opened"])
    pr = hub.scenario.prs[12]
    example["number"] = 12
    example["repository"].update({"id": 2000, "full_name": "octo-org/octo-repo"})
    example["repository"]["owner"].update({"login": "octo-org", "id": 1000})
    body = example["pull_request"]
    body.update({"number": 12, "body": description, "state": "open"})
    body["user"].update({"login": pr.author.login, "id": pr.author.id, "type": pr.author.type})
    body["head"].update({"sha": pr.head_sha, "ref": pr.head_ref})
    body["base"].update({"ref": pr.base_ref})
    return example


def test_a_200_kb_signed_pull_request_event_is_processed(hub):
    payload = opened_with_description(hub, "An agent's long description. " * 7_000)
    assert len(json.dumps(payload)) > 200_000 > MAX_BODY_BYTES
    response = hub.deliver("pull_request", payload)
    assert response.status_code == 202, response.get_json()
    check = hub.merge_check()
    assert check["conclusion"] == "action_required", "the merge check was decided"


def post_raw(hub: Hub, body: bytes, **headers: str) -> Any:
    return hub.web.post(
        "/v1/github/webhook",
        data=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body),
            **headers,
        },
    )


def test_a_body_over_githubs_25_mb_is_refused_with_a_clear_413(hub):
    payload = opened_with_description(hub, "x" * (26 * 1024 * 1024))
    response = post_raw(hub, json.dumps(payload).encode())
    assert response.status_code == 413
    error = response.get_json()
    assert error["errors"][0]["code"] == "payload-too-large"
    assert f"the limit is {MAX_WEBHOOK_BYTES} bytes" in error["message"]
    assert "GitHub's own limit for a webhook payload, 25 MB" in error["message"]
    assert hub.scenario.requests == [], "nothing was done with it"


def test_a_body_of_exactly_25_mb_is_read_and_its_signature_checked(hub):
    body = b"{" + b" " * (MAX_WEBHOOK_BYTES - 2) + b"}"
    response = post_raw(hub, body, **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert response.status_code == 401, "within the limit: refused for its signature, not its size"
    assert response.get_json()["errors"][0]["code"] == "bad-signature"


@pytest.mark.parametrize(
    "path",
    ["/v1/decisions", "/v1/break-glass", "/v1/grants/introspect"],
    ids=["decisions", "break-glass", "grants"],
)
def test_the_api_routes_keep_their_64_kb_limit(hub, path):
    response = hub.web.post(
        path, data=b"{" + b" " * MAX_BODY_BYTES + b"}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert f"the limit is {MAX_BODY_BYTES} bytes" in response.get_json()["message"]
