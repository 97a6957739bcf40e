"""Plan a run: read and check everything it needs before any model is built.

`plan(content, style, config=...)` takes what a front-end has (paths, URLs, arrays or PIL
images for the content, the styles, the masks; a `StyleConfig`) and returns one frozen
`Job`: the images as arrays, where each came from, every stage's size and budget, the
device, precision and hardware resolved once, and the memory estimate. Every check of a run
lives here, in this order, so that the cheap ones come first and nothing large is decoded
or resized before its size is known to fit:

1. the settings against each other and the inputs' count (blend weights, style scales,
   masks), the layers, the weights file, the device;
2. each image's size, read from its header only;
3. every stage's size against the smallest the layers need, and the budget per stage;
4. the final size's memory estimate against the memory there is (`NotEnoughMemory`);
5. then the images are decoded and resized, the masks opened once.

Bad input raises a `ValueError` whose message names the `StyleConfig` field or the input
(`Received: height=100000`); it never mentions a command-line flag: the command line turns
field names into option names in one place (`console.as_usage`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from nst_keras import features, images, runtime, tiling
from nst_keras.config import INITS, StyleConfig, tile_size
from nst_keras.errors import InputError, NotEnoughMemory

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Stage:
    """One size of a run (one stage, or one of the coarse-to-fine stages).

    Attributes:
        number: From 1.
        height, width: The generated image's size at this stage.
        max_evals: The evaluations it may spend.
        memory: Its estimated peak memory by part (`runtime.estimate_memory`), bytes;
            a tiled stage's with its tiles.
        tiles: How the stage is evaluated tile by tile (`tiling.Tiles`: count, core,
            halo), or None when untiled (see `stage_tiles`).
    """

    number: int
    height: int
    width: int
    max_evals: int
    memory: Dict[str, int] = dataclasses.field(repr=False)
    tiles: Optional[tiling.Tiles] = None


@dataclasses.dataclass(frozen=True)
class Job:
    """One planned run: everything `render.render` needs, checked.

    Attributes:
        config: The settings (with `height` resolved when it was chosen to fit).
        content: The content image at the final size, RGB uint8 (H, W, 3); None when
            planned without loading (`load=False`).
        styles: The style images at the final size's scale, RGB uint8.
        masks: One float32 (H, W) mask in [0, 1] per style at the content's size, or None.
        init: The starting image read from a path or URL at the content's size (RGB
            uint8), or None for a named start (`config.init`).
        blend: Each style's share of the style target, summing to 1.
        sources: Where each input came from: `content`, `styles`, `masks`, `init`
            (a path or URL, or a description such as "array (48x64)").
        stages: The sizes and budgets, smallest first; the last is the final size.
        placement: Device, precision and hardware, resolved once.
        memory: `need` (the final stage's estimate), `budget` and `fits` (the largest
            height that fits), in bytes and pixels.
        notes: Lines for the user: warnings from reading the images, how a height was
            chosen. A front-end shows them; the plan prints nothing.
        temporal: An `objective.Temporal` term added to the run's terms (a video frame's
            pull towards the previous frame's result), or None. The video front-end sets it
            per frame with `dataclasses.replace`; `plan` never does.
    """

    config: StyleConfig
    content: Optional[np.ndarray] = dataclasses.field(repr=False)
    styles: Tuple[np.ndarray, ...] = dataclasses.field(repr=False)
    masks: Optional[Tuple[np.ndarray, ...]] = dataclasses.field(repr=False)
    init: Optional[np.ndarray] = dataclasses.field(repr=False)
    blend: Tuple[float, ...]
    sources: Dict[str, object]
    stages: Tuple[Stage, ...]
    placement: runtime.Placement
    memory: Dict[str, int]
    notes: Tuple[str, ...] = ()
    temporal: Optional[object] = dataclasses.field(default=None, repr=False)

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the result."""
        return self.stages[-1].height, self.stages[-1].width


