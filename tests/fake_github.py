"""A fake GitHub on loopback: a small Flask app driven by scenario data.

Start one with ``start_fake_github(scenario) -> (url, server)`` (or ``with FakeGitHub(scenario)``,
or the ``fake_github`` fixture of tests/github/conftest.py), point a ``GitHubClient`` at ``url``,
and the real client talks real HTTP to it.

- Payloads start from GitHub's own examples in its OpenAPI description
  (tests/fixtures/github-openapi) and every one the fake answers is validated against GitHub's
  schema; ``close()`` fails the test if any did not match, so the fake cannot drift.
- It verifies the App JWT (RS256 signature with the App's public key, ``iss`` = the App id,
  ``exp`` at most 10 minutes ahead) and the installation tokens it minted (unexpired, unrevoked,
  and for a down-scoped token, this repository).
- It serves weak ETags (304 on ``If-None-Match``), ``Link`` pagination, GitHub's 250-commit cap on
  a PR's commit list, 409 for an empty repository, and rate-limit headers.
- Failures are injected per path: 500s, slow answers, primary and secondary rate limits.
- It records every request (method, path, query, headers, status).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import graphql
import jsonschema
import jwt
from flask import Flask, Response, g, request
from werkzeug.serving import make_server

from tests.issuer import rsa_key

EXTRACT = Path(__file__).parent / "fixtures" / "github-openapi" / "extract.json"
APP_ID = 42
# The webhook events of the App's manifest (app/github/manifest.py), which GET /app answers by default.
APP_EVENTS = (
    "check_run",
    "check_suite",
    "deployment_protection_rule",
    "deployment_review",
    "merge_group",
    "pull_request",
    "pull_request_review",
)
WEB_FLOW = ("web-flow", 19864447)
_BASE_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}


# --- GitHub's published shapes -------------------------------------------------------------------------


@cache
def extract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXTRACT.read_text())
    return data


def schema(operation: str, status: str = "200") -> dict[str, Any]:
    found: dict[str, Any] = extract()["operations"][operation]["responses"][status]["schema"]
    return found


@cache
def _validator(operation: str, status: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema(operation, status))


def schema_errors(operation: str, status: str, body: Any) -> list[str]:
    """Where ``body`` departs from GitHub's schema for this operation's answer (empty: it matches)."""
    return [
        f"{operation} {status} at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:200]}"
        for e in _validator(operation, status).iter_errors(body)
    ]


def request_errors(operation: str, body: Any) -> list[str]:
    """Where a request ``body`` departs from GitHub's schema for this operation (empty: it matches)."""
    request_schema = extract()["operations"][operation]["request_schema"]
    return [
        f"{operation} request at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft202012Validator(request_schema).iter_errors(body)
    ]


GRAPHQL_SCHEMA = Path(__file__).parent / "fixtures" / "github-graphql" / "schema.graphql"
_TRAILER = re.compile(r"^co-authored-by:\s*(?P<name>[^<]*?)\s*<(?P<email>[^<>\s]+)>\s*$", re.IGNORECASE)
_NOREPLY = re.compile(
    r"^(?:(?P<id>[0-9]+)\+)?(?P<login>[A-Za-z0-9-]+(?:\[bot\])?)@users\.noreply\.github\.com$", re.I
)


@cache
def graphql_schema() -> graphql.GraphQLSchema:
    """The part of GitHub's published GraphQL schema the gate's queries use (see its README)."""
    return graphql.build_schema(GRAPHQL_SCHEMA.read_text("utf-8"))


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


# --- scenario data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
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
    author: Person | None = None  # the linked account; None: GitHub could not link the email
    author_email: str = "someone@example.com"
    committer: Person | None = None
    committer_email: str = "noreply@github.com"


@dataclass
class ReviewSpec:
    user: Person
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str
    id: int | None = None


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
    draft: bool = False
    labels: list[str] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    # ReviewSpec, or {"user": Person, "state": ..., "commit_id": ..., "id"?: ...}
    reviews: list[Any] = field(default_factory=list)
    # The changed files (GET /pulls/{n}/files, at its head): a FileSpec, or a path, or
    # {"filename", "status", "previous_filename"?}.
    files: list[Any] = field(default_factory=list)


@dataclass
class FileSpec:
    """A changed file (``diff-entry``): ``sha`` is its blob at the compared head."""

    filename: str
    sha: str
    status: str = "modified"
    patch: str | None = None
    previous_filename: str | None = None


@dataclass
class Comparison:
    """``GET /compare/{base}...{head}``: the commits from base to head, and the files head changes."""

    commits: list[Commit] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)
    status: str = "ahead"


@dataclass
class ApprovalSpec:
    user: Person
    state: str  # approved, rejected, pending
    environments: list[str]
    comment: str = ""


@dataclass
class Run:
    id: int
    triggering_actor: Person
    actor: Person
    head_sha: str
    event: str = "workflow_dispatch"
    head_branch: str = "main"
    path: str = ".github/workflows/deploy.yml"
    run_attempt: int = 1
    # ApprovalSpec, or {"user": Person, "state": ..., "environments": [...], "comment"?: ...}
    approvals: list[Any] = field(default_factory=list)


@dataclass
class DeploymentRule:
    """A custom deployment protection rule enabled on an environment: an App's."""

    app_id: int
    enabled: bool = True
    slug: str = "agent-gate"
    id: int | None = None


@dataclass(frozen=True)
class AdminToken:
    """A person's token, as `agent-gate protect` uses one. ``scopes`` is a classic token's (GitHub
    names them in ``X-OAuth-Scopes``); None is a fine-grained token, whose ``permissions`` GitHub
    does not show but enforces. ``role`` is the person's on the repository."""

    login: str = "octo-admin"
    role: str = "admin"
    scopes: tuple[str, ...] | None = ("repo",)
    permissions: dict[str, str] = field(default_factory=lambda: {"administration": "write"})


