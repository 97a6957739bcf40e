"""Video style transfer (Ruder et al. 2016): the temporal term, one trace and one style
target for a whole video, the command's round trip, flicker, resuming, and bad input.

Offline: random weights, 48x64 frames of a synthetic pan, a few evaluations per frame.
"""

import json
import os
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from conftest import make_image, run_main  # noqa: E402
from synthetic_video import pan  # noqa: E402

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from nst_keras.engine import flow, objective  # noqa: E402
from nst_keras.media import videoio  # noqa: E402
from nst_keras.commands import video as video_lib  # noqa: E402
from nst_keras.config import StyleConfig  # noqa: E402

HEIGHT, WIDTH, FRAMES, FPS = 48, 64, 8, 12
SETTINGS = ["--weights", "none", "--height", str(HEIGHT), "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def clip():
    return pan(FRAMES, HEIGHT, WIDTH, dx=2, dy=1)


@pytest.fixture
def inputs(tmp_path, clip):
    """An 8-frame H.264 video at 12 fps and a style image."""
    from PIL import Image

    source = tmp_path / "in.mp4"
    videoio.write_video(source, clip, FPS, crf=0)
    style = tmp_path / "style.png"
    Image.fromarray(make_image(40, 40, seed=2)).save(style)
    return source, style


def config(**changes):
    return StyleConfig(weights=None, height=HEIGHT, seed=0, **changes)


def test_temporal_term_value_and_gradient_match_numpy_and_occluded_pixels_give_zero():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (1, 6, 7, 3)).astype(np.float32)
    target = rng.normal(0, 50, (1, 6, 7, 3)).astype(np.float32)
    weights = (rng.uniform(size=(6, 7)) > 0.4).astype(np.float32)
    term = objective.Term("temporal", "temporal", None, 3.0, mask=weights)

    def no_features(x, training=False):  # The temporal term reads the image only.
        return {}

    function = objective.traced_function(no_features, (term,), normalization="book",
                                         tv_power=1.25, tv_edges="all", jit_compile=False)
    args = ({"temporal": tf.constant(target)}, {"temporal": tf.constant(3.0)},
            {"temporal": tf.constant(weights[..., None])})
    loss, grad, values = function(tf.constant(x), *args)
    diff = x - target
    expected = np.sum(weights[None, ..., None] * diff ** 2) / (6 * 7 * 3)
    np.testing.assert_allclose(float(values["temporal"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss), 3.0 * expected, rtol=1e-5)
    expected_grad = 3.0 * 2 * weights[None, ..., None] * diff / (6 * 7 * 3)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-4, atol=1e-7)
    # An occluded pixel (c = 0) neither counts nor moves, however far it is from the target.
    occluded = weights == 0
    assert occluded.any() and np.all(grad.numpy()[0][occluded] == 0)
    moved = x.copy()
    moved[0][occluded] += 1000.0
    np.testing.assert_allclose(float(function(tf.constant(moved), *args)[2]["temporal"]),
                               expected, rtol=1e-5)
    # A new frame: another target and other weights of the same shape do not retrace.
    other = ({"temporal": tf.constant(target[:, ::-1])}, {"temporal": tf.constant(1.0)},
             {"temporal": tf.constant(1 - weights[..., None])})
    function(tf.constant(x), *other)
    assert function.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("fill", ["content", "coarse"])
