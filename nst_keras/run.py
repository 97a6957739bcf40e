"""The Python API: `transfer_style` and `stylize`, a plan and a render in one call.

`transfer_style(content, style, ...)` is `render.render(plan.plan(content, style, ...))`:
the plan reads and checks everything first (`nst_keras.plan`), the render runs the stages
(`nst_keras.render`). The building blocks the notebooks use (`build_problem`, `solve`,
`Result`, `Problem`, `initial_image`, `color_inputs`) are re-exported here, where earlier
releases had them.
"""

from __future__ import annotations

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
