"""One shared handle on the C library (ctypes)."""

from __future__ import annotations

import ctypes

# Never ctypes.util.find_library: it spawns processes to search for the name.
libc = ctypes.CDLL("libc.so.6", use_errno=True)
