"""`nst-keras batch`: many photos x many styles, resumable, on one machine or a Ray cluster.

`run_batch(jobs, out)` is the API; `main(argv)` the command. A batch is a list of jobs
(`nst_keras.commands.jobs`: every content with every style, one to one, or the rows of a CSV file),
each planned and rendered like a plain run by an engine (`nst_keras.commands.engines`: this process,
or Ray actors that keep their model built). The driver writes everything, so workers need
no shared filesystem:

* `OUT/NAME.png`, `OUT/NAME-loss.png` and `OUT/NAME.json` (the run record, as `--report`
  writes it, plus the job's name; its `job_key`), written by the one delivery
  (`delivery.write_outputs`): atomically, the image first and the record last, so a record
  on disk means its image is complete;
* `OUT/batch.json`: every job's sources, settings, status, seconds, loss and output or
  reason, rewritten after each job;
* `OUT/contact_sheet.png`: contents x styles, failed cells marked.

Resuming: a job is skipped when its image and record exist and the record's `job_key` (a
hash of its settings and of its inputs' bytes, `jobs.job_key`) is the job's own. So a rerun
after `kill -9` does exactly the jobs that were in flight and the rest, and a rerun with
other settings or changed images redoes what changed. `overwrite` redoes everything.

Failure isolation: an unreadable image or mask, a size that does not fit, a non-finite or
diverged run fails its job only, with its one-line reason in `batch.json`; settings that
cannot work for any job are refused before the first job starts. Ctrl-C or SIGTERM set the
batch's stop token: no job starts after it, every finished job is kept, and the job in
flight (local engine) stops at its next evaluation and is delivered as
`NAME.partial.png` (with `NAME.partial.json`), which a rerun redoes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from nst_keras.commands import console, jobs as jobs_lib
from nst_keras.config import PRESETS, StyleConfig
from nst_keras.commands.console import EXIT_FAILED, EXIT_OK, UsageError
from nst_keras.engine.control import StopToken, pace
from nst_keras.errors import first_line

PROG = f"{console.PROG} batch"
ENGINES = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """What the progress callback receives when a job starts or ends.

    Attributes:
        total: Jobs in the batch.
        done, skipped, failed: Jobs finished so far, by outcome.
        running: Jobs in flight.
        last: The name of the job that just started or ended, and its status ("" for the
            first report, once every job is checked and before any runs).
        engine: What runs the jobs.
        rate: Jobs finished per second this run (`control.pace`; skipped ones excluded).
        eta: Seconds the jobs left should take at that rate, or None.
        notes: The ended job's messages (resumed from a checkpoint, checkpoints off).
    """

    total: int
    done: int
    skipped: int
    failed: int
    running: int
    last: str
    engine: str = ""
    rate: float = 0.0
    eta: Optional[float] = None
    notes: tuple = ()


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What a batch did.

    Attributes:
        entries: One dict per job (as in `batch.json`), in the jobs' order.
        summary_path: `OUT/batch.json`.
        sheet_path: `OUT/contact_sheet.png`, or None when nothing could be shown.
        interrupted: Whether the stop token (Ctrl-C, SIGTERM) stopped it.
    """

    entries: tuple
    summary_path: str
    sheet_path: Optional[str]
    interrupted: bool = False

    def count(self, status: str) -> int:
        """How many jobs ended with `status` (`done`, `skipped`, `failed`, `interrupted`,
        `pending`)."""
        return sum(1 for e in self.entries if e["status"] == status)