@dataclass
class Failure:
    """Answer ``status`` (after ``delay`` seconds) instead of the real answer, ``times`` times
    (-1: always). ``status=None`` with a delay: a slow but otherwise normal answer."""

    path: str  # a regular expression searched in the request path
    status: int | None = 500
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = -1
    delay: float = 0.0
    message: str = "injected failure"

    @classmethod
    def server_error(cls, path: str, status: int = 500, times: int = -1) -> Failure:
        return cls(path, status, times=times, message="Server Error")

    @classmethod
    def slow(cls, path: str, seconds: float, times: int = -1) -> Failure:
        return cls(path, None, times=times, delay=seconds)

    @classmethod
    def secondary_rate_limit(cls, path: str, retry_after: int | None = 60, status: int = 403) -> Failure:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return cls(
            path,
            status,
            headers=headers,
            message="You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        )

    @classmethod
    def primary_rate_limit(cls, path: str, reset: int, status: int = 403) -> Failure:
        return cls(
            path,
            status,
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            message="API rate limit exceeded for installation ID 77.",
        )


@dataclass
class Scenario:
    owner: str = "octo-org"
    owner_id: int = 1000
    repo: str = "octo-repo"
    repo_id: int = 2000
    app_id: int = APP_ID
    installation_id: int = 77
    installed: bool = True
    app_public_key: Any = field(default_factory=lambda: rsa_key("github-app").public_key())
    empty_repository: bool = False  # GET /commits/{sha}/pulls answers 409
    unknown_commits: set[str] = field(default_factory=set)  # GET /commits/{sha}/pulls answers 422
    prs: dict[int, PR] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # login -> admin/maintain/write/triage/read
    teams: dict[str, set[str]] = field(default_factory=dict)  # team slug -> logins (active members)
    pending_teams: dict[str, set[str]] = field(default_factory=dict)  # invited, not yet active
    token_ttl: int = 3600
    # Failure (or the same fields as a dict); see Failure.
    failures: list[Any] = field(default_factory=list)
    delay: float = 0.0  # every answer this much later
    # Check every answer against GitHub's schemas (tests always do; a benchmark may not, to measure
    # the gate rather than the fake's validation).
    validate: bool = True
    # What happened, for assertions.
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # minted token -> the body asked for
    token_expiry: dict[str, float] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The GitHub account each commit address belongs to (lower-cased e-mail -> Person), as GitHub
    # resolves authors and Co-authored-by trailers; noreply addresses resolve by themselves.
    accounts: dict[str, Person] = field(default_factory=dict)
    # Bodies POSTed to .../actions/runs/{id}/deployment_protection_rule (with their run_id).
    protection_answers: list[dict[str, Any]] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    # The repository's settings and files (what `agent-gate doctor` reads).
    default_branch: str = "main"
    # environment name -> its custom deployment protection rules (DeploymentRule or the same fields as a dict)
    environments: dict[str, list[Any]] = field(default_factory=dict)
    # Apps GitHub offers as deployment protection rules (installed, with Deployments and the event): id -> slug
    rule_apps: dict[int, str] = field(default_factory=lambda: {APP_ID: "agent-gate"})
    # branch -> the rules that apply to it, in GitHub's shape
    branch_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path -> text, on the default branch
    # The App's user authorisation: its client, who authorises in the browser, what was handed out.
    oauth_client_id: str = "Iv23li0fakeclient0001"
    oauth_client_secret: str = "fake-client-secret-0123456789abcdef"
    oauth_user: Person | None = None
    oauth_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_tokens: dict[str, Person] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifest-flow code -> manifest
    # "base...head" (commit shas) -> what head changes against base (a merge group's commit, say)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    # The webhook events the App is subscribed to (GET /app): by default those of its manifest.
    app_events: list[str] = field(default_factory=lambda: list(APP_EVENTS))
    # The App's webhook: every delivery GitHub attempted (newest last; see send_webhook), where it
    # delivers (event, X-GitHub-Delivery, body) -> the status code the receiver answered (None: the
    # receiver is down), and the delivery ids POSTed to .../deliveries/{id}/attempts.
    hook_deliveries: list[dict[str, Any]] = field(default_factory=list)
    hook_target: Any = None
    redelivery_requests: list[int] = field(default_factory=list)
    # What `agent-gate protect` writes with an administrator's token (see _add_protection_writes).
    admin_tokens: dict[str, AdminToken] = field(default_factory=dict)  # token -> who and what it may do
    rulesets: dict[int, dict[str, Any]] = field(default_factory=dict)  # the repository's rulesets, full

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def paths(self, method: str = "GET") -> list[str]:
        return [r["path"] for r in self.requests if r["method"] == method]

    def count(self, path_pattern: str, method: str = "GET") -> int:
        return sum(1 for p in self.paths(method) if re.search(path_pattern, p))


def _failure(item: Any) -> Failure:
    return item if isinstance(item, Failure) else Failure(**item)


def _review(item: Any) -> ReviewSpec:
    return item if isinstance(item, ReviewSpec) else ReviewSpec(**item)


def _approval(item: Any) -> ApprovalSpec:
    return item if isinstance(item, ApprovalSpec) else ApprovalSpec(**item)


def _deployment_rule(item: Any) -> DeploymentRule:
    return item if isinstance(item, DeploymentRule) else DeploymentRule(**item)


# --- payloads in GitHub's shapes -----------------------------------------------------------------------


def _pr_json(s: Scenario, pr: PR) -> dict[str, Any]:
    body = example("pulls/get")
    label = example("pulls/get")["labels"][0]
    body.update(
        {
            "number": pr.number,
            "id": 10_000 + pr.number,
            "state": pr.state,
            "merged": pr.merged,
            "merged_at": "2026-11-23T10:00:00Z" if pr.merged else None,
            "closed_at": "2026-11-23T10:00:00Z" if pr.state == "closed" else None,
            "merge_commit_sha": pr.merge_commit_sha,
            "user": pr.author.json(),
            "draft": pr.draft,
            "commits": len(pr.commits),
            "changed_files": len(pr.files),
            # GitHub's example lists a team lacking `type`, which its schema requires.
            "requested_teams": [],
            "requested_reviewers": [],
            "labels": [{**label, "name": name} for name in pr.labels],
        }
    )
    body["head"].update({"sha": pr.head_sha, "ref": pr.head_ref, "label": f"{s.owner}:{pr.head_ref}"})
    body["base"].update({"ref": pr.base_ref, "label": f"{s.owner}:{pr.base_ref}"})
    return dict(body)


def _pr_simple_json(s: Scenario, pr: PR) -> dict[str, Any]:
    """``pull-request-simple``: the list shape, without the full PR's counts and merge state."""
    template = example("repos/list-pull-requests-associated-with-commit")[0]
    full = _pr_json(s, pr)
    return {k: full[k] for k in template if k in full}


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


def _review_json(r: ReviewSpec, i: int) -> dict[str, Any]:
    body = example("pulls/list-reviews")[0]
    body.update(
        {
            "id": r.id if r.id is not None else i + 1,
            "user": r.user.json(),
            "state": r.state,
            "commit_id": r.commit_id,
            "submitted_at": f"2026-11-23T{10 + i // 3600:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        }
    )
    return dict(body)


def _approval_json(a: ApprovalSpec) -> dict[str, Any]:
    body = example("actions/get-reviews-for-run")[0]
    env = body["environments"][0]
    body.update(
        {
            "user": a.user.json(),
            "state": a.state,
            "comment": a.comment,
            "environments": [{**env, "name": name} for name in a.environments],
        }
    )
    return dict(body)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


# --- the app -------------------------------------------------------------------------------------------


def create_fake_github(s: Scenario) -> Flask:
    app = Flask("fake_github")
    lock = threading.Lock()

    @app.before_request
    def _before() -> Response | None:
        g.started = time.monotonic()
        if s.delay:
            time.sleep(s.delay)
        for i, item in enumerate(s.failures):
            failure = _failure(item)
            if failure.method != request.method or not re.search(failure.path, request.path):
                continue
            with lock:
                if failure.times == 0:
                    continue
                if failure.times > 0:
                    failure.times -= 1
                    s.failures[i] = failure
            if failure.delay:
                time.sleep(failure.delay)
            if failure.status is not None:
                return _error(failure.status, failure.message, failure.headers)
        return None

    @app.after_request
    def _record(response: Response) -> Response:
        s.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "headers": dict(request.headers),
                "status": response.status_code,
                # When the request arrived and when its answer left (time.monotonic()), so tests can
                # tell which requests were in flight together.
                "started": g.get("started"),
                "finished": time.monotonic(),
            }
        )
        return response

    def app_auth() -> Response | None:
        """The App JWT: RS256 by the App's key, iss = App id, short-lived; else 401 like GitHub."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token,
                s.app_public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=0,
            )
        except jwt.PyJWTError:
            return _error(401, "A JSON web token could not be decoded")
        if claims["iss"] != str(s.app_id):
            return _error(401, "'Issuer' claim ('iss') must be the App's id")
        if claims["exp"] > time.time() + 600 or claims["iat"] > time.time() + 60:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        return None

    def installation_auth(repo_scoped: bool = True) -> Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in s.admin_tokens and request.method == "GET":
            return None  # a person's token reads the repository too
        if token not in s.tokens or token in s.revoked or s.token_expiry.get(token, 0) < time.time():
            return _error(401, "Bad credentials")
        scope = s.tokens[token].get("repository_ids")
        if repo_scoped and scope is not None and s.repo_id not in scope:
            return _error(404, "Not Found")
        return None

    def answer(
        operation: str, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        errors = schema_errors(operation, str(status), body) if s.validate else []
        if errors:
            s.schema_errors.extend(errors)
        text = json.dumps(body)
        etag = 'W/"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
        limits = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
        if request.method == "GET" and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag, **limits})
        return Response(
            text,
            status=status,
            headers={"ETag": etag, **limits, **(headers or {})},
            content_type="application/json",
        )

    def page(operation: str, items: list[Any], cap: int | None = None) -> Response:
        items = items[:cap] if cap is not None else items
        per_page = min(int(request.args.get("per_page", 30)), 100)
        number = int(request.args.get("page", 1))
        chunk = items[(number - 1) * per_page : number * per_page]
        links = []
        last = max(1, -(-len(items) // per_page))
        if number < last:
            links.append(f'<{request.base_url}?per_page={per_page}&page={number + 1}>; rel="next"')
            links.append(f'<{request.base_url}?per_page={per_page}&page={last}>; rel="last"')
        return answer(operation, chunk, headers={"Link": ", ".join(links)} if links else None)

    repo = f"/repos/{s.owner}/{s.repo}"

    @app.get(f"{repo}/installation")
    def installation() -> Response:
        if (denied := app_auth()) is not None:
            return denied
        if not s.installed:
            return _error(404, "Not Found")
        body = example("apps/get-repo-installation")
        body["id"] = s.installation_id
        return answer("apps/get-repo-installation", body)

    @app.post("/app/installations/<int:installation_id>/access_tokens")
    def access_token(installation_id: int) -> Response:
        if (denied := app_auth()) is not None:
            return denied
        if installation_id != s.installation_id or not s.installed:
            return _error(404, "Not Found")
        requested = request.get_json(silent=True) or {}
        token = "ghs_" + uuid.uuid4().hex  # a stand-in: the client must not assume any format
        s.tokens[token] = requested
        s.token_expiry[token] = time.time() + s.token_ttl
        body = example("apps/create-installation-access-token", "201")
        body.update(
            {
                "token": token,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + s.token_ttl)),
                "permissions": requested.get("permissions", {"pull_requests": "read", "checks": "write"}),
            }
        )
        return answer("apps/create-installation-access-token", body, 201)

    @app.delete("/installation/token")
    def revoke() -> Response:
        if (denied := installation_auth(repo_scoped=False)) is not None:
            return denied
        s.revoked.append(request.headers["Authorization"].removeprefix("Bearer "))
        return Response(status=204)

    @app.get(f"{repo}/pulls/<int:number>")
    def get_pull(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if number not in s.prs:
            return _error(404, "Not Found")
        return answer("pulls/get", _pr_json(s, s.prs[number]))

    @app.get(f"{repo}/pulls/<int:number>/commits")
    def pull_commits(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if number not in s.prs:
            return _error(404, "Not Found")
        # GitHub lists at most 250 commits of a pull request.
        return page("pulls/list-commits", [_commit_json(c) for c in s.prs[number].commits], cap=250)

    @app.get(f"{repo}/pulls/<int:number>/reviews")
    def pull_reviews(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if number not in s.prs:
            return _error(404, "Not Found")
        reviews = [_review_json(_review(r), i) for i, r in enumerate(s.prs[number].reviews)]
        return page("pulls/list-reviews", reviews)

    @app.get(f"{repo}/commits/<sha>/pulls")
    def commit_pulls(sha: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if s.empty_repository:
            return _error(409, "Git Repository is empty.")
        if sha in s.unknown_commits:
            return _error(422, f"No commit found for SHA: {sha}")
        found = [
            _pr_simple_json(s, p)
            for p in s.prs.values()
            if sha in (p.head_sha, p.merge_commit_sha) or any(c.sha == sha for c in p.commits)
        ]
        return page("repos/list-pull-requests-associated-with-commit", found)

    @app.get(f"{repo}/actions/runs/<int:run_id>")
    def get_run(run_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if run_id not in s.runs:
            return _error(404, "Not Found")
        run = s.runs[run_id]
        body = example("actions/get-workflow-run")
        body.update(
            {
                "id": run.id,
                "head_sha": run.head_sha,
                "event": run.event,
                "actor": run.actor.json(),
                "triggering_actor": run.triggering_actor.json(),
                "head_branch": run.head_branch,
                "path": run.path,
                "run_attempt": run.run_attempt,
            }
        )
        return answer("actions/get-workflow-run", body)

    def git_actor(email: str, name: str, account: Person | None) -> dict[str, Any]:
        if account is None and (m := _NOREPLY.match(email)) is not None and m.group("id"):
            account = Person(m.group("login"), int(m.group("id")))
        account = account or s.accounts.get(email.lower())
        user_node = {"login": account.login, "databaseId": account.id} if account else None
        return {"email": email, "name": name, "user": user_node}

    def pull_request_node(number: int) -> dict[str, Any] | None:
        pr = s.prs.get(number)
        if pr is None:
            return None

        def commits(info: Any, first: int, after: str | None = None) -> dict[str, Any]:
            start = int(after) if after else 0
            page = pr.commits[start : start + first]
            nodes = []
            for c in page:
                actors = [git_actor(c.author_email, "", c.author)]
                for line in c.message.splitlines():
                    if (m := _TRAILER.match(line.strip())) is not None:
                        actors.append(git_actor(m.group("email"), m.group("name"), None))

                def authors(info: Any, first: int, actors: list[dict[str, Any]] = actors) -> dict[str, Any]:
                    return {"nodes": actors[:first]}

                nodes.append({"commit": {"oid": c.sha, "authors": authors}})
            more = start + first < len(pr.commits)
            return {"nodes": nodes, "pageInfo": {"hasNextPage": more, "endCursor": str(start + first)}}

        return {"commits": commits}

    @app.post("/graphql")
    def graphql_endpoint() -> Response:
        if (denied := installation_auth(repo_scoped=False)) is not None:
            return denied
        body = request.get_json()
        document = graphql.parse(body["query"])
        errors = graphql.validate(graphql_schema(), document)
        if errors:
            s.schema_errors.extend(f"graphql: {e.message}" for e in errors)
            return Response(
                json.dumps({"errors": [{"message": e.message} for e in errors]}),
                200,
                mimetype="application/json",
            )

        def repository(info: Any, owner: str, name: str) -> dict[str, Any] | None:
            if f"{owner}/{name}" != s.full_name:
                return None
            return {"pullRequest": lambda info, number: pull_request_node(number)}

        result = graphql.execute_sync(
            graphql_schema(),
            document,
            root_value={"repository": repository},
            variable_values=body.get("variables"),
        )
        answer_body: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer_body["errors"] = [{"message": e.message} for e in result.errors]
        return Response(json.dumps(answer_body), 200, mimetype="application/json")

    @app.post(f"{repo}/actions/runs/<int:run_id>/deployment_protection_rule")
    def review_custom_gate(run_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if run_id not in s.runs:
            return _error(404, "Not Found")
        payload = request.get_json()
        errors = request_errors("actions/review-custom-gates-for-run", payload)
        if errors:
            s.schema_errors.extend(errors)
            return _error(422, "Invalid request")
        with lock:
            s.protection_answers.append({"run_id": run_id, **payload})
        return Response(status=204)

    @app.get(f"{repo}/actions/runs/<int:run_id>/approvals")
    def run_approvals(run_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if run_id not in s.runs:
            return _error(404, "Not Found")
        return answer(
            "actions/get-reviews-for-run", [_approval_json(_approval(a)) for a in s.runs[run_id].approvals]
        )

    @app.get(f"{repo}/collaborators/<login>/permission")
    def permission(login: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        role = s.permissions.get(login, "none")
        base = _BASE_PERMISSION.get(role, "none")
        body = example("repos/get-collaborator-permission-level")
        body.update({"permission": base, "role_name": role})
        body["user"].update({"login": login, "role_name": role})
        return answer("repos/get-collaborator-permission-level", body)

    @app.get("/orgs/<org>/teams/<slug>/memberships/<login>")
    def membership(org: str, slug: str, login: str) -> Response:
        if (denied := installation_auth(repo_scoped=False)) is not None:
            return denied
        if org != s.owner:
            return _error(404, "Not Found")
        if login in s.teams.get(slug, set()):
            state = "active"
        elif login in s.pending_teams.get(slug, set()):
            state = "pending"
        else:
            return _error(404, "Not Found")
        body = example("teams/get-membership-for-user-in-org")
        body.update({"state": state, "role": "member"})
        return answer("teams/get-membership-for-user-in-org", body)

    @app.get(f"{repo}/commits/<sha>/check-runs")
    def list_checks(sha: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        name = request.args.get("check_name")
        app_id = request.args.get("app_id")
        runs = [
            c
            for c in s.check_runs.values()
            if c["head_sha"] == sha
            and (name is None or c["name"] == name)
            and (app_id is None or str(c.get("app_id", s.app_id)) == app_id)
        ]
        body = example("checks/list-for-ref")
        template = body["check_runs"][0]
        body["check_runs"] = [_check_run_json(template, c) for c in reversed(runs)]
        body["total_count"] = len(runs)
        return answer("checks/list-for-ref", body)

    @app.post(f"{repo}/check-runs")
    def create_check() -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        payload = request.get_json()
        with lock:
            check_id = len(s.check_runs) + 1
            s.check_runs[check_id] = {"id": check_id, "app_id": s.app_id, **payload, "history": [payload]}
        body = _check_run_json(example("checks/create", "201"), s.check_runs[check_id])
        return answer("checks/create", body, 201)

    @app.patch(f"{repo}/check-runs/<int:check_id>")
    def update_check(check_id: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if check_id not in s.check_runs:
            return _error(404, "Not Found")
        payload = request.get_json()
        s.check_runs[check_id].update(payload)
        s.check_runs[check_id]["history"].append(payload)
        body = _check_run_json(example("checks/update"), s.check_runs[check_id])
        return answer("checks/update", body)

    @app.get(repo)
    def get_repository() -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        body = example("repos/get")
        # GitHub's example lacks `language`, which its schema requires; and it is a fork (`source`,
        # `parent`), whose `source` lacks it too.
        body.pop("source", None)
        body.pop("parent", None)
        body.update(
            {
                "id": s.repo_id,
                "name": s.repo,
                "full_name": s.full_name,
                "default_branch": s.default_branch,
                "language": "Python",
                "owner": {**body["owner"], "login": s.owner, "id": s.owner_id},
            }
        )
        person = s.admin_tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if person is not None:
            body["permissions"] = _role_permissions(person.role)
        return answer("repos/get", body)

    @app.get(f"{repo}/environments")
    def environments() -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        body = example("repos/get-all-environments")
        template = body["environments"][0]
        names = sorted(s.environments)
        per_page = min(int(request.args.get("per_page", 30)), 100)
        number = int(request.args.get("page", 1))
        chunk = names[(number - 1) * per_page : number * per_page]
        body["environments"] = [
            {**template, "id": 500 + names.index(n), "name": n, "protection_rules": []} for n in chunk
        ]
        body["total_count"] = len(names)
        return answer("repos/get-all-environments", body)

    @app.get(f"{repo}/environments/<name>/deployment_protection_rules")
    def deployment_rules(name: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if name not in s.environments:
            return _error(404, "Not Found")
        template = example("repos/get-all-deployment-protection-rules")["custom_deployment_protection_rules"][
            0
        ]
        rules = []
        for i, item in enumerate(s.environments[name]):
            rule = _deployment_rule(item)
            app_json = {
                **template["app"],
                "id": rule.app_id,
                "slug": rule.slug,
                "integration_url": f"https://api.github.com/apps/{rule.slug}",
            }
            rules.append({**template, "id": rule.id or i + 1, "enabled": rule.enabled, "app": app_json})
        body = {"total_count": len(rules), "custom_deployment_protection_rules": rules}
        return answer("repos/get-all-deployment-protection-rules", body)

    @app.get(f"{repo}/environments/<name>/deployment_protection_rules/apps")
    def offered_rule_apps(name: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if name not in s.environments:
            return _error(404, "Not Found")
        # GitHub's example is a list of two objects, not the object its schema describes: built here.
        offered = [
            {
                "id": app_id,
                "node_id": f"GHT_{app_id}",
                "slug": slug,
                "integration_url": f"https://api.github.com/apps/{slug}",
            }
            for app_id, slug in sorted(s.rule_apps.items())
        ]
        body = {
            "total_count": len(offered),
            "available_custom_deployment_protection_rule_integrations": offered,
        }
        return answer("repos/list-custom-deployment-rule-integrations", body)

    @app.get(f"{repo}/rules/branches/<path:branch>")
    def branch_rules(branch: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        return page("repos/get-branch-rules", s.branch_rules.get(branch, []) + _ruleset_rules(s, branch))

    @app.get(f"{repo}/contents/<path:path>")
    def contents(path: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if request.args.get("ref", s.default_branch) != s.default_branch:
            return _error(404, "No commit found for the ref")
        examples = extract()["operations"]["repos/get-content"]["responses"]["200"]["examples"]
        if path in s.files:
            body = copy.deepcopy(examples["response-if-content-is-a-file"])
            raw = s.files[path].encode()
            body.update(
                {
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "size": len(raw),
                    "content": base64.encodebytes(raw).decode(),  # GitHub wraps it at 60 characters
                    "encoding": "base64",
                }
            )
            return answer("repos/get-content", body)
        prefix = path.rstrip("/") + "/"
        entries = sorted(p for p in s.files if p.startswith(prefix) and "/" not in p[len(prefix) :])
        if not entries:
            return _error(404, "Not Found")
        template = examples["response-if-content-is-a-directory"][0]
        listing = [
            {**template, "name": p.rsplit("/", 1)[-1], "path": p, "type": "file", "size": len(s.files[p])}
            for p in entries
        ]
        return answer("repos/get-content", listing)

    _add_user_login(app, s, answer)
    _add_changes(app, s, answer, page, installation_auth)
    _add_app_settings(app, s, answer, app_auth)
    _add_hook_deliveries(app, s, answer, app_auth)
    _add_protection_writes(app, s, answer)
    return app


def _add_app_settings(app: Flask, s: Scenario, answer: Any, app_auth: Any) -> None:
    """``GET /app``: the App itself, as its JWT reads it (its events, for ``doctor``)."""

    @app.get("/app")
    def get_app() -> Response:
        if (denied := app_auth()) is not None:
            return denied
        body = example("apps/get-authenticated")
        body.update(
            {"id": s.app_id, "slug": "agent-gate", "name": "agent-gate", "events": list(s.app_events)}
        )
        return answer("apps/get-authenticated", body)


def _diff_entry_json(s: Scenario, f: FileSpec) -> dict[str, Any]:
    body = example("pulls/list-files")[0]
    web = f"https://github.com/{s.full_name}"
    body.update(
        {
            "filename": f.filename,
            "sha": f.sha,
            "status": f.status,
            "blob_url": f"{web}/blob/{f.sha}/{f.filename}",
            "raw_url": f"{web}/raw/{f.sha}/{f.filename}",
            "contents_url": f"https://api.github.com/repos/{s.full_name}/contents/{f.filename}?ref={f.sha}",
        }
    )
    body.pop("patch", None)
    if f.patch is not None:
        body["patch"] = f.patch
    if f.previous_filename is not None:
        body["previous_filename"] = f.previous_filename
    return dict(body)


def _add_changes(app: Flask, s: Scenario, answer: Any, page: Any, installation_auth: Any) -> None:
    """What a commit range and a pull request change: ``GET /compare/{base}...{head}`` (without
    paging parameters: up to 250 commits and 300 files, as GitHub answers) and
    ``GET /pulls/{n}/files`` (paginated, at most 3,000 files)."""
    repo = f"/repos/{s.owner}/{s.repo}"

    @app.get(f"{repo}/compare/<base>...<head>")
    def compare(base: str, head: str) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        found = s.comparisons.get(f"{base}...{head}")
        if found is None:
            return _error(404, "Not Found")
        body = example("repos/compare-commits")
        commits = [_commit_json(c) for c in found.commits]
        body.update(
            {
                "status": found.status,
                "ahead_by": len(commits),
                "behind_by": 0,
                "total_commits": len(commits),
                "commits": commits[:250],
                "files": [_diff_entry_json(s, f) for f in found.files[:300]],
            }
        )
        return answer("repos/compare-commits", body)

    @app.get(f"{repo}/pulls/<int:number>/files")
    def pull_files(number: int) -> Response:
        if (denied := installation_auth()) is not None:
            return denied
        if number not in s.prs:
            return _error(404, "Not Found")
        files = [_pull_file_json(s, f) for f in s.prs[number].files]
        return page("pulls/list-files", files, cap=PR_FILES_CAP)


PR_FILES_CAP = 3000  # GitHub's REST reference: "Responses include a maximum of 3000 files."


def _pull_file_json(s: Scenario, spec: Any) -> dict[str, Any]:
    """One ``diff-entry`` of a PR's files: from a FileSpec (blob and patch), a path, or a dict of fields."""
    if isinstance(spec, FileSpec):
        return _diff_entry_json(s, spec)
    template = example("pulls/list-files")[0]
    fields = {"filename": spec, "status": "modified"} if isinstance(spec, str) else dict(spec)
    name = fields["filename"]
    return {
        **template,
        **fields,
        "blob_url": f"https://github.com/{s.owner}/{s.repo}/blob/{template['sha']}/{name}",
        "raw_url": f"https://github.com/{s.owner}/{s.repo}/raw/{template['sha']}/{name}",
        "contents_url": f"https://api.github.com/repos/{s.owner}/{s.repo}/contents/{name}",
    }


