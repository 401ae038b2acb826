"""The inventory page: the identities the gate has seen, behind the decision pages' GitHub login.

Refusals first: no login, no read access, bad filters. Then what a reader with access sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github.conftest import base_scenario
from tests.web.test_login import CAROL, MALLORY, SECRET, Site, error_code


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, base_scenario())
    yield s
    s.close()


def test_a_reader_who_is_not_logged_in_is_sent_to_log_in(site):
    site.decision()
    response = site.web.get("/inventory")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/inventory"
    assert "octo-org" not in response.get_data(as_text=True)


def test_the_json_variant_without_a_login_is_401(site):
    response = site.web.get("/inventory", headers={"Accept": "application/json"})
    assert response.status_code == 401 and error_code(response) == "login-required"


def test_a_reader_without_access_sees_no_identity(site):
    site.decision()
    assert site.log_in("/inventory", as_user=MALLORY).status_code == 302
    rows = site.web.get("/inventory", headers={"Accept": "application/json"}).get_json()
    assert rows == []


@pytest.mark.parametrize(
    "query",
    ["stale=soon", "repository=not a repo", "agents=maybe", "sort=name"],
    ids=["stale-not-a-number", "repository-not-owner-repo", "flag-with-a-value", "unknown-parameter"],
)
def test_bad_filters_are_a_clear_400(site, query):
    response = site.web.get(f"/inventory?{query}", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "invalid-request"


def test_a_reader_with_access_sees_the_workloads_of_their_repositories(site):
    site.decision()
    assert site.log_in("/inventory", as_user=CAROL).status_code == 302
    rows = site.web.get("/inventory", headers={"Accept": "application/json"}).get_json()
    workloads = [r for r in rows if r["kind"] == "workload"]
    assert workloads and workloads[0]["repository"] == "octo-org/octo-repo"
    assert workloads[0]["asked"] >= 1
    page = site.web.get("/inventory")
    assert page.status_code == 200 and "octo-org/octo-repo" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    filtered = site.web.get("/inventory?repository=octo-org/other", headers={"Accept": "application/json"})
    assert filtered.get_json() == []


def test_a_repository_without_the_app_is_left_out_of_the_inventory_and_named_nowhere(site):
    site.decision()
    site.decision(**SECRET)
    assert site.log_in("/inventory", as_user=CAROL).status_code == 302
    answer = site.web.get("/inventory", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    assert {r["repository"] for r in answer.get_json() if r["kind"] == "workload"} == {"octo-org/octo-repo"}
    page = site.web.get("/inventory")
    assert page.status_code == 200 and "secret-plans" not in page.get_data(as_text=True)
    assert "secret-plans" not in answer.get_data(as_text=True)


def test_github_failing_for_the_inventory_is_a_503_naming_no_repository(site):
    site.decision()
    assert site.log_in("/inventory", as_user=CAROL).status_code == 302
    site.scenario.failures.append({"method": "GET", "path": r"/permission$", "status": 502})
    answer = site.web.get("/inventory", headers={"Accept": "application/json"})
    assert answer.status_code == 503 and error_code(answer) == "github-unavailable"
    assert "octo-repo" not in answer.get_data(as_text=True)
