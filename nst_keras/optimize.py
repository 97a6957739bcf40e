"""The optimisation: targets once, one traced loss-and-gradient function, one L-BFGS call.

Data flow: images -> 'caffe' preprocessing -> the feature model for the union of layers ->
content features and style Gram matrices of the *targets*, computed once -> a fixed-shape
`tf.function` returning (loss, gradient, per-term losses) of the generated image only ->
one `scipy.optimize.fmin_l_bfgs_b` call -> the best image seen -> RGB uint8.

Departure from the book: the book sends content, style and generated images through VGG19
together at every evaluation (three times the work, the targets recomputed each time), and
restarts `fmin_l_bfgs_b` every 20 evaluations, throwing away L-BFGS's curvature memory.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Optional

import numpy as np

from nst_keras import images as images_lib
from nst_keras.config import StyleConfig


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the callback receives after each L-BFGS iteration.

    Attributes:
        iteration: L-BFGS iterations done (from 1).
        evaluations: Loss-and-gradient evaluations done; L-BFGS's line search may spend
            several per iteration.
        loss: The total loss of the current image.
        content_loss: The weighted content term of `loss`.
        style_loss: The weighted style term of `loss`.
        tv_loss: The weighted total-variation term of `loss`.
        layer_losses: The *unweighted* loss of each layer, keyed `content/<layer>` and
            `style/<layer>` (Keras names).
        seconds: Wall time since the optimisation started.
        image: The current image, RGB uint8 (H, W, 3).
    """

    iteration: int
    evaluations: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    layer_losses: Dict[str, float]
    seconds: float
    image: np.ndarray


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of `transfer_style`.

    Attributes:
        image: The best image seen (lowest total loss), RGB uint8 (H, W, 3).
        loss, content_loss, style_loss, tv_loss, layer_losses: Those of `image`, as in
            `Progress`.
        iterations: L-BFGS iterations done.
        evaluations: Loss-and-gradient evaluations done.
        seconds: Wall time of the optimisation (targets and tracing excluded).
        setup_seconds: Wall time of building the model, the targets and the trace.
        losses: The total loss after each evaluation, in order.
        stop_reason: What ended the optimisation, as SciPy says it.
        config: The settings used.
    """

    image: np.ndarray
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    layer_losses: Dict[str, float]
    iterations: int
    evaluations: int
    seconds: float
    setup_seconds: float
    losses: tuple
    stop_reason: str
    config: StyleConfig


class StyleTransferError(RuntimeError):
    """A run that stopped early; `best_image` holds the best image seen (or None)."""

    def __init__(self, message, best_image=None):
        super().__init__(message)
        self.best_image = best_image


class NonFiniteLossError(StyleTransferError):
    """The loss or its gradient became NaN or infinite."""


class OutOfMemoryError(StyleTransferError):
    """TensorFlow or numpy ran out of memory during the optimisation."""


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); `best_image` holds the best image seen (or None)."""

    def __init__(self, message="interrupted", best_image=None):
        super().__init__(message)
        self.best_image = best_image


@dataclasses.dataclass(frozen=True)
class _Terms:
    """Positions of the content and style layers among the feature model's outputs."""

    content: tuple  # ((keras_name, output_index), ...)
    style: tuple


def _layout(config: StyleConfig):
    from nst_keras.features import resolve_layer_name

    content = [resolve_layer_name(n, config.model) for n in config.content_layers]
    style = [resolve_layer_name(n, config.model) for n in config.style_layers]
    union = list(dict.fromkeys(content + style))
    return union, _Terms(
        content=tuple((n, union.index(n)) for n in dict.fromkeys(content)),
        style=tuple((n, union.index(n)) for n in dict.fromkeys(style)),
    )


