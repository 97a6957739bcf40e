"""The objective: named loss terms, their targets computed once, one traced function.

A run's loss is a weighted sum of named terms (`Term`): `content/<layer>`, `style/<layer>`
(or `style/<k>/<layer>` for the k-th masked style), `tv`, and for a video frame `temporal`
(Ruder et al.'s pull towards the previous frame, `Temporal`), and `histogram/<layer>` with a
histogram weight. Each term's `kind` says which loss function computes it (`TERM_LOSSES`:
`style` compares Gram matrices, `w2` Gaussian fits, `mrf` patches) and how reports sum it.
The targets of the content and style terms (the content image's features, the style
images' Gram matrices, Gaussian fits, patches or quantiles) never change during a run, so
they are computed once (`compute_targets`). The traced
function takes the image, the targets, the weights and the masks as arguments and returns
the loss, its gradient and every term's unweighted value by name; it is cached per feature
model and term structure, so a second run at the same image size (another style, other
weights) does not retrace.

Departure from the book: the book sends the content, style and generated images through
VGG19 together at every evaluation (three times the work, the targets recomputed each time).
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from nst_keras.engine import features as features_lib
from nst_keras.config import HISTOGRAM_LAYERS, StyleConfig


@dataclasses.dataclass(frozen=True)
class Term:
    """One weighted term of the loss.

    Attributes:
        name: Unique name: `content/<layer>`, `style/<layer>`, `style/<k>/<layer>` (the k-th
            style, from 1, within its mask; whatever `style_loss` compares),
            `histogram/<layer>` or `histogram/<k>/<layer>`, `tv` or `temporal` (a video
            frame's, see `Temporal`).
        kind: Which loss computes it: a key of `TERM_LOSSES` (`"content"`, `"style"` (Gram
            matrices), `"w2"`, `"mrf"`, `"histogram"`, `"tv"`, `"temporal"`).
        layer: The Keras layer name (None for `tv`).
        weight: The term's weight in the total loss.
        region: For a masked style term: the index of its style (from 0); None for a
            style term over the whole image (the styles' blended target).
        mask: For a masked style term: its mask at the layer's size, (h, w) float32 in
            [0, 1], the image's mask box-filtered down; for a `temporal` term: the per-pixel
            reliability weights at the image's size (left out of comparisons).
    """

    name: str
    kind: str
    layer: Optional[str]
    weight: float
    region: Optional[int] = None
    mask: Optional[np.ndarray] = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class TermSettings:
    """The settings every term's loss function may read (part of the traced structure)."""

    normalization: str
    tv_power: float
    tv_edges: str


def image_features(features, layer):
    """The layer's features of the one image in the batch, (h, w, C).

    A squeeze, not `features[layer][0]`: the gradient of a reshape is a reshape, while the
    gradient of `[0]` (StridedSliceGrad) writes the whole activation into a new zero tensor,
    once per term: about 126 ms of an evaluation at block1_conv1 at 400 x 533 in float32
    (`benchmarks/evaluation_speed.py --mode profile`).
    """
    import tensorflow as tf

    return tf.squeeze(features[layer], axis=0)


def _content_term(term, x, features, target, mask, settings):
    """`losses.content_loss` of the layer's features against the content's."""
    from nst_keras.engine.losses import content_loss

    return content_loss(target, image_features(features, term.layer), normalization=settings.normalization)


def _style_term(term, x, features, target, mask, settings):
    """`losses.style_loss` of the layer's Gram matrix against the target Gram matrix; with a
    mask, the guided Gram matrix of the features within the region (Gatys et al. 2017)."""
    import tensorflow as tf

    from nst_keras.engine.losses import style_loss

    layer_features = image_features(features, term.layer)
    if mask is not None:
        layer_features = tf.cast(layer_features, tf.float32) * mask
    return style_loss(target, layer_features, normalization=settings.normalization,
                      image_shape=(int(x.shape[1]), int(x.shape[2])))


def _tv_term(term, x, features, target, mask, settings):
    """`losses.total_variation_loss` of the image itself."""
    from nst_keras.engine.losses import total_variation_loss

    return total_variation_loss(x, power=settings.tv_power, edges=settings.tv_edges)


def _temporal_term(term, x, features, target, mask, settings):
    """Ruder et al.'s short-term temporal loss: (1/D) * sum(c * (x - w)**2).

    ``x`` is the generated image and ``w`` (the target) the previous frame's result warped
    onto this frame, both in `images.preprocess`'s (caffe) space: 0-255 levels, BGR, mean
    subtracted, so a difference is in pixel levels. ``c`` (the mask, (H, W, 1)) is the
    per-pixel reliability weight in [0, 1]: 0 where the flow is not trusted (disocclusions,
    motion boundaries, points leaving the frame), so those pixels contribute nothing to the
    value or the gradient. D = H * W * 3, every element of the image, whatever c is: the
    paper's normalisation and that of their ``nn.MSECriterion`` on sqrt(c)-scaled inputs
    (manuelruder/artistic-videos), so the value does not grow with the number of reliable
    pixels. Without a mask every pixel weighs 1.
    """
    import tensorflow as tf

    squared = tf.square(tf.cast(x, tf.float32) - tf.cast(target, tf.float32))
    if mask is not None:
        squared = squared * mask  # (1, H, W, 3) * (H, W, 1): one weight per pixel.
    count = int(x.shape[1]) * int(x.shape[2]) * int(x.shape[3])
    return tf.reduce_sum(squared) / float(count)


def _w2_term(term, x, features, target, mask, settings):
    """`losses.w2_style_loss`: the layer's Gaussian fit (within the mask, each position
    weighted by it) against the style's, target (mean, cov, cov_sqrt)."""
    from nst_keras.engine.losses import w2_style_loss

    return w2_style_loss(target, image_features(features, term.layer), weights=mask)


def _mrf_term(term, x, features, target, mask, settings):
    """`losses.mrf_loss`: each 3 x 3 patch of the layer against its nearest style patch
    (target: the style patches); with a mask, each patch weighted by it at its centre."""
    from nst_keras.engine.losses import mrf_loss

    return mrf_loss(target, image_features(features, term.layer), weights=mask)


def _histogram_term(term, x, features, target, mask, settings):
    """`losses.histogram_loss`: each channel's sorted values against the style's quantiles
    (target (Q, C)); with a mask, the weighted distribution within it."""
    from nst_keras.engine.losses import histogram_loss

    return histogram_loss(target, image_features(features, term.layer), weights=mask)


#: Term kind -> the function computing its unweighted value, called as
#: f(term, x, features, target, mask, settings) inside the traced function.
TERM_LOSSES = {"content": _content_term, "style": _style_term, "w2": _w2_term,
               "mrf": _mrf_term, "histogram": _histogram_term, "tv": _tv_term,
               "temporal": _temporal_term}

#: The kinds whose targets come from the style images (reports add them up as the style
#: loss).
STYLE_KINDS = ("style", "w2", "mrf", "histogram")

#: `StyleConfig.style_loss` -> the kind of its style terms.
STYLE_LOSS_KINDS = {"gram": "style", "w2": "w2", "mrf": "mrf"}

#: The kinds of term, in the order reports show them.
KINDS = tuple(TERM_LOSSES)


def layer_shares(weighting, layers: Sequence[str], given: Sequence[str],
                 model: str = "vgg19") -> Dict[str, float]:
    """Each layer's share of its kind's weight, normalised to sum to 1.

    Args:
        weighting: `"equal"`, `"gatys"` (1e3 / n**2 with n the layer's channel count: Gatys'
            notebook) or one number per entry of `given` (`StyleConfig.style_layer_weights`).
        layers: The distinct Keras layer names, in order.
        given: The layers as the config lists them (duplicates included), which explicit
            numbers follow; a duplicate layer counts once, with its first weight.
        model: The network (its channel counts, for `"gatys"`).

    Returns:
        Layer name -> share; the shares sum to 1.
    """
    if weighting == "equal":
        raw = {n: 1.0 for n in layers}
    elif weighting == "gatys":
        raw = {n: 1e3 / features_lib.layer_shape(n, 32, 32, model)[2] ** 2 for n in layers}
    else:
        raw = {}
        for name, value in zip(given, weighting):
            raw.setdefault(features_lib.resolve_layer_name(name, model), float(value))
    total = sum(raw[n] for n in layers)
    if total <= 0:
        raise ValueError("the layer weights of the layers used are all 0. "
                         f"Received: layer weights={weighting!r}")
    return {n: raw[n] / total for n in layers}


def make_terms(config: StyleConfig, masks: Optional[Sequence[np.ndarray]] = None
               ) -> Tuple[Term, ...]:
    """The terms a config asks for: its content layers, style layers and total variation.

    The content weight is shared by the content layers, and the style weight by the style
    layers, as `content_layer_weights` and `style_layer_weights` say (equally by default:
    the book has one content layer; the paper's w_l = 1/5 for five style layers); the
    shares sum to 1 (`layer_shares`). Duplicate layers count once. With masks (one per
    style), each style has its own style terms at the full style weight, each within its
    mask (Gatys et al. 2017).

    Args:
        config: The settings.
        masks: None, or one (H, W) float mask in [0, 1] per style at the generated image's
            size; each term gets it box-filtered to its layer's size.
    """
    config = config.resolved()
    content = list(dict.fromkeys(features_lib.resolve_layer_name(n, config.model)
                                 for n in config.content_layers))
    style = list(dict.fromkeys(features_lib.resolve_layer_name(n, config.model)
                               for n in config.style_layers))
    content_share = layer_shares(config.content_layer_weights, content, config.content_layers,
                                 config.model) if content else {}
    style_share = layer_shares(config.style_layer_weights, style, config.style_layers,
                               config.model) if style else {}
    terms = [Term(f"content/{n}", "content", n, config.content_weight * content_share[n])
             for n in content]
    kind = STYLE_LOSS_KINDS[config.style_loss]
    weighted = [("style", kind, n, config.style_weight * style_share[n]) for n in style]
    if config.histogram_weight > 0:
        histogram = list(dict.fromkeys(features_lib.resolve_layer_name(n, config.model)
                                       for n in HISTOGRAM_LAYERS))
        weighted += [("histogram", "histogram", n, config.histogram_weight / len(histogram))
                     for n in histogram]
    if masks is not None:
        for k, mask in enumerate(masks):
            for prefix, term_kind, n, weight in weighted:
                h, w, _ = features_lib.layer_shape(n, *mask.shape[:2], config.model)
                terms.append(Term(f"{prefix}/{k + 1}/{n}", term_kind, n, weight, region=k,
                                  mask=mask_at(mask, h, w)))
    else:
        terms += [Term(f"{prefix}/{n}", term_kind, n, weight)
                  for prefix, term_kind, n, weight in weighted]
    terms.append(Term("tv", "tv", None, config.tv_weight))
    return tuple(terms)


def term_layers(terms: Sequence[Term]) -> Tuple[str, ...]:
    """The distinct layers the terms need, in order."""
    return tuple(dict.fromkeys(t.layer for t in terms if t.layer is not None))


def compute_targets(feature_model, terms, content_x, style_xs, image_hw, blend=None,
                    cache: Optional["StyleTargets"] = None):
    """The targets of the content and style terms, computed once.

    Args:
        feature_model: From `features.build_feature_model` (outputs keyed by layer name).
        terms: The terms.
        content_x: Preprocessed content image, (1, H, W, 3); its size is the generated
            image's.
        style_xs: Preprocessed style images, a list of (1, h, w, 3) arrays (each its own size).
        image_hw: (H, W) of the generated image.
        blend: Weight of each style image (summing to 1); equal when None.
        cache: A `StyleTargets` whose style targets are reused when the model, the style
            images, the blend and the size are those of an earlier call (a video's frames),
            and which keeps the ones computed here; None computes them every time.

    Returns:
        A dict: term name -> the content features (h, w, C) or the style Gram target (C, C),
        float32. A style target is the blend of the style images' Gram matrices, each
        rescaled to the generated image's number of positions at that layer (see
        `losses.scaled_gram_matrix`). Blending Gram matrices linearly is blending the
        styles' second moments, which is what the style loss compares. A masked term's
        target is its own style's Gram matrix rescaled to the region's weight, sum(m_l**2)
        over the layer's positions (m_l the term's mask): the guided Gram matrix
        (F * m_l)^T (F * m_l) of the generated image is then compared with it.
    """
    import tensorflow as tf

    targets = {}
    content_terms = [t for t in terms if t.kind == "content"]
    style_terms = [t for t in terms if t.kind in STYLE_KINDS]
    if content_terms:
        features = features_lib.features_of(feature_model, tf.constant(content_x))
        for term in content_terms:
            targets[term.name] = tf.cast(features[term.layer][0], tf.float32)
    if not style_terms:
        return targets
    blend = [1.0 / len(style_xs)] * len(style_xs) if blend is None else list(blend)
    key = None if cache is None else cache.key(feature_model, style_terms, style_xs,
                                               image_hw, blend)
    if key is not None and key in cache.targets:
        targets.update(cache.targets[key])
        return targets
    computed = _style_targets(feature_model, style_terms, style_xs, image_hw, blend)
    if key is not None:
        cache.targets[key] = computed
    targets.update(computed)
    return targets


def _style_targets(feature_model, style_terms, style_xs, image_hw, blend):
    """The style terms' targets (see `compute_targets`): the style images through the
    network, once per call."""
    import tensorflow as tf

    statistics = StyleStatistics(style_terms, image_hw)
    for k, (style_x, share) in enumerate(zip(style_xs, blend)):
        features = features_lib.features_of(feature_model, tf.constant(style_x))
        for layer in dict.fromkeys(t.layer for t in style_terms):
            statistics.add(k, share, layer, features[layer][0])
    return statistics.targets()


class StyleStatistics:
    """The style terms' targets, gathered style image by style image: what each kind
    compares, blended over the styles (or only the term's own style, for a masked term).

    * `style` (Gram): the blend of the styles' Gram matrices, each rescaled to the
      generated image's positions at the layer (`losses.scaled_gram_matrix`); a masked
      term's is its own style's, rescaled to sum(m_l**2) (the guided Gram matrix).
    * `w2`: (mean, cov + epsilon I, its square root) of the blend of the styles' means and
      second raw moments (per position), which are expectations and so blend linearly:
      the Gaussian fit of the styles' features mixed in the blend's proportions.
    * `mrf`: every style's 3 x 3 patches, pooled (the blend cannot weigh a nearest
      neighbour: the plan refuses unequal blend weights with it).
    * `histogram`: the blend of the styles' per-channel quantile functions, each sampled
      at the generated layer's h * w positions (in 1-D, averaging quantile functions is
      the Wasserstein barycentre of the distributions).

    `add` takes a style's features at a layer (whole, or assembled from tiles) or, for
    `style` and `w2`, their sums over the positions (`add_moments`: a tiled style image).
    """

    def __init__(self, style_terms, image_hw, model: str = "vgg19"):
        self.terms = list(style_terms)
        self.image_hw = tuple(image_hw)
        self.model = model
        self.parts: Dict[str, object] = {}

    def _accumulate(self, name, value):
        if name not in self.parts:
            self.parts[name] = value
        elif isinstance(value, tuple):  # (mean, second raw moment): element by element.
            self.parts[name] = tuple(a + b for a, b in zip(self.parts[name], value))
        else:
            self.parts[name] = self.parts[name] + value

    def _wanted(self, term, k):
        return term.region is None or term.region == k

    def add(self, k: int, share: float, layer: str, features) -> None:
        """Style k's features at a layer, (h, w, C)."""
        from nst_keras.engine import losses

        needs_moments = any(t.layer == layer and t.kind in ("style", "w2") for t in self.terms)
        if needs_moments:
            self.add_moments(k, share, layer, *losses.feature_moments(features))
        for term in self.terms:
            if term.layer != layer or not self._wanted(term, k):
                continue
            if term.kind == "mrf":
                self.parts.setdefault(term.name, []).append(
                    losses.extract_patches(features, stride=losses.MRF_STYLE_STRIDE))
            elif term.kind == "histogram":
                h, w, _ = features_lib.layer_shape(layer, *self.image_hw, self.model)
                weight = 1.0 if term.region is not None else share
                self._accumulate(term.name, weight * losses.sorted_quantiles(features, h * w))

    def add_moments(self, k: int, share: float, layer: str, total, first, second) -> None:
        """Style k's sums at a layer (`losses.feature_moments`): its `style` and `w2`
        terms' statistics."""
        import tensorflow as tf

        for term in self.terms:
            if term.layer != layer or not self._wanted(term, k):
                continue
            if term.kind == "style":
                if term.region is not None:
                    scale = float(np.sum(term.mask ** 2)) / total
                    self.parts[term.name] = second * scale
                else:
                    h, w, _ = features_lib.layer_shape(layer, *self.image_hw, self.model)
                    self._accumulate(term.name, share * second * (float(h * w) / total))
            elif term.kind == "w2":
                weight = 1.0 if term.region is not None else share
                mean, raw = first / total, second / total
                self._accumulate(term.name, (weight * tf.cast(mean, tf.float64),
                                             weight * tf.cast(raw, tf.float64)))

    def targets(self) -> Dict[str, object]:
        """Term name -> target, each kind finished."""
        import tensorflow as tf

        from nst_keras.engine import losses

        done = {}
        for term in self.terms:
            part = self.parts[term.name]
            if term.kind == "w2":
                done[term.name] = losses.w2_target(*part)
            elif term.kind == "mrf":
                done[term.name] = tf.concat(part, axis=0)
            else:
                done[term.name] = part
        return done


class StyleTargets:
    """Style Gram targets kept across runs that share their styles: a video's frames.

    The style images do not change from frame to frame, so their Gram matrices are computed
    for the first frame and reused (`compute_targets(..., cache=)`). An entry is found only
    by the same feature model, style images (their bytes' digest), blend, style terms and
    image size, so a cache given the wrong styles recomputes rather than reuses. Masked
    style terms are never cached (their masks would be part of the key).

    Attributes:
        targets: key -> {term name: Gram target}.
    """

    def __init__(self):
        self.targets: Dict[tuple, Dict[str, object]] = {}

    @staticmethod
    def key(feature_model, style_terms, style_xs, image_hw, blend) -> Optional[tuple]:
        """The entry's key, or None when the terms cannot be cached (masked terms)."""
        import hashlib

        if any(t.region is not None for t in style_terms):
            return None
        digests = tuple(hashlib.blake2b(np.ascontiguousarray(x).tobytes(),
                                        digest_size=16).hexdigest() for x in style_xs)
        return (id(feature_model), tuple((t.name, t.kind, t.layer) for t in style_terms),
                digests,
                tuple(float(b) for b in blend), tuple(int(d) for d in image_hw))


@dataclasses.dataclass(frozen=True)
class Temporal:
    """Ruder et al.'s temporal term for one run: a video frame pulled towards the previous.

    Attributes:
        target: The previous frame's result warped onto this frame, RGB float (H, W, 3) in
            0-255 (not rounded).
        weights: The per-pixel reliability c, (H, W) float in [0, 1] (`flow.reliability`).
        weight: The term's weight in the total loss.
    """

    target: np.ndarray = dataclasses.field(repr=False, compare=False)
    weights: np.ndarray = dataclasses.field(repr=False, compare=False)
    weight: float

    def term_and_target(self, height: int, width: int) -> Tuple[Term, np.ndarray]:
        """The `temporal` term (its mask: the weights) and its preprocessed target, at a size.

        A coarse-to-fine stage gets both resized (the target as a float image, the weights
        box-filtered like a mask).
        """
        from nst_keras.media import images

        target = np.asarray(self.target, np.float32)
        weights = np.asarray(self.weights, np.float32)
        if target.shape[:2] != (height, width):
            target = images.resize_float(target, (width, height))
            weights = mask_at(weights, height, width)
        return (Term("temporal", "temporal", None, float(self.weight), mask=weights),
                images.preprocess(target))


def mask_at(mask, height, width):
    """A [0, 1] mask averaged down (box filter) to a layer's (height, width), float32."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=np.float32), mode="F")
    return np.clip(np.asarray(image.resize((width, height), Image.BOX), np.float32), 0, 1)


@dataclasses.dataclass(frozen=True)
class Objective:
    """The loss of one run at one image size: call it on an image.

    Attributes:
        terms: The terms, in order.
        targets: Term name -> target tensor (content features or Gram matrix).
        image_hw: (H, W) of the generated image.
        function: The traced function (shared by every objective with the same model and
            term structure).
        weights: Term name -> weight tensor (arguments of the function).
        masks: Term name -> mask tensor (h, w, 1), for the terms that have one.
    """

    terms: Tuple[Term, ...]
    targets: Dict[str, object]
    image_hw: Tuple[int, int]
    function: object = dataclasses.field(repr=False)
    weights: Dict[str, object] = dataclasses.field(repr=False, default=None)
    masks: Dict[str, object] = dataclasses.field(repr=False, default=None)

    def __call__(self, x):
        """Loss, gradient and terms of a preprocessed image `x`, (1, H, W, 3).

        Returns:
            (loss, gradient, values): the scalar float32 loss, its (1, H, W, 3) float32
            gradient, and a dict of each term's *unweighted* value by name.
        """
        import tensorflow as tf

        return self.function(tf.cast(x, tf.float32), self.targets, self.weights,
                             self.masks or {})

    def with_weights(self, weights: Mapping[str, float]) -> "Objective":
        """The same objective with other term weights (no retrace: they are arguments)."""
        import tensorflow as tf

        terms = tuple(dataclasses.replace(t, weight=float(weights.get(t.name, t.weight)))
                      for t in self.terms)
        return dataclasses.replace(self, terms=terms, weights={
            t.name: tf.constant(t.weight, tf.float32) for t in terms})


#: Feature model -> {term structure: traced function}; dropped with the model (the functions
#: reach the model only through a weak reference, so this cache never keeps one alive).
_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def l1_normalized_gradient(features, weight):
    """The identity on `features`, whose backward pass L1-normalises the term's gradient.

    jcjohnson/neural-style's `-normalize_gradients` (after andersbll/neural_artistic_style):
    each content and style loss module divides the gradient of its *unweighted* loss with
    respect to its layer's features by that gradient's L1 norm, then multiplies by its
    weight: ``w * g / (sum(|g|) + 1e-8)``. Placed between a layer's features and one term,
    the gradient arriving here is ``w * g`` (the term's weight times its own gradient, the
    other terms not yet added), so this returns ``w * (w g / w) / (sum(|w g / w|) + 1e-8)``,
    and 0 for a weight of 0. The forward value, and so the loss, is unchanged: the gradient
    no longer is the loss's gradient (see `StyleConfig.normalize_gradients`).

    Args:
        features: The layer's features as float32.
        weight: The term's weight, a scalar float32 tensor >= 0.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def identity(f, w):
        def grad(upstream):
            unweighted = tf.math.divide_no_nan(upstream, w)
            norm = tf.reduce_sum(tf.abs(unweighted)) + 1e-8
            return w * unweighted / norm, tf.zeros_like(w)

        return tf.identity(f), grad

    return identity(features, weight)


def traced_function(feature_model, terms, *, normalization, tv_power, tv_edges, jit_compile,
                    normalize_gradients: bool = False):
    """The `tf.function` computing (loss, gradient, values) for this term structure.

    Built once per feature model and structure (names, kinds, layers, which terms have
    masks, normalisation, TV settings, XLA, gradient normalisation); TensorFlow traces it
    once per image size. Weights, targets and masks are arguments, so changing them does
    not retrace. With `normalize_gradients`, each term that reads a layer sees that layer
    through `l1_normalized_gradient` (its own copy: content and style terms on one layer
    are normalised apart, as jcjohnson's separate loss modules are); `tv` and `temporal`,
    which read the image, keep their gradients.
    """
    import tensorflow as tf

    settings = TermSettings(normalization, tv_power, tv_edges)
    # Only what decides the traced graph: the masks' values are arguments.
    structure = tuple(dataclasses.replace(t, weight=0.0, mask=None) for t in terms)
    masked = frozenset(t.name for t in terms if t.mask is not None)
    key = (structure, masked, settings, jit_compile, bool(normalize_gradients))
    functions = _FUNCTIONS.setdefault(feature_model, {})
    if key in functions:
        return functions[key]
    model_ref = weakref.ref(feature_model)

    @tf.function(jit_compile=jit_compile, reduce_retracing=False)
    def loss_and_grad(x, targets, weights, masks):
        # Only the image is differentiated: the frozen VGG weights are not watched, so no
        # weight gradient can be asked for (each conv's backward pass is its input gradient).
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            features = model_ref()(x, training=False)

            def seen_by(term):
                """The features a term reads: with `normalize_gradients`, its layer's own
                gradient-normalising copy."""
                if not normalize_gradients or term.layer is None:
                    return features
                return {**features, term.layer: l1_normalized_gradient(
                    tf.cast(features[term.layer], tf.float32), weights[term.name])}

            values = {
                term.name: TERM_LOSSES[term.kind](term, x, seen_by(term),
                                                  targets.get(term.name),
                                                  masks.get(term.name), settings)
                for term in structure
            }
            loss = tf.add_n([weights[name] * value for name, value in values.items()])
        return loss, tape.gradient(loss, x), values

    functions[key] = loss_and_grad
    return loss_and_grad


def build_objective(feature_model, terms, content_rgb, style_rgbs, config: StyleConfig,
                    blend=None, *, extra_targets: Optional[Mapping[str, np.ndarray]] = None,
                    cache: Optional[StyleTargets] = None) -> Objective:
    """Computes the targets once and gives the objective at the content's size.

    Args:
        feature_model: A model whose outputs include every term's layer.
        terms: From `make_terms` (masked terms carry their masks).
        content_rgb: The content image, RGB uint8 (H, W, 3): the generated image's size.
        style_rgbs: The style images, RGB uint8, each (h, w, 3).
        config: The normalisation, TV and XLA settings.
        blend: Weight of each style image; equal when None.
        extra_targets: Term name -> target of the terms whose targets are given rather than
            computed (a `temporal` term's warped previous frame, preprocessed). Targets are
            arguments of the traced function: new ones of the same shape do not retrace.
        cache: Reuse and keep the style targets there (see `StyleTargets`).

    Returns:
        An `Objective`.
    """
    import tensorflow as tf

    from nst_keras.media.images import preprocess

    image_hw = tuple(int(d) for d in content_rgb.shape[:2])
    targets = compute_targets(feature_model, terms, preprocess(content_rgb),
                              [preprocess(s) for s in style_rgbs], image_hw, blend, cache)
    for name, target in (extra_targets or {}).items():
        targets[name] = tf.constant(np.asarray(target, np.float32))
    function = traced_function(feature_model, terms, normalization=config.normalization,
                               tv_power=config.tv_power, tv_edges=config.tv_edges,
                               jit_compile=config.jit_compile,
                               normalize_gradients=config.normalize_gradients)
    weights = {t.name: tf.constant(t.weight, tf.float32) for t in terms}
    masks = {t.name: tf.constant(t.mask[..., None], tf.float32)
             for t in terms if t.mask is not None}
    return Objective(terms=tuple(terms), targets=targets, image_hw=image_hw, function=function,
                     weights=weights, masks=masks)


def evaluate_image(objective: Objective, rgb: np.ndarray) -> float:
    """The total loss of an RGB uint8 image under `objective`: how a saved image is judged."""
    from nst_keras.media.images import preprocess

    loss, _, _ = objective(preprocess(rgb))
    return float(loss)
