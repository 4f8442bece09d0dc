"""The process heap, tuned once for a daemon that sets links up and down for
weeks (``persist``, ``demand``, the call back).

Each session allocates buffers of 32 KB and more (zlib's Deflate state and
window, BSD-Compress dictionaries, the C core's batch buffers) and frees them
when the link goes down.  glibc's default mmap threshold rises to the largest
block freed, so after the first session these come from the heap instead of
mmap, and the heap's fragmentation makes RSS drift from session to session
with no live memory growing (measured: 40.1 -> 43.0 MB over 1000 persist
cycles, tracemalloc flat).  A fixed threshold keeps big blocks on mmap, so
they go back to the system when freed and RSS follows live memory
(tests/e2e/test_soak.py holds it flat over the cycles).
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's mallopt parameter number (malloc.h)
M_MMAP_THRESHOLD = -3
#: blocks of this size and more are mmapped
MMAP_THRESHOLD = 32 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold; False where there is no glibc mallopt
    (another C library: nothing to tune, nothing lost)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
