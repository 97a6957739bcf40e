"""The monitor's rules (budget, best image, non-finite, interrupt) and the L-BFGS-B driver."""

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import errors
from nst_keras.engine import solvers
from nst_keras.media.images import deprocess, pixel_bounds, preprocess
from nst_keras.engine.objective import Term


class Bowl:
    """A quadratic bowl centred at `centre` in 'caffe' space; fails at evaluation `fail_at`."""

    def __init__(self, centre=10.0, fail_at=None, failure=None, conditioning=1.0):
        self.centre, self.fail_at, self.failure, self.calls = centre, fail_at, failure, 0
        self.points = []
        # Curvature from 1 to `conditioning` along the pixels: L-BFGS needs many steps.
        self.scale = np.geomspace(1.0, conditioning, 48).reshape(1, 4, 4, 3).astype(np.float32)

    def __call__(self, x):
        self.calls += 1
        self.points.append(np.array(x))
        if self.calls == self.fail_at:
            if self.failure == "nan":
                return tf.constant(np.nan), tf.constant(x), {"tv": tf.constant(np.nan)}
            raise self.failure()
        loss = tf.reduce_sum(self.scale * tf.square(x - self.centre))
        return loss, 2.0 * self.scale * (tf.constant(x) - self.centre), {"tv": loss}


TERMS = (Term("tv", "tv", None, 1.0),)


def _monitor(objective, max_evals=100, callback=None, **rules):
    return solvers.Monitor(objective, TERMS, (1, 4, 4, 3), max_evals, callback, **rules)


@pytest.mark.parametrize("failure, error", [("nan", errors.NonFiniteLossError),
                                            (KeyboardInterrupt, errors.Interrupted)])
def test_failures_keep_the_best_image(failure, error):
    x0 = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(error) as caught:
        solvers.lbfgs(_monitor(Bowl(fail_at=4, failure=failure)), x0, iterations=100)
    best = caught.value.best_image
    assert best is not None and best.shape == (4, 4, 3)
    # The best image is closer to the bowl's centre (10 in 'caffe' space) than the start.
    assert np.abs(preprocess(best) - 10).mean() < np.abs(x0 - 10).mean()
    assert not np.array_equal(best, deprocess(x0))


def test_out_of_memory_keeps_the_best_image():
    def oom():
        return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")

    with pytest.raises(errors.OutOfMemoryError, match="out of memory at 4x4") as caught:
        solvers.lbfgs(_monitor(Bowl(fail_at=3, failure=oom)),
                      np.zeros((1, 4, 4, 3), np.float32), iterations=100)
    assert caught.value.best_image is not None


def test_the_budget_is_exact_and_each_iteration_is_the_last_point_evaluated():
    bowl = Bowl(centre=10.0, conditioning=1e4)
    seen = []
    monitor = _monitor(bowl, max_evals=7, callback=seen.append)
    outcome = solvers.lbfgs(monitor, np.zeros((1, 4, 4, 3), np.float32), iterations=100)
    assert outcome.evaluations == 7 == bowl.calls == len(outcome.losses)
    assert seen and [p.iteration for p in seen] == list(range(1, len(seen) + 1))
    # SciPy's accepted point is the last one evaluated: the Progress image is that point.
    for progress, record in zip(seen, outcome.history):
        point = bowl.points[record["evaluations"] - 1]
        np.testing.assert_array_equal(progress.image, deprocess(point))
    assert outcome.best.loss == min(outcome.losses)
    assert outcome.stop_reason == "max_evals reached (7)"


def test_bounds_keep_every_evaluated_point_in_the_pixel_box():
    bowl = Bowl(centre=1000.0)  # Far outside the box: unbounded, pixels would go to 1000.
    lower, upper = pixel_bounds((1, 4, 4, 3))
    outcome = solvers.lbfgs(_monitor(bowl), np.zeros((1, 4, 4, 3), np.float32),
                            iterations=100, bounds=(lower, upper))
    for point in bowl.points:
        assert np.all(point >= lower - 1e-4) and np.all(point <= upper + 1e-4)
    np.testing.assert_allclose(outcome.x, upper, atol=1e-3)  # Pinned to the wall.
    np.testing.assert_array_equal(deprocess(outcome.x), 255)


def test_divergence_stops_a_gradient_method_with_the_best_image():
    # Plain gradient steps of 1.5 on a bowl of curvature 1 overshoot ever further: each step
    # doubles the distance to the centre, so the loss rises far above its start.
    import keras

    monitor = _monitor(Bowl(centre=10.0), max_evals=100,
                       divergence=solvers.DivergenceRule(factor=10, patience=3))
    with pytest.raises(errors.DivergedError, match="learning_rate") as caught:
        solvers.gradient_descent(monitor, np.zeros((1, 4, 4, 3), np.float32), iterations=100,
                                 optimizer=keras.optimizers.SGD(1.5))
    assert monitor.evaluations < 20  # Stopped early, not at the budget.
    np.testing.assert_array_equal(caught.value.best_image, deprocess(np.zeros((1, 4, 4, 3))))


def test_a_gradient_run_that_never_improves_is_a_failure():
    # Steps of exactly 1.0 jump to the mirror point: the loss never falls below its start.
    import keras

    monitor = _monitor(Bowl(centre=10.0), max_evals=6)
    with pytest.raises(errors.DivergedError, match="only got worse"):
        solvers.gradient_descent(monitor, np.zeros((1, 4, 4, 3), np.float32), iterations=6,
                                 optimizer=keras.optimizers.SGD(1.0))


def test_sgds_default_learning_rate_moves_pixels_by_one_level():
    gradient = np.full((1, 4, 4, 3), 250.0)
    assert solvers.sgd_learning_rate(gradient) == pytest.approx(1 / 250)
    assert solvers.keras_optimizer("adam").learning_rate.numpy() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="Received: gradient=None"):
        solvers.keras_optimizer("sgd")


def test_an_offset_monitor_counts_on_from_the_previous_stage():
    seen = []
    monitor = _monitor(Bowl(conditioning=1e4), max_evals=8, callback=seen.append,
                       offset=solvers.Offset(iterations=5, evaluations=7, seconds=100.0,
                                             stage=2, stages=2))
    outcome = solvers.lbfgs(monitor, np.zeros((1, 4, 4, 3), np.float32), iterations=100)
    assert seen[0].iteration == 6 and seen[0].evaluations >= 8 and seen[0].stage == 2
    assert all(t >= 100.0 for t in outcome.times)
    assert outcome.history[0]["stage"] == 2 and outcome.history[0]["iteration"] == 6
    assert outcome.evaluations == 8  # The stage's own count.