def features_of(feature_model, x):
    """The feature model's outputs for `x`, always as a list (Keras unwraps a single output)."""
    outputs = feature_model(x, training=False)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def compute_targets(feature_model, terms, content_x, style_x, generated_hw):
    """Content features and style Gram matrices of the target images, computed once.

    Args:
        feature_model: From `build_feature_model`.
        terms: Which outputs are content and which style layers.
        content_x: Preprocessed content image, (1, H, W, 3).
        style_x: Preprocessed style image, (1, h, w, 3).
        generated_hw: (H, W) of the generated image.

    Returns:
        (content_targets, style_targets): lists of tensors, in the order of `terms`.
    """
    import tensorflow as tf

    from nst_keras.losses import scaled_gram_matrix

    content_targets, style_targets = [], []
    if terms.content:
        outputs = features_of(feature_model, tf.constant(content_x))
        content_targets = [tf.identity(outputs[i][0]) for _, i in terms.content]
    if terms.style:
        outputs = features_of(feature_model, tf.constant(style_x))
        # The generated image's positions per layer, from shapes alone (no forward pass).
        shapes = feature_model.compute_output_shape((1, *generated_hw, 3))
        if not isinstance(shapes[0], (list, tuple)):  # A single output: one shape.
            shapes = [shapes]
        positions = [shapes[i][1] * shapes[i][2] for _, i in terms.style]
        style_targets = [
            scaled_gram_matrix(outputs[i][0], m) for (_, i), m in zip(terms.style, positions)
        ]
    return content_targets, style_targets


def _gram_matrix_symmetric_grad(features):
    """`losses.gram_matrix` with a gradient of one matrix product instead of two.

    G = F^T F, so dL/dF = F (dL/dG + dL/dG^T). TensorFlow's generic MatMul gradient does not
    know both factors are F and computes F dL/dG^T and F dL/dG separately, then adds them:
    2 M C^2 more FLOPs per style layer (about 2% of an evaluation with the book's layers).

    Args:
        features: (H, W, C) or (1, H, W, C) float32 features.

    Returns:
        The (C, C) Gram matrix, as `gram_matrix` returns it.
    """
    import tensorflow as tf

    from nst_keras.losses import gram_matrix

    @tf.custom_gradient
    def gram(x):
        def grad(upstream):
            flat = tf.reshape(x, (-1, tf.shape(x)[-1]))
            return tf.reshape(tf.matmul(flat, upstream + tf.transpose(upstream)), tf.shape(x))

        return gram_matrix(x), grad

    return gram(features)


def make_loss_and_grad(feature_model, terms, content_targets, style_targets, config, image_hw):
    """Builds the traced function x -> (loss, grad, term losses) for one image size.

    The input signature is fixed ((1, H, W, 3) float32), so the function traces once.

    Args:
        feature_model: From `build_feature_model`.
        terms: Which outputs are content and which style layers.
        content_targets: From `compute_targets`.
        style_targets: From `compute_targets`.
        config: The weights, normalisation and TV settings.
        image_hw: (H, W) of the generated image.

    Returns:
        A `tf.function` taking a (1, H, W, 3) float32 tensor and returning the scalar loss,
        its gradient (1, H, W, 3), and a vector of the unweighted term losses: the content
        layers, the style layers, then the total variation.
    """
    import tensorflow as tf

    from nst_keras.losses import content_loss, gram_loss, style_normalizer
    from nst_keras.losses import total_variation_loss

    height, width = image_hw
    content_w = config.content_weight / max(1, len(terms.content))
    style_w = config.style_weight / max(1, len(terms.style))
    tv_w, tv_power, normalization = config.tv_weight, config.tv_power, config.normalization

    @tf.function(
        input_signature=[tf.TensorSpec((1, height, width, 3), tf.float32)],
        jit_compile=config.jit_compile,
        reduce_retracing=False,
    )
    def loss_and_grad(x):
        # Only the image is differentiated: the frozen VGG weights are not watched, so no
        # weight gradient can be asked for (each conv's backward pass is its input gradient).
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            outputs = features_of(feature_model, x)
            terms_values = []
            loss = tf.constant(0.0)
            for (_, i), target in zip(terms.content, content_targets):
                value = content_loss(target, outputs[i][0], normalization=normalization)
                terms_values.append(value)
                loss += content_w * value
            for (_, i), target in zip(terms.style, style_targets):
                features = outputs[i][0]
                channels, positions = style_normalizer(
                    features.shape, (height, width), normalization
                )
                value = gram_loss(
                    target, _gram_matrix_symmetric_grad(features), channels=channels,
                    positions=positions,
                )
                terms_values.append(value)
                loss += style_w * value
            tv = total_variation_loss(x, power=tv_power)
            terms_values.append(tv)
            loss += tv_w * tv
        return loss, tape.gradient(loss, x), tf.stack(terms_values)

    return loss_and_grad