def _add_user_login(app: Flask, s: Scenario, answer: Any) -> None:
    """The App's user authorisation (OAuth web flow with PKCE) and ``GET /user``.

    The flow's endpoints are not in the REST description; their parameters and answers follow
    GitHub's docs ("Generating a user access token for a GitHub App"): a refused exchange is a 200
    with an ``error`` field. ``s.oauth_user`` is who authorises in the browser (None: they decline).
    """

    @app.get("/login/oauth/authorize")
    def authorize() -> Response:
        args = request.args
        if args.get("client_id") != s.oauth_client_id or not args.get("redirect_uri"):
            return Response("unknown client or no redirect_uri", status=404)
        target = args["redirect_uri"]
        if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            return Response("this fake expects PKCE with S256", status=400)
        if s.oauth_user is None:
            query = urlencode({"error": "access_denied", "state": args.get("state", "")})
            return Response(status=302, headers={"Location": f"{target}?{query}"})
        code = secrets.token_hex(10)
        s.oauth_codes[code] = {
            "user": s.oauth_user,
            "challenge": args["code_challenge"],
            "redirect_uri": target,
        }
        query = urlencode({"code": code, "state": args.get("state", "")})
        return Response(status=302, headers={"Location": f"{target}?{query}"})

    @app.post("/login/oauth/access_token")
    def access_token_for_user() -> Response:
        form = request.form
        grant = s.oauth_codes.pop(form.get("code", ""), None)  # a code works once
        if form.get("client_id") != s.oauth_client_id or form.get("client_secret") != s.oauth_client_secret:
            return _oauth_error(
                "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."
            )
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            grant is None
            or grant["redirect_uri"] != form.get("redirect_uri")
            or grant["challenge"] != challenge
        ):
            return _oauth_error("bad_verification_code", "The code passed is incorrect or expired.")
        token = "ghu_" + secrets.token_hex(18)
        s.user_tokens[token] = grant["user"]
        body = {
            "access_token": token,
            "expires_in": 28800,
            "refresh_token": "ghr_" + secrets.token_hex(30),
            "refresh_token_expires_in": 15811200,
            "scope": "",
            "token_type": "bearer",
        }
        return Response(json.dumps(body), content_type="application/json")

    @app.post("/settings/apps/new")
    @app.post("/organizations/<org>/settings/apps/new")
    def new_app_from_manifest(org: str | None = None) -> Response:
        """GitHub's manifest flow: the admin confirms, GitHub creates the App and redirects with a code."""
        manifest = json.loads(request.form["manifest"])
        unknown = set(manifest) - _MANIFEST_FIELDS
        if unknown or "url" not in manifest:
            return Response(f"invalid manifest: {sorted(unknown)}", status=422)
        code = secrets.token_hex(10)
        s.manifests[code] = {**manifest, "owner": org or "octocat"}
        query = urlencode({"code": code, "state": request.args.get("state", "")})
        return Response(status=302, headers={"Location": f"{manifest['redirect_url']}?{query}"})

    @app.post("/api/v3/app-manifests/<code>/conversions")  # GHES-shaped: the fake's web URL is its API URL
    def manifest_conversion(code: str) -> Response:
        manifest = s.manifests.pop(code, None)  # a code works once
        if manifest is None:
            return _error(404, "Not Found")
        body = example("apps/create-from-manifest", "201")
        body.update(
            {
                "id": 4242,
                "slug": "agent-gate-test",
                "name": manifest.get("name", "agent-gate"),
                "client_id": "Iv23li0created0000001",
                "client_secret": "created-client-secret-" + secrets.token_hex(8),
                "webhook_secret": "created-webhook-secret-" + secrets.token_hex(8),
                "pem": "-----BEGIN RSA PRIVATE KEY-----\nfake\n-----END RSA PRIVATE KEY-----\n",
                "permissions": manifest.get("default_permissions", {}),
                "events": manifest.get("default_events", []),
            }
        )
        return answer("apps/create-from-manifest", body, 201)

    @app.get("/user")
    def authenticated_user() -> Response:
        person = s.user_tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if person is None:
            return _error(401, "Bad credentials")
        body = example("users/get-authenticated")
        body.update({k: v for k, v in person.json().items() if k in body})
        return answer("users/get-authenticated", body)


