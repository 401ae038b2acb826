"""The ref of a held deployment, end to end against the fake GitHub: a tag push is judged on its
tag, a fork's ``main`` is never the repository's ``main``, and a name a branch and a tag share
(at different commits) is not guessed.

GitHub names the ref of a run only by its short name (the run's ``head_branch``, the event's
``ref`` "(branch or tag) that triggered the workflow", the deployment's ``ref``): the gate resolves
it from the run's event, its head repository and the repository's tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.events.test_deployments import RUN, answers, requested
from tests.fake_github import extract
from tests.github.conftest import base_scenario
from tests.web.test_webhook import Hub

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: deploy-releases
    actions: [deploy]
    repositories: "*"
    refs: [{pattern: "refs/tags/v[0-9.]+"}]
    environments: [production]
  - name: deploy-main
    actions: [deploy]
    repositories: "*"
    refs: [refs/heads/main]
    environments: [staging]
  - name: deploy-previews
    actions: [deploy]
    repositories: "*"
    refs: [{pattern: "refs/pull/[0-9]+/merge"}]
    environments: [preview]
"""
HUMAN = "e" * 40  # a person's commit: no pull request, no agent
FORK = (3000, "forker/octo-repo")


@dataclass
class Case:
    environment: str
    event: str  # the run's event
    head_branch: str  # what GitHub calls it: the short name of a branch or a tag
    ref: str  # what the gate judges
    state: str  # approved / rejected
    tags: dict[str, str] = field(default_factory=dict)
    annotated: set[str] = field(default_factory=set)
    head_repo: tuple[int, str] | None = None
    pull_requests: list[int] = field(default_factory=list)


CASES = [
    pytest.param(
        Case("production", "push", "v1.2.0", "refs/tags/v1.2.0", "approved", tags={"v1.2.0": HUMAN}),
        id="a-tag-push-is-judged-on-its-tag",
    ),
    pytest.param(
        Case(
            "production",
            "push",
            "v1.2.0",
            "refs/tags/v1.2.0",
            "approved",
            tags={"v1.2.0": HUMAN},
            annotated={"v1.2.0"},
        ),
        id="an-annotated-tag-is-followed-to-its-commit",
    ),
    pytest.param(
        Case("production", "release", "v2.0.0", "refs/tags/v2.0.0", "approved"),
        id="a-release-is-its-tag",
    ),
    pytest.param(Case("staging", "push", "main", "refs/heads/main", "approved"), id="a-branch-push"),
    pytest.param(
        Case("production", "push", "v1.2.0", "refs/heads/v1.2.0", "rejected"),
        id="a-branch-named-like-a-tag-with-no-such-tag-is-a-branch",
    ),
    pytest.param(
        Case("production", "push", "v1.2.0", "unresolved:v1.2.0", "rejected", tags={"v1.2.0": "c" * 40}),
        id="a-name-a-tag-shares-at-another-commit-is-not-guessed",
    ),
    pytest.param(
        Case("staging", "pull_request", "main", "refs/pull/unknown/merge", "rejected", head_repo=FORK),
        id="a-forks-main-is-never-the-repositorys-main",
    ),
    pytest.param(
        Case("staging", "workflow_run", "main", "refs/pull/unknown/merge", "rejected", head_repo=FORK),
        id="a-run-of-a-forks-commit-by-any-event-is-not-a-branch",
    ),
    pytest.param(
        Case("staging", "pull_request_target", "main", "refs/pull/unknown/merge", "rejected"),
        id="a-pull-request-run-is-never-a-branch-of-the-repository",
    ),
    pytest.param(
        # Judged on its merge ref, and refused as execute actions from pull_request events always are.
        Case("preview", "pull_request", "feature", "refs/pull/12/merge", "rejected", pull_requests=[12]),
        id="a-pull-request-run-is-its-merge-ref",
    ),
]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario(), policy=POLICY)
    yield h
    h.close()


def hold(hub: Hub, case: Case) -> dict[str, Any]:
    run = hub.scenario.runs[RUN]
    run.event, run.head_branch, run.head_sha = case.event, case.head_branch, HUMAN
    run.head_repo, run.pull_requests = case.head_repo, case.pull_requests
    if case.pull_requests:
        hub.scenario.prs[12].head_sha = HUMAN
        hub.scenario.prs[12].commits[0].sha = HUMAN
    hub.scenario.tags, hub.scenario.annotated_tags = case.tags, case.annotated
    deployment = {"id": 555, "environment": case.environment, "ref": case.head_branch}
    if case.event not in {"pull_request", "pull_request_target"}:
        deployment["sha"] = HUMAN
    return requested(
        case.environment, event=case.event, ref=case.head_branch, sha=HUMAN, deployment=deployment
    )


