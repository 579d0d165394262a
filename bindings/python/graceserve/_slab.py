"""A thread-safe slab: Python objects keyed by small integers that travel through C as
``void *userdata``. Key 0 is never handed out (it would arrive as NULL)."""

from __future__ import annotations

import threading
from typing import Dict, Generic, List, Optional, TypeVar

T = TypeVar("T")


class Slab(Generic[T]):
    def __init__(self) -> None:
        self._items: Dict[int, T] = {}
        self._next = 1
        self._lock = threading.Lock()

    def allocate(self, item: T) -> int:
        with self._lock:
            key = self._next
            self._next += 1
            self._items[key] = item
            return key

    def get(self, key: Optional[int]) -> Optional[T]:
        # A plain dict read is atomic under the GIL; no lock on the request path.
        return self._items.get(key or 0)

    def deallocate(self, key: Optional[int]) -> Optional[T]:
        with self._lock:
            return self._items.pop(key or 0, None)

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> List[T]:
        """A snapshot of the items."""
        with self._lock:
            return list(self._items.values())
