"""The one delivery: where a finished or stopped run's image, loss plot and record go.

Every front-end hands its `render.Result` (finished, or stopped with its best image) to the
same code. `outputs(result, ...)` turns it into bytes and a record: the image encoded for
its file, the loss plot as PNG, the run record (`record.run_record`, the same fields for
every front-end, the job key included). `write_outputs(...)` writes them where the
front-end says, always the same way:

* the image first, then the plot, then the record: a record on disk means its image and
  plot are there too (`batch` and `video` resume by the record);
* each file atomically (`images.atomic_write`: a temporary file, fsync, rename), inside
  the caller's critical block (`console.SignalGuard.critical`), so a signal waits for the
  set to be written whole;
* a disk that is full (or a folder that is gone or read-only) at that moment does not lose
  the run: the files go to a new folder in the temporary directory instead, and
  `Delivered.fallback` says why. If that fails too, `DeliveryError` names both places and
  both reasons; nothing half-written is left anywhere.

Where things go differs by front-end, and only that: a file and a `--report` folder (the
CLI, `figure`), bytes that a Ray worker sends back and the driver writes (`batch`), a frame
folder with one JSON line per frame (`video`, `FrameLog`), a run folder that the page
offers for download (the app).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from nst_keras import record as record_lib
from nst_keras.media import images


class DeliveryError(OSError):
    """Nothing could be written: neither where asked nor in the temporary folder."""


@dataclasses.dataclass(frozen=True)
class Outputs:
    """A run's deliverables, ready to be written anywhere or sent to another process.

    Attributes:
        image: The image file's bytes (its format from the output's extension).
        plot: The loss plot as PNG bytes, or None.
        record: The run record (`record.run_record`); its `output` is set when written.
    """

    image: bytes = dataclasses.field(repr=False)
    plot: Optional[bytes] = dataclasses.field(repr=False)
    record: dict = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Delivered:
    """Where a delivery put things.

    Attributes:
        image: The image's path.
        plot: The loss plot's path, or None.
        record: The record's path, or None.
        fallback: Why the files are in the temporary folder instead of where they were
            asked for (the first line of the error), or None when they are where asked.
    """

    image: str
    plot: Optional[str] = None
    record: Optional[str] = None
    fallback: Optional[str] = None


def encode_image(rgb, path_or_format: str = "png", bit_depth: int = 8) -> bytes:
    """An RGB image (uint8, or float in 0-255) as the bytes of an image file: the format from
    an extension or a name, 8 or 16 bits, with the sRGB profile (`images.encode_image`).

    Args:
        rgb: (H, W, 3) uint8 or float.
        path_or_format: A file name (`out.jpg`) or a format name (`png`).
        bit_depth: 8, or 16 for PNG and TIFF.
    """
    name = path_or_format if "." in path_or_format else f"x.{path_or_format}"
    return images.encode_image(rgb, images.image_format_for(name), bit_depth)


def outputs(result, *, output: str = "stylized.png", key: Optional[str] = None,
            inputs: Optional[dict] = None, argv: Optional[Sequence[str]] = None,
            extra: Optional[dict] = None, plot: bool = True, bit_depth: int = 8) -> Outputs:
    """A `render.Result` as the bytes and record every delivery writes.

    Args:
        result: The run's result (finished or stopped).
        output: The image's file name (its extension picks the format; the record says it).
        key: The job key (`plan.Job.key`).
        inputs: Where the inputs came from (`plan.Job.sources`).
        argv: The command line, if any.
        extra: Keys put first in the record (a figure panel's place, a batch job's name).
        plot: Draw the loss plot (a video's frames share one plot for the clip instead).
        bit_depth: 8, or 16 (PNG, TIFF) from the full-precision `Result.pixels`.

    Returns:
        `Outputs`.
    """
    data = record_lib.run_record(result, argv=argv, inputs=inputs, output=output, extra=extra,
                                 key=key)
    pixels = result.image if getattr(result, "pixels", None) is None else result.pixels
    # A network's pass has no losses to plot.
    return Outputs(encode_image(pixels, output, bit_depth),
                   record_lib.loss_plot_png(result) if plot and result.losses else None, data)


def json_bytes(data) -> bytes:
    """JSON as every record is written: indented, UTF-8, a final newline."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Writes bytes to `path` atomically, creating its folder if missing."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with images.atomic_write(path) as f:
        f.write(data)


def write_record(path: str, data) -> None:
    """Writes a record (a run's, a batch's, a figure's, a clip's) as indented JSON,
    atomically (see `json_bytes`)."""
    write_bytes(path, json_bytes(data))


def write_report(result, folder: str, *, stem: str = "run", argv=None, inputs=None,
                 output=None, extra=None, key: Optional[str] = None) -> Tuple[str, str]:
    """Writes `STEM-loss.png` then `STEM.json` (the run record) into `folder`, atomically.

    The Python API's way to keep a result's record; the front-ends write the image with
    them (`write_outputs`).

    Returns:
        (json_path, plot_path).
    """
    json_path, plot_path = report_paths(folder, stem)
    write_bytes(plot_path, record_lib.loss_plot_png(result))
    write_record(json_path, record_lib.run_record(result, argv=argv, inputs=inputs,
                                                  output=output, extra=extra, key=key))
    return json_path, plot_path


def report_paths(folder: str, stem: str) -> Tuple[str, str]:
    """(record, plot) paths of a report: `FOLDER/STEM.json`, `FOLDER/STEM-loss.png`."""
    return os.path.join(folder, f"{stem}.json"), os.path.join(folder, f"{stem}-loss.png")


def write_outputs(image_path: str, outs: Outputs, *, report: Optional[str] = None,
                  stem: Optional[str] = None,
                  critical: Optional[Callable] = None) -> Delivered:
    """Writes a run's image, then its plot, then its record: the one way results are written.

    Args:
        image_path: Where the image goes.
        outs: From `outputs`.
        report: The folder of the record and the plot (`STEM.json`, `STEM-loss.png`), or
            None to write the image only.
        stem: Their file stem; the image's when None.
        critical: A context-manager factory the writes happen inside (the signal guard's
            `critical`), or None.

    Returns:
        `Delivered`: where each file is, and why they are in the temporary folder when a
        write failed where asked (a full disk, a missing or read-only folder).

    Raises:
        DeliveryError: If they could be written neither where asked nor in the temporary
            folder; the message names both places and both reasons.
    """
    critical = critical or contextlib.nullcontext
    stem = stem or os.path.splitext(os.path.basename(image_path))[0]
    with critical():
        try:
            return _write_set(image_path, outs, report, stem)
        except OSError as error:
            asked = _reason(error)
        # Where asked failed (and nothing is left there): everything to one new folder.
        try:
            folder = tempfile.mkdtemp(prefix="nst-keras-")
            moved = _write_set(os.path.join(folder, os.path.basename(image_path)), outs,
                               folder if report is not None else None, stem)
        except OSError as error:
            raise DeliveryError(
                f"cannot write {image_path} ({asked}), nor in the temporary folder "
                f"{tempfile.gettempdir()} ({_reason(error)}); nothing was kept") from None
        return dataclasses.replace(moved, fallback=asked)


def _write_set(image_path: str, outs: Outputs, report: Optional[str], stem: str) -> Delivered:
    """Writes the set in order; on an error removes what this call wrote, then re-raises."""
    written: List[str] = []
    try:
        write_bytes(image_path, outs.image)
        written.append(image_path)
        record_path = plot_path = None
        if report is not None:
            record_path, plot_path = report_paths(report, stem)
            if outs.plot is not None:
                write_bytes(plot_path, outs.plot)
                written.append(plot_path)
            else:
                plot_path = None
            write_record(record_path, dict(outs.record, output=image_path))
            written.append(record_path)
        return Delivered(image_path, plot_path, record_path)
    except OSError:
        for path in written:  # A set is whole or absent: no image without its record.
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def done_already(image_path: str, record_path: str, key: str) -> bool:
    """Whether a finished result is on disk for this job key: its image, and a record (written
    last) whose `job_key` is `key` (the settings and the inputs' bytes, `keys.job_key`) and
    that no stop cut short. The one way every front-end asks "is this done already?"."""
    if not key or not os.path.isfile(image_path):
        return False
    try:
        with open(record_path, encoding="utf-8") as f:
            data = json.load(f)
        return data.get("job_key") == key and not data.get("stopped")
    except (OSError, ValueError, AttributeError):
        return False


def write_image(path: str, rgb, critical: Optional[Callable] = None) -> None:
    """Writes one image (a `--save-every` snapshot, a figure's grid) atomically."""
    with (critical or contextlib.nullcontext)():
        write_bytes(path, encode_image(rgb, path))


def _reason(error: BaseException) -> str:
    """An OSError in a few words: `no space left on device`, else its first line."""
    from nst_keras.errors import first_line

    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return first_line(error) or type(error).__name__


# ----------------------------------------------------------------------------- video frames


class FrameLog:
    """A video's frames folder: one PNG per frame and one JSON line per frame.

    `frames.jsonl` starts with a header line (the run's key and settings) and gets one
    line per finished frame, appended and flushed (and fsynced) after the frame's image is
    on disk: O(1) bytes per frame however long the clip. A torn last line (a crash while
    writing it) is ignored when the folder is read back. Folders written before this
    format (`video.json`) are read too.

    Args:
        folder: The frames folder.
        frame_name: The frame files' name pattern (`frame_{:06d}.png`).
    """

    LOG_NAME = "frames.jsonl"
    LEGACY_NAME = "video.json"

    def __init__(self, folder: str, frame_name: str):
        self.folder = folder
        self.frame_name = frame_name

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.LOG_NAME)

    def frame_path(self, number: int) -> str:
        return os.path.join(self.folder, self.frame_name.format(number))

    def read(self) -> Tuple[Optional[dict], List[dict]]:
        """(header, frames): the folder's run header and its finished frames, in a row.

        A frame counts when its line is whole and its image is on disk, frames 1..n.

        Raises:
            ValueError: If the log's header cannot be read.
        """
        header, frames = None, []
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            parsed = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    parsed.append(json.loads(line))
                except ValueError:
                    break  # A torn line: everything from it on is unfinished.
            if not parsed or parsed[0].get("kind") != "video":
                raise ValueError(f"cannot read the frames log {self.path}")
            header, frames = parsed[0], parsed[1:]
        elif os.path.isfile(os.path.join(self.folder, self.LEGACY_NAME)):
            with open(os.path.join(self.folder, self.LEGACY_NAME), encoding="utf-8") as f:
                legacy = json.load(f)
            frames = legacy.pop("frames", [])
            header = legacy
        finished = []
        for entry in frames:
            if (entry.get("number") != len(finished) + 1
                    or not os.path.isfile(self.frame_path(len(finished) + 1))):
                break
            finished.append(entry)
        return header, finished

    def start(self, header: dict, frames: Sequence[dict] = ()) -> None:
        """Writes a new log: the header and the frames kept (atomically)."""
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n"
                       for line in [header, *frames]).encode("utf-8")
        write_bytes(self.path, data)
        legacy = os.path.join(self.folder, self.LEGACY_NAME)
        if os.path.isfile(legacy):  # The old format's record, now carried by the log.
            os.unlink(legacy)

    def append(self, number: int, rgb, entry: dict,
               critical: Optional[Callable] = None) -> None:
        """Writes frame `number`'s image (atomically), then appends its line, flushed."""
        with (critical or contextlib.nullcontext)():
            write_bytes(self.frame_path(number), encode_image(rgb, self.frame_name))
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def frames(self) -> Iterator[str]:
        """The finished frames' image paths, 1..n in a row."""
        number = 1
        while os.path.isfile(self.frame_path(number)):
            yield self.frame_path(number)
            number += 1


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_path(folder: str, stem: str, key: str) -> str:
    """Where a job's checkpoint lives: `FOLDER/STEM.KEY16.checkpoint.npz`, next to its output
    and named by its resume key (`plan.Job.resume_key`), so that another job's, or the same
    output's with other inputs or settings, is never taken for it."""
    return os.path.join(folder, f"{stem}.{key[:16]}.checkpoint.npz")


