"""Rate and time left of a long loop (the zoo builder's model-steps, the trainer's steps)."""

import time


class Progress:
    """Counts work done in this process against a total; work done before (a resume) is only subtracted.

    The rate counts this process's work alone, so a resumed job does not report the skipped part as speed.
    """

    def __init__(self, total: float, done_before: float = 0):
        self.total, self.done_before, self.done = total, done_before, 0.0
        self.start = time.time()

    def skip(self, amount: float) -> None:
        """Work found already done (resumed from a checkpoint or a finished part)."""
        self.done_before += amount

    def advance(self, amount: float) -> None:
        self.done += amount

    @property
    def share_done_here(self) -> float:
        """The share of the total this process did (1 for an empty total: there was nothing to do elsewhere)."""
        return self.done / self.total if self.total else 1.0

    @property
    def rate(self) -> float:
        """Units per second in this process."""
        return self.done / max(time.time() - self.start, 1e-9)

    def eta(self) -> str:
        """Time left at the current rate, as HH:MM:SS (--:--:-- before any work)."""
        if not self.done:
            return "--:--:--"
        left = max(self.total - self.done_before - self.done, 0) / self.rate
        return time.strftime("%H:%M:%S", time.gmtime(left))
