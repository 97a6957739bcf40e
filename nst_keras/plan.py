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
4. the final size's memory estimate against the memory there is (`NotEnoughMemory`): the
   generated image and its evaluation, tiled or not, each style image at its own network
   size with its targets, a video frame's temporal part; then what the masks and the init
   image take to decode, reduced towards the run's size;
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

from nst_keras import keys
from nst_keras.engine import features, normalize, runtime, tiling
from nst_keras.media import images
from nst_keras.config import INITS, StyleConfig, tile_size
from nst_keras.errors import InputError, NotEnoughMemory, first_line

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
        styles: (height, width) of each style image as the network sees it at this stage
            (`stage_styles`).
    """

    number: int
    height: int
    width: int
    max_evals: int
    memory: Dict[str, int] = dataclasses.field(repr=False)
    tiles: Optional[tiling.Tiles] = None
    styles: Tuple[Tuple[int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class Job:
    """One planned run: everything `render.render` needs, checked.

    Attributes:
        config: The settings (with `height` resolved when it was chosen to fit).
        content: The content image at the final size, RGB uint8 (H, W, 3), in sRGB (an
            ICC-tagged input converted); float32 in 0-255 when the input is 16-bit (or a
            float array), so that its depth is kept (`images.load_image(keep_depth=True)`);
            None when planned without loading (`load=False`).
        styles: The style images at the final size's scale, RGB uint8 (float32 likewise).
        masks: One float32 (H, W) mask in [0, 1] per style at the content's size, or None.
        init: The starting image read from a path or URL at the content's size (RGB
            uint8), or None for a named start (`config.init`).
        blend: Each style's share of the style target, summing to 1.
        sources: Where each input came from: `content`, `styles`, `masks`, `init`
            (a path or URL, or a description such as "array (48x64)").
        stages: The sizes and budgets, smallest first; the last is the final size.
        placement: Device, precision and hardware, resolved once.
        memory: `need` (the final stage's estimate), `budget` and `fits` (the largest
            height that fits), in bytes and pixels; `style` and `instead` (what would fit
            when it does not, see `memory_plan`); `decode` (why a mask or the init image
            cannot be decoded, or None; see `decode_problem`).
        notes: Lines for the user: warnings from reading the images, how a height was
            chosen. A front-end shows them; the plan prints nothing.
        temporal: An `objective.Temporal` term added to the run's terms (a video frame's
            pull towards the previous frame's result), or None. The video front-end sets it
            per frame with `dataclasses.replace`; `plan` never does.
        key: The job key (`keys.job_key`): the settings and the inputs' bytes, hashed. Every
            record carries it; a result on disk with the same key is this job's.
        resume_key: The key of its checkpoints: the same less the budget
            (`keys.BUDGET_SETTINGS`: more evaluations continue a stopped run), plus the
            resolved device and precision (`auto` differs between machines).
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
    memory: Dict[str, object]
    notes: Tuple[str, ...] = ()
    temporal: Optional[object] = dataclasses.field(default=None, repr=False)
    key: str = ""
    resume_key: str = ""

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the result."""
        return self.stages[-1].height, self.stages[-1].width


def plan(content, style, *, config: Optional[StyleConfig] = None, masks=None, init_image=None,
         fit_height: bool = False, load: bool = True, temporal: bool = False,
         **settings) -> Job:
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
        temporal: Plan a video's frames: the previous frame and the temporal term are in
            the estimate (a frame that fits only tiled is tiled: the tiled objective carries
            the temporal term, a per-pixel sum).
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
    check_style_loss(config, blend)
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
        config, note = _fitting_height(config, content_wh, style_whs, where, temporal)
        notes.append(note)
    # The style loss's own weight and layers where none were given, at the run's height:
    # the job, its key and its record hold the values the run uses.
    config = config.resolved()

    # 3. Every stage's size, and its budget.
    heights = stage_heights(config)
    budgets = stage_budgets(config.max_evals, len(heights))
    check_stage_sizes(config, heights, content_wh, style_whs)
    aspect = content_wh[0] / content_wh[1]
    stages = []
    for number, (h, evals) in enumerate(zip(heights, budgets), start=1):
        seen = tuple(stage_styles(config, style_whs, h, _width(h, aspect)))
        tiles, parts = stage_memory(config, h, _width(h, aspect), where.precision, budget,
                                    styles=seen, temporal=temporal)
        stages.append(Stage(number, h, _width(h, aspect), evals, parts, tiles, seen))
    stages = tuple(stages)
    check_untiled_settings(config, stages)

    # 4. The final size is the largest: it decides the memory; then what the masks and the
    # init image take to decode (before the model: nothing else is in memory then).
    memory = memory_plan(config, stages[-1], aspect, where, style_whs, temporal)
    if load and memory["need"] > memory["budget"]:
        raise NotEnoughMemory(memory_message(stages[-1], memory, config), memory["fits"])
    init_source = init_image if init_image is not None else (
        None if config.init in INITS else config.init)
    # Decoding is in the host's memory, on a GPU too.
    memory["decode"] = decode_problem(mask_sources, init_source, stages[-1],
                                      memory["budget"] if where.device == "cpu"
                                      else runtime.run_budget(config, "cpu"))
    if load and memory["decode"]:
        raise NotEnoughMemory(memory["decode"])
    sources = {"content": _described(content), "styles": [_described(s) for s in styles],
               "masks": None if mask_sources is None else [_described(m) for m in mask_sources],
               "init": config.init}
    if config.init not in INITS and init_image is None:
        _check_init_exists(config.init)
    digest = keys.Digests()  # Each input read once for both keys.
    key = keys.job_key(config, content, styles, mask_sources, init_image, digest=digest)
    resume_key = keys.job_key(config, content, styles, mask_sources, init_image,
                              extra={"device": where.device, "precision": where.precision},
                              ignore=keys.BUDGET_SETTINGS, digest=digest)
    if not load:
        return Job(config, None, (), None, None, blend, sources, stages, where, memory,
                   tuple(notes), key=key, resume_key=resume_key)

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
                          size=(content_rgb.shape[1], content_rgb.shape[0]), reduced=True)
    notes += [f"warning: {first_line(w.message)}" for w in caught]
    return Job(config, content_rgb, style_rgbs, loaded_masks, start, blend, sources, stages,
               where, memory, tuple(dict.fromkeys(notes)), key=key, resume_key=resume_key)


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


def check_style_loss(config: StyleConfig, blend) -> None:
    """Refuses blend weights the MRF loss cannot honour.

    Raises:
        ValueError: For unequal `style_blend_weights` with `style_loss="mrf"`: its target
            is the styles' patches pooled, and each generated patch matches one of them,
            so there is nothing to weigh.
    """
    if config.style_loss == "mrf" and len(set(round(b, 12) for b in blend)) > 1:
        raise ValueError(
            "the MRF style loss matches each patch to one style patch from all the styles "
            "pooled, so it cannot weigh the styles; use equal weights or style masks. "
            f"Received: style_blend_weights={_listed(config.style_blend_weights)}")


def style_heights(config: StyleConfig, count: int, height: Optional[int] = None) -> list:
    """The height each of `count` style images is resized to (`"aspect"` resizing), for a
    final height of `height` (`config.height` when None).

    Raises:
        ValueError: If `style_scale` has neither one value nor one per style.
    """
    height = config.height if height is None else height
    if config.style_scale is None:
        return [config.style_height or height] * count
    scales = config.style_scale
    if len(scales) not in (1, count):
        raise ValueError(
            f"`style_scale` needs one value or one per style ({count}). "
            f"Received: style_scale={_listed(scales)}"
        )
    scales = scales * count if len(scales) == 1 else scales
    return [max(1, round(s * height)) for s in scales]


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
    """The layers exist in the model, and a weights file exists and fits the model.

    Raises:
        ValueError: Naming the field (`content_layers`, `style_layers`, `weights`).
    """
    config = config.resolved()
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
    if config.weights not in ("imagenet", None):
        # A file of the other VGG loads only partly; its kernels say which network it is for.
        # A normalised model has its base VGG's kernels (its file, or the base weights whose
        # normalisation is cached): what counts is the architecture.
        other = features.weights_file_model(config.weights)
        arch = features.architecture(config.model)
        if other is not None and other != arch:
            fits = other + config.model[len(arch):]  # vgg16 -> vgg16-normalized alike.
            raise ValueError(f"the weights file is for {other}, not {config.model}; use "
                             f"model={fits}. Received: weights={config.weights}")
    if config.model in normalize.NORMALIZED:  # Computed beforehand, or refused here.
        normalize.resolve(config.model, config.weights, config.seed)


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
    config = config.resolved()
    smallest = features.minimum_size(config.content_layers + config.style_layers, config.model)
    if config.style_loss == "mrf":  # At least one 3 x 3 patch at every MRF layer.
        smallest = max([smallest] + [3 * 2 ** features.layer_pools(n, config.model)
                                     for n in config.style_layers])
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


def stage_styles(config: StyleConfig, style_whs, height: int, width: int,
                 final_height: Optional[int] = None) -> list:
    """(height, width) of each style image as the network sees it at a stage of `height` x
    `width` (`render.stage_images`): stretched to the stage's size, or at its own final
    size (`style_heights`, aspect kept) scaled by the stage's height over the final one.

    Args:
        config: The settings.
        style_whs: (width, height) of each style image as read from its header.
        height, width: The stage's size.
        final_height: The run's final height (`config.height` when None).
    """
    if config.style_resize == "stretch":
        return [(height, width)] * len(style_whs)
    final_height = config.height if final_height is None else final_height
    factor = height / final_height
    sizes = []
    for (w, h), final_h in zip(style_whs, style_heights(config, len(style_whs), final_height)):
        stage_h = max(1, round(final_h * factor)) if factor != 1 else final_h
        sizes.append((stage_h, _width(stage_h, w / h)))
    return sizes


def _styles_at(config: StyleConfig, style_whs, aspect: float):
    """The function of a final height giving the styles' network sizes there (for
    `runtime.largest_height`), or None without styles."""
    if not style_whs:
        return None
    return lambda h: stage_styles(config, style_whs, h, _width(h, aspect), final_height=h)


def stage_tiles(config: StyleConfig, height: int, width: int, precision: str,
                budget: int, *, styles=(), temporal: bool = False) -> Optional[tiling.Tiles]:
    """How a stage of `height` x `width` is evaluated: None (untiled) or its `Tiles`.

    `tile="off"`: untiled; a size: tiles of that core; `"auto"`: untiled when the untiled
    estimate (`styles`' targets and a video frame's `temporal` part included) fits in
    `budget`, else the first of `AUTO_CORES` whose tiled estimate fits (the default core
    when none does: the refusal then names the part that does not shrink).
    """
    if config.tile == "off":
        return None
    config = config.resolved()
    layers = config.content_layers + config.style_layers
    core = tile_size(config)
    if config.histogram_weight > 0:  # Never tiled (`tiling.check_tileable`).
        if core is not None:
            raise ValueError(
                "the histogram loss sorts each layer's values over the whole image, so it "
                "cannot be tiled; use tile=off or auto, or histogram_weight=0. "
                f"Received: tile={config.tile}, histogram_weight={config.histogram_weight:g}")
        return None
    if core is None:
        if runtime.estimate_memory(height, width, config, precision, styles=styles,
                                   temporal=temporal)["total"] <= budget:
            return None
        fitting = [c for c in AUTO_CORES if runtime.estimate_memory(
            height, width, config, precision, c, styles=styles,
            temporal=temporal)["total"] <= budget]
        core = fitting[0] if fitting else AUTO_CORES[0]
    return tiling.layout(height, width, layers, config.model, core,
                         patch_layers=tiling.config_patch_layers(config))


def check_untiled_settings(config: StyleConfig, stages) -> None:
    """Refuses the settings that a tiled stage cannot evaluate exactly.

    `normalize_gradients` divides each layer's gradient by its L1 norm over the whole
    layer, which a tile sees only part of (it would need a third pass for the norms).

    Raises:
        ValueError: If one of them is set and a stage is tiled.
    """
    tiled = [s for s in stages if s.tiles is not None]
    if config.normalize_gradients and tiled:
        first = tiled[0]
        raise ValueError(
            "`normalize_gradients` needs each layer's gradient over the whole image, and "
            f"stage {first.number} ({first.width}x{first.height}) would be tiled "
            f"({first.tiles.describe()}); use tile=off with a smaller height, or no "
            f"normalize_gradients. Received: normalize_gradients=True, tile={config.tile}")


def stage_memory(config: StyleConfig, height: int, width: int, precision: str,
                 budget: int, *, styles=(), temporal: bool = False) -> tuple:
    """(tiles or None, estimated peak by part) of a stage (see `stage_tiles`)."""
    tiles = stage_tiles(config, height, width, precision, budget, styles=styles,
                        temporal=temporal)
    return tiles, runtime.estimate_memory(height, width, config, precision,
                                          tiles.core if tiles else None, styles=styles,
                                          temporal=temporal)


def fitting_height(config: StyleConfig, aspect: float, precision: str, budget: int,
                   style_whs=(), temporal: bool = False) -> int:
    """The largest height that fits in `budget`, tiled as `config.tile` allows, the style
    images (`style_whs`: their (width, height) as read) at their sizes there."""
    styles = _styles_at(config, style_whs, aspect)
    untiled = runtime.largest_height(config, aspect, precision, budget, styles=styles,
                                     temporal=temporal)
    if config.tile == "off":
        return untiled
    if tile_size(config) is not None:
        return runtime.largest_height(config, aspect, precision, budget, tile_size(config),
                                      styles=styles, temporal=temporal)
    return max([untiled] + [runtime.largest_height(config, aspect, precision, budget, c,
                                                   styles=styles, temporal=temporal)
                            for c in AUTO_CORES])


def memory_plan(config: StyleConfig, final: Stage, aspect: float, where, style_whs=(),
                temporal: bool = False) -> Dict[str, object]:
    """The final size's estimated need, the budget, the largest height that fits and, when
    the style images' targets are what does not fit, the style setting that would.

    On a GPU TensorFlow raises `ResourceExhaustedError` cleanly, so nothing is refused
    there (`need` is 0; see docs/guides/tiling-memory.md); on a CPU an allocation that fails
    can crash the process, or the kernel can kill it without a word, so the size is checked first. The
    budget is the machine's, or `config.max_memory` when lower; the largest height is tiled
    as `config.tile` allows.

    Returns:
        `need`, `budget`, `fits` (bytes, bytes, pixels), `style` (None, or a dict:
        `label`, `size` (w, h) of the largest style at its network size, `setting` that
        would fit, e.g. "style_scale=1.5") and `instead` (when an L-BFGS run does not fit:
        "optimizer=adam" and a third of `lbfgs_memory`, at least 3 -> the largest height
        each reaches in the same budget), `style_whs`, `temporal` and `aspect` (what it was
        planned with: the content's width / height, not a rounded stage's). `plan` adds
        `decode` (`decode_problem`).
    """
    budget = runtime.run_budget(config, where.device)
    need = final.memory["total"] if where.device == "cpu" else 0
    fits = fitting_height(config, aspect, where.precision, budget, style_whs, temporal)
    memory = {"need": need, "budget": budget, "fits": fits, "style": None, "instead": {},
              "style_whs": tuple(style_whs), "temporal": temporal, "aspect": aspect}
    if need > budget and final.memory["styles"] > 0 and \
            need - final.memory["styles"] <= budget:
        memory["style"] = _style_fix(config, final, style_whs, where.precision, budget,
                                     temporal)
    elif need > budget and config.optimizer == "lbfgs":
        # Measured on the same estimate, not guessed: how large the other choices reach.
        # A third of the pairs, but not below 3 (m = 3 ended about 1 % above m = 5 or
        # 10 at 200 evaluations; fewer were not measured), and only when that is fewer.
        fewer = max(3, config.lbfgs_memory // 3)
        for setting, value in (("optimizer", "adam"),) + (
                (("lbfgs_memory", fewer),) if fewer < config.lbfgs_memory else ()):
            memory["instead"][f"{setting}={value}"] = fitting_height(
                config.replace(**{setting: value}), aspect, where.precision, budget,
                style_whs, temporal)
    return memory


def _style_fix(config: StyleConfig, final: Stage, style_whs, precision: str, budget: int,
               temporal: bool) -> dict:
    """The largest style (at the final stage) and the style setting whose targets fit: the
    largest value, in steps of 0.01 (`style_scale`) or 1 pixel (`style_height`), whose
    estimate fits."""
    sizes = stage_styles(config, style_whs, final.height, final.width)
    largest = max(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
    tile = final.tiles.core if final.tiles is not None else None

    def setting_at(k):
        if config.style_scale is not None:
            return {"style_scale": tuple(math.floor(s * k * 100) / 100
                                         for s in config.style_scale)}
        return {"style_height": max(1, int((config.style_height or config.height) * k))}

    def fits(k):
        changed = setting_at(k)
        if min(changed.get("style_scale", (1,))) <= 0:
            return True  # Nothing smaller to suggest.
        trial = dataclasses.replace(config, **changed)
        return runtime.estimate_memory(
            final.height, final.width, config, precision, tile, temporal=temporal,
            styles=stage_styles(trial, style_whs, final.height, final.width))["total"] <= budget

    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    changed = setting_at(low)
    value = changed.get("style_scale") or changed.get("style_height")
    setting = (f"style_scale={_listed(value)}" if "style_scale" in changed
               else f"style_height={value}")
    return {"label": _style_label(largest, len(sizes)),
            "size": (sizes[largest][1], sizes[largest][0]), "setting": setting}


def memory_message(final: Stage, memory: Dict[str, object], config: StyleConfig) -> str:
    """The one line that refuses a size: what it needs, what there is, what would fit.

    The reason and the suggestion of `memory_verdict`, and the setting received: the
    style's setting when the style images' targets are what does not fit, else the height.
    """
    reason, suggestion = memory_verdict(final, memory, config)
    received = f"height={config.height}"
    if memory.get("style"):
        received = (f"style_scale={_listed(config.style_scale)}" if config.style_scale
                    is not None else f"style_height={config.style_height or config.height}")
    return f"out of memory: {reason}; {suggestion} Received: {received}"


def memory_verdict(final: Stage, memory: Dict[str, object], config: StyleConfig) -> tuple:
    """(reason, suggestion): why the final stage does not fit, and what would.

    When the style images' targets are what does not fit (`memory["style"]`), the
    suggestion is the style setting that would. For an L-BFGS run the suggestion gives the
    largest height Adam and a third of the history reach in the same budget
    (`memory["instead"]`), and the reason says when L-BFGS-B's history and work arrays are
    the largest part (at print sizes, tiled). The words are the library's (field names); a front-end turns them into
    its own (`console.as_usage`).
    """
    parts = final.memory
    tiled = f" even in {final.tiles.describe()}" if final.tiles is not None else ""
    available = f"about {max(0, memory['budget']) / GIB:.1f} GiB is available"
    style = memory.get("style")
    if style:
        width, height = style["size"]
        how = "tile by tile" if final.tiles is not None else "in one pass"
        return (f"the {style['label']} is {width}x{height} as the network sees it and its "
                f"targets ({how}) bring the run to about {memory['need'] / GIB:.1f} GiB "
                f"({(memory['need'] - parts['styles']) / GIB:.1f} GiB without them), and "
                f"{available}", f"try {style['setting']} or less.")
    reason = (f"{final.width}x{final.height} needs about {memory['need'] / GIB:.1f} GiB{tiled} "
              f"and {available}")
    advice = ""
    state = parts.get("history", 0) + parts["optimizer"]
    others = [v for k, v in parts.items() if k not in ("total", "history", "optimizer")]
    instead = memory.get("instead") or {}
    reached = ", ".join(f"{setting} fits up to height={height}"
                        for setting, height in instead.items())
    if instead and state > max(others):
        reason += (f"; L-BFGS-B's history (2m float64 per pixel value, m={config.lbfgs_memory},"
                   f" {parts['history'] / GIB:.1f} GiB) and work arrays "
                   f"({parts['optimizer'] / GIB:.1f} GiB) are the largest part")
        advice = f"{reached}; or "
    elif instead:
        advice = f"{reached}; or "
    elif final.tiles is not None and state > max(others):
        advice = f"its optimizer's state takes {state / GIB:.1f} GiB; "
    return reason, f"{advice}try height={max(1, memory['fits'])} or less."


def load_masks(masks, content_hw) -> Tuple[np.ndarray, ...]:
    """The style masks as float32 (H, W) arrays in [0, 1] at the content's size.

    Each mask's size is read from its header and checked against the content's aspect
    ratio; then it is decoded reduced towards the content's size (`images.open_image`'s
    `reduce_to`: a full-resolution mask on a downsized run is normal use) and resized.

    Raises:
        InputError: If a mask cannot be read, its aspect ratio differs from the content's,
            or every mask is black.
    """
    loaded = []
    for number, source in enumerate(masks, start=1):
        label = f"style mask {number}"
        try:
            wh = images.image_size(source)
        except Exception as error:  # Pillow raises many kinds; each means "cannot read".
            raise _unreadable(label, source, error) from None
        problem = mask_size_problem(wh, (content_hw[1], content_hw[0]))
        if problem:
            raise InputError(f"the {label} {problem}. Received: masks[{number - 1}]="
                             f"{_described(source)}", label)
        try:
            loaded.append(images.load_mask(source, (content_hw[1], content_hw[0]),
                                           reduced=True))
        except MemoryError:
            raise NotEnoughMemory(f"out of memory while reading the {label} "
                                  f"{_described(source)}") from None
        except ValueError as error:
            raise InputError(f"the {label} cannot be used: {_reason(error)}", label) from None
        except Exception as error:  # Pillow raises many kinds; each means "cannot read".
            raise InputError(f"cannot read the {label} {_described(source)}: "
                             f"{_reason(error)}", label) from None
    if not any(m.max() > 0 for m in loaded):
        raise InputError("every style mask is black, so no style would apply anywhere. "
                         f"Received: masks={len(loaded)} black mask(s)", "masks")
    return tuple(loaded)


def decode_problem(masks, init_source, final: Stage, budget: int) -> Optional[str]:
    """Why a mask or the init image cannot be decoded in `budget`, or None.

    They are decoded reduced towards the final size (`images.decoded_size`), before the
    model is built, so only TensorFlow's own memory (`runtime.BASE_BYTES`) is there besides
    them. The message names the input, its decoded size, what it takes and what there is.
    """
    labelled = [(f"style mask {i}", f"masks[{i - 1}]", m)
                for i, m in enumerate(masks or [], start=1)]
    if init_source is not None:
        labelled.append(("init image", "init", init_source))
    for label, field, source in labelled:
        if isinstance(source, np.ndarray) or hasattr(source, "mode") or _missing(source):
            continue  # Decoded already, or refused by its own check later.
        try:
            width, height = images.decoded_size(source, (final.width, final.height))
        except Exception:  # Unreadable: its reading names the problem.
            continue
        need = runtime.BASE_BYTES + images.DECODE_BYTES_PER_PIXEL * width * height
        if need > budget:
            return (
                f"out of memory: the {label} {_described(source)} decodes at {width}x{height} "
                f"even reduced, about {need / GIB:.1f} GiB with TensorFlow, and about "
                f"{budget / GIB:.1f} GiB is available; give a smaller file (the run needs "
                f"{final.width}x{final.height}). Received: {field}={_described(source)}")
    return None


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


def _fitting_height(config: StyleConfig, content_wh, style_whs, where, temporal=False) -> tuple:
    """The config with the largest height that fits (at most the content's own), and a note.

    Raises:
        NotEnoughMemory: If not even the smallest size the layers need fits.
    """
    width, height = content_wh
    budget = runtime.run_budget(config, where.device)
    fits = fitting_height(config, width / height, where.precision, budget, style_whs, temporal)
    smallest = features.minimum_size(config.content_layers + config.resolved_style_layers(),
                                     config.model)
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


#: What a file that is no image should be instead (formats Pillow reads everywhere).
IMAGE_FORMATS = "a JPEG, PNG, WebP, BMP, TIFF or GIF image"


def _unreadable(label: str, source, error: BaseException) -> InputError:
    """The one line for an input that cannot be read: which input, what it is, why, and,
    for data that is no image at all, what to give instead.

    Bytes (an upload, a batch worker's input) are named by their size only: "the content
    image (20 bytes)", not "the content image image data (20 bytes)".
    """
    from PIL import UnidentifiedImageError

    what = (f"({len(source)} bytes)" if isinstance(source, (bytes, bytearray))
            else _described(source))
    if isinstance(error, UnidentifiedImageError):
        reason = f"it is not an image file; use {IMAGE_FORMATS}"
    else:
        reason = _reason(error)
    download = f"cannot download {what}: "
    if reason.startswith(download):  # `images.fetch`'s error names the URL: once is enough.
        return InputError(f"cannot download the {label} {what}: {reason[len(download):]}",
                          label)
    return InputError(f"cannot read the {label} {what}: {reason}", label)


def _reason(error: BaseException) -> str:
    """An exception's first line, or its type's name."""
    text = first_line(error)
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
        raise _unreadable(label, source, error) from None


def _check_init_exists(init: str) -> None:
    if _missing(init):
        raise InputError(f"the init image does not exist; use {', '.join(INITS)} or an "
                         f"image's path. Received: init={init}", "init")


def _read(label: str, source, **resize) -> np.ndarray:
    """`images.load_image`, every failure an `InputError` naming the input."""
    if _missing(source):
        raise InputError(f"the {label} does not exist: {_described(source)}", label)
    try:
        return images.load_image(source, **resize, keep_depth=True)
    except MemoryError:
        raise NotEnoughMemory(f"out of memory while reading the {label} "
                              f"{_described(source)}") from None
    except Exception as error:  # Pillow raises many kinds; each means "cannot read".
        raise _unreadable(label, source, error) from None


def _listed(values: Sequence) -> str:
    """Numbers as a user typed them: `0.7 0.3`, not `(0.7, 0.3)`."""
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


# ------------------------------------------------------------------ a trained network's job


def check_network_color(config: StyleConfig) -> None:
    """A network's output keeps the photo's colours after the fact only.

    Raises:
        ValueError: For a `preserve_color` mode outside `NETWORK_COLOR_MODES`.
    """
    if config.preserve_color not in NETWORK_COLOR_MODES:
        raise ValueError(
            "a network's output keeps the photo's colours after the fact only "
            f"(preserve_color luminance or swap); {config.preserve_color} recolours the style "
            f"before optimising. Received: preserve_color={config.preserve_color}")


def training_style_height(config) -> int:
    """The style image's height when a network is trained (`training.TrainConfig`): a plain
    run's at the crop's height (`style_heights`)."""
    return style_heights(dataclasses.replace(config.style, height=config.size), 1)[0]


#: `preserve_color` modes a network's output can take after the fact: the photo's colours on
#: the output's luminance. `"histogram"` recolours the style before optimising: nothing to
#: recolour here (the network learnt its style's colours).
NETWORK_COLOR_MODES = (None, "luminance", "swap")


@dataclasses.dataclass(frozen=True)
class NetworkJob:
    """One planned pass of a photo through a trained style network (`nst-keras train`).

    Attributes:
        config: The settings that apply: `height`, `preserve_color`, `device`,
            `precision`, `max_memory`.
        network: The network file's path.
        record: The network's record (its style, its training), read from the file.
        content: The photo at its final size, RGB uint8; None when planned without
            loading.
        sources: Where the content and the network came from.
        size: (height, width) of the result.
        placement: Device, precision and hardware.
        memory: `need`, `budget` and `fits` (the largest height that fits), bytes and pixels.
        notes: Lines for the user.
        key: The job key: the network file's and the photo's bytes, and the settings.
    """

    config: StyleConfig
    network: str
    record: Dict[str, object] = dataclasses.field(repr=False)
    content: Optional[np.ndarray] = dataclasses.field(repr=False)
    sources: Dict[str, object]
    size: Tuple[int, int]
    placement: runtime.Placement
    memory: Dict[str, object]
    notes: Tuple[str, ...] = ()
    key: str = ""

    @property
    def resume_key(self) -> str:
        """A pass has nothing to resume: its key (a checkpoint is never written)."""
        return self.key


def plan_network(content, network, *, config: Optional[StyleConfig] = None,
                 fit_height: bool = False, load: bool = True) -> NetworkJob:
    """Reads and checks a photo and a network file; returns the `NetworkJob`.

    The network's output has the photo's size (padded by reflection to the network's
    stride and cropped back: any size works). Instance normalisation needs whole-image
    statistics, so the image is never tiled: a size past memory is refused, with the
    largest height that fits.

    Args:
        content: The photo: a path, URL, array or PIL image.
        network: The `.keras` file `nst-keras train` wrote.
        config: The settings (`height`, `preserve_color`, `device`, `precision`,
            `max_memory` apply).
        fit_height: The largest height that fits, at most the photo's own.
        load: Decode the photo (False: a dry run).

    Raises:
        ValueError: For a file that is not a network of ours (naming `network`), a colour
            mode that cannot apply, a photo that cannot be read, or a size past memory
            (`NotEnoughMemory`).
    """
    from nst_keras.engine import transformer

    config = config or StyleConfig()
    check_network_color(config)
    record = transformer.read_record(network)
    where = runtime.placement(config)
    content_wh = _size_of("content image", content)
    aspect = content_wh[0] / content_wh[1]
    budget = runtime.run_budget(config, where.device)
    width = int(record.get("width", transformer.WIDTH))

    def need(h):
        return runtime.BASE_BYTES + transformer.inference_bytes(h, _width(h, aspect), width,
                                                                where.precision)

    fits = 0
    low, high = 1, 1 << 16
    while low <= high:  # The largest height whose pass fits (need grows with height).
        middle = (low + high) // 2
        if need(middle) <= budget:
            fits, low = middle, middle + 1
        else:
            high = middle - 1
    notes = []
    if fit_height:
        height = max(1, min(fits, content_wh[1]))
        config = config.replace(height=height)
        notes.append(f"--height auto: {height} pixels (the largest that fits, at most the "
                     f"photo's {content_wh[1]})")
    height = config.height
    memory = {"need": need(height), "budget": budget, "fits": fits}
    if load and memory["need"] > budget and where.device == "cpu" and fits == 0:
        raise NotEnoughMemory(
            f"no size of this photo fits through the network in the {budget / GIB:.2f} GiB "
            f"available (the process itself takes about {runtime.BASE_BYTES / GIB:.1f} GiB). "
            f"Received: max_memory={config.max_memory}", 0)
    if load and memory["need"] > budget and where.device == "cpu":
        raise NotEnoughMemory(
            f"a {_width(height, aspect)}x{height} pass through the network needs about "
            f"{memory['need'] / GIB:.1f} GiB, more than the {budget / GIB:.1f} GiB available; "
            f"a network's image cannot be tiled (instance normalisation needs the whole "
            f"image); try height={fits}. Received: height={height}", fits)
    sources = {"content": _described(content), "network": os.fspath(network),
               "style": (record.get("style") or {}).get("name")}
    key = keys.job_key(config, content, [network], extra={"network pass": True})
    size = (height, _width(height, aspect))
    if not load:
        return NetworkJob(config, os.fspath(network), record, None, sources, size, where,
                          memory, tuple(notes), key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        content_rgb = _read("content image", content, height=height)
    notes += [f"warning: {first_line(w.message)}" for w in caught]
    return NetworkJob(config, os.fspath(network), record, content_rgb, sources,
                      tuple(content_rgb.shape[:2]), where, memory, tuple(notes), key)
