"""The decision page is not public: a GitHub login, then read access to the decision's repository.

The whole OAuth web flow runs against the fake GitHub over real HTTP: the gate's redirect to
``/login/oauth/authorize``, GitHub's redirect back with a code, the exchange (with PKCE) and
``GET /user``; read access is the collaborator permission GitHub reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from app import create_app
from app.cli import main
from app.github.client import GitHubClient
from app.settings import Settings
from app.tokens.devissuer import DevIssuer
from tests.builders import whole
from tests.conftest import TEST_POLICY, close_gate
from tests.fake_github import FakeGitHub, Person, Scenario
from tests.github.conftest import base_scenario, github_settings

CAROL = Person("carol", 1003)  # read on octo-org/octo-repo
MALLORY = Person("mallory", 6666)  # no access


class Site:
    """A gate whose pages need a GitHub login, its fake GitHub, and a reader's browser (the test client)."""

    def __init__(
        self, tmp_path: Path, scenario: Scenario, *, public_url: str = "http://gate.test", **extra: Any
    ):
        self.fake = FakeGitHub(scenario).__enter__()
        self.scenario = scenario
        (tmp_path / "policies").mkdir(exist_ok=True)
        (tmp_path / "policies" / "octo.yml").write_text(whole(TEST_POLICY))
        self.settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url=public_url,
            policy_check_interval=0,
            decision_pages="github",
            github_client_id=scenario.oauth_client_id,
            github_client_secret=scenario.oauth_client_secret,
            github_web_url=self.fake.url,
            **extra,
        )
        self.github = GitHubClient(github_settings(self.fake.url), backoff=0)
        self.app = create_app(self.settings, github=self.github)
        self.web: FlaskClient = self.app.test_client()
        self.issuer = DevIssuer(self.settings.data_dir)

    def decision(self, **claims: Any) -> str:
        token = self.issuer.mint(audience="agent-gate", **claims)
        response = self.app.test_client().post(
            "/v1/decisions", json={"action": "read"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.get_json()
        return str(response.get_json()["decision_id"])

    def log_in(self, page: str, *, as_user: Person | None) -> Any:
        """Follow the redirects a browser follows, from the page to GitHub and back; the last answer."""
        self.scenario.oauth_user = as_user
        to_login = self.web.get(page)
        assert to_login.status_code == 302 and to_login.headers["Location"].startswith("/login?next=")
        to_github = self.web.get(to_login.headers["Location"])
        assert to_github.status_code == 302 and to_github.headers["Location"].startswith(self.fake.url)
        back = requests.get(to_github.headers["Location"], allow_redirects=False, timeout=5)
        assert back.status_code == 302
        callback = urlsplit(back.headers["Location"])
        return self.web.get(f"{callback.path}?{callback.query}")

    def permission_calls(self) -> int:
        return self.scenario.count(r"/collaborators/[^/]+/permission$")

    def close(self) -> None:
        close_gate(self.app)
        self.fake.__exit__()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, base_scenario())
    yield s
    s.close()


def error_code(response: Any) -> str:
    return str(response.get_json()["errors"][0]["code"])


# --- refusals first -----------------------------------------------------------------------------------


def test_a_reader_who_is_not_logged_in_is_sent_to_log_in(site):
    page = f"/decisions/{site.decision()}"
    response = site.web.get(page)
    assert response.status_code == 302 and response.headers["Location"] == f"/login?next={page}"
    assert "octo-org" not in response.get_data(as_text=True)


def test_the_json_variant_without_a_login_is_401(site):
    response = site.web.get(f"/decisions/{site.decision()}", headers={"Accept": "application/json"})
    assert response.status_code == 401 and error_code(response) == "login-required"


def test_a_reader_without_read_access_sees_a_404_like_a_missing_page(site):
    page = f"/decisions/{site.decision()}"
    assert site.log_in(page, as_user=MALLORY).status_code == 302
    denied = site.web.get(page)
    missing = site.web.get("/decisions/dec_" + "x" * 22)
    assert denied.status_code == missing.status_code == 404
    assert denied.get_json() == missing.get_json()
    assert "octo-org" not in denied.get_data(as_text=True)


def test_a_reader_who_declines_on_github_is_not_logged_in(site):
    page = f"/decisions/{site.decision()}"
    declined = site.log_in(page, as_user=None)
    assert declined.status_code == 401 and error_code(declined) == "login-failed"
    assert site.web.get(page).status_code == 302


def test_a_callback_not_started_here_is_refused(site):
    response = site.web.get("/login/callback?code=abc&state=forged")
    assert response.status_code == 401 and error_code(response) == "login-failed"


def test_a_callback_with_another_state_is_refused(site):
    page = f"/decisions/{site.decision()}"
    site.scenario.oauth_user = CAROL
    to_github = site.web.get(site.web.get(page).headers["Location"])
    back = requests.get(to_github.headers["Location"], allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]
    response = site.web.get(f"/login/callback?code={code}&state=someone-elses")
    assert response.status_code == 401 and error_code(response) == "login-failed"


def test_a_code_works_once(site):
    page = f"/decisions/{site.decision()}"
    site.scenario.oauth_user = CAROL
    to_github = site.web.get(site.web.get(page).headers["Location"])
    back = urlsplit(
        requests.get(to_github.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    )
    code = parse_qs(back.query)["code"][0]
    site.scenario.oauth_codes.pop(code)  # spent elsewhere (or expired)
    response = site.web.get(f"{back.path}?{back.query}")
    assert response.status_code == 401 and error_code(response) == "login-failed"


def test_next_cannot_send_the_reader_elsewhere(site):
    site.scenario.oauth_user = CAROL
    to_github = site.web.get("/login?next=https://evil.example/decisions/dec_aaaaaaaaaaaaaaaaaaaaaa")
    back = urlsplit(
        requests.get(to_github.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    )
    response = site.web.get(f"{back.path}?{back.query}")
    assert response.status_code == 200 and response.get_json() == {"status": "logged-in", "login": "carol"}


def test_github_failing_to_confirm_access_is_503_not_a_page(site):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    site.scenario.failures.append({"method": "GET", "path": r"/permission$", "status": 502})
    response = site.web.get(page)
    assert response.status_code == 503 and error_code(response) == "github-unavailable"
    assert "octo-repo" not in response.get_data(as_text=True), "no repository name in an error"


def test_without_a_configured_login_pages_are_503_not_public(tmp_path):
    s = Site(tmp_path, base_scenario())
    s.app.extensions["agent_gate_readers"].login = None
    try:
        response = s.web.get(f"/decisions/{s.decision()}")
        assert response.status_code == 503 and error_code(response) == "login-not-configured"
    finally:
        s.close()


# --- readers with access --------------------------------------------------------------------------------


def test_a_reader_with_read_access_sees_the_page_after_logging_in(site):
    page = f"/decisions/{site.decision()}"
    back = site.log_in(page, as_user=CAROL)
    assert back.status_code == 302 and back.headers["Location"] == page
    response = site.web.get(page)
    assert response.status_code == 200 and "octo-org/octo-repo" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "private, no-store"
    as_json = site.web.get(page, headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and as_json.headers["Cache-Control"] == "no-store"


def test_the_session_keeps_only_who_logged_in(site):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    cookie = site.web.get_cookie("agent_gate_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not any(t in cookie.value for t in site.scenario.user_tokens), "the user token is never kept"
    with site.web.session_transaction() as session:
        assert set(session) == {"user", "_permanent"} and set(session["user"]) == {"id", "login", "at", "sid"}


def test_access_is_checked_through_github_and_cached_briefly(site):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    for _ in range(3):
        assert site.web.get(page).status_code == 200
    assert site.permission_calls() == 1
    [call] = [r for r in site.scenario.requests if r["path"].endswith("/permission")]
    assert call["path"] == "/repos/octo-org/octo-repo/collaborators/carol/permission"


def test_logging_out_ends_the_session(site):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    assert site.web.post("/logout").status_code == 200
    assert site.web.get(page).status_code == 302


def browser_with(site: Site, cookie: str) -> FlaskClient:
    """Another browser holding a copy of a session cookie."""
    other = site.app.test_client()
    other.set_cookie("agent_gate_session", cookie, domain="localhost")
    return other


def test_a_cookie_copied_before_logging_out_stops_working_with_the_logout(site):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    cookie = site.web.get_cookie("agent_gate_session")
    assert cookie is not None
    copy = browser_with(site, cookie.value)
    assert copy.get(page).status_code == 200, "the copy works while the session is live"
    assert site.web.post("/logout").status_code == 200
    assert copy.get(page).status_code == 302, "the server ended the session, not only the cookie"
    as_json = copy.get(page, headers={"Accept": "application/json"})
    assert as_json.status_code == 401 and error_code(as_json) == "login-required"


def test_an_operator_ends_every_session_at_once(site, capsys):
    page = f"/decisions/{site.decision()}"
    site.log_in(page, as_user=CAROL)
    carol = site.web
    site.web = site.app.test_client()
    site.log_in(page, as_user=Person("dave", 1004))
    assert carol.get(page).status_code == 200
    database = str(site.settings.data_dir / "agent-gate.db")
    assert main(["sessions", "end-all", "--database", database]) == 0
    assert "ended 2 session(s)" in capsys.readouterr().out
    assert carol.get(page).status_code == 302 and site.web.get(page).status_code == 302
    site.log_in(page, as_user=CAROL)
    assert site.web.get(page).status_code == 200, "a new login works"


def test_a_session_cookie_without_a_server_side_session_logs_nobody_in(site):
    """A cookie signed with the right key but never started here (an older gate's, or forged)."""
    page = f"/decisions/{site.decision()}"
    with site.web.session_transaction() as session:
        session["user"] = {"id": 1003, "login": "carol", "at": int(time.time())}
    assert site.web.get(page).status_code == 302
    with site.web.session_transaction() as session:
        session["user"] = {"id": 1003, "login": "carol", "at": int(time.time()), "sid": "made-up"}
    assert site.web.get(page).status_code == 302


# --- repositories where the App is not installed: nobody may read them here ---------------------------

SECRET = {"repository": "octo-org/secret-plans", "repository_id": "2999"}


def test_a_decision_of_a_repository_without_the_app_is_a_404_like_a_missing_page(site):
    secret = site.decision(**SECRET)
    site.log_in(f"/decisions/{site.decision()}", as_user=CAROL)
    for accept in ("text/html", "application/json"):
        denied = site.web.get(f"/decisions/{secret}", headers={"Accept": accept})
        missing = site.web.get("/decisions/dec_" + "x" * 22, headers={"Accept": accept})
        assert denied.status_code == missing.status_code == 404
        assert denied.get_data() == missing.get_data()
        assert "secret-plans" not in denied.get_data(as_text=True)


def test_public_pages_are_an_explicit_setting(tmp_path):
    site = Site(tmp_path, base_scenario())
    site.app.extensions["agent_gate"].settings = site.settings.model_copy(update={"decision_pages": "public"})
    try:
        response = site.web.get(f"/decisions/{site.decision()}")
        assert response.status_code == 200 and site.permission_calls() == 0
    finally:
        site.close()


def test_settings_default_to_login_outside_development_mode():
    assert not Settings(issuers=(), dev_mode=False).pages_public
    assert Settings(issuers=(), dev_mode=True).pages_public, "a dev gate on loopback shows its pages"
    assert Settings(issuers=(), dev_mode=True, decision_pages="github").pages_public is False
    assert Settings.from_env({"GATE_DECISION_PAGES": "public"}).pages_public
