"""Fast stylisation: a trained network against the optimised image, in one run.

Trains (or takes, with `--network`) a style network with `nst-keras train`, then measures,
each row in this one process:

* **speed**: seconds per image through the network, warm (loaded and traced), at 400x533
  and 1080x1920, in float32 and bfloat16 (median of `--repeats`); the cold one-image
  command's wall time (`nst-keras PHOTO --network NET`, a fresh process); and the same photo
  optimised with the defaults at 400 px (`--baseline-evals` evaluations, the default's 400):
  its seconds and the ratio;
* **quality** on the held-out photos (never trained on: tubingen.jpg and chelsea.png), at
  256 px, by the judge of `engine.judge` (stylisation <= 0.2 and content kept <= 0.8 paint):
  the network's output and the image optimised with the defaults (200 evaluations, the
  gallery's budget), and the ratio of their stylisations;
* **training**: its seconds (from the network's record), and its peak resident memory
  against the dry run's estimate;
* **video**: a 480x360 clip through the network end to end (decode, stylise, encode) in
  frames per second, and the warping error (`flow.warp_error`) of its frames against
  independently optimised frames', on a pan across Tübingen.

The photos: `--photos DIR`, or the colour photographs bundled in scikit-image's and
scikit-learn's wheels and matplotlib's sample data, fetched from the package index with
`pip download` (no install) into `fast-work/photos` (chelsea.png held out). The network,
its record and its previews go to `fast-work/`. The machine's CPU flags are printed.

    python benchmarks/fast.py --weights ../shared/weights/vgg16_hed_notop.weights.h5 \\
        --model vgg16 --images ../shared/images
    python benchmarks/fast.py --network fast-work/starry.keras ...   # measure only
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

#: The bundled photographs used for training (colour and grey; chelsea.png held out).
WHEEL_PHOTOS = {
    "scikit-image": ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png",
                     "rocket.jpg", "hubble_deep_field.jpg", "brick.png", "grass.png",
                     "gravel.png", "camera.png"),
    "scikit-learn": ("china.jpg", "flower.jpg"),
}
HELD_OUT = "chelsea.png"


def fetch_photos(folder: pathlib.Path) -> pathlib.Path:
    """The bundled photos, from the wheels on the package index (downloaded, not installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = folder.parent / "wheels"
    for package, names in WHEEL_PHOTOS.items():
        if all((folder / n).is_file() for n in names):
            continue
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                        str(wheels), package], check=True)
        for wheel in glob.glob(str(wheels / "*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    if os.path.basename(member) in names:
                        (folder / os.path.basename(member)).write_bytes(archive.read(member))
    import matplotlib

    hopper = pathlib.Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / \
        "grace_hopper.jpg"
    if hopper.is_file():
        shutil.copy(hopper, folder / "grace_hopper.jpg")
    return folder


def median_seconds(function, repeats: int) -> float:
    function()  # Warm: traced, allocated.
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cli(*args, quiet=True) -> float:
    """Runs `python -m nst_keras ARGS` in a fresh process; its wall time."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nst_keras", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ,
                                                                   PYTHONPATH=str(ROOT)))
    if done.returncode != 0:
        raise SystemExit(f"failed: nst_keras {' '.join(map(str, args))}\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg19")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--images", default=str(SHARED / "images"),
                        help="the folder with tubingen.jpg and the style")
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--photos", default=None, help="training photos (default: fetched)")
    parser.add_argument("--work", default="fast-work")
    parser.add_argument("--network", default=None, help="measure this network; no training")
    parser.add_argument("--train", nargs=argparse.REMAINDER, default=[],
                        help="more options for nst-keras train (last on the line)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-evals", type=int, default=400)
    parser.add_argument("--judge-evals", type=int, default=200)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=("speed", "quality", "video", "baseline", "memory"))
    args = parser.parse_args(argv)

    from nst_keras.engine import runtime

    print(f"machine: {runtime.describe_hardware('cpu')}; flags "
          f"{' '.join(sorted(runtime.cpu_flags()))}; load {os.getloadavg()[0]:.2f}")
    work = pathlib.Path(args.work)
    work.mkdir(exist_ok=True)
    images = pathlib.Path(args.images)
    style = images / args.style
    network_path = pathlib.Path(args.network) if args.network else work / (
        pathlib.Path(args.style).stem + ".keras")
    net_args = ["--model", args.model, "--weights", args.weights]
    photos = pathlib.Path(args.photos) if args.photos else fetch_photos(work / "photos")
    held_out = [images / "tubingen.jpg"] + ([photos / HELD_OUT] if (photos / HELD_OUT).is_file()
                                             else [])
    report = {"machine": runtime.describe_hardware("cpu"),
              "flags": sorted(runtime.cpu_flags())}
    if args.network is None:
        command = ["train", style, "--photos", photos, "--preview", *held_out, "-o",
                   network_path, *net_args, "-q", *args.train]
        began = time.perf_counter()
        cli(*command)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(f"training: {time.perf_counter() - began:.0f} s wall; "
              f"{' '.join(map(str, command))}")
        if "memory" not in args.skip:
            dry = subprocess.run([sys.executable, "-m", "nst_keras", *map(str, command),
                                  "--dry-run"], capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
            print(f"training peak resident memory {peak / 2**30:.2f} GiB; the dry run's "
                  f"estimate:\n{dry.stdout.strip()}")
            report["training_peak_bytes"] = peak
    from nst_keras.engine import judge, transformer
    from nst_keras.media import images as images_lib

    network = transformer.load_network(network_path)
    record = network.record
    print(f"network: {network_path}: {record['steps']} steps, batch {record['batch_size']} of "
          f"{record['size']} px, width {record['width']}, {record['photos']} photos, "
          f"{record['precision']}, trained in {record['seconds']:.0f} s "
          f"({record['seconds'] / 60:.1f} min)")
    report["network"] = {k: record[k] for k in ("steps", "batch_size", "size", "width",
                                                "photos", "precision", "seconds")}

    if "speed" not in args.skip:
        photo = images_lib.load_image(images / "tubingen.jpg")
        rows = {}
        for height, width in ((400, 533), (1080, 1920)):
            rgb = np.asarray(images_lib.resize_float(photo.astype(np.float32), (width, height)))
            for precision in ("float32", "bfloat16"):
                seconds = median_seconds(lambda: transformer.stylize(network, rgb,
                                                                     precision=precision),
                                         args.repeats)
                rows[f"{width}x{height} {precision}"] = seconds
                print(f"warm, {width}x{height}, {precision}: {seconds:.3f} s per image")
        cold = cli(images / "tubingen.jpg", "--network", network_path, "-o",
                   work / "cold.png", "--height", "400", "-q")
        print(f"cold command (one image, 400 px, a fresh process): {cold:.1f} s")
        rows["cold command"] = cold
        if "baseline" not in args.skip:
            optimised = cli(images / "tubingen.jpg", style, "-o", work / "optimised400.png",
                            "--height", "400", "--max-evals", args.baseline_evals, *net_args,
                            "-q")
            print(f"the same photo optimised (defaults, 400 px, {args.baseline_evals} "
                  f"evaluations, a fresh process): {optimised:.0f} s; the network's cold "
                  f"command is {optimised / cold:.0f}x faster, its warm bfloat16 pass "
                  f"{optimised / rows['533x400 bfloat16']:.0f}x")
            rows["optimised 400 px"] = optimised
        report["speed"] = rows

    if "quality" not in args.skip:
        judging = judge.judge_network(args.model, None if args.weights == "none" else args.weights)
        painting = images_lib.load_image(style)
        rows = {}
        for path in held_out:
            photo = images_lib.load_image(path, 256)
            delivered = runtime.resolve_precision("auto", "cpu")
            for precision in dict.fromkeys(("float32", delivered)):
                ours = np.clip(np.rint(transformer.stylize(network, photo, precision=precision)),
                               0, 255).astype(np.uint8)
                images_lib.save_image(work / f"network-{path.stem}-{precision}.png", ours)
                mine = judge.judge(judging, ours, photo, painting)
                print(f"{path.name}, network in {precision}: stylisation "
                      f"{mine.stylisation:.3f}, content kept {mine.content_kept:.3f}")
            out = work / f"optimised-{path.stem}.png"
            if not out.is_file():
                cli(path, style, "-o", out, "--height", "256", "--max-evals", args.judge_evals,
                    *net_args, "-q")
            optimised = images_lib.load_image(out)
            theirs = judge.judge(judging, optimised, photo, painting)
            ratio = mine.stylisation / max(theirs.stylisation, 1e-12)
            print(f"{path.name} at 256 px ({precision}): network stylisation {mine.stylisation:.3f}, content "
                  f"kept {mine.content_kept:.3f} ({'paints' if mine.paints() else 'MISSES'}); "
                  f"optimised {theirs.stylisation:.3f}, {theirs.content_kept:.3f}; "
                  f"stylisation ratio {ratio:.2f}")
            rows[path.name] = {"network": mine.as_dict(), "optimised": theirs.as_dict(),
                               "ratio": ratio}
        report["quality"] = rows

    if "video" not in args.skip:
        report["video"] = video_rows(network, network_path, images, work, args)
        report["warp"] = warp_rows(network)
    (work / "fast.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {work / 'fast.json'}")
    return 0


#: `docs/guides/video.md`'s measured warp errors on the same clips (benchmarks/video.py at
#: 128x96, 12 frames): (consistent, independent).
VIDEO_WARP = {"synthetic pan": (1.64e-4, 9.35e-3), "Tübingen pan + zoom": (7.08e-4, 6.49e-3)}


def warp_rows(network) -> dict:
    """The network's frames' warping error (`flow.warp_error`) on benchmarks/video.py's two
    clips at 128x96, 12 frames, beside the optimised videos' (measured with that benchmark,
    `VIDEO_WARP`: not rerun here, where each optimised frame takes tens of seconds)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic_video import pan
    from video import tubingen_clip

    from nst_keras.engine import flow, transformer

    rows = {}
    for name, frames in (("synthetic pan", pan(12, 96, 128)),
                         ("Tübingen pan + zoom", tubingen_clip(12, 96, 128))):
        frames = [np.asarray(f, np.uint8) for f in frames]
        outs = [np.clip(np.rint(transformer.stylize(network, f)), 0, 255).astype(np.uint8)
                for f in frames]
        error = flow.warp_error(outs, frames)
        consistent, independent = VIDEO_WARP[name]
        print(f"warp error, {name}: network {error:.3g}; optimised video: consistent "
              f"{consistent:.3g}, independent frames {independent:.3g} (docs/guides/video.md)")
        rows[name] = {"network": error, "consistent": consistent, "independent": independent}
    return rows


def video_rows(network, network_path, images, work, args) -> dict:
    """The 480x360 clip end to end through `nst-keras video --network`, frames per second."""
    from PIL import Image

    frames_dir = work / "clip"
    frames_dir.mkdir(exist_ok=True)
    photo = Image.open(images / "tubingen.jpg").convert("RGB")
    count = 150  # 6 s at 25 fps: the process's start is a small part of it.
    # A 4:3 window 70 % of the photo's width, panned from its left edge to its right.
    width = int(photo.width * 0.7)
    height = min(photo.height, int(width * 3 / 4))
    for t in range(count):
        left = int((photo.width - width) * t / (count - 1))
        crop = photo.crop((left, photo.height - height, left + width, photo.height))
        crop.resize((480, 360), Image.LANCZOS).save(frames_dir / f"f{t:03d}.png")
    clip = work / "clip.mp4"
    from nst_keras.media import videoio

    videoio.write_video(clip, (np.asarray(Image.open(p)) for p in sorted(frames_dir.glob("*.png"))),
                        25)
    began = time.perf_counter()
    # --height 360: the clip's own size (the command's default height is 400, as a plain
    # run's, which would stylise and encode 533x400 frames instead).
    done = subprocess.run([sys.executable, "-m", "nst_keras", "video", str(clip), "--network",
                           str(network_path), "--height", "360", "-o",
                           str(work / "clip-styled.mp4"), "-q"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - began
    if done.returncode != 0:
        print(f"video: failed ({done.stderr.strip().splitlines()[-1:]})")
        return {"failed": done.stderr[-500:]}
    record = json.loads((work / "clip-styled.json").read_text())
    # The video's own frames judged, each against its input frame (held out: Tübingen).
    from nst_keras.engine import judge

    judging = judge.judge_network(args.model, None if args.weights == "none" else args.weights)
    painting = np.asarray(Image.open(images / args.style).convert("RGB"))
    styled = list(videoio.read_frames(work / "clip-styled.mp4"))
    if styled[0].shape[:2] != (360, 480):
        raise SystemExit(f"video: the styled frames are {styled[0].shape[:2]}, not (360, 480)")
    verdicts = []
    for t in (0, count // 2, count - 1):
        photo = np.asarray(Image.open(frames_dir / f"f{t:03d}.png").convert("RGB"))
        verdicts.append(judge.judge(judging, styled[t], photo, painting))
    print("video frames judged (first, middle, last): " + "; ".join(
        f"stylisation {v.stylisation:.3f}, content kept {v.content_kept:.3f}"
        for v in verdicts))
    print(f"video: {count} frames of 480x360 in {wall:.1f} s wall (a fresh process: Python, "
          f"TensorFlow and the network's load included): {count / wall:.1f} frames/s; "
          f"decode, stylise and encode alone (the command's own clock): "
          f"{record['frames_per_second']:.1f} frames/s")
    return {"frames": count, "seconds": wall, "fps": count / wall,
            "fps_in_command": record["frames_per_second"],
            "judged": [v.as_dict() for v in verdicts]}


if __name__ == "__main__":
    raise SystemExit(main())
