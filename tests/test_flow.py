"""Optical flow, warping, reliability and the warping error on synthetic videos
(`nst_keras.engine.flow`).

The conventions under test: `optical_flow(a, b)` lies on a's grid with a(p) ≈ b(p + flow(p));
`warp(b, flow)` samples b at p + flow(p), so it reproduces a; `reliability(forward, backward)`
is on backward's grid.
"""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("cv2")

from nst_keras.engine import flow  # noqa: E402
from synthetic_video import (SQUARE_SIDE, SQUARE_SPEED, SQUARE_X, SQUARE_Y,  # noqa: E402
                             moving_square, pan)

DX, DY = 2, 1
#: Away from the borders the pan brings new content in through.
INTERIOR = (slice(8, -8), slice(8, -8))


@pytest.fixture(scope="module")
def frames():
    return pan(frames=8, dx=DX, dy=DY)


@pytest.mark.parametrize("method", flow.FLOW_METHODS)
def test_flow_recovers_a_pan(frames, method):
    backward = flow.optical_flow(frames[4], frames[3], method)  # on frame 4, into frame 3
    forward = flow.optical_flow(frames[3], frames[4], method)
    assert backward.shape == (64, 96, 2) and backward.dtype == np.float32
    np.testing.assert_allclose(np.median(backward[INTERIOR], axis=(0, 1)), [-DX, -DY], atol=0.5)
    np.testing.assert_allclose(np.median(forward[INTERIOR], axis=(0, 1)), [DX, DY], atol=0.5)


@pytest.mark.parametrize("method", flow.FLOW_METHODS)
def test_warp_of_the_previous_frame_reproduces_the_next(frames, method):
    backward = flow.optical_flow(frames[4], frames[3], method)
    warped = flow.warp(frames[3], backward)
    assert warped.dtype == np.uint8 and warped.shape == frames[4].shape
    error = np.abs(warped[INTERIOR].astype(float) - frames[4][INTERIOR])
    assert error.mean() < 1.0
    # Without the warp the frames differ a lot: the check above is not vacuous.
    assert np.abs(frames[3][INTERIOR].astype(float) - frames[4][INTERIOR]).mean() > 5


@pytest.mark.parametrize("interpolation", flow.INTERPOLATIONS)
def test_warp_by_an_exact_integer_flow_is_a_shift(frames, interpolation):
    shift = np.zeros((64, 96, 2), np.float32)
    shift[..., 0], shift[..., 1] = -DX, -DY
    np.testing.assert_array_equal(flow.warp(frames[3], shift, interpolation)[INTERIOR],
                                  frames[4][INTERIOR])


def test_sharper_warps_keep_the_detail_that_bilinear_blurs_away():
    # Half a pixel right and back, four times: ideally the identity. Bilinear's half-pixel
    # sample is the mean of two neighbours (checked against numpy), so each round trip is
    # the [1/4, 1/2, 1/4] blur; cubic and Lanczos interpolate with wider kernels and lose
    # much less of an image with a natural (falling) spectrum: noise blurred by σ = 1 px
    # (measured: cubic 0.40x, Lanczos 0.12x bilinear's error).
    import cv2

    noise = np.random.default_rng(0).random((32, 48)).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 1.0)
    there = np.zeros((32, 48, 2), np.float32)
    there[..., 0] = 0.5
    np.testing.assert_allclose(flow.warp(image, there)[:, :-1],
                               (image[:, :-1] + image[:, 1:]) / 2, atol=1e-2)
    errors = {}
    for name in flow.INTERPOLATIONS:
        out = image
        for _ in range(4):
            out = flow.warp(flow.warp(out, there, name), -there, name)
        errors[name] = float(np.abs(out - image)[4:-4, 4:-4].mean())
    assert errors["cubic"] < 0.6 * errors["linear"]
    assert errors["lanczos"] < 0.25 * errors["linear"]


def test_warp_rejects_an_unknown_interpolation(frames):
    with pytest.raises(ValueError, match=r"Received: interpolation='nearest'"):
        flow.warp(frames[0], np.zeros((64, 96, 2), np.float32), "nearest")


