"""Configuration from ``GATE_*`` environment variables, validated at start-up.

Every variable is documented in docs/configuration.md. An invalid value stops the gate with a
message naming the variable, what was found and what was expected; the gate never starts on a
configuration it does not understand.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from app.errors import ConfigError

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def gate_version() -> str:
    """The installed agent-gate's version (``agent-gate --version``, ``/readyz``, the OpenAPI document)."""
    try:
        return metadata.version("agent-gate")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


DEFAULT_AUDIENCE = "agent-gate"

# The issuer shapes GitHub uses: github.com, Enterprise Cloud with an enterprise-specific issuer,
# GHE.com data residency, and GitHub Enterprise Server.
_ISSUER_SHAPES = (
    re.compile(r"^https://token\.actions\.githubusercontent\.com$"),
    re.compile(r"^https://token\.actions\.githubusercontent\.com/[A-Za-z0-9][A-Za-z0-9-]*$"),
    re.compile(r"^https://token\.actions\.[a-z0-9][a-z0-9-]*\.ghe\.com$"),
    re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/_services/token$"),
)


class IssuerSetting(BaseModel):
    """One trusted issuer and where its keys come from (discovery unless told otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    jwks_url: str | None = None
    jwks_file: Path | None = None


class GitHubSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    app_id: int = Field(gt=0)
    private_key: SecretStr
    api_url: str = "https://api.github.com"


class IntrospectionClient(BaseModel):
    """A resource server allowed to introspect any grant (RFC 7662 section 2.1), by HTTP Basic.

    Only the SHA-256 of its secret is configured, so the gate's environment never holds the secret.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Settings(BaseModel):
    """The gate's whole configuration. Build with :meth:`from_env`; tests build it directly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_mode: bool = False
    audience: str = DEFAULT_AUDIENCE
    issuers: tuple[IssuerSetting, ...] = (IssuerSetting(url=GITHUB_ISSUER),)
    leeway: int = Field(60, ge=0, le=60)
    max_token_age: int = Field(600, ge=30, le=3600)
    data_dir: Path = Path("var")
    database: str | None = None  # default: sqlite:///<data_dir>/agent-gate.db
    database_pool_size: int = Field(4, ge=1, le=100)  # PostgreSQL connections per worker process
    retention_days: int = Field(30, ge=1, le=3650)  # decision pages and finished jobs; never the audit chain
    policy_path: Path = Path("policies")
    policy_check_interval: float = Field(2.0, ge=0.0)
    public_url: str = "http://127.0.0.1:8080"
    github: GitHubSettings | None = None
    webhook_secret: SecretStr | None = None
    jwks_ttl: int = Field(300, ge=30, le=86400)
    log_level: str = "INFO"
    # The overall time a decision may take, below gunicorn's 30 s worker timeout (503 when exceeded).
    decision_deadline: float = Field(20.0, gt=0, le=25)
    # Threads per gunicorn worker that run the webhook queue (0: only a separate `agent-gate worker`).
    queue_threads: int = Field(1, ge=0, le=16)
    introspection_clients: tuple[IntrospectionClient, ...] = ()
    # Who may read decision pages: "github" (a GitHub login with read access to the decision's
    # repository) or "public" (anyone with the link: only for deployments governing public
    # repositories). Unset: "github", except in development mode.
    decision_pages: Literal["github", "public"] | None = None
    github_client_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    github_client_secret: SecretStr | None = None
    github_web_url: str = Field("https://github.com", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # Seconds this replica's clock may differ from the database's before /readyz says degraded.
    clock_skew_max: float = Field(5.0, ge=0.5, le=60.0)
    # Webhook jobs waiting or running, at most; past it the webhook answers 503 (docs/configuration.md).
    queue_max_pending: int = Field(1000, ge=10, le=1_000_000)
    # The redelivery sweep (docs/github-app.md): how often (seconds; 0: never), how far back (GitHub
    # keeps deliveries 3 days) and how many redeliveries it asks for per sweep.
    redelivery_interval: int = Field(300, ge=0, le=86_400)
    redelivery_window: int = Field(86_400, ge=600, le=259_200)
    redelivery_max: int = Field(50, ge=1, le=1000)

    @property
    def pages_public(self) -> bool:
        """Whether decision pages are shown without a GitHub login."""
        return self.decision_pages == "public" or (self.decision_pages is None and self.dev_mode)

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.data_dir / 'agent-gate.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``GATE_*`` variables. Raises :class:`ConfigError` naming the bad variable."""
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        simple = {
            "GATE_AUDIENCE": "audience",
            "GATE_LEEWAY": "leeway",
            "GATE_MAX_TOKEN_AGE": "max_token_age",
            "GATE_DATA_DIR": "data_dir",
            "GATE_DATABASE": "database",
            "GATE_DATABASE_POOL_SIZE": "database_pool_size",
            "GATE_RETENTION_DAYS": "retention_days",
            "GATE_POLICY_PATH": "policy_path",
            "GATE_POLICY_CHECK_INTERVAL": "policy_check_interval",
            "GATE_PUBLIC_URL": "public_url",
            "GATE_JWKS_TTL": "jwks_ttl",
            "GATE_LOG_LEVEL": "log_level",
            "GATE_DECISION_DEADLINE": "decision_deadline",
            "GATE_WEBHOOK_SECRET": "webhook_secret",
            "GATE_QUEUE_THREADS": "queue_threads",
            "GATE_DECISION_PAGES": "decision_pages",
            "GATE_GITHUB_CLIENT_ID": "github_client_id",
            "GATE_GITHUB_WEB_URL": "github_web_url",
            "GATE_CLOCK_SKEW_MAX": "clock_skew_max",
            "GATE_QUEUE_MAX_PENDING": "queue_max_pending",
            "GATE_REDELIVERY_INTERVAL": "redelivery_interval",
            "GATE_REDELIVERY_WINDOW": "redelivery_window",
            "GATE_REDELIVERY_MAX": "redelivery_max",
        }
        for var, key in simple.items():
            value = get(var)
            if value is not None:
                data[key] = value
        dev = get("GATE_DEV_MODE")
        if dev is not None:
            if dev.lower() not in {"1", "true", "yes", "0", "false", "no"}:
                raise ConfigError(f"GATE_DEV_MODE: got {dev!r}, expected true or false")
            data["dev_mode"] = dev.lower() in {"1", "true", "yes"}
        issuers = get("GATE_ISSUERS")
        if issuers is not None:
            data["issuers"] = _parse_issuers(issuers)
        elif data.get("dev_mode") or overrides.get("dev_mode"):
            # Development mode trusts only the local dev issuer unless issuers are named explicitly.
            data["issuers"] = ()
        secret_file = get("GATE_WEBHOOK_SECRET_FILE")
        if secret_file is not None:
            if "webhook_secret" in data:
                raise ConfigError("set GATE_WEBHOOK_SECRET or GATE_WEBHOOK_SECRET_FILE, not both")
            data["webhook_secret"] = _read_secret_file("GATE_WEBHOOK_SECRET_FILE", secret_file)
        client_secret = _secret_from_env(get, "GATE_GITHUB_CLIENT_SECRET")
        if client_secret is not None:
            data["github_client_secret"] = client_secret
        clients = get("GATE_INTROSPECTION_CLIENTS")
        if clients is not None:
            data["introspection_clients"] = _parse_introspection_clients(clients)
        github = _github_from_env(get)
        if github is not None:
            data["github"] = github
        data.update(overrides)
        try:
            settings = cls.model_validate(data)
        except ValidationError as exc:
            reverse = {v: k for k, v in simple.items()}
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                var = reverse.get(field, f"GATE_{field.upper()}")
                problems.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc
        settings.validate_issuers()
        if not re.match(r"^https?://[^\s/]+", settings.public_url):
            raise ConfigError(f"GATE_PUBLIC_URL: got {settings.public_url!r}, expected an http(s) URL")
        return settings

    def startup_warnings(self) -> list[str]:
        """What an operator should fix though the gate can run: logged by each worker at start."""
        warnings = []
        host = re.sub(r"^https?://", "", self.public_url).split("/")[0].rsplit(":", 1)[0].strip("[]")
        if not self.dev_mode and (host in {"localhost", "::1"} or host.startswith("127.")):
            warnings.append(
                f"GATE_PUBLIC_URL is {self.public_url!r}, a loopback address: it becomes the grants' issuer "
                "(iss) and every decision link, which no one else can reach; set it to the gate's public URL"
            )
        return warnings

    def validate_issuers(self) -> None:
        """Each issuer must have one of GitHub's shapes and at most one explicit key source."""
        if not self.issuers and not self.dev_mode:
            raise ConfigError("GATE_ISSUERS: no trusted issuer configured; expected at least one")
        for issuer in self.issuers:
            if not any(shape.fullmatch(issuer.url) for shape in _ISSUER_SHAPES):
                raise ConfigError(
                    f"GATE_ISSUERS: got issuer {issuer.url!r}, expected one of GitHub's issuer shapes: "
                    f"{GITHUB_ISSUER}, {GITHUB_ISSUER}/<enterprise-slug>, https://token.actions.<sub>.ghe.com, "
                    "https://HOST/_services/token"
                )
            if issuer.jwks_url and issuer.jwks_file:
                raise ConfigError(
                    f"GATE_ISSUERS: issuer {issuer.url} has both jwks_url and jwks_file; expected at most one"
                )
            if issuer.jwks_url and not issuer.jwks_url.startswith("https://"):
                raise ConfigError(f"GATE_ISSUERS: jwks_url {issuer.jwks_url!r} must be an https URL")


