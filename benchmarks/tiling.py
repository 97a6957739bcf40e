"""Tiled against untiled evaluation: exactness, speed, peak memory; and one print-size run.

Modes:

    python benchmarks/tiling.py compare --heights 768 1024 1536
        In one process, tiled and untiled objectives of the same image alternate (untiled,
        tiled, untiled, ... `--repeats` times each) so a noisy machine slows both alike.
        Printed per height: the relative gradient error (L2) and loss error of tiled
        against untiled, seconds per evaluation of each and their ratio (target <= 2.5).
        Then, per height and mode, the peak resident memory (VmHWM) of a fresh subprocess
        that builds the objective and evaluates it twice, against the planner's estimate
        (`runtime.estimate_memory`); target at 1536: tiled <= 0.5 x untiled.

    python benchmarks/tiling.py big --height 3000 --scales 3 --max-evals 9
        One real run through the command line (`nst-keras ... --tile auto`), in this process,
        well past the untiled limit; prints its peak resident memory (VmHWM) against the
        planner's estimate of its final stage (target: within 15%).

    python benchmarks/tiling.py probe HEIGHT MODE   (internal: one subprocess of `compare`)

The images are Tübingen x The Starry Night with the offline stand-in VGG16 weights when
../shared is there, generated images with random VGG16 weights otherwise. Timings on a
shared machine are noisy: they are wall times, interleaved.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TARGET_ERROR, TARGET_MEMORY, TARGET_SLOWER, TARGET_ESTIMATE = 1e-4, 0.5, 2.5, 0.15


def peak_rss() -> int:
    """This process's peak resident memory (VmHWM), bytes.

    Not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a child of a large
    process would report its parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def inputs(weights_choice="auto"):
    """(content, style, weights, model, sentence)."""
    images, weights = SHARED / "images", SHARED / "weights" / "vgg16_hed_notop.weights.h5"
    if weights_choice != "none" and (images / "tubingen.jpg").is_file() and weights.is_file():
        return (str(images / "tubingen.jpg"), str(images / "starry_night.jpg"), str(weights),
                "vgg16", "Tübingen x The Starry Night, VGG16 with the offline stand-in weights")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_image

    return (make_image(768, 1024, seed=1), make_image(640, 1024, seed=2), None, "vgg16",
            "generated images, VGG16 with random weights")


def config_for(args, height):
    from nst_keras.config import StyleConfig

    _, _, weights, model, _ = inputs(args.weights)
    return StyleConfig(height=height, model=model, weights=weights, style_weight=10.0,
                       precision=args.precision, padding=args.padding, seed=0)


def problem(args, height, tiled):
    """(objective, x0, config) at `height`, tiled (default core or --core) or not."""
    from nst_keras import plan as plan_lib
    from nst_keras import render

    content, style, _, _, _ = inputs(args.weights)
    config = config_for(args, height).replace(tile=str(args.core) if tiled else "off",
                                              init="noise")
    job = plan_lib.plan(content, style, config=config)
    built = render.build_problem(job.content, list(job.styles), config, start=None,
                                 placement=job.placement,
                                 tiles=job.stages[-1].tiles if tiled else None)
    return built, job


