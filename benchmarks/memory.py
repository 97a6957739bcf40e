"""The plan's memory estimate against the measured peak of real runs.

    python benchmarks/memory.py run [--out FILE] [--only SUBSTRING ...] [--max-evals N]
        Runs every case (below) through the command line (`nst-keras ...`) in a fresh
        subprocess, one at a time, and records its peak resident memory (VmHWM: a fresh
        process per case, because Linux carries getrusage's ru_maxrss over an exec) as one
        JSON line in FILE. Cases already in FILE are skipped, so an interrupted benchmark
        resumes. Before each case, its estimate (computed in a child process, so that this
        one stays small) is compared with MemAvailable now: the machine is shared, so a
        case that does not fit now is skipped with a one-line note (rerun it later).

    python benchmarks/memory.py fit [--out FILE] [--pin "NAME=VALUE" ...]
        Least squares over the recorded peaks for the estimate's fitted constants (the base,
        bytes per activation of an evaluation by precision, the tiled whole-image bytes per
        value, bytes per activation of a style's forward pass), the arithmetic parts (the
        optimiser's arrays, the images, the weights) held as they are; prints them beside
        the values in `nst_keras/engine/runtime.py`; L-BFGS-B's work arrays and SciPy's copies per
        value are fitted too (its history, 2 m float64, is arithmetic).

    python benchmarks/memory.py report [--out FILE]
        For every recorded case, the plan's estimate of the same command line now
        (`plan.plan(..., load=False)`, the final stage's total) against the measured peak:
        the ratio estimate / peak, each part of the estimate, and whether it is within the
        targets: no peak above its estimate by more than 5 % (the estimate is what keeps the
        kernel from killing a run), no estimate above its peak by more than 30 %.

    python benchmarks/memory.py largest [--optimizer lbfgs|adam] [--precision P]
            [--lbfgs-memory M] [--max-evals N] [--core 512|256|128|auto] [--budget SIZE]
        Asks the plan (in a child process) for the largest tiled height that fits in the
        budget: by default the machine's as a run would see it now (MemAvailable plus the
        resident TensorFlow the estimate counts: run it when nothing else runs), or
        `--budget` (e.g. 3G, to try it on a small size); runs that size in a fresh process
        with `--max-memory` set to the budget, and records its peak beside the estimate and
        the budget (default FILE /tmp/nst-memory-largest.jsonl; `report --out` reads it).

Cases (`CASES`): untiled and tiled (core 512 px); L-BFGS and Adam; float32 and bfloat16;
heights 512, 1024 and 1856 (float32 L-BFGS) or 2048 (bfloat16 Adam) untiled, and 512,
1024 and 2048 tiled; a style image of 4x the content's pixels (`--style-scale 2`) whole,
and of 4x its height (`--style-scale 4`) tiled. Each case runs a few evaluations
(`--max-evals`, default 3). L-BFGS runs with `--lbfgs-memory 2`: SciPy allocates its history
with `numpy.zeros` (pages become resident only when written), so after a few evaluations a
history of m = 10 would be mostly untouched; with m = 2 it is full after two iterations, and
the estimate's 2 m n float64 is checked in full.

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
CHILD = ("import json, sys\nfrom nst_keras.commands import cli\ncode = cli.main(sys.argv[1:])\n"
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
#: shared and slow, and the whole benchmark should take about half an hour): L-BFGS in
#: bfloat16 (what `auto` picks here) and float32 at 512 and 1024 px, each other combination
#: of mode, optimizer and precision at one or two heights, then the large ones: untiled
#: float32 L-BFGS near the largest that fits here (the plan's largest is 1985 px with 22.6
#: GiB available; 1856 leaves room for the other sessions), untiled Adam and tiled cases at
#: 2048 px. The largest tiled heights need the whole machine: `largest`.
CASES = (
    ("untiled", "lbfgs", "bfloat16", 512, None), ("untiled", "lbfgs", "float32", 512, None),
    ("untiled", "adam", "bfloat16", 512, None), ("untiled", "lbfgs", "bfloat16", 512, 2),
    ("untiled", "lbfgs", "bfloat16", 1024, None), ("untiled", "lbfgs", "float32", 1024, None),
    ("tiled", "lbfgs", "bfloat16", 512, 4), ("tiled", "lbfgs", "bfloat16", 1024, None),
    ("tiled", "adam", "float32", 1024, None), ("untiled", "lbfgs", "float32", 1856, None),
    ("tiled", "lbfgs", "bfloat16", 2048, None), ("untiled", "adam", "bfloat16", 2048, None),
    ("tiled", "adam", "float32", 2048, None),
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
    """The command line of a case: the common settings, then the case's `options` (later
    ones win, so an option such as `--lbfgs-memory` in them replaces the common one)."""
    content, style = images()
    return [content, style, "--weights", "none", "--model", "vgg19", "--lbfgs-memory", "2",
            "--max-evals", str(max_evals), "--seed", "0", "-o", output, "-q", *options]


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 where unknown)."""
    from nst_keras.engine.runtime import meminfo_bytes  # No TensorFlow: the runner stays small.

    return meminfo_bytes("MemAvailable") or 0


