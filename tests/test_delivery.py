"""One stop token, one progress stream, one delivery, one preamble (issue 21).

The stop token ends a run at an evaluation boundary (between two tiles of a tiled one)
with its best image, and nothing is raised; every front-end's result goes through the
same delivery (image, plot, record, atomically; the temporary folder when the disk is
full); a video's frames log is JSON Lines; "done already" is the job key everywhere; the
command modules call these pieces instead of saving, hashing, handling signals or drawing
bars themselves. The real-signal cases run a subprocess, as a user's terminal would.
"""

import ast
import errno
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, make_image, run_main

from nst_keras import delivery, keys, plan, render
from nst_keras.engine import control, solvers, tiling
from nst_keras.config import StyleConfig
from nst_keras.engine.objective import Term

TINY = dict(weights=None, height=48, max_evals=12, seed=0)
FAST = ["--weights", "none", "--height", "48", "--seed", "0"]
COMMANDS = ("cli", "figures", "batch", "video", "app")


class Bowl:
    """A quartic bowl centred on 10 (preprocessed space), with numpy gradients: flat near its
    minimum, so that L-BFGS needs many iterations (a quadratic takes it two)."""

    terms = (Term("tv", "tv", None, 1.0),)

    def __call__(self, x):
        import tensorflow as tf

        d = np.asarray(x, np.float64) - 10.0 - np.arange(48).reshape(1, 4, 4, 3) / 8
        loss = float(np.sum(d ** 4))
        return loss, tf.constant(4 * d ** 3, tf.float32), {"tv": loss}


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_the_stop_token_ends_a_run_at_an_evaluation_with_its_best_image(method):
    token = control.StopToken()
    seen = []

    def callback(progress):
        seen.append(progress)
        if progress.iteration == 3:
            token.request("interrupted")

    monitor = solvers.Monitor(Bowl(), Bowl.terms, (1, 4, 4, 3), 100, callback, stop=token,
                              divergence=None if method == "lbfgs" else solvers.DivergenceRule())
    x0 = np.zeros((1, 4, 4, 3), np.float32)
    if method == "lbfgs":
        outcome = solvers.lbfgs(monitor, x0, iterations=100)
    else:
        outcome = solvers.gradient_descent(monitor, x0, optimizer=solvers.keras_optimizer(
            "adam", 1.0), iterations=100)
    # Ended at the first evaluation after the request: nothing raised, the best kept.
    assert outcome.stopped == "interrupted" and outcome.stop_reason == "stopped (interrupted)"
    assert outcome.evaluations == seen[2].evaluations
    assert outcome.best.loss == min(outcome.losses) < outcome.losses[0]
    # The progress stream carries the pace, computed once: evaluations / seconds.
    last = seen[-1]
    assert last.max_evals == 100 and last.rate == pytest.approx(
        last.evaluations / last.seconds, rel=1e-6)
    assert last.eta == pytest.approx((100 - last.evaluations) / last.rate, rel=1e-6)


@pytest.mark.parametrize("terminal", [True, False])
def test_the_batch_bar_shows_the_job_in_flight(terminal, capsys):
    from nst_keras.commands.batch import BatchProgress, JobsBar

    stream = io.StringIO()
    bar = JobsBar(False, "out", stream=stream, terminal=terminal)
    bar(BatchProgress(3, 0, 0, 0, 0, "", "local"))
    bar(BatchProgress(3, 0, 0, 0, 1, "a started", "local"))
    shown = stream.getvalue()
    bar(BatchProgress(3, 1, 0, 0, 0, "a done", "local", rate=0.5, eta=4.0))
    bar.close()
    if terminal:  # The bar is redrawn when only the running count changes.
        assert "running=1" in shown and "\n" not in shown.strip("\n")
    else:  # A line per event, with the pace the batch computed.
        lines = stream.getvalue().splitlines()
        assert "running 1" in lines[1] and lines[2].endswith("rate 0.5 job/s, ETA 4 s")
        assert "\x1b[" not in stream.getvalue()


def test_pace_is_rate_and_time_left():
    assert control.pace(0, 10, 5.0) == control.Pace(0.0, None)
    speed = control.pace(4, 10, 2.0)
    assert speed.rate == 2.0 and speed.eta == 3.0


