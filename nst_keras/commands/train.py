"""`nst-keras train STYLE --photos DIR -o starry.keras`: a style's feed-forward network.

The front-end of `engine.training`: reads and checks the style image and the photos (each
decoded through the project's image readers, kept with its shorter side at the crop's size;
unreadable ones and ones smaller than the crop skipped and counted), builds VGG and the
transformer, trains with Adam under the run guard, and writes the network (`.keras`, its
record inside), the record (`OUT.json`) and the loss plot (`OUT-loss.png`) beside it, each
atomically. Like every long run here it shows a progress bar (the loss by kind, the rate,
the ETA), writes a preview of the held-out photos every `--preview-every` steps, and keeps
a checkpoint (`delivery.CheckpointFile`, kind `"training"`) so that rerunning the same
command after Ctrl-C, SIGTERM or `kill -9` goes on from the last one.

Exactness: with `--seed`, op determinism is turned on (`tf.config.experimental.
enable_op_determinism`) and a resumed network is bit for bit an uninterrupted one on the
CPU. Without `--seed`, a seed is drawn and kept in the checkpoint, so a resumed run takes
the same photos and crops, but TensorFlow's kernels may sum in another order: as a plain
run without a seed, it goes on from where it was, not bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from nst_keras.config import StyleConfig
from nst_keras.commands.console import (EXIT_OK, PROG, HelpFormatter, Parser, UsageError,
                                        add_checkpoint_options, add_config_options, as_usage,
                                        check_folder, positive_int, say)

#: The `StyleConfig` settings a training uses: the loss's and the network's.
TRAIN_FIELDS = ("content_layers", "style_layers", "content_weight", "style_weight",
                "content_layer_weights", "style_layer_weights", "style_loss",
                "histogram_weight", "tv_weight", "tv_power", "tv_edges", "normalization",
                "style_scale", "style_resize", "model", "weights", "pooling", "padding",
                "seed", "device", "precision")

#: Steps between two previews by default.
PREVIEW_EVERY = 100

#: How many photos the folder's held-out previews take when no --preview is given.
HELD_OUT = 1

NAME = f"{PROG} train"


def build_parser(defaults: StyleConfig = StyleConfig(), preset_name: str = "book"):
    """The parser of `nst-keras train`; the loss's defaults are the preset's."""
    from nst_keras.config import PRESETS
    from nst_keras.engine import training

    parser = Parser(
        prog=NAME, formatter_class=HelpFormatter,
        description="Train a feed-forward network for one style (Johnson et al. 2016, with "
                    "instance normalisation), on this project's own loss terms, so that "
                    f"'{PROG} PHOTO --network OUT.keras' stylises any photo in one pass.",
        epilog="Rerun the same command after Ctrl-C, SIGTERM or a crash to go on from the "
               "last checkpoint (bit for bit with --seed on the CPU).")
    parser.add_argument("style", metavar="STYLE", help="the style image: a path or URL")
    parser.add_argument("--photos", required=True, metavar="DIR",
                        help="a folder of photos to train on (a few dozen of your own, or "
                             "more; see the docs)")
    parser.add_argument("-o", "--output", default=None,
                        help="the network file (.keras); default: STYLE's name with .keras, "
                             "in the current folder")
    group = parser.add_argument_group("training")
    group.add_argument("--steps", type=positive_int, default=training.TrainConfig.steps,
                       help="optimiser steps (Adam)")
    group.add_argument("--size", type=positive_int, default=training.TrainConfig.size,
                       metavar="PX", help="the side of the square training crops (a "
                                          "multiple of 4)")
    group.add_argument("--batch-size", type=positive_int,
                       default=training.TrainConfig.batch_size, help="photos per step")
    group.add_argument("--learning-rate", dest="train_learning_rate", type=float,
                       default=training.LEARNING_RATE,
                       help="Adam's learning rate for the first half of the steps; it falls "
                            "to a tenth of it by the last")
    group.add_argument("--width", type=positive_int, default=training.TrainConfig.width,
                       help="the network's first layer's channels (Johnson's: 32, about 3x "
                            "slower to train and to run)")
    group.add_argument("--zoom", type=float, default=training.TrainConfig.zoom,
                       help="the crops' largest magnification: each crop is a square "
                            "between --size and ZOOM x --size px of the photo (its shorter "
                            "side at most that), brought down to --size; 1: whole views only")
    group.add_argument("--preview", nargs="+", default=None, metavar="PHOTO",
                       help="photos to preview every --preview-every steps (never trained "
                            "on); default: the folder's last photo, held out")
    group.add_argument("--preview-every", type=positive_int, default=PREVIEW_EVERY,
                       metavar="N", help="steps between two previews (OUT-preview.jpg)")
    group.add_argument("--preset", choices=sorted(PRESETS), default=preset_name,
                       help="the loss's settings, as a plain run's")
    add_config_options(parser, defaults, fields=TRAIN_FIELDS,
                       groups={"loss and network": group})
    out = parser.add_argument_group("output")
    out.add_argument("--dry-run", action="store_true",
                     help="check every input, print the estimated peak memory, then stop")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    add_checkpoint_options(parser)
    return parser


@dataclasses.dataclass(frozen=True)
class Photos:
    """The photos a training draws from, decoded and kept at the crop's scale.

    Attributes:
        paths: The kept photos' paths, in natural order.
        pixels: Each kept photo, RGB uint8, its shorter side at most the crop's times the
            zoom (`kept_size`);
            none when read without loading (a dry run).
        previews: The held-out photos' paths.
        skipped: Reason -> how many photos it removed.
        sizes: Each kept photo's (height, width) as kept, from its header.
    """

    paths: Tuple[str, ...]
    pixels: Tuple[np.ndarray, ...] = dataclasses.field(repr=False)
    previews: Tuple[str, ...]
    skipped: dict
    sizes: Tuple[Tuple[int, int], ...] = ()

    @property
    def kept_pixels(self) -> int:
        """The pixels of every kept photo: what training holds of them."""
        return sum(h * w for h, w in self.sizes)


def read_photos(folder: str, size: int, zoom: float,
                previews: Optional[Sequence[str]] = None, load: bool = True) -> Photos:
    """The folder's usable photos; unreadable ones and ones under the crop are counted.

    Args:
        folder: The photos' folder.
        size: The crop's side.
        zoom: The crops' largest magnification (`training.TrainConfig.zoom`): no default,
            so that no caller keeps the photos at another scale than its training's.
        previews: Photos to hold out for previews; None holds out the folder's last
            `HELD_OUT` photo(s) when at least two are usable.
        load: Decode the pixels (False: headers only, for a dry run).

    Raises:
        ValueError: If the folder is missing, holds no images, or no usable photo.
    """
    from nst_keras.engine import training
    from nst_keras.media import images

    found = images.find_images(folder)
    if found is None:
        raise ValueError(f"the photos' folder does not exist. Received: photos={folder!r}")
    if not found:
        raise ValueError(f"the photos' folder holds no images (.jpg, .png, ...). "
                         f"Received: photos={folder!r}")
    held = [os.path.abspath(p) for p in previews or ()]
    skipped = {"unreadable": 0, f"smaller than the {size} px crop": 0}
    usable: List[Tuple[str, Tuple[int, int]]] = []
    for path in found:
        if os.path.abspath(path) in held:
            continue
        try:
            w, h = images.image_size(path)
        except (OSError, ValueError):
            skipped["unreadable"] += 1
            continue
        kept = training.kept_size(h, w, size, zoom)
        if kept is None:
            skipped[f"smaller than the {size} px crop"] += 1
            continue
        usable.append((path, kept))
    if previews is None and len(usable) > HELD_OUT:
        held_out, usable = usable[-HELD_OUT:], usable[:-HELD_OUT]
        previews = [p for p, _ in held_out]
    pixels, paths, sizes = [], [], []
    for path, kept in usable:
        if load:
            try:
                rgb = images.load_image(path)
            except (OSError, ValueError):
                skipped["unreadable"] += 1
                continue
            pixels.append(training.prepare_photo(rgb, size, zoom))
        paths.append(path)
        sizes.append(kept)
    if not paths:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items() if n)
        raise ValueError(f"no usable photo in the folder ({counts}). Received: "
                         f"photos={folder!r}")
    return Photos(tuple(paths), tuple(pixels), tuple(previews or ()),
                  {k: v for k, v in skipped.items() if v}, tuple(sizes))


def _parse(argv):
    from nst_keras.commands.console import parse_with_preset
    from nst_keras.engine import training

    args = parse_with_preset(build_parser, argv)
    values = {name: getattr(args, name) for name in TRAIN_FIELDS}
    try:
        style = StyleConfig(**values)
        args.config = training.TrainConfig(
            style=style, steps=args.steps, size=args.size, batch_size=args.batch_size,
            learning_rate=args.train_learning_rate, width=args.width, zoom=args.zoom)
    except ValueError as error:
        raise as_usage(error) from None
    if args.output is None:
        stem = os.path.splitext(os.path.basename(args.style.rstrip("/")))[0] or "style"
        args.output = f"{stem}.keras"
    if not args.output.endswith(".keras"):
        raise UsageError(f"the network file must end in .keras. Received: -o {args.output}")
    if os.path.isdir(args.output):
        raise UsageError(f"the output is a folder. Received: -o {args.output}")
    check_folder(os.path.dirname(os.path.abspath(args.output)), "-o")
    for path in args.preview or ():
        if not os.path.isfile(path):
            raise UsageError(f"the preview photo does not exist. Received: --preview {path}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`nst-keras train`: trains and writes a style network; returns the exit code."""
    from nst_keras.commands.console import command

    return command(NAME, argv, _parse, _work)


