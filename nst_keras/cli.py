"""The command line: `python -m nst_keras CONTENT STYLE -o OUT.png` (or `nst-keras ...`).

`main(argv)` parses the options into a `StyleConfig` (the preset's values, then the options
given), checks them, the inputs and the output path (exit 2 before any model is built),
loads the model, runs `run.run_stages` (one size, or coarse to fine) under
`console.run_guarded`, and saves the image (and, with `--report`, the run record).
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
    COLOR_MODES,
    DEVICES,
    INITS,
    MODELS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PADDINGS,
    POOLINGS,
    PRECISIONS,
    PRESETS,
    STYLE_RESIZES,
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
    folder_is_writable,
    import_tensorflow_quietly,
    non_negative_float,
    parse_layers,
    parse_weights,
    positive_float,
    positive_int,
    read_image,
    run_guarded,
    say,
    weights_errors_as_usage,
)

DEFAULTS = StyleConfig()


def build_parser(defaults: StyleConfig = DEFAULTS, preset_name: str = "book"
                 ) -> argparse.ArgumentParser:
    """The argument parser of a plain run; every default comes from `defaults`, the values
    of the preset `preset_name` (so `--preset NAME --help` shows that preset's values)."""
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
    io.add_argument("--style", dest="styles", nargs="+", default=None, metavar="STYLE",
                    help="several style images, blended (instead of the positional STYLE)")
    io.add_argument("--style-blend-weights", nargs="+", type=non_negative_float,
                    default=d.style_blend_weights, metavar="W",
                    help="one weight per style, normalised to sum to 1 (default: equal)")
    io.add_argument("-o", "--output", default="stylized.png",
                    help="where to write the result (.png, .jpg, .webp, ...)")
    io.add_argument("--height", type=height_or_auto, default=d.height,
                    help="height of the result in pixels, the width keeping the content's "
                         "aspect; auto: the largest that fits in memory (at most the content's "
                         "own height)")
    io.add_argument("--style-mask", dest="style_masks", nargs="+", default=None,
                    metavar="MASK", help="one mask per style: white where that style applies, "
                                         "grey blends; resized to the content (same aspect "
                                         "ratio); where no mask reaches, content only")
    io.add_argument("--preserve-color", choices=COLOR_MODES, default=d.preserve_color,
                    help="keep the content's colours: luminance (transfer on luminance only), "
                         "histogram (recolour the style first), swap (put the content's colour "
                         "back after)")
    io.add_argument("--style-height", type=positive_int, default=d.style_height,
                    help="height the style images are resized to (default: the same as --height)")
    io.add_argument("--style-scale", nargs="+", type=positive_float, default=d.style_scale,
                    metavar="S", help="style height relative to the result's: one value, or one "
                                      "per style (instead of --style-height)")
    io.add_argument("--style-resize", choices=STYLE_RESIZES, default=d.style_resize,
                    help="aspect: keep each style's aspect ratio; stretch: to the content's "
                         "size (the book)")

    method = parser.add_argument_group("method")
    method.add_argument("--preset", choices=sorted(PRESETS), default=preset_name,
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
    method.add_argument("--init", default=d.init, metavar="{" + ",".join(INITS) + ",PATH}",
                        help="starting image: the content, white noise, the style, the mean "
                             "colour (jcjohnson's random), or an image's path or URL")
    method.add_argument("--model", choices=MODELS, default=d.model, help="feature network")
    method.add_argument("--weights", type=parse_weights, default=d.weights,
                        help="imagenet, none (random, for tests) or the path of a weights file")
    method.add_argument("--pooling", choices=POOLINGS, default=d.pooling,
                        help="max (Keras, book) or avg (the paper)")
    method.add_argument("--padding", choices=PADDINGS, default=d.padding,
                        help="how VGG's convs pad: symmetric (the edge repeated) or reflect; "
                             "zeros (Keras, the book) leaves a saturated band along the top")

    run = parser.add_argument_group("optimisation")
    run.add_argument("--iterations", type=positive_int, default=d.iterations,
                     help="most iterations (L-BFGS) or steps (Adam, SGD), per stage")
    run.add_argument("--max-evals", type=positive_int, default=d.max_evals,
                     help="most loss+gradient evaluations (the book: 20 x 20)")
    run.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                     help="lbfgs (1st edition), adam, or sgd (2nd edition)")
    run.add_argument("--learning-rate", type=positive_float, default=d.learning_rate,
                     help="step size of adam and sgd, in pixel units (0-255)")
    run.add_argument("--lr-decay", type=positive_float, default=d.lr_decay,
                     help="multiply the learning rate by this every --lr-decay-steps steps")
    run.add_argument("--lr-decay-steps", type=positive_int, default=d.lr_decay_steps,
                     help="see --lr-decay")
    run.add_argument("--lbfgs-memory", type=positive_int, default=d.lbfgs_memory,
                     help="correction pairs L-BFGS keeps")
    run.add_argument("--scales", type=positive_int, default=d.scales,
                     help="coarse to fine: optimise at this many sizes, halving from --height "
                          "(or from --start-height), each stage starting from the last; the "
                          "evaluations are split equally")
    run.add_argument("--start-height", type=positive_int, default=d.start_height,
                     help="coarse to fine: the first stage's height (stages double up to "
                          "--height unless --scales is given)")
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
    out.add_argument("--dry-run", action="store_true",
                     help="print the estimated peak memory of the run (per stage and "
                          "precision) and the largest height that fits, then stop")
    out.add_argument("--report", default=None, metavar="DIR",
                     help="also write OUT.json (settings, versions, hardware, every iteration) "
                          "and OUT-loss.png (the losses against evaluations) into DIR")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def height_or_auto(text):
    """`--height`: an integer >= 1, or `auto`."""
    return "auto" if text == "auto" else positive_int(text)


def _preset_in(argv) -> tuple:
    """(name, StyleConfig) of the preset `--preset` names in `argv` (the book's when none).

    Raises:
        UsageError: If the preset is unknown.
    """
    probe = Parser(add_help=False)
    probe.add_argument("--preset", default="book")
    known, _ = probe.parse_known_args(argv)
    try:
        return known.preset, preset(known.preset)
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
    if values["height"] == "auto":  # Chosen once the content image is known (`_sized`).
        values["height"] = max(StyleConfig.height, args.start_height or 1)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise UsageError(_as_option(str(error))) from None


def _as_option(message: str) -> str:
    """A config error in the command line's words: `--style-scale`, not `style_scale`."""
    import re

    return re.sub(r"`(\w+)`|(?:(?<=Received: )|(?<=, ))(\w+)=",
                  lambda m: "--" + (m.group(1) or m.group(2)).replace("_", "-")
                  + ("" if m.group(1) else " "), message)


def style_sources(args) -> list:
    """The style images given: the positional STYLE or `--style A B ...`.

    Raises:
        UsageError: If both are given.
    """
    if args.styles and args.style:
        raise UsageError("give the style as STYLE or as --style, not both. "
                         f"Received: {args.style} and --style {' '.join(args.styles)}")
    return list(args.styles or ([args.style] if args.style else []))


def check_inputs(args, config: StyleConfig) -> None:
    """Checks what the inputs need before anything is loaded: counts, the init image.

    Raises:
        UsageError: If the blend weights or style scales do not fit the styles, the init
            image does not exist, or the report folder cannot be written.
    """
    from nst_keras import images, run

    styles = style_sources(args)
    count = len(styles) or 1
    try:
        run.blend_weights(config, count)
        run.style_heights(config, count)
    except ValueError as error:
        raise UsageError(f"{_as_option(str(error))} for {count} style image(s)") from None
    for number, mask in enumerate(args.style_masks or [], start=1):
        if not images.is_url(mask) and not os.path.isfile(mask):
            raise UsageError(f"style mask {number} does not exist: {mask}")
    if config.init not in INITS and not images.is_url(config.init) and not os.path.isfile(
            config.init):
        raise UsageError(
            f"the init image does not exist; use {', '.join(INITS)} or an image's path. "
            f"Received: --init {config.init}"
        )
    if args.report is not None:
        try:
            os.makedirs(args.report, exist_ok=True)
        except OSError:
            pass
        if not os.path.isdir(args.report) or not folder_is_writable(args.report):
            raise UsageError(f"the report folder cannot be created or written. Received: "
                             f"--report {args.report}")


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
        name, defaults = _preset_in(argv)
        args = build_parser(defaults, name).parse_args(argv)
        config = config_from_args(args)
        check_config(config)
        check_inputs(args, config)
        if args.height == "auto" or args.dry_run:
            config = _sized(args, config)
            if args.dry_run:
                return _dry_run(args, config)
        check_output(args.output, [args.content, *style_sources(args), config.init,
                                   *(args.style_masks or [])])
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(lambda: _run(args, config, argv), debug=args.debug,
                       save_partial=lambda image: _save_best(args.output, image))


def _content_size(args):
    """(width, height) of the content image (or the demo's), read from its header."""
    from nst_keras import images

    source = args.content or images.DEMO_CONTENT_URL
    try:
        return images.open_image(source).size
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"cannot read the content image {source}: {reason}") from None


