"""The objective, its gradient, and the one-call L-BFGS driver."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import optimize
from nst_keras.config import StyleConfig

from conftest import SHARED_IMAGES, make_image


def _style_loss(problem, x):
    _, _, terms = problem.loss_and_grad(tf.constant(x, tf.float32))
    weights = np.asarray(problem.term_weights)
    is_style = np.array([n.startswith("style/") for n in problem.term_names])
    return float(np.sum(terms.numpy()[is_style] * weights[is_style]))


def test_gradient_matches_central_finite_differences():
    # Average pooling and a smooth image keep the loss differentiable near x; the check
    # is along random directions, in float32 with a step of a few grey levels.
    content, style = make_image(16, 16, seed=3), make_image(16, 16, seed=4)
    config = StyleConfig(
        weights=None, height=16, seed=5, pooling="avg", content_layers=("conv2_2",),
        style_layers=("conv1_1", "conv2_1", "conv3_1"), content_weight=1.0, style_weight=1e3,
        tv_weight=1e-2, normalization="paper",
    )
    problem = optimize.build_problem(content, style, config)
    rng = np.random.default_rng(0)
    x = problem.x0 + rng.normal(0, 5, problem.x0.shape).astype(np.float32)
    _, grad, _ = problem.loss_and_grad(tf.constant(x))
    grad = grad.numpy().astype(np.float64)

    def f(v):
        return float(problem.loss_and_grad(tf.constant(v.astype(np.float32)))[0])

    for _ in range(3):
        d = rng.normal(size=x.shape)
        d /= np.linalg.norm(d)
        eps = 2.0
        numeric = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        analytic = float(np.sum(grad * d))
        # The loss is ~2e5 in float32: its differences resolve to ~0.01 at this step.
        assert analytic == pytest.approx(numeric, rel=1e-2, abs=0.05)


def test_term_losses_match_the_loss_functions(content_rgb, style_rgb):
    from nst_keras import losses
    from nst_keras.features import build_feature_model

    config = StyleConfig(weights=None, height=48, seed=1, style_layers=("conv1_1", "conv2_1"))
    problem = optimize.build_problem(content_rgb, style_rgb, config)
    loss, _, terms = problem.loss_and_grad(tf.constant(problem.x0))
    # Recompute by hand with the public loss functions and a model of the same weights.
    tf.keras.utils.set_random_seed(1)
    model = build_feature_model(["block5_conv2", "block1_conv1", "block2_conv1"], weights=None)
    from nst_keras.images import preprocess

    c = model(preprocess(content_rgb))
    s = model(preprocess(style_rgb))
    g = model(problem.x0)
    hw = content_rgb.shape[:2]
    expected = [
        losses.content_loss(c[0][0], g[0][0]),
        losses.style_loss(s[1][0], g[1][0], image_shape=hw),
        losses.style_loss(s[2][0], g[2][0], image_shape=hw),
        losses.total_variation_loss(problem.x0),
    ]
    np.testing.assert_allclose(terms.numpy(), [float(e) for e in expected], rtol=1e-4)
    total = 0.025 * expected[0] + 0.5 * expected[1] + 0.5 * expected[2] + 1e-4 * expected[3]
    assert float(loss) == pytest.approx(float(total), rel=1e-4)


def test_lbfgs_lowers_the_loss_and_reports_each_iteration(content_rgb, style_rgb, tiny_settings):
    seen = []
    result = optimize.transfer_style(content_rgb, style_rgb, callback=seen.append, **tiny_settings)
    assert result.loss < result.losses[0] / 2
    assert result.loss == min(result.losses)  # The best image seen is the one returned.
    assert [p.iteration for p in seen] == list(range(1, result.iterations + 1))
    assert all(a.evaluations <= b.evaluations for a, b in zip(seen, seen[1:]))
    assert result.evaluations == tiny_settings["max_evals"] == len(result.losses)
    assert result.image.shape == content_rgb.shape and result.image.dtype == np.uint8
    last = seen[-1]
    assert last.loss == pytest.approx(last.content_loss + last.style_loss + last.tv_loss, rel=1e-5)
    assert set(last.layer_losses) == {"content/block5_conv2"} | {
        f"style/block{i}_conv1" for i in range(1, 6)
    }


def test_the_objective_traces_once(content_rgb, style_rgb):
    config = StyleConfig(weights=None, height=48, max_evals=6, seed=0)
    problem = optimize.build_problem(content_rgb, style_rgb, config)
    optimize.solve(problem)
    assert problem.loss_and_grad.experimental_get_tracing_count() == 1


def test_max_evals_and_iterations_bound_the_run(content_rgb, style_rgb):
    result = optimize.transfer_style(content_rgb, style_rgb, weights=None, height=48,
                                     max_evals=50, iterations=3, seed=0)
    assert result.iterations == 3 and result.evaluations < 50


def test_the_seed_makes_a_run_repeatable(content_rgb, style_rgb, tiny_settings):
    settings = dict(tiny_settings, init="noise")
    a = optimize.stylize(content_rgb, style_rgb, **settings)
    b = optimize.stylize(content_rgb, style_rgb, **settings)
    c = optimize.stylize(content_rgb, style_rgb, **dict(settings, seed=1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_targets_are_computed_once(content_rgb, style_rgb, monkeypatch):
    calls = []
    original = optimize.compute_targets
    monkeypatch.setattr(optimize, "compute_targets",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    optimize.transfer_style(content_rgb, style_rgb, weights=None, height=48, max_evals=8, seed=0)
    assert len(calls) == 1


def _fake_objective(fail_at, exception):
    """A quadratic bowl that fails at evaluation `fail_at`."""
    count = {"n": 0}

    def loss_and_grad(x):
        count["n"] += 1
        if count["n"] == fail_at:
            if exception == "nan":
                return tf.constant(np.nan), x, tf.constant([np.nan])
            raise exception()
        loss = tf.reduce_sum(tf.square(x - 10.0))
        return loss, 2.0 * (x - 10.0), tf.reshape(loss, (1,))

    return loss_and_grad


@pytest.mark.parametrize("failure, error", [("nan", optimize.NonFiniteLossError),
                                            (KeyboardInterrupt, optimize.Interrupted)])
def test_failures_keep_the_best_image(failure, error):
    x0 = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(error) as caught:
        optimize.minimize(_fake_objective(4, failure), x0, iterations=100, max_evals=100,
                          term_names=["tv"], weights=[1.0])
    best = caught.value.best_image
    assert best is not None and best.shape == (4, 4, 3)
    # The best image is closer to the bowl's centre (10 in 'caffe' space) than the start.
    from nst_keras.images import deprocess, preprocess

    assert np.abs(preprocess(best) - 10).mean() < np.abs(x0 - 10).mean()
    assert not np.array_equal(best, deprocess(x0))


def test_invalid_settings_are_refused(content_rgb, style_rgb):
    with pytest.raises(ValueError, match="Received: style_weight=-1"):
        optimize.transfer_style(content_rgb, style_rgb, weights=None, style_weight=-1)
    with pytest.raises(ValueError, match="Received: init='zeros'"):
        StyleConfig(init="zeros")


@pytest.mark.shared
def test_stand_in_weights_lower_the_style_loss_tenfold(stand_in_weights, shared_images):
    # Tuebingen x The Starry Night, small: with trained filters the style loss falls by
    # far more than 10x in 30 evaluations from the content image.
    config = StyleConfig(model="vgg16", weights=stand_in_weights, height=64, max_evals=30, seed=0)
    content, style = optimize.prepare(
        str(shared_images / "tubingen.jpg"), str(shared_images / "starry_night.jpg"), config
    )
    problem = optimize.build_problem(content, style, config)
    before = _style_loss(problem, problem.x0)
    result = optimize.solve(problem)
    assert result.style_loss < before / 10


@pytest.mark.imagenet
def test_imagenet_weights_lower_the_style_loss_tenfold():
    from nst_keras.features import imagenet_weights_path

    if not os.path.isfile(imagenet_weights_path("vgg19")):
        pytest.skip("the ImageNet VGG19 weights are not in the Keras cache")
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is absent")
    config = StyleConfig(height=64, max_evals=30, seed=0)
    content, style = optimize.prepare(
        str(SHARED_IMAGES / "tubingen.jpg"), str(SHARED_IMAGES / "starry_night.jpg"), config
    )
    problem = optimize.build_problem(content, style, config)
    before = _style_loss(problem, problem.x0)
    assert optimize.solve(problem).style_loss < before / 10
