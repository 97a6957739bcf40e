"""`nst-keras video IN STYLE... -o OUT.mp4`: stylised video frames that do not flicker.

Ruder, Dosovitskiy and Brox (Artistic style transfer for videos, GCPR 2016): each frame t
after the first

1. starts from frame t-1's result warped onto frame t along the optical flow (the flow from
   frame t to frame t-1 of the *input* frames, `flow.optical_flow`); where the flow is not
   reliable (weight c = 0: disocclusions, motion boundaries, points leaving the frame) the
   start takes the content frame's pixel instead;
2. adds the `temporal` term to the objective, (1/D) * sum(c * (x - warped)**2) in the
   network's input space (`objective.Temporal`), which pulls the frame towards the warped
   previous result wherever the flow is reliable.

Everything else is a plain run: `plan.plan` checks the settings, the styles and the first
frame once; every frame is `render.render` of that job with the frame as content (and the
warped start and temporal term); the style Gram targets are computed once for the whole
video (`objective.StyleTargets`), and the traced function is traced once (targets,
weights and masks are its arguments).

Departures: the temporal weight is 1e-4 of the paper's (scaled to our normalisation), for
budgets of tens of evaluations per frame instead of their 1000 (`default_temporal_weight`);
the previous result is warped with Lanczos interpolation, not bilinear (`flow.warp`: the
blur of bilinear warps compounds frame after frame); OpenCV's DIS flow instead of
DeepFlow/EpicFlow (`flow.optical_flow`); binary
reliability weights (`flow.reliability`); the start in unreliable pixels is a short
stylisation of the frame at three quarters of its height, its style terms within those
pixels (`fill_region`, `render.coarse_stylisation`), or the content frame
(`--fill content`), where artistic-videos' `prevWarped` keeps whatever the bilinear warp
gives there (and the VGG mean pixel outside the frame): the warp of an occluded pixel
shows the wrong surface, and 1000 iterations per frame are not ours to spend; the
short-term term only (their long-term and multi-pass variants are left out).

`stylize_video(...)` is the API (a generator of `Frame`s); `main(argv)` the command.
The frames folder makes a run resumable (`delivery.FrameLog`): every finished frame is
written there atomically, then its line is appended to `frames.jsonl` (one JSON line per
frame after a header with the run's job key: O(1) bytes per frame, a torn last line
ignored). A rerun whose key is the same (the settings, and the bytes of the input video
and the styles, `keys.job_key`) continues after the last finished frame, from that frame's
result on disk; a rerun with other inputs or settings, a style replaced at the same path
included, redoes the frames. Folders of the older format (`video.json`) are read too.
A signal stops the frame in flight at its next evaluation; its best image is kept as
`frame_NNNNNN.partial.png` (redone by a rerun). The whole clip gets one loss plot
(`OUTPUT-loss.png`: each frame's final loss) and one record (`OUTPUT.json`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np

from nst_keras.commands import console
from nst_keras.config import PRESETS, StyleConfig
from nst_keras.commands.console import (
    EXIT_OK,
    HelpFormatter,
    Parser,
    UsageError,
    add_config_options,
    as_usage,
    check_folder,
    folder_is_writable,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    say,
)
from nst_keras.delivery import FrameLog

PROG = f"{console.PROG} video"
INSTALL_LINE = "pip install 'nst-keras[video]'"
#: A finished frame's file in the frames folder (1-based output position).
FRAME_NAME = "frame_{:06d}.png"
#: A frame that a stop cut short: its best image, redone by a rerun.
PARTIAL_NAME = "frame_{:06d}.partial.png"
#: The run's log in the frames folder: a header line, then one JSON line per frame.
RECORD_NAME = FrameLog.LOG_NAME
#: Where `--compare`'s independent frames go, inside the frames folder.
INDEPENDENT_DIR = "independent"
#: The flow methods (`flow.FLOW_METHODS`, repeated so that the parser needs no OpenCV).
FLOWS = ("dis", "farneback")
#: The warp interpolations (`flow.INTERPOLATIONS`' names, repeated likewise).
WARPS = ("lanczos", "cubic", "linear")
#: What a later frame starts from where the flow is not trusted (`VideoSettings.fill`).
FILLS = ("coarse", "content")
#: The coarse fill's evaluations by default (`VideoSettings.fill_evals`): measured (issue 26)
#: as what a stylisation from the photo needs for the style's strokes to appear.
MIN_FILL_EVALS = 20
#: How far (pixels, at the run's size) the coarse fill's style region reaches beyond the
#: unreliable pixels (`fill_region`). 0: only the pixels the fill is used for are
#: matched to the style. Measured (issue 26, benchmarks/video.py, 20 and 50 evaluations a
#: frame): with 8 the pan's entering strip stayed at 1.27-1.47x the independent frames'
#: masked style loss (1.74x at 20 against re-run independent frames), with 0 at
#: 1.05-1.09x (Tübingen 0.71-0.76x, was 0.80-0.92x). The margin's pixels share the guided
#: Gram matrix with the new ones but are thrown away after the fill, so the kept pixels'
#: own statistics lagged. (A strip of 2 px is less than one position of block3 at the
#: coarse size; `mask_at` weighs it by its share.)
FILL_MARGIN = 0
#: Ruder et al.'s weights (artistic-videos' defaults): temporal 1e3 against style 1e2, in
#: jcjohnson/neural-style's normalisation (mean squared errors; Gram / (N_l M_l)).
PAPER_TEMPORAL_WEIGHT, PAPER_STYLE_WEIGHT = 1e3, 1e2


def paper_temporal_weight(config: StyleConfig) -> float:
    """Ruder et al.'s temporal weight, scaled to the config's normalisation and style weight.

    Their temporal term is the same as ours, (1/D) sum c (x - w)^2 on caffe-space images,
    with weight 1e3 against a style weight of 1e2 *per style layer* under
    jcjohnson/neural-style's normalisation, in which layer l's loss is sum(dG^2) /
    (N_l^4 M_l^2). Under ours it is sum(dG^2) / (4 n^2 p^2) with (n, p) from
    `losses.style_normalizer`, and each layer has weight style_weight / L. So one layer's
    style loss is r_l = N_l^4 M_l^2 / (4 n^2 p^2) times theirs, and the same balance of
    temporal to style is 1e3 / 1e2 * (style_weight / L) * r_l. r_l is one number for
    block1..block4_conv1 under the book's normalisation (N_l doubles as M_l quarters:
    466,034), smaller for block5 (29,127); the median layer's ratio is used. With the book's
    settings (style weight 1, five layers) that is about 9.3e5.

    Args:
        config: The settings (normalisation, style weight, style layers, model).

    Returns:
        The weight of the `temporal` term.
    """
    from nst_keras.engine import features
    from nst_keras.engine.losses import style_normalizer

    config = config.resolved()
    height = width = 256  # Any size: r_l does not depend on it (every M_l scales alike).
    ratios = []
    layers = list(dict.fromkeys(features.resolve_layer_name(n, config.model)
                                for n in config.style_layers))
    for layer in layers:
        h, w, c = features.layer_shape(layer, height, width, config.model)
        n, p = style_normalizer((h, w, c), (height, width), config.normalization)
        ratios.append(c ** 4 * (h * w) ** 2 / (4.0 * n ** 2 * p ** 2))
    ratio = float(np.median(ratios))
    # In Gram's units: W2's and MRF's default weights are larger by their loss's scale.
    gram_weight = config.style_weight / config.style_weight_scale()
    return PAPER_TEMPORAL_WEIGHT / PAPER_STYLE_WEIGHT * gram_weight / len(layers) * ratio


#: The default temporal weight's factor of the paper-scaled one (`default_temporal_weight`).
#: Measured (benchmarks/video.py, docs/guides/video.md), not derived: see that function.
DEFAULT_TEMPORAL_FACTOR = 1e-4


def default_temporal_weight(config: StyleConfig) -> float:
    """The default weight of the `temporal` term: `paper_temporal_weight` x 1e-4.

    The paper's balance assumes its budget: 1000 iterations on every later frame, enough
    for the style terms to restore what the warp takes out of the previous result (the
    style loss is very sensitive to it: one Lanczos warp of a 60-evaluation Tübingen frame
    multiplies its style loss by ~11, one bilinear warp by ~300) while the temporal term
    holds everything else. With tens of evaluations (the defaults: the first frame
    `max_evals`, later frames half of it) the paper-scaled weight freezes each frame at
    its warped start and the style loss grows frame after frame (x6 to x15 of independent
    frames at 1e-2..1e-1 of it, 12 frames at 128x96). The warped start already carries
    most of the consistency (the warping error stays ~0.1x independent frames from 1e-1
    down to 1e-4); at 1e-4 of the paper-scaled weight both of issue 18's targets hold on
    the synthetic pan and on the Tübingen clip (docs/guides/video.md). A departure from the
    paper (docs/departures.md).

    Args:
        config: The settings (normalisation, style weight, style layers, model).

    Returns:
        The weight of the `temporal` term.
    """
    return DEFAULT_TEMPORAL_FACTOR * paper_temporal_weight(config)


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """What a video run adds to a plain run's `StyleConfig`.

    Attributes:
        temporal_weight: Weight of the `temporal` term (`default_temporal_weight`); 0 leaves
            the term out (each frame still starts from the warped previous result).
        first_evals: Evaluations of the first frame (and of every independent frame).
        frame_evals: Evaluations of each later frame (it starts close to its result).
        flow: `"dis"` or `"farneback"`.
        start, end, every: The frames used: `range(start, end, every)` of the input's.
        consistent: False stylises every frame independently from `config.init` (the
            flickering baseline `--compare` shows).
        warp: The interpolation that carries the previous result onto the frame (the start
            and the temporal target): `"lanczos"` (default), `"cubic"` or `"linear"`
            (Ruder et al.'s bilinear, which blurs the result a little more every frame; see
            `flow.warp`).
        fill: What a later frame starts from where the warp is not trusted: `"coarse"`
            (default), a short stylisation of the frame at three quarters of its height,
            its style terms within the unreliable pixels (plus `FILL_MARGIN` px around
            them, 0 by default; `render.coarse_stylisation`, `fill_region`); `"content"`,
            the frame itself (before issue 26).
        fill_evals: Evaluations of the coarse fill; None: `MIN_FILL_EVALS`, or half of
            `frame_evals` when that is more, and never more than `frame_evals`. Spent only
            on a frame with unreliable pixels, and half out of its budget: the frame's own
            optimisation then gets `frame_evals` less half the fill's evaluations counted at
            their size (`own_evals`), so a frame costs about 1.3x what it did without the
            fill.
    """

    temporal_weight: float
    first_evals: int
    frame_evals: int
    flow: str = "dis"
    start: int = 0
    end: Optional[int] = None
    every: int = 1
    consistent: bool = True
    warp: str = "lanczos"
    fill: str = "coarse"
    fill_evals: Optional[int] = None

    @property
    def coarse_evals(self) -> int:
        """The coarse fill's evaluations (see `fill_evals`)."""
        if self.fill_evals is not None:
            return self.fill_evals
        return min(self.frame_evals, max(MIN_FILL_EVALS, self.frame_evals // 2))

    def own_evals(self, filled: bool) -> int:
        """A later frame's own evaluations: `frame_evals`, less half the coarse fill's
        counted as full-size ones (an evaluation at 3/4 of the height as 9/16 of one) when
        the frame was `filled`; at least 1.

        Why: the fill needs about 20 evaluations to put the style's strokes into its
        region (measured, issue 26: 10 left the entering strip at 1.6x the independent
        frames' masked style loss, 20 at 0.85x), more than the time a frame of 20 could
        add on top. Taken wholly out of the frame's budget (a frame of 20 kept 9), the
        frame's own optimisation was too short: the last frame's content loss 1.27x the
        independent frames' and its style loss 1.93x (Tübingen, 20 a frame); half of it
        leaves 14, and a frame costs about 1.3x what it did without the fill.
        """
        from nst_keras.render import COARSE_SCALE

        if not filled:
            return self.frame_evals
        return max(1, self.frame_evals - round(self.coarse_evals * COARSE_SCALE ** 2 / 2))


@dataclasses.dataclass(frozen=True)
class Frame:
    """One stylised frame, as `stylize_video` yields it.

    Attributes:
        number: Its position in the output, from 1.
        image: The stylised frame, RGB uint8 at the run's size.
        content: The input frame at the run's size, RGB uint8.
        record: Its entry in the run's record: number, loss, kind_losses (weighted, with
            `temporal`), temporal_loss (unweighted), evaluations (the frame's own),
            fill_evaluations (the coarse fill's, 0 without one), seconds, flow_seconds,
            reliable (the share of pixels with weight 1), resumed.
        resumed: Read from the frames folder (finished by an earlier run), not computed.
    """

    number: int
    image: np.ndarray = dataclasses.field(repr=False)
    content: np.ndarray = dataclasses.field(repr=False)
    record: dict
    resumed: bool = False


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    """A checked video run: the probe, the first frame's job, the settings, the folder.

    Attributes:
        info: `videoio.VideoInfo` of the input.
        job: `plan.Job` of the first frame (the styles and every setting checked).
        settings: The `VideoSettings`.
        frame_count: Frames the run makes.
        frames_dir: Where finished frames go, or None (kept in memory only).
        record: The record so far: the header (with the job key) and the finished frames.
        finished: Frames already finished in the folder (1..finished).
        note: A line for the user (the folder's frames are redone: other inputs or
            settings), or None.
    """

    info: object
    job: object = dataclasses.field(repr=False)
    settings: VideoSettings
    frame_count: int
    frames_dir: Optional[str]
    record: dict = dataclasses.field(repr=False)
    finished: int = 0
    note: Optional[str] = None


def selected_count(total: int, start: int, end: Optional[int], every: int) -> int:
    """How many of `total` frames `range(start, end, every)` selects."""
    return len(range(start, total if end is None else min(end, total), every))


def check_dependencies() -> None:
    """OpenCV and PyAV are importable.

    Raises:
        ImportError: Naming the extra that installs them.
    """
    missing = []
    for module, package in (("cv2", "opencv-python-headless"), ("av", "av")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(f"video needs {' and '.join(missing)}: {INSTALL_LINE}")


def plan_video(source, style, *, config: Optional[StyleConfig] = None,
               settings: Optional[VideoSettings] = None, frames_dir: Optional[str] = None,
               fit_height: bool = False, info=None, digest=None) -> VideoPlan:
    """Checks everything a video run needs before any frame is computed.

    Args:
        source: A video file, a folder of frames or a glob of them (`videoio.probe`).
        style: A style image, or a list of them.
        config: The settings of a plain run (`max_evals` is replaced by the settings').
        settings: The `VideoSettings`; the defaults when None.
        frames_dir: Where finished frames go (resumable), or None.
        fit_height: Choose the largest height that fits in memory (`plan.plan`).
        info: The input's `videoio.VideoInfo` when already probed (`--compare` plans two
            runs of one input: it is probed once), or None.
        digest: Hashes an input for the job key (a shared `keys.Digests` streams a large
            video once for both runs of `--compare`), or None.

    Returns:
        A `VideoPlan`.

    Raises:
        ValueError: An unreadable or empty input, frames of different sizes, a setting or
            style the plan refuses, an unreadable frames log, too little disk space.
        ImportError: Without OpenCV or PyAV (`INSTALL_LINE`).
    """
    from nst_keras.media import videoio
    from nst_keras.plan import plan

    from nst_keras import keys

    check_dependencies()
    config = config or StyleConfig()
    info = info or videoio.probe(source)
    if settings is None:
        settings = VideoSettings(default_temporal_weight(config), config.max_evals,
                                 max(1, config.max_evals // 2))
    if settings.flow not in FLOWS:
        raise ValueError(f"`flow` must be one of {', '.join(FLOWS)}. "
                         f"Received: flow={settings.flow}")
    if settings.warp not in WARPS:
        raise ValueError(f"`warp` must be one of {', '.join(WARPS)}. "
                         f"Received: warp={settings.warp}")
    if settings.fill not in FILLS:
        raise ValueError(f"`fill` must be one of {', '.join(FILLS)}. "
                         f"Received: fill={settings.fill}")
    if settings.fill_evals is not None and (
            isinstance(settings.fill_evals, bool) or not isinstance(settings.fill_evals, int)
            or settings.fill_evals < 1):
        raise ValueError("`fill_evals` must be a positive whole number of evaluations, or "
                         f"None (the default). Received: fill_evals={settings.fill_evals!r}")
    count = selected_count(info.frame_count, settings.start, settings.end, settings.every)
    if count < 1:
        raise ValueError(f"the input has {info.frame_count} frames, none of them in "
                         f"range({settings.start}, {settings.end}, {settings.every}). "
                         f"Received: start={settings.start}")
    first = next(videoio.read_frames(source, start=0, end=1, info=info))
    job = plan(first, style, config=config.replace(max_evals=settings.first_evals),
               fit_height=fit_height, temporal=settings.consistent)
    height, width = job.size
    key = keys.job_key(job.config.replace(max_evals=settings.first_evals), info.source,
                       styles=keys_of_styles(style),
                       extra={"video": dataclasses.asdict(settings), "size": [height, width]},
                       digest=digest)
    record = new_record(info, job, settings, key)
    finished, note = 0, None
    if frames_dir is not None:
        record, finished, note = resume_point(frames_dir, record)
        videoio.check_disk_space(frames_dir, count - finished, height, width)
    return VideoPlan(info, job, settings, count, frames_dir, record, finished, note)


def keys_of_styles(style) -> list:
    """The style sources as the job key hashes them (one source or a list)."""
    from nst_keras.plan import as_list

    return as_list(style)


def new_record(info, job, settings: VideoSettings, key: str = "") -> dict:
    """The start of a run's JSON record (the frames log's header): what decides its frames
    (the job key: the settings and the input's and styles' bytes), and no frames yet."""
    from nst_keras.record import RECORD_VERSION, settings_dict

    height, width = job.size
    return {
        "record_version": RECORD_VERSION,
        "job_key": key,
        "kind": "video",
        "source": info.source,
        "styles": job.sources["styles"],
        "settings": settings_dict(job.config.replace(max_evals=settings.first_evals)),
        "video": dataclasses.asdict(settings),
        "size": [height, width],
        "input_fps": info.fps,
        "input_frames": info.frame_count,
        "frames": [],
    }


#: The record's keys that must match for a folder of the older format (`video.json`, which
#: has no job key) to be resumed.
RESUME_KEYS = ("source", "styles", "settings", "video", "size")


def resume_point(frames_dir: str, record: dict):
    """(record, finished, note): the folder's record and its finished frames, or a new start.

    A frame counts as finished when its image and its line are both there, frames 1..n in
    a row. A folder whose job key differs (other settings, or other bytes in the video or
    a style, even at the same path) is started anew: its frames are redone, and `note`
    says so.

    Raises:
        ValueError: If the folder's frames log cannot be read.
    """
    import json

    log = FrameLog(frames_dir, FRAME_NAME)
    try:
        header, frames = log.read()
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the frames folder's record ({error}); delete it or "
                         f"use another frames folder. Received: frames_dir={frames_dir}") \
            from None
    if header is None:
        return record, 0, None
    if header.get("job_key"):
        same = header["job_key"] == record["job_key"]
    else:  # The older format: its paths and settings, as they were compared then.
        same = all(header.get(k) == json.loads(json.dumps(record[k])) for k in RESUME_KEYS)
    if not same:
        return record, 0, (f"the frames in {frames_dir} were made from other inputs or "
                           "settings: redoing them")
    return dict(record, frames=frames), len(frames), None


def stylize_video(source, style, *, config: Optional[StyleConfig] = None,
                  settings: Optional[VideoSettings] = None,
                  frames_dir: Optional[str] = None, **kwargs) -> Iterator[Frame]:
    """Stylises a video frame by frame without flicker (Ruder et al. 2016); yields `Frame`s.

    Checks everything first (`plan_video`, which raises at this call, not at the first
    frame), then returns `run_frames`' generator.

    Args:
        source: A video file, a folder of frames or a glob of them.
        style: A style image (path, URL, array), or a list of them.
        config: The plain-run settings.
        settings: The `VideoSettings` (temporal weight, budgets, flow, frame range).
        frames_dir: Write each finished frame there and resume from it; None keeps nothing.
        **kwargs: Passed to `run_frames` (callback, on_frame_start, feature_model, cache).

    Returns:
        An iterator of `Frame`s, in order.
    """
    return run_frames(plan_video(source, style, config=config, settings=settings,
                                 frames_dir=frames_dir), **kwargs)


def run_frames(video: VideoPlan, *, callback: Optional[Callable] = None,
               on_frame_start: Optional[Callable[[int, int], None]] = None,
               feature_model=None, cache=None,
               critical: Optional[Callable] = None, stop=None,
               checkpoints: Optional[Callable] = None) -> Iterator[Frame]:
    """The frames of a planned video run, computed (or read back when finished) in order.

    Args:
        video: From `plan_video`.
        callback: Each frame's `render` progress callback.
        on_frame_start: Called with (number, evaluations) before a frame is computed.
        feature_model: The network, instead of the process's cached one.
        cache: An `objective.StyleTargets`; a new one when None (the styles' Gram targets
            are computed for the first computed frame only).
        critical: A context-manager factory a frame's files are written inside (the
            command's signal guard), or None.
        stop: A `control.StopToken`: the frame in flight stops at its next evaluation, its
            best image is kept as `PARTIAL_NAME` (not a finished frame), and the frames end.
        checkpoints: (number, frame's job) -> the frame's `delivery.CheckpointFile`, or
            None: the frame in flight resumes exactly from it in the next run; a finished
            frame's is removed.

    Yields:
        `Frame`s.
    """
    from nst_keras import delivery
    from nst_keras.engine import flow as flow_lib
    from nst_keras import render
    from nst_keras.media import images, videoio
    from nst_keras.engine.objective import StyleTargets, Temporal
    from nst_keras.plan import stage_budgets

    job, settings = video.job, video.settings
    height, width = job.size
    cache = cache if cache is not None else StyleTargets()
    if feature_model is None:
        feature_model = render.load_model(job.config, job.placement)
    record = video.record
    log = None if video.frames_dir is None else FrameLog(video.frames_dir, FRAME_NAME)
    header = {k: v for k, v in record.items() if k != "frames"}
    if log is not None and video.finished == 0:  # A new run: its header, no frame yet.
        for path in list(log.frames()):  # Another run's frames, redone from the first.
            os.unlink(path)
        log.start(header)
    elif log is not None and not os.path.isfile(log.path):  # An older folder's `video.json`.
        log.start(header, record["frames"])
    frames = videoio.read_frames(video.info.source, settings.start, settings.end,
                                 settings.every, info=video.info)
    previous_content = previous_result = None
    for number, frame in enumerate(frames, start=1):
        content = images.load_image(frame, size=(width, height))
        if number <= video.finished:
            image = images.load_image(os.path.join(video.frames_dir, FRAME_NAME.format(number)))
            yield Frame(number, image, content, dict(record["frames"][number - 1],
                                                     resumed=True), resumed=True)
            previous_content, previous_result = content, image
            continue
        began = time.perf_counter()
        temporal, flow_seconds, reliable, fill_evals = None, 0.0, None, 0
        start_image = job.init
        evals = settings.first_evals
        if settings.consistent and previous_result is not None:
            evals = settings.frame_evals
            flow_began = time.perf_counter()
            backward = flow_lib.optical_flow(content, previous_content, settings.flow)
            forward = flow_lib.optical_flow(previous_content, content, settings.flow)
            weights = flow_lib.reliability(forward, backward)
            # A sharper interpolation than the paper's bilinear (a departure): bilinear
            # low-passes every sub-pixel shift, the blur compounds frame after frame, and
            # the temporal term holds the frame to it. Lanczos and cubic overshoot: clip
            # to the pixel range the optimisation's box allows.
            warped = np.clip(flow_lib.warp(previous_result.astype(np.float32), backward,
                                           settings.warp), 0.0, 255.0)
            flow_seconds = time.perf_counter() - flow_began
            # Where the flow is not trusted the warped pixel shows another surface: start
            # from a short stylisation of the frame there, its style matched within those
            # pixels (over the whole frame a thin strip's strokes lag: issue 26), or the
            # frame itself (a departure from artistic-videos' prevWarped; see
            # `VideoSettings.fill`).
            fill = content.astype(np.float32)
            filled = settings.fill == "coarse" and weights.min() == 0
            evals = settings.own_evals(filled)
            if filled:
                fill_evals = settings.coarse_evals
                fill = render.coarse_stylisation(job, content, fill_evals,
                                                 region=fill_region(weights),
                                                 feature_model=feature_model,
                                                 target_cache=cache).astype(np.float32)
            start_image = np.where(weights[..., None] > 0, warped, fill)
            if settings.temporal_weight > 0:
                temporal = Temporal(warped, weights, settings.temporal_weight)
            reliable = float(weights.mean())
        if on_frame_start is not None:
            on_frame_start(number, evals)
        # The frame's budget, split over the stages as the plan splits a run's (the stages
        # were planned with the first frame's).
        budgets = stage_budgets(evals, len(job.stages))
        frame_job = dataclasses.replace(
            job, content=content, init=start_image, temporal=temporal,
            config=job.config.replace(max_evals=evals),
            stages=tuple(dataclasses.replace(stage, max_evals=budget)
                         for stage, budget in zip(job.stages, budgets)))
        keeper = checkpoints(number, frame_job) if checkpoints is not None else None
        result = render.render(frame_job, callback, feature_model=feature_model,
                               target_cache=cache, stop=stop, checkpoints=keeper)
        if result.stopped:
            if log is not None:
                delivery.write_image(os.path.join(video.frames_dir, PARTIAL_NAME.format(number)),
                                     result.image, critical)
            return
        entry = {
            "number": number,
            "loss": result.loss,
            "kind_losses": dict(result.kind_losses),
            "temporal_loss": (result.kind_losses.get("temporal", 0.0) / temporal.weight
                              if temporal is not None else None),
            "evaluations": result.evaluations,
            "fill_evaluations": fill_evals,
            "seconds": round(time.perf_counter() - began, 3),
            "optimisation_seconds": round(result.seconds, 3),
            "flow_seconds": round(flow_seconds, 4),
            "reliable": reliable,
        }
        record = dict(record, frames=record["frames"] + [entry])
        if log is not None:
            # The frame first: a frame in the log is a frame on disk.
            log.append(number, result.image, entry, critical)
            partial = os.path.join(video.frames_dir, PARTIAL_NAME.format(number))
            if os.path.exists(partial):
                os.unlink(partial)
        if keeper is not None:
            keeper.remove()
        previous_content, previous_result = content, result.image
        yield Frame(number, result.image, content, dict(entry, resumed=False))


def fill_region(weights: np.ndarray, margin: Optional[int] = None) -> np.ndarray:
    """Where the coarse fill's style applies: the unreliable pixels (weight 0) and every
    pixel within `margin` of one (a square neighbourhood, Chebyshev distance <= margin).

    Args:
        weights: The reliability weights c, (H, W) in [0, 1] (`flow.reliability`).
        margin: Pixels, >= 0; None: `FILL_MARGIN`.

    Returns:
        (H, W) float32: 1 in the region, 0 elsewhere.

    Raises:
        ValueError: If `margin` is negative. Received: margin.
    """
    margin = FILL_MARGIN if margin is None else margin
    if margin < 0:
        raise ValueError(f"`margin` must be 0 or more pixels. Received: margin={margin}")
    unreliable = (np.asarray(weights) == 0).astype(np.uint8)
    if margin == 0 or not unreliable.any():
        return unreliable.astype(np.float32)
    import cv2

    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.dilate(unreliable, kernel, borderType=cv2.BORDER_CONSTANT,
                      borderValue=0).astype(np.float32)


def finished_frames(frames_dir: str) -> List[str]:
    """The finished frames' files in a frames folder, 1..n in a row (those its log lists)."""
    log = FrameLog(frames_dir, FRAME_NAME)
    return [log.frame_path(entry["number"]) for entry in log.read()[1]]


def side_by_side(left, right, gap: int = 4) -> np.ndarray:
    """Two RGB frames of one size next to each other, a white gap between."""
    spacer = np.full((left.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, spacer, right], axis=1)


# ----------------------------------------------------------------------------- the command


def build_parser(defaults: StyleConfig, preset_name: str = "book"):
    """The parser of `nst-keras video`: its own options and every plain-run setting."""
    parser = Parser(
        prog=PROG,
        description=(
            "Stylise a video without flicker (Ruder, Dosovitskiy and Brox 2016): each frame "
            "starts from the previous result warped along the optical flow, and a temporal "
            "loss keeps it close to that wherever the flow is reliable. Resumable: finished "
            "frames are kept in the frames folder and a rerun continues from them."),
        epilog=("Exit codes: 0 done, 1 failed, 2 bad usage or input, 130/143 interrupted "
                "(finished frames kept; rerun to continue, or add --encode-only)."),
        formatter_class=HelpFormatter,
    )
    groups = {name: parser.add_argument_group(name)
              for name in ("video", "images", "method", "optimisation")}
    io = groups["video"]
    io.add_argument("input", help="a video file, a folder of frames, or a glob of them "
                                  "(quote it: 'frames/*.png')")
    io.add_argument("styles", nargs="*", metavar="STYLE", help="style image(s), blended")
    io.add_argument("--network", default=None, metavar="NET.keras",
                    help=f"a style network from '{PROG.split()[0]} train' instead of STYLE: each "
                         "frame through it in one pass (no flow, temporal loss or budgets; "
                         "frames are not kept, a stopped run writes nothing)")
    io.add_argument("-o", "--output", default=None,
                    help="the video to write: .mp4, .m4v, .mov or .mkv (H.264, the input's "
                         "frame rate and audio; see --fps)")
    io.add_argument("--fps", type=positive_float, default=None, metavar="FPS",
                    help="frame rate of the output video. From a video file, its frames "
                         "then play at FPS, faster or slower than the input, and its audio "
                         "is left out unless FPS is the input's own rate (default: the input "
                         "video's rate divided by --every; 25 for a folder or glob of "
                         "frames, which carry none)")
    io.add_argument("--frames-dir", default=None, metavar="DIR",
                    help="where finished frames (PNG) and the record go; a rerun resumes "
                         "from them (default: OUTPUT.frames)")
    io.add_argument("--temporal-weight", type=non_negative_float, default=None, metavar="W",
                    help="weight of the temporal loss; 0 leaves it out (default: 1e-4 x "
                         "Ruder et al.'s 1e3 against their style weight 1e2 scaled to the "
                         "normalisation and --style-weight, i.e. about 93 x style weight for "
                         "the book's: the paper's weight assumes 1000 iterations per frame)")
    io.add_argument("--first-evals", type=positive_int, default=None, metavar="N",
                    help="evaluations of the first frame (default: --max-evals)")
    io.add_argument("--frame-evals", type=positive_int, default=None, metavar="N",
                    help="evaluations of each later frame (default: half of --first-evals)")
    io.add_argument("--flow", choices=FLOWS, default="dis",
                    help="optical flow: OpenCV's DIS or Farneback")
    io.add_argument("--warp", choices=WARPS, default="lanczos",
                    help="interpolation that carries the previous result onto the frame: "
                         "lanczos and cubic keep it sharp; linear is the paper's bilinear, "
                         "which blurs it a little more every frame")
    io.add_argument("--fill", choices=FILLS, default="coarse",
                    help="what a frame starts from where the flow is not trusted (scenery "
                         "entering the frame): coarse, a short stylisation of the frame at "
                         "3/4 of its height, its style matched within those pixels "
                         "(--fill-evals evaluations); content, the frame itself (it then "
                         "stays nearly a photograph)")
    io.add_argument("--fill-evals", type=positive_int, default=None, metavar="N",
                    help="evaluations of the coarse fill, half their cost taken out of the "
                         "frame's --frame-evals (an evaluation at 3/4 of the height "
                         "counts 9/16) (default: 20, or half of --frame-evals when more, "
                         "at most --frame-evals)")
    io.add_argument("--start", type=non_negative_int, default=0, metavar="I",
                    help="first input frame used (from 0)")
    io.add_argument("--end", type=positive_int, default=None, metavar="I",
                    help="input frame to stop before (default: the last)")
    io.add_argument("--every", type=positive_int, default=1, metavar="N",
                    help="use every N-th input frame (the frame rate is divided by N)")
    io.add_argument("--compare", action="store_true",
                    help="also stylise every frame independently and write OUTPUT-compare "
                         "(independent | consistent, side by side)")
    io.add_argument("--encode-only", action="store_true",
                    help="compute nothing: encode the finished frames of the frames folder "
                         "(after an interruption)")
    groups["method"].add_argument("--preset", choices=sorted(PRESETS), default=preset_name,
                                  help="named settings that the options override")
    fields = [name for name in _config_fields() if name != "max_evals"]
    add_config_options(parser, defaults, groups=groups, fields=fields)
    groups["optimisation"].add_argument(
        "--max-evals", dest="max_evals", type=positive_int, default=defaults.max_evals,
        help="the first frame's evaluations when --first-evals is not given")
    out = parser.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    console.add_checkpoint_options(parser)
    return parser


def _config_fields():
    from nst_keras.commands.console import config_fields

    return config_fields()


def _video_settings(args, config: StyleConfig, consistent: bool = True) -> VideoSettings:
    first = args.first_evals or config.max_evals
    weight = (args.temporal_weight if args.temporal_weight is not None
              else default_temporal_weight(config))
    return VideoSettings(weight if consistent else 0.0, first,
                         args.frame_evals or max(1, first // 2), args.flow, args.start,
                         args.end, args.every, consistent, args.warp,
                         getattr(args, "fill", "coarse"), getattr(args, "fill_evals", None))


def _check_paths(args) -> None:
    """The output and the frames folder, before anything is read.

    Raises:
        UsageError: No output at all, an extension H.264 cannot go in, a folder that is
            missing or not writable.
    """
    from nst_keras.media import videoio

    if args.output is None and args.frames_dir is None:
        raise UsageError("give -o OUT.mp4, --frames-dir DIR, or both")
    if args.end is not None and args.end <= args.start:
        raise UsageError(f"--end must be above --start ({args.start}). Received: --end {args.end}")
    if args.output is not None:
        try:
            videoio.check_video_output(args.output)
        except ValueError as error:
            raise UsageError(str(error).replace("path=", "-o ")) from None
        if not folder_is_writable(os.path.dirname(os.path.abspath(args.output))):
            raise UsageError(f"the output folder is not writable. Received: -o {args.output}")
        if os.path.abspath(args.output) == os.path.abspath(args.input):
            raise UsageError(f"the output would overwrite the input. Received: -o {args.output}")
    if args.network is not None:
        return  # Nothing kept between frames: no frames folder.
    if args.frames_dir is None:
        args.frames_dir = args.output + ".frames"
    check_folder(args.frames_dir, "--frames-dir")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `nst-keras video`; returns the exit code (see the parser's epilog)."""
    return console.command(PROG, argv, _parse, _run, save_partial=_kept)


#: `video` options that mean nothing to a network's frames (one pass each, nothing kept),
#: by their parsed names: given (in full or abbreviated), their value differs from the
#: default.
NETWORK_REFUSES = ("frames_dir", "temporal_weight", "first_evals", "frame_evals", "flow",
                   "warp", "fill", "fill_evals", "compare", "encode_only", "max_evals",
                   "iterations", "checkpoint_every", "restart", "optimizer", "style_weight",
                   "content_weight", "tile", "scales", "init", "style_loss")


def _parse(argv):
    args = console.parse_with_preset(build_parser, argv)
    args.config = console.config_from_args(args)
    try:
        check_dependencies()
    except ImportError as error:
        raise UsageError(str(error)) from None
    if args.network is not None:
        if args.styles:
            raise UsageError("a network paints its own style: give --network or STYLE, not "
                             f"both. Received: --network {args.network} and "
                             f"{' '.join(args.styles)}")
        given = console.options_given(build_parser, args, NETWORK_REFUSES, [args.input])
        if given:
            option = given[0]
            raise UsageError(f"{option} does not apply to a network's frames (one pass "
                             f"each: no flow, temporal loss, optimisation, budget or kept "
                             f"frames). Received: {option} with --network {args.network}")
        if args.output is None:
            raise UsageError("a network's video needs -o OUT.mp4 (its frames are not kept)")
    elif not args.styles:
        raise UsageError("give STYLE (one or more style images) or --network NET.keras")
    _check_paths(args)
    return args


def _kept(args, image=None) -> str:
    """What a stopped or failed run kept, and how to go on."""
    frames = (len(finished_frames(args.frames_dir))
              if args.frames_dir and os.path.isdir(args.frames_dir) else 0)
    if not frames:
        return "no frame was finished, nothing kept"
    how = (f"; rerun the same command to continue, or add --encode-only to write "
           f"{args.output} from them" if args.output else "; rerun to continue")
    return f"{frames} finished frame(s) kept in {args.frames_dir}{how}"


def _plans(args, config: StyleConfig):
    """The consistent run's plan and, with --compare, the independent run's: the input
    probed once and hashed once for both."""
    from nst_keras import keys
    from nst_keras.media import videoio

    runs = [(True, args.frames_dir)]
    if args.compare:
        runs.insert(0, (False, os.path.join(args.frames_dir, INDEPENDENT_DIR)))
    plans, info, digest = [], None, keys.Digests()
    for consistent, folder in runs:
        try:
            plans.append(plan_video(args.input, args.styles, config=config,
                                    settings=_video_settings(args, config, consistent),
                                    frames_dir=folder, fit_height=args.height == "auto",
                                    info=info, digest=digest))
        except (ValueError, ImportError) as error:
            raise as_usage(error) from None
        info = plans[-1].info
    if args.compare:  # Both runs' frames must fit at once.
        height, width = plans[0].job.size
        try:
            videoio.check_disk_space(args.frames_dir, sum(p.frame_count - p.finished
                                                          for p in plans), height, width)
        except ValueError as error:
            raise as_usage(error) from None
    return plans


def _run(args, guard) -> int:
    from nst_keras.engine.objective import StyleTargets

    if args.network is not None:
        return _run_network(args, guard)
    if args.encode_only:
        return _encode(args, None, quiet=args.quiet)
    plans = _plans(args, args.config)
    for note in plans[-1].job.notes:
        say(args.quiet, f"{PROG}: {as_usage(note)}")
    job = plans[-1].job
    height, width = job.size
    model = console.load_model(job.config, job.placement)
    cache = StyleTargets()
    for video in plans:
        label = "consistent" if video.settings.consistent else "independent"
        if video.note:
            say(args.quiet, f"{PROG}: {video.note}")
        say(args.quiet, f"{label}: {video.frame_count} frames at {width}x{height}, "
                        f"{video.finished} already finished in {video.frames_dir}; flow "
                        f"{video.settings.flow}, temporal weight "
                        f"{video.settings.temporal_weight:.4g}.")
        with guard.stoppable() as token:
            _run_one(args, video, model, cache, guard, label, token)
        if token.requested:
            partial = [p for p in os.listdir(video.frames_dir) if p.endswith(".partial.png")] \
                if os.path.isdir(video.frames_dir) else []
            return guard.stopped(PROG, _kept(args) + (
                f" (the frame in flight as {partial[0]})" if partial else ""))
    return _encode(args, plans, quiet=args.quiet)


def _run_one(args, video: VideoPlan, model, cache, guard, label, stop) -> None:
    """One pass over the frames: the frames' display, and each frame's inside it on a
    terminal; the frames' rate and ETA computed here (`control.pace`), shown by the bars."""
    from nst_keras import keys
    from nst_keras.commands.bars import Bar, ProgressBar
    from nst_keras.engine.control import pace

    outer = Bar(args.quiet, video.frame_count, "frame", f"{label} frames", interval=0.0)
    inner = ProgressBar(args.quiet, video.settings.first_evals, nested=True)
    began, computed = time.perf_counter(), 0

    def on_frame_start(number, evals):
        inner.total, inner.label = evals, f"frame {number}"
        inner.last_line = None  # Off a terminal, a frame's first line at once.
        if inner.tqdm is not None:
            inner.tqdm.reset(total=evals)

    def checkpoints(number, frame_job):
        if video.frames_dir is None:
            return None
        key = keys.bytes_digest(f"{video.record['job_key']}:{number}".encode())
        return console.checkpoint_file(args, frame_job, video.frames_dir,
                                       FRAME_NAME.format(number)[:-len(".png")], prog=PROG,
                                       key=key)

    try:
        for frame in run_frames(video, callback=inner, on_frame_start=on_frame_start,
                                feature_model=model, cache=cache, critical=guard.critical,
                                stop=stop, checkpoints=checkpoints):
            computed += not frame.resumed
            speed = pace(computed, video.frame_count - video.finished,
                         time.perf_counter() - began)
            outer.show(frame.number, fields={"loss": f"{frame.record['loss']:.4g}"},
                       rate=speed.rate, eta=speed.eta)
    finally:
        inner.close()
        outer.close()


class _Stopped(Exception):
    """A stop request while a network's frames are encoded: the video is not written."""


def _run_network(args, guard) -> int:
    """`video --network`: each frame planned and rendered as a network job
    (`plan.plan_network`, `render.render_network`), straight into the encoder.

    The first frame is planned in full (the network file, the size, the memory); the others
    take its size. The encoder writes under a temporary name: a stop or a failure leaves no
    output, and nothing to resume (a frame takes a fraction of a second).
    """
    from nst_keras import delivery, plan, render
    from nst_keras.commands.bars import Bar
    from nst_keras.engine.control import pace
    from nst_keras.media import images, videoio

    try:
        info = videoio.probe(args.input)
    except (ValueError, OSError) as error:
        raise as_usage(error) from None
    total = selected_count(info.frame_count, args.start, args.end, args.every)
    frames = videoio.read_frames(args.input, args.start, args.end, args.every, info=info)
    first = next(iter(frames), None)
    if first is None:
        raise UsageError(f"no frame in the selected range. Received: {args.input}")
    job = console.planned(plan.plan_network, first, args.network, config=args.config,
                          fit_height=args.height == "auto")
    from nst_keras.engine import runtime

    console.planned(runtime.NETWORKS.get, args.network)  # Keras can rebuild it: one line.
    for note in job.notes:
        say(args.quiet, f"{PROG}: {as_usage(note)}")
    height, width = job.size
    rate = output_rate(info, args.every, args.fps)
    audio = (args.input if info.kind == "video" and args.start == 0 and args.every == 1
             and rate.keeps_time else None)
    style = job.record.get("style", {}).get("name", "its style")
    say(args.quiet, f"{total} frames at {width}x{height} through {args.network} "
                    f"({style}), {job.placement.precision}.")
    entries, began = [], time.perf_counter()

    def stylised(bar, token):
        import itertools

        for number, frame in enumerate(itertools.chain([first], frames), start=1):
            if token.requested:
                raise _Stopped()
            content = images.load_image(frame, size=(width, height))
            result = render.render_network(dataclasses.replace(job, content=content))
            entries.append({"number": number, "seconds": round(result.seconds, 4)})
            speed = pace(number, total, time.perf_counter() - began)
            bar.show(number, rate=speed.rate, eta=speed.eta)
            yield result.image

    with Bar(args.quiet, total, "frame", "frames", interval=5.0) as bar, \
            guard.stoppable() as token:
        try:
            count = videoio.write_video(args.output, stylised(bar, token), rate.fps,
                                        audio_from=audio)
        except _Stopped:
            return guard.stopped(PROG, f"{args.output} was not written ({len(entries)} of "
                                       f"{total} frames done; a rerun does them again)")
    seconds = time.perf_counter() - began
    stem = os.path.splitext(args.output)[0]
    record = {"network": args.network, "network_record": {
        k: v for k, v in job.record.items() if k != "style"}, "style": style,
        "job_key": job.key, "size": [height, width], "frames": entries,
        "seconds": round(seconds, 3), "frames_per_second": round(count / seconds, 3),
        "precision": job.placement.precision, "hardware": job.placement.hardware,
        "output": args.output, "output_fps": rate.fps, "output_fps_reason": rate.reason,
        "argv": list(sys.argv[1:])}
    delivery.write_record(stem + ".json", record)
    say(args.quiet, f"Wrote {args.output}: {count} frames at {rate.describe()} in "
                    f"{seconds:.1f} s ({count / seconds:.1f} frames/s end to end); the record "
                    f"{stem}.json.")
    return EXIT_OK


@dataclasses.dataclass(frozen=True)
class OutputRate:
    """The output video's frame rate and where it came from.

    Attributes:
        fps: Frames per second.
        source: "--fps" (given), "input" (the input video's, divided by --every) or
            "default" (`videoio.DEFAULT_FPS`: a folder of frames, or a video naming no rate).
        reason: Why, in words: "the input video's", "--fps", ...
        keeps_time: Whether the frames play at the input video's own rate (so that its
            audio, from the first frame and with every frame, lines up).
    """

    fps: float
    source: str
    reason: str
    keeps_time: bool

    def describe(self) -> str:
        """The rate and its reason: "29.97 fps (the input video's)", "12 fps (--fps)"."""
        return f"{self.fps:g} fps ({self.reason})"


def output_rate(info, every: int = 1, fps: Optional[float] = None) -> OutputRate:
    """The output video's frame rate: `fps` when given, else the input video's divided by
    `every`, else `videoio.DEFAULT_FPS` divided by `every`.

    Args:
        info: The input's `videoio.VideoInfo`.
        every: The --every step (every N-th input frame is used).
        fps: The --fps option, or None.

    Returns:
        An `OutputRate`.
    """
    from nst_keras.media import videoio

    source_fps = info.fps if info.kind == "video" else None
    if fps is not None:
        same = source_fps is not None and abs(fps - source_fps) <= 1e-3 * fps
        return OutputRate(fps, "--fps", "--fps", same)
    step = f" / --every {every}" if every != 1 else ""
    if source_fps:
        reason = f"the input video's {source_fps:g}{step}" if step else "the input video's"
        return OutputRate(source_fps / every, "input", reason, True)
    if info.kind == "images":
        what = "a folder of frames" if os.path.isdir(info.source) else "a glob of frames"
    else:
        what = "a video that names no frame rate"
    default = f" {videoio.DEFAULT_FPS:g}{step}" if step else ""
    return OutputRate(videoio.DEFAULT_FPS / every, "default",
                      f"the default{default} for {what}; --fps sets it", info.kind == "video")


def _encode(args, plans, quiet: bool) -> int:
    """Encodes the frames folder into the output video (and the side-by-side one), and
    writes the clip's record and its one loss plot next to it."""
    from nst_keras import delivery, record as record_lib
    from nst_keras.media import images, videoio

    log = FrameLog(args.frames_dir, FRAME_NAME)
    header, frames = log.read() if os.path.isdir(args.frames_dir) else (None, [])
    paths = [log.frame_path(entry["number"]) for entry in frames]
    if not paths:
        raise UsageError(f"the frames folder holds no finished frames. "
                         f"Received: --frames-dir {args.frames_dir}")
    info = plans[-1].info if plans else videoio.probe(args.input)
    rate = output_rate(info, args.every, args.fps)
    fps = rate.fps
    # The audio lines up only when the video starts at the input's first frame, every frame,
    # at the input's own rate.
    audio = (args.input if info.kind == "video" and args.start == 0 and args.every == 1
             and rate.keeps_time else None)
    if args.output is None:
        say(quiet, f"{len(paths)} frames in {args.frames_dir}.")
        return EXIT_OK
    count = videoio.write_video(args.output, (images.load_image(p) for p in paths), fps,
                                audio_from=audio)
    say(quiet, f"Wrote {args.output}: {count} frames at {rate.describe()}"
               + (" with the input's audio" if audio and info.has_audio else "") + ".")
    stem = os.path.splitext(args.output)[0]
    record = dict(header, frames=frames, output=args.output, argv=list(sys.argv[1:]),
                  output_fps=fps, output_fps_source=rate.source, output_fps_reason=rate.reason)
    plot = stem + "-loss.png"
    delivery.write_bytes(plot, record_lib.figure_png(record_lib.clip_figure(frames)))
    delivery.write_record(stem + ".json", record)
    say(quiet, f"Wrote the record {stem}.json and the clip's loss plot {plot}.")
    independent = os.path.join(args.frames_dir, INDEPENDENT_DIR)
    if args.compare and os.path.isdir(independent):
        others = finished_frames(independent)
        pairs = min(len(others), len(paths))
        compare = stem + "-compare" + os.path.splitext(args.output)[1]
        videoio.write_video(compare, (side_by_side(images.load_image(a), images.load_image(b))
                                      for a, b in zip(others[:pairs], paths[:pairs])), fps)
        say(quiet, f"Wrote {compare}: independent | consistent, {pairs} frames.")
    return EXIT_OK
