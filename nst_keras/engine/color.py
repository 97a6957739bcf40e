"""Colour control for style transfer: keep the content image's colours.

Gatys, Ecker, Bethge, Hertzmann and Shechtman, "Controlling Perceptual Factors in
Neural Style Transfer" (CVPR 2017), section 5, give two ways to transfer a style while
keeping the content's colours; a third, post-hoc variant is common in practice. The
names are in `MODES`:

- ``"luminance"`` (luminance-only transfer). *Before* the run: the style's luminance is
  matched to the content's in mean and standard deviation (`match_luminance`), and both
  content and style are fed to the network as grey RGB images, R = G = B = Y
  (`luminance`, `grey_rgb`). *After* the run: the output's luminance is combined with the
  content's chroma channels I and Q (`combine_luminance`).
- ``"histogram"`` (colour histogram matching, a linear colour transfer). *Before* the
  run only: the style image is recoloured so that its RGB mean and covariance equal the
  content's (`match_color_histogram`); the run itself is unchanged.
- ``"swap"``. *After* the run only: stylise normally, then keep the output's luminance
  and put back the content's chroma (`combine_luminance`, the same recombination as in
  "luminance").

Everything here is numpy on RGB arrays of shape (H, W, 3), uint8 or float in 0-255.
Inputs are never modified. No TensorFlow or Keras import.
"""

import numpy as np

from nst_keras.config import COLOR_MODES as MODES  # noqa: F401  One list of the modes, in config.

# NTSC 1953 / FCC YIQ matrix (rows: Y, I, Q; columns: R, G, B). The Y row is the
# ITU-R BT.601 luma, the same Y as in (full-range, JPEG) YCbCr. The I and Q rows each
# sum to exactly 0, so a grey (R = G = B = v) has Y = v and I = Q = 0.
_RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.5959, -0.2746, -0.3213],
        [0.2115, -0.5227, 0.3112],
    ],
    dtype=np.float64,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

# Default floor on covariance eigenvalues in `match_color_histogram`, in levels^2
# (a standard deviation of about 0.03 grey levels along the weakest colour axis).
_EIGEN_FLOOR = 1e-3


