"""Where a batch's jobs run: in this process (`LocalEngine`) or on a Ray cluster (`RayEngine`).

Both run the same worker function, `execute`: a job's inputs arrive as the files' bytes
(`Payload`; no shared filesystem is assumed), it is planned and rendered like any other run
(`plan.plan`, `render.render`), and what comes back is the one delivery's bytes
(`delivery.Outputs`: the image, the loss plot and the run record, written by the driver
with `delivery.write_outputs`), or the one-line reason it failed. A job stopped by the
batch's stop token (Ctrl-C in the driver, local engine) comes back as `interrupted` with
its best image delivered the same way. A job's own failure (a bad image, a
non-finite loss, out of memory) is an outcome, never an exception, so one bad job does not
stop the batch. Each worker process keeps its feature model built (`runtime.MODELS`):
one build per worker for a batch of one network.

Ray: one actor per node by default (TensorFlow already uses every core of a node), each
building its model once. A worker that dies is restarted by Ray and its job retried
(`retries` times, Ray's `max_task_retries`); a job that fails for its own reasons is not
retried.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

from nst_keras.config import StyleConfig
from nst_keras.engine.control import StopToken


@dataclasses.dataclass(frozen=True)
class Payload:
    """One job as it travels to a worker: its settings and its inputs' bytes.

    Attributes:
        name: The job's name (its output stem).
        key: The job's key (`jobs.job_key`), written into its record.
        config: The settings.
        content: The content image file's bytes.
        styles: Each style image file's bytes.
        masks: Each mask file's bytes, or None.
        init: The init image file's bytes when `config.init` is a path, else None.
        sources: Where the inputs came from (paths), for the record.
        resuming: How the worker keeps the job resumable (`Resuming`), or None.
        network: The job's one style is a trained network (`styles[0]` its file's bytes):
            one pass through it (`plan.plan_network`), nothing to resume.
    """

    name: str
    key: str
    config: StyleConfig
    content: bytes = dataclasses.field(repr=False)
    styles: Tuple[bytes, ...] = dataclasses.field(repr=False)
    masks: Optional[Tuple[bytes, ...]] = dataclasses.field(repr=False)
    init: Optional[bytes] = dataclasses.field(repr=False)
    sources: Dict[str, object]
    resuming: Optional["Resuming"] = None
    network: bool = False


@dataclasses.dataclass(frozen=True)
class Resuming:
    """Where and how often a worker writes its job's checkpoint.

    The checkpoint goes to `folder` under the job's name and resume key
    (`delivery.checkpoint_path`), written by the worker itself: every worker must see the
    folder (the output folder on one machine, a shared one on a cluster, `--checkpoint-dir`).
    That is what makes a job whose worker died (`kill -9`, a lost node) go on from its last
    checkpoint when Ray retries it with its original arguments: the retry finds the file.

    Attributes:
        folder: The checkpoints' folder.
        every: The least seconds between two writes; None for the adaptive rule.
        restart: Ignore a checkpoint found, start from zero.
    """

    folder: str
    every: Optional[float] = None
    restart: bool = False


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What a worker sends back for one job.

    Attributes:
        name: The job's name.
        status: `"done"`, `"failed"` or `"interrupted"`.
        outputs: The `delivery.Outputs` of the result (done), or of the best image so far
            (interrupted), or None.
        reason: Why it failed, one line, else None.
        seconds: Wall time of the job in the worker.
        loss: The image's loss, or None.
        worker: `host:pid` of the worker process.
        model_builds: Feature models that worker process has built so far.
        notes: One-line messages for the user (resumed from a checkpoint, checkpoints off).
        checkpoint: The job's checkpoint file, for the driver to remove once the job's
            result is written (done), or None.
    """

    name: str
    status: str
    outputs: Optional[object] = dataclasses.field(repr=False, default=None)
    reason: Optional[str] = None
    seconds: float = 0.0
    loss: Optional[float] = None
    worker: str = ""
    model_builds: int = 0
    notes: Tuple[str, ...] = ()
    checkpoint: Optional[str] = None