def initial_image(content_rgb, style_rgb, init, seed):
    """The starting image, RGB float (H, W, 3) at the content's size.

    `"noise"` is white noise: every pixel and channel uniform in [0, 255].
    """
    if init == "content":
        return content_rgb.astype(np.float32)
    if init == "style":
        from PIL import Image

        size = (content_rgb.shape[1], content_rgb.shape[0])
        return np.asarray(
            Image.fromarray(style_rgb).resize(size, Image.LANCZOS), dtype=np.float32
        )
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 255.0, size=content_rgb.shape).astype(np.float32)


def minimize(loss_and_grad, x0, *, iterations, max_evals, term_names, weights, callback=None):
    """Runs one `fmin_l_bfgs_b` call on `loss_and_grad` from `x0`.

    SciPy hands the function float64 vectors; each is copied once into a float32 tensor of
    the traced shape and the gradient copied back. L-BFGS counts evaluations apart from
    iterations: its line search may evaluate more than once per iteration, so `max_evals`
    bounds the work and `iterations` the steps. SciPy's tolerances are set to 0 so that
    neither stops the run before the budget is spent (as jcjohnson/neural-style does).

    Args:
        loss_and_grad: From `make_loss_and_grad`.
        x0: The preprocessed starting image, (1, H, W, 3).
        iterations: Most L-BFGS iterations.
        max_evals: Most evaluations.
        term_names: Names of the term losses the function returns, in order.
        weights: Weight of each term, in order (to report weighted totals).
        callback: Called with a `Progress` after each iteration.

    Returns:
        A dict with the best image and its losses, the loss history and SciPy's message.

    Raises:
        NonFiniteLossError: If a loss or gradient is not finite; carries the best image.
        OutOfMemoryError: If memory runs out; carries the best image.
        Interrupted: On KeyboardInterrupt; carries the best image.
    """
    import tensorflow as tf
    from scipy.optimize import fmin_l_bfgs_b

    shape = x0.shape
    weights = np.asarray(weights, dtype=np.float64)
    n_content = sum(1 for n in term_names if n.startswith("content/"))
    n_style = sum(1 for n in term_names if n.startswith("style/"))
    start = time.perf_counter()
    state = {"evaluations": 0, "iteration": 0, "best": None, "recent": [], "history": []}

    def record(x, loss, terms):
        weighted = terms * weights
        return {
            "x": x,
            "loss": loss,
            "content_loss": float(weighted[:n_content].sum()),
            "style_loss": float(weighted[n_content : n_content + n_style].sum()),
            "tv_loss": float(weighted[-1]),
            "layer_losses": dict(zip(term_names[:-1], map(float, terms[:-1]))),
        }

    def func(flat):
        if state["evaluations"] >= max_evals:
            # SciPy checks `maxfun` only between iterations, so a line search can overrun
            # it; stopping here makes `max_evals` an exact budget.
            raise _BudgetSpent()
        loss, grad, terms = loss_and_grad(tf.constant(flat.reshape(shape), dtype=tf.float32))
        loss, grad, terms = float(loss), grad.numpy(), terms.numpy().astype(np.float64)
        if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
            what = "its gradient" if np.isfinite(loss) else f"the loss ({loss})"
            raise NonFiniteLossError(
                f"the run became non-finite: {what} after {state['evaluations']} "
                "evaluations; try a lower --style-weight or --tv-weight"
            )
        state["evaluations"] += 1
        state["history"].append(loss)
        entry = record(flat.copy(), loss, terms)
        if state["best"] is None or loss < state["best"]["loss"]:
            state["best"] = entry
        # L-BFGS reports each accepted point by value; keep the last few evaluations to
        # look its losses up without evaluating again.
        state["recent"] = state["recent"][-3:] + [entry]
        return loss, grad.astype(np.float64).ravel()

    def on_iteration(xk):
        state["iteration"] += 1
        if callback is None:
            return
        entry = next(
            (e for e in reversed(state["recent"]) if np.array_equal(e["x"], xk)),
            state["recent"][-1],
        )
        callback(
            Progress(
                iteration=state["iteration"],
                evaluations=state["evaluations"],
                loss=entry["loss"],
                content_loss=entry["content_loss"],
                style_loss=entry["style_loss"],
                tv_loss=entry["tv_loss"],
                layer_losses=entry["layer_losses"],
                seconds=time.perf_counter() - start,
                image=images_lib.deprocess(xk.reshape(shape)),
            )
        )

    def best_image():
        best = state["best"]
        return None if best is None else images_lib.deprocess(best["x"].reshape(shape))

    try:
        # One call: L-BFGS keeps its curvature memory (m=10 pairs, SciPy's default, as in
        # the book) for the whole run.
        stop_reason = "max_evals reached"
        _, _, info = fmin_l_bfgs_b(
            func,
            x0.astype(np.float64).ravel(),
            maxiter=iterations,
            maxfun=max_evals,
            factr=0.0,
            pgtol=0.0,
            callback=on_iteration,
        )
        stop_reason = _message(info)
    except _BudgetSpent:
        pass
    except NonFiniteLossError as error:
        raise NonFiniteLossError(str(error), best_image=best_image()) from None
    except KeyboardInterrupt:
        raise Interrupted(best_image=best_image()) from None
    except (MemoryError, tf.errors.ResourceExhaustedError) as error:
        raise OutOfMemoryError(
            f"out of memory at {shape[2]}x{shape[1]} ({type(error).__name__})",
            best_image=best_image(),
        ) from None
    best = state["best"]
    return {
        "image": best_image(),
        "loss": best["loss"],
        "content_loss": best["content_loss"],
        "style_loss": best["style_loss"],
        "tv_loss": best["tv_loss"],
        "layer_losses": best["layer_losses"],
        "iterations": state["iteration"],
        "evaluations": state["evaluations"],
        "seconds": time.perf_counter() - start,
        "losses": tuple(state["history"]),
        "stop_reason": stop_reason,
    }


