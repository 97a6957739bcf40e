"""The command line: `python -m nst_keras CONTENT STYLE -o OUT.png` (or `nst-keras ...`).

`main(argv)` dispatches a command (`figure`, `batch`, ...) or runs a plain run through the
one command preamble (`console.command`): the options become a `StyleConfig` (the preset's
values, then the options given; the options are built from `StyleConfig`'s field
metadata) and the output path is checked; then, under the run guard, `plan.plan` reads and
checks every input (exit 2 on any problem, before a model is built), `console.render_job`
renders the job (a signal stops it at the next evaluation with its best image), and
`console.deliver` writes the image (and, with `--report`, the loss plot and the record).
Exit codes: see `console`.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from nst_keras import __version__
from nst_keras.config import PRESETS, StyleConfig
from nst_keras.commands.console import (
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    HelpFormatter,
    Parser,
    UsageError,
    add_config_options,
    as_usage,
    check_folder,
    check_output,
    positive_int,
    say,
)

#: The commands besides a plain run: name -> (module, what it does).
COMMANDS = {
    "figure": ("nst_keras.commands.figures", "reproduce Figure 1, 2 or 3 of Gatys et al."),
    "batch": ("nst_keras.commands.batch", "stylise many photos with many styles, resumably"),
    "video": ("nst_keras.commands.video", "stylise a video without flicker (Ruder et al. 2016)"),
    "train": ("nst_keras.commands.train", "train a feed-forward network for one style, then "
              "stylise any photo in one pass with --network"),
    "app": ("nst_keras.commands.app", "serve a web page: upload, watch it paint, stop, download"),
    "normalize-vgg": ("nst_keras.commands.normalize_command",
                      "rescale VGG so each filter's mean activation over photos is 1 "
                      "(Gatys et al.), once, for --model vgg19-normalized"),
}

DEFAULTS = StyleConfig()


def build_parser(defaults: StyleConfig = DEFAULTS, preset_name: str = "book"):
    """The argument parser of a plain run; every default comes from `defaults`, the values
    of the preset `preset_name` (so `--preset NAME --help` shows that preset's values).
    The settings' options come from `StyleConfig`'s field metadata."""
    parser = Parser(
        prog=PROG,
        description=(
            "Neural style transfer (Gatys et al. 2015) as in Chollet's Deep Learning with "
            "Python, 8.3. Renders CONTENT in the style of STYLE. With no images, runs the "
            "paper's demo pair (Tuebingen in the style of The Starry Night, downloaded once; "
            "a few minutes on a CPU at the default size)."
        ),
        epilog=(
            "Also: " + "; ".join(f"'{PROG} {name}' to {what} (see '{PROG} {name} --help')"
                                 for name, (_, what) in COMMANDS.items())
            + ". Exit codes: 0 done, 1 failed (best image saved), 2 bad usage, 130/143 "
            "interrupted (best image saved)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    groups = {name: parser.add_argument_group(name)
              for name in ("images", "method", "optimisation")}
    io = groups["images"]
    io.add_argument("content", nargs="?", default=None,
                    help="content image: a path or an http(s) URL")
    io.add_argument("style", nargs="?", default=None, help="style image: a path or an http(s) URL")
    io.add_argument("--network", default=None, metavar="NET.keras",
                    help=f"a style network from '{PROG} train': stylise CONTENT in one pass "
                         "(a fraction of a second) instead of optimising; no STYLE")
    io.add_argument("--style", dest="styles", nargs="+", default=None, metavar="STYLE",
                    help="several style images, blended (instead of the positional STYLE; "
                         "put CONTENT before it, or end the list with --)")
    io.add_argument("-o", "--output", default="stylized.png",
                    help="where to write the result (.png, .jpg, .webp, .tif, ...), with the "
                         "sRGB colour profile")
    io.add_argument("--bit-depth", type=int, choices=(8, 16), default=None,
                    help="bits per channel of the result: 16 for .png or .tif (default: 16 "
                         "for .tif, 8 otherwise)")
    io.add_argument("--style-mask", dest="style_masks", nargs="+", default=None,
                    metavar="MASK", help="one mask per style: white where that style applies, "
                                         "grey blends; resized to the content (same aspect "
                                         "ratio); where no mask reaches, content only")
    groups["method"].add_argument(
        "--preset", choices=sorted(PRESETS), default=preset_name,
        help="named settings that the options below override (gatys2015: the paper's; what "
             "each sets: docs/presets.md, or --preset NAME --help)")
    add_config_options(parser, defaults, groups=groups)
    out = parser.add_argument_group("output")
    out.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                     help="also write the image every N iterations (OUT-iter0010.png, ...)")
    out.add_argument("--dry-run", action="store_true",
                     help="check every input as the run would (images, weights, output "
                          "path), print the estimated peak memory of the run (per stage and "
                          "precision) and the largest height that fits, then stop: no model "
                          "is built, no weights downloaded")
    out.add_argument("--report", default=None, metavar="DIR",
                     help="also write OUT.json (settings, versions, hardware, every iteration) "
                          "and OUT-loss.png (the losses against evaluations) into DIR")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    from nst_keras.commands.console import add_checkpoint_options

    add_checkpoint_options(parser)
    return parser


def config_from_args(args) -> StyleConfig:
    """The `StyleConfig` that parsed arguments describe (see `console.config_from_args`)."""
    from nst_keras.commands.console import config_from_args as from_args

    return from_args(args)


def inputs_of(args) -> tuple:
    """(content, styles, demo): what to render, the demo pair when no image is given.

    Raises:
        UsageError: If the style is given twice, `--style` took the content's path, or only
            one of CONTENT and STYLE is given.
    """
    from nst_keras.media import images

    if getattr(args, "network", None) is not None:
        given = list(args.styles or ([args.style] if args.style else []))
        if given:
            raise UsageError("a network paints its own style: give --network or a style "
                             f"image, not both. Received: --network {args.network} and "
                             f"{' '.join(given)}")
        if args.content is None:
            raise UsageError(f"--network needs a CONTENT photo. Received: --network "
                             f"{args.network} and no CONTENT")
        return args.content, [], False
    if args.styles and args.style:
        raise UsageError("give the style as STYLE or as --style, not both. "
                         f"Received: {args.style} and --style {' '.join(args.styles)}")
    styles = list(args.styles or ([args.style] if args.style else []))
    if args.styles and args.content is None:
        raise UsageError(
            f"--style took every path after it ({' '.join(args.styles)}), so no CONTENT is "
            f"left: put CONTENT before --style, or end the style list with -- "
            f"({PROG} CONTENT --style A B, or {PROG} --style A B -- CONTENT)")
    if args.content is None and not styles:
        return images.DEMO_CONTENT_URL, [images.DEMO_STYLE_URL], True
    if args.content is None or not styles:
        raise UsageError("give both CONTENT and STYLE, or neither for the demo pair. "
                         f"Received: CONTENT {args.content or '(none)'}, STYLE (none)")
    return args.content, styles, False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code.

    Args:
        argv: The arguments (without the program name); `sys.argv[1:]` if None.

    Returns:
        0 on success; 1 if the run failed; 2 on bad usage or input; 130 / 143 if
        stopped by SIGINT / SIGTERM (the best image delivered).
    """
    import importlib

    from nst_keras.commands.console import command

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    return command(PROG, argv, _parse, lambda run, guard: _run(run, argv, guard),
                   save_partial=lambda run, image: _save_best(run.args.output, image))


class _Parsed:
    """A plain run's parsed command line: the options, the settings and the inputs."""

    def __init__(self, args, config, content, styles, demo):
        self.args, self.config = args, config
        self.content, self.styles, self.demo = content, styles, demo
        self.debug = args.debug


def _parse(argv) -> _Parsed:
    from nst_keras.commands.console import parse_with_preset

    args = parse_with_preset(build_parser, argv)
    config = config_from_args(args)
    content, styles, demo = inputs_of(args)
    # A dry run checks what the run would: its answer is whether this command would run.
    check_output(args.output, [content, *styles, config.init, *(args.style_masks or [])])
    bit_depth_of(args)
    if args.report is not None:
        check_folder(args.report, "--report")
    return _Parsed(args, config, content, styles, demo)


def bit_depth_of(args) -> int:
    """The result's bits per channel (`images.output_bit_depth`).

    Raises:
        UsageError: If 16 bits are asked of a format without them.
    """
    from nst_keras.media.images import output_bit_depth

    try:
        return output_bit_depth(args.output, args.bit_depth)
    except ValueError:
        raise UsageError("16 bits per channel need a .png or .tif output. "
                         f"Received: --bit-depth {args.bit_depth}, -o {args.output}") from None


def plan_of(args, config: StyleConfig, content, styles, demo: bool):
    """`plan.plan` of the run, its errors as usage errors in the command line's words.

    Raises:
        UsageError: For any input or setting the plan refuses.
    """
    from nst_keras.engine import features
    from nst_keras.plan import plan

    if demo:
        say(args.quiet, "No images given: running the demo pair (Tuebingen x The Starry "
                        "Night), downloaded once into the Keras cache.")
    try:
        job = plan(content, styles, config=config, masks=args.style_masks,
                   fit_height=args.height == "auto", load=not args.dry_run)
    except ValueError as error:
        if demo and "cannot download" in str(error):
            weights = ""
            if config.weights == "imagenet" and not os.path.isfile(
                    features.imagenet_weights_path(config.model)):
                weights = (f" --weights PATH (the ImageNet weights of {config.model} are not "
                           "in ~/.keras/models either)")
            raise UsageError("cannot download the demo images (no network?); give two local "
                             f"images instead: {PROG} CONTENT.jpg STYLE.jpg -o OUT.png"
                             f"{weights}") from None
        raise as_usage(error) from None
    for note in job.notes:
        say(args.quiet, f"{PROG}: {as_usage(note)}")
    return job


def _run(run: _Parsed, argv, guard) -> int:
    from nst_keras import delivery
    from nst_keras.commands import console

    args, config = run.args, run.config
    if args.network is not None:
        return _run_network(run, argv, guard)
    job = plan_of(args, config, run.content, run.styles, run.demo)
    if args.dry_run:
        console.check_weights(job.config)  # What loading the model would refuse.
        return _dry_run(job)
    height, width = job.size
    say(args.quiet, f"Building {config.model} ({config.weights or 'random weights'}) and the "
                    f"targets at {width}x{height} ...")

    def every(progress):
        if args.save_every and progress.iteration % args.save_every == 0:
            stem, extension = os.path.splitext(args.output)
            delivery.write_image(f"{stem}-iter{progress.iteration:04d}{extension}",
                                 progress.image, guard.critical)

    stem = os.path.basename(args.output)
    checkpoints = console.checkpoint_file(args, job, os.path.dirname(os.path.abspath(
        args.output)), stem)
    result = console.render_job(job, guard, quiet=args.quiet, on_progress=every,
                                checkpoints=checkpoints)
    done = console.deliver(result, job, guard, prog=PROG, output=args.output,
                           report=args.report, argv=argv, checkpoints=checkpoints,
                           bit_depth=bit_depth_of(args))
    if done.fallback:
        return EXIT_FAILED
    if result.stopped:
        kept = (f"; rerun the same command to go on exactly from there (checkpoint "
                f"{checkpoints.path})" if os.path.isfile(checkpoints.path) else "")
        return guard.stopped(PROG, f"saved the best image so far to {done.image} (loss "
                                   f"{result.loss:.6g} after {result.evaluations} "
                                   f"evaluations){kept}")
    say(args.quiet, console.summary_line(result, f"Wrote {done.image}"))
    if done.record is not None:
        say(args.quiet, f"Wrote the run record {done.record} and the loss plot {done.plot}.")
    return EXIT_OK


#: Plain-run settings that mean nothing to a network's pass (refused when given, in full or
#: abbreviated: their parsed value differs from the default).
NETWORK_REFUSES = ("max_evals", "iterations", "optimizer", "learning_rate", "scales",
                   "start_height", "init", "tile", "style_loss", "style_weight",
                   "content_weight", "style_layers", "content_layers", "tv_weight",
                   "histogram_weight", "style_scale", "save_every", "ema",
                   "normalize_gradients")


def _run_network(run: _Parsed, argv, guard) -> int:
    """A plain run with `--network`: the photo through a trained network, planned, rendered
    and delivered as any run is (`plan.plan_network`, `render.render_network`)."""
    from nst_keras import plan, render
    from nst_keras.commands import console

    args, config = run.args, run.config
    given = console.options_given(build_parser, args, NETWORK_REFUSES, ["x.jpg"])
    if given:
        option = given[0]
        raise UsageError(f"{option} does not apply to a network's pass (one pass: no "
                         f"optimisation, loss, budget or tiles). Received: {option} with "
                         f"--network {args.network}")
    if args.style_masks:
        raise UsageError("a network's pass has no style masks (a network paints one style "
                         f"everywhere). Received: --style-mask {' '.join(args.style_masks)}")
    job = console.planned(plan.plan_network, run.content, args.network, config=config,
                          fit_height=args.height == "auto", load=not args.dry_run)
    if not args.dry_run:  # A file Keras cannot rebuild: one line, before the pass.
        from nst_keras.engine import runtime

        console.planned(runtime.NETWORKS.get, args.network)
    for note in job.notes:
        say(args.quiet, f"{PROG}: {as_usage(note)}")
    if args.dry_run:
        height, width = job.size
        fits = job.memory["fits"]
        print(f"A {width}x{height} pass through {args.network} on {job.placement.hardware} in "
              f"{job.placement.precision}: about {job.memory['need'] / 2**30:.2f} GiB of "
              f"{job.memory['budget'] / 2**30:.1f} available; "
              + (f"the largest height that fits: {fits}." if fits else
                 "no height fits: this run does not fit."))
        return EXIT_OK
    with guard.stoppable() as token:
        result = render.render_network(job, stop=token)
    done = console.deliver(result, job, guard, prog=PROG, output=args.output,
                           report=args.report, argv=argv, bit_depth=bit_depth_of(args))
    if done.fallback:
        return EXIT_FAILED
    style = job.record.get("style", {}).get("name", "its style")
    say(args.quiet, f"Wrote {done.image}: {job.size[1]}x{job.size[0]} in the style of {style} "
                    f"in one pass of {result.seconds:.2f} s (the first pass at a size includes "
                    f"tracing the network).")
    return EXIT_OK


def _dry_run(job) -> int:
    """Prints the memory estimate of the run, per stage and precision; computes nothing.

    Always the table and the largest heights; then, when the run does not fit, why and what
    would (exit 0: it is an answer, not an error).
    """
    from nst_keras import plan

    config, where = job.config, job.placement
    budget = job.memory["budget"]
    style_whs, temporal = job.memory.get("style_whs", ()), job.memory.get("temporal", False)
    # The plan's own aspect (the content's), so that the largest height printed is the one
    # the refusal's "try --height N" gives; a stage's rounded width can differ by a pixel.
    aspect = job.memory["aspect"]
    gib = 2**30
    columns = ("base", "weights", "activations", "history", "optimizer", "images", "tiling",
               "styles") + (("mrf",) if config.style_loss == "mrf" else ())  # Its patches.
    lines = [f"Estimated peak memory of the run on {where.hardware}, {config.model}, "
             f"{config.optimizer}"
             + (f" (m={config.lbfgs_memory}; history: 2m float64 per pixel value)"
                if config.optimizer == "lbfgs" else "")
             + f"; {budget / gib:.1f} GiB available:",
             f"{'stage':>6} {'size':>11} {'precision':>9} {'total':>9} "
             + " ".join(f"{c:>{max(7, len(c))}}" for c in columns) + "  tiles"]
    for stage in job.stages:
        for precision in ("float32", "bfloat16"):
            tiles, parts = plan.stage_memory(config, stage.height, stage.width, precision,
                                             budget, styles=stage.styles, temporal=temporal)
            mark = " <- this run" if precision == where.precision else ""
            tiled = tiles.describe() if tiles is not None else "untiled"
            lines.append(
                f"{stage.number:>3}/{len(job.stages):<2} "
                f"{f'{stage.width}x{stage.height}':>11} "
                f"{precision:>9} {parts['total'] / gib:>8.2f}G "
                + " ".join(f"{parts.get(c, 0) / gib:>{max(7, len(c)) - 1}.2f}G" for c in columns)
                + f"  {tiled}{mark}")
    for precision in ("float32", "bfloat16"):
        fits = plan.fitting_height(config, aspect, precision, budget, style_whs, temporal)
        lines.append(f"Largest height that fits in {precision}: {fits} "
                     f"({max(1, round(fits * aspect))}x{fits}).")
    if job.memory["need"] > budget:
        reason, suggestion = plan.memory_verdict(job.stages[-1], job.memory, config)
        lines.append(f"This run does not fit: {as_usage(reason)}.")
        lines.append(f"What would fit: {as_usage(suggestion)}")
    if job.memory.get("decode"):
        lines.append(f"This run does not fit: {as_usage(job.memory['decode'])}")
    print("\n".join(lines))
    return EXIT_OK


def _save_best(output: str, image) -> str:
    """Saves the best image of a failed run, if any; returns what to tell the user about it."""
    from nst_keras import delivery

    if image is None:
        return "nothing was computed yet, nothing saved"
    delivery.write_image(output, image)
    return f"saved the best image so far to {output}"