def plan(content, style, *, config: Optional[StyleConfig] = None, masks=None, init_image=None,
         fit_height: bool = False, load: bool = True, **settings) -> Job:
    """Reads and checks everything a run needs; returns the `Job`.

    Args:
        content: The content image: a path, an http(s) URL, an RGB array or a PIL image.
        style: A style image likewise, or a list of them.
        config: The settings; the book's by default.
        masks: None, or one mask per style (path, URL, array, PIL image; white where that
            style applies).
        init_image: The starting image's data (path, URL, bytes, array), read instead of
            the path `config.init` names (a batch worker gets the file's bytes); None reads
            `config.init` when it is a path. (Not `init`: that is the setting's name, which
            `**settings` passes on.)
        fit_height: Choose the height: the largest that fits in memory, at most the
            content's own (`--height auto`). `config.height` is then ignored.
        load: Decode and resize the images (False: sizes and memory only, for a dry run;
            then nothing is refused for memory, and `Job.memory` says whether it fits).
        **settings: Fields of `StyleConfig` that override `config`'s.

    Returns:
        A `Job`.

    Raises:
        ValueError: For a setting that does not fit the inputs (naming the field), an input
            that cannot be used (`InputError`, naming it), or a size that does not fit in
            memory (`NotEnoughMemory`, with a height that fits).
    """
    config = config or StyleConfig()
    if settings:
        config = config.replace(**settings)
    styles = as_list(style)
    if not styles:
        raise ValueError("at least one style image is needed. Received: style=[]")
    blend = tuple(blend_weights(config, len(styles)))
    style_heights(config, len(styles))  # Checks the count of style scales.
    mask_sources = None if masks is None else as_list(masks)
    check_mask_count(mask_sources, len(styles), config)
    check_network(config)
    where = runtime.placement(config)
    notes = []

    # 2. Sizes from the headers: nothing decoded yet.
    content_wh = _size_of("content image", content)
    style_whs = [_size_of(_style_label(i, len(styles)), s) for i, s in enumerate(styles)]
    budget = runtime.run_budget(config, where.device)
    if fit_height:
        config, note = _fitting_height(config, content_wh, where)
        notes.append(note)

    # 3. Every stage's size, and its budget.
    heights = stage_heights(config)
    budgets = stage_budgets(config.max_evals, len(heights))
    check_stage_sizes(config, heights, content_wh, style_whs)
    aspect = content_wh[0] / content_wh[1]
    stages = []
    for number, (h, evals) in enumerate(zip(heights, budgets), start=1):
        tiles, parts = stage_memory(config, h, _width(h, aspect), where.precision, budget)
        stages.append(Stage(number, h, _width(h, aspect), evals, parts, tiles))
    stages = tuple(stages)

    # 4. The final size is the largest: it decides the memory.
    memory = memory_plan(config, stages[-1], aspect, where)
    if load and memory["need"] > memory["budget"]:
        raise NotEnoughMemory(memory_message(stages[-1], memory, config), memory["fits"])
    sources = {"content": _described(content), "styles": [_described(s) for s in styles],
               "masks": None if mask_sources is None else [_described(m) for m in mask_sources],
               "init": config.init}
    if config.init not in INITS and init_image is None:
        _check_init_exists(config.init)
    if not load:
        return Job(config, None, (), None, None, blend, sources, stages, where, memory,
                   tuple(notes))

    # 5. Decode and resize, each input once.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        content_rgb = _read("content image", content, height=config.height)
        sizes = style_sizes(config, len(styles), content_rgb.shape[:2])
        style_rgbs = tuple(_read(_style_label(i, len(styles)), s, **size)
                           for i, (s, size) in enumerate(zip(styles, sizes)))
        loaded_masks = None if mask_sources is None else load_masks(
            mask_sources, content_rgb.shape[:2])
        start = None
        if config.init not in INITS:
            start = _read("init image", config.init if init_image is None else init_image,
                          size=(content_rgb.shape[1], content_rgb.shape[0]))
    notes += [f"warning: {str(w.message).splitlines()[0]}" for w in caught]
    return Job(config, content_rgb, style_rgbs, loaded_masks, start, blend, sources, stages,
               where, memory, tuple(dict.fromkeys(notes)))


def as_list(styles) -> list:
    """One source, or a list or tuple of them, as a list."""
    return list(styles) if isinstance(styles, (list, tuple)) else [styles]


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
            f"Received: style_blend_weights={_listed(weights)}"
        )
    return [w / sum(weights) for w in weights]


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
            f"Received: style_scale={_listed(scales)}"
        )
    scales = scales * count if len(scales) == 1 else scales
    return [max(1, round(s * config.height)) for s in scales]


def style_sizes(config: StyleConfig, count: int, content_hw) -> list:
    """How each of `count` style images is resized: `images.load_image` keyword arguments.

    `"stretch"` resizes to the content's size exactly (the book, keras-io); otherwise each
    keeps its aspect ratio at `style_scale` x the height, or `style_height`, or the height.
    """
    if config.style_resize == "stretch":
        return [{"size": (content_hw[1], content_hw[0])}] * count
    return [{"height": h} for h in style_heights(config, count)]


