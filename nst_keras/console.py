"""The command-line kit every command (`nst-keras`, `figure`, `batch`, ...) shares.

Options built from `StyleConfig`'s field metadata (`add_config_options`), the one map from
field names to option names for errors (`as_usage`), the output checks, the progress bar,
the one render-and-deliver path of a planned job (`render_and_save`), and the one run
guard: signals, errors and exit codes, and what is saved when a run stops early. With the
command modules, the only modules that print.

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

from nst_keras.runtime import import_tensorflow_quietly  # noqa: E402,F401  (re-exported)

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
        if isinstance(action, argparse.BooleanOptionalAction) and "(default" not in help_text:
            return f"{help_text} (default: {'on' if action.default else 'off'})"
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


def parse_layer_weights(text):
    """`--content-layer-weights` / `--style-layer-weights`: a name (equal, gatys) or numbers
    (256,64,16,4,1 or 256:64:16:4:1); the count is checked against the layers later."""
    from nst_keras.config import checked_layer_weights

    try:
        return checked_layer_weights(text, "layer weights")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected equal, gatys or numbers >= 0 (not all 0) such as 256,64,16,4,1, got {text!r}"
        ) from None


def parse_weights(text):
    """`--weights`: `none` becomes None; `imagenet` and paths stay."""
    return None if text.lower() == "none" else text


def _integer_at_least(text, minimum: int) -> int:
    """`text` as an integer >= `minimum`, or the argparse error saying what was expected."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text):
    """An argparse type: an integer >= 1."""
    return _integer_at_least(text, 1)


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


def preset_in(argv) -> tuple:
    """(name, StyleConfig) of the preset `--preset` names in `argv` (the book's when none),
    so that a parser can show that preset's values as its defaults.

    Raises:
        UsageError: If the preset is unknown.
    """
    from nst_keras.config import preset

    probe = Parser(add_help=False)
    probe.add_argument("--preset", default="book")
    known, _ = probe.parse_known_args(argv)
    try:
        return known.preset, preset(known.preset)
    except ValueError as error:
        raise as_usage(error) from None


def non_negative_int(text):
    """An argparse type: an integer >= 0."""
    return _integer_at_least(text, 0)


def height_or_auto(text):
    """`--height`: an integer >= 1, or `auto`."""
    return "auto" if text == "auto" else positive_int(text)


#: How each `kind` of `StyleConfig` field metadata is parsed: (argparse type, nargs).
OPTION_TYPES = {
    "str": (str, None),
    "int>=1": (positive_int, None),
    "int>=0": (non_negative_int, None),
    "float>0": (positive_float, None),
    "float>=0": (non_negative_float, None),
    "floats>0": (positive_float, "+"),
    "floats>=0": (non_negative_float, "+"),
    "layers": (parse_layers, None),
    "layer_weights": (parse_layer_weights, None),
    "weights": (parse_weights, None),
    "height": (height_or_auto, None),
}


def config_fields():
    """`StyleConfig`'s fields by name, in order."""
    import dataclasses

    from nst_keras.config import StyleConfig

    return {f.name: f for f in dataclasses.fields(StyleConfig)}


def add_config_options(parser, defaults, *, fields=None, groups=None, preset_defaults=False,
                       overrides=None):
    """Adds an option for each `StyleConfig` field, from the field's metadata.

    Args:
        parser: An `argparse.ArgumentParser`.
        defaults: The `StyleConfig` whose values are the defaults shown and used (a
            preset's).
        fields: The field names to offer; every field when None.
        groups: Group name -> argument group to put each option in (created when
            missing); the parser itself when None.
        preset_defaults: Leave an option out of the parsed arguments when it is not given,
            and say "(default: the preset's)": for a command whose settings start from a
            preset chosen later (`figure`).
        overrides: Field name -> a default of the command's own, shown as such.
    """
    from nst_keras.config import option_name

    for name, field in config_fields().items():
        if fields is not None and name not in fields:
            continue
        meta = field.metadata
        target = parser
        if groups is not None:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        overrides = overrides or {}
        if name in overrides:
            default, help_text = overrides[name], meta["help"]
        elif preset_defaults:
            default, help_text = argparse.SUPPRESS, meta["help"] + " (default: the preset's)"
        else:
            default, help_text = getattr(defaults, name), meta["help"]
        kwargs = {"dest": name, "default": default, "help": help_text}
        if meta["kind"] == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kind, nargs = OPTION_TYPES[meta["kind"]]
            kwargs["type"] = kind
            if nargs:
                kwargs["nargs"] = nargs
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        target.add_argument(option_name(name), **kwargs)


def config_changes(args, fields=None) -> dict:
    """The `StyleConfig` fields that parsed options set (those added with
    `preset_defaults` only when given)."""
    return {name: getattr(args, name) for name in config_fields()
            if (fields is None or name in fields) and hasattr(args, name)}


