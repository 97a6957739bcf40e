"""The command line: `python -m nst_keras CONTENT STYLE -o OUT.png` (or `nst-keras ...`).

`main(argv)` parses the options into a `StyleConfig` (the preset's values, then the options
given), checks them and the output path (exit 2 before any model is built), runs
`run.build_problem` and `run.solve` under `console.run_guarded`, and saves the image.
`nst-keras figure N` is dispatched to `figures.main`. Exit codes: see `console`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Optional, Sequence

from nst_keras import __version__
from nst_keras.config import (
    DEVICES,
    INITS,
    MODELS,
    NORMALIZATIONS,
    POOLINGS,
    PRECISIONS,
    PRESETS,
    TV_EDGES,
    StyleConfig,
    preset,
)
from nst_keras.console import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    HelpFormatter,
    Parser,
    ProgressBar,
    UsageError,
    check_config,
    check_output,
    non_negative_float,
    parse_layers,
    parse_weights,
    positive_int,
    read_image,
    run_guarded,
    say,
    weights_errors_as_usage,
)

DEFAULTS = StyleConfig()


def build_parser(defaults: StyleConfig = DEFAULTS) -> argparse.ArgumentParser:
    """The argument parser of a plain run; every default comes from `defaults`."""
    d = defaults
    parser = Parser(
        prog=PROG,
        description=(
            "Neural style transfer (Gatys et al. 2015) as in Chollet's Deep Learning with "
            "Python, 8.3. Renders CONTENT in the style of STYLE. With no images, runs the "
            "paper's demo pair (Tuebingen in the style of The Starry Night, downloaded once; "
            "a few minutes on a CPU at the default size)."
        ),
        epilog=(
            f"Also: '{PROG} figure {{1,2,3}}' reproduces the figures of Gatys et al. (see "
            f"'{PROG} figure --help'). Exit codes: 0 done, 1 failed (best image saved), 2 bad "
            "usage, 130/143 interrupted (best image saved)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    io = parser.add_argument_group("images")
    io.add_argument("content", nargs="?", default=None,
                    help="content image: a path or an http(s) URL")
    io.add_argument("style", nargs="?", default=None, help="style image: a path or an http(s) URL")
    io.add_argument("-o", "--output", default="stylized.png",
                    help="where to write the result (.png, .jpg, .webp, ...)")
    io.add_argument("--height", type=positive_int, default=d.height,
                    help="height of the result in pixels; the width keeps the content's aspect")
    io.add_argument("--style-height", type=positive_int, default=d.style_height,
                    help="height the style image is resized to (default: the same as --height)")

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
    method.add_argument("--tv-edges", choices=TV_EDGES, default=d.tv_edges,
                        help="all: count the last row and column (default); book: the book's "
                             "formula exactly")
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
    run.add_argument("--bounds", action=argparse.BooleanOptionalAction, default=d.bounds,
                     help="keep every pixel in 0-255 while optimising (the book clips only "
                          "when saving)")
    run.add_argument("--seed", type=int, default=d.seed, help="seed, for repeatable runs")
    run.add_argument("--device", choices=DEVICES, default=d.device,
                     help="auto uses TF's GPU when one is visible")
    run.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                     help="auto: bfloat16 convolutions on CPUs with AMX-BF16 or AVX512-BF16, "
                          "float32 elsewhere")
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


#: StyleConfig field -> the parsed argument that sets it (where the names differ).
_ARGUMENT_OF = {"jit_compile": "xla"}


def config_from_args(args) -> StyleConfig:
    """The `StyleConfig` that parsed arguments describe.

    Raises:
        UsageError: If a value is invalid, naming it.
    """
    import dataclasses

    values = {f.name: getattr(args, _ARGUMENT_OF.get(f.name, f.name))
              for f in dataclasses.fields(StyleConfig)}
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise UsageError(str(error)) from None


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
    try:
        args = build_parser(_preset_defaults(argv)).parse_args(argv)
        config = config_from_args(args)
        check_config(config)
        check_output(args.output, [args.content, args.style])
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(lambda: _run(args, config), debug=args.debug,
                       save_partial=lambda image: _save_best(args.output, image))


def _save_best(output: str, image) -> str:
    """Saves the best image so far, if any; returns what to tell the user about it."""
    from nst_keras.images import save_image

    if image is None:
        return "nothing was computed yet, nothing saved"
    save_image(output, image)
    return f"saved the best image so far to {output}"


def _load_inputs(args, config):
    """Loads both images (downloading the demo pair if none were given).

    Raises:
        UsageError: If an image cannot be read, naming the file and the reason.
    """
    from nst_keras import images
    from nst_keras.features import minimum_size

    content, style = args.content, args.style
    demo = content is None and style is None
    if content is None or style is None:
        if not demo:
            raise UsageError("give both CONTENT and STYLE, or neither for the demo pair")
        content, style = images.DEMO_CONTENT_URL, images.DEMO_STYLE_URL
        say(args.quiet, "No images given: running the demo pair (Tuebingen x The Starry Night), "
                        "downloaded once into the Keras cache.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = [read_image(f"{role} image", source, height) for role, source, height in (
                ("content", content, config.height),
                ("style", style, config.style_height or config.height),
            )]
        except UsageError as error:
            if demo and "cannot download" in str(error):
                raise UsageError(
                    "cannot download the demo images (no network?); give two local images "
                    f"instead: {PROG} CONTENT.jpg STYLE.jpg -o OUT.png"
                ) from None
            raise
    for warning in caught:
        say(args.quiet, f"{PROG}: warning: {str(warning.message).splitlines()[0]}")
    smallest = minimum_size(config.content_layers + config.style_layers, config.model)
    for role, rgb in zip(("content", "style"), loaded):
        if min(rgb.shape[:2]) < smallest:
            raise UsageError(
                f"the {role} image is {rgb.shape[1]}x{rgb.shape[0]} after resizing; the layers "
                f"used need at least {smallest}x{smallest} pixels"
            )
    return loaded


def _run(args, config: StyleConfig) -> int:
    from nst_keras import run
    from nst_keras.images import save_image

    content_rgb, style_rgb = _load_inputs(args, config)
    say(args.quiet, f"Building {config.model} ({config.weights or 'random weights'}) and the "
                    f"targets at {content_rgb.shape[1]}x{content_rgb.shape[0]} ...")
    with weights_errors_as_usage(config):
        problem = run.build_problem(content_rgb, style_rgb, config)
    say(args.quiet, f"Running in {problem.precision} on {problem.hardware}; at most "
                    f"{config.max_evals} evaluations.")

    def save_every(progress):
        if args.save_every and progress.iteration % args.save_every == 0:
            stem, extension = os.path.splitext(args.output)
            save_image(f"{stem}-iter{progress.iteration:04d}{extension}", progress.image)

    with ProgressBar(args.quiet, config.max_evals, on_progress=save_every) as bar:
        result = run.solve(problem, callback=bar)
    save_image(args.output, result.image)
    say(args.quiet, f"Wrote {args.output}: loss {result.loss:.6g} (content "
                    f"{result.content_loss:.4g}, style {result.style_loss:.4g}, tv "
                    f"{result.tv_loss:.4g}) after {result.iterations} iterations, "
                    f"{result.evaluations} evaluations, {result.seconds:.1f} s in "
                    f"{result.precision} ({result.seconds / max(1, result.evaluations):.2f} "
                    f"s/evaluation; setup {result.setup_seconds:.1f} s).")
    return EXIT_OK