def check_mask_count(masks, styles: int, config: StyleConfig) -> None:
    """Masks, if any, are one per style and do not come with blend weights.

    Raises:
        ValueError: If the count differs from the styles', or blend weights are given too.
    """
    if masks is None:
        return
    if len(masks) != styles:
        raise ValueError(f"give one style mask per style ({styles}). "
                         f"Received: masks={len(masks)} mask(s)")
    if config.style_blend_weights is not None:
        raise ValueError("style masks and blend weights do not combine: each masked region "
                         "takes its own style at the full style weight. Received: "
                         f"style_blend_weights={_listed(config.style_blend_weights)}")


def check_network(config: StyleConfig) -> None:
    """The layers exist in the model, and a weights file exists.

    Raises:
        ValueError: Naming the field (`content_layers`, `style_layers`, `weights`).
    """
    for field in ("content_layers", "style_layers"):
        for name in getattr(config, field):
            try:
                features.resolve_layer_name(name, config.model)
            except ValueError as error:
                reason = str(error).split(" Received:")[0]
                raise ValueError(f"{reason} Received: {field}={name}") from None
    if config.weights not in ("imagenet", None) and not os.path.isfile(config.weights):
        raise ValueError("the weights file does not exist; pass imagenet, none or the path "
                         f"of a weights file. Received: weights={config.weights}")


def stage_heights(config: StyleConfig) -> list:
    """The heights of the coarse-to-fine stages, ending at `config.height`.

    `scales` alone: the height halves stage by stage (e.g. 3 stages to 800: 200, 400, 800).
    `start_height` alone: from it, doubling, as many stages as it takes to reach the height
    (the last step may be less than double). Both: `scales` sizes spaced geometrically
    from `start_height` to the height.
    """
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


def check_stage_sizes(config: StyleConfig, heights, content_wh, style_whs) -> None:
    """Every image is large enough for the layers used at the first (smallest) stage.

    Args:
        config: The settings.
        heights: The stages' heights (`stage_heights`).
        content_wh: (width, height) of the content image as read.
        style_whs: (width, height) of each style image as read.

    Raises:
        ValueError: Naming the image, its size at that stage, the size needed, and the
            settings that decide it.
    """
    smallest = features.minimum_size(config.content_layers + config.style_layers, config.model)
    shrink = heights[0] / config.height
    final_w = _width(config.height, content_wh[0] / content_wh[1])
    sides = [("content", min(heights[0], _width(heights[0], content_wh[0] / content_wh[1])))]
    if config.style_resize != "stretch":  # Stretched styles are as large as the content.
        for (w, h), style_h in zip(style_whs, style_heights(config, len(style_whs))):
            stage_h = max(1, round(style_h * shrink))
            sides.append(("style", min(stage_h, _width(stage_h, w / h))))
    for role, side in sides:
        if side >= smallest:
            continue
        if len(heights) > 1:
            decided = f"scales={config.scales}, start_height={config.start_height}"
            where = f" at the first stage ({heights[0]} pixels high)"
            hint = "use fewer scales or a larger start height"
        elif role == "style" and config.style_scale is not None:
            decided, where, hint = f"style_scale={_listed(config.style_scale)}", "", \
                "use a larger style scale"
        elif role == "style" and config.style_height is not None:
            decided, where, hint = f"style_height={config.style_height}", "", \
                "use a larger style height"
        else:
            decided, where, hint = f"height={config.height}", "", "use a larger height"
        raise ValueError(
            f"the {role} image would be {side} pixels on its shorter side{where}; the "
            f"layers used need at least {smallest}x{smallest} ({final_w}x{config.height} is "
            f"the result); {hint}. Received: {decided}")


#: Core sizes `tile="auto"` tries, in order, when the untiled estimate does not fit: the
#: default first (the fastest of those measured), smaller ones only when it does not fit.
AUTO_CORES = (tiling.DEFAULT_CORE, 256, 128)


def stage_tiles(config: StyleConfig, height: int, width: int, precision: str,
                budget: int) -> Optional[tiling.Tiles]:
    """How a stage of `height` x `width` is evaluated: None (untiled) or its `Tiles`.

    `tile="off"`: untiled; a size: tiles of that core; `"auto"`: untiled when the untiled
    estimate fits in `budget`, else the first of `AUTO_CORES` whose tiled estimate fits
    (the default core when none does: the refusal then names the optimizer's part).
    """
    if config.tile == "off":
        return None
    layers = config.content_layers + config.style_layers
    core = tile_size(config)
    if core is None:
        if runtime.estimate_memory(height, width, config, precision)["total"] <= budget:
            return None
        fitting = [c for c in AUTO_CORES if runtime.estimate_memory(
            height, width, config, precision, c)["total"] <= budget]
        core = fitting[0] if fitting else AUTO_CORES[0]
    return tiling.layout(height, width, layers, config.model, core)


