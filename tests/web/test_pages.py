"""The decision page: what a reviewer sees after following a check run's link."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app.evidence.model import Evidence
from tests.builders import ALICE, BOB, OLD, evidence, pull_request, review
from tests.conftest import RecordingEvidence
from tests.fake_github import Person
from tests.github.conftest import base_scenario
from tests.web.test_login import CAROL, MALLORY, Site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def denied_agent_merge() -> Evidence:
    return evidence(pr=pull_request(), reviews=[review(ALICE, n=1), review(BOB, commit_id=OLD, n=2)])


@pytest.fixture
def decision(ask: Any, evidence_source: RecordingEvidence) -> dict[str, Any]:
    evidence_source.evidence = denied_agent_merge()
    response = ask({"action": "merge", "pull_request": 12}, event_name="workflow_dispatch")
    assert response.status_code == 403
    body: dict[str, Any] = response.get_json()
    return body


def test_the_page_shows_what_the_check_run_shows(client, decision):
    path = "/decisions/" + decision["decision_id"]
    html = client.get(path).get_data(as_text=True)
    assert "Blocked: agent change needs an independent human approval" in html
    assert "@alice" in html and "self-approval never counts" in html
    assert "stale: approved commit bbbbbbb" in html
    assert "For reviewers:" in html and "needs 1 approval of commit aaaaaaa" in html
    assert "<script" not in html and "http://" not in html.split("<body>")[0], "no external assets"


def test_the_same_record_as_json(client, decision):
    response = client.get("/decisions/" + decision["decision_id"], headers={"Accept": "application/json"})
    assert response.get_json() == decision


@pytest.mark.parametrize("decision_id", ["dec_doesnotexist12345678", "../../etc/passwd", "dec_%3Cscript%3E"])
def test_unknown_or_malformed_ids_are_404(client, decision_id):
    response = client.get(f"/decisions/{decision_id}")
    assert response.status_code == 404
    assert response.get_json()["errors"][0]["code"] == "not-found"


def test_decision_ids_are_unguessable(decision):
    assert decision["decision_id"].startswith("dec_") and len(decision["decision_id"]) >= 4 + 22  # 128 bits


def test_the_page_forbids_scripts_and_external_loads(client, decision):
    headers = client.get("/decisions/" + decision["decision_id"]).headers
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.fixture
def served(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_reviewer_reads_the_page_in_a_real_browser(served, decision, tmp_path: Path):
    url = f"{served}/decisions/{decision['decision_id']}"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60
    ).stdout
    assert "Blocked: agent change needs an independent human approval" in dom
    assert 'id="approvals"' in dom and "@alice" in dom and "self-approval never counts" in dom
    assert 'id="remedy"' in dom and "needs 1 approval of commit aaaaaaa" in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=412,915", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=60,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, "a phone-sized screenshot of the page"


# --- behind a GitHub login, in a real browser ----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_reviewer_logs_in_with_github_and_reads_the_page_in_a_real_browser(tmp_path: Path):
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    site = Site(tmp_path, base_scenario(), public_url=url)
    server.app = site.app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = f"{url}/decisions/{site.decision()}"
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
        ]

        def dom(as_user: Person | None) -> str:
            site.scenario.oauth_user = as_user
            return subprocess.run(
                [CHROMIUM, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=60
            ).stdout

        reader = dom(CAROL)
        assert "octo-org/octo-repo" in reader and "Allowed" in reader
        assert [r["path"] for r in site.scenario.requests if r["path"].startswith("/login")] == [
            "/login/oauth/authorize",
            "/login/oauth/access_token",
        ]
        shutil.rmtree(tmp_path / "profile")
        stranger = dom(MALLORY)
        assert "octo-org/octo-repo" not in stranger and "no such decision" in stranger
    finally:
        server.shutdown()
        site.close()