def run_batch(batch_jobs: Sequence[jobs_lib.BatchJob], out: str, *, engine=None,
              overwrite: bool = False, progress: Optional[Callable[[BatchProgress], None]] = None,
              guard=None, stop: Optional[StopToken] = None,
              job_progress: Optional[Callable] = None, resuming=None) -> BatchReport:
    """Runs a batch's jobs into the folder `out`, skipping those already done.

    Args:
        batch_jobs: From `jobs.pair` or `jobs.read_jobs_csv`.
        out: The output folder (created if missing).
        engine: An engine from `nst_keras.commands.engines`, or a function making one (called once
            every job is checked, so that a refused batch starts no cluster);
            `LocalEngine()` when None.
        overwrite: Redo every job, done or not.
        progress: Called with a `BatchProgress` as each job starts and ends.
        job_progress: Called with each `Progress` of the job in flight (this process's
            engine; a Ray job runs elsewhere), or None.
        resuming: An `engines.Resuming` (where the workers keep each job's checkpoint):
            a job stopped or killed goes on exactly from it in the next run, or in Ray's
            retry; None keeps no checkpoint.
        guard: The command line's `console.SignalGuard`, so that a job's files are written
            whole even when Ctrl-C comes; None outside it.
        stop: A `control.StopToken`: once set, no job starts, the job in flight (local
            engine) stops at its next evaluation and is kept as `NAME.partial.png`, and the
            report says `interrupted`. The guard's token when None and a guard is given.

    Returns:
        A `BatchReport` (`interrupted` when the stop token ended it). A job that failed
        does not raise; see its entry.

    Raises:
        ValueError: If a job's settings cannot work (before any job runs), naming the job.
    """
    from nst_keras.commands.engines import LocalEngine
    from nst_keras.keys import Digests

    critical = guard.critical if guard is not None else contextlib.nullcontext
    if stop is None and guard is not None:
        stop = guard.token
    entries: Dict[str, dict] = {}
    payloads = []
    digests = Digests()  # Each file hashed once, however many jobs share it.
    for job in batch_jobs:
        entry, payload = _prepare(job, out, overwrite, digests)
        entries[job.name] = entry
        if payload is not None:
            payloads.append(dataclasses.replace(payload, resuming=resuming))
    engine = engine or LocalEngine()
    if callable(engine) and not hasattr(engine, "run"):
        engine = engine()
    os.makedirs(out, exist_ok=True)
    counts = {"done": 0, "skipped": sum(e["status"] == "skipped" for e in entries.values()),
              "failed": sum(e["status"] == "failed" for e in entries.values()), "running": 0}
    ready = counts["skipped"] + counts["failed"]  # Known before any job runs.
    began = time.perf_counter()

    def tell(last, notes=()):
        if progress is not None:
            finished = counts["done"] + counts["failed"] + counts["skipped"] - ready
            speed = pace(finished, len(entries) - ready, time.perf_counter() - began)
            progress(BatchProgress(len(entries), counts["done"], counts["skipped"],
                                   counts["failed"], counts["running"], last,
                                   engine.description, speed.rate, speed.eta, tuple(notes)))

    def started(name):
        entries[name]["status"] = "running"
        counts["running"] += 1
        with critical():  # So that batch.json shows what is in flight at any moment.
            _write_summary(out, entries, engine)
        tell(f"{name} started")

    tell("")
    try:
        for outcome in engine.run((_loaded(p) for p in payloads), on_start=started,
                                  callback=job_progress, stop=stop):
            counts["running"] -= 1
            _deliver(outcome, entries[outcome.name], out, critical)
            status = entries[outcome.name]["status"]
            if status in counts:  # done or failed; interrupted ends the batch.
                counts[status] += 1
            with critical():
                _write_summary(out, entries, engine)
            tell(f"{outcome.name} {status}", outcome.notes)
            if stop is not None and stop.requested:
                break
    finally:
        for entry in entries.values():
            if entry["status"] == "running":
                entry["status"] = "interrupted"
        engine.close()
    with critical():
        _write_summary(out, entries, engine)
        sheet = write_contact_sheet(out, batch_jobs, entries)
    return BatchReport(tuple(entries.values()), os.path.join(out, "batch.json"), sheet,
                       stop is not None and stop.requested)


