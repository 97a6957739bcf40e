"""The app's cost per evaluation against the same run on the command line, and its first image.

The same job (images, settings, seed) runs alternately as `nst-keras CONTENT STYLE --report`
and through `nst-keras app`, driven by a Gradio client that receives every streamed output
(images included) as a browser would. Each run's own record gives its seconds per
evaluation (the optimisation's wall time over its evaluations: everything the app does
while the run is on the clock, the streaming thread and the server included). Printed: the
medians and the ratio (target: the app adds <= 3%), and the time from Run to the first
image against the run's setup plus two evaluations (the target: no later).

    python benchmarks/app.py                      # height 192, 40 evaluations, 3 repeats
    python benchmarks/app.py --height 400 --evals 60 --repeats 5

The images are Tübingen x The Starry Night from ../shared when there, generated ones
otherwise; random VGG19 weights (the cost per evaluation does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared" / "images"
TARGET_OVERHEAD = 0.03


def _images(folder: pathlib.Path):
    if (SHARED_IMAGES / "tubingen.jpg").is_file():
        return str(SHARED_IMAGES / "tubingen.jpg"), str(SHARED_IMAGES / "starry_night.jpg")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_image
    from PIL import Image

    content, style = folder / "content.png", folder / "style.png"
    Image.fromarray(make_image(384, 512, seed=1)).save(content)
    Image.fromarray(make_image(400, 400, seed=2)).save(style)
    return str(content), str(style)


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")


def cli_run(content, style, args, folder) -> dict:
    """One command-line run; returns its record."""
    subprocess.run([sys.executable, "-m", "nst_keras", content, style, "-o",
                    str(folder / "cli.png"), "--weights", "none", "--height", str(args.height),
                    "--max-evals", str(args.evals), "--seed", "0", "--report", str(folder),
                    "-q"], cwd=ROOT, env=_env(), check=True)
    return json.loads((folder / "cli.json").read_text())


def app_run(client, content, style, args) -> tuple:
    """One run through the app; returns (its record, seconds from Run to the first image)."""
    from gradio_client import handle_file

    began = time.perf_counter()
    job = client.submit(handle_file(content), "", [handle_file(style)], [], "book",
                        args.height, 0.0, "off", args.evals, 0, "block5_conv2",
                        ",".join(f"block{i}_conv1" for i in range(1, 6)), "max", "lbfgs",
                        1e-4, api_name="/stylize")
    first = None
    for outputs in job:
        if first is None and outputs[0] is not None and str(outputs[1]).startswith("iteration"):
            first = time.perf_counter() - began
    record_path = job.outputs()[-1][4]
    return json.loads(pathlib.Path(record_path).read_text()), first


def _median_step(record) -> float:
    """The median time between two evaluations of a run."""
    times = record["times"]
    return statistics.median(b - a for a, b in zip(times, times[1:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--evals", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preview-every", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from gradio_client import Client

    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench_app_"))
    content, style = _images(folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "nst_keras", "app", "--weights", "none",
                               "--port", str(port), "--preview-every", str(args.preview_every),
                               "-q"], cwd=ROOT, env=_env())
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        client = Client(url, verbose=False)
        cli, app, firsts, cli_steps, app_steps = [], [], [], [], []
        for repeat in range(args.repeats + 1):  # The first pair warms up (traces, caches).
            a = cli_run(content, style, args, folder)
            b, first = app_run(client, content, style, args)
            if repeat == 0:
                continue
            cli.append(a["seconds_per_evaluation"])
            app.append(b["seconds_per_evaluation"])
            cli_steps.append(_median_step(a))
            app_steps.append(_median_step(b))
            setup = b["app"]["plan_seconds"] + b["setup_seconds"]
            firsts.append((first, setup, b["times"][1]))
            print(f"repeat {repeat}: s/evaluation cli {a['seconds_per_evaluation']:.4f} "
                  f"(median step {cli_steps[-1]:.4f}), app {b['seconds_per_evaluation']:.4f} "
                  f"(median step {app_steps[-1]:.4f}); app first image after {first:.2f} s "
                  f"(plan + setup {setup:.2f} s + 2 evaluations {b['times'][1]:.2f} s; the "
                  f"first iteration took {b['history'][0]['evaluations']} evaluations)",
                  flush=True)
    finally:
        server.terminate()
        server.wait(30)
    ratio = statistics.median(app) / statistics.median(cli)
    size = f"{b['size'][1]}x{b['size'][0]}"
    print(f"\n{size}, {args.evals} evaluations, preview every {args.preview_every} iterations, "
          f"{args.repeats} repeats, {b['precision']} on {b['hardware']}")
    print(f"median s/evaluation: cli {statistics.median(cli):.4f}, app "
          f"{statistics.median(app):.4f}: the app adds {100 * (ratio - 1):+.1f}% "
          f"(target <= {100 * TARGET_OVERHEAD:.0f}%)")
    step = statistics.median(app_steps) / statistics.median(cli_steps)
    print(f"median time between evaluations (robust to a cold process's first ones): cli "
          f"{statistics.median(cli_steps):.4f} s, app {statistics.median(app_steps):.4f} s: "
          f"{100 * (step - 1):+.1f}%")
    first, setup, two = (statistics.median(x) for x in zip(*firsts))
    print(f"median first image: {first:.2f} s after Run; plan + setup + 2 evaluations: "
          f"{setup + two:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
