"""The package's one progress bar: a line on stderr, redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 30


class Progress:
    """A one-line progress bar: ``label [#####     ] done/total (rate/s)``.

    On a terminal the line is redrawn in place (at most every ``interval``
    seconds); elsewhere it is printed anew at each tenth of ``total``, unless
    ``terminal_only``, which shows nothing there. ``scale`` and ``unit`` show
    counts in other units (bytes as MB: ``scale=1e6, unit="MB"``). A ``total``
    of 0 (unknown) shows the count without a bar. ``initial``: the count
    already done before this run (a resumed download), left out of the rate.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None, *,
                 unit: str = "", scale: float = 1.0, interval: float = 0.0, terminal_only: bool = False,
                 initial: int = 0) -> None:
        self.total, self.label, self.done, self.initial = total, label, initial, initial
        self.stream = stream or sys.stderr
        terminal = enabled and self.stream.isatty()
        self.enabled = terminal if terminal_only else enabled and total > 0
        self.tty = self.enabled and terminal
        self.unit, self.scale, self.interval = unit, scale, interval
        self.start = time.perf_counter()
        self._last_draw = float("-inf")
        self._last_decile = -1

    def update(self, count: int = 1) -> None:
        """Advance by ``count`` and redraw."""
        self.update_to(self.done + count)

    def update_to(self, done: int) -> None:
        """Set the count to ``done`` (e.g. bytes received so far) and redraw."""
        self.done = done
        if not self.enabled:
            return
        now = time.perf_counter()
        finished = bool(self.total) and self.done >= self.total
        if self.tty:
            if now - self._last_draw < self.interval and not finished:
                return
        else:
            decile = int(self.done / self.total * 10)
            if decile == self._last_decile and not finished:
                return
            self._last_decile = decile
        self._last_draw = now
        line = self._line(now - self.start)
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def _count(self, value: float) -> str:
        return f"{value / self.scale:.1f}" if self.scale != 1 else str(value)

    def _line(self, elapsed: float) -> str:
        rate = (self.done - self.initial) / self.scale / elapsed if elapsed > 0 else 0.0
        unit = f" {self.unit}" if self.unit else ""
        speed = f"({rate:.1f}{unit}/s)"
        if not self.total:
            return f"{self.label}: {self._count(self.done)}{unit} {speed}"
        bar = "#" * int(min(1.0, self.done / self.total) * _BAR_WIDTH)
        return f"{self.label} [{bar:<{_BAR_WIDTH}}] {self._count(self.done)}/{self._count(self.total)}{unit} {speed}"

    def close(self) -> None:
        """End the line."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