def send_webhook(
    s: Scenario, event: str, payload: dict[str, Any], *, guid: str | None = None
) -> dict[str, Any]:
    """GitHub delivers ``event`` to the App's webhook (``s.hook_target``) once, and records the attempt
    as ``GET /app/hook/deliveries`` lists it: ``guid`` is the event's X-GitHub-Delivery, shared by its
    redeliveries; ``id`` is the attempt's own. GitHub never retries by itself."""
    body = json.dumps(payload).encode()
    guid = guid or str(uuid.uuid4())
    redelivery = any(d["guid"] == guid for d in s.hook_deliveries)
    status = s.hook_target(event, guid, body) if s.hook_target is not None else None
    record = {
        "id": 10_000_000 + len(s.hook_deliveries) + 1,
        "guid": guid,
        "delivered_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "redelivery": redelivery,
        "duration": 0.05,
        "status": "failed to connect"
        if status is None
        else ("OK" if 200 <= status < 300 else f"Invalid HTTP Response: {status}"),
        "status_code": 502 if status is None else status,
        "event": event,
        "action": payload.get("action"),
        "installation_id": s.installation_id,
        "repository_id": s.repo_id,
        "throttled_at": None,
        "_body": payload,  # kept to deliver again; not part of GitHub's answer
    }
    s.hook_deliveries.append(record)
    return record


