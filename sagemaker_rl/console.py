"""Console: what a long-running command (a tuning run, a SageMaker job it follows) prints as it goes.

Every line starts with the time since the command began (`[0:03:12]`); a progress line is printed
again only when it changed, when a note comes with it, or once a minute.
"""

from __future__ import annotations

import time
from typing import IO

PROGRESS_INTERVAL_S = 60.0  # a progress line at least this often, even when nothing changed


class Console:
    """Timestamped lines on `out`."""

    def __init__(self, out: IO[str], *, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self._out = out
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._last_line: str | None = None
        self._last_print = 0.0

    def say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self._started)
        print(f"[{elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {text}", file=self._out, flush=True)

    def progress(self, line: str, *, note: str = "", detail: str = "") -> None:
        """`line` (with ` | note`) when it changed, a note came or a minute passed; `detail` rides along."""
        now = time.monotonic()
        if line == self._last_line and not note and now - self._last_print < self._interval_s:
            return
        extra = note or detail
        self.say(f"{line} | {extra}" if extra else line)
        self._last_line, self._last_print = line, now
