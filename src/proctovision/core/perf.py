"""CPU performance settings the tool applies to itself.

On glibc, PyTorch's large temporary tensors are served by fresh mmap calls and returned to
the kernel at once, so every batch pays page faults again. Keeping freed memory in the heap
(the same effect as MALLOC_MMAP_MAX_=0 and a huge MALLOC_TRIM_THRESHOLD_) removes that cost.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_applied = False


def tune_allocator() -> bool:
    """Ask glibc to keep freed memory; a no-op elsewhere or when PROCTOVISION_NO_MALLOC_TUNING=1."""
    global _applied
    if _applied:
        return True
    if os.environ.get("PROCTOVISION_NO_MALLOC_TUNING") == "1":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
