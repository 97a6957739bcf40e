"""A run end to end: the objective and its gradient, bounds, precision, caching, the API."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import run
from nst_keras.engine import features, objective, runtime
from nst_keras.config import StyleConfig

from conftest import SHARED_IMAGES, make_image, prepared


def _style_loss(problem, x):
    _, _, values = problem.objective(x)
    return sum(t.weight * float(values[t.name]) for t in problem.objective.terms
               if t.kind == "style")


def test_gradient_matches_central_finite_differences():
    # Average pooling and a smooth image keep the loss differentiable near x; the check
    # is along random directions, in float32 with a step of a few grey levels.
    content, style = make_image(16, 16, seed=3), make_image(16, 16, seed=4)
    config = StyleConfig(
        weights=None, height=16, seed=5, pooling="avg", content_layers=("conv2_2",),
        style_layers=("conv1_1", "conv2_1", "conv3_1"), content_weight=1.0, style_weight=1e3,
        tv_weight=1e-2, normalization="paper", precision="float32",
    )
    problem = run.build_problem(content, style, config)
    rng = np.random.default_rng(0)
    x = problem.x0 + rng.normal(0, 5, problem.x0.shape).astype(np.float32)
    _, grad, _ = problem.objective(x)
    grad = grad.numpy().astype(np.float64)

    def f(v):
        return float(problem.objective(v.astype(np.float32))[0])

    for _ in range(3):
        d = rng.normal(size=x.shape)
        d /= np.linalg.norm(d)
        eps = 2.0
        numeric = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        analytic = float(np.sum(grad * d))
        # The loss is ~2e5 in float32: its differences resolve to ~0.01 at this step.
        assert analytic == pytest.approx(numeric, rel=1e-2, abs=0.05)


def test_term_losses_match_the_loss_functions(content_rgb, style_rgb):
    from nst_keras.engine import losses
    from nst_keras.media.images import preprocess

    config = StyleConfig(weights=None, height=48, seed=1, style_layers=("conv1_1", "conv2_1"),
                         precision="float32")
    problem = run.build_problem(content_rgb, style_rgb, config)
    loss, _, values = problem.objective(problem.x0)
    # Recompute by hand with the public loss functions and a model of the same weights.
    tf.keras.utils.set_random_seed(1)
    model = features.build_feature_model(["block5_conv2", "block1_conv1", "block2_conv1"],
                                         weights=None, padding=config.padding)
    c = model(preprocess(content_rgb))
    s = model(preprocess(style_rgb))
    g = model(problem.x0)
    hw = content_rgb.shape[:2]
    expected = {
        "content/block5_conv2": losses.content_loss(c["block5_conv2"][0], g["block5_conv2"][0]),
        "style/block1_conv1": losses.style_loss(s["block1_conv1"][0], g["block1_conv1"][0],
                                                image_shape=hw),
        "style/block2_conv1": losses.style_loss(s["block2_conv1"][0], g["block2_conv1"][0],
                                                image_shape=hw),
        "tv": losses.total_variation_loss(problem.x0),
    }
    assert list(values) == list(expected)  # Terms by name, in order.
    for name, value in expected.items():
        assert float(values[name]) == pytest.approx(float(value), rel=1e-4), name
    total = (0.025 * expected["content/block5_conv2"] + 0.5 * expected["style/block1_conv1"]
             + 0.5 * expected["style/block2_conv1"] + 1e-4 * expected["tv"])
    assert float(loss) == pytest.approx(float(total), rel=1e-4)


def test_lbfgs_lowers_the_loss_and_reports_each_iteration(content_rgb, style_rgb, tiny_settings):
    seen = []
    result = run.transfer_style(content_rgb, style_rgb, callback=seen.append, **tiny_settings)
    assert result.loss < result.losses[0] / 2
    assert result.loss == min(result.losses)  # The best image seen is the one returned.
    assert [p.iteration for p in seen] == list(range(1, result.iterations + 1))
    assert all(a.evaluations <= b.evaluations for a, b in zip(seen, seen[1:]))
    assert result.evaluations == tiny_settings["max_evals"] == len(result.losses)
    assert len(result.times) == len(result.losses)
    assert [h["iteration"] for h in result.history] == list(range(1, result.iterations + 1))
    assert result.image.shape == content_rgb.shape and result.image.dtype == np.uint8
    last = seen[-1]
    assert last.loss == pytest.approx(last.content_loss + last.style_loss + last.tv_loss, rel=1e-5)
    assert set(last.layer_losses) == {"content/block5_conv2"} | {
        f"style/block{i}_conv1" for i in range(1, 6)
    }


def test_bounds_keep_pixels_in_range_and_the_saved_image_has_the_reported_loss(
        tmp_path, content_rgb, style_rgb):
    # A style weight this large drives unbounded pixels far outside 0-255 within a few
    # evaluations, so clipping at save time would change the image.
    settings = dict(weights=None, height=48, max_evals=30, seed=0, style_weight=1e4,
                    precision="float32")
    from nst_keras.media.images import load_image, preprocess, save_image

    bounded = run.build_problem(content_rgb, style_rgb, StyleConfig(**settings))
    result = run.solve(bounded)
    path = tmp_path / "saved.png"
    save_image(path, result.image)
    judged = objective.evaluate_image(bounded.objective, load_image(str(path)))
    assert judged == pytest.approx(result.loss, rel=5e-3)

    free = run.build_problem(content_rgb, style_rgb, StyleConfig(**settings, bounds=False))
    seen = []
    unbounded = run.solve(free, callback=seen.append)
    # Without bounds the reported loss is of pixels a PNG cannot hold: the saved image's
    # loss differs from it.
    judged_free = objective.evaluate_image(free.objective, unbounded.image)
    assert abs(judged_free - unbounded.loss) > 0.005 * unbounded.loss
    lower, upper = bounded.bounds
    assert lower.shape == bounded.x0.shape
    np.testing.assert_allclose(lower[0, 0, 0], -np.array([103.939, 116.779, 123.68]), rtol=1e-6)
    np.testing.assert_allclose(upper - lower, 255.0)
    x_best = preprocess(result.image)
    assert np.all(x_best >= lower - 0.5) and np.all(x_best <= upper + 0.5)


def test_one_model_per_process_and_one_trace_per_size(content_rgb, style_rgb):
    runtime.MODELS.clear()
    builds = runtime.MODELS.builds
    config = StyleConfig(weights=None, height=48, max_evals=4, seed=0)
    first = run.build_problem(content_rgb, style_rgb, config)
    run.solve(first)
    # Another style and other weights, the same size: the same model, no new trace.
    second = run.build_problem(content_rgb, make_image(30, 50, seed=9),
                               config.replace(style_weight=7.0, content_weight=0.5))
    run.solve(second)
    assert runtime.MODELS.builds == builds + 1
    assert second.objective.function is first.objective.function
    assert first.objective.function.experimental_get_tracing_count() == 1
    # A third size traces once more; another layer set builds another model.
    run.build_problem(make_image(32, 40), style_rgb, config.replace(height=32))
    assert first.objective.function.experimental_get_tracing_count() == 2
    run.build_problem(content_rgb, style_rgb, config.replace(style_layers=("conv1_1",)))
    assert runtime.MODELS.builds == builds + 2


def test_random_weights_are_keyed_by_seed(content_rgb, style_rgb):
    a = run.build_problem(content_rgb, style_rgb, StyleConfig(weights=None, height=48, seed=0))
    b = run.build_problem(content_rgb, style_rgb, StyleConfig(weights=None, height=48, seed=1))
    assert float(a.objective(a.x0)[0]) != float(b.objective(b.x0)[0])


def test_max_evals_and_iterations_bound_the_run(content_rgb, style_rgb):
    result = run.transfer_style(content_rgb, style_rgb, weights=None, height=48,
                                max_evals=50, iterations=3, seed=0)
    assert result.iterations == 3 and result.evaluations < 50


def test_the_seed_makes_a_run_repeatable(content_rgb, style_rgb, tiny_settings):
    settings = dict(tiny_settings, init="noise")
    a = run.stylize(content_rgb, style_rgb, **settings)
    b = run.stylize(content_rgb, style_rgb, **settings)
    c = run.stylize(content_rgb, style_rgb, **dict(settings, seed=1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_targets_are_computed_once(content_rgb, style_rgb, monkeypatch):
    calls = []
    original = objective.compute_targets
    monkeypatch.setattr(objective, "compute_targets",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    run.transfer_style(content_rgb, style_rgb, weights=None, height=48, max_evals=8, seed=0)
    assert len(calls) == 1


def test_bfloat16_computes_convolutions_in_bfloat16_and_losses_in_float32(content_rgb, style_rgb):
    import keras

    before = keras.config.dtype_policy().name
    config = StyleConfig(weights=None, height=48, seed=0)
    low = run.build_problem(content_rgb, style_rgb, config.replace(precision="bfloat16"))
    full = run.build_problem(content_rgb, style_rgb, config.replace(precision="float32"))
    assert keras.config.dtype_policy().name == before  # The policy does not leak.
    assert (low.precision, full.precision) == ("bfloat16", "float32")
    model = runtime.MODELS.get(["block5_conv2", "block1_conv1"], weights=None, seed=0,
                                precision="bfloat16")
    outputs = features.features_of(model, low.x0)
    assert all(o.dtype == tf.bfloat16 for o in outputs.values())
    loss, grad, values = low.objective(low.x0)
    assert loss.dtype == tf.float32 and grad.dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in values.values())
    # The same network in two precisions: the losses agree to bfloat16's ~3 digits.
    assert float(loss) == pytest.approx(float(full.objective(full.x0)[0]), rel=0.05)


def test_auto_precision_follows_the_cpu_flags(monkeypatch):
    from nst_keras.engine import runtime

    for flags, expected in (({"avx2"}, "float32"), ({"avx2", "avx512_bf16"}, "bfloat16"),
                            ({"amx_bf16", "amx_tile"}, "bfloat16")):
        monkeypatch.setattr(runtime, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert runtime.resolve_precision("auto", "cpu") == expected
        assert runtime.resolve_precision("auto", "gpu") == "float32"
        assert runtime.resolve_precision("float32", "cpu") == "float32"


def test_describe_hardware_names_the_cpu_flags():
    from nst_keras.engine import runtime

    line = runtime.describe_hardware("cpu")
    assert line.startswith("CPU ")
    for flag in runtime.cpu_flags():
        assert flag in line


def test_progress_and_result_reprs_leave_the_image_out(content_rgb, style_rgb, tiny_settings):
    seen = []
    result = run.transfer_style(content_rgb, style_rgb, callback=seen.append, **tiny_settings)
    for record in (seen[-1], result):
        text = repr(record)
        assert "array(" not in text and len(text) < 2000 and "loss=" in text


def test_invalid_settings_are_refused(content_rgb, style_rgb):
    with pytest.raises(ValueError, match="Received: style_weight=-1"):
        run.transfer_style(content_rgb, style_rgb, weights=None, style_weight=-1)
    with pytest.raises(ValueError, match="Received: init=''"):
        StyleConfig(init="")
    # Not a named start: the path of an image, and there is none (refused by the plan).
    with pytest.raises(ValueError, match="the init image does not exist.*Received: init=zeros"):
        run.transfer_style(content_rgb, style_rgb, weights=None, init="zeros", max_evals=2)
    with pytest.raises(ValueError, match="Received: precision='float16'"):
        StyleConfig(precision="float16")


@pytest.mark.shared
def test_stand_in_weights_lower_the_style_loss_tenfold(stand_in_weights, shared_images):
    # Tuebingen x The Starry Night, small: with trained filters the style loss falls by
    # far more than 10x in 30 evaluations from the content image.
    config = StyleConfig(model="vgg16", weights=stand_in_weights, height=64, max_evals=30, seed=0)
    content, style = prepared(
        str(shared_images / "tubingen.jpg"), str(shared_images / "starry_night.jpg"), config
    )
    problem = run.build_problem(content, style, config)
    before = _style_loss(problem, problem.x0)
    result = run.solve(problem)
    assert result.style_loss < before / 10


@pytest.mark.imagenet
def test_imagenet_weights_lower_the_style_loss_tenfold():
    from nst_keras.engine.features import imagenet_weights_path

    if not os.path.isfile(imagenet_weights_path("vgg19")):
        pytest.skip("the ImageNet VGG19 weights are not in the Keras cache")
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is absent")
    config = StyleConfig(height=64, max_evals=30, seed=0)
    content, style = prepared(
        str(SHARED_IMAGES / "tubingen.jpg"), str(SHARED_IMAGES / "starry_night.jpg"), config
    )
    problem = run.build_problem(content, style, config)
    before = _style_loss(problem, problem.x0)
    assert run.solve(problem).style_loss < before / 10
