"""The Python API: `transfer_style` and `stylize`, a plan and a render in one call.

`transfer_style(content, style, ...)` is `render.render(plan.plan(content, style, ...))`:
the plan reads and checks everything first (`nst_keras.plan`), the render runs the stages
(`nst_keras.render`). The building blocks the notebooks use (`build_problem`, `solve`,
`Result`, `Problem`, `initial_image`, `color_inputs`) are re-exported here, where earlier
releases had them.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

import numpy as np

from nst_keras.config import StyleConfig
from nst_keras.plan import (  # noqa: F401  (re-exported)
    as_list,
    blend_weights,
    plan,
    stage_budgets,
    stage_heights,
    style_heights,
    style_sizes,
)
from nst_keras.render import (  # noqa: F401  (re-exported)
    Problem,
    Result,
    build_problem,
    color_inputs,
    finish_color,
    initial_image,
    load_model,
    render,
    solve,
    stage_images,
)
from nst_keras.engine.solvers import Progress


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
        ValueError: If a setting is invalid, an input cannot be used (`errors.InputError`,
            also for an image that cannot be read or downloaded), or the size does not fit
            in memory (`errors.NotEnoughMemory`); nothing has been computed then.
        OSError: If the weights cannot be read or downloaded.
        NonFiniteLossError: If the loss becomes NaN or infinite (with the best image so far).
        DivergedError: If Adam's or SGD's loss diverged (with the best image so far).
        OutOfMemoryError: If the run ran out of memory (with the best image so far).
        Interrupted: On Ctrl-C (with the best image so far).
    """
    job = plan(content, style, config=config, masks=masks, **settings)
    return render(job, callback)


def stylize(content, style, *, config=None, callback=None, masks=None, **settings) -> np.ndarray:
    """Renders `content` in the style of `style`; returns the image as RGB uint8 (H, W, 3).

    The same as `transfer_style(...).image`; see there for the arguments.

    Example:

    >>> from nst_keras import stylize
    >>> image = stylize("tubingen.jpg", "starry_night.jpg", height=256, max_evals=100)
    """
    return transfer_style(content, style, config=config, callback=callback, masks=masks,
                          **settings).image


def train_network(style, photos, *, config=None, callback=None, stop=None, **settings):
    """Trains a feed-forward network for one style (Johnson et al. 2016); see `nst-keras
    train` for the command, which adds previews, a record and exact resume.

    Args:
        style: The style image: a path, URL, RGB array or PIL image.
        photos: The photos to train on: paths or RGB arrays (each at least `size` pixels
            on its shorter side; smaller ones are left out).
        config: A `training.TrainConfig`; its `style` holds the loss's settings (the
            book's by default).
        callback: Called with each step's `training.StepValues`.
        stop: A `control.StopToken`, checked before each step.
        **settings: Fields of `TrainConfig` (`steps`, `size`, `batch_size`, `width`,
            `zoom`, `learning_rate`) or of `StyleConfig` (the loss's, the network's) that override
            `config`'s.

    Returns:
        The trained `transformer.StyleNetwork` (save it with `.save("x.keras")`; its
        `record` holds the steps and the style's name).

    Raises:
        ValueError: For a setting that is invalid, or no photo large enough.
    """
    import dataclasses

    from nst_keras.engine import objective, runtime, training, transformer
    from nst_keras.media.images import load_image

    config = config or training.TrainConfig(style=StyleConfig())
    train_fields = {f.name for f in dataclasses.fields(training.TrainConfig)} - {"style"}
    own = {k: v for k, v in settings.items() if k in train_fields}
    loss = {k: v for k, v in settings.items() if k not in train_fields}
    config = dataclasses.replace(config, style=config.style.replace(**loss) if loss
                                 else config.style, **own)
    kept = [training.prepare_photo(load_image(p), config.size, config.zoom) for p in photos]
    kept = [p for p in kept if p is not None]
    if not kept:
        raise ValueError(f"no photo is at least {config.size} pixels on its shorter side. "
                         f"Received: photos={len(photos)} photos")
    style_rgb = load_image(style)
    loss_config = config.loss_config
    where = runtime.placement(loss_config)
    model = runtime.MODELS.for_config(
        loss_config, objective.term_layers(objective.make_terms(loss_config)), where)
    seed = (int(np.random.SeedSequence().entropy % 2**31) if config.style.seed is None
            else config.style.seed)
    network = transformer.build_transformer(config.width, seed=seed)
    from nst_keras.plan import training_style_height

    style_seen = training.style_at(style_rgb, config, training_style_height(config))
    trainer = training.Trainer(config, model, style_seen, network, seed=seed)
    began = time.perf_counter()
    training.run_training(trainer, kept, config.steps, on_step=callback, stop=stop)
    from nst_keras.keys import input_digest

    from nst_keras import record as record_lib

    network.record = record_lib.network_record(
        config, trainer, style_rgb, style_name=style if isinstance(style, str) else "array",
        style_sha256=input_digest(style), photos=len(kept), precision=where.precision,
        hardware=where.hardware, seconds=time.perf_counter() - began)
    return network


def stylize_with(network, content, *, height: Optional[int] = None,
                 preserve_color: Optional[str] = None, precision: str = "auto") -> np.ndarray:
    """One photo through a trained network (a `StyleNetwork` or its `.keras` file's path):
    RGB uint8 at the photo's size (or `height`, aspect kept). The command line's
    `--network`, as a function.

    Raises:
        ValueError: For a file that is not a network, or a colour mode that cannot apply.
    """
    from nst_keras.plan import check_network_color, plan_network
    from nst_keras.render import finish_color, render_network

    config = StyleConfig(preserve_color=preserve_color, precision=precision,
                         **({} if height is None else {"height": height}))
    if isinstance(network, (str, bytes)) or hasattr(network, "__fspath__"):
        return render_network(plan_network(content, network, config=config,
                                           fit_height=height is None)).image
    # A network in memory (just trained): its pass without a plan (no file to read).
    from nst_keras.engine import runtime, transformer
    from nst_keras.media.images import load_image, to_uint8

    check_network_color(config)
    rgb = load_image(content, height)
    where = runtime.placement(config)
    out = np.clip(transformer.stylize(network, rgb, precision=where.precision), 0, 255)
    return to_uint8(finish_color(out, rgb, preserve_color, as_float=True))