def _as_rgb(array, name):
    """`array` as a new float64 (H, W, 3) array; ValueError on any other shape."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"`{name}` must be an RGB image of shape (H, W, 3). "
            f"Received: {name}.shape={array.shape}"
        )
    return np.array(array, dtype=np.float64)  # a copy, so callers' arrays stay untouched


def _to_uint8(array):
    """Round to the nearest integer and clip to 0-255, as uint8."""
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def rgb_to_yiq(rgb):
    """Converts an RGB image to YIQ with the NTSC 1953 / FCC matrix.

    [Y, I, Q]^T = M [R, G, B]^T per pixel, with

        M = [[0.299,   0.587,   0.114 ],
             [0.5959, -0.2746, -0.3213],
             [0.2115, -0.5227,  0.3112]].

    Y is the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), the same Y as in YCbCr;
    white (255, 255, 255) has Y = 255, and every grey has I = Q = 0. YIQ is used because
    it is the paper's choice. Only Y is ever changed here, and the content's chroma
    axes are kept as they are, so YCbCr would give the same result: I and Q are an
    invertible linear map of (R - Y, B - Y), as are Cb and Cr, hence fixing Y and the
    content's chroma fixes RGB = content + (Y_new - Y_content) (1, 1, 1) in both spaces
    (`tests/test_color.py` checks this to 1e-9, and after clipping to 0-255 too). The two
    differ only where the chroma is itself quantised, e.g. Pillow's 8-bit "YCbCr" mode.

    Args:
        rgb: Array of shape (H, W, 3), uint8 or float, values nominally in 0-255.

    Returns:
        A new float64 array of shape (H, W, 3): Y in 0-255, I in about [-152, 152],
        Q in about [-133, 133] for inputs in 0-255.

    Raises:
        ValueError: If `rgb` is not of shape (H, W, 3).
    """
    return _as_rgb(rgb, "rgb") @ _RGB_TO_YIQ.T


def yiq_to_rgb(yiq):
    """Converts a YIQ image back to RGB: the exact inverse of `rgb_to_yiq`.

    [R, G, B]^T = M^-1 [Y, I, Q]^T per pixel, with M the matrix of `rgb_to_yiq`
    (M^-1 is computed numerically; its first column is (1, 1, 1), so a change of Y
    alone adds the same amount to R, G and B). No rounding or clipping.

    Args:
        yiq: Array of shape (H, W, 3), float.

    Returns:
        A new float64 array of shape (H, W, 3); values may lie outside 0-255.

    Raises:
        ValueError: If `yiq` is not of shape (H, W, 3).
    """
    return _as_rgb(yiq, "yiq") @ _YIQ_TO_RGB.T


def luminance(rgb):
    """Returns the luminance (BT.601 luma) of an RGB image.

    Y = 0.299 R + 0.587 G + 0.114 B, the Y channel of `rgb_to_yiq`.

    Args:
        rgb: Array of shape (H, W, 3), uint8 or float in 0-255.

    Returns:
        A float64 array of shape (H, W).

    Raises:
        ValueError: If `rgb` is not of shape (H, W, 3).
    """
    return _as_rgb(rgb, "rgb") @ _RGB_TO_YIQ[0]


def match_luminance(style_rgb, content_rgb):
    """Matches the style image's luminance to the content's in mean and std.

    L_s' = (sigma_c / sigma_s) (L_s - mu_s) + mu_c, with mu and sigma the mean and the
    (population) standard deviation of each image's luminance over all its pixels. If the
    style's luminance is constant (sigma_s < 1e-6) it is only shifted:
    L_s' = L_s - mu_s + mu_c. The two images may differ in size. The result is not
    clipped; `grey_rgb` rounds and clips it.

    Args:
        style_rgb: Style image, shape (H_s, W_s, 3), uint8 or float in 0-255.
        content_rgb: Content image, shape (H_c, W_c, 3), uint8 or float in 0-255.

    Returns:
        The matched style luminance, float64 of shape (H_s, W_s).

    Raises:
        ValueError: If either image is not of shape (H, W, 3).
    """
    style_lum = luminance(_as_rgb(style_rgb, "style_rgb"))
    content_lum = luminance(_as_rgb(content_rgb, "content_rgb"))
    mu_s, sigma_s = style_lum.mean(), style_lum.std()
    mu_c, sigma_c = content_lum.mean(), content_lum.std()
    if sigma_s < 1e-6:
        return style_lum - mu_s + mu_c
    return (sigma_c / sigma_s) * (style_lum - mu_s) + mu_c


def grey_rgb(lum):
    """Turns a luminance into a grey RGB image, R = G = B = Y.

    This is how the luminance is fed to the network in the "luminance" mode.

    Args:
        lum: Luminance of shape (H, W), float or integer, nominally in 0-255.

    Returns:
        A uint8 array of shape (H, W, 3): round(Y) clipped to 0-255 in every channel.

    Raises:
        ValueError: If `lum` is not of shape (H, W).
    """
    lum = np.asarray(lum)
    if lum.ndim != 2:
        raise ValueError(
            f"`lum` must be a luminance of shape (H, W). Received: lum.shape={lum.shape}"
        )
    grey = _to_uint8(lum.astype(np.float64))
    return np.repeat(grey[:, :, None], 3, axis=2)


def combine_luminance(lum_rgb_or_lum, content_rgb, *, as_float: bool = False):
    """Combines a luminance with the content image's chroma (I and Q).

    RGB = M^-1 [Y_new, I_c, Q_c]^T per pixel (M from `rgb_to_yiq`), which equals
    content + (Y_new - Y_c) in each of R, G and B; then rounded and clipped to uint8.
    Used after the run by the "luminance" mode (Y_new from the grey output) and the
    "swap" mode (Y_new from the stylised colour output). Where the clipping bites
    (a bright Y_new on a saturated colour) the result's chroma deviates from the
    content's; elsewhere I and Q are kept to within the rounding (about 0.6 levels).

    Args:
        lum_rgb_or_lum: Either an RGB image of shape (H, W, 3), whose luminance Y is
            used, or a luminance of shape (H, W).
        content_rgb: Content image of shape (H, W, 3), uint8 or float in 0-255.
        as_float: Return float32, clipped to 0-255 but not rounded (a 16-bit output's).

    Returns:
        A uint8 (or, with `as_float`, float32) array of shape (H, W, 3).

    Raises:
        ValueError: If `content_rgb` is not (H, W, 3), if the first argument is neither
            (H, W) nor (H, W, 3), or if the two sizes differ.
    """
    source = np.asarray(lum_rgb_or_lum)
    if source.ndim == 2:
        new_lum = source.astype(np.float64)
    elif source.ndim == 3 and source.shape[-1] == 3:
        new_lum = luminance(source)
    else:
        raise ValueError(
            "`lum_rgb_or_lum` must be an RGB image (H, W, 3) or a luminance (H, W). "
            f"Received: lum_rgb_or_lum.shape={source.shape}"
        )
    content_yiq = rgb_to_yiq(_as_rgb(content_rgb, "content_rgb"))
    if new_lum.shape != content_yiq.shape[:2]:
        raise ValueError(
            "The luminance and the content image must have the same (H, W). "
            f"Received: lum_rgb_or_lum.shape={source.shape}, "
            f"content_rgb.shape={content_yiq.shape}"
        )
    content_yiq[..., 0] = new_lum
    if as_float:
        return np.clip(yiq_to_rgb(content_yiq), 0, 255).astype(np.float32)
    return _to_uint8(yiq_to_rgb(content_yiq))


def _symmetric_power(matrix, power, floor):
    """matrix^power for a symmetric PSD 3x3 matrix, eigenvalues floored at `floor`."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    eigenvalues = np.maximum(eigenvalues, floor)
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def match_color_histogram(style_rgb, content_rgb, eps=_EIGEN_FLOOR):
    """Recolours the style image so its RGB mean and covariance equal the content's.

    The linear colour transfer of Gatys et al. (2017), applied to every style pixel x
    (an RGB column vector):

        x' = A (x - mu_s) + mu_c,    A = Sigma_c^(1/2) Sigma_s^(-1/2),

    with mu and Sigma the mean and the 3x3 (population) covariance of each image's
    pixels. Then Cov(x') = A Sigma_s A^T = Sigma_c and E[x'] = mu_c (before clipping).
    The matrix roots are the symmetric ones, from the eigendecomposition
    Sigma = V diag(lambda) V^T: Sigma^p = V diag(lambda^p) V^T. The paper discusses two
    choices of A, this one (the colour transfer of Image Analogies, Hertzmann et al.
    2001) and the Cholesky one, A = L_c L_s^-1; we use the symmetric roots, the
    Image-Analogies form the paper presents, because they are unique and do not
    depend on the order of the R, G, B channels (Cholesky factors do), and for
    uncorrelated channels A reduces to a per-channel scaling sigma_c / sigma_s.
    Eigenvalues are floored at `eps` (levels^2) so that a grey or constant style image
    (singular Sigma_s) gives finite values, never NaN: a constant style becomes the
    content's mean colour, and a grey style (rank-1 Sigma_s) can only be spread along
    one colour axis, so its covariance cannot reach the content's.

    Args:
        style_rgb: Style image, shape (H_s, W_s, 3), uint8 or float in 0-255.
        content_rgb: Content image, shape (H_c, W_c, 3), uint8 or float in 0-255.
            The two images may differ in size.
        eps: Floor for the covariance eigenvalues, in levels^2; must be > 0.

    Returns:
        The recoloured style image, uint8 of shape (H_s, W_s, 3), rounded and clipped to
        0-255 (where clipping bites, the statistics match less exactly).

    Raises:
        ValueError: If either image is not of shape (H, W, 3), or `eps` is not > 0.
    """
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0. Received: eps={eps!r}")
    style = _as_rgb(style_rgb, "style_rgb").reshape(-1, 3)
    content = _as_rgb(content_rgb, "content_rgb").reshape(-1, 3)
    mu_s, mu_c = style.mean(axis=0), content.mean(axis=0)
    sigma_s = np.cov(style, rowvar=False, bias=True)
    sigma_c = np.cov(content, rowvar=False, bias=True)
    transform = _symmetric_power(sigma_c, 0.5, 0.0) @ _symmetric_power(sigma_s, -0.5, eps)
    result = (style - mu_s) @ transform.T + mu_c
    return _to_uint8(result.reshape(np.shape(style_rgb)))