@pytest.fixture
def job(tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(make_image(48, 64, 1)).save(content)
    Image.fromarray(make_image(40, 40, 2)).save(style)
    return plan.plan(str(content), str(style), config=StyleConfig(**TINY))


def test_a_stopped_render_returns_its_best_image_at_the_final_size(job):
    two = plan.plan(job.content, list(job.styles), config=job.config.replace(
        scales=2, max_evals=16))
    token = control.StopToken()

    def callback(progress):
        if progress.stage == 2:
            token.request("terminated")

    result = render.render(two, callback, stop=token)
    assert result.stopped == "terminated" and result.image.shape == (48, 64, 3)
    assert [s["stage"] for s in result.stages] == [1, 2] and result.evaluations < 16
    # Set before the first evaluation: nothing to return, said so.
    with pytest.raises(render.Interrupted) as caught:
        render.render(job, stop=token)
    assert caught.value.best_image is None


def test_a_stop_during_a_tiled_evaluation_returns_within_one_tile(job):
    from nst_keras.engine import objective as objective_lib

    config = job.config.replace(height=96)
    content = np.asarray(Image.fromarray(make_image(96, 128, 3)))
    terms = objective_lib.make_terms(config)
    model = render.load_model(config)
    tiled = tiling.build_tiled_objective(model, terms, content, list(job.styles), config,
                                         core=48)
    assert tiled.tiles.count >= 4
    x = np.random.default_rng(0).normal(0, 20, (1, 96, 128, 3)).astype(np.float32)
    tiled(x)  # Traced once per tile shape, before anything is timed.

    class TimedToken(control.StopToken):
        """Asks for the stop as the second tile starts; counts the tiles after that."""

        def __init__(self):
            super().__init__()
            self.checks, self.times = 0, []

        def check(self):
            self.times.append(time.perf_counter())
            self.checks += 1
            if self.checks == 2:
                self.request("interrupted")
                self.asked = time.perf_counter()
            super().check()

    token = TimedToken()
    began = time.perf_counter()
    with pytest.raises(control.StopRequested):
        import dataclasses

        dataclasses.replace(tiled, stop=token)(x)
    ended = time.perf_counter()
    # The stop was seen at the very next tile boundary: one tile ran, no other started.
    assert token.checks == 2
    one_tile = token.times[1] - token.times[0]
    assert ended - token.asked <= max(0.5 * one_tile, 0.05)
    assert ended - began < 2.5 * one_tile + 0.5


def test_every_record_has_the_same_fields_finished_or_stopped(job, tmp_path):
    token = control.StopToken()
    stopped = render.render(job, lambda p: token.request("interrupted"), stop=token)
    finished = render.render(job)
    records = []
    for name, result in (("a", stopped), ("b", finished)):
        outs = delivery.outputs(result, output=f"{name}.png", key=job.key, inputs=job.sources)
        done = delivery.write_outputs(str(tmp_path / f"{name}.png"), outs,
                                      report=str(tmp_path))
        records.append(json.loads(pathlib.Path(done.record).read_text()))
        assert pathlib.Path(done.plot).stat().st_size > 0 and done.fallback is None
    assert set(records[0]) == set(records[1])
    assert records[0]["stopped"] == "interrupted" and records[1]["stopped"] is None
    assert records[0]["job_key"] == records[1]["job_key"] == job.key


def _full_disk(monkeypatch, full):
    """Makes every write under the folders `full` fail as a full disk does."""
    original = delivery.images.atomic_write

    def atomic_write(path, mode="wb"):
        if any(str(path).startswith(str(f)) for f in full):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, mode)

    monkeypatch.setattr(delivery.images, "atomic_write", atomic_write)


