"""Bad input, interruptions and failures, each through the real CLI: in this process
(`run_main`) where only the exit code and the message matter, in a subprocess where the
process boundary is the point (signals, memory limits, TensorFlow's own output).

Every error case checks the exit code and that the user sees one line naming the file or
value and the problem, with no traceback; the run cases check that the best image so far is
saved, complete, when a run stops early.
"""

import io
import os
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import make_image, run_main

FAST = ["--weights", "none", "--height", "48", "--seed", "0"]


def run_cli(*args, timeout=300, preexec_fn=None):
    return subprocess.run(
        [sys.executable, "-m", "nst_keras", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn,
    )


def assert_one_line_error(done, code, *needles):
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("nst-keras:")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def content_file(tmp_path):
    path = tmp_path / "content.png"
    Image.fromarray(make_image(48, 64)).save(path)
    return path


@pytest.fixture
def style_file(tmp_path):
    path = tmp_path / "style.png"
    Image.fromarray(make_image(40, 40, seed=2)).save(path)
    return path


# --- Inputs -------------------------------------------------------------------------


def _mode_image(mode, rgb):
    """`rgb` converted to a Pillow `mode`, with the file name that keeps that mode."""
    image = Image.fromarray(rgb)
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    if mode == "I;16":
        return Image.fromarray((gray * 257).astype(np.uint16)), "png"
    if mode == "I":
        return Image.fromarray((gray * 257).astype(np.int32)), "tif"
    if mode == "F":
        return Image.fromarray((gray / 255).astype(np.float32)), "tif"
    if mode in ("LA", "RGBA"):
        converted = image.convert(mode)
        alpha = np.full(gray.shape, 255, np.uint8)
        alpha[:, :8] = 0  # A transparent band on the left: composited onto white.
        converted.putalpha(Image.fromarray(alpha))
        return converted, "png"
    return image.convert(mode), ("jpg" if mode == "CMYK" else "png")


@pytest.mark.parametrize(
    "content_mode, style_mode",
    [("1", "I;16"), ("L", "CMYK"), ("LA", "I"), ("P", "F"), ("RGBA", "RGB")],
)
def test_every_pillow_mode_gives_a_result(tmp_path, content_mode, style_mode):
    paths = []
    for role, mode, seed in (("content", content_mode, 1), ("style", style_mode, 2)):
        image, extension = _mode_image(mode, make_image(48, 64, seed))
        path = tmp_path / f"{role}.{extension}"
        image.save(path)
        assert Image.open(path).mode == mode
        paths.append(path)
    out = tmp_path / "out.png"
    done = run_main(*paths, "-o", out, "-q", "--max-evals", "2", *FAST)
    assert done.returncode == 0, done.stderr
    result = Image.open(out)
    assert result.mode == "RGB" and result.size == (64, 48)


def test_exif_orientation_and_animated_first_frame(tmp_path):
    # A 64x48 photo stored sideways (48x64) with EXIF "rotate 90": the result is upright.
    sideways = Image.fromarray(make_image(48, 64, 1)).transpose(Image.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    content = tmp_path / "sideways.jpg"
    sideways.save(content, exif=exif.tobytes())
    frames = [Image.fromarray(make_image(40, 40, s)) for s in (2, 3)]
    style = tmp_path / "animated.gif"
    frames[0].save(style, save_all=True, append_images=frames[1:])
    out = tmp_path / "out.png"
    done = run_main(content, style, "-o", out, "--max-evals", "2", *FAST)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (64, 48)
    warnings = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "2 frames" in warnings[0] and "animated.gif" in warnings[0]


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    Image.fromarray(make_image(64, 64)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _bomb(path):
    # 14000 x 14000 one-bit pixels: a few KB of PNG, beyond twice Pillow's pixel limit.
    Image.new("1", (14000, 14000)).save(path)


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("missing.png", None, "does not exist"),
        ("folder.png", lambda p: p.mkdir(), "Is a directory"),
        ("empty.png", lambda p: p.write_bytes(b""), "it is not an image file; use a JPEG, PNG"),
        ("text.jpg", lambda p: p.write_text("not an image\n"),
         "it is not an image file; use a JPEG, PNG"),
        ("cut.jpg", _truncated_jpeg, "truncated"),
        ("bomb.png", _bomb, "decompression bomb"),
    ],
)
def test_unreadable_inputs_exit_2_naming_the_file(tmp_path, style_file, name, make, problem):
    path = tmp_path / name
    if make:
        make(path)
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    done = run_main(path, style_file, "-o", out, *FAST)
    assert_one_line_error(done, 2, name, problem)
    assert out.read_bytes() == b"previous result"  # Never replaced by a failed run.


def test_an_image_too_small_for_the_layers_says_the_minimum(tmp_path, style_file):
    content = tmp_path / "tiny.png"
    Image.fromarray(make_image(8, 8)).save(content)
    done = run_main(content, style_file, "-o", tmp_path / "o.png", "--weights", "none",
                   "--height", "8")
    assert_one_line_error(done, 2, "content image would be 8 pixels", "at least 16x16",
                          "Received: --height 8")


@pytest.mark.parametrize(
    "option, problem",
    [
        (["--style-weight", "-3"], "--style-weight"),
        (["--content-weight", "nan"], "--content-weight"),
        (["--iterations", "0"], "--iterations"),
        (["--max-evals", "0"], "--max-evals"),
        (["--content-layers", "conv4_9"], "Did you mean"),
        (["--preset", "gatys2016"], "Received: --preset gatys2016"),
        (["--model", "vgg11"], "invalid choice: 'vgg11'"),
        (["-o", "out.tiff2"], "Unknown image extension"),
        (["-o", "/proc/out.png"], "not writable"),
        (["-o", "/no/such/folder/out.png"], "folder does not exist"),
    ],
)
def test_bad_options_exit_2_before_any_model_is_built(tmp_path, style_file, option, problem):
    start = time.perf_counter()
    done = run_main(style_file, style_file.with_name("other.png"), *option)
    assert_one_line_error(done, 2, problem)
    # Nothing heavy ran: TensorFlow alone takes seconds to import.
    assert "Building" not in done.stderr
    assert time.perf_counter() - start < 30


def test_output_same_as_input_is_refused(style_file):
    done = run_main(style_file, style_file, "-o", style_file)
    assert_one_line_error(done, 2, "overwrite an input")


# --- Weights ------------------------------------------------------------------------

def run_failing(monkeypatch, fail_at, kind, *args):
    """The CLI in this process, its network gone (`offline`), or its objective failing from
    the `fail_at`-th call on (the first call is the trace): `nan` or `oom`."""
    import keras
    import tensorflow as tf

    from nst_keras.engine import objective

    if kind == "offline":
        def no_network(*args, **kwargs):
            raise Exception("URL fetch failure on https://storage.googleapis.com/x: None -- "
                            "[Errno -3] Temporary failure in name resolution")

        monkeypatch.setattr(keras.src.utils.file_utils, "get_file", no_network)
    else:
        evaluate, count = objective.Objective.__call__, [0]

        def failing(self, x):
            count[0] += 1
            if count[0] >= fail_at:
                if kind == "nan":
                    loss, grad, values = evaluate(self, x)
                    return tf.constant(float("nan")), grad, values
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")
            return evaluate(self, x)

        monkeypatch.setattr(objective.Objective, "__call__", failing)
    return run_main(*args)


def test_no_network_for_imagenet_weights_says_how_to_pass_a_file(tmp_path, content_file,
                                                                  style_file, monkeypatch):
    done = run_failing(monkeypatch, 0, "offline", content_file, style_file, "-o",
                       tmp_path / "o.png", "--height", "48", "-q")
    assert_one_line_error(done, 2, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                          "--weights PATH")


def test_corrupt_and_wrong_weights_files_exit_2(tmp_path, content_file, style_file):
    import keras

    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(os.urandom(4096))
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    wrong = tmp_path / "dense.weights.h5"
    small.save_weights(wrong)
    for weights in (corrupt, wrong):
        done = run_main(content_file, style_file, "-o", tmp_path / "o.png", "--height", "48",
                       "--weights", weights)
        assert_one_line_error(done, 2, "cannot load the weights file", str(weights))


# --- Failures during a run ------------------------------------------------------------


def test_non_finite_loss_saves_the_best_image_and_exits_1(tmp_path, content_file,
                                                          style_file, monkeypatch):
    out = tmp_path / "out.png"
    done = run_failing(monkeypatch, 8, "nan", content_file, style_file, "-o", out, "--max-evals",
                      "50", "-q", *FAST)
    assert_one_line_error(done, 1, "non-finite", "--style-weight", "saved the best image")
    assert Image.open(out).size == (64, 48)


def test_out_of_memory_during_a_run_keeps_the_best_image(tmp_path, content_file,
                                                         style_file, monkeypatch):
    out = tmp_path / "out.png"
    done = run_failing(monkeypatch, 8, "oom", content_file, style_file, "-o", out, "--max-evals",
                      "50", "-q", *FAST)
    assert_one_line_error(done, 1, "out of memory at 64x48", "--height", "saved the best")
    assert Image.open(out).size == (64, 48)


def test_an_impossible_size_under_a_memory_limit_exits_2_before_any_work(tmp_path, content_file,
                                                                        style_file):
    limit = 12 * 2**30  # TensorFlow itself needs ~2.5 GB of address space.

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = tmp_path / "out.png"
    done = run_cli(content_file, style_file, "-o", out, "--weights", "none", "--height", "6000",
                   "--max-evals", "2", "-q", preexec_fn=cap)
    # Refused by the plan, from the content's header, before any image is resized or any
    # progress bar drawn: a usage error (exit 2), with a height that fits.
    assert_one_line_error(done, 2, "8000x6000", "try --height", "Received: --height 6000")
    assert "%|" not in done.stderr and not out.exists()


def _start(args):
    process = subprocess.Popen(
        [sys.executable, "-m", "nst_keras", *map(str, args)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    seen = bytearray()

    def read():
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return process, seen, reader


def _wait_for(seen, marker, process, timeout=240):
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert process.poll() is None, bytes(seen).decode(errors="replace")
        assert time.monotonic() < deadline, "the run did not reach its first iteration"
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_a_signal_after_the_first_iteration_saves_the_best_image(tmp_path, content_file,
                                                                style_file,
                                                                signum, code, word):
    out = tmp_path / "out.png"
    process, seen, reader = _start([content_file, style_file, "-o", out, "--max-evals", "100000",
                                    "--iterations", "100000", *FAST])
    _wait_for(seen, b"iteration 1", process)
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    reader.join(timeout=10)
    text = bytes(seen).decode(errors="replace")
    assert f"{word}; saved the best image so far to {out}" in text
    assert "Traceback" not in text
    assert Image.open(out).size == (64, 48)


def test_a_second_ctrl_c_exits_at_once(tmp_path, content_file, style_file):
    out = tmp_path / "out.png"
    process, seen, _ = _start([content_file, style_file, "-o", out, "--max-evals", "100000",
                               "--iterations", "100000", *FAST])
    _wait_for(seen, b"iteration 1", process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) in (130, -signal.SIGINT)
    if out.exists():  # Written atomically: complete, or not there at all.
        assert Image.open(out).size == (64, 48)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nst-")]


def test_a_signal_before_the_optimisation_saves_nothing(tmp_path, content_file, style_file):
    out = tmp_path / "out.png"
    process, seen, reader = _start([content_file, style_file, "-o", out, *FAST])
    _wait_for(seen, b"Building", process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    reader.join(timeout=10)
    assert b"nothing saved" in seen and not out.exists()
