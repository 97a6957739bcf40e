"""The monitor's rules (budget, best image, non-finite, interrupt) and the L-BFGS-B driver."""

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import errors, solvers
from nst_keras.images import deprocess, pixel_bounds, preprocess


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


def _monitor(objective, max_evals=100, callback=None):
    return solvers.Monitor(objective, {"tv": 1.0}, (1, 4, 4, 3), max_evals, callback)


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
