"""Canonical JSON, the audit record hash and the chain check: shared by every store and by auditors.

A record's ``hash`` is ``sha256(canonical_json({"seq", "time", "kind", "payload", "prev_hash"}))``.
Canonical JSON has sorted keys (by code point), no whitespace, UTF-8 (non-ASCII written as is), no
NaN or infinity, and datetimes as ISO-8601 UTC with microseconds (``2026-11-23T10:00:00.000000+00:00``).
``prev_hash`` is the previous record's ``hash``; the first record's is :data:`GENESIS` (64 zeros).
docs/audit.md shows the same computation in 15 lines an auditor can run on an export.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import Unavailable
from app.observe.logs import current_request_id
from app.store.base import AuditRecord, ChainReport

GENESIS = "0" * 64


def with_request_id(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the current HTTP request's id (``request_id``) when a request is being answered,
    so an audit record and the log lines and answer of its request can be joined. Every store calls it."""
    request_id = current_request_id()
    if request_id is None or "request_id" in payload:
        return payload
    return {**payload, "request_id": request_id}


def utc_iso(when: datetime) -> str:
    """``when`` as ISO-8601 UTC with microseconds. Raises ValueError for a naive datetime."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"the time {when.isoformat()} has no time zone; give it one (UTC)")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def json_default(value: Any) -> str:
    """``default=`` for json.dumps: datetimes as ISO-8601 UTC; anything else is refused (TypeError)."""
    if isinstance(value, datetime):
        return utc_iso(value)
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


def canonical_json(value: Any) -> bytes:
    """The canonical encoding. Raises TypeError or ValueError for what JSON cannot represent."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,  # NaN is not JSON: another language's verifier could not read it back
        default=json_default,
    ).encode("utf-8")


