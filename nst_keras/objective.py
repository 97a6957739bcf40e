"""The objective: named loss terms, their targets computed once, one traced function.

A run's loss is a weighted sum of named terms (`Term`): `content/<layer>`, `style/<layer>`
and `tv`. The targets of the content and style terms (the content image's features, the
style images' Gram matrices) never change during a run, so they are computed once
(`compute_targets`). The traced function takes the image, the targets and the weights as
arguments and returns the loss, its gradient and every term's unweighted value by name; it
is cached per feature model and term structure, so a second run at the same image size
(another style, other weights) does not retrace.

Departure from the book: the book sends the content, style and generated images through
VGG19 together at every evaluation (three times the work, the targets recomputed each time).
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from nst_keras.config import StyleConfig

#: The kinds of term; a term's kind says which loss function it uses.
KINDS = ("content", "style", "tv")


@dataclasses.dataclass(frozen=True)
class Term:
    """One weighted term of the loss.

    Attributes:
        name: Unique name: `content/<layer>`, `style/<layer>`, `style/<k>/<layer>` (the k-th
            style, from 1, within its mask) or `tv`.
        kind: `"content"`, `"style"` or `"tv"`.
        layer: The Keras layer name (None for `tv`).
        weight: The term's weight in the total loss.
        region: For a style term with masks: the index of its style and mask (from 0);
            None for a style term over the whole image (the styles' blended target).
    """

    name: str
    kind: str
    layer: Optional[str]
    weight: float
    region: Optional[int] = None


def make_terms(config: StyleConfig, regions: int = 0) -> Tuple[Term, ...]:
    """The terms a config asks for: its content layers, style layers and total variation.

    The content weight is shared equally by the content layers, and the style weight by the
    style layers (the book has one content layer; the paper's w_l = 1/5 for five style
    layers). Duplicate layers count once. With `regions` masked styles, each style has its
    own style terms at the full style weight, each within its region (Gatys et al. 2017).
    """
    from nst_keras.features import resolve_layer_name

    content = list(dict.fromkeys(resolve_layer_name(n, config.model) for n in config.content_layers))
    style = list(dict.fromkeys(resolve_layer_name(n, config.model) for n in config.style_layers))
    terms = [Term(f"content/{n}", "content", n, config.content_weight / len(content))
             for n in content]
    if regions:
        terms += [Term(f"style/{k + 1}/{n}", "style", n, config.style_weight / len(style), k)
                  for k in range(regions) for n in style]
    else:
        terms += [Term(f"style/{n}", "style", n, config.style_weight / len(style))
                  for n in style]
    terms.append(Term("tv", "tv", None, config.tv_weight))
    return tuple(terms)


def term_layers(terms: Sequence[Term]) -> Tuple[str, ...]:
    """The distinct layers the terms need, in order."""
    return tuple(dict.fromkeys(t.layer for t in terms if t.layer is not None))


def compute_targets(feature_model, terms, content_x, style_xs, image_hw, blend=None,
                    masks=None):
    """The targets of the content and style terms, computed once.

    Args:
        feature_model: From `features.build_feature_model` (outputs keyed by layer name).
        terms: The terms.
        content_x: Preprocessed content image, (1, H, W, 3); its size is the generated
            image's.
        style_xs: Preprocessed style images, a list of (1, h, w, 3) arrays (each its own size).
        image_hw: (H, W) of the generated image.
        blend: Weight of each style image (summing to 1); equal when None.
        masks: For terms with a region: one (H, W) float array in [0, 1] per style, at the
            generated image's size.

    Returns:
        A dict: term name -> the content features (h, w, C) or the style Gram target (C, C),
        float32. A style target is the blend of the style images' Gram matrices, each
        rescaled to the generated image's number of positions at that layer (see
        `losses.scaled_gram_matrix`). Blending Gram matrices linearly is blending the
        styles' second moments, which is what the style loss compares. A masked term's
        target is its own style's Gram matrix rescaled to the region's weight, sum(m_l**2)
        over the layer's positions, and `name#mask` holds m_l, the mask box-filtered to the
        layer's size, (h, w, 1): the guided Gram matrix (F * m_l)^T (F * m_l) of the
        generated image is then compared with it.
    """
    import tensorflow as tf

    from nst_keras.features import features_of, layer_shape
    from nst_keras.losses import scaled_gram_matrix

    targets = {}
    content_terms = [t for t in terms if t.kind == "content"]
    style_terms = [t for t in terms if t.kind == "style"]
    if content_terms:
        features = features_of(feature_model, tf.constant(content_x))
        for term in content_terms:
            targets[term.name] = tf.cast(features[term.layer][0], tf.float32)
    if style_terms and style_terms[0].region is not None:
        for k, style_x in enumerate(style_xs):
            features = features_of(feature_model, tf.constant(style_x))
            for term in (t for t in style_terms if t.region == k):
                h, w, _ = layer_shape(term.layer, *image_hw)
                mask = _mask_at(masks[k], h, w)
                targets[term.name] = scaled_gram_matrix(features[term.layer][0],
                                                        float(np.sum(mask ** 2)))
                targets[term.name + "#mask"] = tf.constant(mask[..., None], tf.float32)
    elif style_terms:
        blend = [1.0 / len(style_xs)] * len(style_xs) if blend is None else list(blend)
        for style_x, share in zip(style_xs, blend):
            features = features_of(feature_model, tf.constant(style_x))
            for term in style_terms:
                h, w, _ = layer_shape(term.layer, *image_hw)
                gram = share * scaled_gram_matrix(features[term.layer][0], h * w)
                targets[term.name] = targets[term.name] + gram if term.name in targets else gram
    return targets


def _mask_at(mask, height, width):
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
    """

    terms: Tuple[Term, ...]
    targets: Dict[str, object]
    image_hw: Tuple[int, int]
    function: object = dataclasses.field(repr=False)
    weights: Dict[str, object] = dataclasses.field(repr=False, default=None)

    def __call__(self, x):
        """Loss, gradient and terms of a preprocessed image `x`, (1, H, W, 3).

        Returns:
            (loss, gradient, values): the scalar float32 loss, its (1, H, W, 3) float32
            gradient, and a dict of each term's *unweighted* value by name.
        """
        import tensorflow as tf

        return self.function(tf.cast(x, tf.float32), self.targets, self.weights)


