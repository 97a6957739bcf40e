"""Checkpoint size and write time, at the sizes of a default run and of a large one.

    python benchmarks/checkpoint.py --sizes 400x533 1536x2048 [--folder DIR] [--repeats 2]

For each size (height x width of the image, 3 channels) it builds a synthetic L-BFGS-B state
(m = 10, random values in every array) and an Adam state, each with a monitor state holding
the best image, and prints: the bytes the formula states (`checkpoint.checkpoint_bytes`),
the file's bytes, the time to copy the state out of the driver (`Lbfgsb.state(copy=True)`),
to write it atomically (`save_checkpoint`: temporary file, fsync, rename) and to load it,
and the adaptive policy's interval after that write (50 x the write: writing is then at
most 1/51 of the run). Writes go to `--folder` (default: a temporary folder on the disk of
this checkout); nothing is left there. Wall times on a shared machine are noisy; the
machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_keras import checkpoint as ckpt  # noqa: E402
from nst_keras.engine import keras_state, lbfgsb  # noqa: E402


def synthetic_lbfgsb(n, rng):
    """A state of the real shapes with random contents (not zeros: nothing to special-case)."""
    state = lbfgsb.start(rng.uniform(-120, 130, n), memory=10)
    arrays = state.to_arrays()
    for name in ("g", "wa", "dsave"):
        arrays[name] = rng.normal(size=arrays[name].shape)
    arrays["iwa"] = rng.integers(0, n, arrays["iwa"].shape, dtype=np.int32)
    arrays["task"] = np.array([lbfgsb.FG, 0], np.int32)
    return lbfgsb.LbfgsbState.from_arrays(arrays)


def monitor_state(shape, rng, evaluations=200):
    losses = np.sort(rng.uniform(1e5, 1e7, evaluations))[::-1].copy()
    history = "[" + ", ".join(f'{{"iteration": {i}, "loss": {v!r}}}'
                              for i, v in enumerate(losses, 1)) + "]"
    return ckpt.MonitorState(evaluations, evaluations, 0, 100.0, losses,
                             np.linspace(0, 100, evaluations), history,
                             '{"iterations": 0, "evaluations": 0, "seconds": 0.0, '
                             '"stage": 1, "stages": 1}',
                             best_x=rng.uniform(-120, 130, shape).astype(np.float32),
                             best='{"loss": 1.0, "weighted": {}, "values": {}}')


def timed(fn, repeats):
    best, value = None, None
    for _ in range(repeats):
        began = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - began
        best = seconds if best is None else min(best, seconds)
    return best, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["400x533", "1536x2048"])
    parser.add_argument("--folder", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; best of "
          f"{args.repeats}; GB = 1e9 bytes")
    print(f"{'size':>10} {'solver':>6} {'formula GB':>10} {'file GB':>8} {'B/value':>7} "
          f"{'copy s':>7} {'write s':>7} {'MB/s':>6} {'load s':>7} {'next in s':>9}")
    with tempfile.TemporaryDirectory(dir=args.folder or ROOT) as folder:
        path = os.path.join(folder, "run.ckpt.npz")
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            shape = (1, height, width, 3)
            n = int(np.prod(shape))
            monitor = monitor_state(shape, rng)
            state = synthetic_lbfgsb(n, rng)
            driver = lbfgsb.Lbfgsb(state)
            del state
            copy_s, copied = timed(lambda: driver.state(copy=True), args.repeats)
            del copied
            adam = keras_state.KerasState(
                x=monitor.best_x.copy(), config="{}",
                variables={"iteration": np.array(200),
                           "image_0_momentum": rng.normal(size=shape).astype(np.float32),
                           "image_0_velocity": rng.normal(size=shape).astype(np.float32)})
            rows = [("lbfgsb", ckpt.Checkpoint("lbfgsb", driver.state(copy=False), monitor),
                     ckpt.checkpoint_bytes(shape), copy_s),
                    ("adam", ckpt.Checkpoint("keras", adam, monitor),
                     ckpt.checkpoint_bytes(shape, "keras"), None)]
            for name, checkpoint, formula, copy_seconds in rows:
                write_s, written = timed(lambda: ckpt.save_checkpoint(path, checkpoint),
                                         args.repeats)
                load_s, _ = timed(lambda: ckpt.load_checkpoint(path), args.repeats)
                policy = ckpt.CheckpointPolicy()
                policy.wrote(write_s)
                print(f"{size:>10} {name:>6} {formula / 1e9:>10.3f} {written / 1e9:>8.3f} "
                      f"{written / n:>7.1f} "
                      f"{'-' if copy_seconds is None else f'{copy_seconds:.3f}':>7} "
                      f"{write_s:>7.2f} {written / write_s / 1e6:>6.0f} {load_s:>7.2f} "
                      f"{policy.wait():>9.0f}")
                os.unlink(path)
            driver = rows = adam = None  # Free this size before the next.
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
