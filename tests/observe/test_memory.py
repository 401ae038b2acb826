"""A worker gives large buffers back to the system (app/observe/memory.py): glibc's dynamic mmap
threshold, which kept freed request bodies in the arenas, is turned off, unless the operator set
malloc tunables of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.observe.memory import mallinfo, operator_chose, tune_malloc

REPO = Path(__file__).resolve().parents[2]

# In a fresh process: free a 4 MiB buffer (mapped, then unmapped: glibc's dynamic threshold rises
# to 4 MiB), then take a 300 KiB one and print whether it was mapped on its own (returned when freed)
# or carved out of an arena's heap (kept).
PROBE = """
import sys
from app.observe.memory import mallinfo, tune_malloc
print("tuned" if tune_malloc() else "untouched")
big = bytearray(4 * 1024 * 1024)
del big
before = mallinfo().hblks
medium = bytearray(300 * 1024)
print("mapped" if mallinfo().hblks > before else "heap")
"""

pytestmark = pytest.mark.skipif(
    mallinfo() is None, reason="glibc 2.33+ only: musl and macOS have no such threshold"
)


def _probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_after_tuning_a_large_buffer_freed_does_not_keep_the_next_ones_in_the_heap() -> None:
    assert _probe() == ["tuned", "mapped"]


def test_glibcs_own_dynamic_threshold_would_have_kept_it_in_the_heap() -> None:
    # What the worker did before: the same probe with the operator's own (default) arena setting.
    assert _probe(MALLOC_ARENA_MAX="8") == ["untouched", "heap"]


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_ARENA_MAX": "2"},
        {"MALLOC_MMAP_THRESHOLD_": "65536"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"},
    ],
)
def test_the_operators_own_malloc_settings_are_kept(environ: dict[str, str]) -> None:
    assert operator_chose(environ)
    assert tune_malloc(environ) is False


def test_unrelated_glibc_tunables_are_not_a_choice_about_malloc() -> None:
    assert not operator_chose({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=512"})