def test_warp_keeps_dtype_and_any_channel_count(frames):
    shift = np.full((64, 96, 2), 0.5, np.float32)
    for image in (np.random.default_rng(0).random((64, 96, 7)),
                  np.random.default_rng(1).random((64, 96, 1), dtype=np.float32),
                  frames[0][..., 0]):
        warped = flow.warp(image, shift)
        assert warped.shape == image.shape and warped.dtype == image.dtype
    seven = np.random.default_rng(0).random((64, 96, 7)).astype(np.float32)
    # Channels warp independently: the 5th channel alone gives the same as within the stack.
    np.testing.assert_allclose(flow.warp(seven, shift)[..., 4], flow.warp(seven[..., 4], shift))


def test_warp_rejects_a_flow_of_another_size(frames):
    with pytest.raises(ValueError, match=r"Received: flow="):
        flow.warp(frames[0], np.zeros((10, 10, 2)))


def test_reliability_is_one_inside_a_clean_pan(frames):
    backward = flow.optical_flow(frames[4], frames[3])
    forward = flow.optical_flow(frames[3], frames[4])
    weights = flow.reliability(forward, backward)
    assert weights.dtype == np.float32 and weights.shape == (64, 96)
    assert set(np.unique(weights)) <= {0.0, 1.0}
    assert weights[INTERIOR].min() == 1.0
    # The content entering at the left and top has no match in the previous frame.
    assert weights[:, :DX].max() == 0.0 and weights[:DY, :].max() == 0.0


def test_reliability_is_zero_where_a_moving_square_uncovers_background():
    previous, current = moving_square(frames=2)
    backward = flow.optical_flow(current, previous)  # DIS, the method of the issue
    forward = flow.optical_flow(previous, current)
    weights = flow.reliability(forward, backward)
    assert set(np.unique(weights)) <= {0.0, 1.0}
    # Uncovered strip in `current`, minus a 2 px rim where DIS's flow is blurred.
    rows = slice(SQUARE_Y + 2, SQUARE_Y + SQUARE_SIDE - 2)
    uncovered = weights[rows, SQUARE_X:SQUARE_X + SQUARE_SPEED]
    assert uncovered.mean() < 0.3
    # Still background far from the square, and the square's own inside, stay reliable.
    assert weights[SQUARE_Y + SQUARE_SIDE + 8:, :].mean() > 0.95
    x = SQUARE_X + SQUARE_SPEED
    assert weights[SQUARE_Y + 5:SQUARE_Y + SQUARE_SIDE - 5, x + 5:x + SQUARE_SIDE - 5].mean() > 0.9


def test_reliability_of_still_frames_is_one_everywhere(frames):
    still = flow.optical_flow(frames[0], frames[0])
    assert flow.reliability(still, still).min() == 1.0


def test_warp_error_is_about_zero_on_a_clean_pan_and_grows_with_noise(frames):
    clean = flow.warp_error(frames, frames)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 10, f.shape), 0, 255).astype(np.uint8) for f in frames]
    flickering = flow.warp_error(noisy, frames)
    assert 0 <= clean < 1e-5
    # Independent N(0, 10/255) noise per frame: about 2 (10/255)² = 0.003.
    assert flickering > 100 * clean and 0.002 < flickering < 0.004
    # Float frames in [0, 1] give the same number as their uint8 originals.
    as_float = [f.astype(np.float32) / 255 for f in noisy]
    assert flow.warp_error(as_float, frames) == pytest.approx(flickering, rel=1e-5)


def test_warp_error_rejects_mismatched_sequences(frames):
    with pytest.raises(ValueError, match=r"Received: len\(output_frames\)=3"):
        flow.warp_error(frames[:3], frames)
    with pytest.raises(ValueError, match=r"at least two"):
        flow.warp_error(frames[:1], frames[:1])


def test_optical_flow_rejects_bad_arguments(frames):
    with pytest.raises(ValueError, match=r"Received: method='raft'"):
        flow.optical_flow(frames[0], frames[1], method="raft")
    with pytest.raises(ValueError, match=r"Received: frame_from="):
        flow.optical_flow(frames[0].astype(np.float32), frames[1])


def test_importing_flow_does_not_import_opencv():
    code = "import sys, nst_keras.engine.flow; print('cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_missing_opencv_names_the_extra(monkeypatch, frames):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'nst-keras\[video\]'"):
        flow.optical_flow(frames[0], frames[1])
