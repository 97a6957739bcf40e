"""One style-transfer run: `transfer_style` and `stylize`, and the steps they take.

Data flow: images (and masks) -> the colour mode's inputs (`color`) -> per stage (one, or
coarse to fine): the device and precision chosen (`runtime`) -> the cached feature model
(`features.MODELS`) -> the objective, targets once (`objective`) -> the starting image (the
init, or the previous stage's) -> L-BFGS-B inside the pixel box, or Adam/SGD projected into
it (`solvers`) -> the best image seen -> the colour mode's finish -> RGB uint8.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from nst_keras import images as images_lib
from nst_keras.config import StyleConfig
from nst_keras.objective import Objective
from nst_keras.solvers import Progress


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of `transfer_style`.

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
        history: Per iteration: iteration, evaluations, seconds, loss and weighted terms.
        stop_reason: What ended the optimisation.
        config: The settings used.
        device: `"cpu"` or `"gpu"`: where it ran.
        precision: `"float32"` or `"bfloat16"`: what `config.precision` resolved to.
        hardware: One line naming the CPU (and its relevant flags) or the GPU.
        stages: One summary per coarse-to-fine stage (stage, height, width, evaluations,
            iterations, seconds, loss); one entry for a single size. With several stages,
            the losses, times and history run on across them (their sizes differ), and
            evaluations, iterations and seconds are totals.
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


@dataclasses.dataclass(frozen=True)
class Problem:
    """Everything but the optimisation, built once per image size and config.

    Attributes:
        objective: The `Objective` (call it on a preprocessed image).
        x0: The preprocessed starting image, (1, H, W, 3) float32.
        bounds: (lower, upper) pixel box in preprocessed space, or None (no bounds).
        config: The settings.
        device: `"cpu"` or `"gpu"`.
        precision: `"float32"` or `"bfloat16"`.
        hardware: See `runtime.describe_hardware`.
        setup_seconds: Wall time of the model, the targets and the trace.
    """

    objective: Objective
    x0: np.ndarray = dataclasses.field(repr=False)
    bounds: Optional[Tuple[np.ndarray, np.ndarray]] = dataclasses.field(repr=False)
    config: StyleConfig
    device: str
    precision: str
    hardware: str
    setup_seconds: float


def initial_image(content_rgb, style_rgb, init, seed):
    """The starting image, RGB float32 (H, W, 3) at the content's size.

    Args:
        content_rgb: The content image, RGB uint8.
        style_rgb: The (first) style image, RGB uint8.
        init: `"content"`; `"noise"`: white noise, every pixel and channel uniform in
            [0, 255]; `"style"`: the style image stretched to the content's size; `"mean"`:
            the ImageNet mean colour plus N(0, 0.001) noise (jcjohnson/neural-style's
            `-init random`, which draws its noise in the mean-subtracted space); or the path
            or URL of an image, stretched to the content's size.
        seed: Seeds the noise.
    """
    size = (content_rgb.shape[1], content_rgb.shape[0])
    rng = np.random.default_rng(seed)
    if init == "content":
        return content_rgb.astype(np.float32)
    if init == "noise":
        return rng.uniform(0.0, 255.0, size=content_rgb.shape).astype(np.float32)
    if init == "mean":
        mean_rgb = images_lib.IMAGENET_MEAN_BGR[::-1]
        return (mean_rgb + rng.normal(0.0, 0.001, size=content_rgb.shape)).astype(np.float32)
    source = style_rgb if init == "style" else init
    return images_lib.load_image(source, size=size).astype(np.float32)


def style_heights(config: StyleConfig, count: int) -> list:
    """The height each of `count` style images is resized to (`"aspect"` resizing).

    Raises:
        ValueError: If `style_scale` has neither one value nor one per style.
    """
    if config.style_scale is None:
        return [config.style_height or config.height] * count
    scales = config.style_scale
    if len(scales) not in (1, count):
        raise ValueError(
            f"`style_scale` needs one value or one per style ({count}). "
            f"Received: style_scale={scales!r}"
        )
    scales = scales * count if len(scales) == 1 else scales
    return [max(1, round(s * config.height)) for s in scales]


def blend_weights(config: StyleConfig, count: int) -> list:
    """Each style's share of the style target, summing to 1 (equal by default).

    Raises:
        ValueError: If `style_blend_weights` does not have one weight per style.
    """
    if config.style_blend_weights is None:
        return [1.0 / count] * count
    weights = config.style_blend_weights
    if len(weights) != count:
        raise ValueError(
            f"`style_blend_weights` needs one weight per style ({count}). "
            f"Received: style_blend_weights={weights!r}"
        )
    return [w / sum(weights) for w in weights]


def as_list(styles) -> list:
    """One style source, or a list or tuple of them, as a list."""
    return list(styles) if isinstance(styles, (list, tuple)) else [styles]


def style_sizes(config: StyleConfig, count: int, content_hw) -> list:
    """How each of `count` style images is resized: `load_image` keyword arguments.

    `"stretch"` resizes to the content's size exactly (the book, keras-io); otherwise each
    keeps its aspect ratio at `style_scale` x the height, or `style_height`, or the height.

    Raises:
        ValueError: If `style_scale` has neither one value nor one per style.
    """
    if config.style_resize == "stretch":
        return [{"size": (content_hw[1], content_hw[0])}] * count
    return [{"height": h} for h in style_heights(config, count)]


#: How far a mask's aspect ratio may differ from the content's before it is refused.
MASK_ASPECT_TOLERANCE = 0.02


def mask_size_problem(mask_wh, content_wh) -> Optional[str]:
    """Why a mask of `mask_wh` cannot be stretched onto a content of `content_wh`, or None.

    Masks are resized to the content's size; an aspect ratio more than 2% off would
    distort the regions, so it is refused instead.
    """
    mask_ratio, content_ratio = mask_wh[0] / mask_wh[1], content_wh[0] / content_wh[1]
    if abs(mask_ratio / content_ratio - 1) > MASK_ASPECT_TOLERANCE:
        return (f"is {mask_wh[0]}x{mask_wh[1]} (aspect {mask_ratio:.3g}) but the content is "
                f"{content_wh[0]}x{content_wh[1]} (aspect {content_ratio:.3g})")
    return None


def load_masks(masks, content_hw, styles: int, config: StyleConfig) -> Optional[list]:
    """The style masks as float32 (H, W) arrays in [0, 1] at the content's size, or None.

    Args:
        masks: None, or one mask per style: paths, URLs, arrays or PIL images (white =
            where that style applies; grey blends).
        content_hw: (H, W) of the content image.
        styles: How many styles there are.
        config: The settings (blend weights do not combine with masks).

    Raises:
        ValueError: If the count differs from the styles', blend weights are given too, a
            mask's aspect ratio differs from the content's, or every mask is black.
    """
    if masks is None:
        return None
    masks = as_list(masks)
    if len(masks) != styles:
        raise ValueError(f"give one style mask per style ({styles}). Received: "
                         f"{len(masks)} mask(s)")
    if config.style_blend_weights is not None:
        raise ValueError("style masks and blend weights do not combine: each masked region "
                         "takes its own style at the full style weight. Received: "
                         f"style_blend_weights={config.style_blend_weights!r}")
    loaded = []
    for number, mask in enumerate(masks, start=1):
        opened = images_lib.open_image(mask) if not isinstance(mask, np.ndarray) else mask
        wh = opened.size if hasattr(opened, "size") and not isinstance(opened, np.ndarray) \
            else (opened.shape[1], opened.shape[0])
        problem = mask_size_problem(wh, (content_hw[1], content_hw[0]))
        if problem:
            raise ValueError(f"style mask {number} {problem}. Received: mask {number}")
        loaded.append(images_lib.load_mask(opened, (content_hw[1], content_hw[0])))
    if not any(m.max() > 0 for m in loaded):
        raise ValueError("every style mask is black, so no style would apply anywhere. "
                         f"Received: {len(loaded)} black mask(s)")
    return loaded


def prepare(content, style, config: StyleConfig):
    """Loads and resizes the content and style images as the config says.

    Args:
        content: The content image (path, URL, array, PIL image).
        style: A style image, or a list of them.
        config: The sizes (`height`, `style_height`, `style_scale`, `style_resize`).

    Returns:
        (content_rgb, style_rgbs): an RGB uint8 array and a list of them.

    Raises:
        ValueError: If `style_scale` or `style_blend_weights` does not fit the styles.
    """
    styles = as_list(style)
    blend_weights(config, len(styles))  # Checked before any image is read.
    content_rgb = images_lib.load_image(content, config.height)
    sizes = style_sizes(config, len(styles), content_rgb.shape[:2])
    return content_rgb, [images_lib.load_image(s, **k) for s, k in zip(styles, sizes)]


def load_model(config: StyleConfig):
    """The process's feature model for the config's layers, device and precision (cached).

    Raises:
        ValueError, OSError: If the weights cannot be loaded (see `build_feature_model`).
    """
    from nst_keras import features, objective, runtime

    device = runtime.resolve_device(config.device)
    return features.MODELS.get(
        objective.term_layers(objective.make_terms(config)), model=config.model,
        weights=config.weights, pooling=config.pooling,
        precision=runtime.resolve_precision(config.precision, device), device=device,
        seed=config.seed, padding=config.padding,
    )


def build_problem(content_rgb, style_rgb, config: StyleConfig, feature_model=None,
                  start=None, masks=None) -> Problem:
    """Chooses device and precision, gets the model, computes the targets, traces.

    Args:
        content_rgb: The content image, RGB uint8 (H, W, 3) at the generated image's size.
        style_rgb: The style image, RGB uint8 (h, w, 3), or a list of them (each its own
            size), blended by `config.style_blend_weights`.
        config: The settings.
        feature_model: A model from `build_feature_model` whose outputs include the
            config's layers, to use instead of the process's cached one.
        start: An RGB image to start from instead of `config.init` (resized to the
            content's size): how a coarse-to-fine stage starts from the previous one.
        masks: One float (H, W) mask in [0, 1] per style at the content's size (see
            `load_masks`): each style applies within its mask (guided Gram matrices);
            where no mask reaches, only the content and total-variation terms act.

    Returns:
        A `Problem`.

    Raises:
        ValueError: If `--device gpu` is asked for and there is none, or the blend weights
            do not fit the styles.
        OutOfMemoryError: If the image is too large for the memory (see
            `runtime.check_memory`).
    """
    from nst_keras import features, objective, runtime

    began = time.perf_counter()
    style_rgbs = as_list(style_rgb)
    blend = blend_weights(config, len(style_rgbs))
    device = runtime.resolve_device(config.device)
    terms = objective.make_terms(config, regions=0 if masks is None else len(style_rgbs))
    runtime.check_memory(content_rgb.shape[:2], config,
                         runtime.resolve_precision(config.precision, device), device)
    if feature_model is None:
        feature_model = load_model(config)
    precision = features.model_precision(feature_model)
    with runtime.device_scope(device):
        built = objective.build_objective(feature_model, terms, content_rgb, style_rgbs, config,
                                          blend, masks)
        if start is None:
            start = initial_image(content_rgb, style_rgbs[0], config.init, config.seed)
        elif start.shape != content_rgb.shape:
            start = images_lib.load_image(start, size=(content_rgb.shape[1], content_rgb.shape[0]))
        x0 = images_lib.preprocess(start)
        built(x0)  # Trace now (once per size), not on the clock of the run.
    bounds = images_lib.pixel_bounds(x0.shape) if config.bounds else None
    return Problem(
        objective=built, x0=x0, bounds=bounds, config=config, device=device,
        precision=precision, hardware=runtime.describe_hardware(device),
        setup_seconds=time.perf_counter() - began,
    )


def solve(problem: Problem, callback: Optional[Callable[[Progress], None]] = None) -> Result:
    """Runs the config's optimiser on a `Problem` and returns a `Result`.

    Raises:
        NonFiniteLossError, OutOfMemoryError, Interrupted: With the best image so far.
    """
    from nst_keras import runtime, solvers

    config = problem.config
    weights = {t.name: t.weight for t in problem.objective.terms}
    monitor = solvers.Monitor(problem.objective, weights, problem.x0.shape, config.max_evals,
                              callback)
    with runtime.device_scope(problem.device):
        if config.optimizer == "lbfgs":
            outcome = solvers.lbfgs(monitor, problem.x0, iterations=config.iterations,
                                    bounds=problem.bounds, memory=config.lbfgs_memory)
        else:
            optimizer = solvers.keras_optimizer(config.optimizer, config.learning_rate,
                                                config.lr_decay, config.lr_decay_steps)
            outcome = solvers.gradient_descent(monitor, problem.x0, optimizer=optimizer,
                                               iterations=config.iterations,
                                               bounds=problem.bounds)
    best = outcome.best
    return Result(
        image=images_lib.deprocess(outcome.x),
        loss=best.loss,
        content_loss=best.kind_sum("content"),
        style_loss=best.kind_sum("style"),
        tv_loss=best.kind_sum("tv"),
        layer_losses={n: v for n, v in best.values.items() if n != "tv"},
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
        stages=({"stage": 1, "height": int(problem.x0.shape[1]),
                 "width": int(problem.x0.shape[2]), "evaluations": outcome.evaluations,
                 "iterations": outcome.iterations, "seconds": round(outcome.seconds, 3),
                 "loss": best.loss},),
    )


def stage_heights(config: StyleConfig) -> list:
    """The heights of the coarse-to-fine stages, ending at `config.height`.

    `scales` alone: the height halves stage by stage (e.g. 3 stages to 800: 200, 400, 800).
    `start_height` alone: from it, doubling, as many stages as it takes to reach the height
    (the last step may be less than double). Both: `scales` sizes spaced geometrically
    from `start_height` to the height.
    """
    import math

    height, start, scales = config.height, config.start_height, config.scales
    if start is None:
        return [max(1, round(height / 2 ** (scales - 1 - i))) for i in range(scales)]
    if start >= height:
        return [height]
    if scales == 1:
        scales = 1 + math.ceil(math.log2(height / start) - 1e-9)
        return [min(height, start * 2**i) for i in range(scales - 1)] + [height]
    sizes = [round(start * (height / start) ** (i / (scales - 1))) for i in range(scales)]
    return sorted(set(sizes))  # Close start and end heights would repeat a size.


def stage_images(content_rgb, style_rgbs, config: StyleConfig, height: int):
    """The content and style images of the stage at `height`, from the final-size ones.

    Each is resized (Lanczos) by `height` over the content's height; with
    `style_resize="stretch"` the styles take the stage content's size exactly.
    """
    factor = height / content_rgb.shape[0]
    content = _resized(content_rgb, factor)
    if config.style_resize == "stretch":
        return content, [images_lib.load_image(s, size=content.shape[1::-1]) for s in style_rgbs]
    return content, [_resized(s, factor) for s in style_rgbs]


def checked_stage_heights(config: StyleConfig, content_rgb, style_rgbs) -> list:
    """`stage_heights`, after checking that every stage's content and style images are
    large enough for the layers used.

    Args:
        config: The settings.
        content_rgb: The content image at the final size.
        style_rgbs: The style images at the final size's scale.

    Raises:
        ValueError: If an image at some stage is smaller than the deepest layer needs.
    """
    from nst_keras.features import minimum_size

    heights = stage_heights(config)
    smallest = minimum_size(config.content_layers + config.style_layers, config.model)
    shrink = heights[0] / content_rgb.shape[0]  # The first stage is the smallest.
    for role, rgb in [("content", content_rgb)] + [("style", s) for s in style_rgbs]:
        if config.style_resize == "stretch" and role == "style":
            continue  # As large as the content.
        side = min(max(1, round(d * shrink)) for d in rgb.shape[:2])
        if side < smallest:
            where = f"at the first stage ({heights[0]} pixels high)" if len(heights) > 1 else ""
            raise ValueError(
                f"the {role} image is too small {where} for the layers used, which need "
                f"at least {smallest}x{smallest} (its shorter side would be {side}); use "
                "fewer scales, a larger start height or a larger style. Received: "
                f"scales={config.scales}, start_height={config.start_height}"
            )
    return heights


def stage_budgets(total: int, stages: int) -> list:
    """The evaluations each stage may spend: `total` split equally, the remainder last.

    Equal shares, as crowsonkb/style-transfer-pytorch gives each scale the same iterations:
    the coarse stages' evaluations are cheap (a quarter of the pixels per halving), so most
    of the time is still spent at the final size, where the detail is.

    Raises:
        ValueError: If the budget is smaller than the number of stages.
    """
    if total < stages:
        raise ValueError(
            f"`max_evals` must be at least the number of stages ({stages}). "
            f"Received: max_evals={total}"
        )
    share = total // stages
    return [share] * (stages - 1) + [total - share * (stages - 1)]


def run_stages(content_rgb, style_rgbs, config: StyleConfig, callback=None,
               on_stage=None, masks=None) -> Result:
    """Runs one size, or coarse to fine: each stage from the last, upsampled (Gatys 2017).

    Every stage resizes the content and style images from the given ones (Lanczos) by the
    stage's height over the final height, recomputes the targets at that size, and starts
    from the previous stage's best image resized to its size; the first starts from
    `config.init`. The evaluation budget is split by `stage_budgets`. The colour mode
    (`config.preserve_color`) prepares the images first and finishes the result last
    (see `color_inputs`).

    Args:
        content_rgb: The content image at the final size, RGB uint8.
        style_rgbs: The style images at the final size's scale, RGB uint8.
        config: The settings (`scales`, `start_height` choose the stages).
        callback: Called with each `Progress` (its `stage` and `stages` set; evaluations
            and seconds counted from the first stage).
        on_stage: Called with (stage, stages, problem) before each stage's optimisation.
        masks: One float (H, W) mask per style at the content's size, or None (see
            `load_masks`); resized with every stage.

    Returns:
        A `Result` at the final size (see its `stages`).

    Raises:
        ValueError: If an image is too small at the first stage (`checked_stage_heights`).
        NonFiniteLossError, OutOfMemoryError, Interrupted: With the best image so far at
            the final size (a stopped later stage's, or the previous stage's, upsampled,
            and its colours finished as the mode says), or None.
    """
    from nst_keras import runtime
    from nst_keras.errors import Interrupted, StyleTransferError

    heights = checked_stage_heights(config, content_rgb, style_rgbs)
    budgets = stage_budgets(config.max_evals, len(heights))
    device = runtime.resolve_device(config.device)
    # The final size is the largest: refuse it before any stage is spent.
    runtime.check_memory(content_rgb.shape[:2], config,
                         runtime.resolve_precision(config.precision, device), device)
    original_content = content_rgb
    content_rgb, style_rgbs = color_inputs(content_rgb, style_rgbs, config.preserve_color)

    def finished(image):
        """An image of any stage as the run would save it: full size, colours finished."""
        if image is None:
            return None
        if image.shape != original_content.shape:
            image = images_lib.load_image(image, size=original_content.shape[1::-1])
        return finish_color(image, original_content, config.preserve_color)

    results, start, done = [], None, {"evaluations": 0, "seconds": 0.0, "iterations": 0}
    for number, (height, budget) in enumerate(zip(heights, budgets), start=1):
        stage_content, stage_styles = stage_images(content_rgb, style_rgbs, config, height)
        stage_config = config.replace(height=height, max_evals=budget, start_height=None,
                                      scales=1) if len(heights) > 1 else config
        stage_masks = None if masks is None or len(heights) == 1 else [
            images_lib.load_mask(m, stage_content.shape[1::-1]) for m in masks]
        offset = dict(done)

        def staged(progress, number=number, offset=offset):
            callback(dataclasses.replace(
                progress, stage=number, stages=len(heights),
                iteration=progress.iteration + offset["iterations"],
                evaluations=progress.evaluations + offset["evaluations"],
                seconds=progress.seconds + offset["seconds"]))

        try:
            problem = build_problem(stage_content, stage_styles, stage_config, start=start,
                                    masks=masks if stage_masks is None else stage_masks)
            if on_stage is not None:
                on_stage(number, len(heights), problem)
            results.append(solve(problem, staged if callback is not None else None))
        except StyleTransferError as error:
            best = error.best_image if error.best_image is not None else start
            raise type(error)(str(error), best_image=finished(best)) from None
        except KeyboardInterrupt as error:  # Interrupted, or Ctrl-C between two stages.
            best = getattr(error, "best_image", None)
            raise Interrupted(best_image=finished(best if best is not None else start)) from None
        start = results[-1].image
        for key in done:
            done[key] += getattr(results[-1], key)
    result = _joined(results, config)
    # The optimised image's luminance with the content's chroma ("luminance", "swap"). The
    # losses reported are those of the optimised image, before this step.
    return dataclasses.replace(result, image=finished(result.image))


def finish_color(image, content_rgb, mode):
    """The saved image under a `preserve_color` mode: the luminance of `image` with the
    content's colour channels for `"luminance"` and `"swap"`; `image` otherwise."""
    if mode not in ("luminance", "swap"):
        return image
    from nst_keras import color

    return color.combine_luminance(image, content_rgb)