def child_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def estimates(named_options, max_evals: int) -> dict:
    """name -> the plan's estimated total (bytes) of each run, computed in a child process
    so that this one stays small (TensorFlow's ~0.7 GB would otherwise be resident beside
    every case, and counted against it)."""
    if not named_options:
        return {}
    code = ("import json, sys\nsys.path.insert(0, sys.argv[1])\nimport memory\n"
            "table = json.loads(sys.argv[2])\n"
            "print(json.dumps({name: memory.estimate(options, int(sys.argv[3]))['total'] "
            "for name, options in table.items()}))\n")
    child = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"),
                            json.dumps(named_options), str(max_evals)], env=child_env(),
                           capture_output=True, text=True, check=True)
    return json.loads(child.stdout.splitlines()[-1])


def measure(argv, timeout: int) -> tuple:
    """Runs the command line `argv` in a fresh niced process: ({peak, code} or None, seconds,
    the child's stderr)."""
    began = time.perf_counter()
    child = subprocess.run(["nice", sys.executable, "-c", CHILD, *argv], env=child_env(),
                           capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - began
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if not lines and child.returncode < 0:  # Killed (SIGKILL: the kernel's OOM killer).
        return {"peak": None, "code": child.returncode}, seconds, child.stderr
    return (json.loads(lines[-1]) if lines else None), seconds, child.stderr


def fits_now(name: str, need: int) -> bool:
    """Whether a case's estimate fits in the memory available now (other sessions share the
    machine); prints a one-line note when it does not."""
    available = mem_available()
    if available and need > available:
        print(f"{name}: skipped: the estimate {need / 2**30:.2f} GiB is above the "
              f"{available / 2**30:.2f} GiB available now (MemAvailable); rerun when the "
              "machine is quieter", flush=True)
        return False
    return True


def run(args) -> int:
    done = set()
    if os.path.isfile(args.out):
        with open(args.out) as f:
            done = {json.loads(line)["case"] for line in f if line.strip()}
    todo = {name: options for name, options in cases().items()
            if name not in done and (not args.only or any(s in name for s in args.only))}
    needs = estimates(todo, args.max_evals)
    for name, options in todo.items():
        if not fits_now(name, needs[name]):
            continue
        argv = argv_of(options, args.max_evals, "/tmp/nst-memory-benchmark-out.png")
        try:
            measured, seconds, stderr = measure(argv, args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{name}: no result: over --timeout {args.timeout} s", flush=True)
            continue
        if measured is None:
            print(f"{name}: no result: {stderr[-400:]}", flush=True)
            continue
        if measured["peak"] is None:  # Killed: not recorded, so that a rerun retries it.
            print(f"{name}: killed by signal {-measured['code']} after {seconds:.0f} s: its "
                  f"peak was above what was free (estimate {needs[name] / 2**30:.2f} GiB)",
                  flush=True)
            continue
        entry = {"case": name, "options": options, "max_evals": args.max_evals,
                 "peak": measured["peak"], "code": measured["code"],
                 "seconds": round(seconds, 1), "load": os.getloadavg()[0]}
        with open(args.out, "a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"{name}: peak {measured['peak'] / 2**30:.2f} GiB (estimate "
              f"{needs[name] / 2**30:.2f}), exit {measured['code']}, {seconds:.0f} s", flush=True)
    return 0


def estimate(options, max_evals: int) -> dict:
    """The plan's estimate of a recorded command line now: the final stage's parts."""
    from nst_keras.commands import cli
    from nst_keras.plan import plan

    argv = argv_of(options, max_evals, "/tmp/unused.png")
    parsed = cli.build_parser().parse_args(argv)
    config = cli.config_from_args(parsed)
    content, styles, _ = cli.inputs_of(parsed)
    job = plan(content, styles, config=config, load=False)
    return dict(job.stages[-1].memory)


def recorded(path) -> tuple:
    """(the entries with a measured peak, the killed ones) of a results file."""
    with open(path) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return ([e for e in entries if e.get("peak") is not None],
            [e for e in entries if e.get("peak") is None])


def report(args) -> int:
    from nst_keras.engine import runtime

    entries, killed = recorded(args.out)
    print(f"{runtime.describe_hardware('cpu')}; load now {os.getloadavg()[0]:.1f}")
    for entry in killed:  # The plan let it run and the kernel killed it: a miss.
        print(f"{entry['case']}: killed by signal {-entry['killed']} after {entry['seconds']:.0f}"
              f" s at an estimate of {entry['estimate'] / 2**30:.2f} GiB (its peak was above "
              "it; this estimate is from the run's own time, not now's)")
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
          f"{100 * UNDER:.0f})" + (f"; {len(killed)} killed" if killed else "") + ".")
    return 0 if worst_over <= OVER and worst_under <= UNDER and not killed else 1


def features_of(entry) -> tuple:
    """(known bytes, {constant: its multiplier}) of a recorded case: peak = known + sum."""
    from nst_keras.engine import features, runtime

    parts = estimate(entry["options"], entry["max_evals"])
    options = dict(zip(entry["options"][::2], entry["options"][1::2]))
    precision, height = options["--precision"], int(options["--height"])
    from nst_keras.commands import cli
    from nst_keras.plan import plan

    argv = argv_of(entry["options"], entry["max_evals"], "/tmp/unused.png")
    parsed = cli.build_parser().parse_args(argv)
    config = cli.config_from_args(parsed)
    job = plan(*cli.inputs_of(parsed)[:2], config=config, load=False)
    final = job.stages[-1]
    layers = job.config.content_layers + job.config.style_layers
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
    # A tile's bytes per activation are fitted apart (`runtime.TILE_ACTIVATION_SHARE` is
    # their ratio): a whole image's include whole-image temporaries a tile does not have.
    kind = "tile activation" if final.tiles is not None else "activation"
    terms = {"base": 1, f"{kind} {precision}": features.activation_floats(
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

    from nst_keras.engine import runtime

    entries, _ = recorded(args.out)  # A killed run has no peak to fit.
    rows = [features_of(e) for e in entries]
    pinned = {}
    for item in args.pin or ():  # "name=value": held, not fitted.
        name, _, value = item.rpartition("=")
        pinned[name] = float(value)
    rows = [(known + sum(pinned[k] * v for k, v in terms.items() if k in pinned),
             {k: v for k, v in terms.items() if k not in pinned}) for known, terms in rows]
    names = sorted({k for _, terms in rows for k in terms})
    matrix = np.array([[terms.get(k, 0) for k in names] for _, terms in rows], float)
    target = np.array([e["peak"] - known for e, (known, _) in zip(entries, rows)], float)
    solution, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    now = {"base": runtime.BASE_BYTES,
           "activation float32": runtime.BYTES_PER_ACTIVATION["float32", True],
           "activation bfloat16": runtime.BYTES_PER_ACTIVATION["bfloat16", True],
           "forward float32": runtime.FORWARD_BYTES_PER_ACTIVATION["float32", True],
           "forward bfloat16": runtime.FORWARD_BYTES_PER_ACTIVATION["bfloat16", True],
           "tile activation float32": runtime.BYTES_PER_ACTIVATION["float32", True]
           * runtime.TILE_ACTIVATION_SHARE["float32"],
           "tile activation bfloat16": runtime.BYTES_PER_ACTIVATION["bfloat16", True]
           * runtime.TILE_ACTIVATION_SHARE["bfloat16"],
           "tiled per value": runtime.TILED_BYTES_PER_VALUE,
           "lbfgs per value": runtime.LBFGS_BYTES_PER_VALUE}
    print(f"Least squares over {len(entries)} runs (symmetric padding)"
          + (f", held: {', '.join(f'{k} {v:g}' for k, v in pinned.items())}:" if pinned
             else ":"))
    for name, value in zip(names, solution):
        print(f"  {name:<22} fitted {value:>14.4g}   now {now.get(name, float('nan')):.4g}")
    fitted = dict(zip(names, solution))
    for precision in ("float32", "bfloat16"):
        if f"tile activation {precision}" in fitted and f"activation {precision}" in fitted:
            share = fitted[f"tile activation {precision}"] / fitted[f"activation {precision}"]
            print(f"  tile share {precision:<10} fitted {share:>14.4g}   now "
                  f"{runtime.TILE_ACTIVATION_SHARE[precision]:.4g}")
    residual = matrix @ solution - target
    for entry, r in zip(entries, residual):
        print(f"  {entry['case']:<38} fitted - peak {r / 2**30:+.3f} GiB "
              f"({100 * r / entry['peak']:+.1f} %)")
    return 0


def choose(options, budget, core=None) -> dict:
    """The largest tiled height of the command line `options` (its `--height` ignored) in
    `budget` bytes (None: the machine's budget as a run would see it now, `runtime.run_budget`:
    MemAvailable plus this process's resident memory, TensorFlow's included, which the
    estimate's base counts), in tiles of `core`, or (None) of the core of `plan.AUTO_CORES`
    that reaches highest, as `--height auto --tile auto` would take it.

    Returns:
        `height`, `width`, `core`, `budget`, `estimate` (the parts at that size, bytes),
        `hardware` (the CPU line) and `mem_total` (MemTotal, bytes).
    """
    from nst_keras import plan
    from nst_keras.commands import cli
    from nst_keras.engine import runtime

    parsed = cli.build_parser().parse_args(argv_of(options, 1, "/tmp/unused.png"))
    config = cli.config_from_args(parsed)
    if budget is None:
        budget = runtime.run_budget(config, "cpu")
    content, styles, _ = cli.inputs_of(parsed)
    job = plan.plan(content, styles, config=config, load=False)  # Headers only.
    precision = job.placement.precision
    content_w, content_h = plan._size_of("content image", content)
    aspect = content_w / content_h
    style_whs = job.memory["style_whs"]
    styles_at = plan._styles_at(config, style_whs, aspect)
    heights = {core: runtime.largest_height(config, aspect, precision, budget, core,
                                            styles=styles_at) for core in plan.AUTO_CORES}
    if core is None:
        core = max(plan.AUTO_CORES, key=lambda c: (heights[c], -plan.AUTO_CORES.index(c)))
    height = heights[core]
    width = plan._width(height, aspect)
    parts = runtime.estimate_memory(height, width, config, precision, core,
                                    styles=styles_at(height) if styles_at else ())
    return {"height": height, "width": width, "core": core, "budget": budget,
            "heights": heights, "estimate": parts, "precision": precision,
            "hardware": runtime.describe_hardware("cpu"), "mem_total": mem_total()}


def mem_total() -> int:
    """MemTotal from /proc/meminfo, in bytes (0 where unknown)."""
    from nst_keras.engine.runtime import meminfo_bytes

    return meminfo_bytes("MemTotal") or 0


def largest(args) -> int:
    """Asks the plan for the largest tiled height that fits (in a child process: this one
    stays small), runs it in a fresh process, and records its peak beside the estimate and
    the budget."""
    options = ["--optimizer", args.optimizer, "--precision", args.precision,
               "--lbfgs-memory", str(args.lbfgs_memory)]
    code = ("import json, sys\nsys.path.insert(0, sys.argv[1])\nimport memory\n"
            "from nst_keras.config import parse_size\n"
            "budget = None if sys.argv[3] == '-' else parse_size(sys.argv[3])\n"
            "core = None if sys.argv[4] == 'auto' else int(sys.argv[4])\n"
            "print(json.dumps(memory.choose(json.loads(sys.argv[2]), budget, core)))\n")
    child = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"),
                            json.dumps(options), args.budget or "-", args.core], env=child_env(),
                           capture_output=True, text=True)
    if child.returncode != 0:
        print(f"largest: the plan failed: {child.stderr[-600:]}", flush=True)
        return 1
    chosen = json.loads(child.stdout.splitlines()[-1])
    need, budget = chosen["estimate"]["total"], chosen["budget"]
    print(f"{chosen['hardware']}; MemTotal {chosen['mem_total'] / 2**30:.1f} GiB, "
          f"MemAvailable now {mem_available() / 2**30:.1f} GiB, load {os.getloadavg()[0]:.1f}")
    print(f"Budget {budget / 2**30:.2f} GiB ({'--budget' if args.budget else 'the machine now'})"
          f"; largest tiled height by core: "
          + ", ".join(f"{c}: {h}" for c, h in chosen["heights"].items())
          + f"; running {chosen['width']}x{chosen['height']} in tiles of {chosen['core']}, "
          f"{args.optimizer}, {chosen['precision']}, estimate {need / 2**30:.2f} GiB, "
          f"{args.max_evals} evaluations", flush=True)
    run_options = options + ["--height", str(chosen["height"]), "--tile", str(chosen["core"]),
                             "--max-memory", str(budget)]
    argv = argv_of(run_options, args.max_evals, "/tmp/nst-memory-largest-out.png")
    measured, seconds, stderr = measure(argv, args.timeout)
    if measured is None:
        print(f"largest: no result: {stderr[-600:]}", flush=True)
        return 1
    name = (f"largest tiled {args.optimizer} {chosen['precision']} {chosen['height']} "
            f"(core {chosen['core']}, m = {args.lbfgs_memory})")
    if measured["peak"] is None:  # Recorded: a run the plan let through was killed.
        with open(args.out, "a") as f:
            f.write(json.dumps({"case": name, "options": run_options, "killed": measured["code"],
                                "estimate": need, "budget": budget,
                                "seconds": round(seconds, 1)}) + "\n")
        print(f"{name}: killed by signal {-measured['code']} after {seconds:.0f} s (the "
              f"kernel's OOM killer when it is 9): its peak was above the estimate "
              f"{need / 2**30:.2f} GiB; recorded in {args.out}", flush=True)
        return 1
    entry = {"case": name, "options": run_options, "max_evals": args.max_evals,
             "peak": measured["peak"], "code": measured["code"], "estimate": need,
             "budget": budget, "mem_total": chosen["mem_total"],
             "seconds": round(seconds, 1), "load": os.getloadavg()[0]}
    with open(args.out, "a") as f:
        f.write(json.dumps(entry) + "\n")
    peak = measured["peak"]
    print(f"{name}: peak {peak / 2**30:.2f} GiB, estimate {need / 2**30:.2f} GiB "
          f"(estimate / peak {need / peak:.2f}), budget {budget / 2**30:.2f} GiB, exit "
          f"{measured['code']}, {seconds:.0f} s; recorded in {args.out}", flush=True)
    return 0 if measured["code"] == 0 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("run", "report", "fit", "largest"))
    parser.add_argument("--out", default=None,
                        help="the JSON lines (default /tmp/nst-memory-benchmark.jsonl, "
                             "largest: /tmp/nst-memory-largest.jsonl)")
    parser.add_argument("--only", nargs="+", default=None, help="cases whose name contains one")
    parser.add_argument("--max-evals", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--markdown", action="store_true", help="report: a README table")
    parser.add_argument("--pin", nargs="+", default=None, metavar="NAME=VALUE",
                        help='fit: hold constants, e.g. "lbfgs per value=200"')
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                        help="largest: the optimiser")
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16",
                        help="largest: the precision")
    parser.add_argument("--lbfgs-memory", type=int, default=2,
                        help="largest: L-BFGS-B's m (2: its history is resident in full after "
                             "3 evaluations; 10, the default of a run, needs 11)")
    parser.add_argument("--core", choices=("512", "256", "128", "auto"), default="512",
                        help="largest: the tiles' core (512, the default, is the fastest; "
                             "auto: the one reaching highest, as --tile auto takes it)")
    parser.add_argument("--budget", default=None,
                        help="largest: the bytes to fit in, e.g. 3G (default: the machine's "
                             "budget now, as a run would see it)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ("/tmp/nst-memory-largest.jsonl" if args.mode == "largest"
                    else "/tmp/nst-memory-benchmark.jsonl")
    return {"run": run, "report": report, "fit": fit, "largest": largest}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
