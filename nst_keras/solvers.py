"""The optimisers and the rules they share.

`Monitor` is the one place that holds a run's state: the evaluation budget, the best image
seen, the history, and the rules for a non-finite loss, running out of memory and Ctrl-C.
An optimiser asks it to evaluate points and tells it when an iteration ends; it reports
progress to the callback as frozen `Progress` records. `lbfgs` drives SciPy's L-BFGS-B
with it, and `gradient_descent` Keras' Adam or SGD, with the same monitor unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from nst_keras import images as images_lib
from nst_keras.errors import Interrupted, NonFiniteLossError, OutOfMemoryError


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the callback receives after each iteration.

    Attributes:
        iteration: Iterations done (from 1).
        evaluations: Loss-and-gradient evaluations done; L-BFGS's line search may spend
            several per iteration.
        loss: The total loss of the current image.
        content_loss: The weighted content terms of `loss`, summed.
        style_loss: The weighted style terms of `loss`, summed.
        tv_loss: The weighted total-variation term of `loss`.
        layer_losses: The *unweighted* loss of each layer term, by name (`content/<layer>`,
            `style/<layer>`, or `style/<k>/<layer>` for the k-th masked style; Keras layer
            names).
        seconds: Wall time since the optimisation started.
        image: The current image, RGB uint8 (H, W, 3) (left out of the repr).
        stage: The coarse-to-fine stage (from 1), `stages` of them; 1 of 1 for one size.
            Evaluations and seconds count from the first stage's start.
    """

    iteration: int
    evaluations: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    layer_losses: Dict[str, float]
    seconds: float
    image: np.ndarray = dataclasses.field(repr=False)
    stage: int = 1
    stages: int = 1


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluated point: its total loss and each term's weighted and unweighted value."""

    loss: float
    weighted: Dict[str, float]
    values: Dict[str, float]

    def kind_sum(self, kind: str) -> float:
        """The weighted terms of one kind (`content`, `style`, `tv`), summed."""
        return sum(v for name, v in self.weighted.items() if name.split("/")[0] == kind)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an optimiser returns: the best point and how the run went.

    Attributes:
        x: The best point seen, preprocessed (1, H, W, 3) float32.
        best: Its `Evaluation`.
        iterations: Iterations done.
        evaluations: Evaluations done.
        seconds: Wall time of the optimisation.
        losses: The total loss after each evaluation, in order.
        times: Seconds since the start at each evaluation, in order.
        history: One `Evaluation`-derived dict per iteration (iteration, evaluations,
            seconds, loss, weighted terms).
        stop_reason: What ended the run.
    """

    x: np.ndarray
    best: Evaluation
    iterations: int
    evaluations: int
    seconds: float
    losses: Tuple[float, ...]
    times: Tuple[float, ...]
    history: Tuple[dict, ...]
    stop_reason: str


class BudgetSpent(Exception):
    """Raised by `Monitor.evaluate` once the evaluation budget is spent."""


class Monitor:
    """Holds one run's state and applies its rules; shared by every optimiser.

    Args:
        objective: Callable x -> (loss, gradient, values by name), e.g. an `Objective`.
        weights: Term name -> weight, to report weighted terms.
        shape: Shape of the preprocessed image, (1, H, W, 3).
        max_evals: The budget: evaluations allowed.
        callback: Called with a `Progress` after each iteration, or None.
    """

    def __init__(self, objective, weights, shape, max_evals, callback=None):
        self.objective = objective
        self.weights = dict(weights)
        self.shape = tuple(shape)
        self.max_evals = max_evals
        self.callback = callback
        self.evaluations = 0
        self.iterations = 0
        self.best_x: Optional[np.ndarray] = None
        self.best: Optional[Evaluation] = None
        self.last_x: Optional[np.ndarray] = None
        self.last: Optional[Evaluation] = None
        self.losses: list = []
        self.times: list = []
        self.history: list = []
        self.start = time.perf_counter()

    def evaluate(self, x) -> Tuple[float, np.ndarray]:
        """Loss and gradient at `x` (any shape with the image's size), as float64 numpy.

        Raises:
            BudgetSpent: If the budget is spent (the point is not evaluated).
            NonFiniteLossError: If the loss or its gradient is not finite.
        """
        if self.evaluations >= self.max_evals:
            # SciPy checks `maxfun` only between iterations, so a line search can overrun
            # it; stopping here makes the budget exact.
            raise BudgetSpent()
        x = np.asarray(x, dtype=np.float32).reshape(self.shape)
        loss, grad, values = self.objective(x)
        loss, grad = float(loss), grad.numpy()
        if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
            what = "its gradient" if np.isfinite(loss) else f"the loss ({loss})"
            raise NonFiniteLossError(
                f"the run became non-finite: {what} after {self.evaluations} evaluations; "
                "try a lower --style-weight or --tv-weight"
            )
        values = {name: float(v) for name, v in values.items()}
        weighted = {name: self.weights[name] * v for name, v in values.items()}
        self.evaluations += 1
        self.losses.append(loss)
        self.times.append(time.perf_counter() - self.start)
        self.last_x, self.last = x, Evaluation(loss, weighted, values)
        if self.best is None or loss < self.best.loss:
            self.best_x, self.best = x, self.last
        return loss, grad.astype(np.float64)

    def end_iteration(self) -> None:
        """Records an iteration ending at the last point evaluated and tells the callback.

        L-BFGS-B's accepted point is the last one its line search evaluated, and gradient
        methods evaluate once per step, so the last evaluation is the iteration's point.
        """
        self.iterations += 1
        seconds = time.perf_counter() - self.start
        last = self.last
        self.history.append({
            "iteration": self.iterations, "evaluations": self.evaluations,
            "seconds": seconds, "loss": last.loss, "terms": dict(last.weighted),
        })
        if self.callback is not None:
            self.callback(Progress(
                iteration=self.iterations,
                evaluations=self.evaluations,
                loss=last.loss,
                content_loss=last.kind_sum("content"),
                style_loss=last.kind_sum("style"),
                tv_loss=last.kind_sum("tv"),
                layer_losses={n: v for n, v in last.values.items() if n != "tv"},
                seconds=seconds,
                image=images_lib.deprocess(self.last_x),
            ))

    def best_image(self) -> Optional[np.ndarray]:
        """The best image seen, RGB uint8, or None before the first evaluation."""
        return None if self.best_x is None else images_lib.deprocess(self.best_x)

    @contextlib.contextmanager
    def rules(self):
        """Ends the run by the rules: the budget quietly; the rest as errors with the best image.

        Raises:
            NonFiniteLossError: If the loss became non-finite.
            OutOfMemoryError: If TensorFlow or numpy ran out of memory.
            Interrupted: On KeyboardInterrupt (Ctrl-C, or SIGTERM as the CLI installs it).
        """
        import tensorflow as tf

        try:
            yield
        except BudgetSpent:
            pass
        except NonFiniteLossError as error:
            raise NonFiniteLossError(str(error), best_image=self.best_image()) from None
        except KeyboardInterrupt:
            raise Interrupted(best_image=self.best_image()) from None
        except (MemoryError, tf.errors.ResourceExhaustedError) as error:
            raise OutOfMemoryError(
                f"out of memory at {self.shape[2]}x{self.shape[1]} ({type(error).__name__})",
                best_image=self.best_image(),
            ) from None

    def outcome(self, stop_reason: str) -> Outcome:
        """The `Outcome` of the run so far."""
        return Outcome(
            x=self.best_x, best=self.best, iterations=self.iterations,
            evaluations=self.evaluations, seconds=time.perf_counter() - self.start,
            losses=tuple(self.losses), times=tuple(self.times), history=tuple(self.history),
            stop_reason=stop_reason,
        )


def lbfgs(monitor: Monitor, x0: np.ndarray, *, iterations: int,
          bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None, memory: int = 10) -> Outcome:
    """Minimises with one `scipy.optimize.fmin_l_bfgs_b` call.

    One call keeps L-BFGS's curvature memory for the whole run (the book restarts it every
    20 evaluations). SciPy's tolerances are 0 so that the budget, not a tolerance, ends the
    run (as jcjohnson/neural-style does). L-BFGS counts evaluations apart from iterations:
    its line search may evaluate more than once per iteration, so the monitor's budget
    bounds the work and `iterations` the steps.

    Args:
        monitor: The run's `Monitor` (objective, budget, callback).
        x0: The preprocessed starting image, (1, H, W, 3).
        iterations: Most iterations.
        bounds: (lower, upper) arrays of x0's shape: L-BFGS-B keeps every pixel inside
            (projected gradient); None for no bounds (the book).
        memory: Correction pairs kept (m; SciPy's default, as in the book).

    Returns:
        An `Outcome`.

    Raises:
        NonFiniteLossError, OutOfMemoryError, Interrupted: See `Monitor.rules`.
    """
    from scipy.optimize import fmin_l_bfgs_b

    box = None
    if bounds is not None:
        box = np.stack([np.ravel(bounds[0]), np.ravel(bounds[1])], axis=1).astype(np.float64)
    stop_reason = f"max_evals reached ({monitor.max_evals})"
    with monitor.rules():
        _, _, info = fmin_l_bfgs_b(
            monitor.evaluate,
            np.asarray(x0, dtype=np.float64).ravel(),
            bounds=box,
            m=memory,
            maxiter=iterations,
            maxfun=monitor.max_evals,
            factr=0.0,
            pgtol=0.0,
            callback=lambda xk: monitor.end_iteration(),
        )
        task = info.get("task", "")
        stop_reason = task.decode() if isinstance(task, bytes) else str(task)
    return monitor.outcome(stop_reason)


def keras_optimizer(name: str, learning_rate: float, decay: float = 1.0, decay_steps: int = 100):
    """Keras' Adam or SGD, its learning rate decayed by `decay` every `decay_steps` steps.

    Args:
        name: `"adam"` or `"sgd"`.
        learning_rate: The initial step size, in pixel units (0-255).
        decay: Multiplies the learning rate every `decay_steps` steps (smoothly, as Keras'
            `ExponentialDecay`); 1 keeps it constant.
        decay_steps: See `decay`.

    Raises:
        ValueError: If the name is unknown.
    """
    import keras

    if name not in ("adam", "sgd"):
        raise ValueError(f"`name` must be adam or sgd. Received: name={name!r}")
    schedule = learning_rate
    if decay != 1.0:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            initial_learning_rate=learning_rate, decay_steps=decay_steps, decay_rate=decay
        )
    return keras.optimizers.Adam(schedule) if name == "adam" else keras.optimizers.SGD(schedule)


def gradient_descent(monitor: Monitor, x0: np.ndarray, *, optimizer, iterations: int,
                     bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Outcome:
    """Minimises with a Keras optimiser (Adam, SGD) on a variable holding the image.

    One evaluation per step. With `bounds`, every step is projected back into the box
    (clipped), so every point evaluated is a valid image, as with L-BFGS-B.

    Args:
        monitor: The run's `Monitor` (objective, budget, callback).
        x0: The preprocessed starting image, (1, H, W, 3).
        optimizer: A Keras optimiser, e.g. from `keras_optimizer`.
        iterations: Most steps.
        bounds: (lower, upper) arrays of x0's shape, or None.

    Returns:
        An `Outcome`.

    Raises:
        NonFiniteLossError, OutOfMemoryError, Interrupted: See `Monitor.rules`.
    """
    import tensorflow as tf

    x = tf.Variable(np.asarray(x0, dtype=np.float32), name="image")
    box = None if bounds is None else [tf.constant(b, tf.float32) for b in bounds]
    stop_reason = f"max_evals reached ({monitor.max_evals})"
    with monitor.rules():
        for _ in range(iterations):
            _, grad = monitor.evaluate(x.numpy())
            optimizer.apply_gradients([(tf.constant(grad, tf.float32), x)])
            if box is not None:
                x.assign(tf.clip_by_value(x, box[0], box[1]))
            monitor.end_iteration()
        stop_reason = f"iterations reached ({iterations})"
    return monitor.outcome(stop_reason)