def test_a_video_traces_once_and_computes_the_style_targets_once(monkeypatch, tmp_path, clip,
                                                                 fill):
    from nst_keras import render

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(clip[:4]):
        from PIL import Image

        Image.fromarray(frame).save(folder / f"f{i}.png")
    calls = []
    real = objective._style_targets
    monkeypatch.setattr(objective, "_style_targets",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = config(max_evals=3)
    model = render.load_model(cfg)
    # Other tests may have traced this model's functions at other sizes: count from here.
    before = {id(f): f.experimental_get_tracing_count()
              for f in objective._FUNCTIONS.get(model, {}).values()}
    settings = video_lib.VideoSettings(video_lib.paper_temporal_weight(cfg), 3, 2, fill=fill)
    frames = list(video_lib.run_frames(
        video_lib.plan_video(folder, make_image(40, 40, seed=2), config=cfg,
                             settings=settings), feature_model=model))
    # Once for the frames' size; the coarse fill's style terms are masked to its region
    # (another every frame), so their targets are computed for each of the 3 later frames.
    sizes = 2 if fill == "coarse" else 1
    assert len(frames) == 4 and len(calls) == (1 + 3 if fill == "coarse" else 1)
    assert all(f.record["temporal_loss"] is not None for f in frames[1:])
    assert frames[0].record["temporal_loss"] is None
    # Two structures (the first frame has no temporal term), each traced once for 4 frames.
    functions = list(objective._FUNCTIONS[model].values())
    # (The coarse fill has the first frame's structure at its own size.)
    assert functions and all(f.experimental_get_tracing_count() - before.get(id(f), 0)
                             <= sizes for f in functions)
    assert sum(f.experimental_get_tracing_count() - before.get(id(f), 0)
               for f in functions) <= 1 + sizes


@pytest.mark.parametrize("fill", ["content", "coarse"])
def test_entering_scenery_starts_from_a_coarse_stylisation_of_the_frame(monkeypatch, tmp_path,
                                                                         clip, fill):
    # Issue 26: where the warp is not trusted (the edge the pan reveals) a later frame
    # started from the photo, and 20 evaluations left it a photo. Now it starts from a short
    # stylisation of the frame at 3/4 of its height, its style within those pixels; the
    # rest from the warped result.
    from PIL import Image

    from nst_keras import render

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(clip[:3]):
        Image.fromarray(frame).save(folder / f"f{i}.png")
    starts, coarse = [], []
    real_render, real_coarse = render.render, render.coarse_stylisation

    def recording_render(job, *args, **kwargs):
        if job.temporal is not None:  # A later frame (the coarse run has no temporal term).
            starts.append((job.init, job.temporal, job.content, job.config.max_evals))
        return real_render(job, *args, **kwargs)

    def recording_coarse(job, content, evals, **kwargs):
        coarse.append((real_coarse(job, content, evals, **kwargs), evals, kwargs["region"]))
        return coarse[-1][0]

    monkeypatch.setattr(render, "render", recording_render)
    monkeypatch.setattr(render, "coarse_stylisation", recording_coarse)
    cfg = config(max_evals=4)
    settings = video_lib.VideoSettings(video_lib.paper_temporal_weight(cfg), 4, 4, fill=fill)
    list(video_lib.run_frames(video_lib.plan_video(folder, make_image(40, 40, seed=2),
                                                   config=cfg, settings=settings)))
    assert len(starts) == 2
    assert len(coarse) == (2 if fill == "coarse" else 0)
    for number, (start, temporal, content, own) in enumerate(starts):
        unreliable = temporal.weights == 0
        assert 0.02 < unreliable.mean() < 0.5  # The entering edges (2 px right, 1 px down).
        # Trusted pixels start from the warped previous result (the temporal target).
        np.testing.assert_array_equal(start[~unreliable], temporal.target[~unreliable])
        if fill == "content":
            np.testing.assert_array_equal(start[unreliable], content[unreliable])
            assert own == 4
        else:
            image, evals, region = coarse[number]
            # All of the frame's 4 evaluations (`fill_evals` not given: 20 at most the
            # frame's), half their cost taken out of its own (9/32 each): 4 - round(1.125)
            # = 3 left.
            assert image.shape == content.shape and evals == 4 and own == 3
            np.testing.assert_array_equal(start[unreliable], image[unreliable])
            # Not the photo where it is used.
            assert np.abs(image[unreliable].astype(float) - content[unreliable]).mean() > 1.0
            # The style's region: exactly the pixels the fill is used for (a margin's
            # pixels diluted their guided Gram matrix: the pan's strip 1.7x, without 1.05x).
            np.testing.assert_array_equal(region, video_lib.fill_region(temporal.weights))
            np.testing.assert_array_equal(region, unreliable)


def test_fill_region_is_the_unreliable_pixels_and_a_square_margin_around_them():
    weights = np.ones((10, 12), np.float32)
    weights[5, 5] = 0.0
    weights[0, 11] = 0.0
    expected = np.zeros((10, 12), np.float32)
    expected[3:8, 3:8] = 1.0  # Chebyshev distance <= 2 from (5, 5).
    expected[0:3, 9:12] = 1.0  # From (0, 11), cut at the frame's edges.
    np.testing.assert_array_equal(video_lib.fill_region(weights, margin=2), expected)
    np.testing.assert_array_equal(video_lib.fill_region(weights, margin=0), weights == 0)
    assert not video_lib.fill_region(np.ones((4, 4), np.float32)).any()
    with pytest.raises(ValueError, match="Received: margin=-1"):
        video_lib.fill_region(weights, margin=-1)


def test_the_coarse_fill_is_stylised_within_its_region_and_near_the_photo_outside(clip):
    # The fill's style terms are masked to the region: its pixels move away from the photo,
    # the rest only feels the content and total-variation terms (and so stays near it).
    from nst_keras import render
    from nst_keras.plan import plan

    cfg = config(max_evals=6)
    content = clip[0]
    job = plan(content, make_image(40, 40, seed=2), config=cfg)
    region = np.zeros(content.shape[:2], np.float32)
    region[:, -16:] = 1.0
    masked = render.coarse_stylisation(job, content, 6, region=region).astype(float)
    whole = render.coarse_stylisation(job, content, 6).astype(float)
    assert masked.shape == content.shape
    inside = np.abs(masked[:, -16:] - content[:, -16:]).mean()
    outside = np.abs(masked[:, :-24] - content[:, :-24]).mean()
    assert inside > 2 * outside, (inside, outside)
    # Without a region the whole frame is stylised.
    assert np.abs(whole[:, :-24] - content[:, :-24]).mean() > 2 * outside
    with pytest.raises(ValueError, match=r"Received: region.shape=\(10, 10\)"):
        render.coarse_stylisation(job, content, 1, region=np.ones((10, 10), np.float32))


#: Layers up to block3 (halo 12 px, grid 4): 48 x 64 frames in cores of 24 px make 2 x 3
#: tiles with interior edges.
SMALL_LAYERS = dict(content_layers=("block3_conv1",),
                    style_layers=("block1_conv1", "block2_conv1", "block3_conv1"))


def test_a_video_planned_tiled_renders_every_frame_tiled_with_its_temporal_term(
        monkeypatch, tmp_path, clip):
    from PIL import Image

    from nst_keras import render
    from nst_keras.engine import tiling

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(clip[:3]):
        Image.fromarray(frame).save(folder / f"f{i}.png")
    problems = []
    real = render.render

    def observed(job, *args, on_stage=None, **kwargs):  # Watch each stage's problem.
        def hook(start):
            problems.append(start.problem)
            if on_stage is not None:
                on_stage(start)

        return real(job, *args, on_stage=hook, **kwargs)

    monkeypatch.setattr(render, "render", observed)
    grams = []  # The style image's Gram sums, tile by tile: once for the whole video.
    real_moments = tiling.tiled_moments
    monkeypatch.setattr(tiling, "tiled_moments",
                        lambda *a, **k: grams.append(1) or real_moments(*a, **k))
    runs, seen = {}, {}
    for tile in ("off", "24"):
        cfg = config(max_evals=4, tile=tile, precision="float32", **SMALL_LAYERS)
        # The content fill: the coarse one adds a small render of its own per frame.
        settings = video_lib.VideoSettings(video_lib.paper_temporal_weight(cfg), 4, 4,
                                           fill="content")
        video = video_lib.plan_video(folder, make_image(40, 40, seed=2), config=cfg,
                                     settings=settings)
        assert (video.job.stages[-1].tiles is None) == (tile == "off")
        problems.clear()
        runs[tile] = list(video_lib.run_frames(video))
        seen[tile] = list(problems)
    assert len(seen["24"]) == 3 and all(p.tiles is None for p in seen["off"])
    assert len(grams) == 1
    for number, problem in enumerate(seen["24"], start=1):
        assert problem.tiles is not None and problem.tiles.count == 6
        assert isinstance(problem.objective, tiling.TiledObjective)
        names = [t.name for t in problem.objective.terms]
        assert ("temporal" in names) == (number > 1)
    # The same frames as untiled: the tiled objective is the same loss and gradient.
    for whole, tiled in zip(runs["off"], runs["24"]):
        assert tiled.record["loss"] == pytest.approx(whole.record["loss"], rel=1e-4)
        if whole.number > 1:
            assert tiled.record["temporal_loss"] > 0
            assert tiled.record["temporal_loss"] == pytest.approx(
                whole.record["temporal_loss"], rel=1e-4)  # Measured: 6e-7.


def test_paper_temporal_weight_scales_to_the_normalisation():
    # Book: r_l = N^4 / (36 * 16^k) = 466,034 for block1..4_conv1; 10 * (1/5) * r.
    assert video_lib.paper_temporal_weight(StyleConfig()) == pytest.approx(2 * 64 ** 4 / 36)
    assert video_lib.paper_temporal_weight(StyleConfig(style_weight=10)) == pytest.approx(
        20 * 64 ** 4 / 36)
    # jcjohnson's normalisation is theirs: 1e3 / 1e2 per layer, the style weight split 5 ways.
    assert video_lib.paper_temporal_weight(
        StyleConfig(normalization="jcjohnson", style_weight=100)) == pytest.approx(200)


def test_the_default_is_the_paper_weight_scaled_to_our_budget_and_warps_with_lanczos(inputs):
    cfg = StyleConfig(style_weight=10)
    assert video_lib.default_temporal_weight(cfg) == pytest.approx(
        video_lib.DEFAULT_TEMPORAL_FACTOR * 20 * 64 ** 4 / 36)
    assert video_lib.DEFAULT_TEMPORAL_FACTOR < 1  # Our frames get ~30 evaluations, not 1000.
    source, style = inputs
    plan = video_lib.plan_video(source, style, config=config(max_evals=8))
    assert plan.settings.warp == "lanczos" and plan.settings.frame_evals == 4
    assert plan.settings.temporal_weight == pytest.approx(
        video_lib.default_temporal_weight(config()))
    with pytest.raises(ValueError, match="Received: warp=nearest"):
        video_lib.plan_video(source, style, config=config(), settings=video_lib.VideoSettings(
            1.0, 2, 1, warp="nearest"))
    assert plan.settings.fill == "coarse"
    assert plan.settings.fill_evals is None and plan.settings.coarse_evals == 4
    # The fill's evaluations: 20, half the frame's when more, never more than the frame's.
    assert [video_lib.VideoSettings(1.0, 2, n).coarse_evals
            for n in (1, 4, 20, 30, 50, 100)] == [1, 4, 20, 20, 25, 50]
    assert video_lib.VideoSettings(1.0, 2, 8, fill_evals=3).coarse_evals == 3
    # ... half their cost (3/4 of the height: 9/16 each) taken out of the frame's own.
    assert video_lib.VideoSettings(1.0, 2, 20).own_evals(True) == 20 - 6
    assert video_lib.VideoSettings(1.0, 2, 50).own_evals(True) == 50 - 7
    assert video_lib.VideoSettings(1.0, 2, 20).own_evals(False) == 20
    assert video_lib.VideoSettings(1.0, 2, 1).own_evals(True) == 1  # At least one.
    with pytest.raises(ValueError, match="Received: fill=photo"):
        video_lib.plan_video(source, style, config=config(), settings=video_lib.VideoSettings(
            1.0, 2, 1, fill="photo"))
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=f"Received: fill_evals={bad!r}"):
            video_lib.plan_video(source, style, config=config(),
                                 settings=video_lib.VideoSettings(1.0, 2, 1, fill_evals=bad))