def checkpoint_needs(job) -> int:
    """The bytes one checkpoint of `job` takes at its final size (`checkpoint_bytes`)."""
    from nst_keras import checkpoint as checkpoint_lib

    config = job.config
    height, width = job.size
    return checkpoint_lib.checkpoint_bytes(
        (1, height, width, 3), "lbfgsb" if config.optimizer == "lbfgs" else "keras",
        memory=config.lbfgs_memory, optimizer=config.optimizer)


def stale_checkpoints(path: str) -> List[str]:
    """The checkpoints of the same output stem as `path` (`checkpoint_path`) under another
    key: another job's inputs or settings, which `CheckpointFile` removes."""
    import re

    folder, name = os.path.split(os.path.abspath(path))
    stem = name[:-len(".checkpoint.npz")].rsplit(".", 1)[0]
    pattern = re.compile(re.escape(stem) + r"\.[0-9a-f]{16}\.checkpoint\.npz")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, other) for other in sorted(os.listdir(folder))
            if other != name and pattern.fullmatch(other)]


def unresumable(config) -> Optional[str]:
    """Why no checkpoint of a run with these settings could be resumed, or None."""
    if config.weights is None and config.seed is None:
        # Random weights drawn anew in every process: no other process could go on exactly.
        return "random weights without --seed differ in every process"
    if getattr(config, "ema", None):
        return "an --ema run's average is not kept in a checkpoint"
    return None


