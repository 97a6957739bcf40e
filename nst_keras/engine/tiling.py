"""The same objective, evaluated tile by tile: print sizes in the memory of one tile.

A tiled objective is called like `objective.Objective` (x -> loss, gradient, values by term
name) and returns the same numbers up to float rounding, so the solvers do not notice. Only
one tile's activations are in memory at a time instead of the whole image's.

Why it is exact:

* A unit of a VGG layer depends only on the input pixels within its receptive radius
  (`features.receptive_radius`: 78 px for VGG19's conv5_1, 94 for conv5_2). A tile read
  with a halo of at least that radius (`features.tile_halo`) therefore has the whole
  image's features in its core: the padding at the tile's own edges never reaches the core.
  Tiles that touch the image's border see the image's border padding, as the whole image
  does. Tile corners fall on the pooling grid (multiples of 2**pools of the deepest layer),
  so every pooling window of a tile is one of the whole image's.
* A Gram matrix is a sum over positions, so the whole image's Gram matrix is the sum of
  its cores' (pass 1, forward only). The loss and dL/dG (C x C per layer) follow once.
* With G = F^T F, dL/dF = F (dL/dG + dL/dG^T). Per tile (pass 2, forward and backward),
  the surrogate <stop_gradient(F (D + D^T)), F> over the core, D = dL/dG, has exactly that
  gradient with respect to the core's features; adding the content term of the core and
  back-propagating gives the tile's share of dL/dx, halo included. The shares add up to
  the whole gradient, because the loss is a sum over cores and each core's features depend
  on the input only through its tile.
* Total variation is computed on the whole image (it is cheap); masked (guided) Gram terms
  take their mask's crop at the layer's resolution; the content target is the content
  image's features computed tile by tile (pass 1) and cropped per core; style targets are
  Gram matrices accumulated over the style image's tiles.
* A video frame's `temporal` term, (1/D) * sum(c * (x - w)**2) with D = H * W * 3 of the
  whole image, is a sum over pixels: each core adds its own pixels' share (value in pass 1,
  gradient in pass 2), normalised by the whole image's D. Its gradient is with respect to
  the core's pixels themselves (no network in between), so it is exact without a halo, and
  it is zero in the halo, which belongs to other cores.

Cost: every evaluation runs the network forward twice (pass 1 and 2) and backward once,
over tiles that overlap by the halo.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from nst_keras.engine import features as features_lib
from nst_keras.engine import objective as objective_lib
from nst_keras.config import StyleConfig

#: The core size `tile="auto"` uses (pixels). Chosen from benchmarks/tiling.py: larger cores
#: waste less on halos (a 512 core with a 96 px halo reads 1.9x its pixels in the interior)
#: and need more memory; see docs/benchmarks.md, Tiling, for the measurements.
DEFAULT_CORE = 512

#: One band of tiles along an axis: (tile start, core start, core end, tile end), pixels.
Span = Tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Tiles:
    """How an image is cut into tiles.

    Attributes:
        core: The core size (pixels; a multiple of `grid`); edge cores may be smaller.
        halo: The margin each tile is read with (pixels; a multiple of `grid`).
        grid: The pooling grid every corner falls on (2**pools of the deepest layer).
        rows, cols: The bands along each axis (`Span`s).
    """

    core: int
    halo: int
    grid: int
    rows: Tuple[Span, ...]
    cols: Tuple[Span, ...]

    @property
    def count(self) -> int:
        """How many tiles."""
        return len(self.rows) * len(self.cols)

    @property
    def largest(self) -> Tuple[int, int]:
        """(height, width) of the largest tile, halo included."""
        return (max(t1 - t0 for t0, _, _, t1 in self.rows),
                max(t1 - t0 for t0, _, _, t1 in self.cols))

    def __iter__(self) -> Iterator[Tuple[Span, Span]]:
        for row in self.rows:
            for col in self.cols:
                yield row, col

    def describe(self) -> str:
        """`12 tiles (core 512 px, halo 96 px)`."""
        return (f"{self.count} tile{'s' if self.count != 1 else ''} (core {self.core} px, "
                f"halo {self.halo} px)")


def spans(length: int, core: int, halo: int, grid: int) -> Tuple[Span, ...]:
    """The bands of an axis of `length` pixels: cores of `core` pixels from 0, the last one
    what remains (merged into the one before when smaller than the grid, so that no core
    is empty at the deepest layer), each read with `halo` pixels on both sides, clipped to
    the image."""
    starts = list(range(0, length, core))
    if len(starts) > 1 and length - starts[-1] < grid:
        starts.pop()
    ends = starts[1:] + [length]
    return tuple((max(0, c0 - halo), c0, c1, min(length, c1 + halo))
                 for c0, c1 in zip(starts, ends))


def layout(height: int, width: int, layers: Sequence[str], model: str = "vgg19",
           core: int = DEFAULT_CORE, halo: Optional[int] = None,
           patch_layers: Sequence[str] = ()) -> Tiles:
    """The tiles of a `height` x `width` image for `layers`.

    Args:
        height, width: The image's size.
        layers: The layers whose features must be exact (their deepest decides the halo
            and the grid).
        model: `"vgg19"` or `"vgg16"`.
        core: The core size; rounded up to the pooling grid.
        halo: The margin; None derives it (`features.tile_halo`). A larger one is rounded
            up to the grid.
        patch_layers: The layers read as 3 x 3 patches (the MRF loss's): their halo is
            widened by one layer pixel (`features.tile_halo`).

    Raises:
        ValueError: If `halo` is smaller than the derived one (the cores would not be
            exact), or `core` is not a positive integer.
    """
    grid = features_lib.pooling_grid(list(layers) + list(patch_layers), model)
    derived = features_lib.tile_halo(layers, model, patch_layers)
    if halo is None:
        halo = derived
    elif halo < derived:
        raise ValueError(
            f"a halo of {halo} px is smaller than the receptive radius of the layers used "
            f"(rounded to the pooling grid: {derived} px), so the tiles' features would not "
            f"be exact. Received: halo={halo}")
    if int(core) < 1:
        raise ValueError(f"the tile core must be at least 1 pixel. Received: tile={core}")
    halo = -(-int(halo) // grid) * grid
    core = -(-int(core) // grid) * grid
    return Tiles(core, halo, grid, spans(height, core, halo, grid),
                 spans(width, core, halo, grid))


def patch_layers(terms) -> Tuple[str, ...]:
    """The layers the terms read as patches (the MRF terms'): they widen the halo."""
    return tuple(dict.fromkeys(t.layer for t in terms if t.kind == "mrf"))


def config_patch_layers(config: StyleConfig) -> Tuple[str, ...]:
    """`patch_layers` of the terms a config makes (its style layers with the MRF loss)."""
    if config.style_loss != "mrf":
        return ()
    return tuple(dict.fromkeys(features_lib.resolve_layer_name(n, config.model)
                               for n in config.resolved_style_layers()))


def check_tileable(terms) -> None:
    """Refuses terms a tiled evaluation cannot make exact.

    Raises:
        ValueError: For a histogram term: its sort needs every position of the image at
            once (sorted values, not binned histograms).
    """
    if any(t.kind == "histogram" for t in terms):
        raise ValueError("the histogram loss sorts every value of a layer, so it needs the "
                         "whole image and cannot be tiled; use tile=off or auto (untiled), "
                         "or histogram_weight=0. Received: histogram_weight > 0 with tiles")


def box_of(row: Span, col: Span):
    """The int32 vector a traced pass takes: tile top, tile left, core top, core left, core
    bottom, core right (pixels)."""
    return np.array([row[0], col[0], row[1], col[1], row[2], col[2]], np.int32)


def _crop_at(tensor, box, pools: int, tile: bool):
    """The core of a (h, w, C) layer tensor at 2**pools: within the tile's features
    (`tile=True`) or within the whole image's (a mask, a content target)."""
    import tensorflow as tf

    scale = 2**pools
    top, left = box[2] // scale, box[3] // scale
    rows, cols = box[4] // scale - top, box[5] // scale - left
    if tile:
        top, left = top - box[0] // scale, left - box[1] // scale
    return tf.slice(tensor, tf.stack([top, left, 0]), tf.stack([rows, cols, -1]))


def content_part(target, core, normalization: str, count: int):
    """A core's share of `losses.content_loss`: the sum over the core, normalised as the
    whole layer's loss is (`count` values in the whole layer for `"jcjohnson"`'s mean)."""
    import tensorflow as tf

    squared = tf.reduce_sum(tf.square(tf.cast(core, tf.float32) - tf.cast(target, tf.float32)))
    if normalization == "jcjohnson":
        return squared / float(count)
    return 0.5 * squared if normalization == "paper" else squared


def temporal_part(core, target, weights, count: int):
    """A core's share of the `temporal` term (`objective._temporal_term`):
    sum(c * (x - w)**2) over the core's pixels, divided by `count`, the whole image's
    H * W * 3 (not the core's), so that the cores' shares add up to the whole term.

    Args:
        core: The generated image's core pixels, (h, w, 3).
        target: The warped previous frame's pixels there, (h, w, 3).
        weights: The reliability c there, (h, w, 1), or None (every pixel weighs 1).
        count: The number of values of the whole image.
    """
    import tensorflow as tf

    squared = tf.square(tf.cast(core, tf.float32) - tf.cast(target, tf.float32))
    if weights is not None:
        squared = squared * weights
    return tf.reduce_sum(squared) / float(count)


def gram_surrogate(core, dgram):
    """<stop_gradient(F (D + D^T)), F>: its gradient with respect to F is dL/dF when
    D = dL/dG and G = F^T F (F the core's features as (positions, C))."""
    import tensorflow as tf

    flat = tf.reshape(core, (-1, tf.shape(core)[-1]))
    direction = tf.stop_gradient(tf.matmul(flat, dgram + tf.transpose(dgram)))
    return tf.reduce_sum(direction * flat)


#: Feature model -> {key: traced function}; dropped with the model (weak references only).
_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached(feature_model, key, make):
    functions = _FUNCTIONS.setdefault(feature_model, {})
    if key not in functions:
        functions[key] = make(weakref.ref(feature_model))
    return functions[key]


def layer_function(feature_model, layers: Tuple[str, ...], model: str, kind: str):
    """A traced forward pass giving each layer's core features (`kind="cores"`), their
    Gram matrix (`kind="grams"`) or their sums (`kind="moments"`: `losses.feature_moments`)
    for one tile: how targets are computed tile by tile.

    Traced once per tile shape: the box is an argument.
    """
    import tensorflow as tf

    from nst_keras.engine.losses import gram_matrix

    from nst_keras.engine.losses import feature_moments

    pools = {n: features_lib.layer_pools(n, model) for n in layers}

    def make(model_ref):
        @tf.function(reduce_retracing=False)
        def run(x, box):
            found = model_ref()(x, training=False)
            cores = {n: tf.cast(_crop_at(found[n][0], box, pools[n], True), tf.float32)
                     for n in layers}
            if kind == "moments":
                return {n: feature_moments(c) for n, c in cores.items()}
            return cores if kind == "cores" else {n: gram_matrix(c) for n, c in cores.items()}

        return run

    return _cached(feature_model, ("layers", layers, model, kind), make)


def moment_surrogate(core, weights, dfirst, dsecond):
    """sum_p <stop_gradient(w_p (a + (D + D^T) F_p)), F_p>: its gradient with respect to
    F is dL/dF when a = dL/d(sum w F) and D = dL/d(sum w F F^T) (`losses.feature_moments`),
    F the core's features as (positions, C) and w_p their weights (1 without a mask)."""
    import tensorflow as tf

    flat = tf.reshape(core, (-1, tf.shape(core)[-1]))
    w = 1.0 if weights is None else tf.reshape(weights, (-1, 1))
    direction = tf.stop_gradient(
        w * (dfirst[None, :] + tf.matmul(flat, dsecond + tf.transpose(dsecond))))
    return tf.reduce_sum(direction * flat)


def core_patches(tile_features, box, pools: int):
    """The 3 x 3 patches of a tile's layer features centred in the tile's core, and the
    core's centre rows and columns within the whole layer (top, left, bottom, right), for
    its mask's weights. Centres on the image's outer row or column have no patch (as the
    whole image's "valid" patches); the halo (`features.tile_halo`'s `patch_layers`)
    makes every other centre's 3 x 3 neighbourhood exact."""
    import tensorflow as tf

    from nst_keras.engine.losses import extract_patches

    scale = 2**pools
    height, width = tf.shape(tile_features)[0], tf.shape(tile_features)[1]
    top = tf.maximum(box[2] // scale - box[0] // scale, 1)
    left = tf.maximum(box[3] // scale - box[1] // scale, 1)
    bottom = tf.minimum(box[4] // scale - box[0] // scale, height - 1)
    right = tf.minimum(box[5] // scale - box[1] // scale, width - 1)
    patches = extract_patches(tile_features)
    grid = tf.reshape(patches, (height - 2, width - 2, patches.shape[-1]))
    chosen = tf.slice(grid, tf.stack([top - 1, left - 1, 0]),
                      tf.stack([bottom - top, right - left, -1]))
    where = tf.stack([top + box[0] // scale, left + box[1] // scale,
                      bottom + box[0] // scale, right + box[1] // scale])
    return tf.reshape(chosen, (-1, patches.shape[-1])), where


def pass_functions(feature_model, terms, model: str, normalization: str):
    """The two traced passes of a tiled evaluation for this term structure.

    pass1(x, box, targets, masks) -> (each `style` term's core Gram matrix and each `w2`
    term's core moments, each content and temporal term's share): forward only.
    pass2(x, box, targets, masks, dgrams, weights, norms) -> (the tile's input gradient of
    the surrogate and of the weighted shares (see the module's docstring), each `mrf`
    term's share of its value): `dgrams` holds dL/dG of a `style` term and (dL/d first,
    dL/d second) of a `w2` term; `norms` the whole image's divisor of each `mrf` term. An
    MRF term is a sum over the generated patches, so a core's patches give their share of
    the value and gradient in pass 2 alone. Each is traced once per tile shape; targets and
    masks are the whole
    image's (cropped inside), so they never change a trace.
    """
    import tensorflow as tf

    from nst_keras.engine.losses import feature_moments, gram_matrix, mrf_patch_loss

    structure = tuple(dataclasses.replace(t, weight=0.0, mask=None)
                      for t in terms if t.kind in TILED_KINDS)
    masked = frozenset(t.name for t in terms if t.mask is not None)
    featured = tuple(t for t in structure if t.kind != "temporal")
    pools = {t.name: features_lib.layer_pools(t.layer, model) for t in featured}

    def cores(found, box, masks):
        out = {}
        for term in featured:
            if term.kind == "mrf":
                continue  # Read as patches around the core (`core_patches`).
            core = tf.cast(_crop_at(found[term.layer][0], box, pools[term.name], True),
                           tf.float32)
            if term.name in masked and term.kind == "style":
                core = core * _crop_at(masks[term.name], box, pools[term.name], False)
            out[term.name] = core
        return out

    def core_weights(term, box, masks):
        if term.name not in masked:
            return None
        return _crop_at(masks[term.name], box, pools[term.name], False)

    def content(term, core, targets, box):
        target = _crop_at(targets[term.name], box, pools[term.name], False)
        count = int(np.prod(targets[term.name].shape))
        return content_part(target, core, normalization, count)

    def temporal(term, x, box, targets, masks):
        # Pixels, not features: the core of the tile itself, and of the whole-image target
        # (1, H, W, 3) and weights (H, W, 1).
        target = targets[term.name]
        weights = (_crop_at(masks[term.name], box, 0, False) if term.name in masked
                   else None)
        return temporal_part(_crop_at(x[0], box, 0, True),
                             _crop_at(target[0], box, 0, False), weights,
                             int(np.prod(target.shape)))

    def share(term, x, found, targets, box, masks):
        """A content or temporal term's unweighted share of this tile's core."""
        if term.kind == "temporal":
            return temporal(term, x, box, targets, masks)
        return content(term, found[term.name], targets, box)

    def mrf(term, found, box, targets, masks, norms):
        features = tf.cast(found[term.layer][0], tf.float32)
        patches, where = core_patches(features, box, pools[term.name])
        weights = None
        if term.name in masked:
            mask = masks[term.name][..., 0]
            weights = tf.reshape(tf.slice(mask, where[:2], where[2:] - where[:2]), (-1,))
        return mrf_patch_loss(targets[term.name], patches, weights, norms[term.name])

    def make_pass1(model_ref):
        @tf.function(reduce_retracing=False)
        def pass1(x, box, targets, masks):
            found = cores(model_ref()(x, training=False), box, masks)
            grams = {t.name: gram_matrix(found[t.name]) if t.kind == "style" else
                     feature_moments(found[t.name], core_weights(t, box, masks))
                     for t in structure if t.kind in ("style", "w2")}
            parts = {t.name: share(t, x, found, targets, box, masks) for t in structure
                     if t.kind in ("content", "temporal")}
            return grams, parts

        return pass1

    def make_pass2(model_ref):
        @tf.function(reduce_retracing=False)
        def pass2(x, box, targets, masks, dgrams, weights, norms):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                whole = model_ref()(x, training=False)
                found = cores(whole, box, masks)
                values, parts = {}, []
                for t in structure:
                    if t.kind == "style":
                        parts.append(gram_surrogate(found[t.name], dgrams[t.name]))
                    elif t.kind == "w2":
                        parts.append(moment_surrogate(found[t.name],
                                                      core_weights(t, box, masks),
                                                      *dgrams[t.name]))
                    elif t.kind == "mrf":
                        values[t.name] = mrf(t, whole, box, targets, masks, norms)
                        parts.append(weights[t.name] * values[t.name])
                    else:  # content, temporal
                        parts.append(weights[t.name] * share(t, x, found, targets, box,
                                                             masks))
                total = tf.add_n(parts)
            return tape.gradient(total, x), values

        return pass2

    key = (structure, masked, model, normalization)
    return (_cached(feature_model, ("pass1",) + key, make_pass1),
            _cached(feature_model, ("pass2",) + key, make_pass2))


#: The kinds a tiled evaluation computes by tiles (total variation is computed whole).
TILED_KINDS = ("content", "style", "temporal", "w2", "mrf")


def tv_function(tv_power: float, tv_edges: str):
    """The traced total variation of the whole image and its gradient."""
    import tensorflow as tf

    from nst_keras.engine.losses import total_variation_loss

    key = (tv_power, tv_edges)
    if key not in _TV:
        @tf.function(reduce_retracing=False)
        def tv(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = total_variation_loss(x, power=tv_power, edges=tv_edges)
            return value, tape.gradient(value, x)

        _TV[key] = tv
    return _TV[key]


_TV: Dict[tuple, object] = {}


def tiled_cores(feature_model, x, layers, model: str, tiles: Tiles) -> Dict[str, np.ndarray]:
    """Each layer's features of a whole preprocessed image (1, H, W, 3), computed tile by
    tile (forward only) and put together: (h, w, C) float32 each."""
    import tensorflow as tf

    run = layer_function(feature_model, tuple(layers), model, "cores")
    height, width = x.shape[1:3]
    whole = {n: np.zeros(features_lib.layer_shape(n, height, width, model), np.float32)
             for n in layers}
    for row, col in tiles:
        found = run(tf.constant(x[:, row[0]:row[3], col[0]:col[3], :]), box_of(row, col))
        for n, core in found.items():
            scale = 2 ** features_lib.layer_pools(n, model)
            whole[n][row[1] // scale:row[2] // scale, col[1] // scale:col[2] // scale] = core
    return whole


def tiled_grams(feature_model, x, layers, model: str, tiles: Tiles) -> Dict[str, object]:
    """Each layer's Gram matrix of a whole preprocessed image, accumulated over its tiles'
    cores (forward only): (C, C) float32 each."""
    import tensorflow as tf

    run = layer_function(feature_model, tuple(layers), model, "grams")
    total = {}
    for row, col in tiles:
        found = run(tf.constant(x[:, row[0]:row[3], col[0]:col[3], :]), box_of(row, col))
        total = {n: total[n] + g if n in total else g for n, g in found.items()}
    return total


def tiled_moments(feature_model, x, layers, model: str, tiles: Tiles) -> Dict[str, tuple]:
    """Each layer's `losses.feature_moments` of a whole preprocessed image, summed over its
    tiles' cores (forward only)."""
    import tensorflow as tf

    run = layer_function(feature_model, tuple(layers), model, "moments")
    total = {}
    for row, col in tiles:
        found = run(tf.constant(x[:, row[0]:row[3], col[0]:col[3], :]), box_of(row, col))
        total = {n: tuple(a + b for a, b in zip(total[n], m)) if n in total else m
                 for n, m in found.items()}
    return total


def tiled_targets(feature_model, terms, content_x, style_xs, image_hw, config: StyleConfig,
                  core: int, blend=None, cache: Optional[objective_lib.StyleTargets] = None):
    """`objective.compute_targets`, tile by tile: the same targets at any size.

    The content target is the content image's features assembled from its cores; a `style`
    (Gram) or `w2` target comes from the style images' feature sums (Gram matrices, means)
    accumulated over their own tiles (same core and halo); an `mrf` target from the style's
    features assembled from its tiles, then cut into patches. Each is finished as
    `objective.StyleStatistics` does. With a `cache` (a video's frames), the style
    targets are reused and kept there as `compute_targets` does, under keys of their own
    (the tiles' core added), so tiled and untiled targets never mix.
    """
    import tensorflow as tf

    layers = objective_lib.term_layers(terms)
    patched = patch_layers(terms)
    targets = {}
    content_terms = [t for t in terms if t.kind == "content"]
    style_terms = [t for t in terms if t.kind in objective_lib.STYLE_KINDS]
    check_tileable(style_terms)
    if content_terms:
        tiles = layout(*content_x.shape[1:3], layers, config.model, core,
                       patch_layers=patched)
        found = tiled_cores(feature_model, content_x,
                            list(dict.fromkeys(t.layer for t in content_terms)), config.model,
                            tiles)
        for term in content_terms:
            targets[term.name] = tf.constant(found[term.layer])
    if not style_terms:
        return targets
    blend = [1.0 / len(style_xs)] * len(style_xs) if blend is None else list(blend)
    key = None if cache is None else cache.key(feature_model, style_terms, style_xs,
                                               image_hw, blend)
    if key is not None:
        key += (("tiles", int(core)),)
        if key in cache.targets:
            targets.update(cache.targets[key])
            return targets
    statistics = objective_lib.StyleStatistics(style_terms, image_hw, config.model)
    summed = list(dict.fromkeys(t.layer for t in style_terms if t.kind in ("style", "w2")))
    whole = list(dict.fromkeys(t.layer for t in style_terms if t.kind == "mrf"))
    for k, (style_x, share) in enumerate(zip(style_xs, blend)):
        tiles = layout(*style_x.shape[1:3], layers, config.model, core, patch_layers=patched)
        if summed:
            for layer, moments in tiled_moments(feature_model, style_x, summed, config.model,
                                                 tiles).items():
                statistics.add_moments(k, share, layer, *moments)
        if whole:
            for layer, features in tiled_cores(feature_model, style_x, whole, config.model,
                                               tiles).items():
                statistics.add(k, share, layer, tf.constant(features))
    computed = statistics.targets()
    if key is not None:
        cache.targets[key] = computed
    targets.update(computed)
    return targets


@dataclasses.dataclass(frozen=True)
class TiledObjective:
    """The loss of one run at one image size, evaluated tile by tile: call it on an image.

    The same call and results as `objective.Objective` (up to float rounding).

    Attributes:
        terms: The terms, in order.
        targets: Term name -> target tensor (the whole content features, Gram matrices, a
            `temporal` term's whole preprocessed target (1, H, W, 3)).
        image_hw: (H, W) of the generated image.
        tiles: The `Tiles`.
        settings: The normalisation and TV settings, and the model's name.
        weights: Term name -> weight tensor.
        masks: Term name -> the whole mask at the layer's size, (h, w, 1) (a `temporal`
            term's: the reliability weights at the image's size).
        norms: MRF term name -> the whole image's divisor, sum_i w_i * 9 C
            (`losses.mrf_loss`), which each core's share is divided by.
        stop: A `control.StopToken` checked before every tile, or None: an evaluation of a
            large image takes minutes, and a stop must not wait for all of it (the
            evaluation is dropped, `control.StopRequested` says why).
    """

    terms: Tuple[objective_lib.Term, ...]
    targets: Dict[str, object] = dataclasses.field(repr=False)
    image_hw: Tuple[int, int]
    tiles: Tiles
    passes: tuple = dataclasses.field(repr=False)
    tv: object = dataclasses.field(repr=False)
    settings: objective_lib.TermSettings = dataclasses.field(repr=False)
    model: str = "vgg19"
    weights: Dict[str, object] = dataclasses.field(repr=False, default=None)
    masks: Dict[str, object] = dataclasses.field(repr=False, default=None)
    norms: Dict[str, object] = dataclasses.field(repr=False, default=None)
    stop: object = dataclasses.field(repr=False, default=None, compare=False)

    def __call__(self, x):
        """Loss, gradient and terms of a preprocessed image `x`, (1, H, W, 3).

        Returns:
            (loss, gradient, values) as `objective.Objective` returns them.
        """
        with _quiet_retracing():
            return self._evaluate(x)

    def _evaluate(self, x):
        import tensorflow as tf

        from nst_keras.engine.losses import gaussian_fit, gram_loss, style_normalizer
        from nst_keras.engine.losses import wasserstein2_loss

        x = np.asarray(x, dtype=np.float32)
        pass1, pass2 = self.passes
        masks = self.masks or {}
        style = [t for t in self.terms if t.kind in ("style", "w2")]
        shared = [t for t in self.terms if t.kind in ("content", "temporal")]
        patched = [t for t in self.terms if t.kind == "mrf"]
        # Pass 1: the Gram matrices (moments) of the whole image, and the content and
        # temporal terms,
        # core by core.
        grams, parts = {}, {}
        for row, col, tile, box in self._pieces(x):
            tile_grams, tile_parts = pass1(tile, box, self.targets, masks)
            grams = {n: _added(grams[n], g) if n in grams else g for n, g in tile_grams.items()}
            parts = {n: parts[n] + v if n in parts else v for n, v in tile_parts.items()}
        # Once: each style term's value and its gradient with respect to the sums
        # (weighted).
        values, dgrams = {}, {}
        height, width = self.image_hw
        for term in style:
            if term.kind == "w2":
                total, first, second = grams[term.name]
                target = self.targets[term.name]
                with tf.GradientTape() as tape:
                    tape.watch([first, second])
                    mean, cov = gaussian_fit(total, first, second)
                    value = wasserstein2_loss(target[0], target[1], mean, cov,
                                              style_cov_sqrt=target[2])
                dfirst, dsecond = tape.gradient(value, [first, second])
                values[term.name] = value
                dgrams[term.name] = (self.weights[term.name] * dfirst,
                                     self.weights[term.name] * dsecond)
                continue
            shape = features_lib.layer_shape(term.layer, height, width, self.model)
            channels, positions = style_normalizer(shape, self.image_hw,
                                                   self.settings.normalization)
            gram = grams[term.name]
            with tf.GradientTape() as tape:
                tape.watch(gram)
                value = gram_loss(self.targets[term.name], gram, channels=channels,
                                  positions=positions)
            values[term.name] = value
            dgrams[term.name] = self.weights[term.name] * tape.gradient(value, gram)
        for term in shared:
            values[term.name] = parts[term.name]
        # Pass 2: each tile's share of the gradient, halo included (and of the MRF terms).
        gradient = np.zeros_like(x)
        if style or shared or patched:
            for row, col, tile, box in self._pieces(x):
                share, tile_values = pass2(tile, box, self.targets, masks, dgrams,
                                           self.weights, self.norms or {})
                gradient[:, row[0]:row[3], col[0]:col[3], :] += share.numpy()
                for name, value in tile_values.items():
                    values[name] = values[name] + value if name in values else value
        for term in self.terms:
            if term.kind == "tv":
                value, tv_grad = self.tv(tf.constant(x))
                values[term.name] = value
                gradient += float(self.weights[term.name]) * tv_grad.numpy()
        values = {t.name: values[t.name] for t in self.terms}
        loss = tf.add_n([self.weights[n] * v for n, v in values.items()])
        return loss, tf.convert_to_tensor(gradient), values

    def _pieces(self, x):
        """The tiles as (row, col, tile tensor, box), each tile copied as it is needed.

        Raises:
            control.StopRequested: Before a tile, when the stop token is set.
        """
        import tensorflow as tf

        for row, col in self.tiles:
            if self.stop is not None:
                self.stop.check()
            yield row, col, tf.constant(x[:, row[0]:row[3], col[0]:col[3], :]), box_of(row, col)

    def with_weights(self, weights: Mapping[str, float]) -> "TiledObjective":
        """The same objective with other term weights (no retrace: they are arguments)."""
        import tensorflow as tf

        terms = tuple(dataclasses.replace(t, weight=float(weights.get(t.name, t.weight)))
                      for t in self.terms)
        return dataclasses.replace(self, terms=terms, weights={
            t.name: tf.constant(t.weight, tf.float32) for t in terms})


def _added(a, b):
    """Two tiles' sums added: tensors, or tuples of them (moments) element by element."""
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b


class _quiet_retracing:
    """Keeps TensorFlow's "triggered tf.function retracing" warning out of a run's output:
    tracing once per tile shape is by design (each shape is traced once, then reused)."""

    def __enter__(self):
        import tensorflow as tf

        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def build_tiled_objective(feature_model, terms, content_rgb, style_rgbs, config: StyleConfig,
                          blend=None, core: int = DEFAULT_CORE,
                          halo: Optional[int] = None, *,
                          extra_targets: Optional[Mapping[str, np.ndarray]] = None,
                          cache: Optional[objective_lib.StyleTargets] = None
                          ) -> TiledObjective:
    """`objective.build_objective`, tile by tile: targets by pass 1, the same call.

    Args:
        feature_model: A model whose outputs include every term's layer.
        terms: From `objective.make_terms` (masked terms carry their masks).
        content_rgb: The content image, RGB uint8 (H, W, 3): the generated image's size.
        style_rgbs: The style images, RGB uint8, each (h, w, 3).
        config: The normalisation, TV and model settings (XLA is not used: a tile's core
            is cut with sizes known only when it runs).
        blend: Weight of each style image; equal when None.
        core: The tiles' core size (rounded up to the pooling grid).
        halo: The margin; derived from the layers when None (see `layout`).
        extra_targets: Term name -> target of the terms whose targets are given rather than
            computed (a `temporal` term's warped previous frame, preprocessed, (1, H, W, 3)),
            as `objective.build_objective` takes them.
        cache: Reuse and keep the style targets there (`objective.StyleTargets`; see
            `tiled_targets`).

    Returns:
        A `TiledObjective`.

    Raises:
        ValueError: If `halo` is smaller than the derived one, or a term cannot be tiled
            exactly (`check_tileable`).
    """
    import tensorflow as tf

    from nst_keras.media.images import preprocess

    image_hw = tuple(int(d) for d in content_rgb.shape[:2])
    layers = objective_lib.term_layers(terms)
    check_tileable(terms)
    tiles = layout(*image_hw, layers, config.model, core, halo, patch_layers(terms))
    with _quiet_retracing():
        targets = tiled_targets(feature_model, terms, preprocess(content_rgb),
                                [preprocess(s) for s in style_rgbs], image_hw, config,
                                tiles.core, blend, cache)
    for name, target in (extra_targets or {}).items():
        targets[name] = tf.constant(np.asarray(target, np.float32))
    settings = objective_lib.TermSettings(config.normalization, config.tv_power,
                                          config.tv_edges)
    weights = {t.name: tf.constant(t.weight, tf.float32) for t in terms}
    masks = {t.name: tf.constant(t.mask[..., None], tf.float32)
             for t in terms if t.mask is not None}
    return TiledObjective(
        terms=tuple(terms), targets=targets, image_hw=image_hw, tiles=tiles,
        passes=pass_functions(feature_model, terms, config.model, config.normalization),
        tv=tv_function(config.tv_power, config.tv_edges), settings=settings,
        model=config.model, weights=weights, masks=masks,
        norms={t.name: tf.constant(mrf_normalizer(t, image_hw, config.model), tf.float32)
               for t in terms if t.kind == "mrf"})


def mrf_normalizer(term, image_hw, model: str) -> float:
    """The whole image's divisor of an MRF term: sum_i w_i * 9 C over its patches' centres
    (w_i = 1 without a mask), as `losses.mrf_loss` computes it untiled."""
    h, w, c = features_lib.layer_shape(term.layer, *image_hw, model)
    if term.mask is None:
        total = float(max(h - 2, 0) * max(w - 2, 0))
    else:
        total = float(np.sum(term.mask[1:-1, 1:-1], dtype=np.float64))
    return total * 9 * c
