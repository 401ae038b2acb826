"""The pages as a reader meets them: a browser gets HTML errors, the decision page never ticks what was not
checked, the inventory names every identity and reads on a phone; checked in a real chromium at 1280 and
390 px wide."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app.evidence.model import Evidence
from tests.conftest import TEST_POLICY, RecordingEvidence
from tests.governance.policies import write_policy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what chromium sends
WITH_AGENT = TEST_POLICY.replace(
    "rules:\n", 'agents:\n  ai:\n    - {login: "acme-agent[bot]", name: ACME agent}\nrules:\n', 1
)


# --- errors: HTML for a browser, JSON for a program -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "accept", "html"),
    [
        pytest.param("/decisions/dec_doesnotexist12345678", BROWSER, True, id="browser-on-a-page"),
        pytest.param("/no/such/page", BROWSER, True, id="browser-on-an-unknown-path"),
        pytest.param("/decisions/dec_doesnotexist12345678", "application/json", False, id="script-asking-json"),
        pytest.param("/decisions/dec_doesnotexist12345678", None, False, id="no-accept-header"),
        pytest.param("/v1/grants/introspect", BROWSER, False, id="an-api-path-is-always-json"),
        pytest.param("/.well-known/nothing", BROWSER, False, id="well-known-is-json"),
    ],
)  # fmt: skip
def test_a_browser_gets_an_html_error_a_program_json(
    client: FlaskClient, path: str, accept: str | None, html: bool
) -> None:
    response = client.get(path, headers={"Accept": accept} if accept else {})
    assert response.status_code in (404, 405)
    if html:
        body = response.get_data(as_text=True)
        assert response.mimetype == "text/html" and "<script" not in body
        assert f"{response.status_code}: " in body
        assert ("not-found" if response.status_code == 404 else "method-not-allowed") in body
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    else:
        assert response.mimetype == "application/json"
        assert response.get_json()["errors"][0]["code"]


def test_an_html_error_escapes_what_it_repeats(client: FlaskClient) -> None:
    body = client.get("/decisions/dec_<b>x</b>", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert "<b>x</b>" not in body


# --- the decision page ------------------------------------------------------------------------------------


@pytest.fixture
def unchecked(ask: Callable[..., Any], evidence_source: RecordingEvidence) -> str:
    """A deploy decided without the GitHub App: provenance and approvals could not be read."""
    evidence_source.evidence = Evidence.none("the GitHub App is not configured")
    response = ask({"action": "deploy", "environment": "production"}, environment="production")
    assert response.status_code == 403
    decision_id: str = response.get_json()["decision_id"]
    return decision_id


def test_the_page_never_ticks_what_was_not_checked(client: FlaskClient, unchecked: str) -> None:
    html = client.get(f"/decisions/{unchecked}").get_data(as_text=True)
    provenance = next(line for line in html.splitlines() if "<strong>provenance</strong>" in line)
    assert "✔" not in provenance and "○" in provenance and "(not checked)" in provenance
    assert "No agent signal fired." not in html and "Not checked: only the actor was classified" in html
    assert "For the gate&#39;s operator:" in html, "configuring the App is the operator's to do"
    checks = html.split('id="reasons"', 1)[1]
    assert checks.index("✖") < checks.index("○") < checks.index("✔"), "failing checks first"
    assert " UTC</time>" in html


# --- the inventory ----------------------------------------------------------------------------------------


def test_every_inventory_row_names_its_identity(
    client: FlaskClient, ask: Callable[..., Any], policy_file: Path
) -> None:
    write_policy(policy_file, WITH_AGENT)
    assert ask({"action": "read"}).status_code == 200
    rows = client.get("/inventory", headers={"Accept": "application/json"}).get_json()
    never_seen = next(r for r in rows if r["login"] == "acme-agent[bot]")
    assert never_seen["kind"] == "never-seen"
    html = client.get("/inventory", headers={"Accept": BROWSER}).get_data(as_text=True)
    cells = [line for line in html.splitlines() if 'class="identity"' in line]
    assert cells and all(cell.split('class="identity">', 1)[1].strip()[:1] not in ("<", "") for cell in cells)
    assert "@acme-agent[bot] (ACME agent)" in html
    assert 'data-label="Last seen"' in html and "@media (max-width: 40rem)" in html


# --- logs -------------------------------------------------------------------------------------------------


def test_a_decision_logs_its_facts_as_keys(ask: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agent_gate.decisions"):
        body = ask({"action": "read"}).get_json()
    [record] = [r for r in caplog.records if r.name == "agent_gate.decisions"]
    facts = {k: getattr(record, k) for k in ("decision_id", "verdict", "action", "repository_id", "actor_id",
                                             "rule", "github_api_calls", "origin", "audit_kind")}  # fmt: skip
    assert facts == {"decision_id": body["decision_id"], "verdict": "allowed", "action": "read",
                     "repository_id": 2000, "actor_id": 583231, "rule": "read-anything", "github_api_calls": 0,
                     "origin": "oidc-token", "audit_kind": "decision"}  # fmt: skip
    from app.observe.logs import JsonFormatter

    line = json.loads(JsonFormatter().format(record))
    assert line["verdict"] == "allowed" and line["repository_id"] == 2000


# --- in a real browser, at desktop and phone widths -------------------------------------------------------


@pytest.fixture
def served(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90).stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_pages_read_at_desktop_and_phone_width(
    served: str, unchecked: str, ask: Callable[..., Any], policy_file: Path, tmp_path: Path, width: int
) -> None:
    write_policy(policy_file, WITH_AGENT)
    ask({"action": "read"})
    for path in (f"/decisions/{unchecked}", "/inventory"):
        dom = _chromium(tmp_path, f"--window-size={width},900", "--dump-dom", served + path)
        assert "○" in dom or "@acme-agent[bot]" in dom
        shot = tmp_path / f"{path.strip('/').replace('/', '-')}-{width}.png"
        _chromium(tmp_path, f"--window-size={width},900", f"--screenshot={shot}", served + path)
        assert shot.exists() and shot.stat().st_size > 5_000
