"""A worker's memory stays flat under floods: glibc's malloc told to give large buffers back.

What grew: a worker's resident memory rose by tens of MiB a minute under a flood of large bodies
(webhook deliveries of megabytes, 64 KiB API bodies) on threaded workers, and was never returned,
while the Python heap stayed flat. The cause is glibc's *dynamic* mmap threshold (mallopt(3)): a
block over the threshold (128 KiB at start) is served by ``mmap`` and unmapped when freed, but each
such free raises the threshold to that block's size (up to 32 MiB) and the trim threshold to twice
that. After the first 3 MB delivery, every later body of up to 3 MB is carved out of the heaps of
glibc's per-thread arenas instead, where the gaps left between live blocks are kept and reused
badly, and up to twice the largest body per arena is never trimmed. With 16 threads there are up to
16 arenas: the retained memory is what grew.

Setting the thresholds explicitly turns the dynamic adjustment off (mallopt(3), "M_MMAP_THRESHOLD":
"setting it disables dynamic adjustment"): large buffers always come from ``mmap`` and go back to
the system when freed, and free space past 256 KiB at the top of a heap is trimmed. Measured with
bench/bench_memory.py (README, "Performance"). Nothing is tuned when the operator has chosen
malloc settings of their own (any ``MALLOC_*`` variable, or ``glibc.malloc`` in ``GLIBC_TUNABLES``),
nor on a C library other than glibc (musl, macOS), where this cause does not apply.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping

# mallopt(3)'s parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's own starting values, held fixed: a buffer of 128 KiB or more is mapped and unmapped on its own.
MMAP_THRESHOLD_BYTES = 128 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): what malloc holds, in bytes and blocks."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def operator_chose(environ: Mapping[str, str]) -> bool:
    """True when the environment already sets glibc's malloc tunables: theirs are kept."""
    return any(name.startswith("MALLOC_") for name in environ) or "glibc.malloc." in environ.get(
        "GLIBC_TUNABLES", ""
    )


def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the running process, whose symbols include its libc's


def tune_malloc(environ: Mapping[str, str] = os.environ) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; True when they were set.

    Called by each gunicorn worker as it starts (app/server.py), before it serves a request.
    """
    if operator_chose(environ):
        return False
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def mallinfo() -> MallInfo2 | None:
    """glibc's account of this process's heap (``mallinfo2``), or None off glibc or before 2.33."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    call = libc.mallinfo2
    call.argtypes = []
    call.restype = MallInfo2
    info: MallInfo2 = call()
    return info
