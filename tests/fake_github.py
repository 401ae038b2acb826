"""A fake GitHub on loopback: a small Flask app driven by scenario data.

Payloads start from the examples in GitHub's OpenAPI description (tests/fixtures/github-openapi)
and are validated against its schemas in tests/github/test_fake_github.py, so the fake cannot drift
from GitHub's published shapes. It checks the App JWT and installation tokens, serves ETags and
pagination, injects failures, and records every request.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from flask import Flask, Response, request
from werkzeug.serving import make_server

EXTRACT = Path(__file__).parent / "fixtures" / "github-openapi" / "extract.json"


@cache
def extract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXTRACT.read_text())
    return data


def example(operation: str, status: str = "200") -> Any:
    examples = extract()["operations"][operation]["responses"][status]["examples"]
    return copy.deepcopy(next(iter(examples.values())))


def user(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    base = example("pulls/get")["user"]
    base.update(
        {
            "login": login,
            "id": user_id,
            "type": kind,
            "node_id": f"U_{user_id}",
            "url": f"https://api.github.com/users/{login}",
            "html_url": f"https://github.com/{login}",
        }
    )
    return dict(base)


@dataclass
class Person:
    login: str
    id: int
    type: str = "User"

    def json(self) -> dict[str, Any]:
        return user(self.login, self.id, self.type)


@dataclass
class Commit:
    sha: str
    message: str = "Change"
    author: Person | None = None
    author_email: str = "someone@example.com"
    committer: Person | None = None
    committer_email: str = "noreply@github.com"


@dataclass
class PR:
    number: int
    author: Person
    head_sha: str
    head_ref: str = "feature"
    base_ref: str = "main"
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)  # {"user": Person, "state", "commit_id"}


@dataclass
class Run:
    id: int
    triggering_actor: Person
    actor: Person
    head_sha: str
    event: str = "workflow_dispatch"
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {"user": Person, "state", "environments"}


@dataclass
class Scenario:
    owner: str = "octo-org"
    repo: str = "octo-repo"
    repo_id: int = 2000
    installation_id: int = 77
    app_public_key: Any = None
    prs: dict[int, PR] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    teams: dict[str, set[str]] = field(default_factory=dict)
    # Failure injection: (method, path regex) -> (status, headers) answered instead, `times` times (-1: always).
    failures: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def paths(self, method: str = "GET") -> list[str]:
        return [r["path"] for r in self.requests if r["method"] == method]


def _pr_json(s: Scenario, pr: PR) -> dict[str, Any]:
    body = example("pulls/get")
    body.update(
        {
            "number": pr.number,
            "id": 10_000 + pr.number,
            "state": pr.state,
            "merged": pr.merged,
            "merged_at": "2026-11-23T10:00:00Z" if pr.merged else None,
            "merge_commit_sha": pr.merge_commit_sha,
            "user": pr.author.json(),
            "draft": False,
            # GitHub's own example lists a team lacking fields its schema requires; none are requested here.
            "requested_teams": [],
            "requested_reviewers": [],
            "labels": [{**example("pulls/get")["labels"][0], "name": name} for name in pr.labels],
        }
    )
    body["head"].update({"sha": pr.head_sha, "ref": pr.head_ref, "label": f"{s.owner}:{pr.head_ref}"})
    body["base"].update({"ref": pr.base_ref, "label": f"{s.owner}:{pr.base_ref}"})
    return dict(body)


def _commit_json(c: Commit) -> dict[str, Any]:
    body = example("pulls/list-commits")[0]
    body["sha"] = c.sha
    body["commit"]["message"] = c.message
    body["commit"]["author"].update(
        {"email": c.author_email, "name": c.author.login if c.author else "someone"}
    )
    body["commit"]["committer"].update(
        {"email": c.committer_email, "name": c.committer.login if c.committer else "GitHub"}
    )
    body["author"] = c.author.json() if c.author else None
    body["committer"] = c.committer.json() if c.committer else None
    return dict(body)


def _review_json(r: dict[str, Any], i: int) -> dict[str, Any]:
    body = example("pulls/list-reviews")[0]
    body.update(
        {
            "id": r.get("id", i + 1),
            "user": r["user"].json(),
            "state": r["state"],
            "commit_id": r["commit_id"],
            "submitted_at": f"2026-11-23T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        }
    )
    return dict(body)


def create_fake_github(s: Scenario) -> Flask:
    app = Flask("fake_github")

    def record() -> None:
        s.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "headers": dict(request.headers),
            }
        )

    @app.before_request
    def _before() -> Response | None:
        record()
        if s.delay:
            time.sleep(s.delay)
        for failure in s.failures:
            if failure.get("method", "GET") == request.method and re.search(failure["path"], request.path):
                if failure.get("times", -1) == 0:
                    continue
                failure["times"] = (
                    failure.get("times", -1) - 1 if failure.get("times", -1) > 0 else failure.get("times", -1)
                )
                return Response(
                    json.dumps({"message": "injected failure"}),
                    status=failure["status"],
                    headers=failure.get("headers", {}),
                    content_type="application/json",
                )
        return None

    def app_auth() -> Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            jwt.decode(
                token, s.app_public_key, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]}
            )
        except jwt.PyJWTError:
            return Response(
                json.dumps({"message": "A JSON web token could not be decoded"}),
                401,
                content_type="application/json",
            )
        return None

    def installation_auth() -> Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in s.tokens or token in s.revoked:
            return Response(json.dumps({"message": "Bad credentials"}), 401, content_type="application/json")
        return None

    def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        text = json.dumps(body)
        etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:20] + '"'
        if request.method == "GET" and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(
            text, status=status, headers={"ETag": etag, **(headers or {})}, content_type="application/json"
        )

    def page(items: list[Any]) -> Response:
        per_page = int(request.args.get("per_page", 30))
        number = int(request.args.get("page", 1))
        chunk = items[(number - 1) * per_page : number * per_page]
        headers = {}
        if number * per_page < len(items):
            headers["Link"] = f'<{request.base_url}?per_page={per_page}&page={number + 1}>; rel="next"'
        return answer(chunk, headers=headers)

    repo = f"/repos/{s.owner}/{s.repo}"

    @app.get(f"{repo}/installation")
    def installation() -> Response:
        if (denied := app_auth()) is not None:
            return denied
        body = example("apps/get-repo-installation")
        body["id"] = s.installation_id
        return answer(body)

    @app.post("/app/installations/<int:installation_id>/access_tokens")
    def access_token(installation_id: int) -> Response:
        if (denied := app_auth()) is not None:
            return denied
        requested = request.get_json(silent=True) or {}
        token = "ghs_" + uuid.uuid4().hex  # a stand-in; the client must not assume any format
        s.tokens[token] = requested
        body = example("apps/create-installation-access-token", "201")
        body.update(
            {
                "token": token,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
                "permissions": requested.get("permissions", {"pull_requests": "read", "checks": "write"}),
            }
        )
        return answer(body, 201)

    @app.delete("/installation/token")
    def revoke() -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        s.revoked.append(request.headers["Authorization"].removeprefix("Bearer "))
        return Response(status=204)

    @app.get(f"{repo}/pulls/<int:number>")
    def get_pull(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if number not in s.prs:
            return Response(json.dumps({"message": "Not Found"}), 404, content_type="application/json")
        return answer(_pr_json(s, s.prs[number]))

    @app.get(f"{repo}/pulls/<int:number>/commits")
    def pull_commits(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        return page([_commit_json(c) for c in s.prs[number].commits])

    @app.get(f"{repo}/pulls/<int:number>/reviews")
    def pull_reviews(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        return page([_review_json(r, i) for i, r in enumerate(s.prs[number].reviews)])

    @app.get(f"{repo}/commits/<sha>/pulls")
    def commit_pulls(sha: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        found = [_pr_json(s, p) for p in s.prs.values() if sha in (p.head_sha, p.merge_commit_sha)]
        return answer(found)

    @app.get(f"{repo}/actions/runs/<int:run_id>")
    def get_run(run_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        run = s.runs[run_id]
        body = example("actions/get-workflow-run")
        body.update(
            {
                "id": run.id,
                "head_sha": run.head_sha,
                "event": run.event,
                "actor": run.actor.json(),
                "triggering_actor": run.triggering_actor.json(),
                "head_branch": "main",
            }
        )
        return answer(body)

    @app.get(f"{repo}/actions/runs/<int:run_id>/approvals")
    def run_approvals(run_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        out = []
        for a in s.runs[run_id].approvals if run_id in s.runs else []:
            body = example("actions/get-reviews-for-run")[0]
            env = body["environments"][0]
            body.update(
                {
                    "user": a["user"].json(),
                    "state": a["state"],
                    "comment": a.get("comment", ""),
                    "environments": [{**env, "name": name} for name in a["environments"]],
                }
            )
            out.append(body)
        return answer(out)

    @app.get(f"{repo}/collaborators/<login>/permission")
    def permission(login: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        body = example("repos/get-collaborator-permission-level")
        level = s.permissions.get(login, "none")
        body.update({"permission": level, "role_name": level})
        body["user"].update({"login": login, "role_name": level})
        return answer(body)

    @app.get("/orgs/<org>/teams/<slug>/memberships/<login>")
    def membership(org: str, slug: str, login: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if login not in s.teams.get(slug, set()):
            return Response(json.dumps({"message": "Not Found"}), 404, content_type="application/json")
        body = example("teams/get-membership-for-user-in-org")
        body.update({"state": "active", "role": "member"})
        return answer(body)

    @app.get(f"{repo}/commits/<sha>/check-runs")
    def list_checks(sha: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        name = request.args.get("check_name")
        runs = [
            c for c in s.check_runs.values() if c["head_sha"] == sha and (name is None or c["name"] == name)
        ]
        body = example("checks/list-for-ref")
        template = body["check_runs"][0]
        body["check_runs"] = [
            {**template, **{k: v for k, v in c.items() if k in template}, "id": c["id"]}
            for c in reversed(runs)
        ]
        body["total_count"] = len(runs)
        return answer(body)

    @app.post(f"{repo}/check-runs")
    def create_check() -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        payload = request.get_json()
        check_id = len(s.check_runs) + 1
        s.check_runs[check_id] = {"id": check_id, **payload, "history": [payload]}
        body = example("checks/create", "201")
        body.update({"id": check_id, "name": payload["name"], "head_sha": payload["head_sha"]})
        return answer(body, 201)

    @app.patch(f"{repo}/check-runs/<int:check_id>")
    def update_check(check_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        payload = request.get_json()
        s.check_runs[check_id].update(payload)
        s.check_runs[check_id]["history"].append(payload)
        body = example("checks/update")
        body.update({"id": check_id})
        return answer(body)

    return app


class FakeGitHub:
    """The fake served on 127.0.0.1 in a thread; ``url`` is its API base URL."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._server = make_server("127.0.0.1", 0, create_fake_github(scenario), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)


def start_fake_github(scenario: Scenario) -> FakeGitHub:
    return FakeGitHub(scenario).__enter__()