def execute(payload: Payload, callback: Optional[Callable] = None,
            stop: Optional[StopToken] = None) -> JobOutcome:
    """Plans and renders one job from its payload: the worker function of every engine.

    Args:
        payload: The job.
        callback: Called with each `Progress`, or None.
        stop: The batch's `control.StopToken` (this process's engine), or None.

    Returns:
        An `JobOutcome`: done with the delivery's bytes; failed with the reason (the plan's
        one-line refusal, a weights file that cannot be loaded, a non-finite loss,
        divergence, out of memory, or any error); interrupted with the best image so far.
    """
    from nst_keras import delivery
    from nst_keras.engine import runtime
    from nst_keras.errors import (DivergedError, Interrupted, NonFiniteLossError,
                                  StyleTransferError, first_line)
    from nst_keras.plan import plan
    from nst_keras.render import render

    began = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    checkpoints = None

    def outcome(status, **fields):
        notes = tuple(checkpoints.notes) if checkpoints is not None else ()
        return JobOutcome(payload.name, status, seconds=time.perf_counter() - began,
                          worker=worker, model_builds=runtime.MODELS.builds, notes=notes,
                          **fields)

    try:
        if payload.network:
            return _execute_network(payload, stop, outcome)
        job = plan(payload.content, list(payload.styles), config=payload.config,
                   masks=None if payload.masks is None else list(payload.masks),
                   init_image=payload.init)
        checkpoints = _checkpoints(payload, job)
        result = render(job, callback, stop=stop, checkpoints=checkpoints)
    except Interrupted:  # Stopped before its first evaluation: nothing to deliver.
        return outcome("interrupted", reason="interrupted")
    except (NonFiniteLossError, DivergedError) as error:  # Resuming would fail again.
        if checkpoints is not None:
            checkpoints.remove()
        return outcome("failed", reason=first_line(error) or type(error).__name__)
    except (ValueError, StyleTransferError) as error:
        return outcome("failed", reason=first_line(error) or type(error).__name__)
    except Exception as error:  # Anything else fails this job only, named by its type.
        return outcome("failed", reason=f"{type(error).__name__}: {first_line(error)}")
    outputs = delivery.outputs(result, output=f"{payload.name}.png", key=payload.key,
                               inputs=payload.sources, extra={"job": payload.name})
    return outcome("interrupted" if result.stopped else "done", outputs=outputs,
                   loss=result.loss, reason="interrupted" if result.stopped else None,
                   checkpoint=None if checkpoints is None else checkpoints.path)


def _execute_network(payload: Payload, stop, outcome) -> JobOutcome:
    """A network job in a worker: the network's bytes to a file this worker keeps (named
    by their hash: a worker on another machine has no access to the driver's path), then
    one planned pass."""
    import tempfile

    from nst_keras import delivery, keys
    from nst_keras.plan import plan_network
    from nst_keras.render import render_network

    data = payload.styles[0]
    path = os.path.join(tempfile.gettempdir(), "nst_keras-networks",
                        keys.bytes_digest(data)[:32] + ".keras")
    if not os.path.isfile(path):
        delivery.write_bytes(path, data)
    job = plan_network(payload.content, path, config=payload.config)
    result = render_network(job, stop=stop)
    outputs = delivery.outputs(result, output=f"{payload.name}.png", key=payload.key,
                               inputs=payload.sources, extra={"job": payload.name},
                               plot=False)
    return outcome("done", outputs=outputs, loss=None)


def _checkpoints(payload: Payload, job):
    """The job's `delivery.CheckpointFile` in the payload's folder, or None."""
    from nst_keras import delivery

    resuming = payload.resuming
    if resuming is None:
        return None
    return delivery.CheckpointFile(
        delivery.checkpoint_path(resuming.folder, payload.name, job.resume_key),
        needed=delivery.checkpoint_needs(job), every=resuming.every,
        enabled=delivery.unresumable(job.config) is None, restart=resuming.restart)


