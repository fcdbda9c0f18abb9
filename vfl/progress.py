"""A dependency-free progress display for training, written to stderr.

On a terminal the current epoch's batch counter redraws in place; in a log
(no terminal) only the finished-epoch lines appear.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["EpochProgress"]


class EpochProgress:
    """Shows ``epoch e/E [#####.....] b/B`` and one line per finished epoch.

    An epoch's time runs from its start (:meth:`start`); what came before the
    first epoch (connecting, the key, the alignment) is one line of its own.
    """

    def __init__(self, epochs: int, stream: TextIO | None = None, width: int = 24) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.perf_counter()
        self._epoch_started = self._started

    def start(self, epoch: int) -> None:
        """Epoch `epoch` starts now (the first start also reports the preparation)."""
        now = time.perf_counter()
        if epoch == 1 and self._epoch_started == self._started:
            self.stream.write(f"  ready to train after {now - self._started:.1f} s "
                              "(peers, key, alignment)\n")
            self.stream.flush()
        self._epoch_started = now

    def batch(self, epoch: int, done: int, total: int) -> None:
        """Batch `done` of `total` in `epoch` has finished."""
        if not self.tty:
            return
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r  epoch {epoch:>3}/{self.epochs} [{bar}] {done}/{total} batches")
        self.stream.flush()

    def epoch(self, epoch: int, loss: float) -> None:
        """Epoch `epoch` finished with mean training loss `loss`."""
        now = time.perf_counter()
        line = (f"  epoch {epoch:>3}/{self.epochs}  loss {loss:.6g}  "
                f"({now - self._epoch_started:.1f} s)")
        self._epoch_started = now
        self.stream.write(("\r" + line.ljust(self.width + 40)) if self.tty else line)
        self.stream.write("\n")
        self.stream.flush()
