"""Tests for nst_keras.engine.color: YIQ conversion, luminance transfer and colour histogram
matching.

Pure numpy on small random images; no TensorFlow.
"""

import numpy as np
import pytest

from nst_keras.engine import color


def _random_rgb(seed, shape=(24, 32), low=30, high=220):
    rng = np.random.default_rng(seed)
    return rng.integers(low, high + 1, size=shape + (3,), dtype=np.uint8)


def _cast_image(seed, mean, mix, n=(40, 50)):
    """Random colour-cast image: mean + mix @ z per pixel, z uniform in [-1, 1]^3, as uint8."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.0, 1.0, size=n + (3,))
    image = np.asarray(mean, dtype=np.float64) + z @ np.asarray(mix, dtype=np.float64).T
    assert image.min() > 5 and image.max() < 250  # the fixture itself is not clipped
    return np.rint(image).astype(np.uint8)


def _stats(image):
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


# ----------------------------------------------------------------------------- YIQ


def test_yiq_round_trip_is_exact():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, size=(7, 9, 3))
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(rgb)), rgb, rtol=0, atol=1e-9)
    yiq = color.rgb_to_yiq(rgb)
    np.testing.assert_allclose(color.rgb_to_yiq(color.yiq_to_rgb(yiq)), yiq, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "rgb, expected",
    [
        ((255, 0, 0), (76.245, 151.9545, 53.9325)),  # 255 * (0.299, 0.5959, 0.2115)
        ((0, 255, 0), (149.685, -70.023, -133.2885)),  # 255 * (0.587, -0.2746, -0.5227)
        ((0, 0, 255), (29.07, -81.9315, 79.356)),  # 255 * (0.114, -0.3213, 0.3112)
        ((255, 255, 255), (255.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((128, 128, 128), (128.0, 0.0, 0.0)),
    ],
)
def test_yiq_matrix_hand_values(rgb, expected):
    image = np.array(rgb, dtype=np.uint8).reshape(1, 1, 3)
    yiq = color.rgb_to_yiq(image)
    assert yiq.dtype == np.float64 and yiq.shape == (1, 1, 3)
    np.testing.assert_allclose(yiq[0, 0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(color.luminance(image)[0, 0], expected[0], rtol=0, atol=1e-9)


def test_luminance_is_bt601_luma():
    rgb = _random_rgb(1)
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    lum = color.luminance(rgb)
    assert lum.shape == rgb.shape[:2] and lum.dtype == np.float64
    np.testing.assert_allclose(lum, 0.299 * r + 0.587 * g + 0.114 * b, rtol=0, atol=1e-9)


def test_yiq_and_ycbcr_give_the_same_recombination():
    """Y from one image + chroma of another: YIQ and full-range YCbCr agree, clipped or not."""
    rng = np.random.default_rng(2)
    content = rng.uniform(0, 255, size=(16, 16, 3))
    output = rng.uniform(0, 255, size=(16, 16, 3))  # large Y changes: clipping does bite
    # JPEG / BT.601 full-range YCbCr, offsets included.
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    offset = np.array([0.0, 128.0, 128.0])
    ycc = content @ m.T + offset
    ycc[..., 0] = output @ m[0]
    via_ycbcr = (ycc - offset) @ np.linalg.inv(m).T
    yiq = color.rgb_to_yiq(content)
    yiq[..., 0] = color.luminance(output)
    via_yiq = color.yiq_to_rgb(yiq)
    np.testing.assert_allclose(via_yiq, via_ycbcr, rtol=0, atol=1e-9)
    # Both are content + (Y_out - Y_content) in each channel.
    shift = (color.luminance(output) - color.luminance(content))[..., None]
    np.testing.assert_allclose(via_yiq, content + shift, rtol=0, atol=1e-9)
    assert (via_yiq < 0).any() and (via_yiq > 255).any()
    np.testing.assert_allclose(np.clip(via_yiq, 0, 255), np.clip(via_ycbcr, 0, 255), rtol=0, atol=1e-9)
    expected = np.clip(np.rint(via_ycbcr), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(color.combine_luminance(output, content), expected)


# ---------------------------------------------------------------- luminance transfer


def test_combine_luminance_keeps_content_chroma_and_output_luma():
    content = _random_rgb(3)
    rng = np.random.default_rng(4)
    # An output whose luminance differs from the content's by at most ~25 levels and whose
    # colours differ per channel; content + (Y_out - Y_c) then stays inside 0-255.
    noise = rng.integers(-25, 26, size=content.shape)
    output = np.clip(content.astype(int) + noise, 0, 255).astype(np.uint8)
    combined = color.combine_luminance(output, content)
    assert combined.dtype == np.uint8 and combined.shape == content.shape
    got, want_chroma = color.rgb_to_yiq(combined), color.rgb_to_yiq(content)
    chroma_error = np.abs(got[..., 1:] - want_chroma[..., 1:]).max()
    luma_error = np.abs(got[..., 0] - color.luminance(output)).max()
    # Rounding each channel by <= 0.5 moves I by <= 0.5 * 1.1918 = 0.5959,
    # Q by <= 0.5 * 1.0454 and Y by <= 0.5 (sums of the rows' absolute values).
    assert chroma_error < 0.6, chroma_error
    assert luma_error <= 0.5 + 1e-9, luma_error
    # The output's colours are not kept: its chroma differs from the content's.
    assert np.abs(color.rgb_to_yiq(output)[..., 1:] - want_chroma[..., 1:]).max() > 5


def test_combine_luminance_accepts_a_luminance_array():
    content, output = _random_rgb(5), _random_rgb(6)
    from_rgb = color.combine_luminance(output, content)
    from_lum = color.combine_luminance(color.luminance(output), content)
    np.testing.assert_array_equal(from_rgb, from_lum)
    # A grey output (the "luminance" mode) carries its grey level as Y. (A float content
    # image avoids exact .5 rounding ties, which uint8 content can hit.)
    grey = color.grey_rgb(color.luminance(output))
    float_content = np.random.default_rng(7).uniform(30, 220, size=content.shape)
    np.testing.assert_array_equal(
        color.combine_luminance(grey, float_content),
        color.combine_luminance(grey[..., 0].astype(np.float64), float_content),
    )


def test_match_luminance_matches_mean_and_std():
    style = _random_rgb(7, shape=(30, 20), low=0, high=255)
    content = _random_rgb(8, shape=(24, 32), low=90, high=160)
    matched = color.match_luminance(style, content)
    assert matched.shape == (30, 20) and matched.dtype == np.float64
    target = color.luminance(content)
    np.testing.assert_allclose(matched.mean(), target.mean(), rtol=1e-6)
    np.testing.assert_allclose(matched.std(), target.std(), rtol=1e-6)
    # It is an increasing affine map of the style's luminance.
    slope = np.polyfit(color.luminance(style).ravel(), matched.ravel(), 1)[0]
    np.testing.assert_allclose(slope, target.std() / color.luminance(style).std(), rtol=1e-6)


def test_match_luminance_of_a_constant_style_shifts_the_mean():
    style = np.full((5, 6, 3), 40, dtype=np.uint8)
    content = _random_rgb(9)
    matched = color.match_luminance(style, content)
    assert np.isfinite(matched).all()
    np.testing.assert_allclose(matched, color.luminance(content).mean(), rtol=0, atol=1e-9)


def test_grey_rgb_rounds_and_clips():
    lum = np.array([[-3.0, 0.4, 0.6], [127.49, 254.6, 300.0]])
    grey = color.grey_rgb(lum)
    assert grey.dtype == np.uint8 and grey.shape == (2, 3, 3)
    expected = np.array([[0, 0, 1], [127, 255, 255]], dtype=np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(grey[..., channel], expected)


# ------------------------------------------------------------- histogram matching


def test_match_color_histogram_matches_mean_and_covariance():
    content = _cast_image(10, mean=(160, 110, 80), mix=[[40, 10, 0], [15, 30, 5], [0, 10, 20]])
    style = _cast_image(
        11, mean=(90, 110, 150), mix=[[20, 0, 5], [5, 25, 0], [10, 15, 45]], n=(30, 36)
    )
    result = color.match_color_histogram(style, content)
    assert result.dtype == np.uint8 and result.shape == style.shape
    assert result.min() > 0 and result.max() < 255  # clipping did not bite
    mu_r, cov_r = _stats(result)
    mu_c, cov_c = _stats(content)
    mu_s, cov_s = _stats(style)
    assert np.abs(mu_r - mu_c).max() < 1.0, (mu_r, mu_c)
    relative = np.linalg.norm(cov_r - cov_c) / np.linalg.norm(cov_c)
    assert relative < 0.02, relative
    # The test can fail: before the transfer the statistics are far apart.
    assert np.abs(mu_s - mu_c).max() > 30
    assert np.linalg.norm(cov_s - cov_c) / np.linalg.norm(cov_c) > 0.5


def test_match_color_histogram_uses_symmetric_square_roots():
    """Against a reference A = Sigma_c^(1/2) Sigma_s^(-1/2) built with numpy's eigh."""
    content = _cast_image(12, mean=(120, 130, 100), mix=[[30, 5, 5], [5, 35, 0], [5, 0, 25]])
    style = _cast_image(13, mean=(100, 90, 140), mix=[[25, 10, 0], [0, 20, 10], [5, 5, 30]])

    def sqrt_sym(matrix, power):
        w, v = np.linalg.eigh(matrix)
        return v @ np.diag(w**power) @ v.T

    mu_s, cov_s = _stats(style)
    mu_c, cov_c = _stats(content)
    a = sqrt_sym(cov_c, 0.5) @ sqrt_sym(cov_s, -0.5)
    expected = (style.reshape(-1, 3) - mu_s) @ a.T + mu_c
    expected = np.clip(np.rint(expected), 0, 255).reshape(style.shape)
    got = color.match_color_histogram(style, content).astype(np.float64)
    assert np.abs(got - expected).max() <= 1  # equal up to a rounding tie