def judged(hub: Hub) -> dict[str, Any]:
    store = hub.app.extensions["agent_gate"].store
    [record] = [r for r in store.iter_audit() if r.kind == "deployment-protection"]
    subject: dict[str, Any] = record.payload["subject"]
    return subject


@pytest.mark.parametrize("case", CASES)
def test_a_held_deployment_is_judged_on_the_ref_github_ran(hub, case):
    hub.deliver("deployment_protection_rule", hold(hub, case))
    subject = judged(hub)
    assert subject["ref"] == case.ref
    assert subject["sha"] == HUMAN
    assert subject["workflow"].endswith(f"@{case.ref}")
    [answer] = answers(hub)
    assert answer["state"] == case.state, answer["comment"]
    assert hub.scenario.schema_errors == []


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        pytest.param(
            {"sha": "f" * 40}, "the deployment is of commit fffffff", id="the-events-commit-differs"
        ),
        pytest.param(
            {"deployment": {"id": 555, "environment": "staging", "sha": "f" * 40, "ref": "main"}},
            "the deployment is of commit fffffff",
            id="the-deployments-commit-differs",
        ),
        pytest.param({"ref": "release"}, "names ref 'release' but run 9000 ran on 'main'", id="another-ref"),
        pytest.param(
            {"deployment": {"id": 555, "environment": "staging", "sha": HUMAN, "ref": "release"}},
            "names ref 'release' but run 9000 ran on 'main'",
            id="the-deployments-ref-differs",
        ),
        pytest.param(
            {"ref": "refs/pull/12/merge"},
            "names ref 'refs/pull/12/merge' but run 9000 ran on 'main'",
            id="a-pull-ref-for-a-push",
        ),
    ],
)
def test_a_deployment_githubs_facts_disagree_on_is_never_decided(hub, payload, why, caplog):
    event = hold(hub, Case("staging", "push", "main", "refs/heads/main", "approved"))
    hub.deliver("deployment_protection_rule", {**event, **payload})
    assert answers(hub) == [], "neither approved nor rejected"
    assert why in caplog.text and "deployment-mismatch" in caplog.text


def test_a_full_ref_in_the_event_names_its_kind(hub):
    case = Case("production", "push", "v1.2.0", "refs/tags/v1.2.0", "approved")  # no tag lookup needed
    hub.deliver("deployment_protection_rule", {**hold(hub, case), "ref": "refs/tags/v1.2.0"})
    assert judged(hub)["ref"] == "refs/tags/v1.2.0"
    assert hub.scenario.count(r"/git/ref/tags/") == 0


def test_a_deployment_named_by_its_commit_is_judged_from_the_run(hub):
    case = Case("staging", "push", "main", "refs/heads/main", "approved")
    event = hold(hub, case)
    event["deployment"]["ref"] = HUMAN  # "a branch, tag, or sha"
    hub.deliver("deployment_protection_rule", event)
    assert judged(hub)["ref"] == "refs/heads/main"


def test_a_held_job_keeps_what_was_deployed_for_its_later_decisions(hub):
    case = Case("production", "push", "v1.2.0", "refs/tags/v1.2.0", "approved", tags={"v1.2.0": HUMAN})
    hub.deliver("deployment_protection_rule", hold(hub, case))
    store = hub.app.extensions["agent_gate"].store
    [held] = store.find_deployment_gates(2000, run_id=RUN, state=None)
    assert held["deployed"] == {
        "ref": "v1.2.0",
        "sha": HUMAN,
        "deployment_ref": "v1.2.0",
        "deployment_sha": HUMAN,
    }


def test_the_fields_read_are_in_githubs_schema():
    schema = extract()["webhooks"]["deployment-protection-rule-requested"]["schema"]["properties"]
    assert {"ref", "sha", "event"} <= set(schema)
    assert {"ref", "sha"} <= set(schema["deployment"]["properties"])
    run = extract()["operations"]["actions/get-workflow-run"]["responses"]["200"]["schema"]["properties"]
    assert {"head_repository", "pull_requests", "head_branch", "event"} <= set(run)
