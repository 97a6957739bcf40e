"""The ways a run can stop early. Each carries the best image seen so far (or None).

Raised by the solvers (`nst_keras.engine.solvers`) and the render (`nst_keras.render`); the command
line catches them in one place (`console.run_guarded`), saves `best_image` and picks the exit
code. The plan (`nst_keras.plan`) refuses bad input before any work with `ValueError`s:
`InputError` for an input that cannot be used, `NotEnoughMemory` for a size that does not fit.
"""

from __future__ import annotations


class StyleTransferError(RuntimeError):
    """A run that stopped early; `best_image` holds the best image seen (RGB uint8, or None)."""

    def __init__(self, message, best_image=None):
        super().__init__(message)
        self.best_image = best_image


class NonFiniteLossError(StyleTransferError):
    """The loss or its gradient became NaN or infinite."""


class DivergedError(StyleTransferError):
    """A gradient method's loss rose far above its start, or never fell below it."""


class OutOfMemoryError(StyleTransferError):
    """The run needs, or ran out of, more memory than there is."""


class Interrupted(StyleTransferError):
    """A run ended by a stop with no result to return: `render.render` with a stop token
    that was set before the first evaluation (`best_image` None), or, in the Python API
    where no signal guard turns Ctrl-C into a stop token, a KeyboardInterrupt (with the
    best image seen). A stop token set during a run is not an error: the render returns
    its best image with `Result.stopped`."""

    def __init__(self, message="interrupted", best_image=None):
        super().__init__(message, best_image)


class InputError(ValueError):
    """An input (an image, a mask, the init image) cannot be used; the message names it.

    Attributes:
        input: Which input: `"content"`, `"style"`, `"style 2"`, `"mask 1"`, `"init"`.
    """

    def __init__(self, message, input_name: str = ""):
        super().__init__(message)
        self.input = input_name


class NotEnoughMemory(ValueError):
    """The planned run does not fit in memory; refused before anything is computed.

    Attributes:
        fits: The largest height that fits (0 if none).
    """

    def __init__(self, message, fits: int = 0):
        super().__init__(message)
        self.fits = fits


def first_line(error: BaseException) -> str:
    """The first line of an error's message, for a one-line report ("" when it has none).

    A message's first non-blank line, stripped: TensorFlow's and Keras' errors go on for
    pages, and one line is what a user reads. A caller that needs something when the
    message is empty adds the type's name (`first_line(error) or type(error).__name__`).
    """
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return ""
