"""The fake GitHub answers in GitHub's published shapes (the OpenAPI extract), so it cannot drift."""

from __future__ import annotations

import jsonschema
import pytest
import requests
from pydantic import SecretStr

from app.github.auth import AppAuth
from tests.fake_github import extract
from tests.github.conftest import HEAD, app_key_pem


def schema(operation: str, status: str = "200") -> dict:
    return extract()["operations"][operation]["responses"][status]["schema"]


def test_extract_records_its_provenance():
    source = extract()["source"]
    assert source["package"] == "@octokit/openapi" and source["version"]


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        ("pulls/get", "/repos/octo-org/octo-repo/pulls/12"),
        ("pulls/list-commits", "/repos/octo-org/octo-repo/pulls/12/commits"),
        ("pulls/list-reviews", "/repos/octo-org/octo-repo/pulls/12/reviews"),
        (
            "repos/list-pull-requests-associated-with-commit",
            f"/repos/octo-org/octo-repo/commits/{HEAD}/pulls",
        ),
        ("actions/get-workflow-run", "/repos/octo-org/octo-repo/actions/runs/9000"),
        ("actions/get-reviews-for-run", "/repos/octo-org/octo-repo/actions/runs/9000/approvals"),
        ("repos/get-collaborator-permission-level", "/repos/octo-org/octo-repo/collaborators/bob/permission"),
        ("teams/get-membership-for-user-in-org", "/orgs/octo-org/teams/release-managers/memberships/bob"),
        ("checks/list-for-ref", f"/repos/octo-org/octo-repo/commits/{HEAD}/check-runs"),
    ],
)
def test_fake_payloads_match_githubs_schemas(fake, scenario, operation, path):
    from tests.fake_github import Person

    scenario.prs[12].reviews.append({"user": Person("bob", 1002), "state": "APPROVED", "commit_id": HEAD})
    scenario.runs[9000].approvals.append(
        {"user": Person("bob", 1002), "state": "approved", "environments": ["production"]}
    )
    token = requests.post(
        f"{fake.url}/app/installations/77/access_tokens",
        headers={"Authorization": f"Bearer {AppAuth(42, SecretStr(app_key_pem())).app_jwt()}"},
        json={},
        timeout=5,
    ).json()["token"]
    response = requests.get(f"{fake.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200
    jsonschema.validate(response.json(), schema(operation))


def test_fake_refuses_a_bad_app_jwt(fake):
    response = requests.get(
        f"{fake.url}/repos/octo-org/octo-repo/installation",
        headers={"Authorization": "Bearer nope"},
        timeout=5,
    )
    assert response.status_code == 401
