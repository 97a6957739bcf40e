"""The command-line kit both commands (`nst-keras` and `nst-keras figure`) share.

Argument types, the help formatter, the checks made before any model is built, the progress
bar, and the one run guard: signals, errors and exit codes, and what is saved when a run
stops early. With `cli.py` and `figures.py`, the only modules that print.

Exit codes: 0 done; 1 the run failed (a non-finite loss, out of memory; what was computed is
saved); 2 bad usage or input (one line, nothing computed); 130 / 143 interrupted by SIGINT /
SIGTERM (what was computed is saved).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
from typing import Callable, Optional, Sequence

PROG = "nst-keras"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line `UsageError`s (argparse prints the whole
    usage before an error; one line is easier to read)."""

    def error(self, message):
        raise UsageError(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once and readably: lists comma-joined, none where there is none.

    An option whose help already says its default (`(default: ...)`) is left as it is.
    """

    def _get_help_string(self, action):
        help_text = action.help or ""
        if "(default" in help_text or action.default in (None, argparse.SUPPRESS, False):
            return help_text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            default = action.default
            if isinstance(default, (tuple, list)):
                default = ",".join(map(str, default))
            return f"{help_text} (default: {default})".replace("%", "%%")
        return help_text


def parse_layers(text):
    """`--content-layers` / `--style-layers`: a comma-separated list as a tuple."""
    layers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not layers and text.strip():
        raise argparse.ArgumentTypeError(f"invalid layer list: {text!r}")
    return layers


def parse_weights(text):
    """`--weights`: `none` becomes None; `imagenet` and paths stay."""
    return None if text.lower() == "none" else text


def positive_int(text):
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text):
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def non_negative_float(text):
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def check_config(config) -> None:
    """Checks what can be checked before any model is built: layers, weights path, device.

    Raises:
        UsageError: Naming the problem and the value.
    """
    from nst_keras.features import resolve_layer_name

    for layer in config.content_layers + config.style_layers:
        try:
            resolve_layer_name(layer, config.model)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if config.weights not in ("imagenet", None) and not os.path.isfile(config.weights):
        raise UsageError(
            "the weights file does not exist; pass imagenet, none or the path of a weights "
            f"file. Received: --weights {config.weights}"
        )
    if config.device == "gpu":
        from nst_keras.runtime import resolve_device

        import_tensorflow_quietly()
        try:
            resolve_device(config.device)
        except ValueError:
            raise UsageError(
                "no GPU is visible to TensorFlow on this machine; use --device cpu or auto. "
                "Received: --device gpu"
            ) from None


def folder_is_writable(folder: str) -> bool:
    """Whether a file can be created in `folder`, by really creating one: permission bits
    say nothing for root or a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output(output: str, inputs: Sequence[str]) -> None:
    """Checks the output path before hours of compute.

    Raises:
        UsageError: If the folder is missing or not writable, the extension unknown, the
            path a folder, or the same file as an input.
    """
    from nst_keras.images import image_format_for, is_url

    try:
        image_format_for(output)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if os.path.isdir(output):
        raise UsageError(f"the output path is a directory. Received: -o {output}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"the output folder does not exist. Received: -o {output}")
    if not folder_is_writable(folder):
        raise UsageError(f"the output folder is not writable. Received: -o {output}")
    for source in inputs:
        if source and not is_url(source) and os.path.abspath(source) == os.path.abspath(output):
            raise UsageError(f"the output would overwrite an input image. Received: -o {output}")


def read_image(label: str, source, height: Optional[int] = None, **resize):
    """`images.load_image`, every failure a one-line `UsageError` naming `label` and the file."""
    from nst_keras import images

    if not images.is_url(source) and not os.path.exists(source):
        raise UsageError(f"the {label} does not exist: {source}")
    try:
        return images.load_image(source, height, **resize)
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"cannot read the {label} {source}: {reason}") from None


def say(quiet: bool, message: str) -> None:
    """Prints `message` on stderr unless `quiet`."""
    if not quiet:
        print(message, file=sys.stderr)


class ProgressBar:
    """The tqdm bar of one optimisation: evaluations done, then the losses, total first.

    Use as a context manager (the bar is closed however the run ends). `on_progress` is
    called with each `Progress`, after the bar is updated (e.g. `--save-every`).
    """

    def __init__(self, quiet: bool, total_evals: int, on_progress: Optional[Callable] = None):
        self.bar = None
        self.on_progress = on_progress
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total_evals, unit="eval", desc="iteration 0",
                            file=sys.stderr, dynamic_ncols=True)

    def __call__(self, progress):
        if self.bar is not None:
            stage = f"stage {progress.stage}/{progress.stages}, " if progress.stages > 1 else ""
            self.bar.set_description(f"{stage}iteration {progress.iteration}")
            # An ordered mapping: tqdm sorts keyword arguments alphabetically.
            self.bar.set_postfix({
                "loss": f"{progress.loss:.4g}", "content": f"{progress.content_loss:.3g}",
                "style": f"{progress.style_loss:.3g}", "tv": f"{progress.tv_loss:.3g}",
            }, refresh=False)
            self.bar.update(min(progress.evaluations, self.bar.total) - self.bar.n)
        if self.on_progress is not None:
            self.on_progress(progress)

    def write(self, message: str) -> None:
        """Prints a line above the bar (nothing when quiet)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


@contextlib.contextmanager
def weights_errors_as_usage(config):
    """Turns the errors of loading VGG weights into one-line `UsageError`s.

    No network for the ImageNet weights: which file to put where, or `--weights PATH`. A
    corrupt file or one of another architecture: the file and the reason.
    """
    from nst_keras.features import IMAGENET_NOTOP_FILES

    try:
        yield
    except Exception as error:
        text = str(error)
        if config.weights == "imagenet" and (
            "URL fetch failure" in text or "cannot download the ImageNet" in text
        ):
            raise UsageError(
                f"cannot download the ImageNet weights of {config.model} (no network?); put "
                f"{IMAGENET_NOTOP_FILES[config.model]} in ~/.keras/models/ or pass --weights PATH"
            ) from None
        if config.weights not in ("imagenet", None) and isinstance(
            error, (ValueError, OSError, KeyError, TypeError)
        ):
            reason = text.splitlines()[0].rstrip(" .:") if text else type(error).__name__
            raise UsageError(
                f"cannot load the weights file into {config.model} (include_top=False); is it "
                f"a file for this model? ({reason}) Received: --weights {config.weights}"
            ) from None
        raise


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null: TensorFlow's C++ start-up lines bypass Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras without their start-up lines (oneDNN, CUDA, cuInit).

    TF_CPP_MIN_LOG_LEVEL=3 silences TensorFlow's later C++ logging; the lines printed while
    it loads come before its logging is set up and go straight to file descriptor 2, so
    that is pointed at /dev/null for the import. A user's TF_CPP_MIN_LOG_LEVEL is kept.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA's probe prints once, here.


def _install_signal_handlers(received):
    """Makes SIGINT and SIGTERM raise KeyboardInterrupt, so what was computed is saved.

    `received` records which signal came. A second Ctrl-C exits at once (files are written
    atomically, so that never leaves a half-written one).
    """

    def on_signal(signum, frame):
        received.append(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt()

    return {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }


def run_guarded(run: Callable[[], int], *, debug: bool,
                save_partial: Callable[[Optional[object]], str]) -> int:
    """Runs `run()` the way every command does, and returns its exit code.

    SIGINT and SIGTERM raise KeyboardInterrupt; a run stopped by one, or by a
    `StyleTransferError` (a non-finite loss, out of memory), has `save_partial(best_image)`
    save what it can and say what it saved (`best_image` is None when none is known), then
    exits 130 / 143 or 1. A `UsageError` is one line and exit 2; any other error one line
    and exit 1 (the traceback only with `debug`).

    Args:
        run: Does the work; returns the exit code.
        debug: Re-raise unexpected errors instead of the one-line message.
        save_partial: Saves what was computed; returns what to tell the user about it.
    """
    from nst_keras.errors import OutOfMemoryError, StyleTransferError

    received = []
    previous = _install_signal_handlers(received)
    try:
        if not debug:
            import_tensorflow_quietly()
        return run()
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as error:  # errors.Interrupted too, with the best image.
        terminated = signal.SIGTERM in received
        saved = save_partial(getattr(error, "best_image", None))
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}; {saved}",
              file=sys.stderr)
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
    except StyleTransferError as error:
        message = str(error)
        if isinstance(error, OutOfMemoryError) and "--height" not in message:
            message += "; try a smaller --height"
        print(f"{PROG}: error: {message}; {save_partial(error.best_image)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # The last resort: one line, unless --debug.
        if debug:
            raise
        first_line = str(error).splitlines()[0] if str(error) else ""
        print(f"{PROG}: error: {type(error).__name__}: {first_line} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
