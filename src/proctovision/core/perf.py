"""CPU performance settings the tool applies to itself, and the CPU features speed depends on.

On glibc, PyTorch's large temporary tensors are served by fresh mmap calls and returned to
the kernel at once, so every batch pays page faults again. Keeping freed memory in the heap
(the same effect as MALLOC_MMAP_MAX_=0 and a huge MALLOC_TRIM_THRESHOLD_) removes that cost.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

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


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """The instruction sets INT8 speed depends on: VNNI (AVX-512 or AVX) does 8-bit dot products in one step."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {name: name in flags for name in CPU_FLAGS}


def has_vnni(flags: dict[str, bool] | None = None) -> bool:
    """8-bit dot products in one instruction: without them ONNX Runtime's U8S8 kernels sum pairs of products in
    16 bits, which can saturate unless weights keep to 7 bits."""
    flags = cpu_flags() if flags is None else flags
    return any(present for name, present in flags.items() if "vnni" in name)
