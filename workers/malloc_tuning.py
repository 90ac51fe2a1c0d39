"""glibc's allocator, tuned so a worker's large buffers reuse memory instead of new pages.

A backfill page hands Redis one command of about half a megabyte (its messages), and a
deliverer reads and posts buffers as large. glibc serves each buffer that size with a fresh
``mmap`` (or from heap memory it gave back to the kernel a moment before, when the heap's free top
passed the trim threshold), so every page and every round touched a few hundred new pages, each
a page fault, and the copies into them ran at page-fault speed: about a tenth of a page's CPU
(``bench/backfill.py``'s page, in process: 9.7-10.0 -> 8.8 us a member).

``tune()`` keeps buffers below ``MMAP_THRESHOLD`` on the heap and lets up to ``TRIM_THRESHOLD`` of
free heap stay with the process, so the next buffer lands on memory already mapped. An operator
who sets glibc's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` keeps them; another
C library (no ``mallopt``) is left alone.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 << 20
"""Buffers up to this many bytes come from the heap (glibc's default: 128 KB, rising as mapped
buffers are freed, up to 32 MB)."""
TRIM_THRESHOLD = 64 << 20
"""Free memory at the top of the heap kept for the next buffers rather than given back."""


def tune() -> bool:
    """Set both thresholds (True), unless the environment sets either or there is no glibc."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
