"""A torn policy never allows more: the property, on every shipped example policy.

A policy file cut short (a crash mid-write, a truncated copy) may still parse, and what it lost can
widen it: the end of a rule (its ``approvals``, ``teams``, ``allow_agents: false``, its last
conditions) or a digit of a number. For every truncation of each shipped example policy, at every
line and at random byte offsets, that the loader accepts, no request that the whole policy denies
is allowed. The probes are the near misses of every rule: a request each rule allows, and that
request with one condition changed to every value of its pool, by a person, an agent and a bot,
with no approval, an outsider's, a team member's and two.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import PolicyError
from app.evidence.model import Account, Evidence, Standing
from app.policy.loader import END_LINE, LoadedPolicy, PolicySet, parse_policy_text
from app.policy.schema import Pattern, Rule
from tests.builders import ALICE, BOB, COPILOT, DEPENDABOT, OCTOCAT, evidence, identity, review, run

ROOT = Path(__file__).resolve().parents[2]
# Each shipped example once (app/data/policies/ ships a copy of policies/example.yml).
SHIPPED = list(
    {
        p.read_bytes(): p
        for p in sorted([*ROOT.glob("policies/*.yml"), *ROOT.glob("app/data/policies/*.yml")])
    }.values()
)
OUTSIDER = Account(login="dave", id=1004, type="User")  # write access, in no team

REFS = ["refs/heads/main", "refs/heads/dev", "refs/tags/v1.2.3", "refs/tags/v1-evil"]
ENVIRONMENTS: list[str | None] = [None, "staging", "production", "qa"]
EVENTS = ["push", "workflow_dispatch", "pull_request", "schedule"]
RUNNERS = ["github-hosted", "self-hosted"]
EXTRA_WORKFLOWS = [
    "octo-org/octo-repo/.github/workflows/release.yml@refs/tags/v1.2.3",
    "octo-org/octo-repo/.github/workflows/other.yml@refs/heads/main",
    "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/dev",
    "octo-org/fork/.github/workflows/deploy.yml@refs/heads/main",
]
ACTORS = {
    "person": {"actor": OCTOCAT.login, "actor_id": str(OCTOCAT.id)},
    "agent": {"actor": COPILOT.login, "actor_id": str(COPILOT.id)},
    "bot": {"actor": DEPENDABOT.login, "actor_id": str(DEPENDABOT.id)},
}
STANDINGS = {
    "bob": Standing(permission="write", teams=["release-managers"]),
    "alice": Standing(permission="admin", teams=["release-managers"]),
    "dave": Standing(permission="write", teams=[]),
}
EVIDENCE = {
    "no approval": [],
    "an outsider's approval": [review(OUTSIDER)],
    "a team member's approval": [review(BOB)],
    "two approvals": [review(BOB), review(ALICE, n=2)],
}


@dataclass(frozen=True)
class Probe:
    action: str
    ref: str
    environment: str | None
    event: str
    workflow: str
    runner: str
    actor: str
    approvals: str

    def allowed(self, policies: PolicySet) -> bool:
        who = identity(
            ref=self.ref,
            event_name=self.event,
            job_workflow_ref=self.workflow,
            workflow_ref=self.workflow,
            runner_environment=self.runner,
            **ACTORS[self.actor],
        )
        facts: Evidence = evidence(reviews=list(EVIDENCE[self.approvals]), standings=STANDINGS)
        request = {"environment": self.environment} if self.environment else {}
        return run(policies, who, self.action, facts, **request).allowed


def _matches(matchers: list[str | Pattern] | None, value: str | None) -> bool:
    if matchers is None:
        return True
    return value is not None and any(
        m.matches(value) if isinstance(m, Pattern) else m == value for m in matchers
    )


def _first(pool: list[str], matchers: list[str | Pattern] | None) -> str:
    return next((v for v in pool if _matches(matchers, v)), pool[0])


def _workflows(loaded: LoadedPolicy) -> list[str]:
    exact = [w.ref for r in loaded.policy.rules for w in r.workflows or [] if isinstance(w.ref, str)]
    return list(dict.fromkeys([*exact, *EXTRA_WORKFLOWS]))


def _near_misses(rule: Rule, action: str, workflows: list[str]) -> Iterator[dict[str, object]]:
    environments = [e for e in ENVIRONMENTS if e is not None]
    base: dict[str, object] = {
        "action": action,
        "ref": _first(REFS, rule.refs),
        "environment": _first(environments, rule.environments) if rule.environments else None,
        "event": _first(EVENTS, list(rule.events) if rule.events else None),
        "workflow": _first(workflows, [w.ref for w in rule.workflows] if rule.workflows else None),
        "runner": _first(RUNNERS, list(rule.runner_environments) if rule.runner_environments else None),
    }
    pools: dict[str, list[object]] = {
        "ref": list(REFS),
        "environment": list(ENVIRONMENTS),
        "event": list(EVENTS),
        "workflow": list(workflows),
        "runner": list(RUNNERS),
    }
    yield base
    for name, pool in pools.items():
        for value in pool:
            yield {**base, name: value}


@cache
def _denied_probes(path: Path) -> tuple[tuple[Probe, ...], int]:
    """The probes the whole policy denies, and how many it allows (the probes must tell them apart)."""
    whole = _policies(path.read_text("utf-8"))
    assert whole is not None, f"{path} is refused by the loader"
    loaded = next(iter(whole.by_owner.values()))
    workflows = _workflows(loaded)
    probes: dict[Probe, None] = {}
    for rule in loaded.policy.rules:
        for action in rule.actions:
            for fields, actor, approvals in itertools.product(
                _near_misses(rule, action, workflows), ACTORS, EVIDENCE
            ):
                probes[Probe(actor=actor, approvals=approvals, **fields)] = None  # type: ignore[arg-type]
    denied = tuple(p for p in probes if not p.allowed(whole))
    return denied, len(probes) - len(denied)


def _policies(text: str) -> PolicySet | None:
    try:
        loaded = parse_policy_text(text, "torn.yml")
    except PolicyError:
        return None
    return PolicySet(digest="sha256:torn", by_owner={loaded.policy.owner.id: loaded})


def _widened(path: Path, text: str) -> list[Probe]:
    """The probes the whole policy denies that ``text`` (a prefix of it) allows; [] if refused."""
    torn = _policies(text)
    if torn is None:
        return []
    denied, _ = _denied_probes(path)
    return [p for p in denied if p.allowed(torn)]


def _line_prefixes(text: str) -> Iterator[tuple[int, str]]:
    lines = text.splitlines(keepends=True)
    for n in range(len(lines)):
        yield n, "".join(lines[:n])
        yield n, "".join(lines[:n]) + lines[n].rstrip("\n")  # the last line without its newline


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_the_probes_tell_allowed_from_denied(path: Path) -> None:
    """Not vacuous: the whole policy loads, and allows some probes and denies others."""
    denied, allowed = _denied_probes(path)
    assert len(denied) > 100 and allowed > 20


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_a_policy_cut_at_any_line_allows_nothing_the_whole_one_denies(path: Path) -> None:
    text = path.read_text("utf-8")
    widened = {n + 1: probes[0] for n, prefix in _line_prefixes(text) if (probes := _widened(path, prefix))}
    assert widened == {}


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_a_policy_cut_at_any_byte_allows_nothing_the_whole_one_denies(path: Path, cut: float) -> None:
    raw = path.read_bytes()
    try:
        prefix = raw[: int(cut * len(raw))].decode("utf-8")
    except UnicodeDecodeError:
        return  # the loader refuses a file that is not UTF-8
    assert _widened(path, prefix) == []


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_only_the_whole_policy_is_accepted(path: Path) -> None:
    """The mechanism: every prefix that loses more than the trailing newline is refused."""
    text = path.read_text("utf-8")
    assert text.endswith(f"\n{END_LINE}\n")
    accepted = [n for n in range(len(text)) if _policies(text[:n]) is not None]
    assert accepted == [len(text) - 1]  # all but the final newline


END_EXPECTED = "expected the last line to be '...'"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("version: 1\nowner: {login: a, id: 1}\n", 2, END_EXPECTED, id="no-end-line"),
        pytest.param(
            "version: 1\nowner: {login: a, id: 1}\n..", 3, "YAML syntax error", id="end-line-cut-short"
        ),
        pytest.param(
            "version: 1\nowner: {login: a, id: 1}\n# ...\n", 3, END_EXPECTED, id="end-line-in-a-comment"
        ),
        pytest.param("version: 1\nowner: {login: a, id: 1}\n  ...\n", 3, None, id="indented-dots-are-text"),
        pytest.param("version: 1\nowner: {login: a, id: 1}\n...\n", None, None, id="whole"),
        pytest.param(
            "version: 1\nowner: {login: a, id: 1}\n...\n# after it\n", None, None, id="comment-after"
        ),
    ],
)
def test_the_end_line_is_required(text: str, line: int | None, message: str | None) -> None:
    if line is None:
        parse_policy_text(text, "p.yml")
        return
    with pytest.raises(PolicyError) as caught:
        parse_policy_text(text, "p.yml")
    if message == END_EXPECTED:
        (problem,) = caught.value.problems
        assert (problem.line, "cut short" in problem.message) == (line, True)
    if message is not None:
        assert message in caught.value.problems[0].message
