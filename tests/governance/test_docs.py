"""docs/standards.md names only published ids, every one of them, and paths that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDARDS = (REPO / "docs" / "standards.md").read_text()


def test_every_published_id_is_mapped_and_no_other() -> None:
    nhi = sorted(set(re.findall(r"\bNHI\d+\b", STANDARDS)), key=lambda i: int(i[3:]))
    asi = sorted(set(re.findall(r"\bASI\d+\b", STANDARDS)))
    assert nhi == [f"NHI{n}" for n in range(1, 11)]
    assert asi == [f"ASI{n:02d}" for n in range(1, 11)]
    for item in [*nhi, *asi]:
        assert re.search(rf"^\| {item} \|", STANDARDS, flags=re.MULTILINE), f"{item} has no row"


def test_every_path_named_exists() -> None:
    paths = set(re.findall(r"`((?:app|tests|action)/[^`\s]*)`", STANDARDS))
    assert paths
    assert sorted(p for p in paths if not (REPO / p).exists()) == []


def test_the_governance_guide_follows_the_workflow() -> None:
    text = (REPO / "docs" / "governance.md").read_text()
    headings = re.findall(r"^## (\d)\. (\w+)", text, flags=re.MULTILINE)
    assert [h[1] for h in headings] == ["Inventory", "Owners", "Audit", "Enforce", "Break", "Freeze"]
