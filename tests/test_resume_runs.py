"""Exact resume through the front-ends (issue 22): a run stopped at any moment goes on
where it was, bit for bit, when the same command runs again.

The engine's own tests (`test_resume.py`) show the optimisers' state going across a fresh
process exactly; these show the commands keeping it: a real SIGINT, SIGTERM or `kill -9`
to a subprocess and a rerun (in this process, from the checkpoint the subprocess left) give
the image and the loss history of an uninterrupted run (`np.array_equal`), for L-BFGS-B; in
this process (a SIGINT to itself at a chosen
evaluation) for Adam, a two-stage run stopped in its second stage and a tiled run; more
evaluations continue exactly; nothing stale is ever resumed; a batch resumes its job in
flight; a SciPy whose private interface differs falls back to a restart, said in one line.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, make_image, run_main

SEEDED = ["--weights", "none", "--seed", "0", "--height", "48", "--precision", "float32"]


@pytest.fixture
def inputs(tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(make_image(48, 64, 1)).save(content)
    Image.fromarray(make_image(40, 40, 2)).save(style)
    return content, style


def _record(report, stem):
    return json.loads((report / f"{stem}.json").read_text())


def _same(a_png, a_record, b_png, b_record):
    assert np.array_equal(np.asarray(Image.open(a_png)), np.asarray(Image.open(b_png)))
    assert a_record["losses"] == b_record["losses"]
    assert a_record["evaluations"] == b_record["evaluations"]


def _checkpoints(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".checkpoint.npz"))


class _SignalAt:
    """Sends this process SIGINT once the progress reaches `evaluations` (in stage
    `stage`): as Ctrl-C at that moment of a run in a terminal."""

    def __init__(self, evaluations, stage=1):
        self.evaluations, self.stage, self.sent = evaluations, stage, False

    def __call__(self, progress):
        if not self.sent and progress.stage >= self.stage and \
                progress.evaluations >= self.evaluations:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def _stopped_then_rerun(monkeypatch, tmp_path, inputs, args, at, stage=1):
    """(reference, resumed): an uninterrupted run, and one stopped by Ctrl-C at `at`
    evaluations and run again; both with --report."""
    from nst_keras.commands import bars

    content, style = inputs
    ref = run_main(content, style, "-o", tmp_path / "ref.png", "--report", tmp_path, "-q",
                   *SEEDED, *args)
    assert ref.returncode == 0, ref.stderr
    original = bars.ProgressBar.__call__
    signal_at = _SignalAt(at, stage)

    def shown(self, progress):
        original(self, progress)
        signal_at(progress)

    monkeypatch.setattr(bars.ProgressBar, "__call__", shown)
    stopped = run_main(content, style, "-o", tmp_path / "out.png", "--report", tmp_path,
                       "-q", *SEEDED, *args)
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    assert stopped.returncode == 130, stopped.stderr
    assert _record(tmp_path, "out")["stopped"] == "interrupted"
    assert len(_checkpoints(tmp_path)) == 1
    again = run_main(content, style, "-o", tmp_path / "out.png", "--report", tmp_path,
                     *SEEDED, *args)
    assert again.returncode == 0, again.stderr
    assert "resuming from evaluation" in again.stderr
    return _record(tmp_path, "ref"), _record(tmp_path, "out")


@pytest.mark.parametrize("args, at, stage", [
    (["--optimizer", "adam", "--max-evals", "24"], 9, 1),
    (["--scales", "2", "--max-evals", "24"], 16, 2),  # Stopped in its second stage.
    (["--tile", "32", "--max-evals", "16"], 7, 1),    # Tiled: 2 x 3 tiles.
], ids=["adam", "two-stages", "tiled"])
def test_a_stopped_run_resumes_bit_for_bit(monkeypatch, tmp_path, inputs, args, at, stage):
    reference, resumed = _stopped_then_rerun(monkeypatch, tmp_path, inputs, args, at, stage)
    _same(tmp_path / "ref.png", reference, tmp_path / "out.png", resumed)
    assert resumed["resumed_from"] >= at and reference["resumed_from"] == 0
    assert [s["stage"] for s in resumed["stages"]] == [s["stage"] for s in reference["stages"]]
    assert _checkpoints(tmp_path) == []  # A finished run leaves none.


def test_more_evaluations_continue_exactly(monkeypatch, tmp_path, inputs):
    from nst_keras.commands import bars

    content, style = inputs
    ref = run_main(content, style, "-o", tmp_path / "ref.png", "--report", tmp_path, "-q",
                   *SEEDED, "--max-evals", "36")
    assert ref.returncode == 0, ref.stderr
    original = bars.ProgressBar.__call__
    signal_at = _SignalAt(14)
    monkeypatch.setattr(bars.ProgressBar, "__call__",
                        lambda self, p: (original(self, p), signal_at(p)))
    assert run_main(content, style, "-o", tmp_path / "out.png", "-q", *SEEDED,
                    "--max-evals", "24").returncode == 130
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    # The budget is not part of the checkpoint's key: asking for more goes on exactly.
    again = run_main(content, style, "-o", tmp_path / "out.png", "--report", tmp_path, "-q",
                     *SEEDED, "--max-evals", "36")
    assert again.returncode == 0, again.stderr
    _same(tmp_path / "ref.png", _record(tmp_path, "ref"), tmp_path / "out.png",
          _record(tmp_path, "out"))


def test_nothing_stale_is_resumed_and_restart_starts_from_zero(monkeypatch, tmp_path, inputs):
    from nst_keras.commands import bars

    content, style = inputs
    original = bars.ProgressBar.__call__

    def stop_once(evaluations):
        signal_at = _SignalAt(evaluations)
        monkeypatch.setattr(bars.ProgressBar, "__call__",
                            lambda self, p: (original(self, p), signal_at(p)))

    stop_once(6)
    assert run_main(content, style, "-o", tmp_path / "out.png", "-q", *SEEDED,
                    "--max-evals", "20").returncode == 130
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    first = _checkpoints(tmp_path)
    assert len(first) == 1
    # One pixel of the style changed (same path): another key; the stale checkpoint is
    # removed, unused.
    pixels = make_image(40, 40, 2)
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(style)
    stop_once(6)
    done = run_main(content, style, "-o", tmp_path / "out.png", *SEEDED, "--max-evals", "20")
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    assert done.returncode == 130 and "resuming" not in done.stderr
    second = _checkpoints(tmp_path)
    assert len(second) == 1 and second != first
    # Another optimisation setting: another key too.
    done = run_main(content, style, "-o", tmp_path / "out.png", *SEEDED, "--max-evals", "20",
                    "--tv-weight", "2")
    assert done.returncode == 0 and "resuming" not in done.stderr
    assert _checkpoints(tmp_path) == []  # Finished: none left, the stale one removed.
    stop_once(6)
    assert run_main(content, style, "-o", tmp_path / "out.png", "-q", *SEEDED,
                    "--max-evals", "20").returncode == 130
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    done = run_main(content, style, "-o", tmp_path / "out.png", *SEEDED, "--max-evals", "20",
                    "--restart", "--report", tmp_path)
    assert done.returncode == 0 and "--restart: the checkpoint" in done.stderr
    assert _record(tmp_path, "out")["resumed_from"] == 0 and _checkpoints(tmp_path) == []
    # Off: none written, none read.
    stop_once(6)
    assert run_main(content, style, "-o", tmp_path / "out.png", "-q", *SEEDED,
                    "--max-evals", "20", "--checkpoint-every", "off").returncode == 130
    monkeypatch.setattr(bars.ProgressBar, "__call__", original)
    assert _checkpoints(tmp_path) == []


def test_a_scipy_with_another_interface_restarts_and_says_so_in_one_line(
        monkeypatch, tmp_path, inputs):
    from nst_keras.engine import lbfgsb

    content, style = inputs
    # As at import on a SciPy whose `setulb` states another signature.
    monkeypatch.setattr(lbfgsb, "FALLBACK_NOTICE", lbfgsb.check_interface(
        setulb=lambda *args: None, version="1.14.1"))
    monkeypatch.setattr(lbfgsb, "EXACT", False)
    done = run_main(content, style, "-o", tmp_path / "out.png", *SEEDED, "--max-evals", "8")
    assert done.returncode == 0, done.stderr
    notices = [line for line in done.stderr.splitlines() if lbfgsb.FALLBACK_NOTICE in line]
    assert len(notices) == 1 and done.stderr.splitlines()[-1].startswith("Wrote")


def test_a_full_disk_at_checkpoint_time_turns_checkpoints_off_once(monkeypatch, tmp_path,
                                                                    inputs):
    import errno

    from nst_keras import checkpoint

    def full(path, ckpt):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_checkpoint", full)
    content, style = inputs
    done = run_main(content, style, "-o", tmp_path / "out.png", *SEEDED, "--max-evals", "12",
                    "--checkpoint-every", "0.01s")
    assert done.returncode == 0, done.stderr
    off = [line for line in done.stderr.splitlines() if "checkpoints are off" in line]
    assert len(off) == 1 and "no space left on device" in off[0] and "goes on" in off[0]


# --- Real signals and kill -9 to a subprocess ------------------------------------------------


def _start(args, cwd):
    process = subprocess.Popen([sys.executable, "-m", "nst_keras", *map(str, args)], cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return process


def _wait_for_checkpoint(folder, process, after=0.0, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        found = [p for p in folder.iterdir() if p.name.endswith(".checkpoint.npz")]
        if found and os.path.getmtime(found[0]) > after:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no checkpoint was written")


@pytest.mark.slow
def test_sigint_sigterm_and_kill_9_resume_bit_for_bit(tmp_path, inputs):
    content, style = inputs
    args = [content, style, *SEEDED, "--max-evals", "40", "--checkpoint-every", "0.3s", "-q"]
    # The reference and the reruns run in this process (no TensorFlow start per run): what
    # goes across is the checkpoint the killed process left on disk, as for a user's rerun.
    ref = run_main(*args, "-o", tmp_path / "ref.png", "--report", tmp_path)
    assert ref.returncode == 0, ref.stderr
    reference = _record(tmp_path, "ref")
    for how, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        folder = tmp_path / how.name
        folder.mkdir()
        process = _start([*args, "-o", folder / "out.png"], tmp_path)
        first = _wait_for_checkpoint(folder, process)
        # kill -9 right after a checkpoint (a newer one than the first); a signal anywhere.
        _wait_for_checkpoint(folder, process, after=os.path.getmtime(first))
        process.send_signal(how)
        assert process.wait(timeout=120) == code
        again = run_main(*args, "-o", folder / "out.png", "--report", folder)
        assert again.returncode == 0, again.stderr
        resumed = _record(folder, "out")
        assert resumed["resumed_from"] > 0, how
        _same(tmp_path / "ref.png", reference, folder / "out.png", resumed)
        assert _checkpoints(folder) == []


@pytest.mark.slow
def test_a_batch_killed_mid_job_resumes_that_job(tmp_path, inputs):
    content, style = inputs
    out = tmp_path / "out"
    args = ["batch", content, "--style", style, "--out", out, *SEEDED, "--max-evals", "60",
            "--checkpoint-every", "0.5s", "-q"]
    process = _start(args, tmp_path)
    out.mkdir(exist_ok=True)
    first = _wait_for_checkpoint(out, process)
    _wait_for_checkpoint(out, process, after=os.path.getmtime(first))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    again = run_main(*args)  # In this process: the checkpoint on disk is what goes across.
    assert again.returncode == 0, again.stderr
    record = json.loads((out / "c__s.json").read_text())
    # The rerun did fewer evaluations than a fresh job: it went on from the checkpoint.
    assert 0 < record["resumed_from"] < record["evaluations"] == 60
    assert _checkpoints(out) == []
