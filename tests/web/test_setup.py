"""/setup: the GitHub App created in one step from its manifest, and only from the browser that started."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from pydantic import SecretStr

from app import create_app
from app.github.manifest import app_manifest
from app.settings import GitHubSettings, Settings
from tests.conftest import TEST_POLICY, close_gate
from tests.fake_github import FakeGitHub
from tests.github.conftest import base_scenario


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakeGitHub(base_scenario()).__enter__()
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "octo.yml").write_text(TEST_POLICY)
        self.settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url="https://gate.example.org",
            github_web_url=self.fake.url,
        )
        self.app = create_app(self.settings)
        self.web: FlaskClient = self.app.test_client()

    def form(self, query: str = "") -> tuple[str, dict[str, Any]]:
        page = self.web.get(f"/setup{query}")
        assert page.status_code == 200, page.get_data(as_text=True)
        text = page.get_data(as_text=True)
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', text)[1])
        manifest = json.loads(html.unescape(re.search(r'name="manifest" value="([^"]+)"', text)[1]))
        return action, manifest

    def create_on_github(self, query: str = "") -> str:
        """What the admin's browser does: post the form to GitHub, follow GitHub's redirect back."""
        action, manifest = self.form(query)
        back = requests.post(
            action, data={"manifest": json.dumps(manifest)}, allow_redirects=False, timeout=5
        )
        assert back.status_code == 302, back.text
        location = urlsplit(back.headers["Location"])
        assert (
            f"{location.scheme}://{location.netloc}{location.path}"
            == "https://gate.example.org/setup/complete"
        )
        return f"{location.path}?{location.query}"

    def close(self) -> None:
        close_gate(self.app)
        self.fake.__exit__()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.close()


def test_a_gate_that_has_its_app_serves_no_setup(tmp_path: Path, settings: Settings):
    from tests.github.conftest import app_key_pem

    app = GitHubSettings(app_id=1, private_key=SecretStr(app_key_pem()))
    configured = settings.model_copy(update={"github": app})
    web = create_app(configured).test_client()
    assert web.get("/setup").status_code == 404
    assert web.get("/setup/complete?code=abc&state=x").status_code == 404


def test_completion_not_started_in_this_browser_is_refused(setup):
    path = setup.create_on_github()
    setup.web.delete_cookie("agent_gate_setup_state", path="/setup")
    response = setup.web.get(path)
    assert response.status_code == 401 and response.get_json()["errors"][0]["code"] == "setup-not-started"
    assert "webhook-secret" not in response.get_data(as_text=True)


def test_completion_with_another_state_is_refused(setup):
    path = setup.create_on_github()
    setup.form()  # the browser started again: a new state
    assert setup.web.get(path).status_code == 401


def test_the_form_posts_exactly_the_manifest_to_github(setup):
    action, manifest = setup.form()
    assert action.startswith(f"{setup.fake.url}/settings/apps/new?state=")
    assert manifest == app_manifest("https://gate.example.org")
    page = setup.web.get("/setup")
    assert page.headers["Cache-Control"] == "no-store"
    assert f"form-action {setup.fake.url}" in page.headers["Content-Security-Policy"]
    cookie = setup.web.get_cookie("agent_gate_setup_state", path="/setup")
    assert cookie is not None and cookie.http_only and cookie.secure


def test_an_organisation_creates_it_under_its_own_settings(setup):
    action, _ = setup.form("?org=octo-org")
    assert action.startswith(f"{setup.fake.url}/organizations/octo-org/settings/apps/new?state=")
    assert setup.web.get("/setup?org=../../evil").status_code == 400


def test_the_new_apps_credentials_are_shown_once_to_the_browser_that_started(setup):
    path = setup.create_on_github()
    response = setup.web.get(path)
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "GATE_GITHUB_APP_ID=4242" in text and "GATE_GITHUB_CLIENT_ID=Iv23li0created0000001" in text
    assert "GATE_WEBHOOK_SECRET=created-webhook-secret-" in text and "BEGIN RSA PRIVATE KEY" in text
    assert setup.web.get_cookie("agent_gate_setup_state", path="/setup") is None
    again = setup.web.get(path)
    assert again.status_code == 401, "the state is spent with the cookie"
    [created] = [r for r in setup.fake.scenario.requests if r["path"].endswith("/conversions")]
    assert "Authorization" not in created["headers"], "the conversion needs no credential"


# --- a GATE_PUBLIC_URL GitHub cannot use, said before the App is created ----------------------------------


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://gate.example.org", []),
        ("https://gate.example.org:8443/agent-gate", []),
        ("http://127.0.0.1:8080", ["a loopback address", "plain http"]),
        ("https://localhost", ["a loopback address"]),
        ("https://[::1]:8443", ["a loopback address"]),
        ("https://10.1.2.3", ["an address GitHub cannot reach from the internet"]),
        ("http://gate.example.org", ["plain http"]),
    ],
    ids=[
        "public-https",
        "public-https-with-path",
        "loopback-http",
        "localhost",
        "ipv6-loopback",
        "private",
        "http",
    ],
)
def test_setup_says_when_github_could_not_use_the_public_url(public_url, expected):
    from app.web.setup import reachability_warnings

    warnings = reachability_warnings(public_url)
    assert len(warnings) == len(expected)
    for warning, phrase in zip(warnings, expected, strict=True):
        assert warning.startswith(f"GATE_PUBLIC_URL is {public_url}, ") and phrase in warning


def test_the_warning_is_on_the_page_before_the_app_is_created(tmp_path: Path, settings: Settings):
    local = settings.model_copy(update={"public_url": "http://127.0.0.1:8080"})
    app = create_app(local)
    try:
        text = app.test_client().get("/setup").get_data(as_text=True)
    finally:
        close_gate(app)
    warning = text.index('id="warnings"')
    assert warning < text.index("<form")
    assert "a loopback address: GitHub cannot deliver webhooks to it" in text
    assert "plain http" in text


def test_a_public_https_url_gets_no_warning(setup):
    assert 'id="warnings"' not in setup.web.get("/setup").get_data(as_text=True)