def stage_memory(config: StyleConfig, height: int, width: int, precision: str,
                 budget: int) -> tuple:
    """(tiles or None, estimated peak by part) of a stage (see `stage_tiles`)."""
    tiles = stage_tiles(config, height, width, precision, budget)
    return tiles, runtime.estimate_memory(height, width, config, precision,
                                          tiles.core if tiles else None)


def fitting_height(config: StyleConfig, aspect: float, precision: str, budget: int) -> int:
    """The largest height that fits in `budget`, tiled as `config.tile` allows."""
    untiled = runtime.largest_height(config, aspect, precision, budget)
    if config.tile == "off":
        return untiled
    if tile_size(config) is not None:
        return runtime.largest_height(config, aspect, precision, budget, tile_size(config))
    return max([untiled] + [runtime.largest_height(config, aspect, precision, budget, c)
                            for c in AUTO_CORES])


def memory_plan(config: StyleConfig, final: Stage, aspect: float, where) -> Dict[str, int]:
    """The final size's estimated need, the budget and the largest height that fits.

    On a GPU TensorFlow raises `ResourceExhaustedError` cleanly, so nothing is refused
    there (`need` is 0); on a CPU an allocation that fails can crash the process, or the
    kernel can kill it without a word, so the size is checked first. The budget is the
    machine's, or `config.max_memory` when lower; the largest height is tiled as
    `config.tile` allows.
    """
    budget = runtime.run_budget(config, where.device)
    need = final.memory["total"] if where.device == "cpu" else 0
    fits = fitting_height(config, aspect, where.precision, budget)
    return {"need": need, "budget": budget, "fits": fits}


def memory_message(final: Stage, memory: Dict[str, int], config: StyleConfig) -> str:
    """The one line that refuses a size: what it needs, what there is, what would fit.

    The reason and the suggestion of `memory_verdict`, and the setting received.
    """
    reason, suggestion = memory_verdict(final, memory, config)
    return f"out of memory: {reason}; {suggestion} Received: height={config.height}"


def memory_verdict(final: Stage, memory: Dict[str, int], config: StyleConfig) -> tuple:
    """(reason, suggestion): why the final stage does not fit, and what would.

    When even tiles do not fit, the parts tiling does not shrink are the problem; when the
    optimizer's is the largest of them, the suggestion says so and names the settings that
    shrink it (`optimizer`, `lbfgs_memory`). The words are the library's (field names); a
    front-end turns them into its own (`console.as_usage`).
    """
    parts = final.memory
    tiled = f" even in {final.tiles.describe()}" if final.tiles is not None else ""
    reason = (f"{final.width}x{final.height} needs about {memory['need'] / GIB:.1f} GiB{tiled} "
              f"and about {max(0, memory['budget']) / GIB:.1f} GiB is available")
    advice = ""
    largest = max((k for k in parts if k != "total"), key=parts.get)
    if final.tiles is not None and largest == "optimizer" and config.optimizer == "lbfgs":
        advice = (f"L-BFGS-B's history ((2m+9) float64 per pixel value, m={config.lbfgs_memory})"
                  f" dominates it with {parts['optimizer'] / GIB:.1f} GiB: use optimizer=adam "
                  f"or a smaller `lbfgs_memory` (e.g. lbfgs_memory={max(1, config.lbfgs_memory // 3)}),"
                  " or ")
    elif final.tiles is not None and largest == "optimizer":
        advice = f"its optimizer's state takes {parts['optimizer'] / GIB:.1f} GiB; "
    return reason, f"{advice}try height={max(1, memory['fits'])} or less."


