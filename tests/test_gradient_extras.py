"""Adam's and SGD's extras: the moving average of the iterates (`--ema`) and jcjohnson's
normalised gradients (`--normalize-gradients`), each against a numpy reference."""

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import render, run
from nst_keras.commands import cli
from nst_keras.engine import objective, solvers
from nst_keras.config import StyleConfig
from nst_keras.media.images import preprocess
from nst_keras.engine.objective import Term


F32 = dict(weights=None, height=48, seed=0, precision="float32", tile="off")


class Bowl:
    """sum(scale * (x - centre)**2): a quadratic bowl, recording every point evaluated."""

    def __init__(self, centre=10.0):
        self.centre, self.points = centre, []
        self.scale = np.geomspace(1.0, 3.0, 48).reshape(1, 4, 4, 3)

    def loss(self, x):
        return float(np.sum(self.scale * np.square(np.asarray(x, np.float64) - self.centre)))

    def __call__(self, x):
        self.points.append(np.array(x))
        loss = self.loss(x)
        grad = 2.0 * self.scale * (np.asarray(x, np.float64) - self.centre)
        return tf.constant(loss, tf.float32), tf.constant(grad, tf.float32), {"tv": loss}


TERMS = (Term("tv", "tv", None, 1.0),)


def numpy_ema(iterates, decay):
    """The iterates x_0 .. x_n weighted by decay**(n - k), normalised to sum to 1."""
    n = len(iterates) - 1
    weights = np.array([decay ** (n - k) for k in range(n + 1)])
    return np.tensordot(weights / weights.sum(), np.stack(iterates), axes=1)


# --- --ema -------------------------------------------------------------------------------


def test_the_moving_average_is_crowsonkbs_bias_corrected_ema():
    rng = np.random.default_rng(0)
    points = [rng.normal(size=(2, 3)) for _ in range(7)]
    average = solvers.MovingAverage(points[0], 0.8)
    for p in points[1:]:
        average.update(p)
    np.testing.assert_allclose(average.get(), numpy_ema(points, 0.8), rtol=1e-6)
    # Bias-corrected: the average of one point is that point, not (1 - decay) times it.
    np.testing.assert_allclose(solvers.MovingAverage(points[0], 0.99).get(), points[0],
                               rtol=1e-6)


def test_ema_delivers_the_average_of_the_iterates_and_spends_one_evaluation_on_it():
    import keras

    bowl = Bowl(centre=10.0)
    x0 = np.zeros((1, 4, 4, 3), np.float32)
    monitor = solvers.Monitor(bowl, TERMS, x0.shape, 10)
    outcome = solvers.gradient_descent(monitor, x0, optimizer=keras.optimizers.SGD(0.1),
                                       iterations=100, ema=0.7)
    # Plain SGD on the bowl, in numpy: x <- x - 0.1 * grad(x), 9 steps (x_0 ... x_9).
    iterates = [x0.astype(np.float64)]
    for _ in range(9):
        x = iterates[-1]
        iterates.append(x - 0.1 * 2.0 * bowl.scale * (x - 10.0))
    expected = numpy_ema(iterates, 0.7)
    np.testing.assert_allclose(outcome.x, expected, rtol=1e-5, atol=1e-5)
    # The budget: 9 steps and the average's own evaluation, 10 in all.
    assert outcome.evaluations == 10 == len(bowl.points) == len(outcome.losses)
    assert outcome.iterations == 9
    np.testing.assert_array_equal(bowl.points[-1], outcome.x)
    # The loss delivered is the average's, not the best iterate's (which is lower here:
    # the average lags behind the descent).
    assert outcome.best.loss == pytest.approx(bowl.loss(expected), rel=1e-5)
    assert outcome.best.loss > min(outcome.losses[:-1])
    assert outcome.history[-1]["ema"] is True
    assert outcome.history[-1]["evaluations"] == 10 and outcome.history[-1]["iteration"] == 9
    assert "moving average" in outcome.stop_reason and "best iterate" in outcome.stop_reason


