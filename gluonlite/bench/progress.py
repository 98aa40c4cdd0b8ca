"""A progress bar on stderr, so that stdout holds only the header and the tables.

On a terminal the bar redraws in place; in a log (CI, ``make bench | tee``) it prints one
line per suite instead of hundreds of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._started = time.perf_counter()
        self._suite: str | None = None

    def step(self, suite: str, label: str) -> None:
        """Announce the case about to run (call before it, so slow cases show their name)."""
        if not self.tty:
            if suite != self._suite:
                print(f"[{self.done}/{self.total}] {suite} ...", file=self.stream, flush=True)
                self._suite = suite
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._started
        text = f"\r[{bar}] {self.done}/{self.total} {elapsed:5.0f}s  {suite}: {label}"
        print(text[:118].ljust(118), end="", file=self.stream, flush=True)

    def clear(self) -> None:
        """Erase the bar, so that a table printed to stdout starts on a clean line."""
        if self.tty:
            print("\r" + " " * 118 + "\r", end="", file=self.stream, flush=True)

    def advance(self) -> None:
        self.done += 1

    def close(self) -> None:
        elapsed = time.perf_counter() - self._started
        end = f"done: {self.done} cases in {elapsed:.0f}s"
        print(("\r" + end.ljust(118)) if self.tty else end, file=self.stream, flush=True)