def _add_hook_deliveries(app: Flask, s: Scenario, answer: Any, app_auth: Any) -> None:
    """The App's webhook deliveries: listed newest first with a cursor, and redelivered on request."""

    @app.get("/app/hook/deliveries")
    def list_deliveries() -> Response:
        if (denied := app_auth()) is not None:
            return denied
        per_page = min(int(request.args.get("per_page", 30)), 100)
        newest_first = sorted(s.hook_deliveries, key=lambda d: d["id"], reverse=True)
        cursor = request.args.get("cursor")
        if cursor is not None:
            newest_first = [d for d in newest_first if d["id"] < int(cursor.removeprefix("v1_"))]
        chunk = newest_first[:per_page]
        items = [{k: v for k, v in d.items() if not k.startswith("_")} for d in chunk]
        headers = None
        if len(newest_first) > per_page:
            headers = {
                "Link": f'<{request.base_url}?per_page={per_page}&cursor=v1_{chunk[-1]["id"]}>; rel="next"'
            }
        return answer("apps/list-webhook-deliveries", items, headers=headers)

    @app.post("/app/hook/deliveries/<int:delivery_id>/attempts")
    def redeliver(delivery_id: int) -> Response:
        if (denied := app_auth()) is not None:
            return denied
        original = next((d for d in s.hook_deliveries if d["id"] == delivery_id), None)
        if original is None:
            return _error(404, "Not Found")
        s.redelivery_requests.append(delivery_id)
        send_webhook(s, original["event"], original["_body"], guid=original["guid"])
        return answer("apps/redeliver-webhook-delivery", {}, 202)