class _BudgetSpent(Exception):
    """Raised inside the objective once `max_evals` evaluations are spent."""


def _message(info):
    task = info.get("task", "")
    return task.decode() if isinstance(task, bytes) else str(task)


def device_scope(device):
    """A `tf.device` scope for `"cpu"` or `"gpu"`; no scope for `"auto"`.

    Raises:
        ValueError: If `"gpu"` is asked for and TensorFlow sees none.
    """
    import contextlib

    import tensorflow as tf

    if device == "cpu":
        return tf.device("/CPU:0")
    if device == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            raise ValueError("No GPU is visible to TensorFlow. Received: device='gpu'")
        return tf.device("/GPU:0")
    return contextlib.nullcontext()


def prepare(content, style, config: StyleConfig):
    """Loads and resizes the two images as the config says.

    Returns:
        (content_rgb, style_rgb): RGB uint8 arrays.
    """
    content_rgb = images_lib.load_image(content, config.height)
    style_rgb = images_lib.load_image(style, config.style_height or config.height)
    return content_rgb, style_rgb


#: Address space TensorFlow takes before any image (measured: ~2.2 GB of VmSize on TF 2.21).
_TF_ADDRESS_SPACE = 2.5 * 2**30


def _available_memory_bytes():
    """(MemAvailable, address-space headroom under RLIMIT_AS), each None where unknown."""
    import resource

    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    headroom = None if soft == resource.RLIM_INFINITY else soft - _TF_ADDRESS_SPACE
    return available, headroom


def check_memory(image_hw, config: StyleConfig) -> None:
    """Refuses, before any work, an image size whose evaluation cannot fit in memory.

    On the CPU, TensorFlow does not always fail cleanly when an allocation fails (it can
    crash the process), so the size is checked against an estimate first: the activations
    of one evaluation (`features.estimate_memory_bytes`) against MemAvailable, and, under
    an address-space limit (`ulimit -v`), against that limit. Skipped on a GPU, where
    TensorFlow raises `ResourceExhaustedError` instead.

    Raises:
        OutOfMemoryError: With the size tried, the estimate and a height that would fit.
    """
    import tensorflow as tf

    from nst_keras.features import estimate_memory_bytes

    if config.device == "gpu" or (
        config.device == "auto" and tf.config.list_physical_devices("GPU")
    ):
        return
    height, width = image_hw
    layers = config.content_layers + config.style_layers
    need = estimate_memory_bytes(height, width, layers, config.model)
    available, headroom = _available_memory_bytes()
    # Address space grows ~1.5x faster than resident memory (allocator arenas, threads).
    limits = [a for a in (available, None if headroom is None else headroom / 1.5) if a]
    if limits and need > min(limits):
        fits = int(height * (min(limits) / need) ** 0.5 * 0.9)
        raise OutOfMemoryError(
            f"out of memory: {width}x{height} needs about {need / 2**30:.1f} GiB for one "
            f"evaluation and about {max(0, min(limits)) / 2**30:.1f} GiB is available; try "
            f"--height {max(1, fits)} or less"
        )


