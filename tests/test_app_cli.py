"""`nst-keras app` without a browser: its usage errors, the settings a page maps to, the
example gallery. (The browser tests are in test_app.py.)"""

import importlib.util

import pytest

from conftest import run_main
from nst_keras.commands import app
from nst_keras.config import PRESETS, StyleConfig


def test_without_gradio_exits_2_with_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gradio" else real(name, *a))
    done = run_main("app", "--weights", "none")
    assert done.returncode == 2
    assert done.stderr == "nst-keras app: error: the app needs Gradio: " \
                          "pip install 'nst-keras[app]'\n"


#: `app` checks its folders and weights after Gradio (without it, it says how to install it).
needs_gradio = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                  reason="Gradio is not installed: app asks for it first")


@pytest.mark.parametrize("args, message", [
    pytest.param(["--images", "/no/such/folder"], "the --images folder does not exist. "
                 "Received: --images /no/such/folder", marks=needs_gradio),
    pytest.param(["--weights", "/no/such.h5"], "Received: --weights /no/such.h5",
                 marks=needs_gradio),
    (["--port", "0"], "argument --port: expected an integer >= 1, got '0'"),
])
def test_bad_options_exit_2_in_one_line(args, message):
    done = run_main("app", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("nst-keras app: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1


def page_values(**changes):
    values = dict(preset_name="book", height=400, strength=0.0, preserve="off",
                  max_evals=400, seed=None, content_layers="block5_conv2",
                  style_layers=",".join(StyleConfig().resolved().style_layers), pooling="max",
                  optimizer="lbfgs", tv_weight=1e-4)
    values.update(changes)
    return values


def test_the_page_defaults_are_the_command_lines(tmp_path):
    page = app.App(StyleConfig(weights=None, device="cpu"), {}, str(tmp_path))
    # The page shows the layers and weights a run uses: the style loss's own, resolved.
    assert page.config_of(**page_values()) == StyleConfig(weights=None, device="cpu").resolved()
    # A preset's values come into the controls; the page's values then make its config.
    for name in PRESETS:
        height, strength, preserve, evals, content, style, pooling, optimizer, tv = \
            page.on_preset(name)
        config = page.config_of(**page_values(
            preset_name=name, height=height, strength=strength, preserve=preserve,
            max_evals=evals, content_layers=content, style_layers=style, pooling=pooling,
            optimizer=optimizer, tv_weight=tv))
        # The model is the app's, whatever the preset names (gatys2015: the normalised one).
        assert config == PRESETS[name].resolved().replace(
            weights=None, device="cpu", precision=StyleConfig().precision,
            model=page.base.model), name


def test_style_strength_is_a_power_of_ten_of_the_presets_weight(tmp_path):
    page = app.App(StyleConfig(), {}, str(tmp_path))
    assert page.config_of(**page_values(strength=1.0)).style_weight == pytest.approx(10.0)
    assert page.config_of(**page_values(strength=-2.0)).style_weight == pytest.approx(0.01)


def test_a_bad_page_value_is_the_command_lines_message(tmp_path):
    from nst_keras.commands.console import as_usage

    page = app.App(StyleConfig(), {}, str(tmp_path))
    with pytest.raises(ValueError) as raised:
        page.config_of(**page_values(height=0))
    assert str(as_usage(raised.value)) == "--height must be an integer >= 1. Received: --height 0"


def test_examples_are_looked_up_by_name_never_used_as_paths(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    found = app.gallery(str(tmp_path))
    assert found["a.jpg"] == str(tmp_path / "a.jpg") and "notes.txt" not in found
    page = app.App(StyleConfig(), found, str(tmp_path))
    assert page.inputs_of(None, "a.jpg", [b"style"], None) == (found["a.jpg"], [b"style"])
    with pytest.raises(ValueError, match="no such example image"):
        page.inputs_of(None, "/etc/passwd", [b"style"], None)
    with pytest.raises(ValueError, match="upload a content photo"):
        page.inputs_of(None, "", [b"style"], None)


def pytest_without(module, tests, report, *options):
    """Runs pytest on `tests` in a subprocess where `module` cannot be imported
    (`sys.modules[module] = None`: `import` fails and `find_spec` finds nothing).

    Returns:
        (the finished process, test name -> passed / skipped / failure / error).
    """
    import subprocess
    import sys
    import xml.etree.ElementTree as ElementTree

    from conftest import ROOT

    code = (f"import sys; sys.modules[{module!r}] = None; import pytest; "
            "sys.exit(pytest.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "-p", "no:cacheprovider",
                           f"--junitxml={report}", *options, *tests],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kind = [child.tag for child in case if child.tag in ("skipped", "failure", "error")]
        outcomes[case.get("name")] = kind[0] if kind else "passed"
    return done, outcomes


def test_without_gradio_its_tests_skip_and_the_others_pass(tmp_path):
    done, outcomes = pytest_without("gradio", [
        "tests/test_app_cli.py::test_bad_options_exit_2_in_one_line",
        "tests/test_app_cli.py::test_without_gradio_exits_2_with_the_install_line",
        "tests/test_app.py"], tmp_path / "report.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes == {
        "test_bad_options_exit_2_in_one_line[args0-the --images folder does not exist. "
        "Received: --images /no/such/folder]": "skipped",
        "test_bad_options_exit_2_in_one_line[args1-Received: --weights /no/such.h5]": "skipped",
        "test_bad_options_exit_2_in_one_line[args2-argument --port: expected an integer >= 1, "
        "got '0']": "passed",
        "test_without_gradio_exits_2_with_the_install_line": "passed",
        "tests.test_app": "skipped",  # The whole module: every test there serves the app.
    }, outcomes


@needs_gradio
def test_without_a_browser_the_page_tests_skip_and_the_loopback_check_still_runs(tmp_path):
    # --setup-plan: which tests would run with which fixtures, without serving anything.
    done, outcomes = pytest_without("playwright", ["tests/test_app.py"],
                                    tmp_path / "report.xml", "--setup-plan")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes.pop("test_the_server_listens_on_loopback_only") == "passed"
    assert outcomes == {name: "skipped" for name in (
        "test_run_streams_progress_and_downloads_the_result", "test_stop_keeps_the_best_image",
        "test_a_text_file_as_content_shows_the_message_and_the_next_run_works",
        "test_a_second_page_waits_in_the_queue_then_runs")}
    planned = [line for line in done.stdout.splitlines() if "loopback_only" in line]
    assert len(planned) == 1 and "app" in planned[0] and "browser" not in planned[0]


def png_bytes(rgb):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_picked_photo_and_styles_show_as_pictures(tmp_path):
    import numpy as np
    from PIL import Image

    from conftest import make_image

    photo, style, big = make_image(48, 64, seed=1), make_image(40, 40, seed=2), \
        make_image(600, 900, seed=3)
    Image.fromarray(style).save(tmp_path / "b.png")
    page = app.App(StyleConfig(), app.gallery(str(tmp_path)), str(tmp_path))
    # An upload shows as its pixels (a small one as it is), a large one as a thumbnail.
    assert np.array_equal(page.preview_content(png_bytes(photo), ""), photo)
    assert page.preview_content(png_bytes(big), "").shape == (171, 256, 3)
    assert np.array_equal(page.preview_content(None, "b.png"), style)
    assert page.preview_content(None, "") is None
    shown = page.preview_styles([png_bytes(photo)], ["b.png"])
    assert [name for _, name in shown] == ["upload 1", "b.png"]
    assert np.array_equal(shown[0][0], photo) and np.array_equal(shown[1][0], style)
    # Something that is no image shows nothing (the run says why); no client path is read.
    assert page.preview_content(b"not an image at all\n", "") is None
    assert page.preview_styles([b"not an image"], ["/etc/passwd"]) == []


def test_the_loss_plot_starts_at_evaluation_1_and_has_every_evaluation(tmp_path):
    from conftest import make_image
    from nst_keras import render
    from nst_keras.plan import plan

    curve = []
    job = plan(make_image(48, 64, seed=1), [make_image(40, 40, seed=2)],
               config=StyleConfig(weights=None, height=48, max_evals=12, seed=0))
    result = render.render(job, lambda progress: curve.extend(app.curve_points(progress)))
    # L-BFGS-B's first iteration spends several evaluations; the plot still starts at 1.
    assert curve[0][0] == 1
    assert [e for e, _ in curve] == list(range(1, len(curve) + 1))
    assert [loss for _, loss in curve] == list(result.losses[:len(curve)])
    assert len(curve) >= len(result.losses) - 3  # At most the last line search unreported.


@needs_gradio
def test_stop_then_continue_goes_on_exactly_where_it_stopped(tmp_path):
    import time as time_

    import numpy as np

    from conftest import make_image
    from nst_keras import render
    from nst_keras.plan import plan

    config = StyleConfig(weights=None, height=48, max_evals=120, seed=0, precision="float32")
    job = plan(make_image(48, 64, seed=1), [make_image(40, 40, seed=2)], config=config)
    page = app.App(config, {}, str(tmp_path))
    model = render.load_model(page.model_config(config), job.placement)
    reference = render.render(job, feature_model=model)

    class Request:
        session_hash = "s"

    run = page.start("s", job)
    deadline = time_.monotonic() + 240
    while (run.latest is None or run.latest.evaluations < 8) and time_.monotonic() < deadline:
        time_.sleep(0.02)
    page.stop(Request())
    assert run.result.stopped == "stopped" and run.result.evaluations < 120
    assert run.checkpoints is not None and (tmp_path / run.folder).exists()
    outputs = list(page.continue_run(Request()))
    continued = page.runs["s"]
    assert continued is not run and continued.result.stopped is None
    assert outputs[-1][1].startswith("continuing from evaluation")
    # Bit for bit the uninterrupted run: the same image and every evaluation's loss.
    assert continued.result.losses == reference.losses
    assert np.array_equal(continued.result.image, reference.image)
    assert continued.result.resumed_from == run.result.evaluations
    # Nothing left to continue once it finished.
    again = list(page.continue_run(Request()))
    assert len(again) == 1 and "nothing to continue" in again[0][1]