def compare(args):
    import numpy as np

    from nst_keras.engine import runtime

    print(f"# {inputs(args.weights)[4]}; precision {args.precision}, padding {args.padding}, "
          f"core {args.core}; {runtime.describe_hardware('cpu')}")
    rows = []
    for height in args.heights:
        untiled, job = problem(args, height, False)
        tiled, _ = problem(args, height, True)
        x = untiled.x0
        times = {"untiled": [], "tiled": []}
        results = {}
        for _ in range(args.repeats):
            for name, built in (("untiled", untiled), ("tiled", tiled)):
                began = time.perf_counter()
                loss, grad, _ = built.objective(x)
                grad = grad.numpy()
                times[name].append(time.perf_counter() - began)
                results[name] = (float(loss), grad)
        (l0, g0), (l1, g1) = results["untiled"], results["tiled"]
        row = {
            "height": height, "width": job.size[1], "tiles": tiled.tiles.describe(),
            "loss_error": abs(l1 - l0) / abs(l0),
            "gradient_error": float(np.linalg.norm(g1 - g0) / np.linalg.norm(g0)),
            "untiled_s": min(times["untiled"]), "tiled_s": min(times["tiled"]),
        }
        row["slower"] = row["tiled_s"] / row["untiled_s"]
        rows.append(row)
        print(f"{row['width']}x{height}: {row['tiles']}; loss error {row['loss_error']:.2e}, "
              f"gradient error {row['gradient_error']:.2e} (target <= {TARGET_ERROR:g}); "
              f"s/eval untiled {row['untiled_s']:.2f}, tiled {row['tiled_s']:.2f}: "
              f"{row['slower']:.2f}x (target <= {TARGET_SLOWER:g})", flush=True)
        del untiled, tiled
    if not args.no_memory:
        for row in rows:
            for mode in ("untiled", "tiled"):
                command = [sys.executable, __file__, "probe", str(row["height"]), mode,
                           "--weights", args.weights, "--precision", args.precision,
                           "--padding", args.padding, "--core", str(args.core)]
                done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
                lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
                if done.returncode or not lines:
                    print(f"probe {row['height']} {mode} failed: {done.stderr[-400:]}")
                    continue
                probe = json.loads(lines[-1])
                row[f"{mode}_peak"], row[f"{mode}_estimate"] = probe["peak"], probe["estimate"]
            if "tiled_peak" in row and "untiled_peak" in row:
                row["memory_ratio"] = row["tiled_peak"] / row["untiled_peak"]
                print(f"{row['width']}x{row['height']}: peak RSS untiled "
                      f"{row['untiled_peak'] / 2**30:.2f} GiB (estimate "
                      f"{row['untiled_estimate'] / 2**30:.2f}), tiled "
                      f"{row['tiled_peak'] / 2**30:.2f} GiB (estimate "
                      f"{row['tiled_estimate'] / 2**30:.2f}): {row['memory_ratio']:.2f}x "
                      f"(target at 1536 <= {TARGET_MEMORY:g})", flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


def probe(args):
    """One subprocess: build, evaluate twice, report the peak and the estimate."""
    from nst_keras.engine import runtime

    tiled = args.mode == "tiled"
    built, job = problem(args, args.height, tiled)
    for _ in range(2):
        built.objective(built.x0)
    stage = job.stages[-1]
    config = job.config.replace(tile=str(args.core) if tiled else "off")
    estimate = runtime.estimate_memory(stage.height, stage.width, config,
                                       job.placement.precision,
                                       built.tiles.core if tiled else None)
    print(json.dumps({"peak": peak_rss(), "estimate": estimate["total"],
                      "parts": estimate}))


def big(args):
    """A real run through the command line, in this process; peak against the estimate."""
    from nst_keras import plan as plan_lib
    from nst_keras.commands import cli

    content, style, weights, model, sentence = inputs(args.weights)
    argv = [content, style, "-o", args.output, "--height", str(args.height), "--scales",
            str(args.scales), "--max-evals", str(args.max_evals), "--model", model,
            "--weights", weights or "none", "--style-weight", "10", "--seed", "0",
            "--precision", args.precision, "--tile", args.tile] + (
            ["--max-memory", args.max_memory] if args.max_memory else [])
    print("# " + sentence + "\n# nst-keras " + " ".join(argv), flush=True)
    job = plan_lib.plan(content, style, config=cli.config_from_args(
        cli.build_parser(cli.StyleConfig(), "book").parse_args(argv)), load=False)
    final = job.stages[-1]
    began = time.perf_counter()
    code = cli.main(argv)
    seconds = time.perf_counter() - began
    peak = peak_rss()
    estimate = final.memory["total"]
    print(f"exit {code} after {seconds:.0f} s; final stage {final.width}x{final.height} "
          f"{final.tiles.describe() if final.tiles else 'untiled'}; peak RSS "
          f"{peak / 2**30:.2f} GiB, estimate {estimate / 2**30:.2f} GiB "
          f"({peak / estimate - 1:+.1%}, target within {TARGET_ESTIMATE:.0%}); parts "
          + ", ".join(f"{k} {v / 2**30:.2f}" for k, v in final.memory.items()), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode_", required=True)
    for name in ("compare", "probe", "big"):
        p = sub.add_parser(name)
        p.add_argument("--weights", default="auto", choices=("auto", "none"))
        p.add_argument("--precision", default="float32")
        p.add_argument("--padding", default="symmetric")
        p.add_argument("--core", type=int, default=512)
        if name == "compare":
            p.add_argument("--heights", type=int, nargs="+", default=[768, 1024, 1536])
            p.add_argument("--repeats", type=int, default=2)
            p.add_argument("--no-memory", action="store_true")
            p.add_argument("--json")
        elif name == "probe":
            p.add_argument("height", type=int)
            p.add_argument("mode", choices=("tiled", "untiled"))
        else:
            p.add_argument("--height", type=int, default=3000)
            p.add_argument("--scales", type=int, default=3)
            p.add_argument("--max-evals", type=int, default=9)
            p.add_argument("--tile", default="auto")
            p.add_argument("--max-memory")
            p.add_argument("--output", default="/tmp/tiling-big.png")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    {"compare": compare, "probe": probe, "big": big}[args.mode_](args)


if __name__ == "__main__":
    main()