def color_inputs(content_rgb, style_rgbs, mode):
    """The content and style images the network sees under a `preserve_color` mode.

    `"luminance"`: both as grey images of their luminance, the styles' matched to the
    content's mean and standard deviation; `"histogram"`: the styles recoloured to the
    content's colour mean and covariance; otherwise (None, `"swap"`) unchanged.
    """
    from nst_keras import color

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
    return images_lib.load_image(rgb, max(1, round(rgb.shape[0] * factor)))


def _joined(results, config) -> Result:
    """One `Result` of the stages' results: the last stage's image and losses, totals."""
    if len(results) == 1:
        return results[0]
    last, summaries, seconds = results[-1], [], 0.0
    history, times = [], []
    iterations = evaluations = 0
    for number, result in enumerate(results, start=1):
        history += [dict(h, stage=number, iteration=h["iteration"] + iterations,
                         evaluations=h["evaluations"] + evaluations,
                         seconds=h["seconds"] + seconds) for h in result.history]
        times += [t + seconds for t in result.times]
        iterations += result.iterations
        evaluations += result.evaluations
        seconds += result.seconds
        summaries.append(dict(result.stages[0], stage=number))
    return dataclasses.replace(
        last, iterations=iterations, evaluations=evaluations, seconds=seconds,
        setup_seconds=sum(r.setup_seconds for r in results),
        losses=tuple(l for r in results for l in r.losses), times=tuple(times),
        history=tuple(history), config=config, stages=tuple(summaries),
    )