def _parse_issuers(raw: str) -> tuple[IssuerSetting, ...]:
    """Either a comma-separated list of issuer URLs (keys by discovery) or a JSON list of objects."""
    if raw.startswith("["):
        try:
            items = json.loads(raw)
            return tuple(IssuerSetting.model_validate(item) for item in items)
        except (ValueError, ValidationError, TypeError) as exc:
            raise ConfigError(
                "GATE_ISSUERS: expected a JSON list of objects with 'url' and optionally 'jwks_url' or "
                f"'jwks_file' ({exc.__class__.__name__})"
            ) from exc
    return tuple(IssuerSetting(url=url.strip().rstrip("/")) for url in raw.split(",") if url.strip())


def _read_secret_file(variable: str, path: str) -> str:
    try:
        value = Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from exc
    if not value:
        raise ConfigError(f"{variable}: {path} is empty; expected the secret")
    return value


def _secret_from_env(get: Any, name: str) -> str | None:
    """``NAME`` or the contents of the file ``NAME_FILE``, not both."""
    value, path = get(name), get(f"{name}_FILE")
    if value is not None and path is not None:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if path is None:
        return value  # type: ignore[no-any-return]  # get() returns str | None
    try:
        return Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read the file ({exc.strerror})") from exc


def _parse_introspection_clients(raw: str) -> tuple[IntrospectionClient, ...]:
    """``ID:SHA256HEX`` pairs separated by commas (the hex digest of the client's secret)."""
    clients = []
    for item in (part.strip() for part in raw.split(",")):
        client_id, sep, digest = item.partition(":")
        try:
            if not sep:
                raise ValueError("no ':'")
            clients.append(IntrospectionClient(client_id=client_id, secret_sha256=digest.lower()))
        except (ValueError, ValidationError) as exc:
            raise ConfigError(
                f"GATE_INTROSPECTION_CLIENTS: got {client_id!r}, expected ID:SHA256 pairs separated by commas "
                "(the SHA-256 hex digest of each client's secret, e.g. from `printf %s SECRET | sha256sum`)"
            ) from exc
    if len({c.client_id for c in clients}) != len(clients):
        raise ConfigError("GATE_INTROSPECTION_CLIENTS: a client id is given twice")
    return tuple(clients)


