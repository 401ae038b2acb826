"""app/github/webhooks.py: the payloads the gate receives, as typed events.

The models are held to GitHub's published webhook schemas (tests/fixtures/github-openapi): every
field a model requires is required by each of its event's schemas (or listed in ``GATE_REQUIRES``,
with the reason), every field it cannot take as null is never null there, and every JSON type the
schema allows is one the model takes. So a payload GitHub may send is never refused; and the
deliveries recorded by octokit (tests/fixtures/github-webhooks) parse.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import types
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from app.errors import InvalidRequest
from app.events.dispatch import EVENTS
from app.github import webhooks
from app.github.webhooks import (
    MODELS,
    CheckRunEvent,
    CheckSuiteEvent,
    DeploymentProtectionRuleEvent,
    DeploymentReviewEvent,
    MergeGroupEvent,
    PullRequestEvent,
    PullRequestReviewEvent,
    parse_event,
)
from tests.fake_github import extract

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "github-webhooks" / "examples.json"

# The webhook schemas (GitHub's names: event-action) each model reads.
SCHEMAS: dict[type[webhooks.WebhookEvent], tuple[str, ...]] = {
    PullRequestEvent: (
        "pull-request-opened",
        "pull-request-synchronize",
        "pull-request-reopened",
        "pull-request-ready-for-review",
        "pull-request-labeled",
        "pull-request-unlabeled",
        "pull-request-closed",
        "pull-request-edited",
    ),
    PullRequestReviewEvent: (
        "pull-request-review-submitted",
        "pull-request-review-edited",
        "pull-request-review-dismissed",
    ),
    CheckRunEvent: ("check-run-rerequested",),
    CheckSuiteEvent: ("check-suite-rerequested",),
    DeploymentProtectionRuleEvent: ("deployment-protection-rule-requested",),
    DeploymentReviewEvent: (
        "deployment-review-approved",
        "deployment-review-rejected",
        "deployment-review-requested",
    ),
    MergeGroupEvent: ("merge-group-checks-requested", "merge-group-destroyed"),
}
HOOKS = [(model, hook) for model, hooks in SCHEMAS.items() for hook in hooks]

# Fields the gate requires although GitHub's schema leaves them optional: the gate can do nothing
# with a payload that lacks them, and says so at once.
GATE_REQUIRES = {
    # GitHub's schema lists it (enum: rerequested) without requiring it; octokit's requires it.
    ("check-run-rerequested", "action"): "the action is what the gate acts on",
    # This schema requires nothing at all; octokit's requires action, repository and sender.
    ("deployment-protection-rule-requested", "action"): "the action is what the gate acts on",
    ("deployment-protection-rule-requested", "repository"): "the held job's repository: its policy",
    ("deployment-protection-rule-requested", "environment"): "the environment answered for (non-empty)",
    ("deployment-protection-rule-requested", "deployment_callback_url"): "it names the run to answer",
    # Optional in GitHub's schema of both, always sent: whose group it is (its policy, its PRs).
    ("merge-group-checks-requested", "repository"): "the group's repository: its policy and pull requests",
    ("merge-group-destroyed", "repository"): "the group's repository: its policy and pull requests",
}


# --- builders ---------------------------------------------------------------------------------


@functools.cache
def _examples() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = json.loads(EXAMPLES.read_text())["examples"]
    return found


def example(event: str, action: str) -> dict[str, Any]:
    """A delivery GitHub sent (recorded by octokit), to change freely."""
    return copy.deepcopy(_examples()[event][action])


@functools.cache
def _webhooks() -> dict[str, Any]:
    found: dict[str, Any] = extract()["webhooks"]
    return found


def schema_of(hook: str) -> dict[str, Any]:
    """GitHub's schema of ``hook`` (read-only: shared by every test)."""
    found: dict[str, Any] = _webhooks()[hook]["schema"]
    return found


def assert_valid(payload: Any, hook: str) -> None:
    """``payload`` is one GitHub's schema of ``hook`` allows."""
    schema = schema_of(hook)
    # Without jsonschema.validate's check of the schema itself: ~0.7 s for each of these large ones.
    jsonschema.validators.validator_for(schema)(schema).validate(payload)


