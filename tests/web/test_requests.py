"""Bodies are read whole before any view: declared or chunked, over the limit is 413, never cut."""

from __future__ import annotations

import io

import pytest

from app.web.requests import MAX_BODY_BYTES


def _chunked(client, body: bytes):
    return client.post(
        "/v1/decisions",
        environ_overrides={"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"action": "read"' + b" " * MAX_BODY_BYTES + b', "garbage": 1}', 413, "payload-too-large"),
        (b'{"action": "read"}', 401, "missing-token"),
    ],
    ids=["chunked-over-the-limit-refused", "chunked-within-the-limit-read-whole"],
)
def test_a_chunked_body_is_read_whole_or_refused(client, body, status, code):
    answer = _chunked(client, body)
    assert answer.status_code == status
    assert answer.get_json()["errors"][0]["code"] == code


def test_a_declared_length_over_the_limit_is_refused_unread(client):
    answer = client.post(
        "/v1/decisions",
        data=b"x" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.get_json()["errors"][0]["code"] == "payload-too-large"
    assert answer.headers["X-Request-Id"]


def test_a_405_keeps_its_allow_header(client):
    answer = client.get("/v1/decisions")
    assert answer.status_code == 405
    assert answer.get_json()["errors"][0]["code"] == "method-not-allowed"
    assert "POST" in answer.headers["Allow"]
