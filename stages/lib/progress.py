"""Progress for stages that take more than a few seconds, readable on a terminal and in a log file.

On a terminal: a tqdm bar. When stderr is a file or a pipe (DVC's logs, CI), a bar's carriage
returns would collapse into one unreadable line, so it prints a plain line at most every
`every` seconds, and at the end, each with the elapsed time and an estimate of what is left.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str, unit: str = "step", every: float = 10.0, stream=None,
                 enabled: bool = True):
        self.total, self.desc, self.unit, self.every = max(int(total), 1), desc, unit, every
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = self.skipped = 0
        self.start = self.last = time.monotonic()
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        ran = self.done - self.skipped  # the rate counts only work done in this run
        left = elapsed / ran * (self.total - self.done) if ran else None
        eta = "estimating" if left is None else f"about {left:.0f} s left"
        units = self.unit + ("es" if self.unit.endswith("s") else "s")
        return (f"{self.desc}: {self.done}/{self.total} {units} ({self.done / self.total:.0%}), "
                f"{elapsed:.0f} s elapsed, {eta}")

    def skip(self, n: int) -> None:
        """Work an earlier run did (a resumed embed): counted as done, not in the rate."""
        self.skipped += n
        self.update(n)

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
