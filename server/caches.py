"""Small per-process caches: bounded dicts that many worker threads read and fill."""

from __future__ import annotations

import threading
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

_LOCK = threading.Lock()


def bounded_put(cache: dict[K, V], key: K, value: V, size: int) -> None:
    """Add to ``cache``, its oldest entries out first when it holds ``size``. Reads need no
    lock; writes (cache misses) take one, because evicting iterates the dict, and another
    thread's write during that iteration would raise."""
    with _LOCK:
        while len(cache) >= size:
            cache.pop(next(iter(cache)))
        cache[key] = value
