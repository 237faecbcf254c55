"""Runs a producer ahead of its consumer on a background thread.

Training on a zoo kept on disk reads and places each step's batch here, while
the device computes the steps before it.
"""

import queue
import threading
from collections.abc import Callable
from typing import Any

_POLL_S = 0.1  # how often a blocked producer checks whether it was closed


class Prefetcher:
    """`next(prefetcher)` returns `produce(i)` for i = first, first + 1, ... < stop, computed on a thread.

    The thread runs at most `depth` items ahead. An exception in `produce` is raised by the `next` that
    would have returned its item. Close it (or leave its `with` block) to stop the thread.
    """

    def __init__(self, produce: Callable[[int], Any], first: int, stop: int, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._remaining = max(0, stop - first)
        self._thread = threading.Thread(target=self._run, args=(produce, first, stop), name="prefetch", daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[int], Any], first: int, stop: int) -> None:
        for i in range(first, stop):
            try:
                entry = (True, produce(i))
            except BaseException as error:  # handed to the consumer, which raises it
                entry = (False, error)
            if not self._put(entry) or not entry[0]:
                return

    def _put(self, entry: tuple[bool, Any]) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._remaining == 0:
            raise StopIteration
        ok, value = self._queue.get()
        if not ok:
            self._remaining = 0
            raise value
        self._remaining -= 1
        return value

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
