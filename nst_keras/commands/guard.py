"""The command line's signal guard: what SIGINT and SIGTERM do, in one place.

`SignalGuard` owns the run's `control.StopToken`. While a render runs (`guard.stoppable()`),
SIGINT and SIGTERM only set the token: the render ends at its next evaluation boundary
and returns its best image, which the front-end delivers like any result. Outside a
render (reading the inputs, building the model) a signal raises KeyboardInterrupt here,
the one place that does, and `console.run_guarded` reports it. Inside `critical()` (a result's
files being written) a signal waits until the block ends. A second Ctrl-C exits at once:
files are written atomically, so that never leaves a half-written one.

Exit codes: 0 done; 1 failed (what was computed is saved); 2 bad usage or input (one
line, nothing computed); 130 / 143 stopped by SIGINT / SIGTERM (the best image delivered).
"""

from __future__ import annotations

import contextlib
import signal
import sys

from nst_keras.engine.control import StopToken

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143

#: The stop token's reason for each signal.
SIGNAL_REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


class SignalGuard:
    """Turns SIGINT and SIGTERM into the run's stop token, or into KeyboardInterrupt
    outside a render; holds them back while a result is written.

    Attributes:
        received: The signals that came, in order.
        token: The `control.StopToken` that a signal sets during `stoppable()`.
    """

    def __init__(self):
        self.received = []
        self.depth = 0
        self.pending = False
        self.rendering = 0
        self.previous = {}
        self.token = StopToken()

    def _on_signal(self, signum, frame):
        self.received.append(signum)
        if signum == signal.SIGINT:  # A second Ctrl-C: Python's default, at once.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        self.token.request(SIGNAL_REASONS.get(signum, "stopped"))
        if self.rendering:
            return  # The render sees the token at its next boundary.
        if self.depth:
            self.pending = True
            return
        raise KeyboardInterrupt()

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self._on_signal)
                         for signum in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False

    @contextlib.contextmanager
    def stoppable(self):
        """A render: inside, a signal only sets the stop token. Yields the token.

        A signal that came before the block (while planning) is not lost: the token is
        already set, and the render stops before its first evaluation.
        """
        self.rendering += 1
        try:
            yield self.token
        finally:
            self.rendering -= 1

    @contextlib.contextmanager
    def critical(self):
        """A block that a signal does not interrupt; the signal is raised after it (outside a
        render) or left in the token (inside one)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending and not self.rendering:
            self.pending = False
            raise KeyboardInterrupt()

    @property
    def terminated(self) -> bool:
        """Whether SIGTERM came (exit 143 rather than 130)."""
        return signal.SIGTERM in self.received

    @property
    def stop_code(self) -> int:
        """The exit code of a run that a signal stopped: 143 after SIGTERM, else 130."""
        return EXIT_SIGTERM if self.terminated else EXIT_SIGINT

    def stopped(self, prog: str, what: str) -> int:
        """Says that a signal stopped the run and what was kept; returns 130 or 143."""
        print(f"{prog}: {'terminated' if self.terminated else 'interrupted'}; {what}",
              file=sys.stderr)
        return self.stop_code
