"""agent-gate: governed, attributable, least-privilege actions for AI coding agents.

``create_app`` is the Flask application factory; gunicorn runs it as ``'app:create_app()'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the gate (see :func:`app.factory.create_app`); imported lazily to keep the CLI light."""
    from app.factory import create_app as _create_app

    return _create_app(*args, **kwargs)