#: Names in library messages that are not `StyleConfig` fields -> the command line's words.
INPUT_WORDS = {"style": "STYLE", "content": "CONTENT", "masks": "--style-mask",
               "output": "-o", "preset": "--preset",
               # `video`'s inputs (videoio, video.plan_video):
               "source": "IN", "frames_dir": "--frames-dir", "folder": "--frames-dir",
               "flow": "--flow", "start": "--start", "end": "--end", "every": "--every"}


def as_usage(error) -> "UsageError":
    """A library error (naming `StyleConfig` fields and inputs) in the command line's words.

    The one place where field names become option names: "`style_scale`" and
    "Received: style_scale=0.5" become "--style-scale" and "Received: --style-scale 0.5";
    "try height=512" becomes "try --height 512".
    """
    import re

    from nst_keras.config import option_name

    words = {name: option_name(name) for name in config_fields()}
    words.update(INPUT_WORDS)
    message = str(error)
    message = re.sub(r"`(\w+)`", lambda m: words.get(m.group(1), m.group(0)), message)
    message = re.sub(r"(?<![\w.\[-])(\w+)(\[\d+\])?=",
                     lambda m: words[m.group(1)] + " " if m.group(1) in words else m.group(0),
                     message)
    # A value as typed, not as Python shows it: `--device gpu`, not `--device 'gpu'`.
    message = re.sub(r"(--[\w-]+) '([^']*)'", r"\1 \2", message)
    return UsageError(message)


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

    if os.path.isdir(output):
        raise UsageError(f"the output path is a directory; give a file name such as "
                         f"{os.path.join(output, 'stylized.png')}. Received: -o {output}")
    try:
        image_format_for(output)
    except ValueError as error:
        raise as_usage(error) from None
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"the output folder does not exist. Received: -o {output}")
    if not folder_is_writable(folder):
        raise UsageError(f"the output folder is not writable. Received: -o {output}")
    for source in inputs:
        if source and not is_url(source) and os.path.abspath(source) == os.path.abspath(output):
            raise UsageError(f"the output would overwrite an input image. Received: -o {output}")


def say(quiet: bool, message: str) -> None:
    """Prints `message` on stderr unless `quiet`."""
    if not quiet:
        print(message, file=sys.stderr)


