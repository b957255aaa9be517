"""Keeps freed memory in the process for reuse, so PyTorch's large CPU tensors stop costing page faults.

glibc serves every allocation over its mmap threshold (at most 32 MiB) with a fresh mmap and
returns it to the kernel on free, so each training step's activations (tens of MiB each at batch
8 x 3 decodes of 128^2) are faulted in page by page, zeroed by the kernel, again every step.
With mmap off and trimming effectively off, freed blocks stay in the heap and are reused.
Measured on a 2-core Zen 3 (fp32), the same 30 seeded steps (23230-23260) from one checkpoint,
runs alternated with the other training paused: 1.77-1.86 s/step by default against
1.43-1.66 s/step with freed memory kept (Tools/train/RESULTS.md, session 11;
re-run with Tools/train/bench-steps.sh); peak RSS
1.9 -> 2.2 GB. Memory is not returned to the system before exit.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Sets glibc's malloc to reuse freed memory instead of returning it; False when the C
    library is not glibc (nothing is changed then)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. INT_MAX bytes (2 GiB) is the largest trim threshold it takes.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