def load_masks(masks, content_hw) -> Tuple[np.ndarray, ...]:
    """The style masks as float32 (H, W) arrays in [0, 1] at the content's size.

    Each mask is opened once: its size is checked against the content's aspect ratio, then
    it is resized.

    Raises:
        InputError: If a mask cannot be read, its aspect ratio differs from the content's,
            or every mask is black.
    """
    loaded = []
    for number, source in enumerate(masks, start=1):
        label = f"style mask {number}"
        try:
            opened = source if isinstance(source, np.ndarray) else images.open_image(source)
        except Exception as error:  # Pillow raises many kinds; each means "cannot read".
            raise InputError(f"cannot read the {label} {_described(source)}: "
                             f"{_reason(error)}", label) from None
        wh = (opened.shape[1], opened.shape[0]) if isinstance(opened, np.ndarray) else opened.size
        problem = mask_size_problem(wh, (content_hw[1], content_hw[0]))
        if problem:
            raise InputError(f"the {label} {problem}. Received: masks[{number - 1}]="
                             f"{_described(source)}", label)
        try:
            loaded.append(images.load_mask(opened, (content_hw[1], content_hw[0])))
        except ValueError as error:
            raise InputError(f"the {label} cannot be used: {_reason(error)}", label) from None
    if not any(m.max() > 0 for m in loaded):
        raise InputError("every style mask is black, so no style would apply anywhere. "
                         f"Received: masks={len(loaded)} black mask(s)", "masks")
    return tuple(loaded)


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


def _fitting_height(config: StyleConfig, content_wh, where) -> tuple:
    """The config with the largest height that fits (at most the content's own), and a note.

    Raises:
        NotEnoughMemory: If not even the smallest size the layers need fits.
    """
    width, height = content_wh
    budget = runtime.run_budget(config, where.device)
    fits = fitting_height(config, width / height, where.precision, budget)
    smallest = features.minimum_size(config.content_layers + config.style_layers, config.model)
    if fits < smallest:
        need = runtime.estimate_memory(smallest, smallest, config, where.precision)["total"]
        raise NotEnoughMemory(
            f"not even the smallest size fits in memory: {smallest} pixels high needs about "
            f"{need / GIB:.1f} GiB and about {budget / GIB:.1f} GiB is available. "
            "Received: height=auto", fits)
    chosen = min(fits, height)
    note = (f"height=auto: {chosen} (the largest that fits in {budget / GIB:.1f} GiB is "
            f"{fits}; the content is {height} pixels high)")
    start = config.start_height
    if start is not None and start >= chosen:
        note += f"; start height {start} is not below it: one stage only"
    return config.replace(height=chosen, start_height=None if start is None
                          else min(start, chosen)), note


def _width(height: int, aspect: float) -> int:
    """The width at `height` for an aspect ratio, as `images.resize_to_height` rounds it."""
    return max(1, round(height * aspect))


def _style_label(index: int, count: int) -> str:
    return "style image" if count == 1 else f"style image {index + 1}"


def _described(source) -> str:
    """A source as a record and a message show it: the path or URL, or what it is."""
    if isinstance(source, np.ndarray):
        return f"array ({source.shape[1]}x{source.shape[0]})"
    if isinstance(source, (bytes, bytearray)):
        return f"image data ({len(source)} bytes)"
    if hasattr(source, "size") and hasattr(source, "mode"):  # A PIL image.
        return f"PIL image ({source.size[0]}x{source.size[1]})"
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else repr(source)


def _reason(error: BaseException) -> str:
    """An exception's first line, or its type's name."""
    text = str(error).splitlines()[0] if str(error) else ""
    # Pillow names an in-memory file by its object (`<_io.BytesIO object at 0x7f...>`),
    # which says nothing to the user of an upload or a batch worker.
    text = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", text)
    return text or type(error).__name__


def _missing(source) -> bool:
    return (isinstance(source, (str, os.PathLike)) and not images.is_url(source)
            and not os.path.exists(source))


def _size_of(label: str, source) -> tuple:
    """(width, height) of an input from its header.

    Raises:
        InputError: If it does not exist or cannot be read as an image.
    """
    if _missing(source):
        raise InputError(f"the {label} does not exist: {_described(source)}", label)
    try:
        return images.image_size(source)
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        raise InputError(f"cannot read the {label} {_described(source)}: {_reason(error)}",
                         label) from None


def _check_init_exists(init: str) -> None:
    if _missing(init):
        raise InputError(f"the init image does not exist; use {', '.join(INITS)} or an "
                         f"image's path. Received: init={init}", "init")


def _read(label: str, source, **resize) -> np.ndarray:
    """`images.load_image`, every failure an `InputError` naming the input."""
    if _missing(source):
        raise InputError(f"the {label} does not exist: {_described(source)}", label)
    try:
        return images.load_image(source, **resize)
    except MemoryError:
        raise NotEnoughMemory(f"out of memory while reading the {label} "
                              f"{_described(source)}") from None
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        raise InputError(f"cannot read the {label} {_described(source)}: {_reason(error)}",
                         label) from None


def _listed(values: Sequence) -> str:
    """Numbers as a user typed them: `0.7 0.3`, not `(0.7, 0.3)`."""
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
