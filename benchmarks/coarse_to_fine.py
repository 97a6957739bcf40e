"""Time to quality, coarse to fine against one size (Gatys et al. 2017's high-resolution recipe).

For each height: nst_keras at one size, and nst_keras in `--scales` stages (each from the
last, upsampled), on the same images, settings and evaluation budget. Every image either
would save along the way is judged by ONE float32 objective at the final size (a coarse
stage's image upsampled, as `run_stages` would save it), so both are measured with the same
yardstick. Printed: the judged loss over time, and how many times sooner the coarse-to-fine
run reaches the final judged loss of the one-size run (target: >= 2x).

    python benchmarks/coarse_to_fine.py                      # heights 512 and 768, 400 evaluations
    python benchmarks/coarse_to_fine.py --heights 512 --evals 200 --json c2f.json

The images are Tübingen x The Starry Night with the offline stand-in VGG16 weights when
../shared is there, generated images with random VGG19 weights otherwise (said in the
output). The two runs of a height alternate (one, stages, one, stages, ... with --repeats) so
a noisy machine slows both alike; times are wall times from the start of the optimisation
(stage set-up included), judging excluded.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TARGET_SOONER = 2.0


def _inputs(args):
    """(content path or array, style, weights, model, a sentence saying which)."""
    images, weights = SHARED / "images", SHARED / "weights" / "vgg16_hed_notop.weights.h5"
    if args.weights != "none" and (images / "tubingen.jpg").is_file() and weights.is_file():
        return (str(images / "tubingen.jpg"), str(images / "starry_night.jpg"), str(weights),
                "vgg16", "Tübingen x The Starry Night, VGG16 with the offline stand-in weights")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_image

    return (make_image(768, 1024, seed=1), make_image(600, 800, seed=2), None, "vgg19",
            "generated images, VGG19 with random weights")


def _run(content_rgb, style_rgb, config, judge_every):
    """One run; returns (result, [(evaluations, seconds, image)]) with images to judge."""
    from nst_keras import run

    points, start = [], time.perf_counter()
    next_mark = [judge_every]

    def keep(progress):
        if progress.evaluations >= next_mark[0]:
            points.append((progress.evaluations, time.perf_counter() - start, progress.image))
            while next_mark[0] <= progress.evaluations:
                next_mark[0] += judge_every

    result = run.render(run.plan(content_rgb, [style_rgb], config=config), callback=keep)
    points.append((result.evaluations, time.perf_counter() - start, result.image))
    return result, points


def measure(args, height, content, style, weights, model):
    from nst_keras import run
    from nst_keras.config import StyleConfig
    from nst_keras.media.images import load_image
    from nst_keras.engine.objective import evaluate_image

    config = StyleConfig(
        height=height, max_evals=args.evals, iterations=10**6, model=model, weights=weights,
        style_weight=args.style_weight, seed=args.seed, precision=args.precision,
    )
    job = run.plan(content, style, config=config)
    content_rgb, (style_rgb,) = job.content, job.styles
    run.load_model(config)  # Built once, outside both clocks.
    methods = {"one size": config, f"{args.scales} stages": config.replace(scales=args.scales)}
    # Trace every size once before the clocks start (a process traces each size once).
    for method_config in methods.values():
        for stage_height in run.stage_heights(method_config):
            stage_content, stage_styles = run.stage_images(content_rgb, [style_rgb], config,
                                                           stage_height)
            run.build_problem(stage_content, stage_styles, config.replace(height=stage_height))
    runs = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, method_config in methods.items():
            runs[name].append(_run(content_rgb, style_rgb, method_config, args.judge_every))

    judge = run.build_problem(content_rgb, [style_rgb], config.replace(precision="float32",
                                                                       bounds=False)).objective
    size = (content_rgb.shape[1], content_rgb.shape[0])
    curves = {}
    for name, repeats in runs.items():
        result, points = repeats[-1]  # The last repeat's curve; the others' times too.
        curves[name] = {
            "result": result,
            "seconds": [r.seconds for r, _ in repeats],
            "curve": [(e, s, evaluate_image(judge, image if image.shape[:2] == content_rgb.shape[:2]
                                            else load_image(image, size=size)))
                      for e, s, image in points],
        }
    one = curves["one size"]
    target = one["curve"][-1][2]
    one_time = next(s for _, s, loss in one["curve"] if loss <= target)
    rows = []
    for name, data in curves.items():
        reached = next(((e, s) for e, s, loss in data["curve"] if loss <= target), None)
        rows.append({
            "method": name, "stages": [st["height"] for st in data["result"].stages],
            "evaluations": data["result"].evaluations, "seconds": data["curve"][-1][1],
            "final_judged_loss": data["curve"][-1][2],
            "time_to_target": None if reached is None else reached[1],
            "evals_to_target": None if reached is None else reached[0],
            "sooner": None if reached is None else one_time / reached[1],
            "precision": data["result"].precision,
        })
    return content_rgb.shape[:2], target, rows, curves


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", default="512,768")
    parser.add_argument("--evals", type=int, default=400)
    parser.add_argument("--scales", type=int, default=2)
    parser.add_argument("--style-weight", type=float, default=10.0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--judge-every", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--weights", default="auto", help="auto (the stand-in if there) or none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from nst_keras.engine import runtime
    from nst_keras.commands.console import import_tensorflow_quietly

    import_tensorflow_quietly()

    content, style, weights, model, source = _inputs(args)
    print(f"{runtime.describe_hardware('cpu')}; precision {args.precision} -> "
          f"{runtime.resolve_precision(args.precision, 'cpu')}", flush=True)
    print(f"Coarse to fine against one size: {source}; book normalisation, style weight "
          f"{args.style_weight:g}, {args.evals} evaluations each, split equally between the "
          "stages; judged at the final size by one float32 objective.", flush=True)
    report = []
    for height in (int(h) for h in args.heights.split(",")):
        hw, target, rows, _ = measure(args, height, content, style, weights, model)
        print(f"\nHeight {height} ({hw[1]}x{hw[0]}); target: the one-size run's final judged "
              f"loss {target:.5g}")
        print(f"{'method':<12}{'stages':>16}{'evals':>7}{'seconds':>9}{'final judged':>14}"
              f"{'time to target':>16}{'x sooner':>10}")
        for r in rows:
            reached = ("not reached" if r["time_to_target"] is None
                       else f"{r['time_to_target']:.0f} s @{r['evals_to_target']}")
            sooner = "" if r["sooner"] is None else f"{r['sooner']:.2f}"
            print(f"{r['method']:<12}{str(r['stages']):>16}{r['evaluations']:>7}"
                  f"{r['seconds']:>9.0f}{r['final_judged_loss']:>14.5g}{reached:>16}{sooner:>10}")
        staged = rows[-1]
        met = staged["sooner"] is not None and staged["sooner"] >= TARGET_SOONER
        print(f"Target: the one-size final judged loss reached >= {TARGET_SOONER:g}x sooner: "
              f"{'%.2fx' % staged['sooner'] if staged['sooner'] else 'not reached'} "
              f"({'met' if met else 'NOT met'})", flush=True)
        report.append({"height": height, "size": list(hw), "target": target, "rows": rows})
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
