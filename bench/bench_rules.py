#!/usr/bin/env python3
"""What a large policy costs: a deploy decision and ``agent-gate policy check`` at 2,000 rules.

Each figure is printed beside the same measurement on a 10-rule policy taken in the same run (the
floor), and as a ratio of it: growth is linear when the ratio stays near rules / 10 or below.
Targets (issue 11): a deploy decision under 1 ms and ``policy check`` under 2 s at 2,000 rules.

The generated policy pins one repository per rule, the way a large organisation writes one; the
workload's rule is the LAST of the file, so the engine cannot be lucky. A denied decision (no rule
matches, the closest one is named) is printed too: it must look at every rule of the action.

    .venv/bin/python bench/bench_rules.py [--rules N]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.decide.decision import DecisionRequest
from app.decide.engine import decide
from app.policy.validate import check_paths
from tests.builders import BOB, evidence, identity, policy_set, review

WORKFLOW = "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"


def generated_policy(n: int) -> str:
    """``n`` deploy rules, one repository each; the last is octo-org/octo-repo's (id 2000)."""
    lines = ["version: 1", "owner: {login: octo-org, id: 1000}", "rules:"]
    for i in range(n):
        repo_id, name = (2000, "octo-repo") if i == n - 1 else (3000 + i, f"service-{i}")
        lines += [
            f"  - name: deploy-{i}",
            "    actions: [deploy]",
            f"    repositories: [{{id: {repo_id}, name: octo-org/{name}}}]",
            "    refs: [refs/heads/main]",
            "    environments: [production]",
            "    events: [push, workflow_dispatch]",
            f"    workflows: [{{ref: '{WORKFLOW.replace('octo-repo', name)}'}}]",
            "    runner_environments: [github-hosted]",
            "    approvals: {count: 1}",
        ]
    return "\n".join([*lines, "..."]) + "\n"  # every policy ends with its end line


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best-of-repeat seconds per call (the minimum is the least noisy estimate)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def once(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(n: int, tmp: Path) -> dict[str, float]:
    text = generated_policy(n)
    policies = policy_set(text)
    who = identity(
        environment="production"
    )  # octocat, octo-org/octo-repo, main, the deploy workflow, github-hosted
    ev = evidence(reviews=[review(BOB)])
    now = datetime.now(UTC)
    deploy = DecisionRequest(action="deploy")
    allowed = decide(who, deploy, policies, ev, decision_id="d", now=now)
    assert allowed.allowed, [r.message for r in allowed.reasons if not r.ok]
    staging = DecisionRequest(action="deploy")
    who_staging = identity(environment="staging")
    denied = decide(who_staging, staging, policies, ev, decision_id="d", now=now)
    assert not denied.allowed and denied.rule == f"deploy-{n - 1}", denied.rule

    path = tmp / f"policy-{n}.yml"
    path.write_text(text)
    sink = io.StringIO()
    return {
        "deploy decision, allowed by the last rule": per_call(
            lambda: decide(who, deploy, policies, ev, decision_id="d", now=now), 200
        ),
        "deploy decision, denied (closest rule named)": per_call(
            lambda: decide(who_staging, staging, policies, ev, decision_id="d", now=now),
            20 if n > 100 else 200,
        ),
        "agent-gate policy check (load + lint)": once(lambda: check_paths([path], sink)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=2000, help="rules in the large policy")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agent-gate-bench-rules-"))
    floor_n = 10
    floor = measure(floor_n, tmp)
    large = measure(args.rules, tmp)
    print(f"floor: the same measurements on a {floor_n}-rule policy (this machine, this run)\n")
    print(f"{'what':46} {f'{floor_n} rules':>12} {f'{args.rules} rules':>12} {'ratio':>8}")
    for name, seconds in large.items():
        base = floor[name]
        print(f"{name:46} {_fmt(base):>12} {_fmt(seconds):>12} {seconds / base:7.1f}x")
    print(f"\n(linear growth would be a ratio of at most {args.rules / floor_n:.0f}x)")
    return 0


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
