"""The command line end to end, on generated images, offline."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_keras.commands import cli
from nst_keras.config import StyleConfig

from conftest import run_main

FAST = ["--weights", "none", "--height", "48", "--max-evals", "6", "--seed", "0"]


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "nst_keras", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )


def test_help_documents_every_option_with_its_default():
    done = run_main("--help")
    assert done.returncode == 0
    for option in ("--height", "--content-layers", "--style-layers", "--content-weight",
                   "--style-weight", "--tv-weight", "--normalization", "--init", "--model",
                   "--weights", "--pooling", "--iterations", "--max-evals", "--seed",
                   "--device", "--save-every", "--quiet", "--preset", "--xla"):
        assert option in done.stdout
    assert f"(default: {StyleConfig().max_evals})" in done.stdout


def test_console_script_is_installed():
    script = shutil.which("nst-keras")
    if script is None:
        pytest.skip("the package is not installed (pip install -e .)")
    assert subprocess.run([script, "--help"], capture_output=True).returncode == 0


def test_end_to_end_writes_an_image_of_the_contents_size(image_files, tmp_path):
    content, style = image_files
    out = tmp_path / "result.png"
    done = run_main(content, style, "-o", out, *FAST)
    assert done.returncode == 0, done.stderr
    image = Image.open(out)
    assert image.size == Image.open(content).size and image.mode == "RGB"
    assert "Wrote" in done.stderr


def test_quiet_save_every_and_in_process_main(image_files, tmp_path, capsys):
    content, style = image_files
    out = tmp_path / "result.jpg"
    code = cli.main([str(content), str(style), "-o", str(out), "-q", "--save-every", "2", *FAST])
    assert code == 0
    assert capsys.readouterr().err == ""
    saved = sorted(p.name for p in tmp_path.glob("result-iter*.jpg"))
    assert saved and saved[0] == "result-iter0002.jpg"
    assert Image.open(out).size == (64, 48)


def test_same_seed_gives_the_same_image(image_files, tmp_path):
    content, style = image_files
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        assert cli.main([str(content), str(style), "-o", str(out), "-q", *FAST]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(outs[0])), np.asarray(Image.open(outs[1])))


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "{style}"], "the content image does not exist: missing.png"),
        (["{content}", "{style}", "-o", "out.xyz"], "Received: -o out.xyz"),
        (["{content}", "{style}", "--style-layers", "conv9_1"], "Did you mean"),
        (["{content}", "{style}", "--tv-weight", "-1"], "--tv-weight"),
        (["{content}", "{style}", "--max-evals", "0"], "--max-evals"),
        (["{content}", "{style}", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["{content}", "{style}", "--preset", "nope"], "Received: --preset nope"),
        (["{content}", "{style}", "--weights", "/no/such.h5"], "Received: --weights /no/such.h5"),
        (["{content}", "{style}", "-o", "/no/such/dir/out.png"], "folder does not exist"),
        (["{content}", "{style}", "-o", "{content}"], "overwrite an input"),
        (["{content}"], "give both CONTENT and STYLE"),
    ],
)
def test_usage_errors_exit_2_with_one_line(image_files, args, message, capsys):
    content, style = image_files
    argv = [a.format(content=content, style=style) for a in args] + ["-q"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nst-keras: error:")
    assert message in err


def test_missing_file_in_a_subprocess_has_no_traceback(image_files, tmp_path):
    _, style = image_files
    done = run_cli(tmp_path / "nope.jpg", style, "-o", tmp_path / "o.png")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert not (tmp_path / "o.png").exists()


def test_an_image_too_small_for_the_layers_is_refused(tmp_path):
    Image.new("RGB", (40, 8), (1, 2, 3)).save(tmp_path / "c.png")
    Image.new("RGB", (40, 40), (1, 2, 3)).save(tmp_path / "s.png")
    code = cli.main([str(tmp_path / "c.png"), str(tmp_path / "s.png"), "--height", "8",
                     "-o", str(tmp_path / "o.png"), "--weights", "none", "-q"])
    assert code == 2


def test_unreachable_imagenet_weights_exit_2_with_advice(image_files, tmp_path, monkeypatch, capsys):
    import keras

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- offline")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", no_network)
    content, style = image_files
    code = cli.main([str(content), str(style), "-o", str(tmp_path / "o.png"), "-q",
                     "--height", "48"])
    err = capsys.readouterr().err
    assert code == 2 and "--weights PATH" in err and err.count("\n") == 1


def test_version_help_and_readable_defaults():
    from nst_keras import __version__

    done = run_main("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"nst-keras {__version__}"
    text = run_main("--help").stdout
    assert "nst-keras figure" in text  # The second command is discoverable.
    assert "(default: None)" not in text and "('block" not in text
    assert "(default: block5_conv2)" in text  # A tuple default, comma-joined.
    # Unset style layers and weights are the style loss's own, said in words.
    assert "when not given, the style loss's own" in " ".join(text.split())
    text = run_main("--preset", "crowsonkb", "--help").stdout
    assert "(default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)" in " ".join(text.split())
    assert "--precision" in text and "--bounds" in text and "--tv-edges" in text
    # An option whose help says its default is not given a second one.
    assert "(default: the same as --height)" in " ".join(text.split())
    assert "(default: --height)" not in text


def test_a_quiet_run_prints_nothing_and_a_plain_run_names_its_precision(image_files, tmp_path):
    content, style = image_files
    done = run_cli(content, style, "-o", tmp_path / "q.png", "-q", *FAST)
    assert done.returncode == 0 and done.stderr == ""  # No TensorFlow start-up lines either.
    done = run_cli(content, style, "-o", tmp_path / "p.png", "--precision", "float32", *FAST)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert not [line for line in lines if line.startswith(("I0000", "E0000", "WARNING: All"))]
    assert any(line.startswith("Running lbfgs in float32 on CPU") for line in lines)
    assert "in float32 (" in lines[-1] and lines[-1].startswith("Wrote")
    # Piped, the progress is plain lines after the "Running" line: no bar, no cursor moves.
    running = [i for i, line in enumerate(lines) if line.startswith("Running")]
    progress = [i for i, line in enumerate(lines) if line.startswith("iteration")]
    assert progress and running[0] < progress[0], lines
    assert "\x1b[" not in done.stderr and "\r" not in done.stderr and "%|" not in done.stderr


def test_progress_bar_shows_the_total_loss_first():
    from nst_keras.commands.console import ProgressBar
    from nst_keras.engine.solvers import Progress

    import io

    record = Progress(iteration=1, evaluations=2, loss=9.0, content_loss=1.0, style_loss=3.0,
                      tv_loss=5.0, layer_losses={}, seconds=0.1, image=np.zeros((2, 2, 3)))
    with ProgressBar(quiet=False, total_evals=4, stream=io.StringIO(), terminal=True) as bar:
        bar(record)
        postfix = bar.bar.postfix
    assert postfix.split(", ")[0] == "loss=9" and postfix.index("content") < postfix.index("tv")


def test_device_gpu_without_a_gpu_is_a_usage_error_about_the_device(image_files, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    content, style = image_files
    done = run_main(content, style, "-o", tmp_path / "o.png", "--device", "gpu", *FAST)
    assert done.returncode == 2
    assert done.stderr.strip() == ("nst-keras: error: no GPU is visible to TensorFlow on this "
                                   "machine; use --device cpu or auto. Received: --device gpu")


OFFLINE = """
import sys
import keras
def no_network(*args, **kwargs):
    raise Exception("URL fetch failure on https://upload.wikimedia.org/x: None -- "
                    "[Errno -2] Name or service not known")
