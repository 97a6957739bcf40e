"""Checkpoints: a run's whole state at an evaluation boundary, in one .npz, written atomically.

A `Checkpoint` holds the optimiser's state (`lbfgsb.LbfgsbState` for L-BFGS-B,
`keras_state.KerasState` for Adam and SGD), the `solvers.Monitor`'s (`MonitorState`: the
counters, the best image and its loss, the losses, times and history, the coarse-to-fine
offset, an RNG's state), the stage it was taken in, and the finished stages' monitor states.
Loaded in a fresh process and handed back to `solvers.lbfgs` or `solvers.gradient_descent`
with a restored monitor, the run goes on bit for bit: the same points, the same losses.

The file is one uncompressed .npz of plain arrays (text as unicode arrays, nested records
as JSON: nothing is pickled), written to a temporary file in the same folder, flushed to
disk and renamed over the old one, so a crash leaves the old checkpoint or the new one,
never half of one. Its size is `checkpoint_bytes`: about 228 bytes a value for L-BFGS-B at
m = 10, plus 4 for the best image (232 bytes a pixel-channel: 148 MB at 400x533, 8.4 GB at
4000x3000); an atomic write needs that much free again while both files exist.

`CheckpointPolicy` says when to write: at most every `every` seconds, and at least `factor`
times the last write's duration apart, so that writing costs at most 1/`factor` of the run.

Nothing here decides where checkpoints go or when a run stops: the delivery does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zipfile
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from nst_keras.engine import keras_state, lbfgsb, training
from nst_keras.engine import solvers

#: The checkpoint format's version: a file of another version is not resumed.
FORMAT_VERSION = 1

#: The solver kinds a checkpoint can hold, by the type of their state: an image's optimiser
#: (L-BFGS-B; Adam or SGD), or a style network's training (`training.TrainingState`: the
#: network's weights, Adam's variables, the step; no image, no monitor).
KINDS = {"lbfgsb": lbfgsb.LbfgsbState, "keras": keras_state.KerasState,
         "training": training.TrainingState}

SolverState = Union[lbfgsb.LbfgsbState, keras_state.KerasState, training.TrainingState]


@dataclasses.dataclass(frozen=True)
class MonitorState:
    """A `solvers.Monitor`'s state at an evaluation boundary.

    Attributes:
        evaluations: Evaluations done (this stage).
        iterations: Iterations done (this stage).
        above: Evaluations in a row above the divergence threshold.
        seconds: Wall time of the stage so far (the restored monitor's clock goes on from
            it, so later `times` continue; times are wall times, not bit-for-bit).
        losses: The total loss after each evaluation, float64.
        times: Seconds at each evaluation (from the first stage's start), float64.
        history: The per-iteration records, as JSON.
        offset: The `solvers.Offset` the stage's counters start from, as JSON.
        best_x: The best point, preprocessed (1, H, W, 3) float32, or None before any.
        best: The best point's `Evaluation` (loss, weighted, values), as JSON; "" if none.
        last_x: The point evaluated last, or None when it is `best_x` (or none).
        last: Its `Evaluation`, as JSON; "" if none.
        rng: A `numpy.random.Generator`'s bit-generator state, as JSON; "" if the run
            draws nothing while it optimises (today's runs do not).
    """

    evaluations: int
    iterations: int
    above: int
    seconds: float
    losses: np.ndarray
    times: np.ndarray
    history: str
    offset: str
    best_x: Optional[np.ndarray] = None
    best: str = ""
    last_x: Optional[np.ndarray] = None
    last: str = ""
    rng: str = ""

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold."""
        images = [a for a in (self.best_x, self.last_x) if a is not None]
        return self.losses.nbytes + self.times.nbytes + sum(a.nbytes for a in images)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The state as named numpy arrays (for `np.savez`; no pickling needed)."""
        arrays = {"evaluations": np.asarray(self.evaluations),
                  "iterations": np.asarray(self.iterations), "above": np.asarray(self.above),
                  "seconds": np.asarray(self.seconds, np.float64),
                  "losses": self.losses, "times": self.times, "history": np.array(self.history),
                  "offset": np.array(self.offset), "best": np.array(self.best),
                  "last": np.array(self.last), "rng": np.array(self.rng)}
        if self.best_x is not None:
            arrays["best_x"] = self.best_x
        if self.last_x is not None:
            arrays["last_x"] = self.last_x
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "MonitorState":
        """The state from `to_arrays`' arrays.

        Raises:
            ValueError: If one is missing.
        """
        needed = ("evaluations", "iterations", "above", "seconds", "losses", "times",
                  "history", "offset", "best", "last", "rng")
        missing = [k for k in needed if k not in arrays]
        if missing:
            raise ValueError(f"a monitor state needs {', '.join(missing)}. Received: "
                             f"{sorted(arrays)}")
        text = {k: str(np.asarray(arrays[k])) for k in ("history", "offset", "best", "last",
                                                       "rng")}
        return cls(evaluations=int(arrays["evaluations"]), iterations=int(arrays["iterations"]),
                   above=int(arrays["above"]), seconds=float(arrays["seconds"]),
                   losses=np.asarray(arrays["losses"], np.float64),
                   times=np.asarray(arrays["times"], np.float64),
                   best_x=_optional(arrays, "best_x"), last_x=_optional(arrays, "last_x"),
                   **text)


def _optional(arrays, name):
    return np.asarray(arrays[name]) if name in arrays else None


def _evaluation_json(evaluation: Optional[solvers.Evaluation]) -> str:
    if evaluation is None:
        return ""
    # JSON writes floats with `repr`, which reads back to the same float64.
    return json.dumps({"loss": evaluation.loss, "weighted": evaluation.weighted,
                       "values": evaluation.values})


def monitor_state(monitor: solvers.Monitor, rng: Optional[np.random.Generator] = None
                  ) -> MonitorState:
    """The state of `monitor` now (call it at an evaluation boundary), copied.

    Args:
        monitor: The run's monitor.
        rng: A generator the run draws from while it optimises, to save with it.
    """
    last_x = monitor.last_x
    if last_x is monitor.best_x or (last_x is not None and monitor.best_x is not None
                                    and np.array_equal(last_x, monitor.best_x)):
        last_x = None  # The usual case: saved once.
    return MonitorState(
        evaluations=monitor.evaluations, iterations=monitor.iterations, above=monitor.above,
        seconds=time.perf_counter() - monitor.start,
        losses=np.array(monitor.losses, np.float64), times=np.array(monitor.times, np.float64),
        history=json.dumps(monitor.history), offset=json.dumps(dataclasses.asdict(monitor.offset)),
        best_x=None if monitor.best_x is None else np.array(monitor.best_x),
        best=_evaluation_json(monitor.best),
        last_x=None if last_x is None else np.array(last_x),
        last=_evaluation_json(monitor.last),
        rng=json.dumps(rng.bit_generator.state) if rng is not None else "")


def restore_monitor(monitor: solvers.Monitor, state: MonitorState,
                    rng: Optional[np.random.Generator] = None) -> solvers.Monitor:
    """Puts `state` into a freshly built `monitor` (same objective, terms and shape).

    The monitor's objective, terms, budget and callback stay its own (the budget is not
    part of a checkpoint: a resumed run may be given more). Its offset becomes the saved one.

    Args:
        monitor: A new `solvers.Monitor` for the same problem.
        state: From `monitor_state`.
        rng: A generator to put the saved RNG state into, if the state has one.

    Returns:
        `monitor`.

    Raises:
        ValueError: If the saved image's shape is not the monitor's.
    """
    if state.best_x is not None and tuple(state.best_x.shape) != monitor.shape:
        raise ValueError(f"the checkpoint's image is {tuple(state.best_x.shape)}, the run's "
                         f"{monitor.shape}. Received: best_x shape {state.best_x.shape}")

    def evaluation(text):
        if not text:
            return None
        data = json.loads(text)
        return solvers.Evaluation(data["loss"], data["weighted"], data["values"],
                                  monitor.kinds, monitor.layered)

    monitor.evaluations, monitor.iterations = state.evaluations, state.iterations
    monitor.above = state.above
    monitor.losses = [float(v) for v in state.losses]
    monitor.times = [float(v) for v in state.times]
    monitor.history = json.loads(state.history)
    monitor.offset = solvers.Offset(**json.loads(state.offset))
    monitor.best_x = None if state.best_x is None else np.array(state.best_x, np.float32)
    monitor.best = evaluation(state.best)
    monitor.last_x = monitor.best_x if state.last_x is None else np.array(state.last_x,
                                                                          np.float32)
    monitor.last = evaluation(state.last)
    monitor.start = time.perf_counter() - state.seconds
    if rng is not None and state.rng:
        rng.bit_generator.state = json.loads(state.rng)
    return monitor


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A run's state at one evaluation boundary: what `save_checkpoint` writes.

    Attributes:
        kind: `"lbfgsb"`, `"keras"` (Adam, SGD) or `"training"`: which state `solver` is.
        solver: The optimiser's state.
        monitor: The monitor's state at the same boundary; None for a training (its
            losses are in its state).
        stage: The coarse-to-fine stage it was taken in (from 1).
        earlier: The finished stages' monitor states, in order (their losses and history
            join the last stage's, as `render` joins stage results).
        version: The format's version (`FORMAT_VERSION`).
    """

    kind: str
    solver: SolverState
    monitor: Optional[MonitorState]
    stage: int = 1
    earlier: Tuple[MonitorState, ...] = ()
    version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}. "
                             f"Received: kind={self.kind!r}")
        if not isinstance(self.solver, KINDS[self.kind]):
            raise ValueError(f"a {self.kind!r} checkpoint holds a {KINDS[self.kind].__name__}. "
                             f"Received: {type(self.solver).__name__}")
        if self.stage < 1:
            raise ValueError(f"`stage` counts from 1. Received: stage={self.stage}")
        if (self.monitor is None) != (self.kind == "training"):
            raise ValueError("an image's checkpoint needs its monitor's state, and a "
                             f"training's has none. Received: kind={self.kind!r}, "
                             f"monitor={'None' if self.monitor is None else 'given'}")

    @property
    def evaluations(self) -> int:
        """The evaluations done when it was taken, counted from the first stage's start (a
        training's: its steps)."""
        if self.monitor is None:
            return int(self.solver.step)
        return json.loads(self.monitor.offset).get("evaluations", 0) + self.monitor.evaluations

    def describe(self) -> str:
        """Where it stands, in words: `evaluation N (stage S)`, or `step N` of a training."""
        if self.monitor is None:
            return f"step {self.evaluations}"
        return f"evaluation {self.evaluations} (stage {self.stage})"

    @property
    def nbytes(self) -> int:
        """The bytes of its arrays: the file's size, less a few kB of headers."""
        return (self.solver.nbytes + (self.monitor.nbytes if self.monitor else 0)
                + sum(m.nbytes for m in self.earlier))

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Every array of the checkpoint, named `meta/`, `solver/`, `monitor/`, `earlier/k/`."""
        arrays = {"meta/version": np.asarray(self.version), "meta/kind": np.array(self.kind),
                  "meta/stage": np.asarray(self.stage),
                  "meta/earlier": np.asarray(len(self.earlier))}
        arrays.update({f"solver/{k}": v for k, v in self.solver.to_arrays().items()})
        if self.monitor is not None:
            arrays.update({f"monitor/{k}": v for k, v in self.monitor.to_arrays().items()})
        for i, state in enumerate(self.earlier):
            arrays.update({f"earlier/{i}/{k}": v for k, v in state.to_arrays().items()})
        return arrays


def solver_kind(state: SolverState) -> str:
    """The `Checkpoint.kind` of a solver state."""
    for kind, cls in KINDS.items():
        if isinstance(state, cls):
            return kind
    raise ValueError(f"no checkpoint kind holds a {type(state).__name__}. Received: {state!r}")


def checkpoint_bytes(shape, kind: str = "lbfgsb", memory: int = 10, optimizer: str = "adam"
                     ) -> int:
    """The bytes a checkpoint of an image of `shape` holds (headers aside; the best image only).

    Args:
        shape: The preprocessed image's shape, e.g. (1, H, W, 3).
        kind: `"lbfgsb"` or `"keras"`.
        memory: L-BFGS-B's m.
        optimizer: For `"keras"`: `"adam"` (two moments) or `"sgd"`.
    """
    n = int(np.prod(shape))
    best = 4 * n
    if kind == "lbfgsb":
        return lbfgsb.state_bytes(n, memory) + best
    moments = 2 if optimizer == "adam" else 0
    return 4 * n * (1 + moments) + best


def save_checkpoint(path: Union[str, os.PathLike], checkpoint: Checkpoint) -> int:
    """Writes `checkpoint` to `path` atomically (`images.atomic_write`: a temporary file,
    fsync, rename, fsync of the folder).

    A crash at any moment leaves the old file or the new one. The folder must exist, and
    hold the file twice while both exist.

    Args:
        path: The checkpoint's file (`.npz`).
        checkpoint: What to write.

    Returns:
        The bytes written.

    Raises:
        OSError: If the folder is missing or the disk is full (the temporary file is
            removed; the old checkpoint is left as it was).
    """
    from nst_keras.media.images import atomic_write  # The one temporary-file-and-rename.

    with atomic_write(path) as out:
        np.savez(out, **checkpoint.to_arrays())
        out.flush()
        written = out.tell()
    return written


def load_checkpoint(path: Union[str, os.PathLike]) -> Checkpoint:
    """Reads a checkpoint that `save_checkpoint` wrote.

    Raises:
        ValueError: If the file is not a checkpoint, is of another format version, or is
            damaged (the message names the file).
        OSError: If it cannot be read.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise ValueError(f"not a readable checkpoint ({error}). Received: {path}") from None
    version = arrays.get("meta/version")
    if version is None:
        raise ValueError(f"not a checkpoint (no format version). Received: {path}")
    if int(version) != FORMAT_VERSION:
        raise ValueError(f"the checkpoint's format is version {int(version)}, this is "
                         f"{FORMAT_VERSION}. Received: {path}")
    kind = str(arrays["meta/kind"])
    if kind not in KINDS:
        raise ValueError(f"the checkpoint holds an unknown solver {kind!r}. Received: {path}")

    def part(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return Checkpoint(
        kind=kind, solver=KINDS[kind].from_arrays(part("solver/")),
        monitor=None if kind == "training" else MonitorState.from_arrays(part("monitor/")),
        stage=int(arrays["meta/stage"]),
        earlier=tuple(MonitorState.from_arrays(part(f"earlier/{i}/"))
                      for i in range(int(arrays["meta/earlier"]))),
        version=int(version))


class CheckpointPolicy:
    """When to write the next checkpoint: at most every `every` s, and >= `factor` x a write.

    The adaptive rule keeps writing to at most 1/`factor` of the run's time at every size
    (2 % at the default 50): a write of 1 s waits 50 s for the next. Before the first write
    there is no duration to go by, so the first waits `first` seconds (or `every`).

    Args:
        every: The least time between two writes, in seconds (0: only the adaptive rule).
        factor: The least time between two writes in multiples of the last write's.
        first: The least time before the first write, from `start`.
        start: When the run started (`time.perf_counter()`); now when None.

    Raises:
        ValueError: If a duration is negative or `factor` is below 0.
    """

    def __init__(self, every: float = 0.0, factor: float = 50.0, first: float = 10.0,
                 start: Optional[float] = None):
        for name, value in (("every", every), ("factor", factor), ("first", first)):
            if not value >= 0:
                raise ValueError(f"`{name}` must be at least 0. Received: {name}={value!r}")
        self.every, self.factor, self.first = float(every), float(factor), float(first)
        self.last_end = time.perf_counter() if start is None else start
        self.last_cost: Optional[float] = None
        self.writes = 0
        self.seconds = 0.0

    def wait(self) -> float:
        """Seconds to wait after the last write (or the start) before the next."""
        if self.last_cost is None:
            return max(self.every, self.first)
        return max(self.every, self.factor * self.last_cost)

    def due(self, now: Optional[float] = None) -> bool:
        """Whether a checkpoint should be written now."""
        now = time.perf_counter() if now is None else now
        return now - self.last_end >= self.wait()

    def wrote(self, seconds: float, now: Optional[float] = None) -> None:
        """Records a write that took `seconds` and ended `now`."""
        self.last_end = time.perf_counter() if now is None else now
        self.last_cost = float(seconds)
        self.writes += 1
        self.seconds += float(seconds)