def smallest(hook: str) -> dict[str, Any]:
    """The smallest payload GitHub's schema of ``hook`` allows (what it requires, null where it
    may be null), with the fields in ``GATE_REQUIRES``."""
    gate = {path for h, path in GATE_REQUIRES if h == hook}
    payload: dict[str, Any] = _smallest(schema_of(hook), "", gate, nulls=True)
    return payload


def protection_rule(**fields: Any) -> dict[str, Any]:
    """A ``deployment_protection_rule`` delivery (neither GitHub nor octokit publish an example)."""
    payload = smallest("deployment-protection-rule-requested")
    deployment_schema = schema_of("deployment-protection-rule-requested")["properties"]["deployment"]
    deployment = _smallest(deployment_schema, "", set(), nulls=False)
    payload.update(
        {
            "environment": "production",
            "event": "workflow_dispatch",
            "deployment_callback_url": "https://api.github.com/repos/o/r/actions/runs/9/deployment_protection_rule",
            "deployment": {**deployment, "id": 77},
            **fields,
        }
    )
    return payload


def changed(payload: Any, path: str, value: Any = ...) -> Any:
    """``payload`` with ``path`` (``a.b[0].c``) set to ``value``, or removed when none is given."""
    *parents, last = _parts(path)
    node = payload
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return payload


def _parts(path: str) -> list[str | int]:
    return [int(p[1:-1]) if p.startswith("[") else p for p in path.replace("[", ".[").split(".") if p]


# --- GitHub's schemas, read as the models need ------------------------------------------------


@dataclass
class _Node:
    """What a JSON schema (with its allOf, anyOf, oneOf) says of a value."""

    types: set[str] = field(default_factory=set)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    items: dict[str, Any] | None = None


def _node(schema: dict[str, Any]) -> _Node:
    kind = schema.get("type")
    node = _Node(
        types=set([kind] if isinstance(kind, str) else kind or []),
        properties=dict(schema.get("properties", {})),
        required=set(schema.get("required", [])),
        items=schema.get("items"),
    )
    if None in schema.get("enum", []):
        node.types.add("null")
    for part in map(_node, schema.get("allOf", [])):  # every part holds: requirements add up
        node.types |= part.types
        node.required |= part.required
        _merge(node, part, "allOf")
    alternatives = [_node(a) for a in schema.get("anyOf", []) + schema.get("oneOf", [])]
    for alternative in alternatives:
        node.types |= alternative.types
        _merge(node, alternative, "anyOf")
    objects = [a.required for a in alternatives if "object" in a.types or a.properties]
    if objects:  # any one may hold: only what they all require is required
        node.required |= set.intersection(*objects)
    return node


def _merge(node: _Node, part: _Node, how: str) -> None:
    for key, sub in part.properties.items():
        node.properties[key] = {how: [node.properties[key], sub]} if key in node.properties else sub
    if part.items is not None:
        node.items = {how: [node.items, part.items]} if node.items is not None else part.items


def _smallest(schema: dict[str, Any], where: str, gate: set[str], *, nulls: bool) -> Any:
    node = _node(schema)
    if schema.get("enum"):
        return None if nulls and None in schema["enum"] else next(v for v in schema["enum"] if v is not None)
    if nulls and "null" in node.types:
        return None
    if "object" in node.types or node.properties:
        keys = node.required | {p.rsplit(".", 1)[-1] for p in gate if p.rpartition(".")[0] == where}
        return {
            k: _smallest(node.properties[k], f"{where}.{k}" if where else k, gate, nulls=nulls)
            for k in sorted(keys)
        }
    if "array" in node.types:
        return []
    if "string" in node.types:
        return "2024-05-01T12:00:00Z" if schema.get("format") == "date-time" else "x"
    if "integer" in node.types or "number" in node.types:
        return 1
    if "boolean" in node.types:
        return False
    raise AssertionError(f"{where}: no type in GitHub's schema")


# --- the models, read as JSON schemas are ----------------------------------------------------


@dataclass
class _Accepts:
    types: set[str] = field(default_factory=set)
    model: type[BaseModel] | None = None
    item: Any = None


_SCALARS = {str: "string", int: "integer", bool: "boolean", datetime: "string", type(None): "null"}


