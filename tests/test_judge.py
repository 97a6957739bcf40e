"""The judge's two numbers, against their definitions and a hand-computed reference."""

import numpy as np
import pytest

from conftest import make_image
from nst_keras.engine import judge


@pytest.fixture(scope="module")
def network():
    import keras

    keras.utils.set_random_seed(0)
    return judge.judge_network("vgg16", None)


def test_the_style_measure_is_the_papers_gram_loss_per_layer():
    # Two layers' features by hand: S = sum_l (1/L) ||G - A||^2 / (4 N^2 M^2), G = F^T F.
    rng = np.random.default_rng(0)
    result = {name: rng.random((4, 6, 3)) for name in judge.STYLE_LAYERS}
    style = {name: rng.random((4, 6, 3)) for name in judge.STYLE_LAYERS}
    targets = {name: judge._gram(f) for name, f in style.items()}
    expected = 0.0
    for name in judge.STYLE_LAYERS:
        f, a = result[name].reshape(24, 3), style[name].reshape(24, 3)
        expected += np.sum((f.T @ f - a.T @ a) ** 2) / (4 * 3 ** 2 * 24 ** 2) / 5
    assert judge._style(result, targets) == pytest.approx(expected, rel=1e-12)


def test_the_content_measure_is_a_mean_squared_difference():
    rng = np.random.default_rng(1)
    a = {judge.CONTENT_LAYER: rng.random((3, 5, 7))}
    b = {judge.CONTENT_LAYER: rng.random((3, 5, 7))}
    assert judge._content(a, b) == pytest.approx(np.mean((a[judge.CONTENT_LAYER]
                                                          - b[judge.CONTENT_LAYER]) ** 2))


def test_the_photo_is_unpainted_and_the_painting_keeps_no_content(network):
    photo, painting = make_image(48, 64, seed=1), make_image(60, 40, seed=2)
    as_photo = judge.judge(network, photo, photo, painting)
    assert as_photo.stylisation == pytest.approx(1.0) and as_photo.content_kept == 0.0
    from nst_keras.media.images import resize_float

    stretched = resize_float(painting, (64, 48))
    as_painting = judge.judge(network, stretched, photo, painting)
    assert as_painting.stylisation < 1e-6
    assert as_painting.content_kept == pytest.approx(1.0, rel=1e-6)
    assert not as_photo.paints() and not as_painting.paints()  # It kept no content.
    assert as_painting.paints(content_bound=1.0 + 1e-6)


def test_a_blend_is_judged_against_its_weighted_targets(network):
    photo = make_image(48, 64, seed=1)
    first, second = make_image(48, 64, seed=2), make_image(48, 64, seed=3)
    only_first = judge.judge(network, first, photo, [first, second], blend_weights=[1, 0])
    assert only_first.stylisation < 1e-6
    halves = judge.judge(network, first, photo, [first, second], blend_weights=[1, 1])
    assert halves.stylisation > 1e-3


def test_masks_are_judged_region_by_region(network):
    photo = make_image(48, 64, seed=1)
    # A painting whose halves are alike, so that one half holds its statistics; the result
    # is that half on the left and the photo on the right.
    half = make_image(48, 32, seed=2)
    painting = np.concatenate([half, half], axis=1)
    result = photo.copy()
    result[:, :32] = half
    left = np.zeros((48, 64))
    left[:, :32] = 1
    verdict = judge.judge(network, result, photo, [painting], masks=[left])
    assert set(verdict.regions) == {"1", "unstyled"}
    # relu4_2 sees across the seam (a 6 x 8 layer here), so the photo half is not at 0.
    assert verdict.regions["unstyled"].content_kept < 0.3 * verdict.regions["1"].content_kept
    whole = judge.judge(network, result, photo, painting)
    assert verdict.regions["1"].stylisation < whole.stylisation


def test_grey_judging_ignores_colour(network):
    photo, painting = make_image(48, 64, seed=1), make_image(48, 64, seed=2)
    tinted = np.clip(photo.astype(float) * [1.0, 0.6, 1.3], 0, 255)
    assert judge.judge(network, tinted, photo, painting, grey=False).stylisation != \
        pytest.approx(1.0, abs=1e-3)
    # The tint moves luminance a little too, so only nearly 1.
    grey = judge.judge(network, photo, photo, painting, grey=True)
    assert grey.grey and grey.stylisation == pytest.approx(1.0)


def test_colour_modes_are_judged_grey_against_the_painting_the_run_used(network):
    from nst_keras.engine import color

    photo, painting = make_image(48, 64, seed=1), make_image(48, 64, seed=2)
    matched = color.grey_rgb(color.match_luminance(painting, photo))
    verdict = judge.judge(network, matched, photo, painting, preserve_color="luminance")
    assert verdict.grey and verdict.stylisation < 1e-6  # The run's own target.
    plain = judge.judge(network, matched, photo, painting, grey=True)
    assert plain.stylisation > 1e-3  # Against the unmatched painting it is not.


def test_bad_arguments_name_what_was_received(network):
    photo = make_image(16, 16, seed=1)
    with pytest.raises(ValueError, match="One mask per painting.*Received: 2 masks"):
        judge.judge(network, photo, photo, [photo], masks=[np.ones((4, 4))] * 2)
    with pytest.raises(ValueError, match="Received: blend_weights"):
        judge.judge(network, photo, photo, [photo, photo], blend_weights=[0, 0])