def _github_from_env(get: Any) -> GitHubSettings | None:
    app_id = get("GATE_GITHUB_APP_ID")
    key = get("GATE_GITHUB_PRIVATE_KEY")
    key_file = get("GATE_GITHUB_PRIVATE_KEY_FILE")
    api_url = get("GATE_GITHUB_API_URL") or "https://api.github.com"
    if app_id is None and key is None and key_file is None:
        return None
    if app_id is None or (key is None and key_file is None):
        raise ConfigError(
            "GitHub App: set GATE_GITHUB_APP_ID together with GATE_GITHUB_PRIVATE_KEY or "
            "GATE_GITHUB_PRIVATE_KEY_FILE (see docs/github-app.md)"
        )
    if key is not None and key_file is not None:
        raise ConfigError("GitHub App: set GATE_GITHUB_PRIVATE_KEY or GATE_GITHUB_PRIVATE_KEY_FILE, not both")
    if key_file is not None:
        try:
            key = Path(key_file).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"GATE_GITHUB_PRIVATE_KEY_FILE: cannot read the file ({exc.strerror})") from exc
    if "PRIVATE KEY-----" not in (key or ""):
        raise ConfigError(
            "GitHub App: the private key is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')"
        )
    if not re.fullmatch(r"[0-9]+", app_id):
        raise ConfigError(f"GATE_GITHUB_APP_ID: got {app_id!r}, expected the App's numeric id")
    if not re.match(r"^https://", api_url):
        raise ConfigError(f"GATE_GITHUB_API_URL: got {api_url!r}, expected an https URL")
    return GitHubSettings(app_id=int(app_id), private_key=SecretStr(key or ""), api_url=api_url.rstrip("/"))
