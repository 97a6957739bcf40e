"""Batch engines: local against Ray on this machine, the same 8 jobs (2 contents x 4 styles).

Measures, for each engine, in one process (local first, then Ray, each into its own folder):

* wall time of `run_batch` (Ray: cluster start, actor start and TensorFlow import included);
* the jobs' own time (the workers' `seconds`, summed) and the engine's overhead: wall time
  minus the jobs' time, per job;
* model builds per worker process (target: 1);
* whether the images are bit-identical between the engines.

Then the target, Ray on one machine <= 1.15 x local's wall time for jobs of >= 30 s each, is
checked from the measured overheads: (8 x 30 s + Ray's overhead) / (8 x 30 s + local's
overhead). `--evals` makes the jobs longer, to measure it directly instead.

    python benchmarks/batch.py                 # tiny jobs (random weights, 48 px high)
    python benchmarks/batch.py --evals 400 --height 128
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def inputs(folder: str):
    """2 contents and 4 styles as PNG files, generated (no network, no ../shared needed)."""
    from PIL import Image

    from conftest import make_image

    contents, styles = [], []
    for i in range(2):
        contents.append(os.path.join(folder, f"photo{i}.png"))
        Image.fromarray(make_image(96, 128, seed=i)).save(contents[-1])
    for i in range(4):
        styles.append(os.path.join(folder, f"style{i}.png"))
        Image.fromarray(make_image(80, 80, seed=10 + i)).save(styles[-1])
    return contents, styles


def measure(name, batch_jobs, out, engine):
    from nst_keras.commands.batch import run_batch

    start = time.perf_counter()
    report = run_batch(batch_jobs, out, engine=engine)
    wall = time.perf_counter() - start
    jobs_time = sum(e["seconds"] or 0 for e in report.entries)
    builds = {}
    for entry in report.entries:
        builds[entry["worker"]] = max(builds.get(entry["worker"], 0), entry["model_builds"])
    return {"name": name, "wall": wall, "jobs": jobs_time, "report": report,
            "overhead": (wall - jobs_time) / len(report.entries), "builds": builds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=20, help="evaluations per job")
    parser.add_argument("--height", type=int, default=48, help="height of every job")
    parser.add_argument("--job-seconds", type=float, default=30.0,
                        help="the job length the 1.15x target is stated for")
    args = parser.parse_args(argv)

    from nst_keras.commands import jobs
    from nst_keras.engine import runtime
    from nst_keras.engine.runtime import import_tensorflow_quietly
    from nst_keras.config import StyleConfig
    from nst_keras.commands.engines import RayEngine

    import_tensorflow_quietly()
    print(runtime.describe_hardware("cpu"))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))  # No ~/.ray token file.
    with tempfile.TemporaryDirectory() as folder:
        contents, styles = inputs(folder)
        config = StyleConfig(weights=None, height=args.height, max_evals=args.evals, seed=0)
        batch_jobs = jobs.pair(contents, styles, config)
        local = measure("local", batch_jobs, os.path.join(folder, "local"), None)
        ray = measure("ray", batch_jobs, os.path.join(folder, "ray"),
                      lambda: RayEngine(workers=None, retries=1))
        identical = all(
            np.array_equal(np.asarray(_png(os.path.join(folder, "local", e["output"]))),
                           np.asarray(_png(os.path.join(folder, "ray", e["output"]))))
            for e in local["report"].entries)
    print(f"{len(batch_jobs)} jobs ({len(contents)} contents x {len(styles)} styles), "
          f"{args.evals} evaluations each at height {args.height}, random weights")
    print(f"{'engine':>7} {'wall s':>8} {'jobs s':>8} {'overhead s/job':>15} {'builds/worker':>14}")
    for row in (local, ray):
        builds = ",".join(str(b) for b in row["builds"].values())
        print(f"{row['name']:>7} {row['wall']:>8.1f} {row['jobs']:>8.1f} "
              f"{row['overhead']:>15.2f} {builds:>14}")
    print(f"Images bit-identical between the engines: {identical}")
    n, t = len(batch_jobs), args.job_seconds
    projected = (n * t + ray["overhead"] * n) / (n * t + local["overhead"] * n)
    print(f"Measured Ray / local wall time: {ray['wall'] / local['wall']:.2f}x")
    print(f"Target (Ray <= 1.15 x local for jobs of {t:g} s, from the overheads above): "
          f"{projected:.3f}x -> {'met' if projected <= 1.15 else 'not met'}")
    return 0


def _png(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()


if __name__ == "__main__":
    sys.exit(main())