def _add_protection_writes(app: Flask, s: Scenario, answer: Any) -> None:
    """What ``agent-gate protect`` reads and writes with an administrator's token (``s.admin_tokens``):
    the repository's rulesets, environments and their deployment protection rules, and, for
    ``--org``, the organisation's installation and its repositories.

    Writes need the person to be an admin of the repository and the token to carry the right: a
    classic token the ``repo`` scope (GitHub answers 404 without it, as for a private repository),
    a fine-grained one Administration: write (403, naming it in ``X-Accepted-GitHub-Permissions``).
    Classic tokens get their scopes back in ``X-OAuth-Scopes`` on every answer, as from GitHub.
    """
    repo = f"/repos/{s.owner}/{s.repo}"

    def caller() -> AdminToken | None:
        return s.admin_tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))

    @app.after_request
    def _scopes(response: Response) -> Response:
        person = caller()
        if person is not None and person.scopes is not None:
            response.headers["X-OAuth-Scopes"] = ", ".join(person.scopes)
        return response

    def admin_auth() -> Response | None:
        person = caller()
        if person is None:
            return _error(401, "Bad credentials")
        if person.scopes is not None and "repo" not in person.scopes:
            return _error(404, "Not Found")
        if person.scopes is None and person.permissions.get("administration") != "write":
            return _error(
                403,
                "Resource not accessible by personal access token",
                {"X-Accepted-GitHub-Permissions": "administration=write"},
            )
        if person.role != "admin":
            return _error(403, "Must have admin rights to Repository.")
        return None

    def readable() -> Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if caller() is not None or (token in s.tokens and token not in s.revoked):
            return None
        return _error(401, "Bad credentials")

    def invalid(operation: str) -> tuple[Any, Response | None]:
        body = request.get_json(silent=True)
        errors = request_errors(operation, body if body is not None else {})
        if errors:
            s.schema_errors.extend(errors)
            return body, _error(422, "Validation Failed")
        return body, None

    def ruleset_json(ruleset: dict[str, Any], *, summary: bool = False) -> dict[str, Any]:
        body = example("repos/get-repo-ruleset")
        body.update(ruleset)
        body.update(
            {
                "source_type": "Repository",
                "source": s.full_name,
                "node_id": f"RRS_{ruleset['id']}",
                "_links": {
                    "self": {"href": f"https://api.github.com{repo}/rulesets/{ruleset['id']}"},
                    "html": {"href": f"https://github.com/{s.full_name}/rules/{ruleset['id']}"},
                },
            }
        )
        if summary:  # GitHub's list leaves the rules, conditions and bypass actors out
            for key in ("rules", "conditions", "bypass_actors", "current_user_can_bypass"):
                body.pop(key, None)
        return body

    @app.get(f"{repo}/rulesets")
    def list_rulesets() -> Response:
        if (denied := readable()) is not None:
            return denied
        items = [ruleset_json(r, summary=True) for _, r in sorted(s.rulesets.items())]
        return answer("repos/get-repo-rulesets", items)

    @app.get(f"{repo}/rulesets/<int:ruleset_id>")
    def get_ruleset(ruleset_id: int) -> Response:
        if (denied := readable()) is not None:
            return denied
        if ruleset_id not in s.rulesets:
            return _error(404, "Not Found")
        return answer("repos/get-repo-ruleset", ruleset_json(s.rulesets[ruleset_id]))

    @app.post(f"{repo}/rulesets")
    def create_ruleset() -> Response:
        if (denied := admin_auth()) is not None:
            return denied
        body, refused = invalid("repos/create-repo-ruleset")
        if refused is not None:
            return refused
        ruleset_id = max([*s.rulesets, 100]) + 1
        s.rulesets[ruleset_id] = {
            "target": "branch",
            "bypass_actors": [],
            "rules": [],
            **body,
            "id": ruleset_id,
        }
        return answer("repos/create-repo-ruleset", ruleset_json(s.rulesets[ruleset_id]), 201)

    @app.put(f"{repo}/rulesets/<int:ruleset_id>")
    def update_ruleset(ruleset_id: int) -> Response:
        if (denied := admin_auth()) is not None:
            return denied
        if ruleset_id not in s.rulesets:
            return _error(404, "Not Found")
        body, refused = invalid("repos/update-repo-ruleset")
        if refused is not None:
            return refused
        s.rulesets[ruleset_id].update(body or {})
        return answer("repos/update-repo-ruleset", ruleset_json(s.rulesets[ruleset_id]))

    @app.put(f"{repo}/environments/<name>")
    def put_environment(name: str) -> Response:
        if (denied := admin_auth()) is not None:
            return denied
        _, refused = invalid("repos/create-or-update-environment")
        if refused is not None:
            return refused
        s.environments.setdefault(name, [])
        body = example("repos/create-or-update-environment")
        body.update({"name": name, "protection_rules": []})
        return answer("repos/create-or-update-environment", body)

    @app.post(f"{repo}/environments/<name>/deployment_protection_rules")
    def enable_rule(name: str) -> Response:
        if (denied := admin_auth()) is not None:
            return denied
        if name not in s.environments:
            return _error(404, "Not Found")
        body, refused = invalid("repos/create-deployment-protection-rule")
        if refused is not None:
            return refused
        app_id = body.get("integration_id")
        if app_id not in s.rule_apps:
            return _error(422, "The integration is not available as a deployment protection rule")
        rules = [r for r in map(_deployment_rule, s.environments[name]) if r.app_id != app_id]
        rule = DeploymentRule(app_id, slug=s.rule_apps[app_id], id=len(rules) + 1)
        s.environments[name] = [*rules, rule]
        created = example("repos/create-deployment-protection-rule", "201")
        created.update({"id": rule.id, "enabled": True})
        created["app"].update({"id": app_id, "slug": rule.slug})
        return answer("repos/create-deployment-protection-rule", created, 201)

    @app.get("/orgs/<org>/installation")
    def org_installation(org: str) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            jwt.decode(token, s.app_public_key, algorithms=["RS256"], options={"require": ["iss"]})
        except jwt.PyJWTError:
            return _error(401, "A JSON web token could not be decoded")
        if org.lower() != s.owner.lower() or not s.installed:
            return _error(404, "Not Found")
        body = example("apps/get-org-installation")
        body["id"] = s.installation_id
        return answer("apps/get-org-installation", body)

    @app.get("/installation/repositories")
    def installation_repositories() -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in s.tokens or token in s.revoked:
            return _error(401, "Bad credentials")
        body = example("apps/list-repos-accessible-to-installation")
        template = body["repositories"][0]
        template.update(
            {
                "id": s.repo_id,
                "name": s.repo,
                "full_name": s.full_name,
                "owner": {**template["owner"], "login": s.owner, "id": s.owner_id},
            }
        )
        body.update({"total_count": 1, "repositories": [template]})
        return answer("apps/list-repos-accessible-to-installation", body)


