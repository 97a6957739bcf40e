"""The sweep that picks each option's default weight: how painted is the saved picture?

Each style loss has its own scale, so the book's style weight (set for Gram matrices) leaves
W2 and MRF below total variation and the photo unpainted. This runs one option at several
weights, on the same photo, painting, size and budget, and judges each saved picture with
the project's judge (`nst_keras.engine.judge`: stylisation = S(result) / S(photo) by the
paper's Gram loss on relu1_1 ... relu5_1, content kept = C(result) / C(painting) on
relu4_2), which is independent of the loss that made it. The default chosen for each is the
weight whose picture meets stylisation <= 0.2 and content kept <= 0.8 with room on both
sides, nearest the plain Gram default's balance.

    python benchmarks/paint_sweep.py --sweep w2            # style weights 1e1 ... 1e4, W2
    python benchmarks/paint_sweep.py --sweep mrf --height 256 --evals 200
    python benchmarks/paint_sweep.py --sweep normalize-gradients --sweep histogram

Offline: the stand-in VGG16 (`../shared/weights`) on Tübingen x The Starry Night
(`../shared/images`); the sweep refuses to run without them (random weights cannot tell a
painted picture from an unpainted one).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

#: What each sweep varies: (the settings every run shares, the setting swept, its values).
SWEEPS = {
    "gram": ({}, "style_weight", (0.1, 1.0, 10.0)),
    # Weights as given (no area scaling): the default is 1e3 at 256 px, 1e3 / 4 at 128.
    "w2": ({"style_loss": "w2"}, "style_weight", (1e1, 1e2, 1e3, 1e4)),
    "w2-crowsonkb-layers": ({"style_loss": "w2", "style_layer_weights": "256,64,16,4,1"},
                            "style_weight", (1e2, 1e3, 1e4)),
    # Weights as given (no area scaling): the default is 1e5 at 256 px, 1e5 / 4 at 128.
    "mrf": ({"style_loss": "mrf"}, "style_weight", (1e4, 3e4, 1e5, 3e5)),
    # Histogram alone (no Gram term), to show what its own weight paints.
    "histogram": ({"style_weight": 0.0}, "histogram_weight", (1e2, 1e3, 1e4, 1e5)),
    # The presets whose values were set for VGG19: their style weight times the factor.
    "preset-jcjohnson": ({"preset": "jcjohnson"}, "style_factor", (1.0, 10.0, 100.0)),
    "preset-cnnmrf": ({"preset": "cnnmrf"}, "style_factor", (1.0, 10.0, 100.0)),
    "preset-book-2e": ({"preset": "book-2e"}, "style_factor", (1.0, 10.0, 100.0)),
    # jcjohnson's proportions (content 5 : style 500) times the swept scale.
    "normalize-gradients": ({"optimizer": "adam", "normalize_gradients": True},
                            "normalized_gradient_scale", (1.0, 1e2, 1e4, 1e6)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="append", choices=sorted(SWEEPS), required=True)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--values", help="comma-separated values instead of the sweep's")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    images = SHARED / "images"
    weights = SHARED / "weights" / "vgg16_hed_notop.weights.h5"
    if not (images / "tubingen.jpg").is_file() or not weights.is_file():
        print(f"needs ../shared's images and stand-in weights. Received: {SHARED}")
        return 2

    from nst_keras import transfer_style
    from nst_keras.engine import judge, runtime
    from nst_keras.media.images import load_image

    print(f"CPU: {' '.join(runtime.cpu_info()[:1])}; flags: "
          f"{' '.join(sorted(f for f in runtime.cpu_flags() if 'amx' in f or 'avx' in f))}")
    network = judge.judge_network("vgg16", str(weights))
    photo = load_image(str(images / "tubingen.jpg"))
    painting = load_image(str(images / "starry_night.jpg"))
    rows = []
    print(f"Tübingen x The Starry Night, stand-in VGG16, {args.height} px, "
          f"{args.evals} evaluations, seed 0")
    print(f"{'sweep':22s} {'setting':28s} {'stylisation':>11s} {'kept':>6s} "
          f"{'evals':>5s} {'s/eval':>6s}")
    for name in args.sweep:
        shared, swept, values = SWEEPS[name]
        if args.values:
            values = tuple(float(v) for v in args.values.split(","))
        for value in values:
            settings = dict(model="vgg16", weights=str(weights), height=args.height,
                            max_evals=args.evals, seed=0, **shared)
            if "preset" in settings:
                from nst_keras.config import preset

                base = preset(settings.pop("preset")).replace(model="vgg16")
                settings["config"] = base
                settings["scales"] = 1  # The swept size only.
            if swept == "style_factor":
                settings["style_weight"] = settings["config"].style_weight * value
            elif swept == "normalized_gradient_scale":
                settings.update(content_weight=5.0 * value, style_weight=500.0 * value)
            else:
                settings[swept] = value
            began = time.perf_counter()
            result = transfer_style(str(images / "tubingen.jpg"),
                                    str(images / "starry_night.jpg"), **settings)
            seconds = time.perf_counter() - began
            verdict = judge.judge(network, result.image, photo, painting)
            row = {"sweep": name, "setting": swept, "value": value,
                   "stylisation": verdict.stylisation, "content_kept": verdict.content_kept,
                   "evaluations": result.evaluations,
                   "seconds_per_evaluation": seconds / max(1, result.evaluations)}
            rows.append(row)
            print(f"{name:22s} {swept + '=' + format(value, 'g'):28s} "
                  f"{verdict.stylisation:11.3f} {verdict.content_kept:6.2f} "
                  f"{result.evaluations:5d} {row['seconds_per_evaluation']:6.2f}", flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