def test_a_full_disk_at_save_time_delivers_to_the_temporary_folder(job, tmp_path, monkeypatch):
    content, style = job.sources["content"], job.sources["styles"][0]
    out, report = tmp_path / "out", tmp_path / "report"
    out.mkdir()
    report.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    _full_disk(monkeypatch, [report])  # The image fits, its record does not.
    done = run_main(content, style, "-o", out / "o.png", "--report", report, "-q", *FAST,
                    "--max-evals", "4")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], done.stderr
    moved = [p for p in scratch.rglob("*") if p.is_file()]
    assert sorted(p.name for p in moved) == ["o-loss.png", "o.json", "o.png"]
    assert str(moved[0].parent) in lines[0]
    # Nothing half-written where it was asked: no image without its record, no record.
    assert os.listdir(report) == [] and os.listdir(out) == []
    record = json.loads((moved[0].parent / "o.json").read_text())
    assert record["output"] == str(moved[0].parent / "o.png")
    # Full there too: both places and both reasons in one line, nothing kept.
    _full_disk(monkeypatch, [report, scratch])
    done = run_main(content, style, "-o", out / "o.png", "--report", report, "-q", *FAST,
                    "--max-evals", "4")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.count("no space left on device") == 2 and "nothing was kept" in done.stderr
    assert [p for p in scratch.rglob("*") if p.is_file()] == moved


def test_the_frames_log_appends_a_line_per_frame_and_ignores_a_torn_last_one(tmp_path):
    log = delivery.FrameLog(str(tmp_path), "frame_{:06d}.png")
    log.start({"kind": "video", "job_key": "k"})
    for number in (1, 2, 3):
        log.append(number, np.full((4, 4, 3), number, np.uint8), {"number": number, "loss": 1.0})
    with open(log.path, "a") as f:
        f.write('{"number": 4, "lo')  # A crash while the 4th line was written.
    header, frames = log.read()
    assert header["job_key"] == "k" and [f["number"] for f in frames] == [1, 2, 3]
    # Each frame adds one line, not a rewrite of the whole record.
    lines = pathlib.Path(log.path).read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith('{"kind"')
    # A frame whose image is gone is not finished, nor any after it.
    os.unlink(log.frame_path(2))
    assert [f["number"] for f in log.read()[1]] == [1]


def test_a_folder_of_the_older_format_is_read(tmp_path):
    legacy = {"record_version": 1, "kind": "video", "source": "a.mp4",
              "frames": [{"number": 1, "loss": 2.0}, {"number": 2, "loss": 1.0}]}
    (tmp_path / "video.json").write_text(json.dumps(legacy))
    for number in (1, 2):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"frame_{number:06d}.png")
    header, frames = delivery.FrameLog(str(tmp_path), "frame_{:06d}.png").read()
    assert header["source"] == "a.mp4" and [f["number"] for f in frames] == [1, 2]


def test_the_job_key_is_the_settings_and_the_inputs_bytes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(make_image(8, 8, 1)).save(a)
    Image.fromarray(make_image(8, 8, 2)).save(b)
    config = StyleConfig(**TINY)
    key = keys.job_key(config, str(a), [str(b)])
    # The same bytes as bytes, or at another path: the same key.
    assert keys.job_key(config, a.read_bytes(), [b.read_bytes()]) == key
    moved = tmp_path / "moved.png"
    moved.write_bytes(a.read_bytes())
    assert keys.job_key(config, str(moved), [str(b)]) == key
    # Another byte in a style replaced at the same path, or another setting: another key.
    data = bytearray(b.read_bytes())
    data[-20] ^= 1
    b.write_bytes(bytes(data))
    assert keys.job_key(config, str(a), [str(b)]) != key
    assert keys.job_key(config.replace(style_weight=2.0), str(a), [b.read_bytes()]) != \
        keys.job_key(config, str(a), [b.read_bytes()])


