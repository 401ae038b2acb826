"""Which deliveries may share a waiting job: only those whose handling is deciding one subject again.

Payloads are GitHub's own recorded deliveries (tests/fixtures/github-webhooks, @octokit/webhooks-examples).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.events.coalesce import subject_of

EXAMPLES = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "github-webhooks" / "examples.json").read_text()
)["examples"]


def example(event: str, action: str) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(EXAMPLES[event][action])
    return payload


@pytest.mark.parametrize(
    ("event", "action", "coalesces"),
    [
        ("pull_request", "labeled", True),
        ("pull_request", "unlabeled", True),
        ("pull_request", "opened", True),
        ("pull_request", "reopened", True),
        ("pull_request", "ready_for_review", True),
        ("pull_request_review", "submitted", True),
        ("deployment_review", "requested", True),
        ("pull_request", "synchronize", False),  # revokes the old head's grants
        ("pull_request", "closed", False),  # revokes the PR's grants
        ("pull_request_review", "dismissed", False),  # revokes what the approval allowed
        ("check_run", "rerequested", False),  # a person pressed Re-run: run it
        ("check_suite", "rerequested", False),
    ],
)
def test_only_deciding_one_subject_again_coalesces(event: str, action: str, coalesces: bool) -> None:
    assert (subject_of(event, example(event, action)) is not None) is coalesces


def test_a_pull_requests_subject_is_its_event_repository_number_head_and_base() -> None:
    payload = example("pull_request", "labeled")
    pr = payload["pull_request"]
    subject = subject_of("pull_request", payload)
    assert subject == (
        f"pull_request:{payload['repository']['id']}:{pr['number']}:{pr['head']['sha']}:{pr['base']['ref']}"
    )
    pushed = copy.deepcopy(payload)
    pushed["pull_request"]["head"]["sha"] = "f" * 40
    retargeted = copy.deepcopy(payload)
    retargeted["pull_request"]["base"]["ref"] = "release"
    assert len({subject, subject_of("pull_request", pushed), subject_of("pull_request", retargeted)}) == 3
    review = example("pull_request_review", "submitted")
    assert subject_of("pull_request_review", review) != subject, "another event: other handlers"


def test_a_held_deployments_subject_is_its_run() -> None:
    payload = example("deployment_review", "requested")
    assert subject_of("deployment_review", payload) == (
        f"deployment_review:{payload['repository']['id']}:run:{payload['workflow_run']['id']}"
    )
    payload["workflow_run"] = None
    assert subject_of("deployment_review", payload) is None


def test_a_payload_the_gate_cannot_read_runs_alone() -> None:
    """It is queued as it is, and the worker gives it up with its reason."""
    payload = example("pull_request", "labeled")
    del payload["pull_request"]["head"]
    assert subject_of("pull_request", payload) is None
    assert subject_of("ping", {"zen": "Design for failure."}) is None
