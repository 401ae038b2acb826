"""What `agent-gate audit verify` and `audit export` stand on: verify_chain, export_jsonl, verify_jsonl.

An export must re-verify on its own, with agent-gate's helpers and with the 15 lines an auditor
copies from docs/audit.md.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from app.store.audit import export_jsonl, parse_anchor, verify_chain, verify_jsonl
from app.store.canonical import GENESIS
from app.store.sqlite import SQLiteStore
from tests.store.conftest import T0, run_sql

Fill = Callable[[int], None]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def export(store: SQLiteStore, **kwargs: object) -> list[str]:
    out = io.StringIO()
    count = export_jsonl(store, out, **kwargs)  # type: ignore[arg-type]
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == count
    return lines[:-1]


def test_an_export_is_one_json_object_per_record(store: SQLiteStore, fill: Fill) -> None:
    fill(3)
    lines = export(store)
    first = json.loads(lines[0])
    assert first == {
        "seq": 1,
        "time": "2026-11-23T10:00:00.000000+00:00",
        "kind": "decision",
        "payload": {"allowed": True, "decision_id": "dec_1"},
        "prev_hash": GENESIS,
        "hash": next(iter(store.iter_audit())).hash,
    }
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]


def test_an_export_round_trips_through_verification(store: SQLiteStore, fill: Fill) -> None:
    fill(4)
    store.append_audit("token-refused", {"claims": {"actor": "zoë", "odd": "line\u2028separator"}})
    lines = export(store)
    assert all(line.isascii() for line in lines), "non-ASCII escaped: one record is one line for every reader"
    report = verify_jsonl(lines)
    assert report.ok and report.records == 5 and report.head == store.head()


def test_an_export_since_is_a_piece_that_verifies_from_its_first_link(store: SQLiteStore, fill: Fill) -> None:
    fill(5)
    lines = export(store, since=T0 + timedelta(minutes=3))
    assert [json.loads(line)["seq"] for line in lines] == [4, 5]
    assert verify_jsonl(lines).ok


def test_an_empty_export(store: SQLiteStore) -> None:
    assert export(store) == []
    assert verify_jsonl([]).ok


EXPORT_TAMPERING = [
    # (edit the exported lines, first broken seq, what the report says)
    (lambda rs: rs[1]["payload"].update(allowed=True), 2, "record 2: its contents do not match its hash"),
    (lambda rs: rs.pop(2), 3, "record 3 is missing: the chain goes from record 2 to record 4"),
    (lambda rs: rs.insert(1, rs.pop(2)), 2, "record 2 is missing"),
    (lambda rs: rs.append(rs[1]), 2, "record 2 comes after record 5: records are out of order"),
    (lambda rs: rs[0].update(prev_hash="f" * 64), 1, "record 1 does not start the chain"),
]


@pytest.mark.parametrize(
    ("edit", "first_bad", "problem"),
    EXPORT_TAMPERING,
    ids=["edit-payload", "drop-a-line", "move-a-line-up", "repeat-a-line", "replace-the-genesis-link"],
)
def test_an_edited_export_is_caught(
    store: SQLiteStore,
    fill: Fill,
    edit: Callable[[list[dict[str, object]]], object],
    first_bad: int,
    problem: str,
) -> None:
    fill(5)
    records = [json.loads(line) for line in export(store)]
    edit(records)
    report = verify_jsonl(json.dumps(r) for r in records)
    assert not report.ok and report.first_bad_seq == first_bad
    assert problem in (report.problem or "")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2 is not an audit record (not JSON)"),
        ('{"seq": 2}', "line 2 is not an audit record (expected the fields seq, time, kind"),
        ("[]", "expected the fields"),
    ],
    ids=["not-json", "missing-fields", "not-an-object"],
)
def test_a_line_that_is_not_a_record_breaks_the_export(
    store: SQLiteStore, fill: Fill, line: str, problem: str
) -> None:
    fill(3)
    lines = export(store)
    lines[1] = line
    report = verify_jsonl(lines)
    assert not report.ok and report.first_bad_seq == 2
    assert problem in (report.problem or "")


def test_an_export_missing_its_first_lines_is_a_valid_piece_that_says_where_it_starts(
    store: SQLiteStore, fill: Fill
) -> None:
    # Exactly what `export --since` produces: whether a piece is the whole log is the auditor's question.
    fill(5)
    lines = export(store)[2:]
    report = verify_jsonl(lines)
    assert report.ok and report.records == 3 and json.loads(lines[0])["seq"] == 3


def test_blank_lines_in_an_export_are_ignored(store: SQLiteStore, fill: Fill) -> None:
    fill(2)
    assert verify_jsonl(["", *export(store), "  "]).ok


# --- the auditor's script in docs/audit.md ------------------------------------------------------------


def _auditors_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/audit.md has exactly one Python block: the auditor's verifier"
    assert len(blocks[0].strip().splitlines()) <= 15, "the docs promise 15 lines"
    return str(blocks[0])


@pytest.mark.parametrize("since", [None, T0 + timedelta(minutes=2)], ids=["whole-log", "since"])
def test_the_auditors_script_in_the_docs_verifies_an_export(
    store: SQLiteStore, fill: Fill, tmp_path: Path, since: object
) -> None:
    fill(4)
    store.append_audit("decision", {"who": "zoë", "when": T0})
    exported = tmp_path / "audit.jsonl"
    exported.write_text("\n".join(export(store, since=since)) + "\n", encoding="utf-8")
    script = tmp_path / "verify.py"
    script.write_text(_auditors_script(), encoding="utf-8")

    ok = subprocess.run(
        [sys.executable, str(script), str(exported)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"ok: last record 5, head {store.head()[1]}"  # type: ignore[index]

    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    records[-2]["payload"]["allowed"] = not records[-2]["payload"]["allowed"]
    exported.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    broken = subprocess.run(
        [sys.executable, str(script), str(exported)], capture_output=True, text=True, check=False
    )
    assert broken.returncode == 1 and "broken at record 4" in broken.stderr


# --- verify_chain and anchors --------------------------------------------------------------------------


def test_verify_chain_reports_length_and_head(store: SQLiteStore, fill: Fill) -> None:
    fill(3)
    report = verify_chain(store)
    assert report.ok and report.records == 3 and report.head == store.head()


def test_verify_chain_names_the_first_broken_record(store: SQLiteStore, fill: Fill, db_path: Path) -> None:
    fill(3)
    run_sql(db_path, "UPDATE audit SET payload = '{\"i\":42}' WHERE seq = 2")
    report = verify_chain(store)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert report.problem == "record 2: its contents do not match its hash (edited?)"


def test_verify_chain_with_an_anchor_catches_a_cut_tail(
    store: SQLiteStore, fill: Fill, db_path: Path
) -> None:
    fill(3)
    head = store.head()
    assert head is not None
    anchor = parse_anchor(f"{head[0]}:{head[1]}")
    assert verify_chain(store, anchor=anchor).ok
    run_sql(db_path, "DELETE FROM audit WHERE seq = 3")
    assert verify_chain(store).ok
    report = verify_chain(store, anchor=anchor)
    assert not report.ok and "its tail was removed (truncated?)" in (report.problem or "")


def test_an_export_verified_with_an_anchor(store: SQLiteStore, fill: Fill) -> None:
    fill(3)
    head = store.head()
    assert head is not None
    lines = export(store)
    assert verify_jsonl(lines, anchor=head).ok
    assert not verify_jsonl(lines[:-1], anchor=head).ok


def test_an_anchor_before_a_piece_cannot_be_checked_and_says_so(store: SQLiteStore, fill: Fill) -> None:
    fill(4)
    first = next(iter(store.iter_audit()))
    report = verify_jsonl(export(store)[2:], anchor=(1, first.hash))
    assert not report.ok and report.first_bad_seq == 1
    assert "record 1 was anchored, but these records start at record 3: the anchor cannot be checked" in (
        report.problem or ""
    )


def test_an_anchor_against_an_emptied_log(store: SQLiteStore, fill: Fill, db_path: Path) -> None:
    fill(2)
    anchor = store.head()
    run_sql(db_path, "DELETE FROM audit")
    report = verify_chain(store, anchor=anchor)
    assert not report.ok and report.first_bad_seq == 1
    assert report.problem == "record 2 was anchored, but the log is empty: its tail was removed (truncated?)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"17:{'ab' * 32}", (17, "ab" * 32)),
        (f" 17:{'AB' * 32} ", (17, "ab" * 32)),
    ],
    ids=["as-printed", "spaces-and-capitals"],
)
def test_parse_anchor(text: str, expected: tuple[int, str]) -> None:
    assert parse_anchor(text) == expected


@pytest.mark.parametrize(
    "text",
    ["17", f"x:{'ab' * 32}", "17:abc", f"17:{'zz' * 32}", f"-1:{'ab' * 32}"],
    ids=["no-hash", "seq-not-a-number", "hash-too-short", "hash-not-hex", "negative-seq"],
)
def test_parse_anchor_refuses_what_is_not_seq_colon_hash(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected SEQ:HASH such as 1832:5b1f"):
        parse_anchor(text)
