"""Each loss against a numpy implementation of its formula, and analytic cases."""

import numpy as np
import pytest
import tensorflow as tf

from nst_keras.engine import losses


def np_gram(x):
    f = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return f.T @ f


def np_tv(x, power):
    """The formula of `total_variation_loss`, written out with loops over the borders."""
    x = x.astype(np.float64)
    _, h, w, _ = x.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            down = x[0, i + 1, j] - x[0, i, j] if i + 1 < h else 0.0
            right = x[0, i, j + 1] - x[0, i, j] if j + 1 < w else 0.0
            total += np.sum((np.square(down) + np.square(right)) ** power)
    return total


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_content_loss_matches_numpy_in_both_normalizations(rng):
    base = rng.normal(size=(5, 6, 7)).astype(np.float32)
    combination = rng.normal(size=(5, 6, 7)).astype(np.float32)
    expected = np.sum((combination.astype(np.float64) - base) ** 2)
    assert float(losses.content_loss(base, combination)) == pytest.approx(expected, rel=1e-5)
    assert float(
        losses.content_loss(base, combination, normalization="paper")
    ) == pytest.approx(0.5 * expected, rel=1e-5)


def test_gram_matrix_of_a_hand_made_tensor():
    # Two channels over 2x2 positions: F = [[1, 2], [3, 4], [5, 6], [7, 8]].
    x = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], dtype=np.float32)
    # G = F^T F = [[1+9+25+49, 2+12+30+56], [.., 4+16+36+64]].
    expected = np.array([[84, 100], [100, 120]], dtype=np.float64)
    np.testing.assert_allclose(losses.gram_matrix(x).numpy(), expected)
    np.testing.assert_allclose(losses.gram_matrix(x[None]).numpy(), expected)


def test_gram_matrix_matches_numpy(rng):
    x = rng.normal(size=(6, 9, 11)).astype(np.float32)
    np.testing.assert_allclose(losses.gram_matrix(x).numpy(), np_gram(x), rtol=1e-5, atol=1e-4)


def test_style_loss_book_normalization_uses_three_channels_and_image_size(rng):
    style = rng.normal(size=(4, 5, 8)).astype(np.float32)
    combination = rng.normal(size=(4, 5, 8)).astype(np.float32)
    image_shape = (32, 40)
    expected = np.sum((np_gram(style) - np_gram(combination)) ** 2) / (
        4.0 * 3**2 * (32 * 40) ** 2
    )
    value = losses.style_loss(style, combination, image_shape=image_shape)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_style_loss_paper_normalization_is_per_layer(rng):
    style = rng.normal(size=(4, 5, 8)).astype(np.float32)
    combination = rng.normal(size=(4, 5, 8)).astype(np.float32)
    n_l, m_l = 8, 4 * 5
    expected = np.sum((np_gram(style) - np_gram(combination)) ** 2) / (4.0 * n_l**2 * m_l**2)
    value = losses.style_loss(style, combination, normalization="paper")
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_style_loss_rescales_the_gram_of_a_differently_sized_style_image(rng):
    # The style image's features tiled 2x2 have 4x the positions and 4x the Gram entries;
    # after rescaling to the generated image's positions the loss is the same.
    style = rng.normal(size=(3, 4, 6)).astype(np.float32)
    combination = rng.normal(size=(3, 4, 6)).astype(np.float32)
    tiled = np.tile(style, (2, 2, 1))
    same = losses.style_loss(style, combination, normalization="paper")
    rescaled = losses.style_loss(tiled, combination, normalization="paper")
    assert float(rescaled) == pytest.approx(float(same), rel=1e-5)
    np.testing.assert_allclose(
        losses.scaled_gram_matrix(tiled, 12).numpy(), np_gram(style), rtol=1e-5, atol=1e-4
    )


def test_style_loss_is_zero_for_identical_features(rng):
    x = rng.normal(size=(4, 4, 3)).astype(np.float32)
    assert float(losses.style_loss(x, x, image_shape=(8, 8))) == 0.0