def plural(count: int, noun: str) -> str:
    """`1 iteration`, `2 iterations`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class ProgressBar:
    """The tqdm bar of one run: evaluations done, then the losses, total first.

    Use as a context manager (the bar is closed however the run ends). `on_progress` is
    called with each `Progress`, after the bar is updated (e.g. `--save-every`). Call
    `done(evaluations)` at the end: the last evaluations (a line search that met the
    budget) come after the last iteration's progress.
    """

    def __init__(self, quiet: bool, total_evals: int, on_progress: Optional[Callable] = None,
                 desc: str = "iteration 0", **bar_options):
        self.bar = None
        self.on_progress = on_progress
        if not quiet:
            from tqdm import tqdm

            # bar_options: tqdm's, e.g. position=1, leave=False for a bar inside another.
            self.bar = tqdm(total=total_evals, unit="eval", desc=desc,
                            file=sys.stderr, dynamic_ncols=True, **bar_options)

    def __call__(self, progress):
        if self.bar is not None:
            stage = f"stage {progress.stage}/{progress.stages}, " if progress.stages > 1 else ""
            self.bar.set_description(f"{stage}iteration {progress.iteration}")
            # An ordered mapping: tqdm sorts keyword arguments alphabetically.
            postfix = {"loss": f"{progress.loss:.4g}"}
            postfix.update({kind: f"{value:.3g}" for kind, value in (
                progress.kind_losses or {"content": progress.content_loss,
                                         "style": progress.style_loss,
                                         "tv": progress.tv_loss}).items()})
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(min(progress.evaluations, self.bar.total) - self.bar.n)
        if self.on_progress is not None:
            self.on_progress(progress)

    def done(self, evaluations: int) -> None:
        """Moves the bar to the evaluations the run spent in all."""
        if self.bar is not None:
            self.bar.update(min(evaluations, self.bar.total) - self.bar.n)

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


class SignalGuard:
    """Makes SIGINT and SIGTERM raise KeyboardInterrupt, so what was computed is saved.

    Inside `critical()` (a result's image, record and plot being written) a signal waits
    until the block ends, so that a result is delivered whole or not at all. A second
    Ctrl-C exits at once (files are written atomically, so that never leaves a
    half-written one).

    Attributes:
        received: The signals that came, in order.
    """

    def __init__(self):
        self.received = []
        self.depth = 0
        self.pending = False
        self.previous = {}

    def _on_signal(self, signum, frame):
        self.received.append(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
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
    def critical(self):
        """A block that a signal does not interrupt; the signal is raised after it."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending:
            self.pending = False
            raise KeyboardInterrupt()

    @property
    def terminated(self) -> bool:
        return signal.SIGTERM in self.received


def run_guarded(run: Callable[[SignalGuard], int], *, debug: bool,
                save_partial: Callable[[Optional[object]], str]) -> int:
    """Runs `run(guard)` the way every command does, and returns its exit code.

    SIGINT and SIGTERM raise KeyboardInterrupt (outside the guard's critical blocks); a run
    stopped by one, or by a `StyleTransferError` (a non-finite loss, divergence, out of
    memory), has `save_partial(best_image)` save what it can and say what it saved
    (`best_image` is None when none is known), then exits 130 / 143 or 1. A `UsageError` or
    a `ValueError` from the plan is one line and exit 2; any other error one line and exit 1
    (the traceback only with `debug`).

    Args:
        run: Does the work, given the `SignalGuard`; returns the exit code.
        debug: Re-raise unexpected errors instead of the one-line message.
        save_partial: Saves what was computed; returns what to tell the user about it.
    """
    from nst_keras.errors import DivergedError, OutOfMemoryError, StyleTransferError

    with SignalGuard() as guard:
        try:
            if not debug:
                import_tensorflow_quietly()
            return run(guard)
        except UsageError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as error:  # errors.Interrupted too, with the best image.
            saved = save_partial(getattr(error, "best_image", None))
            print(f"{PROG}: {'terminated' if guard.terminated else 'interrupted'}; {saved}",
                  file=sys.stderr)
            return EXIT_SIGTERM if guard.terminated else EXIT_SIGINT
        except StyleTransferError as error:
            message = str(as_usage(error))
            if isinstance(error, OutOfMemoryError) and "--height" not in message:
                message += "; try a smaller --height"
            if isinstance(error, DivergedError):
                message += " (the best image is the least bad one, not a result)"
            print(f"{PROG}: error: {message}; {save_partial(error.best_image)}", file=sys.stderr)
            return EXIT_FAILED
        except Exception as error:  # The last resort: one line, unless --debug.
            if debug:
                raise
            first_line = str(error).splitlines()[0] if str(error) else ""
            print(f"{PROG}: error: {type(error).__name__}: {first_line} "
                  "(run with --debug for the traceback)", file=sys.stderr)
            return EXIT_FAILED


def check_folder(folder: str, option: str) -> None:
    """Checks, without creating it, that `folder` exists and is writable, or can be created.

    A folder is created only when something is written into it, so that a run refused or
    stopped before its first file leaves no empty folder behind.

    Raises:
        UsageError: If the path is a file, or the folder (or the nearest existing folder
            above it) is not writable.
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"the output path is not a folder. Received: {option} {folder}")
    existing = os.path.abspath(folder)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not folder_is_writable(existing):
        raise UsageError(f"the folder cannot be created or written. Received: {option} {folder}")


def render_and_save(job, guard: SignalGuard, *, quiet: bool, output: str,
                    report: Optional[str] = None, stem: Optional[str] = None, argv=None,
                    record_extra: Optional[dict] = None, save_every: Optional[int] = None):
    """The one run path of a planned job on the command line: model, bar, render, delivery.

    Builds (or takes from the cache) the model, turning weights errors into usage errors;
    renders with a progress bar; then, inside the guard's critical block, writes the image
    and, with `report`, the run record and the loss plot (`STEM.json`, `STEM-loss.png`).

    Args:
        job: A `plan.Job`.
        guard: The `SignalGuard` of `run_guarded`.
        quiet: No bar or messages.
        output: Where the image goes.
        report: A folder for the record and the plot, or None.
        stem: Their file stem; the output's when None.
        argv: The command line, for the record.
        record_extra: Keys put first in the record (a figure panel's place).
        save_every: Also write the image every N iterations (`OUT-iter0010.png`).

    Returns:
        The `render.Result`.
    """
    from nst_keras import render
    from nst_keras.images import save_image

    config, where = job.config, job.placement
    with weights_errors_as_usage(config):
        model = render.load_model(config, where)

    def on_stage(start):
        problem = start.problem
        size = f"{problem.x0.shape[2]}x{problem.x0.shape[1]}"
        stage = f"stage {start.number}/{start.stages} at {size}, " if start.stages > 1 else ""
        tiled = f"tiled: {problem.tiles.describe()}, " if problem.tiles is not None else ""
        bar.write(f"Running {config.optimizer} in {where.precision} on {where.hardware}; "
                  f"{stage}{tiled}at most {problem.config.max_evals} evaluations.")

    def every(progress):
        if save_every and progress.iteration % save_every == 0:
            path_stem, extension = os.path.splitext(output)
            with guard.critical():
                save_image(f"{path_stem}-iter{progress.iteration:04d}{extension}",
                           progress.image)

    with ProgressBar(quiet, config.max_evals, on_progress=every) as bar:
        result = render.render(job, bar, on_stage=on_stage, feature_model=model)
        bar.done(result.evaluations)
    with guard.critical():
        # Folders are made only when something goes into them (see `check_folder`).
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        save_image(output, result.image)
        if report is not None:
            from nst_keras.record import write_report

            stem = stem or os.path.splitext(os.path.basename(output))[0]
            write_report(result, report, stem=stem, argv=argv, output=output,
                         inputs=job.sources, extra=record_extra)
    return result