def _role_permissions(role: str) -> dict[str, bool]:
    """``permissions`` of a repository as GitHub shows it to a person with ``role``."""
    order = ["pull", "triage", "push", "maintain", "admin"]
    rank = {"read": 0, "triage": 1, "write": 2, "maintain": 3, "admin": 4}.get(role, -1)
    return {name: i <= rank for i, name in enumerate(order)}


def _ruleset_rules(s: Scenario, branch: str) -> list[dict[str, Any]]:
    """The rules of the repository's active branch rulesets that apply to ``branch``, as
    ``GET .../rules/branches/{branch}`` lists them."""
    ref = f"refs/heads/{branch}"

    def matches(pattern: str) -> bool:
        if pattern == "~ALL":
            return True
        if pattern == "~DEFAULT_BRANCH":
            return branch == s.default_branch
        return fnmatch.fnmatchcase(ref, pattern)

    found: list[dict[str, Any]] = []
    for ruleset_id, ruleset in sorted(s.rulesets.items()):
        ref_name = (ruleset.get("conditions") or {}).get("ref_name") or {}
        if ruleset.get("enforcement") != "active" or ruleset.get("target", "branch") != "branch":
            continue
        if not any(map(matches, ref_name.get("include", []))) or any(
            map(matches, ref_name.get("exclude", []))
        ):
            continue
        for rule in ruleset.get("rules", []):
            found.append(
                {
                    **rule,
                    "ruleset_id": ruleset_id,
                    "ruleset_source_type": "Repository",
                    "ruleset_source": s.full_name,
                }
            )
    return found


