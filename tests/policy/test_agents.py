"""The agent catalog: exact matching on ids, [bot] logins and full e-mail addresses."""

from __future__ import annotations

import pytest

from app.policy.agents import BUILTIN, Kind


@pytest.mark.parametrize(
    ("login", "user_id", "account_type", "kind"),
    [
        ("Copilot", 198982749, "Bot", Kind.AI_AGENT),
        ("copilot-swe-agent[bot]", None, "Bot", Kind.AI_AGENT),
        ("claude[bot]", None, "Bot", Kind.AI_AGENT),
        ("CLAUDE[BOT]", None, None, Kind.AI_AGENT),
        ("renamed", 209825114, None, Kind.AI_AGENT),
        ("devin-ai-integration[bot]", None, "Bot", Kind.AI_AGENT),
        ("dependabot[bot]", 49699333, "Bot", Kind.BOT),
        ("renovate[bot]", None, "Bot", Kind.BOT),
        ("github-actions[bot]", None, "Bot", Kind.BOT),
        ("some-app[bot]", None, None, Kind.BOT),
        ("ci-machine", 5, "Bot", Kind.BOT),
        ("octocat", 583231, "User", Kind.HUMAN),
        ("Copilot", 12345, "User", Kind.HUMAN),
        ("claude", None, "User", Kind.HUMAN),
        ("devin", None, "User", Kind.HUMAN),
    ],
    ids=[
        "copilot-by-id",
        "copilot-swe-agent-login",
        "claude-bot-login",
        "logins-are-case-insensitive",
        "id-wins-over-login",
        "devin",
        "dependabot",
        "renovate",
        "github-actions",
        "unknown-app-is-a-bot",
        "bot-type-is-a-bot",
        "human",
        "copilot-name-with-another-id-is-not-copilot",
        "bare-word-claude-is-a-person",
        "bare-word-devin-is-a-person",
    ],
)
def test_classify(login, user_id, account_type, kind):
    assert BUILTIN.classify(login, user_id, account_type).kind is kind


@pytest.mark.parametrize(
    ("email", "agent"),
    [
        ("198982749+Copilot@users.noreply.github.com", "GitHub Copilot coding agent"),
        ("209825114+claude[bot]@users.noreply.github.com", "Claude"),
        ("noreply@anthropic.com", "Claude"),
        ("cursoragent@cursor.com", "Cursor"),
        ("aider@aider.chat", "aider"),
        ("583231+octocat@users.noreply.github.com", None),
        ("claude@example.com", None),
        ("noreply@anthropic.com.evil.com", None),
    ],
    ids=[
        "copilot-noreply",
        "claude-noreply",
        "anthropic",
        "cursor",
        "aider",
        "human-noreply",
        "bare-word",
        "suffix",
    ],
)
def test_classify_email(email, agent):
    known = BUILTIN.classify_email(email)
    assert (known.name if known else None) == agent


def test_policy_extension_adds_agents_without_changing_the_builtin():
    extended = BUILTIN.extended(ai_agents=[("acme-agent[bot]", 77, "ACME")], labels=["ai"])
    assert extended.classify("acme-agent[bot]").kind is Kind.AI_AGENT
    assert extended.classify(None, 77).name == "ACME"
    assert BUILTIN.classify("acme-agent[bot]").kind is Kind.BOT
    assert "ai" in extended.labels and "ai" not in BUILTIN.labels


@pytest.mark.parametrize(
    ("branch", "agent"),
    [
        ("copilot/fix-1", "GitHub Copilot coding agent"),
        ("claude/x", "Claude"),
        ("feature/copilot/x", None),
        ("copilotfix", None),
    ],
    ids=["copilot", "claude", "prefix-only-at-start", "needs-the-slash"],
)
def test_branch_prefixes(branch, agent):
    assert BUILTIN.branch_match(branch) == agent
