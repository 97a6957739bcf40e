"""L-BFGS-B driven through SciPy's reverse-communication loop, so that it can be resumed exactly.

`scipy.optimize.fmin_l_bfgs_b` drives L-BFGS-B's `setulb` in a loop: `setulb` asks for the
loss and gradient at a point (task `FG`), or says an iteration ended (`NEW_X`), and keeps
everything else it knows (the correction pairs, the line search, its counters) in a few plain
arrays that the caller passes in and out. This module runs that loop itself, so the whole
optimiser state is an `LbfgsbState` of numpy arrays: saved at an evaluation boundary and
loaded into a fresh process, it continues bit for bit. Run from the start, the loop makes
the same calls in the same order as `fmin_l_bfgs_b` (SciPy 1.15-1.17's
`_minimize_lbfgsb`), so the two give identical results.

`setulb` is private. Its signature changed when SciPy 1.15 ported L-BFGS-B from Fortran to C,
and it may change again, so it is checked here at import: `EXACT` says whether this driver
can be used, and `FALLBACK_NOTICE` (one line) says why not, when it cannot. Then
`solvers.lbfgs` uses the public `fmin_l_bfgs_b`, and a resume becomes a restart from the
checkpoint's image, without L-BFGS's history.

The state's size at m correction pairs and n values: the work array `wa` is
(2m + 5) n + 11 m^2 + 8 m doubles and `iwa` 3n int32, plus x and g: (16m + 68) bytes a value,
228 bytes a value at m = 10 (146 MB at 400x533 pixels, 8.2 GB at 4000x3000).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np

#: The private call this driver was written and tested against (SciPy 1.15-1.17).
EXPECTED_SIGNATURE = ("setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,lsave,isave,dsave,"
                      "maxls,ln_task)")

# `setulb`'s task codes (task[0]); task[1] says more (SciPy's `task_messages`).
START, NEW_X, RESTART, FG, CONVERGENCE, STOP = 0, 1, 2, 3, 4, 5
_STATUS = {0: "START", 1: "NEW_X", 2: "RESTART", 3: "FG", 4: "CONVERGENCE", 5: "STOP",
           6: "WARNING", 7: "ERROR", 8: "ABNORMAL"}
_ITERATION_LIMIT = 504

#: Bytes a value that the state holds beyond the work array (x, g: float64; iwa: 3 int32).
_BYTES_OUTSIDE_WA = 8 + 8 + 12


class FallbackWarning(UserWarning):
    """SciPy's private L-BFGS-B call differs: the public one runs, and a resume restarts."""


def signature_of(setulb) -> str:
    """The call signature a compiled `setulb` states on its docstring's first line."""
    doc = getattr(setulb, "__doc__", None) or ""
    return doc.strip().partition("\n")[0].replace(" ", "") if doc.strip() else ""


def check_interface(setulb=None, version: Optional[str] = None) -> Optional[str]:
    """Why SciPy's private L-BFGS-B call cannot be driven here, in one line; None if it can.

    Args:
        setulb: The compiled call to check; SciPy's own when None.
        version: SciPy's version, for the message; SciPy's own when None.
    """
    import scipy

    version = version or scipy.__version__
    if setulb is None:
        try:
            from scipy.optimize import _lbfgsb
            setulb = _lbfgsb.setulb
        except (ImportError, AttributeError) as error:
            return (f"SciPy {version} has no L-BFGS-B `setulb` ({error}); an exact resume "
                    "becomes a restart from the checkpoint's image")
    found = signature_of(setulb)
    if found != EXPECTED_SIGNATURE:
        return (f"SciPy {version}'s private L-BFGS-B call differs from the one tested on "
                f"SciPy 1.15-1.17 (it is {found or 'unsigned'}); an exact resume becomes a "
                "restart from the checkpoint's image")
    return None


#: One line saying why the exact driver is off, or None when it is on (checked at import).
FALLBACK_NOTICE: Optional[str] = check_interface()
#: Whether `Lbfgsb` can drive SciPy's L-BFGS-B (else use `fmin_l_bfgs_b`).
EXACT: bool = FALLBACK_NOTICE is None


def state_bytes(n: int, memory: int = 10) -> int:
    """The bytes of an `LbfgsbState`'s arrays for n values and m = `memory`."""
    return sum(int(np.prod(shape)) * dtype.itemsize
               for shape, dtype in _shapes(n, memory).values())