def _stem(output: str) -> str:
    return output[:-len(".keras")]


def _work(args, guard) -> int:
    from nst_keras import delivery, keys
    from nst_keras.commands import console
    from nst_keras.commands.bars import Bar
    from nst_keras.engine import runtime, training
    from nst_keras.media import images

    config: training.TrainConfig = args.config
    try:
        photos = read_photos(args.photos, config.size, config.zoom, args.preview,
                             load=not args.dry_run)
        style_rgb = images.load_image(args.style)
        where = runtime.placement(config.style)
    except ValueError as error:
        raise as_usage(error) from None
    skipped = "".join(f", {n} {why} skipped" for why, n in photos.skipped.items())
    say(args.quiet, f"{NAME}: {len(photos.paths)} photos in {args.photos}{skipped}"
                    + (f"; previews of {', '.join(os.path.basename(p) for p in photos.previews)}"
                       f" (held out)" if photos.previews else ""))
    console.check_weights(config.style)
    if args.dry_run:
        return _dry_run(config, where, photos)
    need = training.training_memory(config, where.precision, photos.kept_pixels)
    budget = runtime.memory_budget(where.device)
    if where.device == "cpu" and need["total"] > budget:
        raise UsageError(f"training needs about {need['total'] / 2**30:.1f} GiB, more than the "
                         f"{budget / 2**30:.1f} GiB available; try a smaller --batch-size or "
                         f"--size. Received: --batch-size {config.batch_size} --size "
                         f"{config.size}")
    if config.style.seed is not None:
        # Bit-for-bit resume: TensorFlow's kernels then sum in one fixed order.
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    seed = config.style.seed
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed
    key = training_key(args, photos.paths)
    folder = os.path.dirname(os.path.abspath(args.output))
    stem = os.path.basename(_stem(args.output))
    every = args.checkpoint_every
    if config.style.weights is None and config.style.seed is None:
        # Random VGG weights are drawn anew in every process: no other could go on exactly.
        say(args.quiet, f"{NAME}: checkpoints are off: "
                        f"{delivery.unresumable(config.style)}")
        every = "off"
    path = delivery.checkpoint_path(folder, stem, key)
    if every != "off" and not os.path.isfile(path):
        # Another key's checkpoint of this output is removed (`CheckpointFile`): say why.
        for other in delivery.stale_checkpoints(path):
            say(args.quiet, f"{NAME}: the photos, the style or the settings changed since "
                            f"the checkpoint {other}: starting from step 0 (it is removed)")
    checkpoints = delivery.CheckpointFile(
        path, enabled=every != "off",
        every=None if every in ("auto", "off") else every, restart=args.restart,
        note=lambda message: say(args.quiet, f"{NAME}: {message}"))
    loss_config = config.loss_config
    say(args.quiet, f"Building {loss_config.model} ({loss_config.weights or 'random weights'}) "
                    f"in {where.precision} and a network of width {config.width} ...")
    from nst_keras.engine import objective, transformer

    with console.weights_errors_as_usage(loss_config):
        feature_model = runtime.MODELS.for_config(
            loss_config, objective.term_layers(objective.make_terms(loss_config)), where)
    network = transformer.build_transformer(config.width, seed=seed)
    from nst_keras.plan import training_style_height

    style_seen = training.style_at(style_rgb, config, training_style_height(config))
    trainer = training.Trainer(config, feature_model, style_seen, network, seed=seed)
    resumed = 0
    if checkpoints.resume is not None and checkpoints.resume.kind == "training":
        trainer.restore(checkpoints.resume.solver)
        resumed = trainer.step
    try:
        preview_rgbs = [images.load_image(p, config.size) for p in photos.previews]
    except (OSError, ValueError) as error:
        raise as_usage(error) from None
    began = time.perf_counter()
    from nst_keras.engine.control import pace

    with Bar(args.quiet, config.steps, "step", "training") as bar, guard.stoppable() as token:
        bar.show(trainer.step)

        def on_step(values):
            speed = pace(trainer.step - resumed, config.steps - resumed,
                         time.perf_counter() - began)
            bar.show(trainer.step, fields={"loss": f"{values.loss:.4g}", **{
                k: f"{v:.3g}" for k, v in values.kinds.items()}}, rate=speed.rate,
                eta=speed.eta)
            if preview_rgbs and (trainer.step % args.preview_every == 0
                                 or trainer.step == config.steps):
                _write_preview(args.output, network, preview_rgbs, guard)
            checkpoints.at_boundary(lambda: _checkpoint(trainer), bool(token.requested))

        training.run_training(trainer, photos.pixels, config.steps, on_step=on_step,
                              stop=token)
    seconds = time.perf_counter() - began
    if trainer.step < config.steps:
        kept = (f"rerun the same command to go on from step {trainer.step} (checkpoint "
                f"{checkpoints.path})" if os.path.isfile(checkpoints.path)
                else "no checkpoint was kept")
        return guard.stopped(NAME, f"stopped at step {trainer.step} of {config.steps}; "
                                   f"{kept}; {args.output} was not written")
    from nst_keras import record as record_lib

    network.record = record_lib.network_record(
        config, trainer, style_rgb, style_name=os.path.basename(args.style),
        style_sha256=keys.input_digest(args.style), photos=len(photos.paths),
        precision=where.precision, hardware=where.hardware, seconds=seconds,
        extra={"skipped": photos.skipped, "resumed_from": resumed, "job_key": key,
               "held_out": [os.path.basename(p) for p in photos.previews]})
    # The last state is kept: rerunning with more --steps goes on from it.
    checkpoints.at_boundary(lambda: _checkpoint(trainer), True)
    _deliver(args.output, network, trainer, guard)
    say(args.quiet, f"Wrote {args.output} ({trainer.step} steps, final loss "
                    f"{trainer.losses[-1]:.4g}; {seconds:.0f} s) with its record "
                    f"{_stem(args.output)}.json and loss plot {_stem(args.output)}-loss.png. "
                    f"Use it: {PROG} PHOTO --network {args.output} -o OUT.png")
    return EXIT_OK


