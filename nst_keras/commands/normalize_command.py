"""`nst-keras normalize-vgg DIR`: computes and caches Gatys et al.'s normalised VGG once.

The front-end of `nst_keras.engine.normalize`: reads the folder, reports one line, exit 2 on bad
usage.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import types
from typing import Optional, Sequence

from nst_keras.engine import normalize
from nst_keras.commands.console import (EXIT_OK, EXIT_USAGE, PROG, HelpFormatter, Parser,
                                        UsageError, as_usage, import_tensorflow_quietly,
                                        positive_int, weights_errors_as_usage)


def build_parser() -> argparse.ArgumentParser:
    """`normalize-vgg`'s options: the folder of photos, the base network and its weights."""
    parser = Parser(
        prog=f"{PROG} normalize-vgg",
        description="Rescale VGG's weights so that each conv filter's mean activation over "
                    "the photos in DIR is 1 (Gatys et al. 2015), once; cached under the Keras "
                    "cache, keyed by the weights and the photos. Use it with --model "
                    "vgg19-normalized (or vgg16-normalized).",
        formatter_class=HelpFormatter)
    parser.add_argument("folder", metavar="DIR", help="a folder of photos")
    parser.add_argument("--model", choices=sorted(normalize.NORMALIZED),
                        default="vgg19-normalized", help="the normalised network to make")
    parser.add_argument("--weights", default="imagenet",
                        help="the base weights: imagenet, none (random, with --seed) or a "
                             "weights file's path")
    parser.add_argument("--seed", type=int, default=None, help="seed of random weights")
    parser.add_argument("--size", type=positive_int, default=normalize.PHOTO_SIZE,
                        help="each photo's side after resizing and cropping")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`nst-keras normalize-vgg DIR`: computes and caches the normalised network; exit code."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except UsageError as error:
        print(f"{PROG} normalize-vgg: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    weights = None if args.weights.lower() == "none" else args.weights
    try:
        paths = normalize.photos_in(args.folder)
        import_tensorflow_quietly()
        # No network for the ImageNet weights: one line, saying where to put the file.
        downloads = weights_errors_as_usage(types.SimpleNamespace(model=args.model,
                                                                  weights=weights))
        with downloads if weights == "imagenet" else contextlib.nullcontext():
            path = normalize.normalize(args.model, weights, paths, seed=args.seed,
                                       size=args.size)
    except (ValueError, UsageError) as error:
        print(f"{PROG} normalize-vgg: error: {as_usage(error)}", file=sys.stderr)
        return EXIT_USAGE
    record = normalize.record_of(path)
    silent = sum(layer["never_fire"] for layer in record["layers"].values())
    print(f"{args.model} from {len(record['photos'])} photos ({record['base']}): {path} "
          f"({silent} filters never fire on them and keep their scale). Use it with "
          f"--model {args.model}" + ("" if weights == "imagenet" else f" --weights {path}")
          + ".")
    return EXIT_OK
