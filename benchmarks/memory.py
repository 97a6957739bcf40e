"""The plan's memory estimate against the measured peak of real runs.

    python benchmarks/memory.py run [--out FILE] [--only SUBSTRING ...] [--max-evals N]
        Runs every case (below) through the command line (`nst-keras ...`) in a fresh
        subprocess, one at a time, and records its peak resident memory (VmHWM: a fresh
        process per case, because Linux carries getrusage's ru_maxrss over an exec) as one
        JSON line in FILE. Cases already in FILE are skipped, so an interrupted benchmark
        resumes.

    python benchmarks/memory.py fit [--out FILE]
        Least squares over the recorded peaks for the estimate's fitted constants (the base,
        bytes per activation of an evaluation by precision, the tiled whole-image bytes per
        value, bytes per activation of a style's forward pass), the arithmetic parts (the
        optimiser's arrays, the images, the weights) held as they are; prints them beside
        the values in `nst_keras/runtime.py`; L-BFGS-B's work arrays and SciPy's copies per
        value are fitted too (its history, 2 m float64, is arithmetic).

    python benchmarks/memory.py report [--out FILE]
        For every recorded case, the plan's estimate of the same command line now
        (`plan.plan(..., load=False)`, the final stage's total) against the measured peak:
        the ratio estimate / peak, each part of the estimate, and whether it is within the
        targets: no peak above its estimate by more than 5 % (the estimate is what keeps the
        kernel from killing a run), no estimate above its peak by more than 30 %.

Cases (`CASES`): untiled and tiled (core 512 px); L-BFGS and Adam; float32 and bfloat16;
heights 512, 768, 1024 untiled and 512, 1024, 1536 tiled; a style image of 4x the content's
pixels (`--style-scale 2`) whole, and of 4x its height (`--style-scale 4`) tiled. Each
case runs a few evaluations (`--max-evals`, default 3). L-BFGS runs with `--lbfgs-memory 2`:
SciPy allocates its history with `numpy.zeros` (pages become resident only when written),
so after a few evaluations a history of m = 10 would be mostly untouched; with m = 2 it is
full after two iterations, and the estimate's 2 m n float64 is checked in full.

Images: Tübingen (1024x768, upscaled to the larger heights) x The Starry Night from
../shared/images; VGG19 with random weights (memory does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OVER, UNDER = 0.05, 0.30  # Peak above estimate by at most 5 %; estimate above peak by 30 %.

#: The child: one run through the command line, then its VmHWM (bytes) and exit code.
CHILD = ("import json, sys\nfrom nst_keras import cli\ncode = cli.main(sys.argv[1:])\n"
         "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
         "print(json.dumps({'peak': int(hwm.split()[1]) * 1024, 'code': code}))\n")


def images():
    """(content, style) paths: the shared pair, or generated stand-ins of the same sizes."""
    content, style = SHARED / "images" / "tubingen.jpg", SHARED / "images" / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return str(content), str(style)
    import numpy as np
    from PIL import Image

    folder = pathlib.Path("/tmp/nst-memory-benchmark")
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for path, size in ((folder / "content.png", (768, 1024)), (folder / "style.png", (640, 1024))):
        if not path.is_file():
            Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)
    return str(folder / "content.png"), str(folder / "style.png")


#: (mode, optimizer, precision, height, style scale): not every combination (the machine is
#: shared and slow): every height with L-BFGS in bfloat16 (what `auto` picks here), and each
#: other combination of mode, optimizer and precision at one or two heights.
CASES = (
    ("untiled", "lbfgs", "bfloat16", 512, None), ("untiled", "lbfgs", "float32", 512, None),
    ("untiled", "adam", "bfloat16", 512, None), ("untiled", "lbfgs", "bfloat16", 512, 2),
    ("untiled", "lbfgs", "bfloat16", 1024, None), ("untiled", "lbfgs", "float32", 1024, None),
    ("tiled", "lbfgs", "bfloat16", 1024, None), ("tiled", "adam", "float32", 1024, None),
    ("tiled", "lbfgs", "bfloat16", 512, 4), ("untiled", "lbfgs", "bfloat16", 768, None),
    ("untiled", "adam", "float32", 768, None), ("untiled", "adam", "bfloat16", 1024, None),
    ("tiled", "lbfgs", "bfloat16", 1536, None), ("tiled", "lbfgs", "float32", 1024, None),
    ("tiled", "adam", "bfloat16", 1536, None),
)


def cases():
    """name -> the options of one run (besides the images and the common ones)."""
    table = {}
    for mode, optimizer, precision, height, scale in CASES:
        name = f"{mode} {optimizer} {precision} {height}"
        options = ["--optimizer", optimizer, "--precision", precision, "--height", str(height),
                   "--tile", "off" if mode == "untiled" else "512"]
        if scale is not None:
            name += f" style x{scale}"
            options += ["--style-scale", str(scale)]
        table[name] = options
    return table


def argv_of(options, max_evals: int, output: str):
    content, style = images()
    return [content, style, *options, "--weights", "none", "--model", "vgg19",
            "--lbfgs-memory", "2", "--max-evals", str(max_evals), "--seed", "0",
            "-o", output, "-q"]


def run(args) -> int:
    done = set()
    if os.path.isfile(args.out):
        with open(args.out) as f:
            done = {json.loads(line)["case"] for line in f if line.strip()}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, options in cases().items():
        if name in done or (args.only and not any(s in name for s in args.only)):
            continue
        argv = argv_of(options, args.max_evals, "/tmp/nst-memory-benchmark-out.png")
        began = time.perf_counter()
        child = subprocess.run(["nice", sys.executable, "-c", CHILD, *argv], env=env,
                               capture_output=True, text=True, timeout=args.timeout)
        seconds = time.perf_counter() - began
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if not lines:
            print(f"{name}: no result (exit {child.returncode}): {child.stderr[-400:]}",
                  flush=True)
            continue
        measured = json.loads(lines[-1])
        entry = {"case": name, "options": options, "max_evals": args.max_evals,
                 "peak": measured["peak"], "code": measured["code"],
                 "seconds": round(seconds, 1), "load": os.getloadavg()[0]}
        with open(args.out, "a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"{name}: peak {measured['peak'] / 2**30:.2f} GiB, exit {measured['code']}, "
              f"{seconds:.0f} s", flush=True)
    return 0


def estimate(options, max_evals: int) -> dict:
    """The plan's estimate of a recorded command line now: the final stage's parts."""
    from nst_keras import cli
    from nst_keras.plan import plan

    argv = argv_of(options, max_evals, "/tmp/unused.png")
    parsed = cli.build_parser().parse_args(argv)
    config = cli.config_from_args(parsed)
    content, styles, _ = cli.inputs_of(parsed)
    job = plan(content, styles, config=config, load=False)
    return dict(job.stages[-1].memory)


def report(args) -> int:
    from nst_keras import runtime

    with open(args.out) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    print(f"{runtime.describe_hardware('cpu')}; load now {os.getloadavg()[0]:.1f}")
    if args.markdown:
        print("| case | peak (GiB) | estimate (GiB) | estimate / peak |\n|---|---|---|---|")
        for entry in entries:
            total = estimate(entry["options"], entry["max_evals"])["total"]
            print(f"| {entry['case']} | {entry['peak'] / 2**30:.2f} | {total / 2**30:.2f} | "
                  f"{total / entry['peak']:.2f} |")
        return 0
    print(f"{'case':<38} {'peak':>7} {'estimate':>8} {'ratio':>6}  parts (GiB)")
    worst_over = worst_under = 0.0
    for entry in entries:
        parts = estimate(entry["options"], entry["max_evals"])
        ratio = parts["total"] / entry["peak"]
        worst_over = max(worst_over, entry["peak"] / parts["total"] - 1)
        worst_under = max(worst_under, ratio - 1)
        flag = "" if entry["peak"] <= (1 + OVER) * parts["total"] and ratio <= 1 + UNDER \
            else "  <- outside the targets"
        shown = " ".join(f"{k} {v / 2**30:.2f}" for k, v in parts.items()
                         if k != "total" and v)
        print(f"{entry['case']:<38} {entry['peak'] / 2**30:>6.2f}G {parts['total'] / 2**30:>7.2f}G "
              f"{ratio:>6.2f}  {shown}{flag}")
    print(f"Worst peak above its estimate: {100 * worst_over:.1f} % (target <= {100 * OVER:.0f}); "
          f"worst estimate above its peak: {100 * worst_under:.1f} % (target <= "
          f"{100 * UNDER:.0f}).")
    return 0 if worst_over <= OVER and worst_under <= UNDER else 1


def features_of(entry) -> tuple:
    """(known bytes, {constant: its multiplier}) of a recorded case: peak = known + sum."""
    from nst_keras import features, runtime

    parts = estimate(entry["options"], entry["max_evals"])
    options = dict(zip(entry["options"][::2], entry["options"][1::2]))
    precision, height = options["--precision"], int(options["--height"])
    from nst_keras import cli
    from nst_keras.plan import plan

    argv = argv_of(entry["options"], entry["max_evals"], "/tmp/unused.png")
    parsed = cli.build_parser().parse_args(argv)
    config = cli.config_from_args(parsed)
    job = plan(*cli.inputs_of(parsed)[:2], config=config, load=False)
    final = job.stages[-1]
    layers = config.content_layers + config.style_layers
    seen = runtime._seen(final.height, final.width, layers, config.model,
                         final.tiles.core if final.tiles else None)
    n = final.height * final.width * 3
    if parts["styles"] > 0:  # The style's forward pass is the peak.
        (sh, sw), = final.styles
        known = parts["weights"] + parts["images"] + runtime.STYLE_BYTES_PER_VALUE * sh * sw * 3
        return known, {"base": 1, f"forward {precision}": features.activation_floats(
            *runtime._seen(sh, sw, layers, config.model,
                           final.tiles.core if final.tiles else None), layers, config.model)}
    known = parts["weights"] + parts["images"] + parts["history"]
    terms = {"base": 1, f"activation {precision}": features.activation_floats(
        *seen, layers, config.model)}
    if config.optimizer == "lbfgs":  # SciPy's copies, fitted; Adam's 3 float32 are counted.
        terms["lbfgs per value"] = n
    else:
        known += parts["optimizer"]
    if final.tiles is not None:
        terms["tiled per value"] = n
    return known, terms


def fit(args) -> int:
    import numpy as np

    from nst_keras import runtime

    with open(args.out) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    rows = [features_of(e) for e in entries]
    names = sorted({k for _, terms in rows for k in terms})
    matrix = np.array([[terms.get(k, 0) for k in names] for _, terms in rows], float)
    target = np.array([e["peak"] - known for e, (known, _) in zip(entries, rows)], float)
    solution, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    now = {"base": runtime.BASE_BYTES,
           "activation float32": runtime.BYTES_PER_ACTIVATION["float32", True],
           "activation bfloat16": runtime.BYTES_PER_ACTIVATION["bfloat16", True],
           "forward float32": runtime.FORWARD_BYTES_PER_ACTIVATION["float32", True],
           "forward bfloat16": runtime.FORWARD_BYTES_PER_ACTIVATION["bfloat16", True],
           "tiled per value": runtime.TILED_BYTES_PER_VALUE,
           "lbfgs per value": runtime.LBFGS_BYTES_PER_VALUE}
    print(f"Least squares over {len(entries)} runs (symmetric padding):")
    for name, value in zip(names, solution):
        print(f"  {name:<22} fitted {value:>14.4g}   now {now.get(name, float('nan')):.4g}")
    residual = matrix @ solution - target
    for entry, r in zip(entries, residual):
        print(f"  {entry['case']:<38} fitted - peak {r / 2**30:+.3f} GiB")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("run", "report", "fit"))
    parser.add_argument("--out", default="/tmp/nst-memory-benchmark.jsonl")
    parser.add_argument("--only", nargs="+", default=None, help="cases whose name contains one")
    parser.add_argument("--max-evals", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--markdown", action="store_true", help="report: a README table")
    args = parser.parse_args(argv)
    return {"run": run, "report": report, "fit": fit}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