def _prepare(job: jobs_lib.BatchJob, out: str, overwrite: bool, digests):
    """A job's summary entry and, unless it is done already or cannot run, its payload
    (without the bytes yet: `_loaded` reads them as it is dispatched).

    Raises:
        ValueError: If the job's settings cannot work (not an input's fault).
    """
    from nst_keras import delivery
    from nst_keras.config import INITS
    from nst_keras.commands.engines import Payload
    from nst_keras.errors import InputError, NotEnoughMemory
    from nst_keras.plan import plan, plan_network
    from nst_keras.record import settings_dict

    entry = {"job": job.name, "content": job.content, "styles": list(job.styles),
             "masks": None if job.masks is None else list(job.masks),
             "settings": settings_dict(job.config), "status": "pending", "seconds": None,
             "loss": None, "output": None, "reason": None, "worker": None}
    inputs = [job.content, *job.styles, *(job.masks or ())]
    if job.config.init not in INITS:
        inputs.append(job.config.init)
    if job.config.weights not in (None, "imagenet"):
        inputs.append(job.config.weights)
    for path in inputs:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            entry.update(status="failed", reason=f"cannot read {path}: "
                         + ("not a readable file" if os.path.exists(path) else
                            "No such file or directory"))
            return entry, None
    key = entry["key"] = jobs_lib.job_key(job, digests)
    image, record = os.path.join(out, f"{job.name}.png"), os.path.join(out, f"{job.name}.json")
    if not overwrite and delivery.done_already(image, record, key):
        with open(record, encoding="utf-8") as f:
            done = json.load(f)
        entry.update(status="skipped", loss=done.get("loss"), seconds=done.get("seconds"),
                     output=os.path.basename(image))
        return entry, None
    network = is_network(job.styles[0])
    try:  # The plan's checks, from the headers, before any job runs.
        if network:
            _check_network_job(job)
            try:
                plan_network(job.content, job.styles[0], config=job.config, load=False)
            except NotEnoughMemory:
                raise
            except ValueError as error:  # Its file or its photo: this job fails alone.
                raise InputError(str(error).replace("network=", "style="),
                                 "style") from None
        else:
            plan(job.content, list(job.styles), config=job.config, masks=job.masks, load=False)
    except (InputError, NotEnoughMemory) as error:  # This job's inputs: it fails alone.
        entry.update(status="failed", reason=str(error))
        return entry, None
    except ValueError as error:  # Its settings: no job of this batch would go better.
        raise ValueError(f"job {job.name}: {error}") from None
    sources = {"content": job.content, "styles": list(job.styles), "masks": entry["masks"],
               "init": job.config.init}
    return entry, Payload(job.name, key, job.config, b"", (), None, None, sources,
                          network=network)


def is_network(path) -> bool:
    """Whether a style input is a trained style network (`nst-keras train`'s `.keras`)."""
    return os.fspath(path).lower().endswith(".keras")


def _check_network_job(job: jobs_lib.BatchJob) -> None:
    """A network is a whole style: alone, everywhere (no blend, no masks).

    Raises:
        ValueError: Naming the job's styles or masks.
    """
    if len(job.styles) > 1:
        raise ValueError("a network paints its own style alone: it cannot be blended with "
                         f"other styles. Received: style={' + '.join(job.styles)}")
    if job.masks:
        raise ValueError("a network paints one style everywhere: no masks. Received: "
                         f"masks={' '.join(job.masks)}")


def _loaded(payload):
    """The payload with its inputs' bytes, read now (one job's at a time)."""
    from nst_keras.config import INITS

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    sources = payload.sources
    return dataclasses.replace(
        payload, content=read(sources["content"]),
        styles=tuple(read(s) for s in sources["styles"]),
        masks=None if sources["masks"] is None else tuple(read(m) for m in sources["masks"]),
        init=None if payload.config.init in INITS else read(payload.config.init))


