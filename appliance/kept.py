"""Values a process keeps for a moment: answers many requests a second would otherwise each
work out again (the staff user behind a session, a polled partial of a run in progress)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class KeptBriefly(Generic[Value]):
    """A thread-safe map whose entries count for `seconds` after they were put; stale ones
    are dropped at the next put."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[Hashable, tuple[float, Value]] = {}

    def get(self, key: Hashable) -> Value | None:
        """The value put under key in the last `seconds`, else None."""
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or time.monotonic() - kept[0] > self.seconds:
            return None
        return kept[1]

    def put(self, key: Hashable, value: Value) -> None:
        with self._lock:
            now = time.monotonic()
            self._kept = {k: v for k, v in self._kept.items() if now - v[0] <= self.seconds}
            self._kept[key] = (now, value)

    def forget(self, key: Hashable | None = None) -> None:
        """Forget one key, or everything."""
        with self._lock:
            if key is None:
                self._kept.clear()
            else:
                self._kept.pop(key, None)