keras.utils.get_file = no_network
from nst_keras.commands import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_the_demo_offline_says_what_to_do_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-c", OFFLINE, "-o", str(tmp_path / "o.png"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    # (The driver imports Keras itself, before the CLI can quiet TensorFlow's start-up.)
    ours = [line for line in done.stderr.splitlines() if line.startswith("nst-keras")]
    advice = ("nst-keras: error: cannot download the demo images (no network?); give two local "
              "images instead: nst-keras CONTENT.jpg STYLE.jpg -o OUT.png")
    from nst_keras.engine.features import imagenet_weights_path

    if not os.path.isfile(imagenet_weights_path("vgg19")):
        # Following the advice, the next run would fail on the weights: it says so too.
        advice += (" --weights PATH (the ImageNet weights of vgg19 are not in ~/.keras/models "
                   "either)")
    assert ours == [advice]
    assert "Traceback" not in done.stderr


def test_the_api_offline_raises_a_clear_oserror(monkeypatch):
    import keras

    from nst_keras.media import images

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://x: None -- [Errno -2] no network")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(OSError) as caught:
        images.load_image("https://example.org/a.jpg")
    assert str(caught.value) == "cannot download https://example.org/a.jpg: host example.org: " \
                                "no network"


@pytest.mark.parametrize("command", ["", "figure", "batch", "video", "app", "normalize-vgg"])
def test_every_commands_help_names_itself_once_and_shows_percent_signs_once(command):
    done = run_main(*([command] if command else []), "--help")
    assert done.returncode == 0, done.stderr
    name = f"nst-keras {command}".strip()
    assert done.stdout.startswith(f"usage: {name} [-h]"), done.stdout.splitlines()[0]
    assert "%%" not in done.stdout
    if command in ("", "figure", "batch", "video"):
        assert "(<= 2% of the run)" in " ".join(done.stdout.split())


