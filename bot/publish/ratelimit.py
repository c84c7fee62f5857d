"""A token bucket shared by the sending threads, so `rate` caps the whole run rather than each worker."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts of at most `burst`. rate <= 0: no cap."""

    def __init__(self, rate: float, burst: float = 1.0):
        self.rate = rate
        self.capacity = max(1.0, burst)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self.rate
            time.sleep(wait)