class CheckpointFile:
    """One job's checkpoint on disk: what a rerun resumes from, when to write, when to go.

    Given to `render.render(checkpoints=...)`: its `resume` is the checkpoint found (None
    when there is none, when `restart`, or when it cannot be read), and `at_boundary` writes
    one when the policy says (`checkpoint.CheckpointPolicy`: at most every `every` seconds,
    and at least 50 x the last write's time apart, so writing costs <= 2 % of the run), and
    always when the run is stopping (the stop token is set: the last boundary). A finished
    run calls `remove`. Checkpoints of the same output stem with another key (stale: other
    inputs or settings) are removed when a run starts.

    Writing never stops the run: a full disk or a missing folder turns checkpoints off, said
    once through `note`. Before the run, checkpoints are off when the folder's disk cannot
    hold two of them (an atomic write keeps the old file until the new one is whole).

    Args:
        path: The checkpoint file (`checkpoint_path`).
        needed: The bytes one checkpoint takes (`checkpoint.checkpoint_bytes`).
        every: The least seconds between two writes; None for the adaptive rule alone (the
            first write after 10 s).
        enabled: False: no checkpoint is read or written.
        restart: Ignore (and remove) the checkpoint found: start from zero.
        note: Called with each one-line message for the user (resumed from where, off and
            why), or None.

    Attributes:
        resume: The `checkpoint.Checkpoint` to go on from, or None.
        off: Why checkpoints are off, or None.
        notes: Every message given to `note`, in order.
    """

    def __init__(self, path: str, *, needed: int = 0, every: Optional[float] = None,
                 enabled: bool = True, restart: bool = False,
                 note: Optional[Callable[[str], None]] = None):
        from nst_keras import checkpoint as checkpoint_lib

        self.path = path
        self.policy = checkpoint_lib.CheckpointPolicy(
            every=every or 0.0, first=10.0 if every is None else every)
        self.resume = None
        self.off: Optional[str] = None if enabled else "off"
        self.notes: List[str] = []
        self._note = note
        if not enabled:
            return
        self._remove_stale()
        if os.path.isfile(path) and restart:
            self.remove()
            self._say(f"--restart: the checkpoint {path} was removed; starting from zero")
        elif os.path.isfile(path):
            try:
                self.resume = checkpoint_lib.load_checkpoint(path)
            except (OSError, ValueError) as error:
                self._say(f"the checkpoint {path} cannot be read ({_reason(error)}); "
                          "starting from zero")
            else:
                age = time.time() - os.path.getmtime(path)
                self._say(f"resuming from {self.resume.describe()} of the checkpoint "
                          f"{path}, written {_age(age)} ago")
        folder = os.path.dirname(os.path.abspath(path))
        existing = folder
        while not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        free = shutil.disk_usage(existing).free
        own = os.path.getsize(path) if os.path.isfile(path) else 0
        if needed and free + own < 2 * needed:
            self.off = (f"checkpoints are off: one takes about {needed / 1e9:.2g} GB and "
                        f"writing it safely needs twice that, but {existing} has "
                        f"{free / 1e9:.2g} GB free")
            self._say(self.off)

    def _say(self, message: str) -> None:
        self.notes.append(message)
        if self._note is not None:
            self._note(message)

    def _remove_stale(self) -> None:
        """Removes this stem's checkpoints of other keys: other inputs or settings."""
        for other in stale_checkpoints(self.path):
            with contextlib.suppress(OSError):
                os.unlink(other)

    def at_boundary(self, make: Callable[[], object], stopping: bool) -> None:
        """Writes `make()` when due (or `stopping`); turns checkpoints off if it cannot."""
        from nst_keras import checkpoint as checkpoint_lib

        if self.off is not None or not (stopping or self.policy.due()):
            return
        began = time.perf_counter()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            checkpoint_lib.save_checkpoint(self.path, make())
        except OSError as error:
            self.off = (f"checkpoints are off from now on: cannot write {self.path} "
                        f"({_reason(error)}); the run goes on")
            self._say(self.off)
            return
        self.policy.wrote(time.perf_counter() - began)

    def remove(self) -> None:
        """Deletes the checkpoint (a finished run, a failed one, `--restart`)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
