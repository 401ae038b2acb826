"""The token's ``check_run_id`` claim (GitHub.com and GHE.com): recorded with the decision, shown to
reviewers as the job, and linked to the job's check run from the decision page and the check run."""

from __future__ import annotations

from typing import Any

from app.publish.checks import check_run_body
from tests.builders import POLICY_TEXT, identity, policy_set, run

JOB = "https://github.com/octo-org/octo-repo/runs/77123456"


def test_the_job_is_recorded_and_linked_from_the_decision_page(ask: Any, client: Any, app: Any) -> None:
    response = ask({"action": "read"}, check_run_id="77123456")
    decision = response.get_json()
    assert decision["subject"]["check_run_id"] == 77123456
    store = app.extensions["agent_gate"].store
    [record] = [r for r in store.iter_audit() if r.payload.get("decision_id") == decision["decision_id"]]
    assert record.payload["subject"]["check_run_id"] == 77123456, "recorded in the audit log"
    html = client.get("/decisions/" + decision["decision_id"]).get_data(as_text=True)
    assert f'href="{JOB}"' in html and "check run 77123456" in html


def test_a_token_without_the_claim_shows_no_job(ask: Any, client: Any) -> None:
    decision = ask({"action": "read"}, check_run_id=None).get_json()
    assert decision["subject"]["check_run_id"] is None
    html = client.get("/decisions/" + decision["decision_id"]).get_data(as_text=True)
    assert "/runs/" not in html.replace("/actions/runs/", "")


def test_the_check_run_names_the_job_to_reviewers() -> None:
    decision = run(policy_set(POLICY_TEXT), identity(check_run_id="77123456"), "read")
    summary = check_run_body(decision)["output"]["summary"]
    assert f"| Job | [check run 77123456]({JOB}) |" in summary
