"""Render a planned job: stages, the objective, the solver, colour; one path for every front-end.

Data flow of `render(job)`: the colour mode's inputs (`color`) -> the cached feature model
(`runtime.MODELS`, for the job's placement) -> per stage: the content and style images at
the stage's size -> the objective, targets once (`objective`) -> the starting image (the
init, or the previous stage's float image upsampled) -> L-BFGS-B inside the pixel box, or
Adam/SGD projected into it (`solvers`, one `Monitor` per stage, its counters starting where
the last stage's ended) -> the best image seen -> the colour mode's finish -> `Result`.

The CLI, `figure`, `batch`, the app and `video` all call `render`; they differ only in
where the inputs come from (`plan.plan`) and where the outputs go (the callback and what
they do with the `Result`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from nst_keras import checkpoint as checkpoint_lib
from nst_keras.media import images as images_lib
from nst_keras.engine import objective as objective_lib
from nst_keras.engine import runtime, solvers, tiling
from nst_keras.config import StyleConfig, tile_size
from nst_keras.engine.control import StopToken
from nst_keras.errors import Interrupted, StyleTransferError
from nst_keras.engine.objective import Objective
from nst_keras.plan import Job, as_list, blend_weights
from nst_keras.engine.solvers import Offset, Progress


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of a run.

    Attributes:
        image: The best image seen (lowest total loss), RGB uint8 (H, W, 3). With bounds
            (the default) its loss is `loss`, up to rounding to uint8.
        loss, content_loss, style_loss, tv_loss, layer_losses: Those of `image`, as in
            `Progress`.
        iterations: Iterations done.
        evaluations: Loss-and-gradient evaluations done.
        seconds: Wall time of the optimisation (targets and tracing excluded).
        setup_seconds: Wall time of the model, the targets and the trace.
        losses: The total loss after each evaluation, in order.
        times: Seconds since the optimisation started at each evaluation, in order.
        history: One record per iteration (iteration, evaluations, seconds, loss, weighted
            terms; `stage` with several stages).
        stop_reason: What ended the optimisation.
        config: The settings used.
        device: `"cpu"` or `"gpu"`: where it ran.
        precision: `"float32"` or `"bfloat16"`: what `config.precision` resolved to.
        hardware: One line naming the CPU (and its relevant flags) or the GPU.
        stages: One summary per coarse-to-fine stage (stage, height, width, evaluations,
            iterations, seconds, loss); one entry for a single size. With several stages,
            the losses, times and history run on across them (their sizes differ), and
            evaluations, iterations and seconds are totals.
        kind_losses: The weighted terms of `image` summed by kind.
        stopped: Why a stop request ended the run early (`"interrupted"`, `"terminated"`,
            `"stopped"`: the stop token's reason), or None when it ran its budget. A stopped
            run's `image` is its best image at the final size, delivered like any other.
        resumed_from: The evaluations a checkpoint had done when this run went on from it
            (0: started from zero). `evaluations`, `losses` and `history` count them too.
        pixels: The same image at full precision: RGB float32 (H, W, 3) in 0-255, not
            rounded (colours finished in float too). What a 16-bit output is written
            from (`images.save_float_image`); `image` is it rounded to uint8.
    """

    image: np.ndarray = dataclasses.field(repr=False)
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    layer_losses: Dict[str, float]
    iterations: int
    evaluations: int
    seconds: float
    setup_seconds: float
    losses: Tuple[float, ...] = dataclasses.field(repr=False)
    times: Tuple[float, ...] = dataclasses.field(repr=False)
    history: Tuple[dict, ...] = dataclasses.field(repr=False)
    stop_reason: str
    config: StyleConfig = dataclasses.field(repr=False)
    device: str
    precision: str
    hardware: str
    stages: Tuple[dict, ...] = ()
    kind_losses: Dict[str, float] = dataclasses.field(default_factory=dict)
    stopped: Optional[str] = None
    resumed_from: int = 0
    pixels: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Everything but the optimisation of one size, built once per stage.

    Attributes:
        objective: The `Objective` (call it on a preprocessed image).
        x0: The preprocessed starting image, (1, H, W, 3) float32.
        bounds: (lower, upper) pixel box in preprocessed space, or None (no bounds).
        config: The settings.
        device: `"cpu"` or `"gpu"`.
        precision: `"float32"` or `"bfloat16"`.
        hardware: See `runtime.describe_hardware`.
        setup_seconds: Wall time of the model, the targets and the trace.
        tiles: The `tiling.Tiles` the objective is evaluated in, or None (untiled).
    """

    objective: Objective
    x0: np.ndarray = dataclasses.field(repr=False)
    bounds: Optional[Tuple[np.ndarray, np.ndarray]] = dataclasses.field(repr=False)
    config: StyleConfig
    device: str
    precision: str
    hardware: str
    setup_seconds: float
    tiles: Optional[object] = None


@dataclasses.dataclass(frozen=True)
class StageStart:
    """What the `on_stage` hook receives before a stage's optimisation.

    Attributes:
        number: The stage, from 1, of `stages`.
        stages: How many stages.
        problem: The stage's `Problem` (its objective, start, settings, placement).
    """

    number: int
    stages: int
    problem: Problem


def render(job: Job, callback: Optional[Callable[[Progress], None]] = None, *,
           on_stage: Optional[Callable[[StageStart], None]] = None,
           feature_model=None,
           target_cache: Optional[objective_lib.StyleTargets] = None,
           stop: Optional[StopToken] = None, checkpoints=None) -> Result:
    """Runs a planned job: one size, or coarse to fine (Gatys et al. 2017).

    Every stage resizes the content and style images (Lanczos) by the stage's height over
    the final height, recomputes the targets at that size, and starts from the previous
    stage's best image, upsampled as a float image (no rounding between stages); the first
    starts from the init. The colour mode (`config.preserve_color`) prepares the images
    first and finishes the result last (see `color_inputs`).

    Args:
        job: From `plan.plan` (its images loaded).
        callback: Called with each `Progress` (iterations, evaluations and seconds counted
            from the first stage).
        on_stage: Called with a `StageStart` before each stage's optimisation.
        feature_model: A model whose outputs include the config's layers, instead of the
            process's cached one.
        target_cache: Reuse and keep the style targets there across calls with the same
            styles (a video's frames; see `objective.StyleTargets`).
        stop: A `control.StopToken`. Once it is set, the run ends at the next evaluation
            boundary (between two tiles of a tiled evaluation, before a stage) and the
            result is returned with `Result.stopped`: nothing is raised.
        checkpoints: Whoever keeps the run's checkpoints (`delivery.CheckpointFile`), or
            None: its `resume` (a `checkpoint.Checkpoint`, or None) is where the run goes
            on from, exactly (the finished stages are not run again, the stage in flight
            continues with its optimiser's whole state), and its `at_boundary(make,
            stopping)` is called at every evaluation boundary with a function that makes
            the `Checkpoint` there (`stopping`: the stop token is set, so this is the last
            boundary: write it now).

    With `job.temporal` (an `objective.Temporal`), each stage's objective has the extra
    `temporal` term, its target and weights resized to the stage.

    Returns:
        A `Result` at the final size (see its `stages`).

    Raises:
        NonFiniteLossError, DivergedError, OutOfMemoryError: With the best image so far at
            the final size (a failed later stage's, or the previous stage's, upsampled,
            and its colours finished as the mode says), or None.
        Interrupted: A stop before any image was evaluated (nothing to return), or, with
            no `stop` token, a KeyboardInterrupt (the Python API), with the best image.
    """
    config, where = job.config, job.placement
    if job.content is None:
        raise ValueError("the job was planned without its images. Received: job.content=None")
    content_rgb, style_rgbs = color_inputs(job.content, list(job.styles), config.preserve_color)
    if feature_model is None:
        feature_model = load_model(config, where)
    final_hw = job.content.shape[:2]

    def finished_float(image):
        """An image of any stage at full size, colours finished: RGB float32 in 0-255."""
        image = np.asarray(image, np.float32)
        if image.shape[:2] != final_hw:
            image = images_lib.resize_float(image, (final_hw[1], final_hw[0]))
        image = np.clip(image, 0.0, 255.0)
        return finish_color(image, job.content, config.preserve_color, as_float=True)

    def finished(image):
        """An image of any stage as the run would save it: full size, colours finished."""
        return None if image is None else images_lib.to_uint8(finished_float(image))

    total = sum(stage.max_evals for stage in job.stages)
    results, start, offset = [], None, Offset(stages=len(job.stages), total_evals=total)
    resume = getattr(checkpoints, "resume", None)
    finished_states = []  # The finished stages' monitor states, for a checkpoint.
    for stage in job.stages:
        if stop is not None and stop.requested:
            break
        if resume is not None and stage.number < resume.stage:
            # Finished before the checkpoint was taken: its counters and history from it.
            state = resume.earlier[stage.number - 1]
            result = _saved_stage(state, stage, config, where)
            results.append(result)
            finished_states.append(state)
            offset = Offset(iterations=offset.iterations + result.iterations,
                            evaluations=offset.evaluations + result.evaluations,
                            seconds=offset.seconds + result.seconds,
                            stage=stage.number + 1, stages=len(job.stages), total_evals=total)
            continue
        stage_content, stage_styles = stage_images(content_rgb, style_rgbs, config, stage.height)
        stage_masks = job.masks if job.masks is None or len(job.stages) == 1 else [
            images_lib.load_mask(m, (stage_content.shape[1], stage_content.shape[0]))
            for m in job.masks]
        stage_config = config if len(job.stages) == 1 else config.replace(
            height=stage.height, max_evals=stage.max_evals, start_height=None, scales=1)
        if start is None:
            start = initial_image(stage_content, stage_styles[0],
                                  config.init if job.init is None else job.init, config.seed)
        try:
            problem = build_problem(stage_content, stage_styles, stage_config,
                                    feature_model=feature_model, start=start,
                                    masks=stage_masks, blend=job.blend, placement=where,
                                    temporal=job.temporal, target_cache=target_cache,
                                    tiles=stage.tiles)
            if on_stage is not None:
                on_stage(StageStart(stage.number, len(job.stages), problem))
            here = resume if resume is not None and stage.number == resume.stage else None
            result, best, monitor = _solve(problem, callback, offset, stop,
                                           checkpoints=checkpoints, stage=stage.number,
                                           earlier=tuple(finished_states), resume=here)
        except StyleTransferError as error:
            best = error.best_image if error.best_image is not None else start
            raise type(error)(str(error), best_image=finished(best)) from None
        except KeyboardInterrupt as error:  # Interrupted, or Ctrl-C between two stages.
            best = getattr(error, "best_image", None)
            raise Interrupted(best_image=finished(best if best is not None else start)) from None
        if result is None:  # Stopped before this stage's first evaluation.
            break
        results.append(result)
        if checkpoints is not None:
            finished_states.append(checkpoint_lib.monitor_state(monitor))
        start = best
        if result.stopped:
            break
        offset = Offset(iterations=offset.iterations + result.iterations,
                        evaluations=offset.evaluations + result.evaluations,
                        seconds=offset.seconds + result.seconds,
                        stage=stage.number + 1, stages=len(job.stages), total_evals=total)
    if not results:
        raise Interrupted(stop.reason if stop is not None and stop.reason else "interrupted",
                          best_image=None)
    result = _joined(results, config)
    if stop is not None and stop.requested and not result.stopped:
        # Stopped between two stages: the earlier stages' result, upsampled.
        result = dataclasses.replace(result, stopped=stop.reason,
                                     stop_reason=f"stopped ({stop.reason})")
    if resume is not None:
        result = dataclasses.replace(result, resumed_from=resume.evaluations)
    # The optimised image's luminance with the content's chroma ("luminance", "swap"). The
    # losses reported are those of the optimised image, before this step.
    pixels = finished_float(start)
    return dataclasses.replace(result, image=images_lib.to_uint8(pixels), pixels=pixels)


#: `coarse_stylisation`'s size, as a share of the frame's height. Measured (issue 26,
#: benchmarks/video.py): at half the height the upsampled result lacks the finest strokes
#: (block1-2) however many evaluations it gets; at three quarters it has them.
COARSE_SCALE = 0.75


def coarse_stylisation(job: Job, content: np.ndarray, evals: int, *,
                       region: Optional[np.ndarray] = None, scale: float = COARSE_SCALE,
                       feature_model=None,
                       target_cache: Optional[objective_lib.StyleTargets] = None) -> np.ndarray:
    """A short independent stylisation of `content` at a fraction of its size, upsampled,
    its style terms within `region`: what a video frame starts from where the warped
    previous result cannot be trusted.

    Scenery entering a frame (a disocclusion, the edge a camera pans towards) has no
    stylised pixels in the previous result. Started from the photo, a later frame's few
    evaluations barely move it, and the temporal term then holds it there in the frames
    after (issue 26: at 20 evaluations per frame the entering strip stayed 0.42x as far
    from the photo as in independent frames). Started from this instead, it enters already
    stylised.

    The style terms apply within `region` (guided Gram matrices, as a style's mask does,
    Gatys et al. 2017): the region's own feature statistics are matched to the style's.
    Over the whole frame a thin strip's statistics are diluted in the rest's, and its
    strokes lag behind the rest's (measured on the Tübingen clip's strip that entered last,
    20 evaluations: 2.6x the independent frames' masked style loss at half the height over
    the whole frame, 1.4x with the style within the region, 0.85x at 3/4 of the height
    within the region, the region then the strip and 8 px around it; without the 8 px
    0.71x, and the pan's 1.05x; docs/guides/video.md, "Entering scenery"). Outside the region
    only the content and total-variation terms act. With a mask per style (`job.masks`) each style's region is
    its mask times `region`; a blend of several styles without masks has no region of its
    own, and is stylised over the whole frame.

    Args:
        job: The video's job (styles, settings, placement); its content is replaced.
        content: The frame, RGB uint8 (H, W, 3) at the job's size.
        evals: Evaluations of the coarse run (from the content, no temporal term).
        region: (H, W) float in [0, 1] at the frame's size, where the style applies; None:
            the whole frame.
        scale: The coarse height over the frame's (at least the layers' minimum size).
        feature_model: The network, instead of the process's cached one.
        target_cache: The run's `objective.StyleTargets` (the coarse size's style targets
            are computed once for the whole video when there is no region; a region's
            masked targets are not cached).

    Returns:
        The coarse result upsampled to the frame's size, RGB uint8 (H, W, 3).

    Raises:
        ValueError: If `region` is not the frame's height and width. Received: its shape.
    """
    from nst_keras.engine import features as features_lib
    from nst_keras.plan import Stage

    height, width = content.shape[:2]
    if region is not None and np.shape(region)[:2] != (height, width):
        raise ValueError(f"`region` must be the frame's size ({height}, {width}). "
                         f"Received: region.shape={np.shape(region)}")
    layers = objective_lib.term_layers(objective_lib.make_terms(job.config))
    smallest = features_lib.minimum_size(layers, job.config.model)
    coarse_h = min(height, max(smallest, round(height * scale)))
    coarse_w = max(smallest, round(width * coarse_h / height))
    masks = None if job.masks is None else tuple(
        images_lib.load_mask(m, (coarse_w, coarse_h)) for m in job.masks)
    if region is not None:
        here = objective_lib.mask_at(region, coarse_h, coarse_w)
        if masks is not None:
            masks = tuple(m * here for m in masks)
        elif len(job.styles) == 1:
            masks = (here,)
    coarse = dataclasses.replace(
        job, content=content, init=None, temporal=None, masks=masks,
        config=job.config.replace(max_evals=evals, init="content", height=coarse_h,
                                  start_height=None, scales=1),
        stages=(Stage(1, coarse_h, coarse_w, evals, memory={}),))
    return render(coarse, feature_model=feature_model, target_cache=target_cache).image


def load_model(config: StyleConfig, where: Optional[runtime.Placement] = None):
    """The process's feature model for the config's layers and placement (cached).

    Raises:
        ValueError, OSError: If the weights cannot be loaded (see
            `features.build_feature_model`).
    """
    where = where or runtime.placement(config)
    layers = objective_lib.term_layers(objective_lib.make_terms(config))
    return runtime.MODELS.for_config(config, layers, where)


def initial_image(content_rgb, style_rgb, init, seed):
    """The starting image, RGB float32 (H, W, 3) at the content's size.

    Args:
        content_rgb: The content image, RGB uint8.
        style_rgb: The (first) style image, RGB uint8.
        init: `"content"`; `"noise"`: white noise, every pixel and channel uniform in
            [0, 255]; `"style"`: the style image stretched to the content's size; `"mean"`:
            the ImageNet mean colour plus N(0, 0.001) noise (jcjohnson/neural-style's
            `-init random`, which draws its noise in the mean-subtracted space); an RGB
            array, or the path or URL of an image, stretched to the content's size.
        seed: Seeds the noise.
    """
    size = (content_rgb.shape[1], content_rgb.shape[0])
    if isinstance(init, np.ndarray):
        return images_lib.resize_float(init, size)
    rng = np.random.default_rng(seed)
    if init == "content":
        return content_rgb.astype(np.float32)
    if init == "noise":
        return rng.uniform(0.0, 255.0, size=content_rgb.shape).astype(np.float32)
    if init == "mean":
        mean_rgb = images_lib.IMAGENET_MEAN_BGR[::-1]
        return (mean_rgb + rng.normal(0.0, 0.001, size=content_rgb.shape)).astype(np.float32)
    source = style_rgb if init == "style" else init
    return images_lib.load_image(source, size=size, keep_depth=True).astype(np.float32)


def build_problem(content_rgb, style_rgb, config: StyleConfig, feature_model=None,
                  start=None, masks=None, blend=None, placement=None, tiles=None, *,
                  temporal: Optional[objective_lib.Temporal] = None,
                  target_cache: Optional[objective_lib.StyleTargets] = None) -> Problem:
    """Gets the model, computes the targets and traces, at the content's size.

    The building block of one stage; `render` calls it per stage with what the plan
    checked. Called directly (the notebooks do), it checks nothing beyond that.

    Args:
        content_rgb: The content image, RGB uint8 (H, W, 3) at the generated image's size.
        style_rgb: The style image, RGB uint8 (h, w, 3), or a list of them (each its own
            size), blended by `blend` (or `config.style_blend_weights`).
        config: The settings.
        feature_model: A model from `build_feature_model` whose outputs include the
            config's layers, to use instead of the process's cached one.
        start: An RGB image (uint8 or float) to start from instead of `config.init`
            (resized to the content's size): how a coarse-to-fine stage starts from the
            previous one.
        masks: One float (H, W) mask in [0, 1] per style at the content's size: each style
            applies within its mask (guided Gram matrices); where no mask reaches, only the
            content and total-variation terms act.
        blend: Each style's share; from the config when None.
        placement: The resolved `runtime.Placement`; resolved from the config when None.
        tiles: Evaluate the objective tile by tile (`tiling.TiledObjective`, the same loss
            and gradient) in these `tiling.Tiles` (the plan's stage says), or in tiles of
            `config.tile`'s core size when None and it names one; untiled otherwise.
        temporal: An `objective.Temporal`: adds the `temporal` term, its target and
            weights resized to the content's size (tiled or not: the tiled objective adds
            each core's pixels).
        target_cache: Reuse and keep the style targets there (`objective.StyleTargets`).

    Returns:
        A `Problem`.
    """
    began = time.perf_counter()
    config = config.resolved()
    style_rgbs = as_list(style_rgb)
    blend = list(blend) if blend is not None else blend_weights(config, len(style_rgbs))
    where = placement or runtime.placement(config)
    terms = objective_lib.make_terms(config, masks=masks)
    extra_targets = None
    if temporal is not None:
        term, target = temporal.term_and_target(*content_rgb.shape[:2])
        terms, extra_targets = terms + (term,), {term.name: target}
    if feature_model is None:
        feature_model = load_model(config, where)
    with runtime.device_scope(where.device):
        if tiles is None and tile_size(config) is not None:
            tiles = tiling.layout(*content_rgb.shape[:2], objective_lib.term_layers(terms),
                                  config.model, tile_size(config),
                                  patch_layers=tiling.patch_layers(terms))
        if tiles is not None:
            if config.normalize_gradients:  # The plan refuses it first (`plan.plan`).
                raise ValueError("`normalize_gradients` needs the whole image untiled. "
                                 f"Received: normalize_gradients=True, tile={config.tile}")
            built = tiling.build_tiled_objective(feature_model, terms, content_rgb,
                                                 style_rgbs, config, blend, core=tiles.core,
                                                 halo=tiles.halo, extra_targets=extra_targets,
                                                 cache=target_cache)
            tiles = built.tiles
        else:
            built = objective_lib.build_objective(feature_model, terms, content_rgb,
                                                  style_rgbs, config, blend,
                                                  extra_targets=extra_targets,
                                                  cache=target_cache)
        if start is None:
            start = initial_image(content_rgb, style_rgbs[0], config.init, config.seed)
        start = images_lib.resize_float(start, (content_rgb.shape[1], content_rgb.shape[0]))
        x0 = images_lib.preprocess(start)
        built(x0)  # Trace now (once per size), not on the clock of the run.
    bounds = images_lib.pixel_bounds(x0.shape) if config.bounds else None
    return Problem(objective=built, x0=x0, bounds=bounds, config=config, device=where.device,
                   precision=where.precision, hardware=where.hardware,
                   setup_seconds=time.perf_counter() - began, tiles=tiles)


def solve(problem: Problem, callback: Optional[Callable[[Progress], None]] = None) -> Result:
    """Runs the config's optimiser on a `Problem` and returns a `Result`.

    Raises:
        NonFiniteLossError, DivergedError, OutOfMemoryError, Interrupted: With the best
            image so far.
    """
    return _solve(problem, callback, Offset())[0]


def _solve(problem: Problem, callback, offset: Offset, stop: Optional[StopToken] = None, *,
           checkpoints=None, stage: int = 1, earlier: tuple = (), resume=None):
    """`solve`, its counters starting at `offset`; returns (Result, best image as RGB float,
    the monitor), or (None, None, monitor) when a stop came before the first evaluation.

    With `resume` (this stage's `checkpoint.Checkpoint`), the monitor and the optimiser go
    on from its boundary; `checkpoints.at_boundary` is offered a checkpoint at each one
    (see `render`)."""
    config = problem.config
    gradient_method = config.optimizer != "lbfgs"
    objective = problem.objective
    if stop is not None and isinstance(objective, tiling.TiledObjective):
        objective = dataclasses.replace(objective, stop=stop)  # Checked between tiles.
    monitor = solvers.Monitor(objective, objective.terms, problem.x0.shape,
                              config.max_evals, callback, offset=offset,
                              divergence=solvers.DivergenceRule() if gradient_method else None,
                              stop=stop)
    if resume is not None:
        checkpoint_lib.restore_monitor(monitor, resume.monitor)
    at_boundary = None
    if checkpoints is not None:
        kind = "keras" if gradient_method else "lbfgsb"

        def at_boundary(capture):
            if monitor.evaluations == 0 and not earlier:
                return  # Nothing done yet: nothing to keep.
            checkpoints.at_boundary(lambda: checkpoint_lib.Checkpoint(
                kind, capture(), checkpoint_lib.monitor_state(monitor), stage, earlier),
                stop is not None and stop.requested)

    saved = None if resume is None else resume.solver
    with runtime.device_scope(problem.device):
        if config.optimizer == "lbfgs":
            outcome = solvers.lbfgs(monitor, problem.x0, iterations=config.iterations,
                                    bounds=problem.bounds, memory=config.lbfgs_memory,
                                    resume=saved, at_boundary=at_boundary)
        else:
            def optimizer(gradient):  # SGD's default learning rate needs the first gradient.
                return solvers.keras_optimizer(config.optimizer, config.learning_rate,
                                               config.lr_decay, config.lr_decay_steps,
                                               gradient=gradient)

            outcome = solvers.gradient_descent(monitor, problem.x0, optimizer=optimizer,
                                               iterations=config.iterations,
                                               bounds=problem.bounds, resume=saved,
                                               at_boundary=at_boundary, ema=config.ema)
    if outcome.x is None:
        return None, None, monitor
    best = outcome.best
    sums = best.kind_sums()
    result = Result(
        image=images_lib.deprocess(outcome.x),
        loss=best.loss,
        content_loss=sums.get("content", 0.0),
        style_loss=sum(sums.get(k, 0.0) for k in objective_lib.STYLE_KINDS),
        tv_loss=sums.get("tv", 0.0),
        layer_losses=best.layer_values(),
        iterations=outcome.iterations,
        evaluations=outcome.evaluations,
        seconds=outcome.seconds,
        setup_seconds=problem.setup_seconds,
        losses=outcome.losses,
        times=outcome.times,
        history=outcome.history,
        stop_reason=outcome.stop_reason,
        config=config,
        device=problem.device,
        precision=problem.precision,
        hardware=problem.hardware,
        stages=({"stage": offset.stage, "height": int(problem.x0.shape[1]),
                 "width": int(problem.x0.shape[2]), "evaluations": outcome.evaluations,
                 "iterations": outcome.iterations, "seconds": round(outcome.seconds, 3),
                 "loss": best.loss},),
        kind_losses=sums,
        stopped=outcome.stopped,
        pixels=np.clip(images_lib.deprocess_float(outcome.x), 0.0, 255.0),
    )
    return result, images_lib.deprocess_float(outcome.x), monitor


def _saved_stage(state, stage, config: StyleConfig, where) -> Result:
    """The `Result` of a stage that finished before a checkpoint was taken, from its saved
    monitor state: what joining the stages needs (counters, losses, history, summary)."""
    import json

    best = json.loads(state.best) if state.best else {"loss": float("nan"), "weighted": {}}
    return Result(
        image=None, loss=best["loss"], content_loss=0.0, style_loss=0.0, tv_loss=0.0,
        layer_losses={}, iterations=state.iterations, evaluations=state.evaluations,
        seconds=state.seconds, setup_seconds=0.0, losses=tuple(state.losses),
        times=tuple(state.times), history=tuple(json.loads(state.history)),
        stop_reason="finished before the checkpoint", config=config, device=where.device,
        precision=where.precision, hardware=where.hardware,
        stages=({"stage": stage.number, "height": stage.height, "width": stage.width,
                 "evaluations": state.evaluations, "iterations": state.iterations,
                 "seconds": round(state.seconds, 3), "loss": best["loss"]},))


def stage_images(content_rgb, style_rgbs, config: StyleConfig, height: int):
    """The content and style images of the stage at `height`, from the final-size ones.

    Each is resized (Lanczos) by `height` over the content's height; with
    `style_resize="stretch"` the styles take the stage content's size exactly.
    """
    factor = height / content_rgb.shape[0]
    content = _resized(content_rgb, factor)
    if config.style_resize == "stretch":
        return content, [images_lib.load_image(s, size=content.shape[1::-1], keep_depth=True)
                         for s in style_rgbs]
    return content, [_resized(s, factor) for s in style_rgbs]


def finish_color(image, content_rgb, mode, *, as_float: bool = False):
    """The saved image under a `preserve_color` mode: the luminance of `image` with the
    content's colour channels for `"luminance"` and `"swap"`; `image` otherwise.

    With `as_float`, the combined image is float32 in 0-255, not rounded (see
    `color.combine_luminance`)."""
    if mode not in ("luminance", "swap"):
        return image
    from nst_keras.engine import color

    return color.combine_luminance(image, content_rgb, as_float=as_float)


def color_inputs(content_rgb, style_rgbs, mode):
    """The content and style images the network sees under a `preserve_color` mode.

    `"luminance"`: both as grey images of their luminance, the styles' matched to the
    content's mean and standard deviation; `"histogram"`: the styles recoloured to the
    content's colour mean and covariance; otherwise (None, `"swap"`) unchanged.
    """
    from nst_keras.engine import color

    if mode == "luminance":
        return (color.grey_rgb(color.luminance(content_rgb)),
                [color.grey_rgb(color.match_luminance(s, content_rgb)) for s in style_rgbs])
    if mode == "histogram":
        return content_rgb, [color.match_color_histogram(s, content_rgb) for s in style_rgbs]
    return content_rgb, style_rgbs


def _resized(rgb, factor):
    """`rgb` scaled by `factor` (Lanczos), the same array when the factor is 1."""
    if factor == 1:
        return rgb
    return images_lib.load_image(rgb, max(1, round(rgb.shape[0] * factor)), keep_depth=True)


def _joined(results, config) -> Result:
    """One `Result` of the stages' results: the last stage's image and losses, totals.

    The stages' counters were offset once, as they ran (`solvers.Offset`); here they are
    only put together.
    """
    if len(results) == 1:
        return results[0]
    last = results[-1]
    return dataclasses.replace(
        last,
        iterations=sum(r.iterations for r in results),
        evaluations=sum(r.evaluations for r in results),
        seconds=sum(r.seconds for r in results),
        setup_seconds=sum(r.setup_seconds for r in results),
        losses=tuple(v for r in results for v in r.losses),
        times=tuple(t for r in results for t in r.times),
        history=tuple(h for r in results for h in r.history),
        config=config,
        stages=tuple(r.stages[0] for r in results),
    )


def render_network(job, stop: Optional[StopToken] = None) -> Result:
    """A planned `plan.NetworkJob`: the photo through the trained network, in one pass.

    The network is loaded once per process (`runtime`'s cache of networks by file and
    modification time), its forward pass traced once per size. The colour mode finishes
    the output as a plain run's (`finish_color`: the photo's colours on the output's
    luminance). A stop token set before the pass returns no image: `Interrupted`.

    Returns:
        A `Result` with no losses (NaN: the network's loss is its training's, in its
        record), no evaluations, and `seconds` the pass's wall time.

    Raises:
        Interrupted: If `stop` was set before the pass.
    """
    from nst_keras.engine import transformer

    if job.content is None:
        raise ValueError("the job was planned without its images. Received: job.content=None")
    if stop is not None and stop.requested:
        raise Interrupted(stop.reason or "interrupted", best_image=None)
    began = time.perf_counter()
    with runtime.device_scope(job.placement.device):
        network = runtime.NETWORKS.get(job.network)
        setup = time.perf_counter() - began
        began = time.perf_counter()
        pixels = transformer.stylize(network, job.content, precision=job.placement.precision)
    pixels = finish_color(np.clip(pixels, 0.0, 255.0), job.content, job.config.preserve_color,
                          as_float=True)
    seconds = time.perf_counter() - began
    nan = float("nan")
    return Result(
        image=images_lib.to_uint8(pixels), loss=nan, content_loss=nan, style_loss=nan,
        tv_loss=nan, layer_losses={}, iterations=0, evaluations=0, seconds=seconds,
        setup_seconds=setup, losses=(), times=(), history=(),
        stop_reason="one pass through the network", config=job.config,
        device=job.placement.device, precision=job.placement.precision,
        hardware=job.placement.hardware, pixels=np.asarray(pixels, np.float32))
