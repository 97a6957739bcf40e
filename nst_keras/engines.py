"""Where a batch's jobs run: in this process (`LocalEngine`) or on a Ray cluster (`RayEngine`).

Both run the same worker function, `execute`: a job's inputs arrive as the files' bytes
(`Payload`; no shared filesystem is assumed), it is planned and rendered like any other run
(`plan.plan`, `render.render`), and what comes back is the image as PNG bytes and the run
record (`Outcome`), or the one-line reason it failed. A job's own failure (a bad image, a
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
    """

    name: str
    key: str
    config: StyleConfig
    content: bytes = dataclasses.field(repr=False)
    styles: Tuple[bytes, ...] = dataclasses.field(repr=False)
    masks: Optional[Tuple[bytes, ...]] = dataclasses.field(repr=False)
    init: Optional[bytes] = dataclasses.field(repr=False)
    sources: Dict[str, object]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a worker sends back for one job.

    Attributes:
        name: The job's name.
        status: `"done"`, `"failed"` or `"interrupted"`.
        png: The image as PNG bytes (done), the best image so far (interrupted), or None.
        record: The run record (`record.run_record`) of a done job, else None.
        reason: Why it failed, one line, else None.
        seconds: Wall time of the job in the worker.
        loss: The image's loss, or None.
        worker: `host:pid` of the worker process.
        model_builds: Feature models that worker process has built so far.
    """

    name: str
    status: str
    png: Optional[bytes] = dataclasses.field(repr=False, default=None)
    record: Optional[dict] = dataclasses.field(repr=False, default=None)
    reason: Optional[str] = None
    seconds: float = 0.0
    loss: Optional[float] = None
    worker: str = ""
    model_builds: int = 0


def execute(payload: Payload, callback: Optional[Callable] = None) -> Outcome:
    """Plans and renders one job from its payload: the worker function of every engine.

    Args:
        payload: The job.
        callback: Called with each `Progress`, or None.

    Returns:
        An `Outcome`: done with the PNG and the record; failed with the reason (the plan's
        one-line refusal, a non-finite loss, divergence, out of memory, or any error);
        interrupted with the best image so far (Ctrl-C in this process).
    """
    from nst_keras import runtime
    from nst_keras.errors import Interrupted, StyleTransferError
    from nst_keras.plan import plan
    from nst_keras.record import run_record
    from nst_keras.render import render

    began = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def outcome(status, **fields):
        return Outcome(payload.name, status, seconds=time.perf_counter() - began,
                       worker=worker, model_builds=runtime.MODELS.builds, **fields)

    try:
        job = plan(payload.content, list(payload.styles), config=payload.config,
                   masks=None if payload.masks is None else list(payload.masks),
                   init_image=payload.init)
        result = render(job, callback)
    except Interrupted as error:
        return outcome("interrupted", png=None if error.best_image is None
                       else png_bytes(error.best_image), reason="interrupted")
    except (ValueError, StyleTransferError) as error:
        return outcome("failed", reason=_first_line(error))
    except Exception as error:  # Anything else fails this job only, named by its type.
        return outcome("failed", reason=f"{type(error).__name__}: {_first_line(error)}")
    record = run_record(result, inputs=payload.sources, output=f"{payload.name}.png",
                        extra={"job": payload.name, "job_key": payload.key})
    return outcome("done", png=png_bytes(result.image), record=record, loss=result.loss)


def png_bytes(rgb) -> bytes:
    """An RGB uint8 array as PNG file bytes (with the sRGB profile, `images.encode_image`)."""
    from nst_keras.images import encode_image

    return encode_image(rgb, "PNG")


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__


class LocalEngine:
    """Runs the jobs one after another in this process, with one model built once.

    Attributes:
        workers: 1.
        description: What the engine is, for messages and records.
    """

    workers = 1
    description = "local (this process)"

    def run(self, payloads: Iterable[Payload], on_start: Callable[[str], None] = None,
            callback: Optional[Callable] = None) -> Iterator[Outcome]:
        """Yields each job's `Outcome` in order.

        Args:
            payloads: The jobs, read lazily (one job's bytes in memory at a time).
            on_start: Called with a job's name as it starts.
            callback: Each job's progress (`Progress`), or None.
        """
        for payload in payloads:
            if on_start is not None:
                on_start(payload.name)
            yield execute(payload, callback)

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
            callback: Optional[Callable] = None) -> Iterator[Outcome]:
        """Yields each job's `Outcome` as it finishes (not in order).

        A job whose worker died more than `retries` times is a failed outcome. Progress
        within a job is not reported (`callback` is ignored): it runs elsewhere.
        """
        ray = self.ray
        todo, free, pending = iter(payloads), list(self.actors), {}
        exhausted = False
        while True:
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
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            actor, name = pending.pop(ready)
            free.append(actor)
            try:
                yield ray.get(ready)
            except ray.exceptions.RayActorError as error:
                yield Outcome(name, "failed", reason=(
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
        from nst_keras.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()

    def pid(self) -> int:
        return os.getpid()

    def run(self, payload: Payload) -> Outcome:
        return execute(payload)