def bytes_per_value(memory: int = 10) -> int:
    """The state's bytes per optimised value at `memory` correction pairs (m), for large n."""
    return 8 * (2 * memory + 5) + _BYTES_OUTSIDE_WA


@dataclasses.dataclass(frozen=True)
class LbfgsbState:
    """L-BFGS-B's whole state between two calls of `setulb`: what a checkpoint saves.

    Taken at an evaluation boundary (`task[0] == FG`: the next thing to do is to evaluate
    `x`), or between iterations (`NEW_X`: the next thing is to call `setulb`), or at the
    start. The bounds are not part of it: they belong to the problem, which a resume
    rebuilds.

    Attributes:
        x: The point (n,) float64: the one to evaluate next at an evaluation boundary.
        f: The last loss given to `setulb`, () float64.
        g: The last gradient given to `setulb`, (n,) float64.
        wa: The work array, ((2m + 5) n + 11 m^2 + 8 m,) float64: the correction pairs,
            the line search's points and more.
        iwa: The integer work array, (3n,) int32.
        task: The task code and its detail, (2,) int32.
        ln_task: The line search's task, (2,) int32.
        lsave: Logical save vector, (4,) int32.
        isave: Integer save vector, (44,) int32: counters, indices into `wa`.
        dsave: Float save vector, (29,) float64: the line search's state.
        memory: m, the correction pairs kept.
        factr: The relative-reduction tolerance (in machine epsilons).
        pgtol: The projected-gradient tolerance.
        maxls: Most line-search steps an iteration.
        iterations: Iterations done (`NEW_X` seen).
        evaluations: Evaluations asked of the objective.
        repeat: At an evaluation boundary: `x` is the point evaluated last, so its loss
            and gradient are `f` and `g` and are not evaluated again (as SciPy's cache does).
    """

    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    wa: np.ndarray
    iwa: np.ndarray
    task: np.ndarray
    ln_task: np.ndarray
    lsave: np.ndarray
    isave: np.ndarray
    dsave: np.ndarray
    memory: int = 10
    factr: float = 0.0
    pgtol: float = 0.0
    maxls: int = 20
    iterations: int = 0
    evaluations: int = 0
    repeat: bool = False

    _ARRAYS = ("x", "f", "g", "wa", "iwa", "task", "ln_task", "lsave", "isave", "dsave")
    _SCALARS = {"memory": int, "factr": float, "pgtol": float, "maxls": int,
                "iterations": int, "evaluations": int, "repeat": bool}

    @property
    def size(self) -> int:
        """n, the values optimised."""
        return int(self.x.size)

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold (what a checkpoint of it writes, near enough)."""
        return sum(getattr(self, name).nbytes for name in self._ARRAYS)

    @property
    def status(self) -> str:
        """SciPy's message for the task: e.g. `FG`, `STOP: TOTAL NO. OF ITERATIONS ...`."""
        return _message(self.task)

    @property
    def finished(self) -> bool:
        """Whether L-BFGS-B itself ended (converged, stopped, or failed): nothing to resume."""
        return int(self.task[0]) not in (START, NEW_X, FG)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The state as named numpy arrays (for `np.savez`; no pickling needed)."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        arrays.update({name: np.asarray(getattr(self, name)) for name in self._SCALARS})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "LbfgsbState":
        """The state from `to_arrays`' arrays, checked for the sizes L-BFGS-B needs.

        Raises:
            ValueError: If an array is missing, or has the wrong size or type.
        """
        missing = [k for k in (*cls._ARRAYS, *cls._SCALARS) if k not in arrays]
        if missing:
            raise ValueError(f"an L-BFGS-B state needs {', '.join(missing)}. "
                             f"Received: {sorted(arrays)}")
        scalars = {k: kind(np.asarray(arrays[k]).item()) for k, kind in cls._SCALARS.items()}
        state = cls(**{k: np.asarray(arrays[k]) for k in cls._ARRAYS}, **scalars)
        expected = _shapes(state.size, state.memory)
        for name, (shape, dtype) in expected.items():
            value = getattr(state, name)
            if value.shape != shape or value.dtype != dtype:
                raise ValueError(
                    f"an L-BFGS-B state with n={state.size}, m={state.memory} needs {name} "
                    f"{dtype.name} {shape}. Received: {value.dtype.name} {value.shape}")
        return state


