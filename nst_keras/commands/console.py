"""The command-line kit every command (`nst-keras`, `figure`, `batch`, `video`, `app`) shares.

* The one command preamble (`command`): options -> `StyleConfig` (`config_from_args`,
  `--height auto` included) -> the command's work under the run guard (`run_guarded`),
  with one error prefix per command (`nst-keras batch: error: ...`) and the exit codes.
* Options built from `StyleConfig`'s field metadata (`add_config_options`), and the one map
  from field names to option names for errors (`as_usage`).
* The output checks (`check_output`, `check_folder`).
* The run of a planned job on a terminal (`render_job`: the model, with weights errors in
  one line; the progress display; the render with the signal guard's stop token), and its
  delivery (`deliver`: `delivery.write_outputs` under the guard, a fallback said in one line).
* The lines every command prints the same way (`running_line`, `summary_line`).

With the command modules and `bars`, the only modules that print.

Exit codes: 0 done; 1 the run failed (a non-finite loss, out of memory, the result could not
be written where asked; what was computed is saved); 2 bad usage or input (one line, nothing
computed); 130 / 143 stopped by SIGINT / SIGTERM (the best image delivered).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from typing import Callable, List, Optional, Sequence

from nst_keras.commands.bars import Bar, ProgressBar  # noqa: F401  (re-exported)
from nst_keras.commands.guard import (  # noqa: F401  (re-exported: the commands' kit)
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    SignalGuard,
    UsageError,
)
from nst_keras.engine.runtime import import_tensorflow_quietly  # noqa: E402,F401  (re-exported)

PROG = "nst-keras"


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
            # The help text is already a %-format (a literal % written %%, as argparse
            # wants); only the appended default is escaped, so that "%%" shows as "%".
            return f"{help_text} (default: {str(default).replace('%', '%%')})"
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
               "flow": "--flow", "start": "--start", "end": "--end", "every": "--every",
               "jobs_file": "--jobs",
               "network": "--network", "photos": "--photos",  # `train`'s and --network's
               "size": "--size", "steps": "--steps", "batch_size": "--batch-size",
               "width": "--width"}  # `batch`'s (jobs.read_jobs_csv)


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
    from nst_keras.media.images import image_format_for, is_url

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


def shown_folder(folder: str) -> str:
    """A folder as a message shows it: normalised, with one trailing separator
    (`styled`, `styled/` and `styled//` all show as `styled/`)."""
    return os.path.join(os.path.normpath(folder), "")


def say(quiet: bool, message: str) -> None:
    """Prints `message` on stderr unless `quiet`."""
    if not quiet:
        print(message, file=sys.stderr)


def plural(count: int, noun: str) -> str:
    """`1 iteration`, `2 iterations`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


# ----------------------------------------------------------------------- the preamble


def run_guarded(run: Callable[[SignalGuard], int], *, prog: str, debug: bool,
                save_partial: Callable[[Optional[object]], str]) -> int:
    """Runs `run(guard)` the way every command does, and returns its exit code.

    A signal outside a render, or a `StyleTransferError` (a non-finite loss, divergence,
    out of memory), has `save_partial(best_image)` save what it can and say what it saved
    (`best_image` is None when none is known), then exits 130 / 143 or 1. A `UsageError`
    is one line and exit 2; a `delivery.DeliveryError` (nothing could be written) and any
    other error one line and exit 1 (the traceback only with `debug`). A render stopped by
    a signal returns normally: `run` delivers its result and returns `guard.stopped(...)`.

    Args:
        run: Does the work, given the `SignalGuard`; returns the exit code.
        prog: The command's name in messages (`nst-keras batch`).
        debug: Re-raise unexpected errors instead of the one-line message.
        save_partial: Saves what was computed; returns what to tell the user about it.
    """
    from nst_keras.errors import (DivergedError, Interrupted, OutOfMemoryError,
                                  StyleTransferError, first_line)

    with SignalGuard() as guard:
        try:
            if not debug:
                import_tensorflow_quietly()
            return run(guard)
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except (KeyboardInterrupt, Interrupted) as error:  # A signal outside a render.
            saved = save_partial(getattr(error, "best_image", None))
            return guard.stopped(prog, saved)
        except StyleTransferError as error:
            message = str(as_usage(error))
            if isinstance(error, OutOfMemoryError) and "--height" not in message:
                message += "; try a smaller --height"
            if isinstance(error, DivergedError):
                message += " (the best image is the least bad one, not a result)"
            print(f"{prog}: error: {message}; {save_partial(error.best_image)}",
                  file=sys.stderr)
            return EXIT_FAILED
        except Exception as error:  # The last resort: one line, unless --debug.
            if debug:
                raise
            from nst_keras.delivery import DeliveryError

            if isinstance(error, DeliveryError):
                print(f"{prog}: error: {error}", file=sys.stderr)
                return EXIT_FAILED
            print(f"{prog}: error: {type(error).__name__}: {first_line(error)} "
                  "(run with --debug for the traceback)", file=sys.stderr)
            return EXIT_FAILED