def _deliver(outcome, entry: dict, out: str, critical) -> None:
    """Writes what a worker sent back through the one delivery; updates the entry.

    A done job is `NAME.png`, `NAME-loss.png`, `NAME.json`; an interrupted one
    `NAME.partial.png` (and its record), which a rerun redoes. A disk that is full at that
    moment fails the job, its files kept in the temporary folder (the reason says where).
    """
    from nst_keras import delivery

    entry.update(status=outcome.status, seconds=round(outcome.seconds, 3), loss=outcome.loss,
                 reason=outcome.reason, worker=outcome.worker,
                 model_builds=outcome.model_builds, notes=list(outcome.notes))
    if outcome.outputs is None:
        return
    stem = outcome.name if outcome.status == "done" else f"{outcome.name}.partial"
    try:
        done = delivery.write_outputs(os.path.join(out, f"{stem}.png"), outcome.outputs,
                                      report=out, stem=stem, critical=critical)
    except delivery.DeliveryError as error:
        entry.update(status="failed", reason=str(error), output=None)
        return
    if done.fallback:
        entry.update(status="failed", output=done.image, reason=(
            f"cannot write {stem}.png ({done.fallback}); kept in {os.path.dirname(done.image)}"))
        return
    entry["output"] = os.path.basename(done.image)
    if outcome.status == "done" and outcome.checkpoint:  # Written: no need to resume it.
        with contextlib.suppress(OSError):
            os.unlink(outcome.checkpoint)
    if outcome.status == "done":
        for name in (f"{outcome.name}.partial.png", f"{outcome.name}.partial.json",
                     f"{outcome.name}.partial-loss.png"):
            if os.path.exists(os.path.join(out, name)):
                os.unlink(os.path.join(out, name))


def _write_summary(out: str, entries: Dict[str, dict], engine) -> None:
    from nst_keras.delivery import write_record

    write_record(os.path.join(out, "batch.json"), {
        "engine": engine.description,
        "counts": {status: sum(e["status"] == status for e in entries.values())
                   for status in ("done", "skipped", "failed", "interrupted", "pending")},
        "jobs": list(entries.values()),
    })


def write_contact_sheet(out: str, batch_jobs, entries: Dict[str, dict]) -> Optional[str]:
    """Draws `OUT/contact_sheet.png`: contents down the side, styles along the top.

    Returns:
        Its path, or None when no input could be read to draw it.
    """
    from nst_keras.commands.contact_sheet import draw_sheet
    from nst_keras.media.images import load_image

    rows = list(dict.fromkeys(job.content for job in batch_jobs))
    cols = list(dict.fromkeys(job.styles for job in batch_jobs))

    def thumbnail(path):
        try:
            if is_network(path):  # The style thumbnail the network's file carries.
                from nst_keras.engine import transformer

                small = transformer.thumbnail_of(transformer.read_record(path))
                return None if small is None else load_image(small, 128)
            return load_image(path, 128)
        except Exception:  # An unreadable input is shown as a marked cell.
            return None

    def stem(path):
        return os.path.splitext(os.path.basename(path))[0]

    contents = [(stem(c), thumbnail(c)) for c in rows]
    styles = [("+".join(stem(s) for s in col), thumbnail(col[0])) for col in cols]
    if all(img is None for _, img in contents):
        return None
    cells = {}
    for job in batch_jobs:
        entry = entries[job.name]
        status = "done" if entry["status"] in ("done", "skipped") else entry["status"]
        image = None
        if status == "done":
            image = thumbnail(os.path.join(out, entry["output"]))
        label = f"loss {entry['loss']:.3g}" if entry.get("loss") else entry["status"]
        cells[rows.index(job.content), cols.index(job.styles)] = (status, image, label)
    path = os.path.join(out, "contact_sheet.png")
    from nst_keras.delivery import write_image

    shown = [(label, img if img is not None else _blank()) for label, img in contents]
    tops = [(label, img if img is not None else _blank()) for label, img in styles]
    write_image(path, draw_sheet(shown, tops, cells))
    return path


def _blank():
    import numpy as np

    return np.full((96, 128, 3), 235, np.uint8)


# --- The command --------------------------------------------------------------------------


