"""GitHub's size limits on what the gate writes, measured in UTF-8 bytes, and cuts that keep a tail.

GitHub refuses a check run whose ``output.summary`` or ``output.text`` exceeds 65,535 **bytes**
(422 "exceeds a maximum bytesize"), not characters: a summary full of ✅, ✖ and non-Latin user text is
two to four times longer in bytes. Text is cut on a character boundary (never inside a UTF-8
sequence), and what must survive a cut (the decision page's link) is kept as a tail after it.
"""

from __future__ import annotations


def clean(text: str) -> str:
    """``text`` as GitHub can store it: a lone surrogate (JSON allows ``"\\ud800"``) becomes U+FFFD."""
    if not _has_surrogate(text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def utf8_size(text: str) -> int:
    """The length of ``text`` in UTF-8 bytes (lone surrogates counted as their replacement)."""
    return len(clean(text).encode("utf-8"))


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes``, never ending
    inside a character."""
    raw = clean(text).encode("utf-8")
    if len(raw) <= max_bytes:
        return clean(text)
    # A prefix of valid UTF-8 is valid but for at most one incomplete character at its end.
    return raw[: max(0, max_bytes)].decode("utf-8", "ignore")


def fit(text: str, max_bytes: int, *, tail: str = "", note: str = "") -> str:
    """``text + tail`` in at most ``max_bytes`` UTF-8 bytes: whole when it fits, else ``text`` cut and
    followed by ``note`` and ``tail``, which are always kept whole (the caller keeps them short)."""
    whole = clean(text) + tail
    if utf8_size(whole) <= max_bytes:
        return whole
    kept = clean(note) + clean(tail)
    return cut_utf8(text, max_bytes - utf8_size(kept)) + kept
