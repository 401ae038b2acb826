"""JSON logs, one object per line, each with the request id of the request it belongs to.

The gate's own loggers (``agent_gate.*``), gunicorn's error log and its access log
(:class:`app.gunicorn_conf.JsonAccessLogger`) all write this shape::

    {"time": "2026-11-29T01:02:03.456Z", "level": "INFO", "logger": "agent_gate.api",
     "message": "...", "request_id": "..."}

Nothing here ever logs a header or a query string: tokens travel in both.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("agent_gate_request_id", default=None)

# What a caller's X-Request-Id may be: short, printable, no spaces or quotes (it reaches logs and
# the audit record). Anything else is replaced by a generated id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token, else a fresh random id."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(value: str | None) -> Any:
    """Make ``value`` the current request id; returns the token to :func:`reset_request_id` with."""
    return _request_id.set(value)


def reset_request_id(token: Any) -> None:
    _request_id.reset(token)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=True)


def configure(level: str) -> None:
    """Send the gate's own loggers to stderr as JSON lines at ``level`` (idempotent)."""
    root = logging.getLogger("agent_gate")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
