"""Exact resume against a restart: the loss curve after a stop, and what checkpoints cost.

A run of N evaluations is stopped at evaluation K, then continued three ways, and each
loss curve is printed against the uninterrupted run's:

* **exact resume**: the checkpoint (the optimiser's whole state) taken at the stop, as a
  rerun of the same command does;
* **restart**: today's `--save-every` + `--init`: a new run of N - K evaluations from the
  best image so far, L-BFGS-B's curvature memory lost;
* **uninterrupted**: the reference.

Then the overhead of checkpoints at the default interval (`--checkpoint-every auto`): the
same run with and without them, interleaved, and the checkpoint's size and write time.

Tübingen x The Starry Night from ../shared with the VGG16 stand-in weights when ../shared
is there (random seeded VGG19 otherwise), float32, on the CPU. Ratios are measured in one
run; the CPU flags are printed.

    python benchmarks/resume.py [--height 200] [--evals 80] [--stop-at 40]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def inputs(height):
    from nst_keras.config import StyleConfig

    images = SHARED / "images"
    weights = SHARED / "weights" / "vgg16_hed_notop.weights.h5"
    if images.is_dir() and weights.is_file():
        config = StyleConfig(model="vgg16", weights=str(weights), height=height, seed=0,
                             precision="float32")
        return (str(images / "tubingen.jpg"), str(images / "starry_night.jpg"), config,
                "Tübingen x The Starry Night, VGG16 stand-in weights")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_image

    config = StyleConfig(weights=None, height=height, seed=0, precision="float32")
    return (make_image(height, height * 4 // 3, 1), make_image(height, height, 2), config,
            "generated images, random seeded VGG19")


class Keep:
    """Keeps checkpoints in a folder with the delivery's own `CheckpointFile`."""

    def __init__(self, folder, resume=None):
        from nst_keras import delivery

        self.file = delivery.CheckpointFile(os.path.join(folder, "run.checkpoint.npz"))
        if resume is not None:
            self.file.resume = resume
        self.resume = self.file.resume

    def at_boundary(self, make, stopping):
        self.file.at_boundary(make, stopping)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--evals", type=int, default=80)
    parser.add_argument("--stop-at", type=int, default=40)
    parser.add_argument("--json", default=None, help="also write the curves here")
    args = parser.parse_args(argv)

    from nst_keras import checkpoint, delivery, plan, render
    from nst_keras.engine import control, runtime

    content, style, config, source = inputs(args.height)
    config = config.replace(max_evals=args.evals, iterations=10 * args.evals)
    job = plan.plan(content, style, config=config)
    model = render.load_model(job.config, job.placement)
    print(f"CPU: {runtime.describe_hardware('cpu')}; flags: "
          f"{' '.join(sorted(runtime.cpu_flags() & {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}))}")
    print(f"{source}; {job.size[1]}x{job.size[0]}, {args.evals} evaluations, L-BFGS-B m="
          f"{config.lbfgs_memory}, stopped at evaluation {args.stop_at}.")

    reference = render.render(job, feature_model=model)

    with tempfile.TemporaryDirectory() as folder:
        token = control.StopToken()
        keep = Keep(folder)
        stop_at = args.stop_at
        first = render.render(job, lambda p: token.request("stopped") if p.evaluations >= stop_at
                              else None, feature_model=model, stop=token, checkpoints=keep)
        saved = checkpoint.load_checkpoint(keep.file.path)
        size = os.path.getsize(keep.file.path)
        began = time.perf_counter()
        checkpoint.save_checkpoint(os.path.join(folder, "again.npz"), saved)
        write = time.perf_counter() - began
        resumed = render.render(job, feature_model=model, checkpoints=Keep(folder, saved))

    # The restart: the stopped run's best image as the start of a run of the rest.
    done = first.evaluations
    restart_job = plan.plan(content, style, config=config.replace(
        max_evals=args.evals - done, init="stopped.png"), init_image=first.image)
    restarted = render.render(restart_job, feature_model=model)
    restart_curve = list(first.losses) + list(restarted.losses)

    exact = list(resumed.losses) == list(reference.losses)
    ref = list(reference.losses)
    after = done  # Index of the first evaluation after the stop.
    print()
    print("| evaluation | uninterrupted | exact resume | restart (--init) | restart / uninterrupted |")
    print("|---|---|---|---|---|")
    for i in sorted({after - 1, after, after + 1, after + 2, after + 5, after + 10,
                     len(ref) - 1} & set(range(len(ref)))):
        r = restart_curve[i] if i < len(restart_curve) else float("nan")
        print(f"| {i + 1} | {ref[i]:.5g} | {resumed.losses[i]:.5g} | {r:.5g} | "
              f"{r / ref[i]:.2f} |")
    jump = restart_curve[after] / ref[after - 1]
    print(f"\nExact resume equals the uninterrupted run: {exact} (np.array_equal of the "
          f"images: {bool((resumed.image == reference.image).all())}).")
    print(f"Restart: the first loss after the stop is {jump:.2f} x the last before it "
          f"(uninterrupted: {ref[after] / ref[after - 1]:.2f} x); final loss "
          f"{restarted.loss / reference.loss:.3f} x the uninterrupted run's.")
    print(f"Checkpoint: {size / 1e6:.1f} MB ({size / (job.size[0] * job.size[1] * 3):.0f} bytes "
          f"a value), written in {write:.3f} s.")

    # The overhead at the default interval: interleaved runs with and without checkpoints.
    times = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):
            for kind in ("without", "with"):
                keeper = None
                if kind == "with":
                    keeper = delivery.CheckpointFile(os.path.join(folder, "o.checkpoint.npz"))
                began = time.perf_counter()
                render.render(job, feature_model=model, checkpoints=keeper)
                times[kind].append(time.perf_counter() - began)
                if keeper is not None:
                    writes = keeper.policy.writes
                    keeper.remove()
    ratio = min(times["with"]) / min(times["without"])
    print(f"Overhead at the default interval: {ratio:.3f} x the run without checkpoints "
          f"({writes} writes in the last run; best of 2, interleaved).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"uninterrupted": ref, "resumed": list(resumed.losses),
                       "restart": restart_curve, "stop_at": done}, f)


if __name__ == "__main__":
    main()
