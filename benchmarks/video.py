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
  (target: <= 5%);
* the strip of scenery that entered in the last frames (issue 26): its distance from the
  photo and its masked style loss (block1-3), and the last frame's content loss, each
  against the independent run's; and each fill's seconds per later frame against the first
  fill's (`--fills`, today's `content` first), as wall seconds and as this process's CPU
  seconds (steadier on a shared machine; the load average is printed with them).

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
import os
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


def first_seen(frames, method="dis"):
    """For every pixel of the last frame, the frame it has been visible since: carried
    along the input's flow where `flow.reliability` trusts it, reset where it does not
    (disocclusions, points entering the frame)."""
    from nst_keras.engine import flow

    seen = np.zeros(frames[0].shape[:2], np.float32)
    for t in range(1, len(frames)):
        backward = flow.optical_flow(frames[t], frames[t - 1], method)
        forward = flow.optical_flow(frames[t - 1], frames[t], method)
        reliable = flow.reliability(forward, backward)
        seen = np.where(reliable > 0, flow.warp(seen, backward), float(t))
    return seen


def entering_strip(frames, last=4, min_width=16):
    """The columns at the left or right edge of the last frame that became visible in its
    `last` frames (at least half of each column's pixels new), widened to the frames it
    takes for `min_width` columns. Returns (columns as a slice, frames it spans)."""
    seen = first_seen(frames)
    total = len(frames)
    for span in range(last, total):
        share = (seen > total - 1 - span - 0.5).mean(axis=0)
        left = int(np.argmin(np.append(share >= 0.5, False)))  # Columns from the left.
        right = int(np.argmin(np.append(share[::-1] >= 0.5, False)))
        width = max(left, right)
        if width >= min_width:
            columns = slice(0, left) if left >= right else slice(len(share) - right, None)
            return columns, span
    return slice(len(share) - min_width, None), total - 1


def gram(features, mask):
    """The Gram matrix of (h, w, C) features weighted by an (h, w) mask, per unit of mask."""
    flat = (features * mask[..., None]).reshape(-1, features.shape[-1])
    return flat.T @ flat / max(float(np.sum(mask ** 2)), 1e-12)


