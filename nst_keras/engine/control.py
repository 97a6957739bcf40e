"""What a running render reads from outside and what it tells: the stop token and the pace.

One `StopToken` per run. Whoever may end the run early sets it: the terminal's SIGINT or
SIGTERM (`console.SignalGuard`), the app's Stop button, a batch being cancelled, a video
being interrupted. The engine only reads it: the solvers' `Monitor` before every
evaluation, a tiled evaluation between its tiles, the render between its stages. A run
that sees it set ends at that boundary and returns its best image with the token's reason;
nothing is raised through SciPy or TensorFlow. The shape is Keras' `Model.stop_training`:
a flag that one side sets and the loop checks at a boundary.

`pace(done, total, seconds)` is the one place where a rate and an estimated time left are
computed, for evaluations, jobs and frames alike; the displays (the terminal's bar, the
batch and video bars, the app's page) only show what it computed.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional


class StopRequested(Exception):
    """Raised inside the engine at a boundary where the stop token was found set.

    Internal: the solvers' `Monitor` turns it into a normal end of the run (the best image,
    and the token's reason as the stop reason). It is not a KeyboardInterrupt.
    """


class StopToken:
    """A request to end a run at its next evaluation boundary; thread-safe.

    Attributes:
        reason: Why the run was asked to stop (`"interrupted"`, `"terminated"`,
            `"stopped"`, ...), or None while it was not.
    """

    def __init__(self):
        self._event = threading.Event()
        self.reason: Optional[str] = None

    def request(self, reason: str = "stopped") -> None:
        """Asks the run to stop; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def check(self) -> None:
        """Raises `StopRequested` if a stop was asked for (call it at a boundary)."""
        if self._event.is_set():
            raise StopRequested(self.reason)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until a stop is asked for, or `timeout` seconds; returns whether it was."""
        return self._event.wait(timeout)


@dataclasses.dataclass(frozen=True)
class Pace:
    """How fast work goes and how long the rest should take.

    Attributes:
        rate: Units per second so far (0 before the first one is done).
        eta: Seconds left at that rate (None before the first one is done).
    """

    rate: float
    eta: Optional[float]


def pace(done: float, total: float, seconds: float) -> Pace:
    """The rate of `done` units in `seconds`, and the time the rest of `total` needs at it.

    Args:
        done: Units finished (evaluations, jobs, frames).
        total: Units in all.
        seconds: Wall time spent on the `done` units.

    Returns:
        A `Pace`: rate = done / seconds, eta = (total - done) / rate.
    """
    if done <= 0 or seconds <= 0:
        return Pace(0.0, None)
    rate = done / seconds
    return Pace(rate, max(0.0, total - done) / rate)
