"""Configuration from GATE_* variables: validated at start-up, errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.settings import GITHUB_ISSUER, Settings

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"


def test_defaults_trust_github_com_only():
    settings = Settings.from_env({})
    assert [i.url for i in settings.issuers] == [GITHUB_ISSUER]
    assert settings.audience == "agent-gate"
    assert settings.leeway == 60 and settings.max_token_age == 600
    assert settings.dev_mode is False
    assert settings.github is None
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("agent-gate.db")


@pytest.mark.parametrize(
    "issuers",
    [
        "https://token.actions.githubusercontent.com",
        "https://token.actions.githubusercontent.com/acme-enterprise",
        "https://token.actions.acme.ghe.com",
        "https://ghes.example.com/_services/token",
        '[{"url": "https://ghes.example.com/_services/token", "jwks_file": "/etc/jwks.json"}]',
    ],
    ids=["github-com", "enterprise-cloud-slug", "ghe-com", "ghes", "json-with-jwks-file"],
)
def test_github_issuer_shapes_are_accepted(issuers):
    assert Settings.from_env({"GATE_ISSUERS": issuers}).issuers


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_ISSUERS": "https://evil.example.com"}, "expected one of GitHub's issuer shapes"),
        (
            {"GATE_ISSUERS": "http://token.actions.githubusercontent.com"},
            "expected one of GitHub's issuer shapes",
        ),
        ({"GATE_ISSUERS": "https://token.actions.githubusercontent.com.evil.com"}, "issuer shapes"),
        ({"GATE_ISSUERS": "[not json"}, "GATE_ISSUERS: expected a JSON list"),
        (
            {
                "GATE_ISSUERS": '[{"url": "https://token.actions.githubusercontent.com", "jwks_url": "https://a", "jwks_file": "b"}]'
            },
            "both jwks_url and jwks_file",
        ),
        ({"GATE_LEEWAY": "120"}, "GATE_LEEWAY"),
        ({"GATE_MAX_TOKEN_AGE": "soon"}, "GATE_MAX_TOKEN_AGE"),
        ({"GATE_DEV_MODE": "maybe"}, "GATE_DEV_MODE: got 'maybe', expected true or false"),
        ({"GATE_PUBLIC_URL": "ftp://x"}, "GATE_PUBLIC_URL"),
        ({"GATE_GITHUB_APP_ID": "12"}, "set GATE_GITHUB_APP_ID together with GATE_GITHUB_PRIVATE_KEY"),
        ({"GATE_GITHUB_APP_ID": "abc", "GATE_GITHUB_PRIVATE_KEY": PEM}, "GATE_GITHUB_APP_ID: got 'abc'"),
        ({"GATE_GITHUB_APP_ID": "12", "GATE_GITHUB_PRIVATE_KEY": "hunter2"}, "not a PEM private key"),
        (
            {"GATE_GITHUB_APP_ID": "12", "GATE_GITHUB_PRIVATE_KEY_FILE": "/nonexistent/key.pem"},
            "cannot read the file",
        ),
    ],
    ids=[
        "foreign-issuer",
        "plain-http-issuer",
        "issuer-suffix-trick",
        "issuers-bad-json",
        "two-key-sources",
        "leeway-over-60",
        "max-age-not-a-number",
        "dev-mode-not-boolean",
        "public-url-not-http",
        "app-id-without-key",
        "app-id-not-numeric",
        "key-not-pem",
        "key-file-missing",
    ],
)
def test_invalid_configuration_names_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_github_app_key_is_a_secret(tmp_path: Path):
    key_file = tmp_path / "key.pem"
    key_file.write_text(PEM)
    settings = Settings.from_env({"GATE_GITHUB_APP_ID": "12", "GATE_GITHUB_PRIVATE_KEY_FILE": str(key_file)})
    assert settings.github is not None
    assert settings.github.private_key.get_secret_value() == PEM
    assert "MIIB" not in repr(settings) and "MIIB" not in str(settings.model_dump())


def test_bad_key_message_never_echoes_the_key():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"GATE_GITHUB_APP_ID": "12", "GATE_GITHUB_PRIVATE_KEY": "hunter2-secret"})
    assert "hunter2" not in info.value.message


def test_dev_mode_trusts_only_the_dev_issuer_unless_told_otherwise():
    assert Settings.from_env({"GATE_DEV_MODE": "true"}).issuers == ()
    explicit = Settings.from_env({"GATE_DEV_MODE": "true", "GATE_ISSUERS": GITHUB_ISSUER})
    assert [i.url for i in explicit.issuers] == [GITHUB_ISSUER]


def test_webhook_secret_from_a_file(tmp_path: Path):
    secret = tmp_path / "webhook-secret"
    secret.write_text("s3cret-value\n")
    settings = Settings.from_env({"GATE_WEBHOOK_SECRET_FILE": str(secret)})
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_WEBHOOK_SECRET_FILE": "/nonexistent/secret"}, "GATE_WEBHOOK_SECRET_FILE: cannot read"),
        (
            {"GATE_WEBHOOK_SECRET_FILE": "/nonexistent/secret", "GATE_WEBHOOK_SECRET": "x"},
            "not both",
        ),
    ],
    ids=["unreadable-file", "both-set"],
)
def test_webhook_secret_file_refusals(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, True),
        ({"GATE_PUBLIC_URL": "http://localhost:8080"}, True),
        ({"GATE_PUBLIC_URL": "https://gate.example.com"}, False),
        ({"GATE_DEV_MODE": "true"}, False),
    ],
    ids=["default-loopback-warns", "localhost-warns", "public-url-quiet", "dev-mode-quiet"],
)
def test_a_loopback_public_url_outside_dev_mode_is_warned_about(env, warned):
    warnings = Settings.from_env(env).startup_warnings()
    assert bool(warnings) is warned
    if warned:
        assert "GATE_PUBLIC_URL" in warnings[0] and "loopback" in warnings[0]


def test_introspection_clients_are_id_and_sha256_pairs():
    import hashlib

    digest = hashlib.sha256(b"secret").hexdigest()
    settings = Settings.from_env({"GATE_INTROSPECTION_CLIENTS": f"deployer:{digest}, other:{digest.upper()}"})
    assert [(c.client_id, c.secret_sha256) for c in settings.introspection_clients] == [
        ("deployer", digest),
        ("other", digest),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "deployer",
        "deployer:not-hex",
        "deployer:" + "a" * 63,
        "bad id:" + "a" * 64,
        f"a:{'a' * 64},a:{'b' * 64}",
    ],
    ids=["no-digest", "not-hex", "short-digest", "bad-id", "twice"],
)
def test_invalid_introspection_clients_stop_the_start(value):
    with pytest.raises(ConfigError, match="GATE_INTROSPECTION_CLIENTS"):
        Settings.from_env({"GATE_INTROSPECTION_CLIENTS": value})


def test_decision_page_login_settings(tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")
    settings = Settings.from_env(
        {
            "GATE_DECISION_PAGES": "github",
            "GATE_GITHUB_CLIENT_ID": "Iv23liABC",
            "GATE_GITHUB_CLIENT_SECRET_FILE": str(secret),
            "GATE_GITHUB_WEB_URL": "https://ghe.example.com",
        }
    )
    assert settings.decision_pages == "github" and not settings.pages_public
    assert settings.github_client_secret is not None
    assert settings.github_client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"GATE_DECISION_PAGES": "everyone"}, "GATE_DECISION_PAGES"),
        ({"GATE_GITHUB_CLIENT_SECRET": "a", "GATE_GITHUB_CLIENT_SECRET_FILE": "/x"}, "not both"),
        ({"GATE_GITHUB_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "GATE_GITHUB_CLIENT_SECRET_FILE"),
    ],
    ids=["unknown-mode", "both-secret-forms", "unreadable-secret-file"],
)
def test_invalid_decision_page_settings_stop_the_start(env, match):
    with pytest.raises(ConfigError, match=match):
        Settings.from_env(env)


def test_queue_redelivery_and_clock_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "GATE_QUEUE_MAX_PENDING": "250",
            "GATE_REDELIVERY_INTERVAL": "0",
            "GATE_REDELIVERY_WINDOW": "3600",
            "GATE_REDELIVERY_MAX": "5",
            "GATE_CLOCK_SKEW_MAX": "2.5",
        }
    )
    assert (
        settings.queue_max_pending,
        settings.redelivery_interval,
        settings.redelivery_window,
        settings.redelivery_max,
        settings.clock_skew_max,
    ) == (250, 0, 3600, 5, 2.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GATE_QUEUE_MAX_PENDING": "0"},
            "GATE_QUEUE_MAX_PENDING: Input should be greater than or equal to 10",
        ),
        ({"GATE_REDELIVERY_WINDOW": "604800"}, "GATE_REDELIVERY_WINDOW: Input should be less than or equal"),
        ({"GATE_REDELIVERY_MAX": "lots"}, "GATE_REDELIVERY_MAX"),
        ({"GATE_CLOCK_SKEW_MAX": "0"}, "GATE_CLOCK_SKEW_MAX"),
    ],
    ids=["unbounded-queue", "window-past-githubs-retention", "max-not-a-number", "no-skew-at-all"],
)
def test_invalid_queue_and_clock_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