def _sized(args, config: StyleConfig) -> StyleConfig:
    """The config with `--height auto` resolved: the largest height that fits, at most the
    content's own.

    Raises:
        UsageError: If not even the smallest size the layers need fits.
    """
    from nst_keras import runtime
    from nst_keras.features import minimum_size

    if args.height != "auto":
        return config
    import_tensorflow_quietly()
    width, height = _content_size(args)
    device = runtime.resolve_device(config.device)
    precision = runtime.resolve_precision(config.precision, device)
    budget = runtime.memory_budget(device)
    fits = runtime.largest_height(config, width / height, precision, budget)
    smallest = minimum_size(config.content_layers + config.style_layers, config.model)
    if fits < smallest:
        raise UsageError(
            f"not even the smallest size fits in memory: {smallest} pixels high needs about "
            f"{runtime.estimate_memory(smallest, smallest, config, precision)['total'] / 2**30:.1f}"
            f" GiB and about {budget / 2**30:.1f} GiB is available. Received: --height auto"
        )
    chosen = min(fits, height)
    say(args.quiet, f"--height auto: {chosen} (the largest that fits in {budget / 2**30:.1f} "
                    f"GiB is {fits}; the content is {height} pixels high).")
    if config.start_height is not None and config.start_height >= chosen:
        say(args.quiet, f"--start-height {config.start_height} is not below {chosen}: one "
                        "stage only.")
    try:
        return config.replace(height=chosen, start_height=None if config.start_height is None
                              else min(config.start_height, chosen))
    except ValueError as error:
        raise UsageError(_as_option(str(error))) from None


