#!/usr/bin/env python3
"""What a warm execute decision costs, against an octo-sts-like token exchange in the same run.

The execute decision: ``POST /v1/decisions`` {"action": "merge", "pull_request": 12} for a PR
with one approval, warm (installation, token and the approver's standing cached; the run, PR,
commits and reviews re-validated with ETags, answered 304), its evidence gathered from a fake
GitHub over loopback HTTP. The floor: an octo-sts-like exchange, a Flask endpoint that verifies the
same kind of token with PyJWT and makes one GitHub POST (an installation token, with a cached App
JWT) to the same fake GitHub. Both are called through Flask's test client, each request with a
fresh token, at 0 ms and at a simulated GitHub latency (the fake answers that much later).

Prints p50 of each, the ratio (exchange p50 / decision p50: the target is >= 0.5x) and the GitHub
calls per decision, as the decision reports them (``github_api_calls``).

    .venv/bin/python bench/bench_execute.py [--requests N] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
import requests
from flask import Flask, jsonify, request

from app import create_app
from app.evidence.gather import GitHubEvidence
from app.github.client import GitHubClient
from app.settings import Settings
from app.tokens.devissuer import DevIssuer
from tests.fake_github import APP_ID, FakeGitHub, ReviewSpec
from tests.github.conftest import BOB, HEAD, app_key_pem, base_scenario, github_settings

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
"""
MERGE = {"action": "merge", "pull_request": 12}


def octo_sts_like(data_dir: Path, github_url: str) -> Flask:
    """Verify the workload's token, then one GitHub POST: what a token exchange does at least."""
    jwks = json.loads((data_dir / "dev-issuer-jwks.json").read_text())
    key = jwt.PyJWK(jwks["keys"][0]).key
    now = int(time.time())
    app_jwt = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}, app_key_pem(), "RS256")
    session = requests.Session()
    app = Flask("octo_sts_like")

    @app.post("/exchange")
    def exchange() -> object:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, key, algorithms=["RS256"], audience="agent-gate")
        answer = session.post(
            f"{github_url}/app/installations/77/access_tokens",
            json={"permissions": {"contents": "read"}},
            headers={"Authorization": f"Bearer {app_jwt}", "Accept": "application/vnd.github+json"},
            timeout=10,
        )
        answer.raise_for_status()
        return jsonify({"sub": claims.get("sub"), "expires_at": answer.json()["expires_at"]})

    return app


def timed(fn: Callable[[], Any], n: int) -> tuple[list[float], list[Any]]:
    samples, results = [], []
    for _ in range(n):
        start = time.perf_counter()
        results.append(fn())
        samples.append(time.perf_counter() - start)
    return samples, results


def measure(latency: float, n: int, tmp: Path) -> dict[str, Any]:
    scenario = base_scenario()
    scenario.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    with FakeGitHub(scenario) as fake:
        (tmp / "policies").mkdir(exist_ok=True)
        (tmp / "policies" / "octo.yml").write_text(POLICY)
        settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp / "data",
            policy_path=tmp / "policies",
            public_url="http://gate.test",
            log_level="ERROR",
        )
        client = GitHubClient(github_settings(fake.url), backoff=0)
        gate = create_app(settings, github=client, evidence=GitHubEvidence(client)).test_client()
        issuer = DevIssuer(settings.data_dir)
        exchange = octo_sts_like(settings.data_dir, fake.url).test_client()
        tokens = iter([issuer.mint(audience="agent-gate", sha=HEAD) for _ in range(2 * n + 6)])

        def decide() -> Any:
            auth = {"Authorization": f"Bearer {next(tokens)}"}
            answer = gate.post("/v1/decisions", json=MERGE, headers=auth)
            assert answer.status_code == 200 and answer.get_json()["allowed"], answer.get_json()
            return answer.get_json()["github_api_calls"]

        def swap() -> Any:
            answer = exchange.post("/exchange", headers={"Authorization": f"Bearer {next(tokens)}"})
            assert answer.status_code == 200, answer.get_data(as_text=True)

        for _ in range(3):  # warm: installation, token, standing cached; ETags stored
            decide()
            swap()
        scenario.delay = latency
        scenario.requests.clear()
        decision_samples, calls = timed(decide, n)
        served = [r for r in scenario.requests if "check-runs" not in r["path"]]
        fake_time = sum(r["finished"] - r["started"] for r in served) / n - latency * statistics.mean(calls)
        exchange_samples, _ = timed(swap, n)
    return {
        "decision": statistics.median(decision_samples),
        "decision_p90": statistics.quantiles(decision_samples, n=10)[-1],
        "exchange": statistics.median(exchange_samples),
        "calls": statistics.mean(calls),
        "fake": fake_time,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per measurement")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the simulated GitHub latency")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake GitHub's access log
    rows = []
    for latency in (0.0, args.latency_ms / 1000):
        tmp = Path(tempfile.mkdtemp(prefix="agent-gate-bench-execute-"))
        n = args.requests if latency == 0 else max(10, args.requests // 4)
        rows.append((latency, measure(latency, n, tmp)))
    print("floor: an octo-sts-like exchange (verify + one GitHub POST), same fake GitHub, same run\n")
    print(
        f"{'GitHub latency':>14} {'execute p50':>12} {'execute p90':>12} {'exchange p50':>13} "
        f"{'ratio':>7} {'calls/decision':>15} {'fake GitHub CPU/decision':>25}"
    )
    for latency, r in rows:
        print(
            f"{latency * 1000:11.0f} ms {r['decision'] * 1e3:9.2f} ms {r['decision_p90'] * 1e3:9.2f} ms "
            f"{r['exchange'] * 1e3:10.2f} ms {r['exchange'] / r['decision']:6.2f}x {r['calls']:15.1f} {r['fake'] * 1e3:22.2f} ms"
        )
    print(
        "\n(ratio = exchange p50 / execute p50; the target is >= 0.5x. The fake GitHub runs in this process:"
        "\n its own time per decision, measured inside its handlers, is shown; GitHub's would be latency.)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
