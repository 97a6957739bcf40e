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
import warnings
from typing import Callable, Dict, FrozenSet, Mapping, Optional, Tuple

import numpy as np

from nst_keras.media import images as images_lib
from nst_keras.engine import keras_state, lbfgsb
from nst_keras.engine.control import StopRequested, StopToken, pace
from nst_keras.errors import DivergedError, Interrupted, NonFiniteLossError, OutOfMemoryError


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
            Iterations, evaluations and seconds count from the first stage's start.
        kind_losses: The weighted terms summed by kind (`content`, `style`, `tv`, and any
            other kind the objective has), by name.
        max_evals: The run's whole evaluation budget (every stage's), which `evaluations`
            counts towards.
        rate: Evaluations per second so far (`control.pace`), computed once here.
        eta: Seconds the rest of the budget should take at that rate, or None.
        evaluation_losses: The total loss of each evaluation since the previous `Progress`
            (this iteration's line search), in order; the last is `loss`. With them a plot
            starts at evaluation 1, not at the first iteration's last evaluation.
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
    kind_losses: Dict[str, float] = dataclasses.field(default_factory=dict)
    max_evals: int = 0
    rate: float = 0.0
    eta: Optional[float] = None
    evaluation_losses: Tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluated point: its total loss and each term's weighted and unweighted value.

    Attributes:
        loss: The total loss.
        weighted: Term name -> weighted value.
        values: Term name -> unweighted value.
        kinds: Term name -> the term's kind.
        layered: The names of the terms that belong to a layer (all but `tv`-like terms).
    """

    loss: float
    weighted: Dict[str, float]
    values: Dict[str, float]
    kinds: Mapping[str, str] = dataclasses.field(repr=False, default_factory=dict)
    layered: FrozenSet[str] = dataclasses.field(repr=False, default=frozenset())

    def kind_sum(self, kind: str) -> float:
        """The weighted terms of one kind (`content`, `style`, `tv`, ...), summed."""
        return sum(v for name, v in self.weighted.items() if self.kinds.get(name) == kind)

    def kind_sums(self) -> Dict[str, float]:
        """Every kind's weighted terms summed, by kind (in the terms' order)."""
        kinds = dict.fromkeys(self.kinds.values())
        return {kind: self.kind_sum(kind) for kind in kinds}

    def layer_values(self) -> Dict[str, float]:
        """The unweighted value of each layer term, by name."""
        return {n: v for n, v in self.values.items() if n in self.layered}


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
        stopped: The stop token's reason when a stop request ended the run early, else None.
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
    stopped: Optional[str] = None


class BudgetSpent(Exception):
    """Raised by `Monitor.evaluate` once the evaluation budget is spent."""


@dataclasses.dataclass(frozen=True)
class Offset:
    """Where a stage's counters start: the totals of the stages before it.

    `total_evals` is the whole run's budget (0: the stage's own), for the rate and ETA.
    """

    iterations: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    stage: int = 1
    stages: int = 1
    total_evals: int = 0


@dataclasses.dataclass(frozen=True)
class DivergenceRule:
    """When a gradient method is stopped as diverged.

    A step size in pixel units is not scale-free: too large for the weights and the image,
    and every step overshoots. The run is stopped when the loss has stayed above `factor`
    times its starting value for `patience` evaluations in a row.
    """

    factor: float = 10.0
    patience: int = 5


class Monitor:
    """Holds one run's state and applies its rules; shared by every optimiser.

    Args:
        objective: Callable x -> (loss, gradient, values by name), e.g. an `Objective`.
        terms: The objective's `Term`s (names, kinds, weights, layers), to report by kind.
        shape: Shape of the preprocessed image, (1, H, W, 3).
        max_evals: The budget: evaluations allowed.
        callback: Called with a `Progress` after each iteration, or None.
        offset: Where the counters start (a later coarse-to-fine stage): the progress,
            history and times it reports count on from there, so nothing shifts them again.
        divergence: A `DivergenceRule`, or None (L-BFGS-B's line search cannot diverge).
        stop: A `control.StopToken`, checked before every evaluation: once it is set the
            run ends there, quietly, with its best image (`Outcome.stopped`), or None.
    """

    def __init__(self, objective, terms, shape, max_evals, callback=None,
                 offset: Offset = Offset(), divergence: Optional[DivergenceRule] = None,
                 stop: Optional[StopToken] = None):
        self.objective = objective
        self.weights = {t.name: t.weight for t in terms}
        self.kinds = {t.name: t.kind for t in terms}
        self.layered = frozenset(t.name for t in terms if t.layer is not None)
        self.shape = tuple(shape)
        self.max_evals = max_evals
        self.callback = callback
        self.offset = offset
        self.divergence = divergence
        self.stop = stop
        self.stopped: Optional[str] = None
        self.evaluations = 0
        self.iterations = 0
        self.best_x: Optional[np.ndarray] = None
        self.best: Optional[Evaluation] = None
        self.last_x: Optional[np.ndarray] = None
        self.last: Optional[Evaluation] = None
        self.losses: list = []
        self.times: list = []
        self.history: list = []
        self.reported = 0  # Evaluations already handed to the callback.
        self.above = 0  # Evaluations in a row above the divergence threshold.
        self.start = time.perf_counter()

    def evaluate(self, x) -> Tuple[float, np.ndarray]:
        """Loss and gradient at `x` (any shape with the image's size), as float64 numpy.

        Raises:
            BudgetSpent: If the budget is spent (the point is not evaluated).
            StopRequested: If the stop token is set (the point is not evaluated), or was set
                during a tiled evaluation (which then ends between two tiles).
            NonFiniteLossError: If the loss or its gradient is not finite.
            DivergedError: If the divergence rule says the run diverged.
        """
        if self.evaluations >= self.max_evals:
            # SciPy checks `maxfun` only between iterations, so a line search can overrun
            # it; stopping here makes the budget exact.
            raise BudgetSpent()
        if self.stop is not None:
            self.stop.check()
        x = np.asarray(x, dtype=np.float32).reshape(self.shape)
        loss, grad, values = self.objective(x)
        loss, grad = float(loss), grad.numpy()
        if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
            what = "its gradient" if np.isfinite(loss) else f"the loss ({loss})"
            raise NonFiniteLossError(
                f"the run became non-finite: {what} after {self.evaluations} evaluations; "
                "try a lower `style_weight` or `tv_weight`"
            )
        values = {name: float(v) for name, v in values.items()}
        weighted = {name: self.weights[name] * v for name, v in values.items()}
        self.evaluations += 1
        self.losses.append(loss)
        self.times.append(self.offset.seconds + time.perf_counter() - self.start)
        self.last_x = x
        self.last = Evaluation(loss, weighted, values, self.kinds, self.layered)
        if self.best is None or loss < self.best.loss:
            self.best_x, self.best = x, self.last
        self._check_divergence(loss)
        return loss, grad.astype(np.float64)

    def _check_divergence(self, loss: float) -> None:
        rule = self.divergence
        if rule is None:
            return
        self.above = self.above + 1 if loss > rule.factor * self.losses[0] else 0
        if self.above >= rule.patience:
            raise DivergedError(
                f"the run diverged: the loss rose from {self.losses[0]:.4g} to {loss:.4g} "
                f"(above {rule.factor:g}x its start for {rule.patience} evaluations); try a "
                "lower `learning_rate`")

    def end_iteration(self) -> None:
        """Records an iteration ending at the last point evaluated and tells the callback.

        L-BFGS-B's accepted point is the last one its line search evaluated, and gradient
        methods evaluate once per step, so the last evaluation is the iteration's point.
        """
        self.iterations += 1
        offset = self.offset
        seconds = offset.seconds + time.perf_counter() - self.start
        last = self.last
        self.history.append({
            "iteration": offset.iterations + self.iterations,
            "evaluations": offset.evaluations + self.evaluations,
            "seconds": seconds, "loss": last.loss, "terms": dict(last.weighted),
            **({"stage": offset.stage} if offset.stages > 1 else {}),
        })
        if self.callback is not None:
            sums = last.kind_sums()
            total = offset.total_evals or offset.evaluations + self.max_evals
            done = offset.evaluations + self.evaluations
            speed = pace(done, total, seconds)
            self.callback(Progress(
                iteration=offset.iterations + self.iterations,
                evaluations=offset.evaluations + self.evaluations,
                loss=last.loss,
                content_loss=sums.get("content", 0.0),
                # Every kind compared with the style images (Gram, w2, mrf, histogram).
                style_loss=sum(sums.get(k, 0.0) for k in ("style", "w2", "mrf", "histogram")),
                tv_loss=sums.get("tv", 0.0),
                layer_losses=last.layer_values(),
                seconds=seconds,
                image=images_lib.deprocess(self.last_x),
                stage=offset.stage,
                stages=offset.stages,
                kind_losses=sums,
                max_evals=total,
                rate=speed.rate,
                eta=speed.eta,
                evaluation_losses=tuple(self.losses[self.reported:]),
            ))
            self.reported = len(self.losses)

    def best_image(self) -> Optional[np.ndarray]:
        """The best image seen, RGB uint8, or None before the first evaluation."""
        return None if self.best_x is None else images_lib.deprocess(self.best_x)

    @contextlib.contextmanager
    def rules(self):
        """Ends the run by the rules: the budget and a stop request quietly; the rest as errors
        with the best image.

        A stop request (`StopRequested`, from the stop token) sets `stopped` to the token's
        reason. A KeyboardInterrupt reaches here only where no signal guard turned Ctrl-C
        into the stop token (the Python API in a terminal): it becomes `Interrupted`.

        Raises:
            NonFiniteLossError: If the loss became non-finite.
            DivergedError: If the loss diverged (see `DivergenceRule`).
            OutOfMemoryError: If TensorFlow or numpy ran out of memory.
            Interrupted: On KeyboardInterrupt (Ctrl-C in the Python API, where no signal
                guard sets the stop token instead).
        """
        import tensorflow as tf

        try:
            yield
        except BudgetSpent:
            pass
        except StopRequested as request:
            self.stopped = str(request) or "stopped"
        except (NonFiniteLossError, DivergedError) as error:
            raise type(error)(str(error), best_image=self.best_image()) from None
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
            stop_reason=f"stopped ({self.stopped})" if self.stopped else stop_reason,
            stopped=self.stopped,
        )


def lbfgs(monitor: Monitor, x0: np.ndarray, *, iterations: int,
          bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None, memory: int = 10,
          resume: Optional[lbfgsb.LbfgsbState] = None,
          at_boundary: Optional[Callable[[Callable[[], lbfgsb.LbfgsbState]], None]] = None
          ) -> Outcome:
    """Minimises with SciPy's L-BFGS-B, as one `scipy.optimize.fmin_l_bfgs_b` call would.

    One run keeps L-BFGS's curvature memory for the whole run (the book restarts it every
    20 evaluations). SciPy's tolerances are 0 so that the budget, not a tolerance, ends the
    run (as jcjohnson/neural-style does). L-BFGS counts evaluations apart from iterations:
    its line search may evaluate more than once per iteration, so the monitor's budget
    bounds the work and `iterations` the steps.

    `lbfgsb.Lbfgsb` drives SciPy's loop itself (the same calls as `fmin_l_bfgs_b`, the same
    result), so that its state can be saved at any evaluation boundary and resumed exactly.
    Where SciPy's private interface differs (`lbfgsb.FALLBACK_NOTICE`), this calls
    `fmin_l_bfgs_b` and a resume restarts from the saved image, with a warning.

    Args:
        monitor: The run's `Monitor` (objective, budget, callback).
        x0: The preprocessed starting image, (1, H, W, 3).
        iterations: Most iterations.
        bounds: (lower, upper) arrays of x0's shape: L-BFGS-B keeps every pixel inside
            (projected gradient); None for no bounds (the book).
        memory: Correction pairs kept (m; SciPy's default, as in the book).
        resume: An `lbfgsb.LbfgsbState` to go on from (with `monitor` restored to the same
            boundary); `x0` and `memory` are then the state's.
        at_boundary: Called at each evaluation boundary with a function that returns the
            state there (`lbfgsb.LbfgsbState`), e.g. to write a checkpoint. Called during
            the call, it returns the driver's own arrays (228 bytes a value at m = 10: no
            copy, no extra memory); `copy=True` copies them, to keep.

    Returns:
        An `Outcome`.

    Raises:
        NonFiniteLossError, OutOfMemoryError, Interrupted: See `Monitor.rules`.
    """
    box = None
    if bounds is not None:
        box = np.stack([np.ravel(bounds[0]), np.ravel(bounds[1])], axis=1).astype(np.float64)
    if not lbfgsb.EXACT:
        warnings.warn(lbfgsb.FALLBACK_NOTICE, lbfgsb.FallbackWarning, stacklevel=2)
        if resume is not None:
            x0 = np.asarray(resume.x, np.float32).reshape(monitor.shape)
        return _lbfgs_public(monitor, x0, iterations=iterations, box=box, memory=memory)
    driver = lbfgsb.Lbfgsb(
        resume if resume is not None else lbfgsb.start(x0, box, memory=memory), box)
    hook = None if at_boundary is None else (
        lambda d: at_boundary(lambda copy=False: d.state(copy=copy)))
    stop_reason = f"max_evals reached ({monitor.max_evals})"
    with monitor.rules():
        stop_reason = driver.run(monitor.evaluate, iterations=iterations,
                                 end_iteration=monitor.end_iteration, at_boundary=hook)
    return monitor.outcome(stop_reason)


def _lbfgs_public(monitor: Monitor, x0: np.ndarray, *, iterations: int, box, memory: int
                  ) -> Outcome:
    """`lbfgs` through the public `fmin_l_bfgs_b` (no state to save or resume)."""
    from scipy.optimize import fmin_l_bfgs_b

    stop_reason = f"max_evals reached ({monitor.max_evals})"
    with monitor.rules(), lbfgsb.one_blas_thread():
        _, _, info = fmin_l_bfgs_b(
            # Flat gradients: SciPy < 1.15's Fortran wrapper refuses the image's shape.
            lambda x: (lambda f, g: (f, g.ravel()))(*monitor.evaluate(x)),
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


#: Adam's default learning rate, in pixel units: its steps are about this size whatever the
#: gradient's scale.
ADAM_LEARNING_RATE = 10.0


def sgd_learning_rate(gradient) -> float:
    """SGD's default learning rate: the one whose first step moves pixels by 1 level (RMS).

    SGD's step is the learning rate times the gradient, so a fixed learning rate in pixel
    units means another step size for every weight, image size and network (at the book's
    weights, a learning rate of 10 took the loss from 1.8e7 to 3.7e10 in 20 steps). Scaling
    it by the first gradient makes the default scale-free. Departure: the book's 2nd
    edition gives SGD a fixed 100 with its own, much smaller, loss weights.
    """
    rms = float(np.sqrt(np.mean(np.square(np.asarray(gradient, np.float64)))))
    return 1.0 / rms if rms > 0 else 1.0


def keras_optimizer(name: str, learning_rate: Optional[float] = None, decay: float = 1.0,
                    decay_steps: int = 100, gradient=None):
    """Keras' Adam or SGD, its learning rate decayed by `decay` every `decay_steps` steps.

    Args:
        name: `"adam"` or `"sgd"`.
        learning_rate: The initial step size, in pixel units (0-255); None: Adam's
            `ADAM_LEARNING_RATE`, or SGD's `sgd_learning_rate(gradient)`.
        decay: Multiplies the learning rate every `decay_steps` steps (smoothly, as Keras'
            `ExponentialDecay`); 1 keeps it constant.
        decay_steps: See `decay`.
        gradient: The first gradient, for SGD's default learning rate.

    Raises:
        ValueError: If the name is unknown, or SGD has neither a learning rate nor a
            gradient to choose one from.
    """
    import keras

    if name not in ("adam", "sgd"):
        raise ValueError(f"`name` must be adam or sgd. Received: name={name!r}")
    if learning_rate is None:
        if name == "adam":
            learning_rate = ADAM_LEARNING_RATE
        elif gradient is None:
            raise ValueError("SGD's default learning rate is chosen from the first gradient. "
                             "Received: gradient=None")
        else:
            learning_rate = sgd_learning_rate(gradient)
    schedule = learning_rate
    if decay != 1.0:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            initial_learning_rate=learning_rate, decay_steps=decay_steps, decay_rate=decay
        )
    return keras.optimizers.Adam(schedule) if name == "adam" else keras.optimizers.SGD(schedule)


class MovingAverage:
    """A bias-corrected exponential moving average of the iterates (Kingma and Ba's Adam).

    As crowsonkb/style-transfer-pytorch's `EMA`: the starting point is the first sample,
    and after each step ``value = decay * value + (1 - decay) * x`` and ``accum *= decay``;
    the average is ``value / (1 - accum)``, i.e. the iterates x_0 ... x_n weighted by
    decay**(n - k) and normalised to sum to 1 (without the correction, the first steps'
    average would be pulled towards 0). Kept in float64: a thousand updates in float32
    drift by hundredths of a level, which a 16-bit output shows.

    Args:
        x0: The starting point.
        decay: In (0, 1).
    """

    def __init__(self, x0, decay: float):
        self.decay = float(decay)
        self.value = np.zeros(np.shape(x0), np.float64)
        self.accum = 1.0
        self.update(x0)

    def update(self, x) -> None:
        """Adds the iterate `x`."""
        self.accum *= self.decay
        self.value *= self.decay
        self.value += (1.0 - self.decay) * np.asarray(x, np.float64)

    def get(self) -> np.ndarray:
        """The bias-corrected average, float32."""
        return (self.value / (1.0 - self.accum)).astype(np.float32)


def gradient_descent(monitor: Monitor, x0: np.ndarray, *, optimizer, iterations: int,
                     bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                     resume: Optional[keras_state.KerasState] = None,
                     at_boundary: Optional[Callable[[Callable[[], keras_state.KerasState]],
                                                    None]] = None,
                     ema: Optional[float] = None) -> Outcome:
    """Minimises with a Keras optimiser (Adam, SGD) on a variable holding the image.

    One evaluation per step. With `bounds`, every step is projected back into the box
    (clipped), so every point evaluated is a valid image, as with L-BFGS-B. A run whose
    loss never fell below its start is a failure, not a result: it raises `DivergedError`
    (with the starting image as the best one).

    With `ema`, the result is the `MovingAverage` of the iterates (the start and every
    projected step), not the best one: Adam's iterates jitter from step to step, and their
    average has less high-frequency noise (crowsonkb/style-transfer-pytorch). The average
    was never a step, so it is evaluated once more to report its own loss: the steps stop
    one evaluation short of the budget (`max_evals - 1` steps at most), the last
    evaluation is the average's, the outcome's `best` is that evaluation (whether or not
    an iterate had a lower loss; the stop reason gives both), and `history` ends with a
    record of it marked `"ema": True`, at the last step's iteration number. A run stopped
    early (an error, Ctrl-C) keeps the best *evaluated* iterate, as without `ema`.

    Args:
        monitor: The run's `Monitor` (objective, budget, callback; give it a
            `DivergenceRule`).
        x0: The preprocessed starting image, (1, H, W, 3).
        optimizer: A Keras optimiser, e.g. from `keras_optimizer`; or a callable taking
            the first gradient and returning one (SGD's default learning rate).
        iterations: Most steps.
        bounds: (lower, upper) arrays of x0's shape, or None.
        resume: A `keras_state.KerasState` to go on from (with `monitor` restored to the
            same boundary): its image and optimiser replace `x0` and `optimizer`.
        at_boundary: Called before each step's evaluation with a function that returns the
            state there (`keras_state.KerasState`, always copied; `copy` is accepted as
            for `lbfgs`), e.g. to write a checkpoint.
        ema: The average's decay in (0, 1), or None for the best iterate.

    Returns:
        An `Outcome`.

    Raises:
        NonFiniteLossError, DivergedError, OutOfMemoryError, Interrupted: See
            `Monitor.rules`.
    """
    import keras
    import tensorflow as tf

    x = tf.Variable(np.asarray(x0, dtype=np.float32), name="image")
    if resume is not None:
        optimizer = keras_state.restore(resume, x, optimizer)
    box = None if bounds is None else [tf.constant(b, tf.float32) for b in bounds]
    average = None if ema is None else MovingAverage(x0, ema)
    # With an average, its own evaluation is the budget's last.
    steps = iterations if average is None else min(iterations, monitor.max_evals - 1)
    stop_reason = f"max_evals reached ({monitor.max_evals})"
    with monitor.rules():
        while monitor.iterations < steps:  # From a resumed monitor's count.
            if at_boundary is not None:
                at_boundary(lambda copy=True: keras_state.capture(optimizer, x))
            _, grad = monitor.evaluate(x.numpy())
            if not isinstance(optimizer, keras.optimizers.Optimizer):
                optimizer = optimizer(grad)
            optimizer.apply_gradients([(tf.constant(grad, tf.float32), x)])
            if box is not None:
                x.assign(tf.clip_by_value(x, box[0], box[1]))
            if average is not None:
                average.update(x.numpy())
            monitor.end_iteration()
        stop_reason = (f"iterations reached ({iterations})" if steps == iterations
                       else f"max_evals reached ({monitor.max_evals})")
    if (monitor.stopped is None and monitor.evaluations > 1
            and monitor.best.loss >= monitor.losses[0]):
        raise DivergedError(
            f"the run only got worse: after {monitor.evaluations} steps the best image is "
            f"still the start (loss {monitor.best.loss:.4g}); try a lower `learning_rate`",
            best_image=monitor.best_image())
    if average is None or monitor.stopped:  # A stopped run keeps its best iterate.
        return monitor.outcome(stop_reason)
    return _averaged_outcome(monitor, average, stop_reason)


def _averaged_outcome(monitor: Monitor, average: MovingAverage, stop_reason: str) -> Outcome:
    """The outcome whose point is the moving average, evaluated once (see `gradient_descent`)."""
    best_iterate, before = monitor.best, monitor.evaluations
    x_average = average.get()
    with monitor.rules():
        monitor.evaluate(x_average)
    # `gradient_descent` stops its steps one short of the budget, so this always holds.
    assert monitor.evaluations == before + 1, "the average's evaluation was not left"
    evaluation = monitor.last
    offset = monitor.offset
    monitor.history.append({
        "iteration": offset.iterations + monitor.iterations,
        "evaluations": offset.evaluations + monitor.evaluations,
        "seconds": monitor.times[-1], "loss": evaluation.loss,
        "terms": dict(evaluation.weighted), "ema": True,
        **({"stage": offset.stage} if offset.stages > 1 else {}),
    })
    iterate = "no step" if best_iterate is None else f"best iterate {best_iterate.loss:.6g}"
    outcome = monitor.outcome(
        f"{stop_reason}; delivered the moving average of the iterates (decay "
        f"{average.decay:g}), evaluated once more: loss {evaluation.loss:.6g} ({iterate})")
    return dataclasses.replace(outcome, x=x_average, best=evaluation)