def _dry_run(args, config: StyleConfig) -> int:
    """Prints the memory estimate of the run, per stage and precision; computes nothing."""
    from nst_keras import run, runtime

    import_tensorflow_quietly()
    width, height = _content_size(args)
    aspect = width / height
    device = runtime.resolve_device(config.device)
    chosen = runtime.resolve_precision(config.precision, device)
    budget = runtime.memory_budget(device)
    gib = 2**30
    lines = [f"Estimated peak memory of the run on {runtime.describe_hardware(device)}, "
             f"{config.model}, {config.optimizer}"
             + (f" (m={config.lbfgs_memory})" if config.optimizer == "lbfgs" else "")
             + f"; {budget / gib:.1f} GiB available:",
             f"{'stage':>6} {'size':>11} {'precision':>9} {'total':>9} {'base':>7} "
             f"{'weights':>8} {'activations':>11} {'optimizer':>9} {'images':>7}"]
    heights = run.stage_heights(config)
    for number, stage_height in enumerate(heights, start=1):
        stage_width = max(1, round(stage_height * aspect))
        for precision in ("float32", "bfloat16"):
            parts = runtime.estimate_memory(stage_height, stage_width, config, precision)
            mark = " <- this run" if precision == chosen else ""
            lines.append(
                f"{number:>3}/{len(heights):<2} {f'{stage_width}x{stage_height}':>11} "
                f"{precision:>9} {parts['total'] / gib:>7.2f}G {parts['base'] / gib:>6.2f}G "
                f"{parts['weights'] / gib:>7.2f}G {parts['activations'] / gib:>10.2f}G "
                f"{parts['optimizer'] / gib:>8.2f}G {parts['images'] / gib:>6.2f}G{mark}")
    for precision in ("float32", "bfloat16"):
        fits = runtime.largest_height(config, aspect, precision, budget)
        lines.append(f"Largest height that fits in {precision}: {fits} "
                     f"({max(1, round(fits * aspect))}x{fits}).")
    print("\n".join(lines))
    return EXIT_OK


def _save_best(output: str, image) -> str:
    """Saves the best image so far, if any; returns what to tell the user about it."""
    from nst_keras.images import save_image

    if image is None:
        return "nothing was computed yet, nothing saved"
    save_image(output, image)
    return f"saved the best image so far to {output}"