def normalise_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it reads back from storage: JSON types only, string keys, datetimes as text.

    Hash this, not the caller's dict: ``{10: 1, 9: 2}`` sorts differently before and after a JSON
    round trip, and a hash over the caller's form would not re-verify. Raises TypeError or ValueError.
    """
    # Unsorted first: keys of mixed types (1 and "a") cannot be sorted until they are all strings.
    text = json.dumps(
        payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=json_default
    )
    normal = json.loads(text)
    # Two keys that became one string (1 and "1") leave one of them out of what was read back, so
    # writing it again gives a shorter text; only then is it read again key by key, to say which.
    # (Cheaper than checking every object's keys on every append.)
    again = json.dumps(normal, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(again) != len(text):
        normal = json.loads(text, object_pairs_hook=_unique_keys)
    if not isinstance(normal, dict):
        raise TypeError(f"an audit payload is a JSON object, got a {type(payload).__name__}")
    return normal


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"the keys {duplicated} appear twice once written as JSON (1 and '1'?)")
    return dict(pairs)


def record_hash(seq: int, time: datetime, kind: str, payload: dict[str, Any], prev_hash: str) -> str:
    """The record's hash over its canonical JSON (``payload`` as :func:`normalise_payload` returns it)."""
    body = {"seq": seq, "time": utc_iso(time), "kind": kind, "payload": payload, "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def record_hash_of_text(seq: int, time_text: str, kind: str, payload_text: str, prev_hash: str) -> str:
    """:func:`record_hash` from the payload's canonical JSON text (as :func:`encode_audit` returns it)
    and the time's text, without serialising the payload again: the same bytes, since the canonical
    form of the record is its five keys in sorted order (kind, payload, prev_hash, seq, time) around
    the canonical forms of their values."""
    text = (
        f'{{"kind":{_text(kind)},"payload":{payload_text},"prev_hash":{_text(prev_hash)},'
        f'"seq":{int(seq)},"time":{_text(time_text)}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class ChainVerifier:
    """Checks records fed in chain order; the first problem ends the check.

    Start at the beginning of the chain (the defaults), or mid-chain with the first record's own
    ``seq`` and ``prev_hash`` (an export made with ``--since``). With ``anchor`` = (seq, hash) taken
    earlier from :meth:`Store.head`, a log truncated or re-hashed since then is caught too.
    """

    next_seq: int = 1
    prev_hash: str = GENESIS
    anchor: tuple[int, str] | None = None
    records: int = field(default=0, init=False)
    _anchor_seen: bool = field(default=False, init=False)
    _first_seq: int = field(default=0, init=False)

    def check(self, record: AuditRecord) -> ChainReport | None:
        """None while the chain holds; the report naming this record when it breaks here."""
        broken = self._check_position(record.seq)
        if broken is not None:
            return broken
        if record.prev_hash != self.prev_hash:
            if record.seq == 1:
                return self._broken(
                    1, "record 1 does not start the chain: its prev_hash is not 64 zeros (replaced?)"
                )
            return self._broken(
                record.seq,
                f"record {record.seq} does not follow record {record.seq - 1}: its prev_hash is not the hash of "
                f"record {record.seq - 1} (a record was deleted, replaced or reordered?)",
            )
        try:
            actual = record_hash(record.seq, record.time, record.kind, record.payload, record.prev_hash)
        except (TypeError, ValueError) as exc:
            return self._broken(record.seq, f"record {record.seq} cannot be read: {exc} (edited?)")
        if actual != record.hash:
            return self._broken(
                record.seq, f"record {record.seq}: its contents do not match its hash (edited?)"
            )
        if self.anchor is not None and record.seq == self.anchor[0]:
            if record.hash != self.anchor[1]:
                return self._broken(
                    record.seq,
                    f"record {record.seq} has the hash {record.hash}, but {self.anchor[1]} was anchored: the log "
                    f"was rewritten and re-hashed up to record {record.seq}",
                )
            self._anchor_seen = True
        self.prev_hash = record.hash
        self.next_seq = record.seq + 1
        return None

    def unreadable(self, seq: int, why: str) -> ChainReport:
        """The report for a record that cannot even be parsed (a gap before it is named first)."""
        return self._check_position(seq) or self._broken(seq, f"record {seq} cannot be read: {why} (edited?)")

    def result(self) -> ChainReport:
        """The verdict once every record was checked without a problem."""
        if self.anchor is not None and not self._anchor_seen:
            anchored, last = self.anchor[0], self.next_seq - 1
            if self.records and anchored < self._first_seq:
                return ChainReport(
                    False,
                    self.records,
                    anchored,
                    f"record {anchored} was anchored, but these records start at record {self._first_seq}: "
                    "the anchor cannot be checked; use a head at or after the first record",
                )
            ends = f"the log ends at record {last}" if self.records else "the log is empty"
            return ChainReport(
                False,
                self.records,
                last + 1,
                f"record {anchored} was anchored, but {ends}: its tail was removed (truncated?)",
            )
        head = (self.next_seq - 1, self.prev_hash) if self.records else None
        return ChainReport(True, self.records, head=head)

    def _check_position(self, seq: int) -> ChainReport | None:
        if not self.records:
            self._first_seq = seq
        self.records += 1
        if seq > self.next_seq:
            if self.next_seq == 1:
                where = f"the chain starts at record {seq}"
            else:
                where = f"the chain goes from record {self.next_seq - 1} to record {seq}"
            missing = (
                f"record {self.next_seq}"
                if seq == self.next_seq + 1
                else f"records {self.next_seq}-{seq - 1}"
            )
            verb = "is" if seq == self.next_seq + 1 else "are"
            return self._broken(self.next_seq, f"{missing} {verb} missing: {where} (deleted?)")
        if seq < self.next_seq:
            return self._broken(
                seq,
                f"record {seq} comes after record {self.next_seq - 1}: records are out of order (reordered?)",
            )
        return None

    def _broken(self, seq: int, problem: str) -> ChainReport:
        return ChainReport(False, self.records, seq, problem)


def record_from_row(row: tuple[Any, ...]) -> AuditRecord:
    """An audit row (seq, time, kind, payload, prev_hash, hash) as a record. Raises ValueError saying, in plain words, what cannot be read."""
    seq, when, kind, payload, prev, digest = row
    try:
        parsed_time = datetime.fromisoformat(when)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its time {when!r} is not an ISO-8601 time") from exc
    if parsed_time.tzinfo is None:
        raise ValueError(f"its time {when!r} has no time zone")
    try:
        parsed_payload = json.loads(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError("its payload is not valid JSON") from exc
    if not isinstance(parsed_payload, dict):
        raise ValueError("its payload is not a JSON object")
    return AuditRecord(
        seq=int(seq),
        time=parsed_time,
        kind=str(kind),
        payload=parsed_payload,
        prev_hash=str(prev),
        hash=str(digest),
    )


def encode_audit(kind: str, payload: dict[str, Any], when: datetime) -> tuple[dict[str, Any], str, str]:
    """(normalised payload, its canonical JSON, the time) as stored and hashed.

    Raises ``Unavailable(code='audit-unavailable')`` for a payload JSON cannot carry (a bug).
    """
    try:
        normal = normalise_payload(payload)
        return normal, canonical_json(normal).decode("utf-8"), utc_iso(when)
    except (TypeError, ValueError) as exc:
        raise Unavailable(
            "the audit record cannot be encoded, so nothing was allowed; this is a bug in the gate, "
            "tell its operators",
            code="audit-unavailable",
        ) from exc


def encode_decision(record: dict[str, Any]) -> str:
    """A decision record as stored for the decision page, in its own key order.

    Raises ``Unavailable(code='store-unavailable')``.
    """
    try:
        return json.dumps(
            record, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=json_default
        )
    except (TypeError, ValueError) as exc:
        raise Unavailable(f"the decision record cannot be encoded ({exc})", code="store-unavailable") from exc