def strip_style_loss(model, image, columns, style_rgb, layers):
    """A masked Gram style loss of the strip: per layer, the mean squared difference of the
    strip's Gram matrix (per position) and the style's, averaged over `layers`."""
    import tensorflow as tf

    from nst_keras.engine import features
    from nst_keras.media import images

    mask = np.zeros(image.shape[:2], np.float32)
    mask[:, columns] = 1.0
    found = features.features_of(model, tf.constant(images.preprocess(image.astype(np.float32))))
    style = features.features_of(model, tf.constant(images.preprocess(
        style_rgb.astype(np.float32))))
    losses = []
    for layer in layers:
        f = np.asarray(tf.cast(found[layer][0], tf.float32))
        s = np.asarray(tf.cast(style[layer][0], tf.float32))
        h, w = f.shape[:2]
        # The mask at the layer's resolution (the mean over each position's pixels).
        m = mask[:h * (mask.shape[0] // h), :w * (mask.shape[1] // w)]
        m = m.reshape(h, m.shape[0] // h, w, m.shape[1] // w).mean(axis=(1, 3))
        target = gram(s, np.ones(s.shape[:2], np.float32))
        losses.append(float(np.mean((gram(f, m) - target) ** 2)))
    return float(np.mean(losses))


def strip_measures(frames, outputs, columns, model, style_rgb, layers):
    """(distance from the photo, masked style loss) of the strip in the last frame."""
    out, photo = outputs[-1].astype(np.float32), frames[-1].astype(np.float32)
    distance = float(np.abs(out[:, columns] - photo[:, columns]).mean())
    return distance, strip_style_loss(model, outputs[-1], columns, style_rgb, layers)


def run(frames, style, config, settings, model):
    """Stylises a list of frames (written as PNGs); returns (outputs, records, seconds, CPU
    seconds per later frame).

    The CPU seconds are this process's (`time.process_time`, all its threads) from the end
    of the first frame to the end of the last, per frame: on a machine shared with other
    work they vary far less than the wall time, which also counts the waits for a core."""
    from PIL import Image

    from nst_keras.commands import video

    with tempfile.TemporaryDirectory() as folder:
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(f"{folder}/f{i:03d}.png")
        plan = video.plan_video(folder, style, config=config, settings=settings)
        began = time.perf_counter()
        results, cpu = [], []
        for result in video.run_frames(plan, feature_model=model):
            results.append(result)
            cpu.append(time.process_time())
        seconds = time.perf_counter() - began
    cpu_per_frame = (cpu[-1] - cpu[0]) / max(1, len(cpu) - 1)
    return [r.image for r in results], [r.record for r in results], seconds, cpu_per_frame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--first-evals", type=int, default=100)
    parser.add_argument("--frame-evals", default="50",
                        help="evaluations of each later frame; comma-separated for several")
    parser.add_argument("--fills", default="content,coarse",
                        help="what later frames start from where the warp is not trusted "
                             "(VideoSettings.fill), comma-separated: the first is the "
                             "baseline the seconds per frame are compared with")
    parser.add_argument("--fill-evals", type=int, default=None,
                        help="evaluations of the coarse fill (VideoSettings.fill_evals; "
                             "default: half of the frame's)")
    parser.add_argument("--fill-margin", type=int, default=None,
                        help="video.FILL_MARGIN for this run: how far the coarse fill's "
                             "style region reaches beyond the unreliable pixels")
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

    from nst_keras import render
    from nst_keras.commands import video
    from nst_keras.engine import flow
    from nst_keras.media import images
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
    fills = args.fills.split(",")
    if args.fill_margin is not None:
        if args.fill_margin < 0:
            parser.error(f"--fill-margin must be 0 or more pixels. Received: {args.fill_margin}")
        video.FILL_MARGIN = args.fill_margin
    frame_evals = [int(n) for n in args.frame_evals.split(",")]
    print(f"{what}; {args.height} px high; first frame {args.first_evals} evaluations, later "
          f"frames {args.frame_evals} (independent frames {args.first_evals} each); temporal "
          f"weight(s) {', '.join(f'{w:.4g}' for w in weights)} (paper-scaled {paper:.4g}); "
          f"warp {', '.join(warps)}; DIS flow.", flush=True)
    from nst_keras.engine import runtime

    print(f"CPU: {runtime.describe_hardware('cpu')}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
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
            out_i, rec_i, sec_i, _ = run(frames, style, config, independent, model)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, frames=np.stack(out_i), records=json.dumps(rec_i),
                         seconds=sec_i)
        error_i = flow.warp_error(out_i, frames)
        style_i = float(np.mean([r["kind_losses"]["style"] for r in rec_i]))
        # The scenery that entered last (issue 26): distance from the photo and a masked
        # style loss on block1-block3, against the same pixels of the independent frames.
        columns, span = entering_strip(frames)
        style_rgb = (images.load_image(style, height=args.height) if isinstance(style, str)
                     else style)
        strip_layers = [f"block{b}_conv1" for b in (1, 2, 3)]
        strip_i = strip_measures(frames, out_i, columns, model, style_rgb, strip_layers)
        width_strip = len(range(frames[0].shape[1])[columns])
        print(f"{name}: the strip that entered in the last {span} frames: {width_strip} px "
              f"wide; independent: {strip_i[0]:.1f} levels from the photo, masked style loss "
              f"{strip_i[1]:.4g}", flush=True)
        baseline = {}
        settings_list = [(warp, weight, fill, evals) for evals in frame_evals for warp in warps
                         for weight in weights for fill in fills]
        for warp, weight, fill, evals in settings_list:
            consistent = video.VideoSettings(weight, args.first_evals, evals,
                                             warp=warp, fill=fill, fill_evals=args.fill_evals)
            out_c, rec_c, sec_c, cpu_c = run(frames, style, config, consistent, model)
            strip_c = strip_measures(frames, out_c, columns, model, style_rgb,
                                     strip_layers)
            error_c = flow.warp_error(out_c, frames)
            styles = [r["kind_losses"]["style"] for r in rec_c]
            style_c = float(np.mean(styles))
            flow_seconds = float(np.mean([r["flow_seconds"] for r in rec_c[1:]]))
            frame_seconds = float(np.mean([r["seconds"] for r in rec_c[1:]]))
            content_c = rec_c[-1]["kind_losses"]["content"]
            content_i = rec_i[-1]["kind_losses"]["content"]
            key = (warp, weight, evals)
            baseline.setdefault(key, (frame_seconds, cpu_c))
            rows.append({"clip": name, "frames": len(frames), "size": [args.height, width],
                         "fill": fill, "frame_evals": evals,
                         "fill_margin": video.FILL_MARGIN if fill == "coarse" else None,
                         "strip_width": width_strip, "strip_frames": span,
                         "strip_distance_consistent": strip_c[0],
                         "strip_distance_independent": strip_i[0],
                         "strip_distance_ratio": strip_c[0] / strip_i[0],
                         "strip_style_consistent": strip_c[1],
                         "strip_style_independent": strip_i[1],
                         "strip_style_ratio": strip_c[1] / strip_i[1],
                         "content_last_consistent": content_c,
                         "content_last_independent": content_i,
                         "content_last_ratio": content_c / content_i,
                         "seconds_vs_baseline": frame_seconds / baseline[key][0],
                         "cpu_seconds_per_frame": cpu_c,
                         "cpu_seconds_vs_baseline": cpu_c / baseline[key][1],
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
            print(f"{name} fill {fill}, {evals} evaluations per later frame: strip "
                  f"{r['strip_distance_ratio']:.2f}x as far from the photo as independent "
                  f"(target >= 0.7), masked style loss x{r['strip_style_ratio']:.2f} "
                  f"(target <= 1.25); last frame's content loss "
                  f"x{r['content_last_ratio']:.2f} (target <= 1.25); "
                  f"x{r['seconds_vs_baseline']:.2f} the seconds per frame of fill "
                  f"{fills[0]} (target <= 1.5; CPU seconds x{r['cpu_seconds_vs_baseline']:.2f}; "
                  f"load average {os.getloadavg()[0]:.1f})",
                  flush=True)
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
    print("\n| clip | frame evals | fill | fill margin | strip px | strip distance ratio "
          "| strip style ratio | last content ratio | warp error ratio | s/frame "
          "| x baseline s/frame | CPU s/frame | x baseline CPU s/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        margin = "–" if r["fill_margin"] is None else r["fill_margin"]
        print(f"| {r['clip']} | {r['frame_evals']} | {r['fill']} | {margin} | "
              f"{r['strip_width']} | "
              f"{r['strip_distance_ratio']:.2f} | {r['strip_style_ratio']:.2f} | "
              f"{r['content_last_ratio']:.2f} | {r['warp_ratio']:.3f} | "
              f"{r['seconds_per_frame']:.2f} | {r['seconds_vs_baseline']:.2f} | "
              f"{r['cpu_seconds_per_frame']:.2f} | {r['cpu_seconds_vs_baseline']:.2f} |")
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