def _load_inputs(args, config):
    """Loads the content and style images (downloading the demo pair if none were given).

    Returns:
        (content_rgb, style_rgbs, sources): the arrays and what they were read from.

    Raises:
        UsageError: If an image cannot be read, naming the file and the reason.
    """
    from nst_keras import images, run
    from nst_keras.features import minimum_size

    content, styles = args.content, style_sources(args)
    demo = content is None and not styles
    if content is None or not styles:
        if not demo:
            raise UsageError("give both CONTENT and STYLE, or neither for the demo pair")
        content, styles = images.DEMO_CONTENT_URL, [images.DEMO_STYLE_URL]
        say(args.quiet, "No images given: running the demo pair (Tuebingen x The Starry Night), "
                        "downloaded once into the Keras cache.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            content_rgb = read_image("content image", content, config.height)
            sizes = run.style_sizes(config, len(styles), content_rgb.shape[:2])
            label = "style image" if len(styles) == 1 else "style image {}"
            style_rgbs = [read_image(label.format(i), source, **size)
                          for i, (source, size) in enumerate(zip(styles, sizes), start=1)]
        except UsageError as error:
            if demo and "cannot download" in str(error):
                raise UsageError(
                    "cannot download the demo images (no network?); give two local images "
                    f"instead: {PROG} CONTENT.jpg STYLE.jpg -o OUT.png"
                ) from None
            raise
    for warning in caught:
        say(args.quiet, f"{PROG}: warning: {str(warning.message).splitlines()[0]}")
    masks = _load_masks(args, config, content_rgb, len(style_rgbs))
    smallest = minimum_size(config.content_layers + config.style_layers, config.model)
    for role, rgb in [("content", content_rgb)] + [("style", s) for s in style_rgbs]:
        if min(rgb.shape[:2]) < smallest:
            raise UsageError(
                f"the {role} image is {rgb.shape[1]}x{rgb.shape[0]} after resizing; the layers "
                f"used need at least {smallest}x{smallest} pixels"
            )
    try:
        heights = run.checked_stage_heights(config, content_rgb, style_rgbs)
        run.stage_budgets(config.max_evals, len(heights))
    except ValueError as error:
        raise UsageError(_as_option(str(error))) from None
    return content_rgb, style_rgbs, masks, {"content": content, "styles": styles,
                                            "style_masks": args.style_masks}


def _load_masks(args, config, content_rgb, count):
    """The `--style-mask` images as arrays at the content's size, each error a usage error."""
    from nst_keras import images, run

    if args.style_masks is None:
        return None
    opened = []
    for number, source in enumerate(args.style_masks, start=1):
        try:
            opened.append(images.open_image(source))
        except Exception as error:  # Pillow raises many kinds; each means "cannot read".
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UsageError(f"cannot read style mask {number} {source}: {reason}") from None
    try:
        return run.load_masks(opened, content_rgb.shape[:2], count, config)
    except ValueError as error:
        raise UsageError(str(error).replace("Received: mask", "Received: --style-mask")) from None


def _run(args, config: StyleConfig, argv) -> int:
    from nst_keras import run
    from nst_keras.images import save_image

    content_rgb, style_rgbs, masks, sources = _load_inputs(args, config)
    if config.init not in INITS:  # Read it now: a bad file is a usage error, not a crash.
        read_image("init image", config.init)
    say(args.quiet, f"Building {config.model} ({config.weights or 'random weights'}) and the "
                    f"targets at {content_rgb.shape[1]}x{content_rgb.shape[0]} ...")

    with weights_errors_as_usage(config):
        run.load_model(config)  # Built and cached here, so weights errors are usage errors.

    def on_stage(stage, stages, problem):
        size = f"{problem.x0.shape[2]}x{problem.x0.shape[1]}"
        where = f"stage {stage}/{stages} at {size}, " if stages > 1 else ""
        bar.write(f"Running {config.optimizer} in {problem.precision} on {problem.hardware}; "
                  f"{where}at most {problem.config.max_evals} evaluations.")

    def save_every(progress):
        if args.save_every and progress.iteration % args.save_every == 0:
            stem, extension = os.path.splitext(args.output)
            save_image(f"{stem}-iter{progress.iteration:04d}{extension}", progress.image)

    with ProgressBar(args.quiet, config.max_evals, on_progress=save_every) as bar:
        result = run.run_stages(content_rgb, style_rgbs, config, callback=bar,
                                on_stage=on_stage, masks=masks)
    save_image(args.output, result.image)
    say(args.quiet, f"Wrote {args.output}: loss {result.loss:.6g} (content "
                    f"{result.content_loss:.4g}, style {result.style_loss:.4g}, tv "
                    f"{result.tv_loss:.4g}) after {result.iterations} iterations, "
                    f"{result.evaluations} evaluations, {result.seconds:.1f} s in "
                    f"{result.precision} ({result.seconds / max(1, result.evaluations):.2f} "
                    f"s/evaluation; setup {result.setup_seconds:.1f} s).")
    if args.report is not None:
        from nst_keras.record import write_report

        stem = os.path.splitext(os.path.basename(args.output))[0]
        paths = write_report(result, args.report, stem=stem, argv=argv,
                             inputs=dict(sources, init=config.init), output=args.output)
        say(args.quiet, f"Wrote the run record {paths[0]} and the loss plot {paths[1]}.")
    return EXIT_OK