def test_match_color_histogram_of_constant_or_grey_style_is_finite():
    content = _random_rgb(14)
    constant = np.full((6, 7, 3), 128, dtype=np.uint8)
    result = color.match_color_histogram(constant, content)
    assert result.dtype == np.uint8
    mu_c = content.reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert np.abs(result.astype(np.float64) - mu_c).max() <= 0.5 + 1e-9  # the content's mean colour
    grey = color.grey_rgb(np.random.default_rng(15).uniform(0, 255, size=(6, 7)))
    with np.errstate(all="raise"):  # no division by zero, no invalid value
        result = color.match_color_histogram(grey, content)
    assert result.shape == grey.shape and result.dtype == np.uint8


# ------------------------------------------------------------ inputs and errors


def test_inputs_are_not_mutated():
    content = _random_rgb(16)
    style = _random_rgb(17, low=0, high=255)
    float_content = content.astype(np.float64)
    lum = color.luminance(style[:24, :32])
    saved = [a.copy() for a in (content, style, float_content, lum)]
    color.rgb_to_yiq(content)
    color.yiq_to_rgb(float_content)
    color.luminance(float_content)
    color.match_luminance(style, float_content)
    color.grey_rgb(lum)
    color.combine_luminance(lum, content)
    color.combine_luminance(style[:24, :32], float_content)
    color.match_color_histogram(style, content)
    color.match_color_histogram(float_content, style)
    for before, after in zip(saved, (content, style, float_content, lum)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    "call",
    [
        lambda: color.rgb_to_yiq(np.zeros((4, 4))),
        lambda: color.rgb_to_yiq(np.zeros((4, 4, 4))),
        lambda: color.yiq_to_rgb(np.zeros((2, 4, 4, 3))),
        lambda: color.luminance(np.zeros((4, 3))),
        lambda: color.match_luminance(np.zeros((4, 4)), np.zeros((4, 4, 3))),
        lambda: color.match_luminance(np.zeros((4, 4, 3)), np.zeros((4, 4, 1))),
        lambda: color.grey_rgb(np.zeros((4, 4, 3))),
        lambda: color.combine_luminance(np.zeros((4, 5)), np.zeros((4, 4, 3))),
        lambda: color.combine_luminance(np.zeros((4, 5, 3)), np.zeros((4, 4, 3))),
        lambda: color.combine_luminance(np.zeros((4, 4, 2)), np.zeros((4, 4, 3))),
        lambda: color.combine_luminance(np.zeros((4, 4)), np.zeros((4, 4))),
        lambda: color.match_color_histogram(np.zeros((4, 4)), np.zeros((4, 4, 3))),
        lambda: color.match_color_histogram(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), eps=0),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError, match="Received: "):
        call()


def test_modes_constant():
    assert color.MODES == ("luminance", "histogram", "swap")