def command(prog: str, argv: Optional[Sequence[str]], parse: Callable[[list], object],
            work: Callable[[object, SignalGuard], int],
            save_partial: Optional[Callable[[object, Optional[object]], str]] = None) -> int:
    """The one way a command runs: parse, then work under the run guard; the exit code.

    Args:
        prog: The command's name in its messages (`nst-keras`, `nst-keras batch`).
        argv: The arguments (without the program name); `sys.argv[1:]` if None.
        parse: The arguments -> the parsed options (with `debug`); raises `UsageError`
            for anything wrong before any work (exit 2, one line, TensorFlow not imported).
        work: (options, guard) -> exit code: plans, renders, delivers.
        save_partial: (options, best image or None) -> what was kept, when a failure or a
            signal outside a render ends the work early.

    Returns:
        0 done; 1 failed; 2 bad usage or input; 130 / 143 stopped by SIGINT / SIGTERM.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    def partial(image) -> str:
        if save_partial is None:
            return "nothing was saved"
        return save_partial(args, image)

    return run_guarded(lambda guard: work(args, guard), prog=prog,
                       debug=getattr(args, "debug", False), save_partial=partial)


def options_given(build_parser: Callable, args, names: Sequence[str],
                  positionals: Sequence[str]) -> List[str]:
    """Which of `names` (parsed option names) the command line set: those whose value
    differs from the preset's default, whether typed in full or abbreviated.

    Args:
        build_parser: The command's parser builder (`parse_with_preset`'s).
        args: The parsed options (with `preset`).
        names: The options' `dest` names to look at.
        positionals: Placeholder positional arguments the parser needs.

    Returns:
        The given ones, as `--option` words, in the order of `names`.
    """
    defaults = parse_with_preset(build_parser, ["--preset", args.preset, *positionals])
    return ["--" + name.replace("_", "-") for name in names
            if getattr(args, name) != getattr(defaults, name)]


def parse_with_preset(build_parser: Callable, argv: Sequence[str]):
    """Parses `argv` with the parser `build_parser(preset's StyleConfig, preset's name)`
    makes, so that every default (and `--help`) is the chosen preset's.

    Raises:
        UsageError: For an unknown preset or any bad option.
    """
    name, defaults = preset_in(argv)
    return build_parser(defaults, name).parse_args(argv)


def config_from_args(args, fields=None):
    """The `StyleConfig` that parsed options describe. `--height auto` gets a placeholder
    height, chosen by the plan once the content's size is known (`fit_height`).

    Raises:
        UsageError: If a value is invalid, naming its option.
    """
    from nst_keras.config import StyleConfig

    values = config_changes(args, fields)
    if values.get("height") == "auto":
        values["height"] = max(StyleConfig.height, getattr(args, "start_height", None) or 1)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise as_usage(error) from None


def planned(plan_function: Callable, *args, **kwargs):
    """`plan_function(*args, **kwargs)`, a refusal (`ValueError`) as a one-line usage error.

    Raises:
        UsageError: For any input or setting the plan refuses, in option words.
    """
    try:
        return plan_function(*args, **kwargs)
    except ValueError as error:
        raise as_usage(error) from None


@contextlib.contextmanager
def weights_errors_as_usage(config):
    """Turns the errors of loading VGG weights into one-line `UsageError`s.

    No network for the ImageNet weights: which file to put where, or `--weights PATH`. A
    corrupt file or one of another architecture: the file and the reason.
    """
    from nst_keras.errors import first_line
    from nst_keras.engine.features import IMAGENET_NOTOP_FILES

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
            reason = first_line(error).rstrip(" .:") or type(error).__name__
            raise UsageError(
                f"cannot load the weights file into {config.model} (include_top=False); is it "
                f"a file for this model? ({reason}) Received: --weights {config.weights}"
            ) from None
        raise


def check_weights(config) -> None:
    """What `load_model` would refuse about the weights, found without building a model
    or downloading anything (a dry run): the same one-line usage errors.

    Raises:
        UsageError: If the weights can be neither found nor downloaded, or not read.
    """
    from nst_keras.engine import features, normalize

    with weights_errors_as_usage(config):
        model, weights = config.model, config.weights
        if model in normalize.NORMALIZED:  # The file the model cache would load.
            model, weights = (normalize.NORMALIZED[model],
                              normalize.resolve(model, weights, config.seed))
        features.check_weights(weights, model)


def load_model(config, placement=None):
    """The process's feature model for a config (built once, cached), weights errors as
    one-line usage errors: the one place every command loads the network.

    Raises:
        UsageError: If the weights cannot be had or loaded.
    """
    from nst_keras import render

    with weights_errors_as_usage(config):
        return render.load_model(config, placement)


# ----------------------------------------------------------------------- a run's lines


def running_line(optimizer: str, start) -> str:
    """`Running lbfgs in float32 on CPU ...; stage 1/2 at 200x150, tiled: ..., at most N
    evaluations.`, from a `render.StageStart`: the command line's and the app's line."""
    problem = start.problem
    size = f"{problem.x0.shape[2]}x{problem.x0.shape[1]}"
    stage = f"stage {start.number}/{start.stages} " if start.stages > 1 else ""
    tiled = f"tiled: {problem.tiles.describe()}, " if problem.tiles is not None else ""
    return (f"Running {optimizer} in {problem.precision} on {problem.hardware}; "
            f"{stage}at {size}, {tiled}at most {problem.config.max_evals} evaluations.")


def summary_line(result, what: str) -> str:
    """`WHAT: loss L (content C, style S, tv T) after I iterations, E evaluations, ...`."""
    return (f"{what}: loss {result.loss:.6g} ("
            + ", ".join(f"{kind} {value:.4g}" for kind, value in result.kind_losses.items())
            + f") after {plural(result.iterations, 'iteration')}, "
            f"{plural(result.evaluations, 'evaluation')}, {result.seconds:.1f} s in "
            f"{result.precision} ({result.seconds / max(1, result.evaluations):.2f} "
            f"s/evaluation; setup {result.setup_seconds:.1f} s).")


def render_job(job, guard: SignalGuard, *, quiet: bool, model=None, bar: Optional[Bar] = None,
               on_progress: Optional[Callable] = None, checkpoints=None, **render_options):
    """Renders a planned job on the terminal: the model, the progress display, the stop.

    The "Running ..." line is printed as each stage starts, before its progress is drawn.
    A signal during the render only sets the guard's stop token: the render returns its
    best image with `Result.stopped`, to be delivered like any other.

    Args:
        job: A `plan.Job`.
        guard: The command's `SignalGuard`.
        quiet: No display, no lines.
        model: The feature model; the cached one for the job (`load_model`) when None.
        bar: A `bars.ProgressBar` to draw into (a video's frame bar); a new one when None.
        on_progress: Called with each `Progress` after it is shown (`--save-every`).
        checkpoints: The job's `delivery.CheckpointFile` (`checkpoint_file`), or None: the
            render resumes from it and writes it at evaluation boundaries; a run that fails
            by non-finite loss or divergence removes it (an exact resume would fail again).
        **render_options: Passed to `render.render` (`target_cache`).

    Returns:
        The `render.Result`.
    """
    import warnings

    from nst_keras import render
    from nst_keras.engine import lbfgsb
    from nst_keras.errors import DivergedError, NonFiniteLossError

    config = job.config
    if model is None:
        model = load_model(config, job.placement)
    own = bar is None
    if own:
        bar = ProgressBar(quiet, config.max_evals, on_progress=on_progress)

    def on_stage(start):
        bar.write(running_line(config.optimizer, start))

    try:
        with guard.stoppable() as token, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", lbfgsb.FallbackWarning)
            result = render.render(job, bar, on_stage=on_stage, feature_model=model,
                                   stop=token, checkpoints=checkpoints, **render_options)
        bar.done(result.evaluations)
    except (NonFiniteLossError, DivergedError):
        if checkpoints is not None:
            checkpoints.remove()
        raise
    finally:
        if own:
            bar.close()
    for notice in dict.fromkeys(str(w.message) for w in caught
                                if issubclass(w.category, lbfgsb.FallbackWarning)):
        say(quiet, f"{PROG}: {notice}")
    return result


def duration(text: str):
    """`--checkpoint-every`: `auto`, `off`, or a duration (`90`, `30s`, `5m`, `2h`) in seconds.

    Raises:
        argparse.ArgumentTypeError: For anything else.
    """
    if text in ("auto", "off"):
        return text
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected auto, off or a duration such as 90, 30s, 5m or 2h, got {text!r}")
    return seconds


def add_checkpoint_options(parser) -> None:
    """`--checkpoint-every` and `--restart`: how a long run is kept resumable."""
    group = parser.add_argument_group("resuming")
    group.add_argument("--checkpoint-every", type=duration, default="auto",
                       metavar="auto|off|DURATION",
                       help="keep the optimiser's whole state next to the output, so that "
                            "rerunning the same command after Ctrl-C, SIGTERM, a crash or "
                            "kill -9 goes on exactly where it was; auto writes at most every "
                            "50 x the last write's time (<= 2%% of the run), always when "
                            "stopped; a DURATION (90, 30s, 5m) sets the least time between "
                            "two writes; off keeps none")
    group.add_argument("--restart", action="store_true",
                       help="ignore this run's checkpoint and start from zero")


def checkpoint_file(args, job, folder: str, stem: str, *, prog: str = PROG,
                    key: Optional[str] = None):
    """The `delivery.CheckpointFile` of a job whose output is `FOLDER/STEM...`, from the
    options (`add_checkpoint_options`); its messages go to stderr in one line each. `key`
    replaces the job's `resume_key` (a video's frame: the video's key and the frame)."""
    from nst_keras import delivery

    every = args.checkpoint_every
    note = lambda message: say(args.quiet, f"{prog}: {message}")  # noqa: E731
    enabled = every != "off"
    reason = delivery.unresumable(job.config)
    if enabled and reason:
        note(f"checkpoints are off: {reason}")
        enabled = False
    return delivery.CheckpointFile(
        delivery.checkpoint_path(folder, stem, key or job.resume_key),
        needed=delivery.checkpoint_needs(job),
        every=None if every in ("auto", "off") else every, enabled=enabled,
        restart=args.restart, note=note)


def deliver(result, job, guard: SignalGuard, *, prog: str, output: str,
            report: Optional[str] = None, stem: Optional[str] = None, argv=None,
            extra: Optional[dict] = None, checkpoints=None, bit_depth: int = 8):
    """Writes a run's image, plot and record through the one delivery, under the guard.

    A write that fails where asked (a full disk) puts the files in the temporary folder
    and says so in one line (`Delivered.fallback`; the command then exits 1). A finished
    run's checkpoint is removed once its result is written; a stopped run's is kept.

    Returns:
        The `delivery.Delivered`.

    Raises:
        delivery.DeliveryError: If nothing could be written anywhere.
    """
    from nst_keras import delivery

    outs = delivery.outputs(result, output=output, key=job.key, inputs=job.sources, argv=argv,
                            extra=extra, plot=report is not None, bit_depth=bit_depth)
    done = delivery.write_outputs(output, outs, report=report, stem=stem,
                                  critical=guard.critical)
    if done.fallback:
        print(f"{prog}: error: cannot write {output} ({done.fallback}); wrote the image to "
              f"{done.image} instead" + (f", with its record {done.record}" if done.record
                                         else ""), file=sys.stderr)
    if checkpoints is not None and not result.stopped:
        checkpoints.remove()
    return done


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
