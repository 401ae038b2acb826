"""The fake GitHub answers in GitHub's published shapes and checks credentials the way GitHub does.

Raw ``requests`` here, not the gate's client: these tests pin the fake itself, which every
end-to-end test of the gate relies on.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema
import jwt
import pytest
import requests
from pydantic import SecretStr

from app.github.auth import AppAuth
from tests.fake_github import (
    EXTRACT,
    ApprovalSpec,
    Commit,
    Failure,
    FakeGitHub,
    Person,
    ReviewSpec,
    Scenario,
    extract,
    schema,
    start_fake_github,
)
from tests.github.conftest import BOB, HEAD, app_key_pem, base_scenario
from tests.issuer import rsa_key

REPO = "/repos/octo-org/octo-repo"


def app_jwt(**claims: Any) -> str:
    if not claims:
        return AppAuth(42, SecretStr(app_key_pem())).app_jwt().get_secret_value()
    now = int(time.time())
    return jwt.encode(
        {"iat": now - 60, "exp": now + 540, "iss": "42", **claims}, rsa_key("github-app"), "RS256"
    )


def mint(fake: FakeGitHub, **body: Any) -> str:
    response = requests.post(
        f"{fake.url}/app/installations/77/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt()}"},
        json=body,
        timeout=5,
    )
    assert response.status_code == 201
    token: str = response.json()["token"]
    return token


def get(fake: FakeGitHub, path: str, token: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{fake.url}{path}", headers={"Authorization": f"Bearer {token}", **headers}, timeout=5
    )


# --- the extract -------------------------------------------------------------------------------------


def test_the_extract_records_its_provenance_and_stays_small():
    source = extract()["source"]
    assert source["package"] == "@octokit/openapi" and source["version"] == "23.0.2"
    assert source["file"] == "generated/api.github.com.json" and len(source["file_sha256"]) == 64
    # ~1.33 MB: the schemas of every webhook action the gate acts on (the merge group's too) carry whole
    # repository objects, and the ruleset operations `agent-gate protect` writes carry every rule type.
    assert EXTRACT.stat().st_size < 1_400_000
    assert '"$ref"' not in EXTRACT.read_text(), "every schema is self-contained"


@pytest.mark.parametrize(
    ("operation", "status"),
    [
        ("pulls/list-commits", "200"),
        ("pulls/list-reviews", "200"),
        ("actions/get-workflow-run", "200"),
        ("actions/get-reviews-for-run", "200"),
        ("apps/get-repo-installation", "200"),
        ("apps/create-installation-access-token", "201"),
        ("checks/create", "201"),
        ("teams/get-membership-for-user-in-org", "200"),
        ("repos/get-all-environments", "200"),
        ("repos/get-all-deployment-protection-rules", "200"),
        ("repos/get-branch-rules", "200"),
        ("repos/get-content", "200"),
        ("repos/get-repo-ruleset", "200"),
        ("repos/create-repo-ruleset", "201"),
        ("repos/create-deployment-protection-rule", "201"),
        ("apps/list-repos-accessible-to-installation", "200"),
    ],
)
def test_githubs_own_examples_validate_against_the_extracted_schemas(operation, status):
    # (pulls/get, repos/get, the permission, the deployment-rule-integrations and the ruleset-list
    # examples do not:
    # see tests/fixtures/github-openapi/README.md)
    for body in extract()["operations"][operation]["responses"][status]["examples"].values():
        jsonschema.Draft202012Validator(schema(operation, status)).validate(body)


# --- every answer in GitHub's shape ------------------------------------------------------------------


def busy_scenario() -> Scenario:
    s = base_scenario()
    s.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    s.prs[12].labels = ["ai-generated"]
    s.runs[9000].approvals = [ApprovalSpec(BOB, "approved", ["production"], comment="ship it")]
    s.pending_teams = {"release-managers": {"dave"}}
    return s


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        ("pulls/get", f"{REPO}/pulls/12"),
        ("pulls/list-commits", f"{REPO}/pulls/12/commits"),
        ("pulls/list-reviews", f"{REPO}/pulls/12/reviews"),
        ("repos/list-pull-requests-associated-with-commit", f"{REPO}/commits/{HEAD}/pulls"),
        ("actions/get-workflow-run", f"{REPO}/actions/runs/9000"),
        ("actions/get-reviews-for-run", f"{REPO}/actions/runs/9000/approvals"),
        ("repos/get-collaborator-permission-level", f"{REPO}/collaborators/bob/permission"),
        ("teams/get-membership-for-user-in-org", "/orgs/octo-org/teams/release-managers/memberships/bob"),
        ("teams/get-membership-for-user-in-org", "/orgs/octo-org/teams/release-managers/memberships/dave"),
        ("checks/list-for-ref", f"{REPO}/commits/{HEAD}/check-runs"),
    ],
)
def test_every_answer_matches_githubs_schema(operation, path):
    with FakeGitHub(busy_scenario()) as fake:
        response = get(fake, path, mint(fake))
        assert response.status_code == 200
        jsonschema.Draft202012Validator(schema(operation)).validate(response.json())


def test_an_answer_outside_githubs_schema_fails_the_test_that_caused_it():
    s = base_scenario()
    s.prs[12].reviews = [ReviewSpec(Person("eve", "not-a-number"), "APPROVED", HEAD)]  # type: ignore[arg-type]
    _, server = start_fake_github(s)
    get(server, f"{REPO}/pulls/12/reviews", mint(server))
    with pytest.raises(AssertionError, match=r"pulls/list-reviews 200 at /0/user/id"):
        server.close()


def test_the_list_shape_is_pull_request_simple():
    with FakeGitHub(base_scenario()) as fake:
        [pull] = get(fake, f"{REPO}/commits/{HEAD}/pulls", mint(fake)).json()
    assert "merged" not in pull and "commits" not in pull, "only the full pull request carries them"
    assert pull["head"]["sha"] == HEAD and pull["user"]["login"] == "Copilot"


# --- credentials ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        jwt.encode({"iat": 1, "exp": 2**31, "iss": "42"}, rsa_key("someone-else"), "RS256"),
        app_jwt(iss="43"),
        app_jwt(exp=int(time.time()) + 3600),
        app_jwt(exp=int(time.time()) - 10),
    ],
    ids=["garbage", "signed-by-another-key", "another-app", "expires-in-an-hour", "expired"],
)
def test_app_endpoints_refuse_anything_but_a_valid_app_jwt(fake_github, token):
    response = get(fake_github, f"{REPO}/installation", token)
    assert response.status_code == 401


def test_repository_endpoints_refuse_unknown_revoked_expired_and_out_of_scope_tokens(fake_github):
    assert get(fake_github, f"{REPO}/pulls/12", app_jwt()).status_code == 401, "an App JWT is not enough"
    assert get(fake_github, f"{REPO}/pulls/12", "ghs_made_up").status_code == 401
    token = mint(fake_github)
    assert get(fake_github, f"{REPO}/pulls/12", token).status_code == 200
    requests.delete(
        f"{fake_github.url}/installation/token", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert get(fake_github, f"{REPO}/pulls/12", token).status_code == 401
    other_repo = mint(fake_github, repository_ids=[9999])
    assert get(fake_github, f"{REPO}/pulls/12", other_repo).status_code == 404
    expired = mint(fake_github)
    fake_github.scenario.token_expiry[expired] = time.time() - 1
    assert get(fake_github, f"{REPO}/pulls/12", expired).status_code == 401


def test_an_uninstalled_app_has_no_installation():
    with FakeGitHub(Scenario(installed=False)) as fake:
        assert get(fake, f"{REPO}/installation", app_jwt()).status_code == 404


# --- ETags, pagination, GitHub's own limits -----------------------------------------------------------


def test_a_matching_if_none_match_gets_a_304(fake_github):
    token = mint(fake_github)
    first = get(fake_github, f"{REPO}/pulls/12", token)
    assert first.headers["ETag"].startswith('W/"')
    again = get(fake_github, f"{REPO}/pulls/12", token, **{"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    fake_github.scenario.prs[12].head_sha = "d" * 40
    changed = get(fake_github, f"{REPO}/pulls/12", token, **{"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.json()["head"]["sha"] == "d" * 40


def test_lists_are_paginated_with_link_headers(fake_github):
    fake_github.scenario.prs[12].reviews = [ReviewSpec(BOB, "COMMENTED", HEAD) for _ in range(150)]
    token = mint(fake_github)
    first = get(fake_github, f"{REPO}/pulls/12/reviews?per_page=100", token)
    assert len(first.json()) == 100
    assert first.links["next"]["url"].endswith("?per_page=100&page=2")
    assert first.links["last"]["url"].endswith("?per_page=100&page=2")
    second = requests.get(first.links["next"]["url"], headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert len(second.json()) == 50 and "next" not in second.links


def test_a_pull_requests_commit_list_stops_at_250_like_githubs(fake_github):
    fake_github.scenario.prs[12].commits = [Commit(sha=f"{i:040x}") for i in range(260)]
    token = mint(fake_github)
    pages = [
        get(fake_github, f"{REPO}/pulls/12/commits?per_page=100&page={n}", token).json() for n in (1, 2, 3)
    ]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert get(fake_github, f"{REPO}/pulls/12", token).json()["commits"] == 260


def test_commit_pull_lookups_answer_409_for_an_empty_repository_and_422_for_an_unknown_commit():
    with FakeGitHub(Scenario(empty_repository=True)) as fake:
        assert get(fake, f"{REPO}/commits/{HEAD}/pulls", mint(fake)).status_code == 409
    with FakeGitHub(Scenario(unknown_commits={"e" * 40})) as fake:
        assert get(fake, f"{REPO}/commits/{'e' * 40}/pulls", mint(fake)).status_code == 422


# --- failure injection and recording -----------------------------------------------------------------


def test_failures_are_injected_per_path_a_number_of_times(fake_github):
    fake_github.scenario.failures += [
        Failure.server_error(r"/pulls/12$", status=502, times=1),
        {"path": r"/reviews$", "status": 403, "headers": {"Retry-After": "60"}},  # the dict form works too
    ]
    token = mint(fake_github)
    assert get(fake_github, f"{REPO}/pulls/12", token).status_code == 502
    assert get(fake_github, f"{REPO}/pulls/12", token).status_code == 200
    limited = get(fake_github, f"{REPO}/pulls/12/reviews", token)
    assert limited.status_code == 403 and limited.headers["Retry-After"] == "60"
    assert "rate limit" not in limited.json()["message"]


def test_rate_limit_failures_look_like_githubs(fake_github):
    fake_github.scenario.failures += [
        Failure.secondary_rate_limit(r"/reviews$", retry_after=None),
        Failure.primary_rate_limit(r"/commits$", reset=2_000_000_000),
    ]
    token = mint(fake_github)
    secondary = get(fake_github, f"{REPO}/pulls/12/reviews", token)
    assert secondary.status_code == 403 and "secondary rate limit" in secondary.json()["message"]
    primary = get(fake_github, f"{REPO}/pulls/12/commits", token)
    assert (
        primary.headers["x-ratelimit-remaining"] == "0"
        and primary.headers["x-ratelimit-reset"] == "2000000000"
    )


def test_a_slow_path_answers_late_but_normally(fake_github):
    fake_github.scenario.failures.append(Failure.slow(r"/pulls/12$", 0.2, times=1))
    token = mint(fake_github)
    started = time.perf_counter()
    assert get(fake_github, f"{REPO}/pulls/12", token).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_every_request_is_recorded_with_its_status(fake_github):
    token = mint(fake_github)
    get(fake_github, f"{REPO}/pulls/99", token)
    last = fake_github.scenario.requests[-1]
    assert (last["method"], last["path"], last["status"]) == ("GET", f"{REPO}/pulls/99", 404)
    assert last["headers"]["Authorization"] == f"Bearer {token}"
    assert fake_github.scenario.tokens[token] == {}
    assert json.loads(json.dumps(fake_github.scenario.requests)), "plain data, easy to assert on"
