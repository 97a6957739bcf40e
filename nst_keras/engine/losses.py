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

import numpy as np
import tensorflow as tf

from nst_keras.config import NORMALIZATIONS, TV_EDGES
from nst_keras.engine.features import MRF_CHUNK_BYTES, MRF_STYLE_STRIDE


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
    are F (2 M C^2 fewer FLOPs per style layer, about 2% of an evaluation). For bfloat16
    features that product runs in bfloat16 (G itself stays float32): the gradient is cast
    to bfloat16 on its way back through the network anyway, and it took the bfloat16
    objective from 1.12 to 1.09 x its bound (`docs/benchmarks.md`, issue 36).

    Args:
        x: Features of shape (H, W, C), or (1, H, W, C).

    Returns:
        A (C, C) float32 tensor.
    """
    return _gram(x if x.dtype == tf.bfloat16 else tf.cast(x, tf.float32))


@tf.custom_gradient
def _gram(x):
    # The product in float32 whatever x's dtype (a bfloat16 one would round G itself, and
    # late in a run the loss is the difference of nearly equal Gram entries); the gradient's
    # product in x's own dtype: for bfloat16 features, bfloat16, the dtype the gradient is
    # cast to anyway on its way back through the network, from the bfloat16 features (no
    # float32 copy kept for the backward pass). For float32 both casts are no-ops.
    features = tf.reshape(x, (-1, tf.shape(x)[-1]))
    wide = tf.cast(features, tf.float32)

    def grad(upstream):
        symmetric = tf.cast(upstream + tf.transpose(upstream), x.dtype)
        return tf.reshape(tf.matmul(features, symmetric), tf.shape(x))

    return tf.matmul(wide, wide, transpose_a=True), grad


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
    # Each difference is the image rolled by one pixel minus itself, with the wrapped-around
    # difference (the last row's or column's) zeroed by a 0/1 mask: the same values as
    # slicing, but the gradient of a roll is a roll back, where the gradient of a slice is
    # a StridedSliceGrad writing into a new zero image: at 400 x 533 x 3, float32, 2 cores,
    # the loss and its gradient alone take 9 ms this way and 24 ms sliced.
    shape = tf.shape(x)
    last_row = tf.reshape(tf.cast(tf.range(shape[1]) < shape[1] - 1, tf.float32), (1, -1, 1, 1))
    last_col = tf.reshape(tf.cast(tf.range(shape[2]) < shape[2] - 1, tf.float32), (1, 1, -1, 1))
    down = (tf.roll(x, -1, axis=1) - x) * last_row
    right = (tf.roll(x, -1, axis=2) - x) * last_col
    if edges == "book":  # Rows and columns 0..n-2 only, for both differences.
        down, right = down * last_col, right * last_row
    return tf.reduce_sum(tf.pow(tf.square(down) + tf.square(right), power))


# --- Other style losses: Wasserstein-2, MRF (patches), histogram ---------------------------

#: The epsilon added to both covariance matrices of the W2 loss: small covariances are
#: singular (fewer positions than channels, or dead channels), and a matrix square root's
#: gradient is not defined there. crowsonkb/style-transfer-pytorch's `StyleLossW2(eps=1e-4)`
#: is on PyTorch VGG features of [0, 1] inputs divided by ImageNet's std (0.226); ours come
#: from 0-255 inputs, about 255 * 0.226 = 57.6 times larger, so its covariances are 57.6**2
#: times larger and the same epsilon relative to them is 1e-4 * 57.6**2 = 0.33. Measured
#: (Tübingen x The Starry Night, 96 px, VGG16 stand-in, L-BFGS): with 1e-4 itself the square
#: root's gradient is so steep near the epsilon-sized eigenvalues that L-BFGS-B's line search
#: failed after 21 evaluations (W2 term 7.8e6 from 7.8e6); with 0.33 the loss fell from
#: 1.26e7 to 3.8e5 in 40.
W2_EPSILON = 1e-4 * (255 * 0.226) ** 2


def feature_moments(x, weights=None):
    """The weighted sums a Gaussian fit needs: (total weight, sum w F, sum w F F^T).

    total = sum_p w_p, first = sum_p w_p F_p (C,), second = sum_p w_p F_p F_p^T (C, C),
    over the positions p of the features F (h, w, C), each weighted by w_p (a mask at the
    layer's size, (h, w) or (h, w, 1); 1 everywhere when None). Sums, so that a tiled
    evaluation adds up its tiles' (see `nst_keras.engine.tiling`).

    Args:
        x: Features (h, w, C) or (1, h, w, C).
        weights: Per-position weights, or None.

    Returns:
        (total, first, second), float32 tensors: a scalar, (C,) and (C, C).
    """
    x = tf.cast(x, tf.float32)
    flat = tf.reshape(x, (-1, tf.shape(x)[-1]))
    if weights is None:
        w = tf.ones((tf.shape(flat)[0], 1), tf.float32)
    else:
        w = tf.reshape(tf.cast(weights, tf.float32), (-1, 1))
    return (tf.reduce_sum(w), tf.reduce_sum(w * flat, axis=0),
            tf.matmul(w * flat, flat, transpose_a=True))


def gaussian_fit(total, first, second, epsilon=W2_EPSILON):
    """The mean and covariance of weighted features from their moments (`feature_moments`).

    mean = first / total; cov = second / total - mean mean^T + epsilon * I (the population
    covariance, as crowsonkb's: the second raw moment minus the mean's outer product; the
    epsilon keeps it positive definite).

    Computed in float64: the epsilon is far below float32's resolution of a covariance
    entry, and the matrices are small (C x C).

    Returns:
        (mean (C,), cov (C, C)), float64.
    """
    total, first, second = (tf.cast(v, tf.float64) for v in (total, first, second))
    mean = first / total
    cov = second / total - mean[:, None] * mean[None, :]
    cov = 0.5 * (cov + tf.transpose(cov))  # Symmetric to the last bit, for `eigh`.
    return mean, cov + epsilon * tf.eye(tf.shape(cov)[0], dtype=cov.dtype)


def sqrtm_psd(a):
    """The square root of a symmetric positive semi-definite matrix, by `eigh` in float64:
    V diag(sqrt(max(lambda, 0))) V^T. For targets (no gradient)."""
    a = tf.cast(a, tf.float64)
    values, vectors = tf.linalg.eigh(0.5 * (a + tf.transpose(a)))
    return tf.matmul(vectors * tf.sqrt(tf.maximum(values, 0.0)), vectors, transpose_b=True)


@tf.custom_gradient
def trace_sqrtm(a):
    """tr(sqrt(A)) of a symmetric positive definite A: sum_i sqrt(lambda_i).

    Its gradient is A^(-1/2) / 2 = V diag(1 / (2 sqrt(lambda))) V^T, from the same `eigh`:
    the Sylvester equation of the square root's derivative, solved in A's eigenbasis
    (crowsonkb's `_MatrixSquareRootEig.backward`) and contracted with the identity. No
    division by eigenvalue gaps, so repeated eigenvalues are harmless; the W2 loss's
    epsilon keeps lambda away from 0 (floored at 1e-30 here). In float64: with the
    epsilon, lambda can be 1e-8 (epsilon squared), below float32's rounding of A.
    """
    values, vectors = tf.linalg.eigh(0.5 * (a + tf.transpose(a)))
    roots = tf.sqrt(tf.maximum(values, 1e-30))

    def grad(upstream):
        return upstream * tf.matmul(vectors / (2.0 * roots), vectors, transpose_b=True)

    return tf.reduce_sum(roots), grad


def wasserstein2_loss(style_mean, style_cov, combination_mean, combination_cov, *,
                      style_cov_sqrt=None):
    """The squared 2-Wasserstein distance between two Gaussians, per channel.

    L = (||m - m_s||**2 + tr(S_s + S - 2 (S_s^(1/2) S S_s^(1/2))^(1/2))) / C

    with m, S the generated features' mean and covariance and m_s, S_s the style's, both
    with `W2_EPSILON` on the diagonal (`gaussian_fit`), and C the channels: crowsonkb's
    normalisation (his `mean` over channels of the mean term and of the diagonal). The
    square root of S_s is the target's, computed once.

    Args:
        style_mean: The style's Gaussian's mean, (C,).
        style_cov: The style's Gaussian's covariance, (C, C).
        combination_mean: The generated image's mean, (C,).
        combination_cov: The generated image's covariance, (C, C).
        style_cov_sqrt: S_s^(1/2), if already computed.

    Returns:
        A scalar float32 tensor (the matrix algebra in float64, see `gaussian_fit`).
    """
    style_cov = tf.cast(style_cov, tf.float64)
    combination_cov = tf.cast(combination_cov, tf.float64)
    root = sqrtm_psd(style_cov) if style_cov_sqrt is None else tf.cast(style_cov_sqrt,
                                                                         tf.float64)
    channels = tf.cast(tf.shape(style_cov)[0], tf.float64)
    mean_term = tf.reduce_sum(tf.square(tf.cast(combination_mean, tf.float64)
                                        - tf.cast(style_mean, tf.float64)))
    product = tf.matmul(root, tf.matmul(combination_cov, root))
    cov_term = (tf.linalg.trace(style_cov) + tf.linalg.trace(combination_cov)
                - 2.0 * trace_sqrtm(product))
    return tf.cast((mean_term + cov_term) / channels, tf.float32)


def w2_target(mean, second_raw_moment, epsilon=W2_EPSILON):
    """A style's W2 target from its (blended) mean and second raw moment E[F F^T]:
    (mean, cov + epsilon I, its square root). Means and second raw moments blend linearly
    (they are expectations: a mixture of the styles' features), covariances do not."""
    mean, cov = gaussian_fit(1.0, mean, second_raw_moment, epsilon)
    return mean, cov, sqrtm_psd(cov)


def w2_style_loss(target, combination, *, weights=None):
    """The W2 style loss of one layer: `wasserstein2_loss` of the generated features'
    Gaussian fit (weighted by `weights`, a mask at the layer's size, when given: the
    features' distribution within the region) against `target` = (mean, cov, cov_sqrt)
    from `w2_target`.

    Returns:
        A scalar float32 tensor.
    """
    mean, cov = gaussian_fit(*feature_moments(combination, weights))
    return wasserstein2_loss(target[0], target[1], mean, cov, style_cov_sqrt=target[2])


#: The MRF loss's patch size (3 x 3, Li and Wand 2016). Its similarity matrix is computed
#: in chunks of `MRF_CHUNK_BYTES` (from `features`, so that the plan reads it without
#: TensorFlow).
MRF_PATCH = 3
# The style's patches are taken every MRF_STYLE_STRIDE-th (2nd) row and column, as
# CNNMRF's `target_sample_stride {2, 2}` ("stride to sample mrf on style image"): a quarter
# of the patches to match against. With every patch an MRF evaluation cost 3x Gram's at
# 256 px. The generated image's patches stay at stride 1 (CNNMRF samples those every 2nd
# too: not reproduced, it would leave pixels without a pull).


def extract_patches(x, size=MRF_PATCH, stride=1):
    """Every `size` x `size` patch of a feature map at `stride`, within the map ("valid"):
    (rows * columns, size * size * C) float32, row by row (rows = (h - size) // stride + 1),
    each patch's values in (row, column, channel) order."""
    x = tf.cast(x, tf.float32)
    if len(x.shape) == 3:
        x = x[None]
    patches = tf.image.extract_patches(x, sizes=[1, size, size, 1],
                                       strides=[1, stride, stride, 1],
                                       rates=[1, 1, 1, 1], padding="VALID")
    return tf.reshape(patches, (-1, patches.shape[-1]))


def mrf_match(patches, style_patches, chunk_bytes=MRF_CHUNK_BYTES):
    """The nearest style patch of each patch by normalised cross-correlation.

    NN(i) = argmax_j <P_i, S_j> / (|P_i| |S_j|): |P_i| does not change the argmax over j,
    so each style patch is normalised and the similarities are inner products. The
    similarity matrix (patches x style patches) is computed a chunk of rows at a time, at
    most `chunk_bytes` each (0.66 GB in all at 400 x 533 on relu3_1), so its peak is one
    chunk's.

    Args:
        patches: (P, D) float32.
        style_patches: (Q, D) float32.
        chunk_bytes: The most bytes of one chunk of the similarity matrix.

    Returns:
        (P,) int32 indices into the style patches (no gradient).
    """
    patches = tf.stop_gradient(tf.cast(patches, tf.float32))
    style = tf.cast(style_patches, tf.float32)
    style = style / tf.maximum(tf.norm(style, axis=1, keepdims=True), 1e-8)
    # The count may be known only when it runs (a tile's core), so the chunking is in ops.
    count = tf.shape(patches)[0]
    rows = tf.minimum(tf.maximum(count, 1), mrf_chunk_rows(style_patches.shape[0], chunk_bytes))
    chunks = (count + rows - 1) // rows
    padded = tf.pad(patches, [[0, chunks * rows - count], [0, 0]])

    def nearest(chunk):
        return tf.argmax(tf.matmul(chunk, style, transpose_b=True), axis=1, output_type=tf.int32)

    found = tf.map_fn(nearest, tf.reshape(padded, tf.stack([chunks, rows, tf.shape(patches)[1]])),
                      fn_output_signature=tf.TensorSpec([None], tf.int32),
                      parallel_iterations=1)
    return tf.reshape(found, (-1,))[:count]


def mrf_chunk_rows(style_count: int, chunk_bytes: int = MRF_CHUNK_BYTES) -> int:
    """How many generated patches one chunk of the similarity matrix holds."""
    return max(1, int(chunk_bytes) // (4 * max(1, int(style_count))))


def mrf_loss(style_patches, combination, *, weights=None, assignment=None, normalizer=None):
    """The MRF style loss of one layer (Li and Wand 2016, "CNNMRF"), per patch value.

    L = sum_i w_i ||P_i - S_NN(i)||**2 / (sum_i w_i * 9 C)

    over the 3 x 3 patches P_i of the generated features (stride 1, within the map), S_NN(i)
    the style patch nearest to P_i by normalised cross-correlation (`mrf_match`), w_i the
    patch's weight (a mask at the layer's size, read at the patch's centre; 1 when None).
    The matching is not differentiated (it is piecewise constant): the gradient pulls each
    patch towards its match, as Li and Wand's. Normalised per patch value, so the value
    does not grow with the image.

    Args:
        style_patches: The style's patches (Q, 9 C) (`extract_patches`).
        combination: The generated features, (h, w, C) or (1, h, w, C).
        weights: Per-position weights at the layer's size, or None.
        assignment: (P,) style patch indices to use instead of matching (tests; fixed
            assignments cannot flip at near-ties).
        normalizer: The divisor, when the sum covers part of an image (a tile's core):
            the whole image's sum_i w_i * 9 C.

    Returns:
        A scalar float32 tensor.
    """
    patches = extract_patches(combination)
    w = None if weights is None else centre_weights(weights)
    if normalizer is None:
        total = (tf.cast(tf.shape(patches)[0], tf.float32) if w is None
                 else tf.reduce_sum(w))
        normalizer = total * float(patches.shape[-1])
    return mrf_patch_loss(style_patches, patches, w, normalizer, assignment)


def mrf_patch_loss(style_patches, patches, weights, normalizer, assignment=None):
    """`mrf_loss` of patches already extracted: sum_i w_i ||P_i - S_NN(i)||**2 / normalizer
    (w_i: (P,) patch weights, or None for 1). A tile's core gives its own patches and the
    whole image's normalizer."""
    if assignment is None:
        assignment = mrf_match(patches, style_patches)
    nearest = tf.gather(tf.cast(style_patches, tf.float32), assignment)
    squared = tf.reduce_sum(tf.square(patches - nearest), axis=1)
    if weights is not None:
        squared = squared * weights
    return tf.reduce_sum(squared) / normalizer


def centre_weights(weights, size=MRF_PATCH):
    """The weight of each patch: the (h, w) or (h, w, 1) weights at the patches' centres,
    flattened in `extract_patches`' order."""
    weights = tf.cast(weights, tf.float32)
    if len(weights.shape) == 3:
        weights = weights[..., 0]
    r = size // 2
    return tf.reshape(weights[r:tf.shape(weights)[0] - r, r:tf.shape(weights)[1] - r], (-1,))


def sorted_quantiles(x, count):
    """A feature map's per-channel quantile function sampled at `count` positions:
    (count, C) float32, row k the value at quantile (k + 0.5) / count, linearly interpolated
    between the sorted values (each of the n sorted values sits at (j + 0.5) / n)."""
    x = tf.cast(x, tf.float32)
    flat = tf.sort(tf.reshape(x, (-1, tf.shape(x)[-1])), axis=0)
    n = int(flat.shape[0])
    positions = (np.arange(int(count), dtype=np.float64) + 0.5) / int(count)
    return _interpolate(flat, tf.constant(positions * n - 0.5, tf.float32))


def _interpolate(table, index):
    """table[index] per column, linear between rows, clamped at the ends: table (n, C),
    index (m,) or (m, C) fractional row numbers."""
    n = int(table.shape[0])
    index = tf.clip_by_value(index, 0.0, float(n - 1))
    low = tf.minimum(tf.cast(tf.floor(index), tf.int32), n - 1)
    high = tf.minimum(low + 1, n - 1)
    frac = index - tf.cast(low, tf.float32)
    if len(index.shape) == 1:
        return (tf.gather(table, low) * (1.0 - frac[:, None])
                + tf.gather(table, high) * frac[:, None])
    columns = tf.transpose(table)  # (C, n): one row of values per channel.
    low_values = tf.transpose(tf.gather(columns, tf.transpose(low), batch_dims=1))
    high_values = tf.transpose(tf.gather(columns, tf.transpose(high), batch_dims=1))
    return low_values * (1.0 - frac) + high_values * frac


def histogram_loss(style_quantiles, combination, *, weights=None):
    """Risser et al.'s histogram loss of one layer, by sorted values (exact histogram
    matching): the squared 1-D Wasserstein distance of each channel's distribution.

    L = sum_c sum_p w_p (F_pc - R_c(F)_p)**2 / (C sum_p w_p)

    R_c(F) is channel c histogram-matched to the style: the value at rank k of the sorted
    F_.c becomes the style's quantile at that rank's position (c_k - w_k / 2) / sum w, c_k
    the weights summed up to rank k (so (k + 1/2) / n without weights). R is held constant
    (it is piecewise constant in F), as Risser et al. do, so the gradient pulls each value
    towards its matched value. Sorted values, not binned histograms: exact, but a sort
    needs the whole image, so the loss does not tile.

    Args:
        style_quantiles: The style's quantile function per channel, (Q, C), sampled at
            (j + 1/2) / Q (`sorted_quantiles`).
        combination: The generated features, (h, w, C) or (1, h, w, C).
        weights: Per-position weights (a mask at the layer's size), or None.

    Returns:
        A scalar float32 tensor.
    """
    x = tf.cast(combination, tf.float32)
    flat = tf.reshape(x, (-1, x.shape[-1]))
    n, channels = int(flat.shape[0]), int(flat.shape[1])
    order = tf.argsort(tf.stop_gradient(flat), axis=0)  # (n, C): rows by rank.
    values = tf.transpose(tf.gather(tf.transpose(flat), tf.transpose(order), batch_dims=1))
    if weights is None:
        w = tf.ones((n, channels), tf.float32)
    else:
        w = tf.gather(tf.reshape(tf.cast(weights, tf.float32), (-1,)), order)  # By rank.
    total = tf.reduce_sum(w[:, 0])
    positions = (tf.cumsum(w, axis=0) - 0.5 * w) / tf.maximum(total, 1e-12)
    q = int(style_quantiles.shape[0])
    matched = _interpolate(tf.cast(style_quantiles, tf.float32), positions * q - 0.5)
    squared = w * tf.square(values - tf.stop_gradient(matched))
    return tf.reduce_sum(squared) / (float(channels) * tf.maximum(total, 1e-12))