def build_parser(defaults: StyleConfig, preset_name: str):
    """`batch`'s parser: its inputs, engines and output, and every plain run's setting."""
    parser = console.Parser(
        prog=PROG,
        description=(
            "Stylises many photos with many styles: every CONTENT with every --style (or "
            "--pairs zip, or the rows of --jobs FILE.csv), one PNG and one JSON record per "
            "job in --out DIR, plus DIR/batch.json and DIR/contact_sheet.png. A rerun skips "
            "the jobs already done with the same settings and images."),
        epilog=(
            "Exit codes: 0 every job done, 1 some job failed (listed in DIR/batch.json), 2 "
            "bad usage, 130/143 interrupted (finished jobs kept)."),
        formatter_class=console.HelpFormatter,
    )
    groups = {name: parser.add_argument_group(name)
              for name in ("batch", "images", "method", "optimisation")}
    b = groups["batch"]
    b.add_argument("contents", nargs="*", metavar="CONTENT",
                   help="content images: files, folders or glob patterns (quote globs)")
    b.add_argument("--style", dest="styles", nargs="+", default=None, metavar="STYLE",
                   help="style images: files, folders or glob patterns")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--pairs", choices=jobs_lib.PAIRINGS, default="product",
                   help="product: every content with every style; zip: the n-th with the n-th")
    b.add_argument("--jobs", default=None, metavar="FILE.csv",
                   help="one job per row instead: columns content, style (several: a;b), "
                        "optional mask, and any setting's name (style_weight, height, "
                        "preserve_color, ...) to override it for that row")
    b.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process, one job after another; ray: Ray actors, one "
                        "per node")
    b.add_argument("--workers", type=console.positive_int, default=None,
                   help="ray: how many actors (default: one per node)")
    b.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="ray: the cluster's address (default: RAY_ADDRESS, else a local "
                        "cluster started for the batch, on 127.0.0.1)")
    b.add_argument("--retries", type=console.non_negative_int, default=1,
                   help="ray: how many times a job whose worker died is retried")
    b.add_argument("--overwrite", action="store_true", help="redo every job, done or not")
    b.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="where the workers keep each job's checkpoint (default: --out); on a "
                        "Ray cluster, a folder every node can reach, so that a job whose "
                        "worker died goes on from its checkpoint when Ray retries it")
    groups["method"].add_argument("--preset", choices=sorted(PRESETS), default=preset_name,
                                  help="named settings that the options below override")
    console.add_config_options(parser, defaults, groups=groups)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    console.add_checkpoint_options(parser)
    return parser


def jobs_of(args) -> List[jobs_lib.BatchJob]:
    """The batch's jobs from the parsed arguments.

    Raises:
        UsageError: For missing or contradictory inputs, or settings that are not valid.
    """
    if args.height == "auto":
        raise UsageError("--height auto is for a single run; give the batch a height. "
                         "Received: --height auto")
    config = console.config_from_args(args)
    try:
        if args.jobs is not None:
            if args.contents or args.styles:
                raise UsageError("give the jobs as CONTENT... --style STYLE... or as --jobs "
                                 f"FILE.csv, not both. Received: --jobs {args.jobs}")
            return jobs_lib.read_jobs_csv(args.jobs, config)
        if not args.contents or not args.styles:
            raise UsageError("give content images and --style images (files, folders or "
                             "globs), or --jobs FILE.csv")
        contents = jobs_lib.collect(args.contents, "content")
        styles = jobs_lib.collect(args.styles, "style")
        return jobs_lib.pair(contents, styles, config, args.pairs)
    except ValueError as error:
        raise console.as_usage(error) from None


def make_engine(args):
    """The engine the arguments ask for.

    Raises:
        UsageError: If Ray is asked for and not installed, or its cluster cannot be reached.
    """
    from nst_keras.commands import engines

    if args.engine == "local":
        if args.workers or args.ray_address:
            raise UsageError("--workers and --ray-address are for --engine ray. "
                             "Received: --engine local")
        return engines.LocalEngine()
    try:
        return engines.RayEngine(args.ray_address, args.workers, args.retries)
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {engines.RAY_INSTALL}") from None
    except ConnectionError as error:
        raise UsageError(f"cannot reach the Ray cluster: {first_line(error)}. "
                         f"Received: --ray-address {args.ray_address}") from None