@dataclasses.dataclass(frozen=True)
class Problem:
    """Everything but the optimisation, built once per image size and config.

    Attributes:
        loss_and_grad: The traced function of `make_loss_and_grad`.
        x0: The preprocessed starting image, (1, H, W, 3) float32.
        term_names: Names of the terms `loss_and_grad` returns (`content/...`,
            `style/...`, `tv`).
        term_weights: The weight of each term in the total loss.
        config: The settings.
        setup_seconds: Wall time of building the model, the targets and the trace.
    """

    loss_and_grad: Callable
    x0: np.ndarray
    term_names: tuple
    term_weights: tuple
    config: StyleConfig
    setup_seconds: float


def build_problem(content_rgb, style_rgb, config: StyleConfig, feature_model=None) -> Problem:
    """Builds the feature model, computes the targets once and traces the objective.

    Args:
        content_rgb: The content image, RGB uint8 (H, W, 3) at the generated image's size.
        style_rgb: The style image, RGB uint8 (h, w, 3).
        config: The settings.
        feature_model: A model from `build_feature_model` whose outputs are the config's
            layers (content first, then style, duplicates removed), to reuse; built from
            the config if None.

    Returns:
        A `Problem`.

    Raises:
        OutOfMemoryError: If the image is too large for the memory (see `check_memory`).
    """
    import keras

    from nst_keras.features import build_feature_model

    start = time.perf_counter()
    check_memory(content_rgb.shape[:2], config)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    union, terms = _layout(config)
    with device_scope(config.device):
        if feature_model is None:
            feature_model = build_feature_model(
                union, model=config.model, weights=config.weights, pooling=config.pooling
            )
        hw = content_rgb.shape[:2]
        content_targets, style_targets = compute_targets(
            feature_model, terms, images_lib.preprocess(content_rgb),
            images_lib.preprocess(style_rgb), hw,
        )
        loss_and_grad = make_loss_and_grad(
            feature_model, terms, content_targets, style_targets, config, hw
        )
        loss_and_grad.get_concrete_function()  # Trace now, not on the clock of the run.
    x0 = images_lib.preprocess(initial_image(content_rgb, style_rgb, config.init, config.seed))
    names = [f"content/{n}" for n, _ in terms.content] + [f"style/{n}" for n, _ in terms.style]
    weights = [config.content_weight / max(1, len(terms.content))] * len(terms.content) + [
        config.style_weight / max(1, len(terms.style))
    ] * len(terms.style)
    return Problem(
        loss_and_grad=loss_and_grad,
        x0=x0,
        term_names=tuple(names) + ("tv",),
        term_weights=tuple(weights) + (config.tv_weight,),
        config=config,
        setup_seconds=time.perf_counter() - start,
    )


def solve(problem: Problem, callback: Optional[Callable[[Progress], None]] = None) -> Result:
    """Runs the optimisation of a `Problem` (see `minimize`) and returns a `Result`."""
    config = problem.config
    with device_scope(config.device):
        outcome = minimize(
            problem.loss_and_grad, problem.x0, iterations=config.iterations,
            max_evals=config.max_evals, term_names=problem.term_names,
            weights=problem.term_weights, callback=callback,
        )
    return Result(setup_seconds=problem.setup_seconds, config=config, **outcome)


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
        style: The style image, likewise.
        config: A `StyleConfig`; defaults to the book's settings.
        callback: Called with a `Progress` after every L-BFGS iteration.
        **settings: Fields of `StyleConfig` that override `config`'s.

    Returns:
        A `Result`; `result.image` is the best image seen, RGB uint8, at the content's size.

    Raises:
        ValueError: If a setting is invalid.
        OSError: If an image cannot be read.
        NonFiniteLossError: If the loss becomes NaN or infinite (with the best image so far).
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