def test_a_style_replaced_at_the_same_path_makes_video_redo_its_frames(tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("av")
    from nst_keras.commands import video as video_lib

    frames = tmp_path / "in"
    frames.mkdir()
    for number in range(3):
        Image.fromarray(make_image(24, 32, number)).save(frames / f"f{number}.png")
    style = tmp_path / "style.png"
    Image.fromarray(make_image(24, 24, 7)).save(style)
    config = StyleConfig(weights=None, height=24, seed=0, max_evals=2)
    settings = video_lib.VideoSettings(1.0, 2, 1)
    folder = str(tmp_path / "frames")
    done = list(video_lib.stylize_video(str(frames), str(style), config=config,
                                        settings=settings, frames_dir=folder))
    assert len(done) == 3
    again = video_lib.plan_video(str(frames), str(style), config=config, settings=settings,
                                 frames_dir=folder)
    assert again.finished == 3 and again.note is None
    Image.fromarray(make_image(24, 24, 8)).save(style)  # Same path, other bytes.
    replaced = video_lib.plan_video(str(frames), str(style), config=config, settings=settings,
                                    frames_dir=folder)
    assert replaced.finished == 0 and "other inputs or settings" in replaced.note
    computed = []
    list(video_lib.run_frames(replaced, on_frame_start=lambda n, e: computed.append(n)))
    assert computed == [1, 2, 3]


def _command_module_calls(module: str):
    import importlib

    source = pathlib.Path(importlib.import_module(f"nst_keras.commands.{module}").__file__)
    tree = ast.parse(source.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                names.add(f"{func.value.id}.{func.attr}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.name for alias in node.names)
            if isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            names.add(f"raise {getattr(exc, 'id', getattr(exc, 'attr', ''))}")
    return names


@pytest.mark.parametrize("module", COMMANDS)
def test_command_modules_save_hash_draw_and_handle_signals_only_through_the_kit(module):
    calls = _command_module_calls(module)
    forbidden = {"save_image", "atomic_write", "write_json", "tqdm", "signal.signal",
                 "hashlib", "raise KeyboardInterrupt", "run_guarded"}
    assert not calls & forbidden, calls & forbidden


def test_raise_keyboard_interrupt_only_in_the_signal_guard():
    raising = []
    for path in sorted((ROOT / "nst_keras").rglob("*.py")):
        if "raise KeyboardInterrupt" in path.read_text():
            raising.append(path.name)
    assert raising == ["guard.py"]


def _start(args, cwd):
    process = subprocess.Popen([sys.executable, "-m", "nst_keras", *map(str, args)], cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seen = bytearray()

    def read():
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return process, seen, reader


def _signal_when(process, seen, marker, signum, timeout=240):
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert process.poll() is None, bytes(seen).decode(errors="replace")
        assert time.monotonic() < deadline, bytes(seen).decode(errors="replace")
        time.sleep(0.05)
    process.send_signal(signum)


@pytest.mark.slow
def test_sigterm_on_figure_batch_and_video_delivers_the_best_image(tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("av")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(make_image(48, 64, 1)).save(images / "c.png")
    Image.fromarray(make_image(40, 40, 2)).save(images / "s.png")
    long = ["--max-evals", "100000", "--iterations", "100000"]

    # figure: the panel in flight is delivered with its record, then the grid so far.
    from nst_keras.commands import figures

    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    for number, name in enumerate(figures.IMAGES):
        Image.fromarray(make_image(40, 44, number)).save(catalogue / name)
    process, seen, reader = _start(["figure", "2", "--images", catalogue, "--out",
                                    tmp_path / "f", "--height", "32", "--weights", "none",
                                    "--model", "vgg16", "--seed", "0", *long], tmp_path)
    _signal_when(process, seen, b"iteration 1", signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    reader.join(timeout=10)
    text = bytes(seen).decode()
    assert "nst-keras figure: terminated; 1 of" in text, text
    summary = json.loads((tmp_path / "f" / "figure2.json").read_text())
    assert summary["status"] == "stopped" and len(summary["records"]) == 1
    panel = json.loads((tmp_path / "f" / summary["records"][0]).read_text())
    assert panel["stopped"] == "terminated" and panel["job_key"] and panel["evaluations"] >= 1

    # batch: the job in flight is delivered as NAME.partial.png with its record.
    process, seen, reader = _start(["batch", images / "c.png", "--style", images / "s.png",
                                    "--out", tmp_path / "b", *FAST, *long], tmp_path)
    _signal_when(process, seen, b"c__s: iteration 1", signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    reader.join(timeout=10)
    text = bytes(seen).decode()
    assert "nst-keras batch: terminated;" in text and "c__s.partial.png" in text, text
    record = json.loads((tmp_path / "b" / "c__s.partial.json").read_text())
    assert record["stopped"] == "terminated" and record["job_key"]
    assert Image.open(tmp_path / "b" / "c__s.partial.png").size == (64, 48)

    # video: finished frames kept, the frame in flight as its partial image.
    clip = tmp_path / "clip"
    clip.mkdir()
    for number in range(3):
        Image.fromarray(make_image(48, 64, number)).save(clip / f"f{number}.png")
    process, seen, reader = _start(["video", clip, images / "s.png", "-o", tmp_path / "v.mp4",
                                    *FAST, "--first-evals", "3", "--frame-evals", "100000",
                                    "--iterations", "100000"], tmp_path)
    _signal_when(process, seen, b"frame 2: iteration 1", signal.SIGINT)
    assert process.wait(timeout=120) == 130
    reader.join(timeout=10)
    text = bytes(seen).decode()
    assert "nst-keras video: interrupted; 1 finished frame(s) kept" in text, text
    assert "frame_000002.partial.png" in text
    # Piped, the progress is plain lines (frames, and the frame in flight): no cursor moves.
    assert "\x1b[" not in text and "\r" not in text
    assert "consistent frames: 1/3 frames" in text and "frame 2: iteration 1" in text
    frames = tmp_path / "v.mp4.frames"
    assert (frames / "frame_000002.partial.png").is_file()
    header, done = delivery.FrameLog(str(frames), "frame_{:06d}.png").read()
    assert [f["number"] for f in done] == [1] and header["job_key"]


def test_video_probes_its_input_once_with_compare(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    pytest.importorskip("av")
    from nst_keras.media import videoio

    clip = tmp_path / "clip"
    clip.mkdir()
    for number in range(2):
        Image.fromarray(make_image(24, 32, number)).save(clip / f"f{number}.png")
    style = tmp_path / "s.png"
    Image.fromarray(make_image(24, 24, 7)).save(style)
    probes, original = [], videoio.probe
    monkeypatch.setattr(videoio, "probe", lambda source: probes.append(source) or original(source))
    done = run_main("video", clip, style, "-o", tmp_path / "o.mp4", "--compare",
                    "--first-evals", "2", "--frame-evals", "1", "-q", "--weights", "none",
                    "--height", "24", "--seed", "0")
    assert done.returncode == 0, done.stderr
    assert probes == [str(clip)]  # Once for both runs and the encoding (it was four times).


def test_no_unused_leftovers_and_one_outcome_name_per_meaning():
    import inspect

    from nst_keras.commands import engines, video as video_lib

    assert "extra_frames" not in inspect.signature(video_lib.plan_video).parameters
    assert list(inspect.signature(video_lib._run).parameters) == ["args", "guard"]
    assert inspect.signature(video_lib._run_one).return_annotation in (None, "None")
    # A solver's outcome and a batch job's outcome are two things with two names.
    assert not hasattr(engines, "Outcome") and engines.JobOutcome is not solvers.Outcome


def test_every_name_the_readme_the_docs_and_the_notebooks_import_still_imports():
    import importlib
    import re

    texts = [(ROOT / "README.md").read_text()]
    texts += [page.read_text("utf-8") for page in sorted((ROOT / "docs").rglob("*.md"))]
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        texts += ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]]
    found = set()
    for text in texts:
        # The API pages' mkdocstrings directives (`::: nst_keras.plan.plan`): a module, or a
        # name in one.
        for path in re.findall(r"^::: (nst_keras[\w.]*)", text, flags=re.M):
            module, _, name = path.rpartition(".")
            try:
                is_module = importlib.util.find_spec(path) is not None
            except ModuleNotFoundError:  # `path`'s parent is a module, not a package.
                is_module = False
            found.add((path, None) if is_module else (module, name))
        imports = re.findall(r"from (nst_keras[\w.]*) import \(([^)]*)\)", text)
        imports += re.findall(r"from (nst_keras[\w.]*) import ([\w, ]+?)\s*(?:#.*)?$", text,
                              flags=re.M)
        for module, names in imports:
            for name in (n.strip() for n in names.replace("\n", " ").split(",")):
                if name:
                    found.add((module, name.split()[0]))
        for module in re.findall(r"^\s*import (nst_keras[\w.]*)", text, flags=re.M):
            found.add((module, None))
    assert len(found) > 20
    for module, name in sorted(found, key=str):
        imported = importlib.import_module(module)
        if name is not None:
            assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), \
                (module, name)