# The fields GitHub's manifest flow accepts ("Registering a GitHub App from a manifest").
_MANIFEST_FIELDS = {
    "name",
    "url",
    "hook_attributes",
    "redirect_url",
    "callback_urls",
    "setup_url",
    "description",
    "public",
    "default_events",
    "default_permissions",
    "request_oauth_on_install",
    "setup_on_update",
}


def _oauth_error(error: str, description: str) -> Response:
    body = {
        "error": error,
        "error_description": description,
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
    }
    return Response(json.dumps(body), content_type="application/json")


def _check_run_json(template: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """A stored check run in the shape of ``check-run``: the template's fields, updated by what was sent."""
    body = copy.deepcopy(template)
    for key in ("name", "head_sha", "status", "conclusion", "details_url", "external_id", "completed_at"):
        if key in stored:
            body[key] = stored[key]
    body["id"] = stored["id"]
    body["app"] = {**(body.get("app") or {}), "id": stored["app_id"]}
    if isinstance(stored.get("output"), dict):
        output = stored["output"]
        body["output"] = {**body["output"], **{k: output.get(k) for k in ("title", "summary", "text")}}
    return body


# --- serving it ----------------------------------------------------------------------------------------


class FakeGitHub:
    """The fake served on 127.0.0.1 (an ephemeral port) in a thread; ``url`` is its API base URL."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._server = make_server("127.0.0.1", 0, create_fake_github(scenario), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval: shutdown() waits for the loop to notice (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._started = False

    def start(self) -> FakeGitHub:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def close(self) -> None:
        """Stop serving; fail if any answer departed from GitHub's schemas."""
        if self._started:
            self._server.shutdown()
            self._thread.join(5)
            self._started = False
        self._server.server_close()
        if self.scenario.schema_errors:
            errors, self.scenario.schema_errors = self.scenario.schema_errors, []
            raise AssertionError("the fake GitHub answered outside GitHub's schemas:\n" + "\n".join(errors))

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_fake_github(scenario: Scenario) -> tuple[str, FakeGitHub]:
    """Serve ``scenario`` on loopback: ``(api_url, server)``; call ``server.close()`` when done."""
    server = FakeGitHub(scenario).start()
    return server.url, server
