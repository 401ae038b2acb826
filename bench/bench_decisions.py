#!/usr/bin/env python3
"""What a decision costs, as ratios against a floor measured in the same run.

The floor is one RSA-2048 signature verification of a GitHub-sized token with `cryptography`
directly: no gate can verify a token for less. Everything else is printed as a multiple of it, so
the numbers mean something on a shared, noisy machine.

    .venv/bin/python bench/bench_decisions.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from app import create_app
from app.decide.decision import DecisionRequest
from app.decide.engine import decide
from app.policy.loader import parse_policy_text
from app.settings import Settings
from app.tokens.devissuer import AGENT_PRESET, DevIssuer
from app.tokens.unverified import b64json
from app.tokens.verify import TokenVerifier
from tests.builders import ALICE, BOB, POLICY_TEXT, agent_identity, evidence, policy_set, pull_request, review


class NoReplay:
    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        return True


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best-of-repeat seconds per call (the minimum is the least noisy estimate)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def policy_with_rules(n: int) -> str:
    rules = "\n".join(
        f"  - {{name: r{i}, actions: [deploy], repositories: [{{id: {i + 1}, name: o/r{i}}}], refs: [refs/heads/main], "
        f"environments: [env{i}], approvals: {{count: 1}}}}"
        for i in range(n)
    )
    return f"version: 1\nowner: {{login: o, id: 1}}\nrules:\n{rules}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="agent-gate-bench-"))
    issuer = DevIssuer(tmp)
    issuer.ensure_key()
    token = issuer.mint(audience="agent-gate", ttl=3600)
    public = issuer._key().public_key()
    head, payload, sig = token.split(".")
    signature = __import__("base64").urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    signing_input = f"{head}.{payload}".encode()

    floor = per_call(lambda: public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256()), n)
    results: list[tuple[str, float]] = []

    verifier = TokenVerifier([issuer.issuer_config()], "agent-gate", replay=NoReplay())
    results.append(("TokenVerifier.verify (all checks)", per_call(lambda: verifier.verify(token), n)))
    results.append(("reading kid/iss ourselves (3 segments)", per_call(lambda: b64json(head), n)))
    # What the verifier did before it checked the claims on the payload it had already decoded:
    # PyJWT re-splitting, re-decoding and re-validating the whole token.
    key = __import__("jwt").PyJWK(issuer.public_jwk(), algorithm="RS256")
    results.append(
        (
            "jwt.decode of the same token (the earlier path)",
            per_call(
                lambda: __import__("jwt").decode(
                    token, key=key, algorithms=["RS256"], audience="agent-gate", options={"strict_aud": True}
                ),
                n,
            ),
        )
    )

    policies = policy_set(POLICY_TEXT)
    read = DecisionRequest(action="read")
    merge = DecisionRequest(action="merge", pull_request=12)
    who = agent_identity()
    ev = evidence(pr=pull_request(), reviews=[review(ALICE, n=1), review(BOB, n=2)])
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    results.append(
        (
            "engine: read decision",
            per_call(lambda: decide(who, read, policies, ev, decision_id="d", now=now), n),
        )
    )
    results.append(
        (
            "engine: execute with evidence",
            per_call(lambda: decide(who, merge, policies, ev, decision_id="d", now=now), n),
        )
    )

    big = policy_with_rules(200)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    results.append(("load 200-rule policy (C loader)", per_call(lambda: parse_policy_text(big), 5, repeat=3)))
    results.append(("yaml.safe_load of it (pure Python)", per_call(lambda: yaml.safe_load(big), 5, repeat=3)))
    results.append(("yaml with the C loader", per_call(lambda: yaml.load(big, Loader=loader), 5, repeat=3)))

    (tmp / "p").mkdir()
    (tmp / "p" / "o.yml").write_text(POLICY_TEXT)
    app = create_app(
        Settings(dev_mode=True, issuers=(), data_dir=tmp, policy_path=tmp / "p", log_level="ERROR")
    )
    client = app.test_client()
    tokens = [issuer.mint(audience="agent-gate", **AGENT_PRESET) for _ in range(n // 4)]
    it = iter(tokens)

    def http_read() -> None:
        client.post("/v1/decisions", json={"action": "read"}, headers={"Authorization": f"Bearer {next(it)}"})

    samples = []
    for _ in range(len(tokens)):
        start = time.perf_counter()
        http_read()
        samples.append(time.perf_counter() - start)
    results.append(("HTTP read decision (Flask, SQLite audit, fsync)", statistics.median(samples)))

    print(f"floor: RSA-2048 verify = {floor * 1e6:.1f} µs (this machine, this run)\n")
    print(f"{'what':52} {'µs':>10} {'x floor':>9}")
    for name, seconds in results:
        print(f"{name:52} {seconds * 1e6:10.1f} {seconds / floor:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