class JobsBar:
    """The display of a batch's `BatchProgress`: done, skipped, failed, running, rate and
    ETA (computed by `run_batch`), as a bar on a terminal or lines elsewhere; and, under
    it, the job in flight's `Progress` (`job`, this process's engine)."""

    def __init__(self, quiet: bool, out: str, **display):
        from nst_keras.commands.bars import ProgressBar

        self.bar = None
        self.quiet = quiet
        self.out = out
        self.display = display  # `bars.Bar`'s stream and terminal, for a test.
        self.job = ProgressBar(quiet, 1, nested=True, **display)

    def __call__(self, progress: BatchProgress):
        if self.quiet:
            return
        if self.bar is None:
            from nst_keras.commands.bars import Bar

            ready = progress.skipped + progress.failed
            console.say(self.quiet, f"{progress.total} jobs into "
                                    f"{console.shown_folder(self.out)} on "
                                    f"{progress.engine}"
                        + (f" ({progress.skipped} done already, {progress.failed} cannot run)"
                           if ready else "") + ".")
            self.bar = Bar(self.quiet, progress.total, "job", "jobs", interval=0.0,
                           **self.display)
        for note in progress.notes:
            self.bar.write(f"{PROG}: {progress.last.split(' ')[0]}: {note}")
        if progress.last.endswith(" started"):
            self.job.label = progress.last[:-len(" started")]
            self.job.last_line = None  # Its first line at once.
        self.bar.show(progress.done + progress.skipped + progress.failed,
                      fields={"done": str(progress.done), "skipped": str(progress.skipped),
                              "failed": str(progress.failed),
                              "running": str(progress.running)},
                      rate=progress.rate, eta=progress.eta)

    def close(self):
        self.job.close()
        if self.bar is not None:
            self.bar.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `batch`; returns the exit code (0 all done, 1 some failed, 2 usage, 130/143)."""
    return console.command(PROG, argv, _parse, _work)


def _parse(argv):
    args = console.parse_with_preset(build_parser, argv)
    args.batch_jobs = jobs_of(args)
    console.check_folder(args.out, "--out")  # Its errors name the value as given.
    args.out = os.path.normpath(args.out)  # The paths in messages: `styled/x.png`, not `//`.
    return args


def _work(args, guard) -> int:
    began = time.perf_counter()
    optimised = [job for job in args.batch_jobs if not is_network(job.styles[0])]
    if args.engine == "local" and optimised:
        # Once, before any job: a weights file that cannot be loaded is one line, exit 2.
        # (A network's jobs need no VGG.)
        console.load_model(optimised[0].config)
    from nst_keras.commands.engines import Resuming

    bar = JobsBar(args.quiet, args.out)
    every = args.checkpoint_every
    resuming = None if every == "off" else Resuming(
        os.path.abspath(args.checkpoint_dir or args.out),
        None if every == "auto" else every, args.restart)
    try:
        with guard.stoppable() as token:
            report = run_batch(args.batch_jobs, args.out, engine=lambda: make_engine(args),
                               overwrite=args.overwrite, progress=bar, guard=guard,
                               stop=token, job_progress=bar.job, resuming=resuming)
    except ValueError as error:
        raise console.as_usage(error) from None
    finally:
        bar.close()
    if report.interrupted:
        partial = [e["output"] for e in report.entries if e["status"] == "interrupted"
                   and e.get("output")]
        return guard.stopped(PROG, f"{report.count('done')} jobs done this run, "
                                   f"{report.count('skipped')} skipped, kept in "
                                   f"{console.shown_folder(args.out)}"
                             + (f" (the job in flight as {', '.join(partial)})" if partial
                                else "") + "; a rerun does the rest")
    failed = report.count("failed")
    console.say(args.quiet, f"{report.count('done')} done, {report.count('skipped')} skipped, "
                            f"{failed} failed in {time.perf_counter() - began:.0f} s; "
                            f"{report.summary_path}"
                            + (f", {report.sheet_path}" if report.sheet_path else "") + ".")
    if failed:
        print(f"{PROG}: error: {failed} of {len(report.entries)} jobs failed; see "
              f"{report.summary_path}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