def _shapes(n: int, m: int) -> Dict[str, Tuple[tuple, np.dtype]]:
    f8, i4 = np.dtype(np.float64), np.dtype(np.int32)
    return {"x": ((n,), f8), "f": ((), f8), "g": ((n,), f8),
            "wa": ((2 * m * n + 5 * n + 11 * m * m + 8 * m,), f8), "iwa": ((3 * n,), i4),
            "task": ((2,), i4), "ln_task": ((2,), i4), "lsave": ((4,), i4),
            "isave": ((44,), i4), "dsave": ((29,), f8)}


def _message(task) -> str:
    """SciPy's `status: detail` message for a task vector."""
    try:
        from scipy.optimize._lbfgsb_py import task_messages
    except ImportError:  # Only the message's detail is lost.
        task_messages = {}
    status = _STATUS.get(int(task[0]), str(int(task[0])))
    return f"{status}: {task_messages.get(int(task[1]), int(task[1]))}"


def box_arrays(bounds, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L-BFGS-B's (lower, upper, nbd) for `bounds`, as `_minimize_lbfgsb` builds them.

    Args:
        bounds: None (unbounded), or (n, 2) lower and upper bounds (`fmin_l_bfgs_b`'s
            form; None or an infinity for a side without a bound).
        n: The values optimised.

    Returns:
        float64 lower and upper (0 where a side is unbounded) and the int32 code of each
        value's bound type (0 none, 1 lower, 2 both, 3 upper).

    Raises:
        ValueError: If bounds has the wrong length, or a lower bound exceeds its upper.
    """
    lower, upper = np.zeros(n, np.float64), np.zeros(n, np.float64)
    nbd = np.zeros(n, np.int32)
    if bounds is None:
        return lower, upper, nbd
    box = np.array(bounds, dtype=object)
    if box.ndim != 2 or box.shape != (n, 2):
        raise ValueError(f"`bounds` must be {n} (lower, upper) pairs. Received: shape "
                         f"{box.shape}")
    lo = np.array([-np.inf if v is None else v for v in box[:, 0]], np.float64)
    hi = np.array([np.inf if v is None else v for v in box[:, 1]], np.float64)
    if np.any(lo > hi):
        raise ValueError("a lower bound is greater than its upper bound. Received: "
                         f"{int(np.sum(lo > hi))} such values")
    has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
    lower[has_lo], upper[has_hi] = lo[has_lo], hi[has_hi]
    nbd[has_lo & ~has_hi] = 1
    nbd[has_lo & has_hi] = 2
    nbd[~has_lo & has_hi] = 3
    return lower, upper, nbd


def _fast_box(bounds, n):
    """`box_arrays` for a float (n, 2) array without Python loops (big images)."""
    if bounds is not None and isinstance(bounds, np.ndarray) and bounds.dtype.kind == "f":
        if bounds.shape != (n, 2):
            raise ValueError(f"`bounds` must be {n} (lower, upper) pairs. Received: shape "
                             f"{bounds.shape}")
        lo, hi = bounds[:, 0].astype(np.float64), bounds[:, 1].astype(np.float64)
        if np.any(lo > hi):
            raise ValueError("a lower bound is greater than its upper bound. Received: "
                             f"{int(np.sum(lo > hi))} such values")
        has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
        lower, upper = np.where(has_lo, lo, 0.0), np.where(has_hi, hi, 0.0)
        nbd = np.select([has_lo & has_hi, has_lo, has_hi], [2, 1, 3], 0).astype(np.int32)
        return lower, upper, nbd
    return box_arrays(bounds, n)


def start(x0, bounds=None, *, memory: int = 10, factr: float = 0.0, pgtol: float = 0.0,
          maxls: int = 20) -> LbfgsbState:
    """The state before L-BFGS-B's first call: `x0` (clipped into `bounds`), zeroed arrays.

    Args:
        x0: The starting point, any shape (flattened).
        bounds: None, or (n, 2) lower and upper bounds (see `box_arrays`).
        memory: m, the correction pairs kept.
        factr: Stop when the relative reduction of f is at most `factr` machine epsilons
            (0: never).
        pgtol: Stop when the largest projected-gradient component is at most this (0: never).
        maxls: Most line-search steps an iteration.

    Raises:
        ValueError: If `memory` or `maxls` is below 1, or the bounds are malformed.
    """
    if memory < 1:
        raise ValueError(f"`memory` must be at least 1. Received: memory={memory}")
    if maxls < 1:
        raise ValueError(f"`maxls` must be at least 1. Received: maxls={maxls}")
    x = np.array(x0, dtype=np.float64).ravel()
    n = x.size
    if bounds is not None:
        lower, upper, nbd = _fast_box(bounds, n)
        # As `_minimize_lbfgsb`: the start must lie within the bounds.
        x = np.clip(x, np.where(nbd % 3 == 0, -np.inf, lower),
                    np.where((nbd == 0) | (nbd == 1), np.inf, upper))
    shapes = _shapes(n, memory)
    arrays = {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}
    arrays["x"] = x
    return LbfgsbState(**arrays, memory=memory, factr=float(factr), pgtol=float(pgtol),
                       maxls=int(maxls))


def one_blas_thread():
    """A context in which SciPy's and NumPy's BLAS use one thread: L-BFGS-B's step.

    `setulb`'s BLAS calls are level 1 (dot products, axpys over the n values), too small to
    gain from threads. OpenBLAS spreads them over its threads anyway, whose spinning then
    competes with TensorFlow's threads and with other processes: on a loaded 2-core machine
    one step took 2-5x longer with OpenBLAS's default threads than with one
    (`benchmarks/evaluation_speed.py` times the step). TensorFlow's own kernels (oneDNN,
    Eigen) do not use these libraries and keep their threads.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class Lbfgsb:
    """Drives L-BFGS-B from an `LbfgsbState`; holds the live (mutable) copy of its arrays.

    `run` evaluates, steps and counts until a limit, a stop, or L-BFGS-B's own end, and
    can be called again (with a larger limit) to go on. `state()` is exact whenever
    `at_boundary` is true: before `run`, after it returns, and after anything raised from
    the objective (which gets a copy of `x`, so nothing it does changes the arrays).

    Args:
        state: Where to start: `start(...)`, or a saved state to resume.
        bounds: The problem's bounds (see `box_arrays`): the same as the state was started
            with.
        setulb: The compiled L-BFGS-B step; SciPy's when None (tests substitute one).

    Raises:
        RuntimeError: If SciPy's interface differs (see `FALLBACK_NOTICE`).
    """

    def __init__(self, state: LbfgsbState, bounds=None, setulb=None):
        if setulb is None:
            if not EXACT:
                raise RuntimeError(FALLBACK_NOTICE)
            from scipy.optimize import _lbfgsb
            setulb = _lbfgsb.setulb
        self._setulb = setulb
        self.lower, self.upper, self.nbd = _fast_box(bounds, state.size)
        # Copies: the arrays are changed in place, and a state is frozen.
        self.x = np.array(state.x, np.float64)
        self.f = float(state.f)
        self.g = np.array(state.g, np.float64)
        self.wa = np.array(state.wa)
        self.iwa = np.array(state.iwa)
        self.task = np.array(state.task)
        self.ln_task = np.array(state.ln_task)
        self.lsave = np.array(state.lsave)
        self.isave = np.array(state.isave)
        self.dsave = np.array(state.dsave)
        self.memory, self.factr, self.pgtol, self.maxls = (
            state.memory, state.factr, state.pgtol, state.maxls)
        self.iterations, self.evaluations = state.iterations, state.evaluations
        self.repeat = state.repeat
        # The point evaluated last, to recognise a repeat (SciPy's cache). A state needs
        # no copy of it: at an evaluation boundary `repeat` is already decided, and between
        # iterations it is `x` (an iteration ends at the last point its line search
        # evaluated).
        self._evaluated: Optional[np.ndarray] = None
        if int(self.task[0]) == NEW_X:
            self._evaluated = np.array(self.x)
        self.at_boundary = True

    def state(self, copy: bool = True) -> LbfgsbState:
        """The state now, to save or resume from (valid while `at_boundary`).

        Args:
            copy: Copy the arrays (False hands over this driver's own, which must then
                not run again).

        Raises:
            RuntimeError: Between two evaluation boundaries (an interrupt inside a step).
        """
        if not self.at_boundary:
            raise RuntimeError("the L-BFGS-B state is only exact at an evaluation boundary, "
                               "and the run stopped between two")
        take = np.array if copy else (lambda a: a)
        return LbfgsbState(
            x=take(self.x), f=np.array(self.f, np.float64), g=take(self.g), wa=take(self.wa),
            iwa=take(self.iwa), task=take(self.task), ln_task=take(self.ln_task),
            lsave=take(self.lsave), isave=take(self.isave), dsave=take(self.dsave),
            memory=self.memory, factr=self.factr, pgtol=self.pgtol, maxls=self.maxls,
            iterations=self.iterations, evaluations=self.evaluations, repeat=self.repeat)

    def run(self, evaluate: Callable[[np.ndarray], Tuple[float, np.ndarray]], *,
            iterations: int, end_iteration: Optional[Callable[[], None]] = None,
            should_stop: Optional[Callable[[], bool]] = None,
            at_boundary: Optional[Callable[["Lbfgsb"], None]] = None) -> str:
        """Runs until `iterations` are done, `should_stop` says so, or L-BFGS-B ends.

        The loop of SciPy's `_minimize_lbfgsb`, the same calls in the same order. At each
        evaluation boundary (before the objective is called) it first calls `at_boundary`
        with this driver (to save `state()`), then asks `should_stop`.

        Args:
            evaluate: x (n,) float64 -> (loss, gradient (n,)). Anything it raises ends the
                run at the boundary, and `state()` stays exact.
            iterations: The most iterations, counted from the start (not from this call).
            end_iteration: Called after each iteration (SciPy's callback).
            should_stop: Asked at each evaluation boundary; True ends the run there.
            at_boundary: Called at each evaluation boundary with this driver.

        Returns:
            Why it ended: `"stopped"` (by `should_stop`), or SciPy's message (e.g. `STOP:
            TOTAL NO. OF ITERATIONS REACHED LIMIT`, `CONVERGENCE: ...`).
        """
        with one_blas_thread():
            return self._run(evaluate, iterations, end_iteration, should_stop, at_boundary)

    def _run(self, evaluate, iterations, end_iteration, should_stop, at_boundary) -> str:
        while True:
            code = int(self.task[0])
            if code == FG:
                if at_boundary is not None:
                    at_boundary(self)
                if should_stop is not None and should_stop():
                    return "stopped"
                if not self.repeat:
                    f, g = evaluate(np.array(self.x))
                    self.evaluations += 1
                    # No copy when `evaluate` returns a new float64 array (the monitor does).
                    self.f, self.g = float(f), np.asarray(g, np.float64).reshape(-1)
                    self._evaluated = np.array(self.x)
            elif code in (START, NEW_X):
                if code == NEW_X and self.iterations >= iterations:
                    return _message((STOP, _ITERATION_LIMIT))
            else:
                return _message(self.task)
            self.at_boundary = False
            self._setulb(self.memory, self.x, self.lower, self.upper, self.nbd, self.f,
                         self.g, self.factr, self.pgtol, self.wa, self.iwa, self.task,
                         self.lsave, self.isave, self.dsave, self.maxls, self.ln_task)
            code = int(self.task[0])
            if code == NEW_X:
                self.iterations += 1
                self.repeat = False
                self.at_boundary = True
                if end_iteration is not None:
                    end_iteration()
            elif code == FG:
                self.repeat = (self._evaluated is not None
                               and np.array_equal(self.x, self._evaluated))
                self.at_boundary = True
            else:
                self.at_boundary = True


def minimize(fun, x0, bounds=None, *, iterations: int, memory: int = 10,
             factr: float = 0.0, pgtol: float = 0.0, maxls: int = 20, callback=None,
             should_stop=None, state: Optional[LbfgsbState] = None):
    """Minimises `fun` like `fmin_l_bfgs_b`, and returns the state to go on from.

    Args:
        fun: x (n,) float64 -> (loss, gradient).
        x0: The start (ignored when `state` is given).
        bounds: None or (n, 2) bounds.
        iterations: The most iterations (from the start of the run, resumed or not).
        memory, factr, pgtol, maxls: As `fmin_l_bfgs_b`'s m, factr, pgtol, maxls.
        callback: Called with no arguments after each iteration.
        should_stop: Asked before each evaluation; True stops there.
        state: A state to resume from, instead of starting at `x0`.

    Returns:
        (the state at the end, why it ended).
    """
    if state is None:
        state = start(x0, bounds, memory=memory, factr=factr, pgtol=pgtol, maxls=maxls)
    driver = Lbfgsb(state, bounds)
    reason = driver.run(fun, iterations=iterations, end_iteration=callback,
                        should_stop=should_stop)
    return driver.state(copy=False), reason