def test_style_loss_book_needs_the_image_shape(rng):
    x = rng.normal(size=(4, 4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="Received: image_shape=None"):
        losses.style_loss(x, x)


def test_unknown_normalization_is_refused(rng):
    x = rng.normal(size=(4, 4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="Received: normalization='caffe'"):
        losses.content_loss(x, x, normalization="caffe")


def test_total_variation_of_a_constant_image_is_zero():
    x = np.full((1, 7, 9, 3), 42.0, dtype=np.float32)
    assert float(losses.total_variation_loss(x)) == 0.0


@pytest.mark.parametrize("power", [1.0, 1.25, 2.0])
def test_total_variation_of_a_checkerboard(power):
    n = 6
    board = (np.add.outer(np.arange(n), np.arange(n)) % 2).astype(np.float32)
    x = board[None, :, :, None]
    # Interior pixels: both neighbours differ by 1 -> 2**power; the last row and column
    # (but the corner): one neighbour -> 1; the corner: 0.
    expected = (n - 1) ** 2 * 2.0**power + 2 * (n - 1)
    assert float(losses.total_variation_loss(x, power=power)) == pytest.approx(expected)


def test_total_variation_matches_numpy(rng):
    x = rng.uniform(0, 255, size=(1, 5, 7, 3)).astype(np.float32)
    value = losses.total_variation_loss(x, power=1.25)
    assert float(value) == pytest.approx(np_tv(x, 1.25), rel=1e-5)


def test_total_variation_penalises_noise_on_the_borders():
    # A vertical stripe pattern in the last column alone: the book's slicing would not
    # see it, ours does.
    x = np.zeros((1, 6, 6, 1), dtype=np.float32)
    x[0, ::2, -1, 0] = 1.0
    assert float(losses.total_variation_loss(x, power=1.0)) == pytest.approx(np_tv(x, 1.0))
    assert np_tv(x, 1.0) > 0


def _numpy_tv(x, power, edges):
    x = np.asarray(x, np.float64)
    if edges == "book":  # The book's slicing: rows and columns 0..n-2.
        a = x[:, :-1, :-1, :] - x[:, 1:, :-1, :]
        b = x[:, :-1, :-1, :] - x[:, :-1, 1:, :]
    else:
        a = np.zeros_like(x)
        b = np.zeros_like(x)
        a[:, :-1] = x[:, 1:] - x[:, :-1]
        b[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return np.sum((a ** 2 + b ** 2) ** power)


@pytest.mark.parametrize("edges", ["all", "book"])
def test_total_variation_edges_against_numpy(edges):
    x = np.random.default_rng(4).uniform(-50, 50, (1, 7, 9, 3)).astype(np.float32)
    expected = _numpy_tv(x, 1.25, edges)
    got = float(losses.total_variation_loss(x, power=1.25, edges=edges))
    assert got == pytest.approx(expected, rel=1e-5)


def test_book_total_variation_of_a_checkerboard():
    n = 6
    board = (np.indices((n, n)).sum(axis=0) % 2).astype(np.float32)[None, :, :, None]
    assert float(losses.total_variation_loss(board, edges="book")) == pytest.approx(
        (n - 1) ** 2 * 2 ** 1.25)
    with pytest.raises(ValueError, match="Received: edges='left'"):
        losses.total_variation_loss(board, edges="left")


def test_losses_accept_bfloat16_features_and_return_float32():
    rng = np.random.default_rng(5)
    a = rng.uniform(0, 2, (6, 5, 8)).astype(np.float32)
    b = rng.uniform(0, 2, (6, 5, 8)).astype(np.float32)
    a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
    for value, reference in (
        (losses.content_loss(a16, b16), losses.content_loss(a, b)),
        (losses.style_loss(a16, b16, image_shape=(6, 5)), losses.style_loss(a, b, image_shape=(6, 5))),
        (losses.gram_matrix(a16), losses.gram_matrix(a)),
    ):
        assert value.dtype == tf.float32
        np.testing.assert_allclose(value.numpy(), reference.numpy(), rtol=0.03)


def test_style_loss_takes_a_precomputed_gram_target():
    rng = np.random.default_rng(6)
    style = rng.uniform(0, 2, (4, 6, 5)).astype(np.float32)
    generated = rng.uniform(0, 2, (6, 5, 5)).astype(np.float32)
    target = losses.scaled_gram_matrix(style, 30)
    for normalization in ("book", "paper"):
        from_features = losses.style_loss(style, generated, normalization=normalization,
                                          image_shape=(12, 10))
        from_gram = losses.style_loss(target, generated, normalization=normalization,
                                      image_shape=(12, 10))
        assert float(from_gram) == pytest.approx(float(from_features), rel=1e-6)


def test_gram_gradient_equals_tensorflows_generic_one():
    x = tf.constant(np.random.default_rng(7).normal(size=(5, 4, 6)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(8).normal(size=(6, 6)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(weights * losses.gram_matrix(x))
        flat = tf.reshape(x, (-1, 6))
        generic = tf.reduce_sum(weights * tf.matmul(flat, flat, transpose_a=True))
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(generic, x).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_gram_of_bfloat16_features_is_exact_and_its_gradient_is_one_rounding_away():
    """bfloat16 features: G in float32 from the exact products (bfloat16 values multiply
    exactly in float32), and dL/dF = F (U + U^T) computed in bfloat16 from U + U^T rounded
    to bfloat16: within one bfloat16 rounding of each value (2^-9 relative, 2^-8 allowed)."""
    rng = np.random.default_rng(9)
    x16 = tf.cast(rng.uniform(0, 3, (7, 9, 16)).astype(np.float32), tf.bfloat16)
    upstream = rng.normal(size=(16, 16)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x16)
        gram = losses.gram_matrix(x16)
        total = tf.reduce_sum(tf.constant(upstream) * gram)
    gradient = tape.gradient(total, x16)
    flat = tf.cast(x16, tf.float64).numpy().reshape(-1, 16)
    assert gram.dtype == tf.float32 and gradient.dtype == tf.bfloat16
    np.testing.assert_allclose(gram.numpy(), flat.T @ flat, rtol=1e-6)
    symmetric = tf.cast(tf.cast(upstream + upstream.T, tf.bfloat16), tf.float64).numpy()
    expected = flat @ symmetric
    scale = np.abs(flat) @ np.abs(symmetric)
    error = np.abs(tf.cast(gradient, tf.float64).numpy().reshape(-1, 16) - expected)
    assert np.all(error <= 2.0 ** -8 * np.abs(expected) + 1e-6 * scale), error.max()
    # Against the float32 path's gradient (cast to bfloat16 on its way back through a
    # bfloat16 network anyway): the rounding of U + U^T moves each product by at most
    # 2^-9 of its size (so the sum by 2^-9 of `scale`), the output's by 2^-9 of the value.
    x32 = tf.cast(x16, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x32)
        wide = tape.gradient(tf.reduce_sum(tf.constant(upstream) * losses.gram_matrix(x32)), x32)
    wide = wide.numpy().reshape(-1, 16)
    apart = np.abs(tf.cast(gradient, tf.float32).numpy().reshape(-1, 16) - wide)
    assert np.all(apart <= 2.0 ** -8 * (np.abs(wide) + scale)), apart.max()


@pytest.mark.parametrize("edges", ["all", "book"])
def test_total_variation_gradient_matches_the_sliced_formula(edges):
    """The rolled-and-masked differences have the gradient of the book's slicing."""
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(5).uniform(-50, 50, (1, 6, 8, 3)), tf.float32)

    def sliced(x):
        if edges == "book":
            down = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
            right = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
        else:
            down = tf.pad(x[:, 1:] - x[:, :-1], [[0, 0], [0, 1], [0, 0], [0, 0]])
            right = tf.pad(x[:, :, 1:] - x[:, :, :-1], [[0, 0], [0, 0], [0, 1], [0, 0]])
        return tf.reduce_sum(tf.pow(tf.square(down) + tf.square(right), 1.25))

    grads = []
    for loss in (lambda x: losses.total_variation_loss(x, edges=edges), sliced):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(x)
        grads.append(tape.gradient(value, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-3)
    # The last row and column still receive gradient with "all" (their differences count).
    assert np.abs(grads[0][0, -1, :-1]).sum() > 0
