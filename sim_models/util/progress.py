"""Progress output a person can read, on a terminal and in a log file alike.

The rule, in one place: a tqdm bar only when the stream (standard error) is a terminal; anywhere else (a file,
a pipe, a notebook) one plain line when the pass ends, with the numbers the bar would have shown (the
description, items done, seconds and the last postfix: losses, accuracies ...). A bar's carriage-return
updates never reach a log file. ``enabled=False`` (the commands' ``--no-progress``) writes nothing.
``log_line`` prints a line of a long job's log (e.g. each step of `sim reproduce`) at once.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress", "is_terminal", "log_line"]


def log_line(text: str) -> None:
    """Print one line of a long job's log (a step done, a run started) and flush it, so that a log file followed
    with ``tail -f`` shows it at once and it keeps its place among the progress lines on standard error."""
    print(text, flush=True)


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed or odd streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """Progress through ``total`` items: ``update(n)``, ``set_postfix_str(text)``, ``close()`` (tqdm's names).

    On a terminal it is a tqdm bar (erased when done, ``leave=False``); elsewhere ``close()`` writes one line,
    ``"<desc>: <done>/<total> <unit>s in <seconds> s, <postfix>"``. ``stream``: default ``sys.stderr`` at the
    time of the call (as tqdm's)."""

    def __init__(self, total: int, desc: str, initial: int = 0, enabled: bool = True, stream=None,
                 unit: str = "batch"):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.postfix = ""
        self.closed = not enabled
        self._t0 = time.time()
        self.bar = None
        if enabled and is_terminal(self.stream):
            from tqdm.auto import tqdm  # deferred optional import: only on a terminal
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=self.stream)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def line(self) -> str:
        """The plain line of this pass so far (what ``close()`` writes off a terminal)."""
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "x")) else "s")
        text = f"{self.desc}: {self.n}/{self.total} {units} in {time.time() - self._t0:.1f} s"
        return text + (f", {self.postfix}" if self.postfix else "")

    def close(self) -> None:
        """End the pass: erase the bar, or write the plain line (once)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            return
        if sys.stdout is not None:  # what was printed before this pass comes first when both go to one file
            sys.stdout.flush()
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
