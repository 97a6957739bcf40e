"""The terminal's displays of the one progress stream: a bar on a terminal, lines elsewhere.

The engine computes everything a display shows, once (`solvers.Progress` carries the rate
and the estimated time left, `control.pace`); the batch and the video compute their own
jobs' and frames' pace with the same function. These classes only show it:

* on a terminal, a tqdm bar (nested bars for a video's frames and the frame in flight);
* off a terminal (a log file, a pipe, CI), plain lines, at most one every `interval`
  seconds plus the last, with no cursor movement (`\\x1b[A`) and no carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, Optional


def _clock(seconds: Optional[float]) -> str:
    """Seconds as `12 s`, `3 min 05 s` or `2 h 10 min`; `?` when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Bar:
    """One display: `show(done, ...)` draws what it is given, on a terminal or as lines.

    Args:
        quiet: Show nothing.
        total: The count `done` goes to.
        unit: What is counted (`eval`, `job`, `frame`).
        desc: The label in front.
        stream: Where to draw (stderr by default).
        nested: On a terminal, a second bar under another one, cleared when closed.
        interval: Off a terminal, the least seconds between two lines.
        terminal: Draw as on a terminal, or as lines; the stream's own `isatty()` when
            None.
    """

    def __init__(self, quiet: bool, total: int, unit: str, desc: str = "", *, stream=None,
                 nested: bool = False, interval: float = 10.0,
                 terminal: Optional[bool] = None):
        self.quiet = quiet
        self.total = total
        self.unit = unit
        self.desc = desc
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tqdm = None
        self.n = 0
        self.last_line = None  # When the last plain line was written.
        self.pending = None  # A plain line not written yet (throttled).
        self.fields = None
        if terminal is None:
            terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.terminal = terminal
        self.nested = nested

    def _open(self):
        """The tqdm bar, made at the first `show`: lines written before it (the "Running
        ..." line) come first, and a display that never shows anything draws nothing."""
        if self.tqdm is None and not self.quiet and self.terminal:
            from tqdm import tqdm

            self.tqdm = tqdm(total=self.total, unit=self.unit, desc=self.desc,
                             file=self.stream, dynamic_ncols=True,
                             position=1 if self.nested else None, leave=not self.nested,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"
                                        " [{elapsed}{postfix}]")
        return self.tqdm

    def show(self, done: int, *, desc: Optional[str] = None,
             fields: Optional[Dict[str, str]] = None, rate: float = 0.0,
             eta: Optional[float] = None, force: bool = False) -> None:
        """Draws `done` of `total`, with `fields` after it, and the given rate and ETA.

        Args:
            done: Units finished.
            desc: A new label, or None to keep it.
            fields: Ordered name -> text pairs (`loss=1.2e6`).
            rate: Units per second (computed by the producer).
            eta: Seconds left (computed by the producer), or None.
            force: Off a terminal, write the line now whatever the interval.
        """
        if self.quiet:
            return
        self.desc = desc or self.desc
        self.n = min(done, self.total)
        self.fields = fields
        shown = dict(fields or {})
        if rate:
            shown["rate"] = f"{rate:.3g} {self.unit}/s"
        if eta is not None:
            shown["ETA"] = _clock(eta)
        if self._open() is not None:
            self.tqdm.set_description(self.desc, refresh=False)
            # An ordered mapping: tqdm sorts keyword arguments alphabetically.
            self.tqdm.set_postfix(shown, refresh=False)
            if self.n != self.tqdm.n:
                self.tqdm.update(self.n - self.tqdm.n)
            else:  # Only the fields changed (a job started): update() would not redraw.
                self.tqdm.refresh()
            return
        text = ", ".join(f"{k} {v}" for k, v in shown.items())
        self.pending = f"{self.desc}: {self.n}/{self.total} {self.unit}s" + (
            f", {text}" if text else "")
        now = time.monotonic()
        if force or self.last_line is None or now - self.last_line >= self.interval:
            self._flush_line(now)

    def _flush_line(self, now=None) -> None:
        if self.pending is not None:
            print(self.pending, file=self.stream, flush=True)
            self.pending = None
            self.last_line = time.monotonic() if now is None else now

    def write(self, message: str) -> None:
        """Prints a line above the bar (nothing when quiet)."""
        if self.quiet:
            return
        if self.tqdm is not None:
            self.tqdm.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        """Ends the display: the bar closed, or the last line written."""
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None
        elif not self.quiet:
            self._flush_line()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ProgressBar(Bar):
    """The display of one run's `Progress` events: evaluations, then the losses, total first.

    Use as a context manager (closed however the run ends). `on_progress` is called with
    each `Progress` after it is shown (e.g. `--save-every`). Call `done(evaluations)` at
    the end: the last evaluations (a line search that met the budget) come after the last
    iteration's progress.
    """

    def __init__(self, quiet: bool, total_evals: int, on_progress: Optional[Callable] = None,
                 desc: str = "iteration 0", **options):
        super().__init__(quiet, total_evals, "eval", desc, **options)
        self.on_progress = on_progress
        self.label = ""  # Shown before the iteration: a batch's job, a video's frame.

    def __call__(self, progress) -> None:
        stage = f"stage {progress.stage}/{progress.stages}, " if progress.stages > 1 else ""
        label = self.label + ": " if self.label else ""
        fields = {"loss": f"{progress.loss:.4g}"}
        fields.update({kind: f"{value:.3g}" for kind, value in (
            progress.kind_losses or {"content": progress.content_loss,
                                     "style": progress.style_loss,
                                     "tv": progress.tv_loss}).items()})
        if progress.max_evals and progress.max_evals != self.total:
            self.total = progress.max_evals
            if self.tqdm is not None:
                self.tqdm.total = progress.max_evals
        self.show(progress.evaluations, desc=f"{label}{stage}iteration {progress.iteration}",
                  fields=fields, rate=progress.rate, eta=progress.eta)
        if self.on_progress is not None:
            self.on_progress(progress)

    def done(self, evaluations: int) -> None:
        """Moves the display to the evaluations the run spent in all."""
        if self.quiet:
            return
        self.show(evaluations, fields=self.fields, force=True)

    @property
    def bar(self):
        """The tqdm bar on a terminal, else None (kept for callers of the old bar)."""
        return self.tqdm
