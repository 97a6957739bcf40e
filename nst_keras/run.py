"""One style-transfer run: `transfer_style` and `stylize`, and the steps they take.

Data flow: images -> the device and precision chosen (`runtime`) -> the cached feature
model (`features.MODELS`) -> the objective, targets once (`objective`) -> the starting image
-> L-BFGS-B inside the pixel box (`solvers`) -> the best image seen -> RGB uint8.
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
    from PIL import Image

    size = (content_rgb.shape[1], content_rgb.shape[0])
    rng = np.random.default_rng(seed)
    if init == "content":
        return content_rgb.astype(np.float32)
    if init == "noise":
        return rng.uniform(0.0, 255.0, size=content_rgb.shape).astype(np.float32)
    if init == "mean":
        mean_rgb = images_lib.IMAGENET_MEAN_BGR[::-1]
        return (mean_rgb + rng.normal(0.0, 0.001, size=content_rgb.shape)).astype(np.float32)
    if init == "style":
        return np.asarray(Image.fromarray(style_rgb).resize(size, Image.LANCZOS), np.float32)
    return images_lib.load_image(init, size=size).astype(np.float32)


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


def build_problem(content_rgb, style_rgb, config: StyleConfig, feature_model=None) -> Problem:
    """Chooses device and precision, gets the model, computes the targets, traces.

    Args:
        content_rgb: The content image, RGB uint8 (H, W, 3) at the generated image's size.
        style_rgb: The style image, RGB uint8 (h, w, 3), or a list of them (each its own
            size), blended by `config.style_blend_weights`.
        config: The settings.
        feature_model: A model from `build_feature_model` whose outputs include the
            config's layers, to use instead of the process's cached one.

    Returns:
        A `Problem`.

    Raises:
        ValueError: If `--device gpu` is asked for and there is none, or the blend weights
            do not fit the styles.
        OutOfMemoryError: If the image is too large for the memory (see
            `runtime.check_memory`).
    """
    from nst_keras import features, objective, runtime

    start = time.perf_counter()
    style_rgbs = as_list(style_rgb)
    blend = blend_weights(config, len(style_rgbs))
    device = runtime.resolve_device(config.device)
    precision = runtime.resolve_precision(config.precision, device)
    terms = objective.make_terms(config)
    layers = objective.term_layers(terms)
    runtime.check_memory(content_rgb.shape[:2], layers, config.model, device)
    if feature_model is not None:  # A caller's model computes in the precision it was built in.
        precision = features.model_precision(feature_model)
    with runtime.device_scope(device):
        if feature_model is None:
            feature_model = features.MODELS.get(
                layers, model=config.model, weights=config.weights, pooling=config.pooling,
                precision=precision, device=device, seed=config.seed,
            )
        built = objective.build_objective(feature_model, terms, content_rgb, style_rgbs, config,
                                          blend)
        x0 = images_lib.preprocess(initial_image(content_rgb, style_rgbs[0], config.init,
                                                 config.seed))
        built(x0)  # Trace now (once per size), not on the clock of the run.
    bounds = images_lib.pixel_bounds(x0.shape) if config.bounds else None
    return Problem(
        objective=built, x0=x0, bounds=bounds, config=config, device=device,
        precision=precision, hardware=runtime.describe_hardware(device),
        setup_seconds=time.perf_counter() - start,
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
    )


def transfer_style(
    content,
    style,
    *,
    config: Optional[StyleConfig] = None,
    callback: Optional[Callable[[Progress], None]] = None,
    **settings,
) -> Result:
    """Renders `content` in the style of `style` (Gatys et al.), and says how it went.

    Args:
        content: The content image: a path, an http(s) URL, an RGB array or a PIL image.
        style: The style image, likewise, or a list of them (blended by
            `style_blend_weights`, equal by default).
        config: A `StyleConfig`; defaults to the book's settings.
        callback: Called with a `Progress` after every iteration.
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
    content_rgb, style_rgb = prepare(content, style, config)
    return solve(build_problem(content_rgb, style_rgb, config), callback)


def stylize(content, style, *, config=None, callback=None, **settings) -> np.ndarray:
    """Renders `content` in the style of `style`; returns the image as RGB uint8 (H, W, 3).

    The same as `transfer_style(...).image`; see there for the arguments.

    Example:

    >>> from nst_keras import stylize
    >>> image = stylize("tubingen.jpg", "starry_night.jpg", height=256, max_evals=100)
    """
    return transfer_style(content, style, config=config, callback=callback, **settings).image
