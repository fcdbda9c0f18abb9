"""A progress line on stderr for long alignments, rate-limited and dependency-free.

Nothing is printed during the first second, so small alignments (tests, the
demo) stay silent; after that the line is refreshed at most once a second on
a terminal (in place, with a carriage return) and every ten seconds
otherwise (one line each, for logs).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts units of work done out of a known total and reports the rate.

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"B: ecdh alignment with A1"``.
    total : int
        Units of work (here: point multiplications) in the whole task.
    unit : str
        Name of one unit, plural.
    enabled : bool
        Print nothing when False.
    stream : file, optional
        Where to print (stderr by default).
    """

    def __init__(self, label: str, total: int, *, unit: str = "points",
                 enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last = self._start
        self._printed = False
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._tty = False
        self._interval = 1.0 if self._tty else 10.0

    def advance(self, units: int) -> None:
        """Record `units` more done; print if it is time to."""
        self.done += units
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._start >= 1.0 and now - self._last >= self._interval:
            self._last = now
            self._print(now)

    def close(self) -> None:
        """Print the final line (only if a progress line was shown before)."""
        if self.enabled and self._printed:
            self._print(time.monotonic(), final=True)

    def _print(self, now: float, final: bool = False) -> None:
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = self.done / self.total if self.total else 1.0
        text = (f"{self.label}: {share:6.1%} ({self.done:,}/{self.total:,} {self.unit}, "
                f"{rate:,.0f}/s, {elapsed:.0f} s")
        if not final and rate > 0:
            text += f", ~{(self.total - self.done) / rate:.0f} s left"
        text += ")"
        end = "\n" if final or not self._tty else ""
        prefix = "\r" if self._tty else ""
        try:
            self.stream.write(prefix + text + end)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not fail an alignment
            self.enabled = False
        self._printed = True