def test_ema_with_fewer_iterations_than_the_budget_evaluates_the_average_after_them():
    import keras

    bowl = Bowl()
    x0 = np.zeros((1, 4, 4, 3), np.float32)
    outcome = solvers.gradient_descent(solvers.Monitor(bowl, TERMS, x0.shape, 50), x0,
                                       optimizer=keras.optimizers.Adam(0.5), iterations=4,
                                       ema=0.5)
    assert outcome.iterations == 4 and outcome.evaluations == 5
    assert outcome.stop_reason.startswith("iterations reached (4)")


def test_a_render_with_ema_reports_the_loss_of_the_image_it_delivers(content_rgb, style_rgb):
    config = StyleConfig(**F32, optimizer="adam", learning_rate=2.0, ema=0.9, max_evals=8)
    problem = run.build_problem(content_rgb, style_rgb, config)
    result = render.solve(problem)
    assert result.evaluations == 8 and result.iterations == 7
    # The delivered image's true loss: the float image evaluated again gives the loss reported.
    loss, _, _ = problem.objective(preprocess(result.pixels))
    assert float(loss) == pytest.approx(result.loss, rel=1e-4)
    assert result.history[-1]["ema"] and result.losses[-1] == result.loss


def test_ema_is_refused_with_lbfgs_and_outside_0_1_in_one_line(capsys):
    with pytest.raises(ValueError, match="Received: ema=0.99, optimizer=lbfgs"):
        StyleConfig(ema=0.99)
    for bad in (0.0, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="`ema` must be a decay in \\(0, 1\\)"):
            StyleConfig(optimizer="adam", ema=bad)
    assert StyleConfig(optimizer="sgd", ema=0.99).ema == 0.99
    assert cli.main(["a.png", "b.png", "--ema", "0.99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Received: --ema 0.99, --optimizer lbfgs" in err
    assert cli.main(["a.png", "b.png", "--optimizer", "adam", "--ema", "1"]) == 2
    assert "Received: --ema 1.0" in capsys.readouterr().err


# --- --normalize-gradients ---------------------------------------------------------------


def _linear_layer_model(channels=5, seed=0):
    """A 'network' of one 1x1 linear conv named block1_conv1: F = x K + b per pixel."""
    import keras

    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(3, channels)).astype(np.float32) * 0.1
    bias = rng.normal(size=(channels,)).astype(np.float32)
    inputs = keras.Input(shape=(None, None, 3))
    conv = keras.layers.Conv2D(channels, 1, name="block1_conv1")
    model = keras.Model(inputs, {"block1_conv1": conv(inputs)})
    conv.set_weights([kernel[None, None], bias])
    return model, kernel.astype(np.float64), bias.astype(np.float64)


def _normalized(g):
    return g / (np.abs(g).sum() + 1e-8)


def test_normalized_gradients_match_jcjohnsons_formula_in_numpy(content_rgb, style_rgb):
    model, kernel, bias = _linear_layer_model()
    weights = {"content/block1_conv1": 0.3, "style/block1_conv1": 2.0, "tv": 0.0}
    terms = tuple(Term(name, name.split("/")[0], "block1_conv1" if "/" in name else None, w)
                  for name, w in weights.items())

    def objective_of(normalize):
        config = StyleConfig(**F32, optimizer="adam", normalize_gradients=normalize)
        return objective.build_objective(model, terms, content_rgb, [style_rgb], config)

    plain, normal = objective_of(False), objective_of(True)
    x = preprocess(content_rgb[::-1] * 0.5 + 60.0)  # Not the content: every term is > 0.
    loss_p, grad_p, values_p = plain(x)
    loss_n, grad_n, values_n = normal(x)
    # The loss and every term are unchanged; only the gradient differs.
    assert float(loss_n) == float(loss_p)
    assert {k: float(v) for k, v in values_n.items()} == {k: float(v) for k, v in values_p.items()}

    # numpy, float64: d(content)/dF = 2 (F - P); d(style)/dF = 4 F (G - A) / Z with the
    # book's Z = 4 * 3**2 * (H W)**2; each divided by its L1 norm, weighted, then back to
    # the image through the 1x1 conv (times K^T).
    h, w = content_rgb.shape[:2]
    f = x[0].astype(np.float64).reshape(-1, 3) @ kernel + bias
    p = plain.targets["content/block1_conv1"].numpy().reshape(-1, kernel.shape[1])
    a = plain.targets["style/block1_conv1"].numpy().astype(np.float64)
    d_content = 2.0 * (f - p)
    d_style = 4.0 * f @ (f.T @ f - a) / (4 * 3**2 * (h * w) ** 2)
    plain_f = 0.3 * d_content + 2.0 * d_style
    normal_f = 0.3 * _normalized(d_content) + 2.0 * _normalized(d_style)
    np.testing.assert_allclose(grad_p.numpy()[0].reshape(-1, 3), plain_f @ kernel.T,
                               rtol=1e-4, atol=1e-6 * np.abs(plain_f @ kernel.T).max())
    expected = normal_f @ kernel.T
    np.testing.assert_allclose(grad_n.numpy()[0].reshape(-1, 3), expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max())
    # The test can fail: the two gradients are far apart.
    assert not np.allclose(grad_n.numpy(), grad_p.numpy(), rtol=0.1)


def test_normalized_gradients_leave_tv_and_zero_weight_terms_alone(content_rgb, style_rgb):
    model, _, _ = _linear_layer_model()
    x = preprocess(content_rgb[::-1] * 0.5 + 60.0)

    def gradient(weights, normalize):
        terms = tuple(Term(n, n.split("/")[0], "block1_conv1" if "/" in n else None, wt)
                      for n, wt in weights.items())
        config = StyleConfig(**F32, optimizer="sgd", normalize_gradients=normalize)
        built = objective.build_objective(model, terms, content_rgb, [style_rgb], config)
        return built(x)[1].numpy()

    only_tv = {"content/block1_conv1": 0.0, "style/block1_conv1": 0.0, "tv": 1e-3}
    np.testing.assert_allclose(gradient(only_tv, True), gradient(only_tv, False), rtol=1e-6)
    assert np.all(np.isfinite(gradient(only_tv, True)))  # A weight of 0 is not divided by.


def test_normalized_gradients_are_refused_with_lbfgs_and_tiled_in_one_line(
        capsys, image_files):
    with pytest.raises(ValueError, match="Received: normalize_gradients=True, optimizer=lbfgs"):
        StyleConfig(normalize_gradients=True)
    content, style = image_files
    assert cli.main([str(content), str(style), "--normalize-gradients"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Received: --normalize-gradients True, --optimizer lbfgs" in err
    # Tiled (a core smaller than the image): refused by the plan before anything is built.
    code = cli.main([str(content), str(style), "--optimizer", "adam", "--normalize-gradients",
                     "--weights", "none", "--height", "48", "--tile", "16", "-o",
                     str(content.parent / "out.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "would be tiled" in err and "--tile 16" in err
    assert not (content.parent / "out.png").exists()


def test_a_normalized_gradient_run_descends(content_rgb, style_rgb):
    config = StyleConfig(**F32, optimizer="adam", learning_rate=2.0, normalize_gradients=True,
                         max_evals=6)
    result = render.solve(run.build_problem(content_rgb, style_rgb, config))
    assert result.evaluations == 6 and result.loss < result.losses[0]


def test_ema_coarse_to_fine_averages_each_stage_within_its_budget(content_rgb, style_rgb):
    from nst_keras.plan import plan

    job = plan(content_rgb, style_rgb, **F32, optimizer="adam", learning_rate=2.0, ema=0.9,
               max_evals=8, scales=2)
    result = render.render(job)
    averaged = [h for h in result.history if h.get("ema")]
    # One average per stage, each its stage's last evaluation, inside the total budget.
    assert [h["stage"] for h in averaged] == [1, 2]
    assert result.evaluations == 8 == len(result.losses)
    assert averaged[-1]["evaluations"] == 8 and result.loss == averaged[-1]["loss"]
