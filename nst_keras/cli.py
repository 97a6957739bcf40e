"""The command line: `python -m nst_keras CONTENT STYLE -o OUT.png` (or `nst-keras ...`).

`main(argv)` dispatches a command (`figure`, `batch`, ...) or runs a plain run: the options
become a `StyleConfig` (the preset's values, then the options given; the options are built
from `StyleConfig`'s field metadata), the output path is checked, then, under
`console.run_guarded`, `plan.plan` reads and checks every input (exit 2 on any problem,
before a model is built) and `console.render_and_save` renders the job and writes the
image (and, with `--report`, the run record). Exit codes: see `console`.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from nst_keras import __version__
from nst_keras.config import PRESETS, StyleConfig
from nst_keras.console import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    HelpFormatter,
    Parser,
    UsageError,
    add_config_options,
    as_usage,
    check_folder,
    check_output,
    config_changes,
    plural,
    preset_in,
    positive_int,
    render_and_save,
    run_guarded,
    say,
)

#: The commands besides a plain run: name -> (module, what it does).
COMMANDS = {
    "figure": ("nst_keras.figures", "reproduce Figure 1, 2 or 3 of Gatys et al."),
    "batch": ("nst_keras.batch", "stylise many photos with many styles, resumably"),
    "video": ("nst_keras.video", "stylise a video without flicker (Ruder et al. 2016)"),
    "app": ("nst_keras.app", "serve a web page: upload, watch it paint, stop, download"),
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
    io.add_argument("--style", dest="styles", nargs="+", default=None, metavar="STYLE",
                    help="several style images, blended (instead of the positional STYLE; "
                         "put CONTENT before it, or end the list with --)")
    io.add_argument("-o", "--output", default="stylized.png",
                    help="where to write the result (.png, .jpg, .webp, ...)")
    io.add_argument("--style-mask", dest="style_masks", nargs="+", default=None,
                    metavar="MASK", help="one mask per style: white where that style applies, "
                                         "grey blends; resized to the content (same aspect "
                                         "ratio); where no mask reaches, content only")
    groups["method"].add_argument(
        "--preset", choices=sorted(PRESETS), default=preset_name,
        help="named settings that the options below override (gatys2015: the paper's; see "
             "the README)")
    add_config_options(parser, defaults, groups=groups)
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


def config_from_args(args) -> StyleConfig:
    """The `StyleConfig` that parsed arguments describe (`--height auto`: a placeholder
    height, chosen by the plan once the content's size is known).

    Raises:
        UsageError: If a value is invalid, naming its option.
    """
    values = config_changes(args)
    if values["height"] == "auto":
        values["height"] = max(StyleConfig.height, args.start_height or 1)
    try:
        return StyleConfig(**values)
    except ValueError as error:
        raise as_usage(error) from None


def inputs_of(args) -> tuple:
    """(content, styles, demo): what to render, the demo pair when no image is given.

    Raises:
        UsageError: If the style is given twice, `--style` took the content's path, or only
            one of CONTENT and STYLE is given.
    """
    from nst_keras import images

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
        interrupted by SIGINT / SIGTERM.
    """
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    try:
        name, defaults = preset_in(argv)
        args = build_parser(defaults, name).parse_args(argv)
        config = config_from_args(args)
        content, styles, demo = inputs_of(args)
        if not args.dry_run:
            check_output(args.output, [content, *styles, config.init, *(args.style_masks or [])])
        if args.report is not None:
            check_folder(args.report, "--report")
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(lambda guard: _run(args, config, argv, content, styles, demo, guard),
                       debug=args.debug,
                       save_partial=lambda image: _save_best(args.output, image))


def plan_of(args, config: StyleConfig, content, styles, demo: bool):
    """`plan.plan` of the run, its errors as usage errors in the command line's words.

    Raises:
        UsageError: For any input or setting the plan refuses.
    """
    from nst_keras import features
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


def _run(args, config: StyleConfig, argv, content, styles, demo, guard) -> int:
    job = plan_of(args, config, content, styles, demo)
    if args.dry_run:
        return _dry_run(job)
    height, width = job.size
    say(args.quiet, f"Building {config.model} ({config.weights or 'random weights'}) and the "
                    f"targets at {width}x{height} ...")
    result = render_and_save(job, guard, quiet=args.quiet, output=args.output,
                             report=args.report, argv=argv, save_every=args.save_every)
    say(args.quiet, f"Wrote {args.output}: loss {result.loss:.6g} ("
                    + ", ".join(f"{kind} {value:.4g}" for kind, value in
                                result.kind_losses.items())
                    + f") after {plural(result.iterations, 'iteration')}, "
                    f"{plural(result.evaluations, 'evaluation')}, {result.seconds:.1f} s in "
                    f"{result.precision} ({result.seconds / max(1, result.evaluations):.2f} "
                    f"s/evaluation; setup {result.setup_seconds:.1f} s).")
    if args.report is not None:
        stem = os.path.splitext(os.path.basename(args.output))[0]
        say(args.quiet, f"Wrote the run record {os.path.join(args.report, stem + '.json')} and "
                        f"the loss plot {os.path.join(args.report, stem + '-loss.png')}.")
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
    aspect = job.stages[-1].width / job.stages[-1].height
    gib = 2**30
    columns = ("base", "weights", "activations", "history", "optimizer", "images", "tiling",
               "styles")
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
    """Saves the best image so far, if any; returns what to tell the user about it."""
    from nst_keras.images import save_image

    if image is None:
        return "nothing was computed yet, nothing saved"
    save_image(output, image)
    return f"saved the best image so far to {output}"