#: Feature model -> {term structure: traced function}; dropped with the model (the functions
#: reach the model only through a weak reference, so this cache never keeps one alive).
_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def traced_function(feature_model, terms, *, normalization, tv_power, tv_edges, jit_compile):
    """The `tf.function` computing (loss, gradient, values) for this term structure.

    Built once per feature model and structure (names, kinds, layers, normalisation, TV
    settings, XLA); TensorFlow traces it once per image size. Weights and targets are
    arguments, so changing them does not retrace.
    """
    import tensorflow as tf

    from nst_keras.losses import content_loss, style_loss, total_variation_loss

    structure = (tuple((t.name, t.kind, t.layer, t.region is not None) for t in terms),
                 normalization, tv_power, tv_edges, jit_compile)
    functions = _FUNCTIONS.setdefault(feature_model, {})
    if structure in functions:
        return functions[structure]
    model_ref = weakref.ref(feature_model)

    @tf.function(jit_compile=jit_compile, reduce_retracing=False)
    def loss_and_grad(x, targets, weights):
        image_hw = (int(x.shape[1]), int(x.shape[2]))
        # Only the image is differentiated: the frozen VGG weights are not watched, so no
        # weight gradient can be asked for (each conv's backward pass is its input gradient).
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            features = model_ref()(x, training=False)
            values = {}
            for name, kind, layer, masked in structure[0]:
                if kind == "content":
                    values[name] = content_loss(targets[name], features[layer][0],
                                                normalization=normalization)
                elif kind == "style":
                    layer_features = features[layer][0]
                    if masked:  # Guided Gram matrix: the features within the region.
                        layer_features = tf.cast(layer_features, tf.float32) * targets[
                            name + "#mask"]
                    values[name] = style_loss(targets[name], layer_features,
                                              normalization=normalization, image_shape=image_hw)
                else:
                    values[name] = total_variation_loss(x, power=tv_power, edges=tv_edges)
            loss = tf.add_n([weights[name] * value for name, value in values.items()])
        return loss, tape.gradient(loss, x), values

    functions[structure] = loss_and_grad
    return loss_and_grad


def build_objective(feature_model, terms, content_rgb, style_rgbs, config: StyleConfig,
                    blend=None, masks=None) -> Objective:
    """Computes the targets once and gives the objective at the content's size.

    Args:
        feature_model: A model whose outputs include every term's layer.
        terms: From `make_terms`.
        content_rgb: The content image, RGB uint8 (H, W, 3): the generated image's size.
        style_rgbs: The style images, RGB uint8, each (h, w, 3).
        config: The normalisation, TV and XLA settings.
        blend: Weight of each style image; equal when None.
        masks: One (H, W) mask in [0, 1] per style, for terms with regions.

    Returns:
        An `Objective`.
    """
    from nst_keras.images import preprocess

    image_hw = tuple(int(d) for d in content_rgb.shape[:2])
    targets = compute_targets(feature_model, terms, preprocess(content_rgb),
                              [preprocess(s) for s in style_rgbs], image_hw, blend, masks)
    function = traced_function(feature_model, terms, normalization=config.normalization,
                               tv_power=config.tv_power, tv_edges=config.tv_edges,
                               jit_compile=config.jit_compile)
    import tensorflow as tf

    weights = {t.name: tf.constant(t.weight, tf.float32) for t in terms}
    return Objective(terms=tuple(terms), targets=targets, image_hw=image_hw, function=function,
                     weights=weights)


def evaluate_image(objective: Objective, rgb: np.ndarray) -> float:
    """The total loss of an RGB uint8 image under `objective`: how a saved image is judged."""
    from nst_keras.images import preprocess

    loss, _, _ = objective(preprocess(rgb))
    return float(loss)