def transfer_style(
    content,
    style,
    *,
    config: Optional[StyleConfig] = None,
    callback: Optional[Callable[[Progress], None]] = None,
    masks=None,
    **settings,
) -> Result:
    """Renders `content` in the style of `style` (Gatys et al.), and says how it went.

    Args:
        content: The content image: a path, an http(s) URL, an RGB array or a PIL image.
        style: The style image, likewise, or a list of them (blended by
            `style_blend_weights`, equal by default).
        config: A `StyleConfig`; defaults to the book's settings.
        callback: Called with a `Progress` after every iteration.
        masks: One mask per style (path, URL, array or PIL image; white = where the style
            applies, grey blends), resized to the content's size; None for no masks.
        **settings: Fields of `StyleConfig` that override `config`'s.

    Returns:
        A `Result`; `result.image` is the best image seen, RGB uint8, at the content's size.

    Raises:
        ValueError: If a setting is invalid.
        OSError: If an image or the weights cannot be read or downloaded.
        NonFiniteLossError: If the loss becomes NaN or infinite (with the best image so far).
        OutOfMemoryError: If the size does not fit in memory (with the best image so far).
        Interrupted: On Ctrl-C (with the best image so far).
    """
    config = config or StyleConfig()
    if settings:
        config = config.replace(**settings)
    content_rgb, style_rgbs = prepare(content, style, config)
    loaded = load_masks(masks, content_rgb.shape[:2], len(style_rgbs), config)
    return run_stages(content_rgb, style_rgbs, config, callback, masks=loaded)


def stylize(content, style, *, config=None, callback=None, masks=None, **settings) -> np.ndarray:
    """Renders `content` in the style of `style`; returns the image as RGB uint8 (H, W, 3).

    The same as `transfer_style(...).image`; see there for the arguments.

    Example:

    >>> from nst_keras import stylize
    >>> image = stylize("tubingen.jpg", "starry_night.jpg", height=256, max_evals=100)
    """
    return transfer_style(content, style, config=config, callback=callback, masks=masks,
                          **settings).image