def test_round_trip_compare_and_less_flicker_than_independent_frames(inputs, tmp_path, clip):
    source, style = inputs
    out = tmp_path / "out.mp4"
    done = run_main("video", source, style, "-o", out, "--first-evals", "12",
                    "--frame-evals", "6", "--compare", *SETTINGS)
    assert done.returncode == 0, done.stderr
    info = videoio.probe(out)
    assert (info.frame_count, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    assert info.fps == pytest.approx(FPS)
    side = videoio.probe(tmp_path / "out-compare.mp4")
    assert (side.frame_count, side.width) == (FRAMES, 2 * WIDTH + 4)
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["video"]["flow"] == "dis" and len(record["frames"]) == FRAMES
    assert all(f["temporal_loss"] >= 0 and "temporal" in f["kind_losses"]
               for f in record["frames"][1:])
    assert all(f["seconds"] > 0 for f in record["frames"])
    assert record["job_key"] and (tmp_path / "out-loss.png").stat().st_size > 0
    frames_dir = str(out) + ".frames"
    consistent = [_png(p) for p in video_lib.finished_frames(frames_dir)]
    independent = [_png(p) for p in video_lib.finished_frames(
        os.path.join(frames_dir, video_lib.INDEPENDENT_DIR))]
    contents = list(videoio.read_frames(source))
    consistent_error = flow.warp_error(consistent, contents)
    independent_error = flow.warp_error(independent, contents)
    # Seeded (the random weights and the start), so this is repeatable, not a chance pass.
    assert consistent_error < 0.5 * independent_error


def test_the_output_rate_and_its_reason_are_in_the_closing_line_and_the_record(inputs, tmp_path,
                                                                             clip):
    from PIL import Image

    source, style = inputs
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, frame in enumerate(clip[:3], start=1):
        Image.fromarray(frame).save(folder / f"f{number}.png")
    fast = ["--first-evals", "2", "--frame-evals", "1", "--fill", "content",
            *SETTINGS[:-1]]  # Not quiet: the closing line is the point.

    def made(*args, out):
        done = run_main("video", *args, "-o", out, *fast)
        assert done.returncode == 0, done.stderr
        wrote = [line for line in done.stderr.splitlines() if line.startswith(f"Wrote {out}:")]
        record = json.loads((tmp_path / (out.stem + ".json")).read_text())
        return wrote, videoio.probe(out).fps, record

    out = tmp_path / "folder.mp4"
    wrote, fps, record = made(folder, style, out=out)
    assert wrote == [f"Wrote {out}: 3 frames at 25 fps (the default for a folder of frames; "
                     f"--fps sets it)."]
    assert fps == pytest.approx(25)
    assert (record["output_fps"], record["output_fps_source"]) == (25, "default")
    assert record["output_fps_reason"] == "the default for a folder of frames; --fps sets it"
    # The same frames encoded again at a given rate.
    wrote, fps, record = made(folder, style, "--encode-only", "--fps", "12.5", out=out)
    assert wrote == [f"Wrote {out}: 3 frames at 12.5 fps (--fps)."] and fps == pytest.approx(12.5)
    assert (record["output_fps"], record["output_fps_source"]) == (12.5, "--fps")
    glob = str(folder / "*.png")
    wrote, fps, _ = made(glob, style, "--every", "2", out=tmp_path / "glob.mp4")
    assert wrote == [f"Wrote {tmp_path / 'glob.mp4'}: 2 frames at 12.5 fps (the default 25 / "
                     f"--every 2 for a glob of frames; --fps sets it)."]
    out = tmp_path / "video.mp4"
    wrote, fps, record = made(source, style, "--end", "2", out=out)
    assert wrote == [f"Wrote {out}: 2 frames at 12 fps (the input video's)."]
    assert (record["output_fps"], record["output_fps_source"]) == (12, "input")
    wrote, fps, record = made(source, style, "--end", "2", "--fps", "30", out=out)
    assert wrote == [f"Wrote {out}: 2 frames at 30 fps (--fps)."] and fps == pytest.approx(30)


def test_output_rate_with_a_video_file_keeps_its_audio_only_at_its_own_rate():
    info = videoio.VideoInfo(source="in.mp4", kind="video", frame_count=9, fps=30000 / 1001,
                             width=4, height=4, has_audio=True)
    rate = video_lib.output_rate(info)
    assert (rate.describe(), rate.keeps_time) == ("29.97 fps (the input video's)", True)
    rate = video_lib.output_rate(info, every=3)
    assert rate.describe() == "9.99001 fps (the input video's 29.97 / --every 3)"
    assert not video_lib.output_rate(info, fps=12).keeps_time
    assert video_lib.output_rate(info, fps=29.97).keeps_time


def _png(path):
    from nst_keras.media.images import load_image

    return load_image(path)


def test_a_run_stopped_mid_video_resumes_with_the_unfinished_frames_only(inputs, tmp_path):
    source, style = inputs
    cfg = config(max_evals=4)
    settings = video_lib.VideoSettings(1e6, 4, 2, end=5)
    folder = str(tmp_path / "frames")

    def stop_at_frame_4(number, evals):  # As Ctrl-C would, after frame 3 was written.
        if number == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        for _ in video_lib.run_frames(
                video_lib.plan_video(source, style, config=cfg, settings=settings,
                                     frames_dir=folder), on_frame_start=stop_at_frame_4):
            pass
    assert len(video_lib.finished_frames(folder)) == 3
    times = [os.stat(p).st_mtime_ns for p in video_lib.finished_frames(folder)]
    computed = []
    frames = list(video_lib.stylize_video(source, style, config=cfg, settings=settings,
                                          frames_dir=folder,
                                          on_frame_start=lambda n, e: computed.append(n)))
    assert computed == [4, 5]
    assert [f.resumed for f in frames] == [True, True, True, False, False]
    assert [os.stat(p).st_mtime_ns for p in video_lib.finished_frames(folder)][:3] == times
    lines = open(os.path.join(folder, video_lib.RECORD_NAME)).read().splitlines()
    assert [json.loads(line)["number"] for line in lines[1:]] == [1, 2, 3, 4, 5]
    assert json.loads(lines[0])["job_key"] and json.loads(lines[0])["record_version"] == 2
    # Other settings do not resume this folder's frames: they are redone.
    other = video_lib.plan_video(source, style, config=cfg, frames_dir=folder,
                                 settings=video_lib.VideoSettings(1e3, 4, 2, end=5))
    assert other.finished == 0 and "redoing them" in other.note


@pytest.fixture
def no_frame_computed(monkeypatch):
    from nst_keras import render

    def never(*args, **kwargs):
        raise AssertionError("a frame was computed")

    monkeypatch.setattr(render, "render", never)


def _refused(*args):
    done = run_main("video", *args, *SETTINGS)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    return done.stderr


def test_bad_inputs_exit_2_before_any_frame(inputs, tmp_path, no_frame_computed, monkeypatch,
                                             clip):
    from PIL import Image

    source, style = inputs
    out = str(tmp_path / "out.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert "Cannot read the video" in _refused(text, style, "-o", out)
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    assert "no video frames" in _refused(empty, style, "-o", out)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(clip[0]).save(mixed / "a1.png")
    Image.fromarray(clip[1][:40]).save(mixed / "a2.png")
    assert "one size" in _refused(mixed, style, "-o", out)
    assert "Cannot write an H.264 video as a '.webm' file" in _refused(
        source, style, "-o", tmp_path / "out.webm")
    assert "give -o OUT.mp4, --frames-dir DIR" in _refused(source, style)
    assert "--fill-evals: expected an integer >= 1, got '0'" in _refused(
        source, style, "-o", out, "--fill-evals", "0")
    for bad in ("0", "-12", "fast", "inf"):
        message = _refused(source, style, "-o", out, "--fps", bad)
        assert "--fps: expected a" in message and f"number > 0, got '{bad}'" in message
    monkeypatch.setattr(videoio.shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    message = _refused(source, style, "-o", out)
    assert "need about" in message and "Received: --frames-dir" in message
    assert not os.path.exists(out + ".frames")


def test_without_opencv_or_pyav_the_command_names_the_extra(monkeypatch, inputs, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)
    source, style = inputs
    assert "pip install 'nst-keras[video]'" in _refused(source, style, "-o", tmp_path / "o.mp4")
