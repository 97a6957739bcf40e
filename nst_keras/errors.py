"""The ways a run can stop early. Each carries the best image seen so far (or None).

Raised by the solvers (`nst_keras.solvers`) and the run (`nst_keras.run`); the command line
catches them in one place (`console.run_guarded`), saves `best_image` and picks the exit code.
"""

from __future__ import annotations


class StyleTransferError(RuntimeError):
    """A run that stopped early; `best_image` holds the best image seen (RGB uint8, or None)."""

    def __init__(self, message, best_image=None):
        super().__init__(message)
        self.best_image = best_image


class NonFiniteLossError(StyleTransferError):
    """The loss or its gradient became NaN or infinite."""


class OutOfMemoryError(StyleTransferError):
    """The run needs, or ran out of, more memory than there is."""


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C, SIGTERM); `best_image` holds the best image seen."""

    def __init__(self, message="interrupted", best_image=None):
        super().__init__(message)
        self.best_image = best_image