def training_key(args, photo_paths=None) -> str:
    """The key of a training (`keys.job_key`): the loss's settings, the style's and the
    photos' bytes, the training's settings less its budget (more steps go on from a stopped
    run's checkpoint, and from a finished run's, which is kept: a few MB, the weights and
    Adam's moments), and the defaults no setting shows (the content weight's factor, the
    learning rate's fall). Its record carries it (`delivery.done_already`)."""
    from nst_keras import keys

    config = args.config
    if photo_paths is None:
        photo_paths = read_photos(args.photos, config.size, config.zoom, args.preview,
                                  load=False).paths
    from nst_keras.engine import training

    return keys.job_key(config.style, args.style, [], extra={
        "training": {k: v for k, v in dataclasses.asdict(config).items()
                     if k not in ("style", "steps")},
        # Defaults the settings do not show: a network trained under others is another one.
        "defaults": {"content_factor": training.CONTENT_FACTOR,
                     "rate_fall_from": training.RATE_FALL_FROM,
                     "rate_floor": training.RATE_FLOOR},
        "photos": [keys.input_digest(p) for p in photo_paths]})


def _checkpoint(trainer):
    from nst_keras import checkpoint

    return checkpoint.Checkpoint("training", trainer.state(), None)


def _write_preview(output: str, network, rgbs, guard) -> None:
    """The held-out photos through the network, side by side: OUT-preview.jpg."""
    from nst_keras import delivery
    from nst_keras.engine import transformer

    outs = [transformer.stylize(network, rgb) for rgb in rgbs]
    height = min(o.shape[0] for o in outs)
    strip = np.concatenate([o[:height] for o in outs], axis=1)
    delivery.write_image(f"{_stem(output)}-preview.jpg", np.clip(np.rint(strip), 0, 255)
                         .astype(np.uint8), guard.critical)