class LocalEngine:
    """Runs the jobs one after another in this process, with one model built once.

    Attributes:
        workers: 1.
        description: What the engine is, for messages and records.
    """

    workers = 1
    description = "local (this process)"

    def run(self, payloads: Iterable[Payload], on_start: Callable[[str], None] = None,
            callback: Optional[Callable] = None,
            stop: Optional[StopToken] = None) -> Iterator[JobOutcome]:
        """Yields each job's `JobOutcome` in order.

        Args:
            payloads: The jobs, read lazily (one job's bytes in memory at a time).
            on_start: Called with a job's name as it starts.
            callback: Each job's progress (`Progress`), or None.
            stop: The batch's `control.StopToken`: the job in flight stops at its next
                evaluation (and comes back interrupted), and no other starts.
        """
        for payload in payloads:
            if stop is not None and stop.requested:
                return
            if on_start is not None:
                on_start(payload.name)
            yield execute(payload, callback, stop)

    def close(self) -> None:
        """Nothing to release."""


#: The Ray package's install line, for the error when it is missing.
RAY_INSTALL = "pip install 'nst-keras[ray]'"


class RayEngine:
    """Runs the jobs on Ray actors, one per node by default, and yields them as they finish.

    Ray's own address conventions apply: `address`, else `RAY_ADDRESS`, else a one-machine
    cluster started for the batch. A cluster started here listens on 127.0.0.1 only and
    keeps Ray's token authentication; it is shut down by `close`.

    Args:
        address: A Ray cluster's address (`host:port` or `auto`), or None.
        workers: Actors to start; one per alive node when None.
        retries: How many times a job whose worker died is retried (Ray restarts the actor
            and runs the job again); a job that fails for its own reasons is not retried.

    Raises:
        ImportError: If Ray is not installed (`RAY_INSTALL` says how).
        ConnectionError: If the address names no running cluster.
    """

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None,
                 retries: int = 1):
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is None:
            # Ray binds every interface on Linux unless this is set before it is imported:
            # a cluster started for one batch has no business outside this machine.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ImportError(f"the ray engine needs Ray: {RAY_INSTALL}") from None

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address or "local", include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        self.workers = workers or max(1, len(nodes))
        self.retries = retries
        self.description = (f"ray ({len(nodes)} node{'s' if len(nodes) != 1 else ''}, "
                            f"{self.workers} worker{'s' if self.workers != 1 else ''})")
        actor = ray.remote(_RayWorker).options(
            num_cpus=0,  # One actor per node is the unit; TensorFlow uses the node's cores.
            scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=retries)
        self.actors = [actor.remote() for _ in range(self.workers)]

    def pids(self) -> list:
        """The worker processes' ids (to watch them, or to kill one in a test)."""
        return self.ray.get([a.pid.remote() for a in self.actors])

    def run(self, payloads: Iterable[Payload], on_start: Callable[[str], None] = None,
            callback: Optional[Callable] = None,
            stop: Optional[StopToken] = None) -> Iterator[JobOutcome]:
        """Yields each job's `JobOutcome` as it finishes (not in order).

        A job whose worker died more than `retries` times is a failed outcome. Progress
        within a job is not reported (`callback` is ignored): it runs elsewhere. Once
        `stop` is set no job is sent; the jobs in flight end with the actors (`close`).
        """
        ray = self.ray
        todo, free, pending = iter(payloads), list(self.actors), {}
        exhausted = False
        while True:
            if stop is not None and stop.requested:
                return
            while free and not exhausted:
                payload = next(todo, None)
                if payload is None:
                    exhausted = True
                    break
                actor = free.pop()
                pending[actor.run.remote(payload)] = (actor, payload.name)
                if on_start is not None:
                    on_start(payload.name)
            if not pending:
                return
            ready = ray.wait(list(pending), num_returns=1, timeout=0.5)[0]
            if not ready:  # Look at the stop token twice a second.
                continue
            (ready,) = ready
            actor, name = pending.pop(ready)
            free.append(actor)
            try:
                yield ray.get(ready)
            except ray.exceptions.RayActorError as error:
                yield JobOutcome(name, "failed", reason=(
                    f"its worker died {self.retries + 1} time(s) ({type(error).__name__})"))

    def close(self) -> None:
        """Ends the actors, and the cluster if this engine started it."""
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # Already gone.
                pass
        if self.started:
            self.ray.shutdown()


class _RayWorker:
    """A Ray actor: `execute` in a process that keeps its feature model between jobs."""

    def __init__(self):
        from nst_keras.engine.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()

    def pid(self) -> int:
        return os.getpid()

    def run(self, payload: Payload) -> JobOutcome:
        return execute(payload)
