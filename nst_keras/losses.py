"""The losses of neural style transfer, under the names the book gives them.

Small pure functions on TensorFlow tensors (numpy arrays work too). Two normalisations are
available wherever the book and the paper differ:

* `"book"` (Chollet, *Deep Learning with Python*, 8.3): content loss sum((C - B)**2);
  style loss sum((S - C)**2) / (4 * 3**2 * (H*W)**2) with 3 channels and the *image's*
  height H and width W, the same for every layer.
* `"paper"` (Gatys et al. 2015/2016, eq. 1 and 4): content loss 1/2 * sum((F - P)**2);
  style loss per layer 1 / (4 * N_l**2 * M_l**2) * sum((G - A)**2), with N_l the layer's
  channels and M_l its height times width.

A third, `"jcjohnson"` (jcjohnson/neural-style's `nn.MSECriterion` losses), makes its preset
reproducible: content loss mean((F - P)**2); style loss mean((G/(N_l M_l) - A/(N_l M_l))**2)
over the N_l x N_l entries, i.e. sum((G - A)**2) / (N_l**2 * (N_l * M_l)**2).
"""

from __future__ import annotations

import tensorflow as tf

from nst_keras.config import NORMALIZATIONS, TV_EDGES


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"`normalization` must be one of {', '.join(NORMALIZATIONS)}. "
            f"Received: normalization={normalization!r}"
        )


def content_loss(base, combination, *, normalization="book"):
    """Squared error between the content features and the generated image's features.

    book:      L = sum((combination - base)**2)
    paper:     L = 1/2 * sum((combination - base)**2)
    jcjohnson: L = mean((combination - base)**2)

    Args:
        base: Features of the content ("base") image, any shape.
        combination: Features of the generated image, the same shape.
        normalization: `"book"`, `"paper"` or `"jcjohnson"`.

    Returns:
        A scalar float32 tensor.
    """
    _check_normalization(normalization)
    squared = tf.square(tf.cast(combination, tf.float32) - tf.cast(base, tf.float32))
    if normalization == "jcjohnson":
        return tf.reduce_mean(squared)
    loss = tf.reduce_sum(squared)
    return 0.5 * loss if normalization == "paper" else loss


def gram_matrix(x):
    """The Gram matrix of a feature map: inner products between its channels.

    G[i, j] = sum over positions p of F[p, i] * F[p, j], with F the features reshaped
    to (H*W, C), accumulated in float32 whatever the features' dtype (bfloat16 runs).
    Not normalised (the losses normalise).

    Its gradient takes one matrix product instead of TensorFlow's two: G = F^T F, so
    dL/dF = F (dL/dG + dL/dG^T); the generic MatMul gradient does not know both factors
    are F (2 M C^2 fewer FLOPs per style layer, about 2% of an evaluation).

    Args:
        x: Features of shape (H, W, C), or (1, H, W, C).

    Returns:
        A (C, C) float32 tensor.
    """
    return _gram(tf.cast(x, tf.float32))


@tf.custom_gradient
def _gram(x):
    features = tf.reshape(x, (-1, tf.shape(x)[-1]))

    def grad(upstream):
        return tf.reshape(tf.matmul(features, upstream + tf.transpose(upstream)), tf.shape(x))

    return tf.matmul(features, features, transpose_a=True), grad


def scaled_gram_matrix(x, positions):
    """The Gram matrix of `x` rescaled as if `x` had `positions` spatial positions.

    A Gram matrix sums over positions, so a style image of another size than the generated
    image has Gram entries on another scale. The book avoids this by stretching the style
    image to the content's size; we keep the style image's aspect ratio instead (departure)
    and rescale its Gram matrix by positions / (h*w). When the sizes agree this is exactly
    `gram_matrix(x)`.

    Args:
        x: Features of shape (h, w, C) or (1, h, w, C).
        positions: The number of positions (H*W) of the features it will be compared with.

    Returns:
        A (C, C) tensor.
    """
    x = tf.cast(x, tf.float32)
    own = tf.cast(tf.reduce_prod(tf.shape(x)[-3:-1]), tf.float32)
    return gram_matrix(x) * (tf.cast(positions, tf.float32) / own)


def gram_loss(target_gram, combination_gram, *, channels, positions):
    """Normalised squared error between two Gram matrices: the style loss of one layer.

    L = sum((target_gram - combination_gram)**2) / (4 * channels**2 * positions**2)

    Args:
        target_gram: Gram matrix of the style image, (C, C).
        combination_gram: Gram matrix of the generated image, (C, C).
        channels: N in the formula (3 for the book; the layer's channels for the paper).
        positions: M in the formula (the image's H*W for the book; the layer's for the paper).

    Returns:
        A scalar tensor.
    """
    squared = tf.reduce_sum(tf.square(target_gram - combination_gram))
    return squared / (4.0 * float(channels) ** 2 * float(positions) ** 2)