def _deliver(output: str, network, trainer, guard) -> None:
    """The network, its record and its loss plot, each written atomically."""
    from nst_keras import delivery, record

    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "network.keras")
        network.save(path)
        with open(path, "rb") as f:
            data = f.read()
    stem = _stem(output)
    figure = record.training_figure(trainer.losses, trainer.kind_losses, network.record)
    with guard.critical():
        delivery.write_bytes(output, data)
        delivery.write_record(f"{stem}.json", {**network.record, "losses": trainer.losses})
        delivery.write_bytes(f"{stem}-loss.png", record.figure_png(figure))


def _dry_run(config, where, photos) -> int:
    """The estimated peak memory of the training (`training.training_memory`); nothing is
    built. The photos' pixels are counted from their headers, at the size they are kept."""
    from nst_keras.engine import runtime, training

    pixels = photos.kept_pixels
    budget = runtime.memory_budget(where.device)
    gib = 2**30
    lines = [f"Estimated peak memory of training on {where.hardware}, {config.style.model}, "
             f"batch {config.batch_size} of {config.size}x{config.size}, width "
             f"{config.width}, {len(photos.paths)} photos; {budget / gib:.1f} GiB available:"]
    for precision in ("float32", "bfloat16"):
        parts = training.training_memory(config, precision, pixels)
        mark = " <- this run" if precision == where.precision else ""
        lines.append(f"{precision:>9} {parts['total'] / gib:6.2f}G ("
                     + ", ".join(f"{k} {v / gib:.2f}G" for k, v in parts.items()
                                 if k != "total") + f"){mark}")
    print("\n".join(lines))
    return EXIT_OK