def _accepts(annotation: Any) -> _Accepts:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _accepts(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found = _Accepts()
        for arg in get_args(annotation):
            one = _accepts(arg)
            found.types |= one.types
            found.model, found.item = found.model or one.model, found.item or one.item
        return found
    if origin is list:
        return _Accepts({"array"}, item=get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Accepts({"object"}, model=annotation)
    if annotation in _SCALARS:
        return _Accepts({_SCALARS[annotation]})
    raise AssertionError(f"no JSON reading for {annotation!r}")


@dataclass
class _Walk:
    """One model held to one of GitHub's schemas."""

    hook: str
    refusals: list[str] = field(default_factory=list)  # how a payload valid there could be refused
    beyond_schema: set[tuple[str, str]] = field(default_factory=set)  # GATE_REQUIRES entries met
    named: set[str] = field(default_factory=set)  # fields the schema names
    own: set[str] = field(default_factory=set)  # fields of the models defined in webhooks.py


def walk(model: type[BaseModel], hook: str) -> _Walk:
    found = _Walk(hook)
    _walk_model(found, model, schema_of(hook), "")
    return found


def _walk_model(w: _Walk, model: type[BaseModel], schema: dict[str, Any], where: str) -> None:
    node = _node(schema)
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{where}.{key}" if where else key
        if model.__module__ == webhooks.__name__:
            w.own.add(path)
        if key in node.properties:
            w.named.add(path)
        if info.is_required() and key not in node.required:
            if (w.hook, path) in GATE_REQUIRES:
                w.beyond_schema.add((w.hook, path))
            else:
                w.refusals.append(f"{path}: required by the model, optional in GitHub's schema")
        if key in node.properties:
            _walk_value(w, info.annotation, node.properties[key], path)


def _walk_value(w: _Walk, annotation: Any, schema: dict[str, Any], path: str) -> None:
    accepts, node = _accepts(annotation), _node(schema)
    if not node.types:
        w.refusals.append(f"{path}: GitHub's schema gives no type")
    if extra := node.types - accepts.types:
        w.refusals.append(f"{path}: GitHub may send {sorted(extra)}, the model takes {sorted(accepts.types)}")
    if accepts.model is not None and "object" in node.types:
        _walk_model(w, accepts.model, schema, path)
    if accepts.item is not None and node.items is not None:
        _walk_value(w, accepts.item, node.items, f"{path}[]")


# --- held to GitHub's schemas -----------------------------------------------------------------


def test_every_webhook_schema_in_the_extract_is_read_by_exactly_one_model():
    hooks = [hook for _, hook in HOOKS]
    assert sorted(hooks) == sorted(_webhooks()), "a schema no model is held to, or a missing one"
    assert set(SCHEMAS) == set(MODELS.values())


@pytest.mark.parametrize(("model", "hook"), HOOKS, ids=[hook for _, hook in HOOKS])
def test_the_model_takes_every_payload_githubs_schema_allows(model, hook):
    assert walk(model, hook).refusals == []


def test_each_field_the_gate_requires_beyond_githubs_schema_is_still_needed():
    met = set().union(*(walk(model, hook).beyond_schema for model, hook in HOOKS))
    assert met == set(GATE_REQUIRES), "a stale entry: GitHub's schema requires it now, or no model does"


@pytest.mark.parametrize("model", list(SCHEMAS), ids=[m.__name__ for m in SCHEMAS])
def test_every_field_the_webhook_models_read_is_named_by_githubs_schema(model):
    walks = [walk(model, hook) for hook in SCHEMAS[model]]
    own, named = set().union(*(w.own for w in walks)), set().union(*(w.named for w in walks))
    assert own - named == set(), "a field name GitHub never sends (a typo?)"


@pytest.mark.parametrize(("model", "hook"), HOOKS, ids=[hook for _, hook in HOOKS])
def test_the_smallest_payload_githubs_schema_allows_parses(model, hook):
    payload = smallest(hook)
    assert_valid(payload, hook)
    parsed = parse_event(model.event_name, payload)
    assert isinstance(parsed, model)


# --- GitHub's deliveries ----------------------------------------------------------------------

RECORDED = sorted(
    (event, action)
    for event, actions in json.loads(EXAMPLES.read_text())["examples"].items()
    for action in actions
)


@pytest.mark.parametrize(("event", "action"), RECORDED, ids=[f"{e}-{a}" for e, a in RECORDED])
def test_every_recorded_delivery_parses(event, action):
    payload = example(event, action)
    parsed = parse_event(event, payload)
    assert isinstance(parsed, MODELS[event])
    assert parsed.action == action
    assert (parsed.repository.id, parsed.repository.full_name) == (
        payload["repository"]["id"],
        payload["repository"]["full_name"],
    )
    assert parsed.repository.owner.login == payload["repository"]["owner"]["login"]


@pytest.mark.parametrize("hook", sorted(h for h, w in _webhooks().items() if w["examples"]))
def test_githubs_own_examples_parse(hook):
    model = next(m for m, hooks in SCHEMAS.items() if hook in hooks)
    for payload in copy.deepcopy(_webhooks()[hook]["examples"]).values():
        assert isinstance(parse_event(model.event_name, payload), model)


def test_the_recorded_examples_are_those_the_readme_names():
    source = json.loads(EXAMPLES.read_text())["source"]
    assert (source["package"], source["version"]) == ("@octokit/webhooks-examples", "7.6.1")
    assert source["file_sha256"] in (EXAMPLES.parent / "README.md").read_text()


# --- what each handler gets -------------------------------------------------------------------


def test_a_pull_request_gives_its_number_state_author_head_base_and_repository():
    event = parse_event("pull_request", example("pull_request", "opened"))
    assert isinstance(event, PullRequestEvent)
    pr = event.pull_request
    assert (pr.number, pr.state) == (2, "open")
    assert pr.user is not None and (pr.user.login, pr.user.id) == ("Codertocat", 21031067)
    assert (pr.head.ref, pr.head.sha) == ("changes", "ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    assert (pr.base.ref, pr.base.sha) == ("master", "f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    assert (event.repository.id, event.repository.owner.id) == (186853002, 21031067)
    assert (event.before, event.changes, event.base_changed) == (None, None, False)


def test_a_push_to_a_pull_request_gives_the_head_it_had_before():
    event = parse_event("pull_request", example("pull_request", "synchronize"))
    assert isinstance(event, PullRequestEvent)
    assert event.before == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"


@pytest.mark.parametrize(
    ("changes", "base_changed"),
    [
        ({"base": {"ref": {"from": "main"}, "sha": {"from": "c" * 40}}}, True),
        ({"title": {"from": "an older title"}}, False),
        ({}, False),
    ],
    ids=["base-branch-changed", "only-the-title-edited", "nothing-named"],
)
def test_an_edited_pull_request_says_whether_its_base_changed(changes, base_changed):
    payload = {**smallest("pull-request-edited"), "changes": changes}
    assert_valid(payload, "pull-request-edited")
    event = parse_event("pull_request", payload)
    assert isinstance(event, PullRequestEvent) and event.base_changed is base_changed
    if base_changed:
        assert event.changes is not None and event.changes.base is not None
        assert event.changes.base.ref.from_ == "main"


def test_a_pull_request_may_name_no_author():
    event = parse_event(
        "pull_request", changed(example("pull_request", "labeled"), "pull_request.user", None)
    )
    assert isinstance(event, PullRequestEvent) and event.pull_request.user is None


def test_a_review_gives_its_reviewer_and_the_pull_request():
    event = parse_event("pull_request_review", example("pull_request_review", "dismissed"))
    assert isinstance(event, PullRequestReviewEvent)
    assert event.review.user is not None and event.review.user.login == "Codertocat"
    assert event.review.state == "dismissed"
    assert (event.pull_request.number, event.pull_request.head.sha[:7]) == (2, "ec26c3e")


def test_a_rerun_of_a_check_run_gives_its_app_name_head_and_pull_requests():
    payload = example("check_run", "rerequested")
    event = parse_event("check_run", payload)
    assert isinstance(event, CheckRunEvent)
    assert (event.item.app_id, event.item.name) == (payload["check_run"]["app"]["id"], "randscape")
    assert event.item.head_sha == event.check_run.head_sha and len(event.item.head_sha) == 40
    assert event.item.pull_request_numbers == ()


def test_a_rerun_of_a_check_suite_gives_its_app_head_and_pull_requests_once_each():
    payload = example("check_suite", "rerequested")
    pulls = payload["check_suite"]["pull_requests"]
    payload["check_suite"]["pull_requests"] = [pulls[0], {**pulls[0], "number": 1}, pulls[0]]
    event = parse_event("check_suite", payload)
    assert isinstance(event, CheckSuiteEvent)
    assert (event.item.app_id, event.item.pull_request_numbers) == (29310, (1, 2))


@pytest.mark.parametrize(
    ("event", "path"),
    [("check_run", "check_run.app"), ("check_suite", "check_suite.app.id")],
    ids=["check-run-app-null", "check-suite-app-id-null"],
)
def test_a_check_without_an_app_has_no_app_id(event, path):
    parsed = parse_event(event, changed(example(event, "rerequested"), path, None))
    assert isinstance(parsed, CheckRunEvent | CheckSuiteEvent) and parsed.item.app_id is None


def test_a_protection_rule_gives_the_environment_the_callback_and_the_deployment():
    payload = protection_rule()
    assert_valid(payload, "deployment-protection-rule-requested")
    event = parse_event("deployment_protection_rule", payload)
    assert isinstance(event, DeploymentProtectionRuleEvent)
    assert event.environment == "production"
    assert event.deployment_callback_url.endswith("/actions/runs/9/deployment_protection_rule")
    assert event.deployment is not None and event.deployment.id == 77


@pytest.mark.parametrize("deployment", [None, ...], ids=["deployment-null", "deployment-absent"])
def test_a_protection_rule_may_come_without_its_deployment(deployment):
    payload = protection_rule()
    changed(payload, "deployment", deployment)
    event = parse_event("deployment_protection_rule", payload)
    assert isinstance(event, DeploymentProtectionRuleEvent) and event.deployment is None


def test_a_deployment_review_gives_its_run():
    event = parse_event("deployment_review", example("deployment_review", "requested"))
    assert isinstance(event, DeploymentReviewEvent)
    assert event.workflow_run is not None and event.workflow_run.id == 5453085689


def test_a_deployment_review_may_name_no_run():
    event = parse_event(
        "deployment_review", changed(example("deployment_review", "requested"), "workflow_run", None)
    )
    assert isinstance(event, DeploymentReviewEvent) and event.workflow_run is None


# --- refused, saying which field -------------------------------------------------------------

HINT = "is the App subscribed to the documented events?"


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        (
            "pull_request",
            changed(example("pull_request", "opened"), "repository"),
            re.escape(f"the pull_request payload lacks repository; {HINT}"),
        ),
        (
            "pull_request",
            changed(example("pull_request", "synchronize"), "pull_request.head.sha"),
            re.escape(f"the pull_request payload lacks pull_request.head.sha; {HINT}"),
        ),
        (
            "pull_request",
            changed(example("pull_request", "synchronize"), "pull_request.head.sha", 1234),
            re.escape(
                "the pull_request payload has pull_request.head.sha of the wrong shape: "
                "Input should be a valid string (got an integer)"
            ),
        ),
        (
            "pull_request",
            changed(example("pull_request", "opened"), "pull_request.head", None),
            r"pull_request\.head of the wrong shape: .* \(got null\)",
        ),
        ("pull_request", changed(example("pull_request", "closed"), "action"), "lacks action"),
        (
            "pull_request_review",
            changed(example("pull_request_review", "submitted"), "review"),
            "lacks review;",
        ),
        (
            "pull_request_review",
            changed(example("pull_request_review", "submitted"), "review.user.login"),
            "lacks review.user.login;",
        ),
        (
            "check_run",
            changed(example("check_run", "rerequested"), "check_run.app.id", "29310"),
            r"has check_run\.app\.id of the wrong shape: Input should be a valid integer \(got a string\)",
        ),
        (
            "check_suite",
            changed(example("check_suite", "rerequested"), "check_suite.pull_requests[0].number", "2"),
            r"check_suite\.pull_requests\[0\]\.number of the wrong shape",
        ),
        (
            "check_suite",
            changed(example("check_suite", "rerequested"), "check_suite.pull_requests", {"number": 2}),
            r"check_suite\.pull_requests of the wrong shape: .* \(got an object\)",
        ),
        ("deployment_protection_rule", changed(protection_rule(), "environment"), "lacks environment;"),
        (
            "deployment_protection_rule",
            protection_rule(environment=""),
            "has environment of the wrong shape: String should have at least 1 character",
        ),
        (
            "deployment_protection_rule",
            changed(protection_rule(), "deployment_callback_url"),
            "lacks deployment_callback_url;",
        ),
        ("deployment_protection_rule", changed(protection_rule(), "deployment.id"), "lacks deployment.id;"),
        (
            "deployment_review",
            changed(example("deployment_review", "requested"), "workflow_run.id"),
            "lacks workflow_run.id;",
        ),
        (
            "deployment_review",
            changed(example("deployment_review", "requested"), "repository"),
            "lacks repository;",
        ),
    ],
    ids=[
        "pull-request-without-repository",
        "pull-request-without-head-sha",
        "head-sha-a-number",
        "head-null",
        "pull-request-without-action",
        "review-without-review",
        "reviewer-without-login",
        "check-app-id-a-string",
        "check-suite-pr-number-a-string",
        "check-suite-pull-requests-an-object",
        "protection-rule-without-environment",
        "protection-rule-empty-environment",
        "protection-rule-without-callback-url",
        "protection-rule-deployment-without-id",
        "deployment-review-run-without-id",
        "deployment-review-without-repository",
    ],
)
def test_a_payload_without_a_field_the_gate_needs_is_refused_naming_it(event, payload, message):
    with pytest.raises(InvalidRequest, match=message) as raised:
        parse_event(event, payload)
    assert (raised.value.code, raised.value.status) == ("invalid-payload", 400)
    assert raised.value.message.startswith(f"the {event} payload ")
    assert isinstance(raised.value.__cause__, ValidationError), "pydantic's error is wrapped, not leaked"


@pytest.mark.parametrize(
    ("payload", "got"),
    [
        ([example("pull_request", "opened")], "an array"),
        ("{}", "a string"),
        (None, "null"),
        (12, "an integer"),
        (True, "a boolean"),
    ],
    ids=["a-list", "a-json-string", "null", "a-number", "a-boolean"],
)
def test_a_payload_that_is_not_an_object_is_refused(payload, got):
    with pytest.raises(
        InvalidRequest, match=rf"^the pull_request payload is not a JSON object \(got {got}\)$"
    ) as raised:
        parse_event("pull_request", payload)
    assert raised.value.code == "invalid-payload"


def test_the_refusal_does_not_repeat_the_payloads_values():
    payload = changed(example("pull_request", "opened"), "pull_request.head.sha", ["secret-looking-value"])
    with pytest.raises(InvalidRequest) as raised:
        parse_event("pull_request", payload)
    assert "secret-looking-value" not in raised.value.message


# --- everything else -------------------------------------------------------------------------


def test_unknown_fields_are_ignored_at_every_level():
    payload = example("pull_request", "opened")
    plain = parse_event("pull_request", payload)
    payload["a_field_github_adds_next_year"] = {"x": 1}
    payload["pull_request"]["head"]["another"] = [1, 2]
    payload["repository"]["owner"]["yet_another"] = None
    assert parse_event("pull_request", payload) == plain


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("push", example("pull_request", "opened")),
        ("ping", {"zen": "Keep it logically awesome."}),
        ("issues", []),
        ("", None),
    ],
    ids=["push", "ping", "issues-with-a-list", "no-event-name"],
)
def test_an_event_the_gate_does_not_model_gives_none_whatever_its_payload(event, payload):
    assert parse_event(event, payload) is None


def test_every_modelled_event_is_one_the_app_subscribes_to():
    assert set(MODELS) == set(EVENTS)


def test_parsed_events_cannot_be_changed():
    event = parse_event("pull_request", example("pull_request", "opened"))
    assert event is not None
    with pytest.raises(ValidationError, match="frozen"):
        event.action = "closed"  # type: ignore[misc]  # the point: mypy refuses it too