def style_normalizer(features_shape, image_shape, normalization="book"):
    """The (channels, positions) pair of `gram_loss` for one layer.

    Args:
        features_shape: Shape of the generated image's features, (..., h, w, C).
        image_shape: (H, W) of the generated image.
        normalization: `"book"` -> (3, H*W); `"paper"` -> (C, h*w); `"jcjohnson"` ->
            (C, C * h*w / 2): 4 N^2 M^2 is then C^2 (C h w)^2, its divisor.

    Returns:
        A tuple (channels, positions) of Python ints.
    """
    _check_normalization(normalization)
    h, w, c = (int(d) for d in features_shape[-3:])
    if normalization == "book":
        return 3, int(image_shape[0]) * int(image_shape[1])
    if normalization == "jcjohnson":
        return c, c * h * w / 2
    return c, h * w


def style_loss(style, combination, *, normalization="book", image_shape=None):
    """Squared error between the Gram matrices of the style and generated features.

    book:      L = sum((S - C)**2) / (4 * 3**2 * (H*W)**2), H and W the *image's* size
    paper:     L = sum((G - A)**2) / (4 * N_l**2 * M_l**2), N_l channels, M_l = h_l*w_l
    jcjohnson: L = sum((G - A)**2) / (N_l**2 * (N_l * M_l)**2)

    S (or A) is the style image's Gram matrix, rescaled to the generated features' number
    of positions when the two differ in size (see `scaled_gram_matrix`). The objective
    passes S itself, computed once (a (C, C) `style`), instead of the style's features.

    Args:
        style: Features of the style ("reference") image, (h', w', C) or (1, h', w', C);
            or its Gram matrix already on the combination's scale, (C, C).
        combination: Features of the generated image, (h, w, C) or (1, h, w, C).
        normalization: `"book"`, `"paper"` or `"jcjohnson"`.
        image_shape: (H, W) of the generated image; required for `"book"`.

    Returns:
        A scalar float32 tensor.

    Raises:
        ValueError: If `image_shape` is missing for the book's normalisation.
    """
    _check_normalization(normalization)
    if normalization == "book" and image_shape is None:
        raise ValueError(
            "The book's normalisation needs the image's (H, W). Received: image_shape=None"
        )
    shape = combination.shape
    channels, positions = style_normalizer(shape, image_shape or (0, 0), normalization)
    if len(style.shape) == 2:
        target = tf.cast(style, tf.float32)
    else:
        target = scaled_gram_matrix(style, int(shape[-3]) * int(shape[-2]))
    return gram_loss(target, gram_matrix(combination), channels=channels, positions=positions)


def total_variation_loss(x, *, power=1.25, edges="all"):
    """Total variation of an image batch: a smoothness prior on the generated pixels.

    edges="all" (default):
        L = sum over pixels (i, j) and channels of
            ((x[i+1, j] - x[i, j])**2 + (x[i, j+1] - x[i, j])**2) ** power,
        where a difference across the image's bottom or right edge counts as 0.
    edges="book": the book's formula exactly, the same sum over rows 0..H-2 and columns
        0..W-2 only.

    Departure from the book (the default): the book's slicing never penalises the last
    row's horizontal and the last column's vertical differences, so a 1-pixel line of
    noise along the right and bottom borders is the visible result. Here they count. On a
    constant image both are 0; on an n x n checkerboard of 0 and 1 (one channel) "all"
    gives (n-1)**2 * 2**power + 2*(n-1), "book" (n-1)**2 * 2**power.

    Args:
        x: Images of shape (batch, H, W, C).
        power: The exponent (the book's 1.25).
        edges: `"all"` or `"book"`.

    Returns:
        A scalar float32 tensor.

    Raises:
        ValueError: If `edges` is unknown.
    """
    if edges not in TV_EDGES:
        raise ValueError(f"`edges` must be 'all' or 'book'. Received: edges={edges!r}")
    x = tf.cast(x, tf.float32)
    if edges == "book":
        down = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
        right = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
    else:
        down = tf.pad(x[:, 1:, :, :] - x[:, :-1, :, :], [[0, 0], [0, 1], [0, 0], [0, 0]])
        right = tf.pad(x[:, :, 1:, :] - x[:, :, :-1, :], [[0, 0], [0, 0], [0, 1], [0, 0]])
    return tf.reduce_sum(tf.pow(tf.square(down) + tf.square(right), power))
