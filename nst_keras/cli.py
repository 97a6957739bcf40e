"""The command line: `python -m nst_keras CONTENT STYLE -o OUT.png` (or `nst-keras ...`).

The only module that prints or writes files. Exit codes: 0 done; 1 the run failed (a
non-finite loss, out of memory; the best image so far is saved); 2 bad usage or input
(nothing is computed); 130 / 143 interrupted by SIGINT / SIGTERM (the best image so far is
saved).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import warnings
import sys
import tempfile
from typing import Optional, Sequence

from nst_keras.config import (
    DEVICES,
    INITS,
    MODELS,
    NORMALIZATIONS,
    POOLINGS,
    PRESETS,
    StyleConfig,
    preset,
)

PROG = "nst-keras"
DEFAULTS = StyleConfig()
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line `UsageError`s (argparse prints the whole
    usage before an error; one line is easier to read)."""

    def error(self, message):
        raise UsageError(message)


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


def non_negative_float(text):
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser(defaults: StyleConfig = DEFAULTS) -> argparse.ArgumentParser:
    """The argument parser of a plain run; every default comes from `defaults`."""
    d = defaults
    parser = Parser(
        prog=PROG,
        description=(
            "Neural style transfer (Gatys et al. 2015) as in Chollet's Deep Learning with "
            "Python, 8.3. Renders CONTENT in the style of STYLE. With no images, runs the "
            "paper's demo pair (Tuebingen in the style of The Starry Night), downloaded once."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io = parser.add_argument_group("images")
    io.add_argument("content", nargs="?", help="content image: a path or an http(s) URL")
    io.add_argument("style", nargs="?", help="style image: a path or an http(s) URL")
    io.add_argument("-o", "--output", default="stylized.png",
                    help="where to write the result (.png, .jpg, .webp, ...)")
    io.add_argument("--height", type=positive_int, default=d.height,
                    help="height of the result in pixels; the width keeps the content's aspect")
    io.add_argument("--style-height", type=positive_int, default=d.style_height,
                    help="height the style image is resized to (default: --height)")

    method = parser.add_argument_group("method")
    method.add_argument("--preset", choices=sorted(PRESETS), default="book",
                        help="named settings that the options below override (gatys2015: the "
                             "paper's; see the README)")
    method.add_argument("--content-layers", type=parse_layers, default=d.content_layers,
                        help="comma-separated content layers (Keras or paper names)")
    method.add_argument("--style-layers", type=parse_layers, default=d.style_layers,
                        help="comma-separated style layers (Keras or paper names)")
    method.add_argument("--content-weight", type=non_negative_float, default=d.content_weight,
                        help="content weight (alpha)")
    method.add_argument("--style-weight", type=non_negative_float, default=d.style_weight,
                        help="style weight (beta), shared equally by the style layers")
    method.add_argument("--tv-weight", type=non_negative_float, default=d.tv_weight,
                        help="total-variation weight")
    method.add_argument("--tv-power", type=non_negative_float, default=d.tv_power,
                        help="total-variation exponent")
    method.add_argument("--normalization", choices=NORMALIZATIONS, default=d.normalization,
                        help="style-loss normalisation: the book's or the paper's per-layer one")
    method.add_argument("--init", choices=INITS, default=d.init, help="starting image")
    method.add_argument("--model", choices=MODELS, default=d.model, help="feature network")
    method.add_argument("--weights", type=parse_weights, default=d.weights,
                        help="imagenet, none (random, for tests) or the path of a weights file")
    method.add_argument("--pooling", choices=POOLINGS, default=d.pooling,
                        help="max (Keras, book) or avg (the paper)")

    run = parser.add_argument_group("optimisation")
    run.add_argument("--iterations", type=positive_int, default=d.iterations,
                     help="most L-BFGS iterations")
    run.add_argument("--max-evals", type=positive_int, default=d.max_evals,
                     help="most loss+gradient evaluations (the book: 20 x 20)")
    run.add_argument("--seed", type=int, default=d.seed, help="seed, for repeatable runs")
    run.add_argument("--device", choices=DEVICES, default=d.device,
                     help="auto uses TF's GPU when one is visible")
    run.add_argument("--xla", action=argparse.BooleanOptionalAction, default=d.jit_compile,
                     help="compile the loss and gradient with XLA")

    out = parser.add_argument_group("output")
    out.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                     help="also write the image every N iterations (OUT-iter0010.png, ...)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _preset_defaults(argv) -> StyleConfig:
    """The preset named by `--preset` in `argv` (the book's when none), for the defaults.

    Raises:
        UsageError: If the preset is unknown.
    """
    probe = Parser(add_help=False)
    probe.add_argument("--preset", default="book")
    known, _ = probe.parse_known_args(argv)
    try:
        return preset(known.preset)
    except ValueError as error:
        raise UsageError(str(error)) from None


def config_from_args(args) -> StyleConfig:
    """The `StyleConfig` that parsed arguments describe.

    Raises:
        UsageError: If a value is invalid, naming it.
    """
    try:
        return StyleConfig(
            content_layers=args.content_layers,
            style_layers=args.style_layers,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            tv_power=args.tv_power,
            normalization=args.normalization,
            init=args.init,
            height=args.height,
            style_height=args.style_height,
            iterations=args.iterations,
            max_evals=args.max_evals,
            model=args.model,
            weights=args.weights,
            pooling=args.pooling,
            seed=args.seed,
            jit_compile=args.xla,
            device=args.device,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_config(config: StyleConfig) -> None:
    """Checks what can be checked before any model is built: layer names and weights path.

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


def _load_inputs(args, config):
    """Loads both images (downloading the demo pair if none were given).

    Raises:
        UsageError: If an image cannot be read, naming the file and the reason.
    """
    from nst_keras import images
    from nst_keras.features import minimum_size

    content, style = args.content, args.style
    if content is None or style is None:
        if content is not None or style is not None:
            raise UsageError("give both CONTENT and STYLE, or neither for the demo pair")
        content, style = images.DEMO_CONTENT_URL, images.DEMO_STYLE_URL
        say(args, "No images given: running the demo pair (Tuebingen x The Starry Night), "
                   "downloaded once into the Keras cache.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = _read_images(content, style, config)
    for warning in caught:
        say(args, f"{PROG}: warning: {str(warning.message).splitlines()[0]}")
    smallest = minimum_size(config.content_layers + config.style_layers, config.model)
    for role, rgb in zip(("content", "style"), loaded):
        if min(rgb.shape[:2]) < smallest:
            raise UsageError(
                f"the {role} image is {rgb.shape[1]}x{rgb.shape[0]} after resizing; the layers "
                f"used need at least {smallest}x{smallest} pixels"
            )
    return loaded


def _read_images(content, style, config):
    """The two images as RGB arrays, each error a `UsageError` naming the file."""
    return [
        read_image(f"{role} image", source, height)
        for role, source, height in (
            ("content", content, config.height),
            ("style", style, config.style_height or config.height),
        )
    ]


def read_image(label: str, source, height: int):
    """`images.load_image`, every failure a one-line `UsageError` naming `label` and the file."""
    from nst_keras import images

    if not images.is_url(source) and not os.path.exists(source):
        raise UsageError(f"the {label} does not exist: {source}")
    try:
        return images.load_image(source, height)
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"cannot read the {label} {source}: {reason}") from None


def say(args, message):
    """Prints `message` on stderr unless `--quiet`."""
    if not args.quiet:
        print(message, file=sys.stderr)


class ProgressReporter:
    """Draws the tqdm bar and writes the images `--save-every` asks for."""

    def __init__(self, args, total_evals):
        self.args = args
        self.bar = None
        if not args.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total_evals, unit="eval", desc="iteration 0",
                            file=sys.stderr, dynamic_ncols=True)

    def __call__(self, progress):
        from nst_keras.images import save_image

        if self.bar is not None:
            self.bar.set_description(f"iteration {progress.iteration}")
            self.bar.set_postfix(loss=f"{progress.loss:.4g}", content=f"{progress.content_loss:.3g}",
                                 style=f"{progress.style_loss:.3g}", tv=f"{progress.tv_loss:.3g}",
                                 refresh=False)
            self.bar.update(min(progress.evaluations, self.bar.total) - self.bar.n)
        every = self.args.save_every
        if every and progress.iteration % every == 0:
            stem, extension = os.path.splitext(self.args.output)
            save_image(f"{stem}-iter{progress.iteration:04d}{extension}", progress.image)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _save_best(args, image) -> str:
    """Saves the best image so far, if any; returns what to tell the user about it."""
    from nst_keras.images import save_image

    if image is None:
        return "nothing was computed yet, nothing saved"
    save_image(args.output, image)
    return f"saved the best image so far to {args.output}"


def _install_signal_handlers(received):
    """Makes SIGINT and SIGTERM raise KeyboardInterrupt, so the best image is saved.

    `received` records which signal came. A second Ctrl-C exits at once (images are
    written atomically, so that never leaves a half-written file).
    """

    def on_signal(signum, frame):
        received.append(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt()

    return {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code.

    Args:
        argv: The arguments (without the program name); `sys.argv[1:]` if None.

    Returns:
        0 on success; 1 if the run failed; 2 on bad usage or input; 130 / 143 if
        interrupted by SIGINT / SIGTERM.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "figure":
        from nst_keras.figures import main as figure_main

        return figure_main(argv[1:])
    debug = "--debug" in argv
    try:
        args = build_parser(_preset_defaults(argv)).parse_args(argv)
        config = config_from_args(args)
        check_config(config)
        check_output(args.output, [args.content, args.style])
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(lambda received: _run(args, config, received), debug=debug,
                       before="the optimisation started")


def run_guarded(run, *, debug: bool, before: str) -> int:
    """Runs `run(received)` the way every command does, and returns its exit code.

    SIGINT and SIGTERM raise KeyboardInterrupt (`received` lists which came; `run` saves
    what it has and returns 130 / 143); a `UsageError` is one line and exit 2; any other
    error one line and exit 1 (the traceback only with `--debug`).

    Args:
        run: Called with the list of signals received; returns the exit code.
        debug: Re-raise unexpected errors instead of the one-line message.
        before: Completes "interrupted before ..." when a signal comes before `run` could
            save anything.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow is imported.
    received = []
    previous = _install_signal_handlers(received)
    try:
        return run(received)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        terminated = signal.SIGTERM in received
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'} before {before}; "
              "nothing saved.", file=sys.stderr)
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
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


def _run(args, config: StyleConfig, received) -> int:
    content_rgb, style_rgb = _load_inputs(args, config)

    from nst_keras import optimize
    from nst_keras.images import save_image

    say(args, f"Building {config.model} ({config.weights or 'random weights'}) and the "
               f"targets at {content_rgb.shape[1]}x{content_rgb.shape[0]} ...")
    reporter = None
    try:
        problem = _build_problem(content_rgb, style_rgb, config)
        reporter = ProgressReporter(args, config.max_evals)
        result = optimize.solve(problem, callback=reporter)
    except optimize.Interrupted as error:
        close_reporter(reporter)
        terminated = signal.SIGTERM in received
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}; "
              f"{_save_best(args, error.best_image)}", file=sys.stderr)
        return EXIT_SIGTERM if terminated else EXIT_SIGINT
    except optimize.StyleTransferError as error:  # A non-finite loss, out of memory.
        close_reporter(reporter)
        message = str(error)
        if isinstance(error, optimize.OutOfMemoryError) and "--height" not in message:
            message += "; try a smaller --height"
        print(f"{PROG}: error: {message}; {_save_best(args, error.best_image)}",
              file=sys.stderr)
        return EXIT_FAILED
    close_reporter(reporter)
    save_image(args.output, result.image)
    say(args, f"Wrote {args.output}: loss {result.loss:.6g} (content {result.content_loss:.4g}, "
               f"style {result.style_loss:.4g}, tv {result.tv_loss:.4g}) after "
               f"{result.iterations} iterations, {result.evaluations} evaluations, "
               f"{result.seconds:.1f} s ({result.seconds / max(1, result.evaluations):.2f} "
               f"s/evaluation; setup {result.setup_seconds:.1f} s).")
    return EXIT_OK


def close_reporter(reporter):
    """Closes a `ProgressReporter`, or does nothing for None."""
    if reporter is not None:
        reporter.close()


@contextlib.contextmanager
def weights_errors_as_usage(config: StyleConfig):
    """Turns the errors of loading VGG weights into one-line `UsageError`s.

    No network for the ImageNet weights: which file to put where, or `--weights PATH`. A
    corrupt file or one of another architecture: the file and the reason.
    """
    from nst_keras.features import IMAGENET_NOTOP_FILES

    try:
        yield
    except Exception as error:
        text = str(error)
        if config.weights == "imagenet" and "URL fetch failure" in text:
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


def _build_problem(content_rgb, style_rgb, config):
    """`optimize.build_problem`, with weights errors turned into one-line usage errors."""
    from nst_keras import optimize

    with weights_errors_as_usage(config):
        return optimize.build_problem(content_rgb, style_rgb, config)
