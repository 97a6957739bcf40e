"""Video without flicker (Ruder et al. 2016): consistent frames against independent ones.

For each clip, the same frames are stylised twice with the same settings: independently
(temporal weight 0, every frame from the config's start with the first frame's budget, as
the plain command run per frame would) and consistently (`nst-keras video`'s default: the
warped start and the temporal term at `video.paper_temporal_weight`). Printed per clip:

* the warping error (Lai et al. 2018, `flow.warp_error`, on [0, 1] images) of both, and the
  ratio (target: consistent <= 0.5 x independent);
* the mean per-frame style loss (weighted, as the records report it) of both, and the ratio
  (target: within 15% of independent);
* seconds per frame and flow seconds per frame of the consistent run, and the flow's share
  (target: <= 5%).

Clips: a synthetic pan (smooth noise moving 2 px right, 1 px down per frame) and a
40-frame clip panning and zooming over ../shared/images/tubingen.jpg. With ../shared: the
offline stand-in VGG16 weights, The Starry Night, --style-weight 10; without it: random
VGG19 weights and a generated style (said in the output).

    python benchmarks/video.py                      # 128 px high, 40 frames
    python benchmarks/video.py --height 96 --frames 20 --first-evals 60 --frame-evals 30
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def tubingen_clip(frames, height, width):
    """A camera panning right and zooming in over Tübingen: crops resized to (width, height)."""
    from PIL import Image

    image = Image.open(SHARED / "images" / "tubingen.jpg").convert("RGB")
    full_w, full_h = image.size
    out = []
    for t in range(frames):
        s = t / max(1, frames - 1)
        crop_h = full_h * (0.8 - 0.15 * s)          # zoom in by ~20% over the clip
        crop_w = crop_h * width / height
        left = (full_w - crop_w) * (0.1 + 0.6 * s)  # pan left to right
        top = (full_h - crop_h) * 0.4
        box = (left, top, left + crop_w, top + crop_h)
        out.append(np.asarray(image.resize((width, height), Image.LANCZOS, box=box)))
    return out


def run(frames, style, config, settings, model):
    """Stylises a list of frames (written as PNGs); returns (outputs, records, seconds)."""
    from PIL import Image

    from nst_keras import video

    with tempfile.TemporaryDirectory() as folder:
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(f"{folder}/f{i:03d}.png")
        plan = video.plan_video(folder, style, config=config, settings=settings)
        began = time.perf_counter()
        results = list(video.run_frames(plan, feature_model=model))
        seconds = time.perf_counter() - began
    return [r.image for r in results], [r.record for r in results], seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--first-evals", type=int, default=100)
    parser.add_argument("--frame-evals", type=int, default=50)
    parser.add_argument("--temporal-weight", type=float, default=None,
                        help="the temporal weight (default: video.default_temporal_weight)")
    parser.add_argument("--factors", default=None,
                        help="a sweep instead: comma-separated factors of the paper-scaled "
                             "weight (video.paper_temporal_weight), e.g. 1,1e-1,1e-2,1e-3")
    parser.add_argument("--warps", default="lanczos",
                        help="comma-separated warp interpolations to run (lanczos,cubic,linear)")
    parser.add_argument("--clips", default="pan,tubingen")
    parser.add_argument("--json", default=None)
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="keep the independent frames there and reuse them in later runs "
                             "with the same clip, frames, height and evaluations (sweeps)")
    args = parser.parse_args(argv)

    from synthetic_video import pan

    from nst_keras import flow, render, video
    from nst_keras.config import StyleConfig

    weights = SHARED / "weights" / "vgg16_hed_notop.weights.h5"
    if weights.is_file() and (SHARED / "images").is_dir():
        config = StyleConfig(model="vgg16", weights=str(weights), style_weight=10,
                             height=args.height, seed=0)
        style = str(SHARED / "images" / "starry_night.jpg")
        what = "VGG16 with the offline stand-in weights, The Starry Night, style weight 10"
    else:
        from conftest import make_image

        config = StyleConfig(weights=None, height=args.height, seed=0)
        style, what = make_image(64, 64, seed=2), "random VGG19 weights, a generated style"
    paper = video.paper_temporal_weight(config)
    if args.factors:
        weights = [float(f) * paper for f in args.factors.split(",")]
    else:
        weights = [args.temporal_weight if args.temporal_weight is not None
                   else video.default_temporal_weight(config)]
    warps = args.warps.split(",")
    print(f"{what}; {args.height} px high; first frame {args.first_evals} evaluations, later "
          f"frames {args.frame_evals} (independent frames {args.first_evals} each); temporal "
          f"weight(s) {', '.join(f'{w:.4g}' for w in weights)} (paper-scaled {paper:.4g}); "
          f"warp {', '.join(warps)}; DIS flow.", flush=True)
    model = render.load_model(config)
    width = round(args.height * 4 / 3)
    clips = {"pan": lambda: pan(args.frames, args.height, width, dx=2, dy=1),
             "tubingen": lambda: tubingen_clip(args.frames, args.height, width)}
    rows = []
    for name in args.clips.split(","):
        frames = clips[name]()
        independent = video.VideoSettings(0.0, args.first_evals, args.first_evals,
                                          consistent=False)
        # The independent frames do not depend on the weight: computed once per clip.
        cached = (pathlib.Path(args.cache) / f"independent-{name}-{len(frames)}-{args.height}-"
                  f"{args.first_evals}-{config.model}.npz" if args.cache else None)
        if cached is not None and cached.is_file():
            with np.load(cached) as data:
                out_i, rec_i = list(data["frames"]), json.loads(str(data["records"]))
                sec_i = float(data["seconds"])
        else:
            out_i, rec_i, sec_i = run(frames, style, config, independent, model)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, frames=np.stack(out_i), records=json.dumps(rec_i),
                         seconds=sec_i)
        error_i = flow.warp_error(out_i, frames)
        style_i = float(np.mean([r["kind_losses"]["style"] for r in rec_i]))
        for warp in warps:
            for weight in weights:
                consistent = video.VideoSettings(weight, args.first_evals, args.frame_evals,
                                                 warp=warp)
                out_c, rec_c, sec_c = run(frames, style, config, consistent, model)
                error_c = flow.warp_error(out_c, frames)
                styles = [r["kind_losses"]["style"] for r in rec_c]
                style_c = float(np.mean(styles))
                flow_seconds = float(np.mean([r["flow_seconds"] for r in rec_c[1:]]))
                frame_seconds = float(np.mean([r["seconds"] for r in rec_c[1:]]))
                rows.append({"clip": name, "frames": len(frames), "size": [args.height, width],
                             "warp": warp, "temporal_weight": weight,
                             "factor": weight / paper,
                             "warp_error_independent": error_i,
                             "warp_error_consistent": error_c,
                             "warp_ratio": error_c / error_i, "style_independent": style_i,
                             "style_consistent": style_c, "style_ratio": style_c / style_i,
                             "style_first": styles[0], "style_last": styles[-1],
                             "styles": styles,
                             "style_independent_last": rec_i[-1]["kind_losses"]["style"],
                             "seconds_per_frame": frame_seconds,
                             "independent_seconds_per_frame": sec_i / len(frames),
                             "flow_seconds_per_frame": flow_seconds,
                             "flow_share": flow_seconds / frame_seconds})
                r = rows[-1]
                print(f"{name} {warp} weight {weight:.3g} (x{r['factor']:.0e} paper): warp "
                      f"error {error_c:.3g} consistent vs {error_i:.3g} independent "
                      f"(x{r['warp_ratio']:.3f}, target <= 0.5); style {style_c:.4g} vs "
                      f"{style_i:.4g} (x{r['style_ratio']:.2f}, target within 15%; frame 1 "
                      f"{styles[0]:.3g}, last {styles[-1]:.3g} vs independent "
                      f"{r['style_independent_last']:.3g}); {frame_seconds:.2f} s/frame "
                      f"(independent {r['independent_seconds_per_frame']:.2f}), flow "
                      f"{flow_seconds * 1000:.1f} ms/frame ({100 * r['flow_share']:.1f}%, "
                      "target <= 5%)", flush=True)
                if args.json:
                    pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))
    print("\n| clip | frames | size | warp | weight (x paper) | warp error consistent | independent | ratio | style "
          "consistent | independent | ratio | s/frame | flow s/frame | flow share |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['frames']} | {r['size'][1]}x{r['size'][0]} | {r['warp']} | "
              f"{r['temporal_weight']:.3g} (x{r['factor']:.0e}) | "
              f"{r['warp_error_consistent']:.3g} | {r['warp_error_independent']:.3g} | "
              f"{r['warp_ratio']:.3f} | {r['style_consistent']:.4g} | "
              f"{r['style_independent']:.4g} | {r['style_ratio']:.2f} | "
              f"{r['seconds_per_frame']:.2f} | {r['flow_seconds_per_frame']:.4f} | "
              f"{100 * r['flow_share']:.1f}% |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
