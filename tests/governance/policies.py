"""Changing the running gate's policy in a test: the registry adopts files only once they have settled
(unchanged for a few seconds), so the new text is written with a modification time in the past."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.builders import whole


def write_policy(path: Path, text: str) -> None:
    path.write_text(whole(text))
    past = time.time() - 60
    os.utime(path, (past, past))