@pytest.fixture
def no_model_built(monkeypatch):
    from nst_keras.engine import features

    def never(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(features, "build_feature_model", never)


def test_a_dry_run_refuses_imagenet_weights_it_cannot_download_and_builds_nothing(
        image_files, tmp_path, monkeypatch, no_model_built):
    import socket
    import urllib.error
    import urllib.request

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-cache"))
    asked = []

    def offline(request, *args, **kwargs):
        asked.append((request.get_method(), request.full_url))
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    content, style = image_files
    argv = [content, style, "-o", tmp_path / "o.png", "--height", "48", "--weights", "imagenet"]
    done = run_main(*argv, "--dry-run")
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr == ("nst-keras: error: cannot download the ImageNet weights of vgg19 (no "
                           "network?); put vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 in "
                           "~/.keras/models/ or pass --weights PATH\n")
    # Asked, not downloaded: a HEAD request for the file keras.applications would fetch.
    from keras.src.applications import vgg19

    assert asked == [("HEAD", vgg19.WEIGHTS_PATH_NO_TOP)]
    # Reachable: the dry run answers (and still builds and downloads nothing).

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Answer())
    done = run_main(*argv, "--dry-run")
    assert done.returncode == 0 and "Largest height that fits" in done.stdout, done.stderr
    assert not (tmp_path / "empty-cache" / "models").exists()
    assert not (tmp_path / "o.png").exists()


def test_a_dry_run_refuses_a_weights_file_the_run_cannot_load_with_the_runs_words(
        image_files, tmp_path):
    content, style = image_files
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not HDF5")
    argv = [content, style, "-o", tmp_path / "o.png", "--height", "48", "--max-evals", "2",
            "--weights", junk]
    real = run_main(*argv)
    assert real.returncode == 2
    dry = run_main(*argv, "--dry-run")
    assert dry.returncode == 2 and dry.stdout == ""
    assert dry.stderr.splitlines() == real.stderr.splitlines()[-1:]
    assert "cannot load the weights file into vgg19" in dry.stderr
    assert dry.stderr.strip().endswith(f"Received: --weights {junk}")


@pytest.mark.parametrize("output, message", [
    ("{tmp}/no/such/dir/o.png", "the output folder does not exist. Received: -o {tmp}/no/such"
                                "/dir/o.png"),
    ("{tmp}", "the output path is a directory"),
    ("{tmp}/o.xyz", "Received: -o {tmp}/o.xyz"),
    ("{content}", "overwrite an input"),
    ("{tmp}/o.jpg --bit-depth 16", "16 bits per channel need a .png or .tif output"),
])
def test_a_dry_run_checks_the_output_path_as_the_run_does(image_files, tmp_path, output,
                                                          message, no_model_built):
    content, style = image_files
    output, message = (text.format(tmp=tmp_path, content=content) for text in (output, message))
    done = run_main(content, style, "--weights", "none", "--height", "48", "-o",
                    *output.split(), "--dry-run")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_a_dry_run_refuses_an_output_folder_it_cannot_write(image_files, tmp_path, monkeypatch,
                                                             no_model_built):
    from nst_keras.commands import console

    content, style = image_files
    real = str(tmp_path / "out")
    monkeypatch.setattr(console, "folder_is_writable", lambda folder: folder != real)
    os.mkdir(real)
    done = run_main(content, style, "--weights", "none", "--height", "48", "-o",
                    f"{real}/o.png", "--dry-run")
    assert done.returncode == 2
    assert done.stderr == (f"nst-keras: error: the output folder is not writable. Received: "
                           f"-o {real}/o.png\n")
