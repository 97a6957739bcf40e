"""One planned job, one render path: the plan's checks, the field names in its errors, the
options built from the config's metadata, terms that carry their data, and the new-user
defects of issue 14, each where a test can see it."""

import ast
import dataclasses
import json
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from nst_keras import errors, plan, render
from nst_keras.commands import cli, console, figures
from nst_keras.engine import objective, runtime
from nst_keras.media import images
from nst_keras.config import StyleConfig, option_name
from nst_keras.engine.solvers import Evaluation

from conftest import ROOT, make_image, run_main

TINY = dict(weights=None, height=48, max_evals=6, seed=0)


@pytest.fixture
def files(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(make_image(48, 64, seed=1)).save(content)
    Image.fromarray(make_image(40, 40, seed=2)).save(style)
    return content, style


# --- The plan -----------------------------------------------------------------------


def test_the_plan_is_one_frozen_record_of_everything_a_run_needs(files):
    content, style = files
    job = plan.plan(content, [style, style], config=StyleConfig(**TINY, scales=2),
                    masks=[np.ones((48, 64)), np.zeros((48, 64))])
    assert dataclasses.is_dataclass(job) and job.__dataclass_params__.frozen
    assert job.content.shape == (48, 64, 3) and len(job.styles) == 2
    assert [m.shape for m in job.masks] == [(48, 64), (48, 64)]
    assert [(s.height, s.width, s.max_evals) for s in job.stages] == [(24, 32, 3), (48, 64, 3)]
    assert job.size == (48, 64) and job.blend == (0.5, 0.5)
    assert job.sources["content"] == str(content) and job.sources["styles"] == [str(style)] * 2
    assert job.placement == runtime.placement(job.config)
    assert job.memory["need"] == job.stages[-1].memory["total"] <= job.memory["budget"]


def test_device_and_precision_are_resolved_once_per_run(files, monkeypatch):
    calls = []
    original = runtime.resolve_device
    monkeypatch.setattr(runtime, "resolve_device", lambda d: calls.append(d) or original(d))
    content, style = files
    result = render.render(plan.plan(content, style, config=StyleConfig(**TINY, scales=2)))
    assert calls == ["auto"] and result.precision == runtime.resolve_precision("auto", "cpu")


def test_a_huge_height_is_refused_from_the_header_before_anything_is_decoded(files,
                                                                             monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("an image was decoded or resized")

    monkeypatch.setattr(images, "load_image", never)
    monkeypatch.setattr(images, "open_image", never)
    content, style = files
    with pytest.raises(errors.NotEnoughMemory) as caught:
        plan.plan(content, style, config=StyleConfig(**dict(TINY, height=100000)))
    message = str(caught.value)
    assert message.endswith("Received: height=100000") and "--" not in message
    assert f"try height={caught.value.fits} or less" in message and caught.value.fits > 16
    # The command line: exit 2 in one line within seconds, in its own words.
    start = time.perf_counter()
    done = run_main(content, style, "-o", content.with_name("o.png"), "--weights", "none",
                    "--height", "100000")
    assert done.returncode == 2 and time.perf_counter() - start < 10
    assert done.stderr.count("\n") == 1 and "try --height " in done.stderr
    assert done.stderr.strip().endswith("Received: --height 100000")


def test_a_mask_is_opened_once(files, tmp_path, monkeypatch):
    content, style = files
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(mask)
    opened = []
    original = images.open_image
    monkeypatch.setattr(images, "open_image",
                        lambda source, *rest: opened.append(source) or original(source, *rest))
    plan.plan(content, style, config=StyleConfig(**TINY), masks=[str(mask)])
    assert opened.count(str(mask)) == 1


@pytest.mark.parametrize("changes, inputs, field", [
    (dict(style_scale=(0.5, 1.0, 2.0)), {}, "style_scale=0.5 1 2"),
    (dict(style_blend_weights=(1.0, 2.0)), {}, "style_blend_weights=1 2"),
    (dict(style_layers=("conv9_1",)), {}, "style_layers=conv9_1"),
    (dict(weights="/no/such.h5"), {}, "weights=/no/such.h5"),
    (dict(height=8), {}, "height=8"),
    (dict(scales=3, height=48), {}, "scales=3"),
    (dict(max_evals=2, scales=3, height=64), {}, "max_evals=2"),
    ({}, dict(masks=[np.ones((48, 64))] * 2), "masks=2"),
    ({}, dict(init_missing=True), "init=missing.png"),
])
def test_plan_errors_name_the_field_never_a_flag(files, changes, inputs, field):
    content, style = files
    config = StyleConfig(**{**TINY, **changes})
    if inputs.pop("init_missing", False):
        config = config.replace(init="missing.png")
    with pytest.raises(ValueError) as caught:
        plan.plan(content, style, config=config, **inputs)
    message = str(caught.value)
    assert f"Received: {field}" in message, message
    assert " --" not in message and "-o " not in message, message


def test_unreadable_inputs_are_input_errors_naming_the_input(files, tmp_path):
    content, style = files
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(errors.InputError, match="cannot read the style image 2 ") as caught:
        plan.plan(content, [style, text], config=StyleConfig(**TINY))
    assert caught.value.input == "style image 2"
    with pytest.raises(errors.InputError, match="the content image does not exist"):
        plan.plan(tmp_path / "missing.png", style, config=StyleConfig(**TINY))


def test_the_command_line_turns_field_names_into_options_in_one_place():
    usage = console.as_usage(ValueError(
        "`style_scale` needs one value or one per style (2). Received: style_scale=0.5 1 2"))
    assert str(usage) == ("--style-scale needs one value or one per style (2). "
                          "Received: --style-scale 0.5 1 2")
    assert str(console.as_usage("try height=512 or less. Received: height=100000")) == (
        "try --height 512 or less. Received: --height 100000")
    assert str(console.as_usage("Received: jit_compile=True, device='gpu'")) == (
        "Received: --xla True, --device gpu")
    assert str(console.as_usage("Received: masks[1]=m.png")) == "Received: --style-mask m.png"
    assert option_name("jit_compile") == "--xla" and option_name("max_evals") == "--max-evals"


# --- Options from the config's metadata ------------------------------------------------


def test_every_setting_is_an_option_built_from_its_field_metadata():
    parser = cli.build_parser()
    actions = {a.dest: a for a in parser._actions}
    for field in dataclasses.fields(StyleConfig):
        action = actions[field.name]
        assert option_name(field.name) in action.option_strings
        assert action.help == field.metadata["help"], field.name
        if field.metadata["choices"]:
            assert tuple(action.choices) == tuple(field.metadata["choices"])
    # `figure` offers its settings from the same metadata, defaulting to the preset's.
    figure_actions = {a.dest: a for a in figures.build_parser()._actions}
    for name in figures.FIGURE_FIELDS:
        if name == "model":  # Its own: without it a figure runs on the plain VGG.
            assert "the preset's plain VGG" in figure_actions[name].help
            continue
        assert figure_actions[name].help.startswith(actions[name].help)
    help_text = " ".join(cli.build_parser().format_help().split())
    assert "jcjohnson (mean squared errors" in help_text  # --normalization's third value.
    assert "compile the loss and gradient with XLA (default: off)" in help_text


def test_the_benchmarks_take_their_option_help_from_the_config():
    source = (ROOT / "benchmarks" / "evaluation_speed.py").read_text()
    assert "add_config_options" in source


# --- Terms carry their data --------------------------------------------------------------


def test_terms_carry_their_kind_and_mask_and_no_name_is_parsed():
    config = StyleConfig(**TINY)
    masks = [np.ones((48, 64), np.float32), np.zeros((48, 64), np.float32)]
    terms = objective.make_terms(config, masks=masks)
    masked = [t for t in terms if t.mask is not None]
    assert len(masked) == 10 and all(t.kind == "style" and t.region in (0, 1) for t in masked)
    first = next(t for t in masked if t.layer == "block2_conv1" and t.region == 0)
    assert first.mask.shape == (24, 32) and np.all(first.mask == 1.0)
    assert set(objective.TERM_LOSSES) == {"content", "style", "w2", "mrf", "histogram", "tv",
                                          "temporal"}
    # Reports sum by the term's kind, not by its name's prefix.
    evaluation = Evaluation(3.0, {"style/odd": 1.0, "tv": 2.0}, {"style/odd": 1.0, "tv": 2.0},
                            kinds={"style/odd": "tv", "tv": "tv"}, layered=frozenset())
    assert evaluation.kind_sum("tv") == 3.0 and evaluation.kind_sum("style") == 0.0


def test_masks_are_arguments_of_the_traced_function_not_targets(files):
    content, style = files
    job = plan.plan(content, [style, style], config=StyleConfig(**TINY),
                    masks=[np.ones((48, 64)), np.zeros((48, 64))])
    problem = render.build_problem(job.content, list(job.styles), job.config, masks=job.masks)
    assert not [name for name in problem.objective.targets if "#" in name]
    assert set(problem.objective.masks) == {t.name for t in problem.objective.terms
                                           if t.mask is not None}


def _package_imports():
    """module -> the package's modules it imports, by their dotted names under nst_keras
    (a layer folder's modules as `engine.losses`)."""
    package = ROOT / "nst_keras"
    modules = {".".join(p.relative_to(package).with_suffix("").parts)
               for p in package.rglob("*.py")}
    modules = {m[:-len(".__init__")] if m.endswith(".__init__") else m for m in modules}
    modules -= {"__init__", "__main__"}

    def resolve(name):
        return name if name in modules else None

    edges = {m: set() for m in modules}
    for module in modules:
        path = package / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = package / module.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module == "nst_keras" or node.module.startswith("nst_keras.")):
                base = node.module[len("nst_keras."):] if node.module != "nst_keras" else ""
                targets = [resolve(f"{base}.{a.name}" if base else a.name) for a in node.names]
                if not any(targets) and base:
                    targets = [resolve(base)]
                edges[module] |= {t for t in targets if t and t != module}
    return edges


def test_the_folders_are_layers_each_importing_only_its_own_and_those_below():
    """engine/ (the algorithm) and media/ (pixels in and out) import nothing above them;
    nothing outside commands/ (the front-ends and their kit) imports commands/."""
    edges = _package_imports()
    below = {"engine": ("engine.", "media.", "config", "errors"),
             "media": ("media.", "config", "errors")}
    wrong = []
    for module, targets in edges.items():
        layer = module.split(".")[0] if "." in module else None
        for target in targets:
            if layer in below and not target.startswith(below[layer]):
                wrong.append(f"{module} -> {target}")
            if layer != "commands" and target.startswith("commands."):
                wrong.append(f"{module} -> {target}")
    assert {m.split(".")[0] for m in edges if "." in m} == {"engine", "media", "commands"}
    assert not wrong, wrong


def test_no_import_circle_inside_the_package():
    edges = _package_imports()

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,)))
                   for n in edges[start])

    circles = sorted(m for m in edges if reaches(m, m))
    assert not circles, circles


# --- The new-user defects -------------------------------------------------------------------


def test_sgd_at_its_defaults_lowers_the_loss_and_a_diverging_run_fails(files, tmp_path):
    content, style = files
    out = tmp_path / "o.png"
    done = run_main(content, style, "-o", out, "--weights", "none", "--height", "48",
                    "--max-evals", "20", "--optimizer", "sgd", "--seed", "0", "--report",
                    tmp_path / "rep", "-q")
    record = json.loads((tmp_path / "rep" / "o.json").read_text())
    assert done.returncode == 0 and record["loss"] < 0.9 * record["losses"][0]
    done = run_main(content, style, "-o", out, "--weights", "none", "--height", "48",
                    "--max-evals", "40", "--optimizer", "sgd", "--learning-rate", "1e6", "-q")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "diverged" in done.stderr and "try a lower --learning-rate" in done.stderr
    assert "saved the best image so far" in done.stderr and out.exists()


def test_style_swallowing_the_content_path_says_so(files, capsys):
    content, style = files
    done = run_main("--style", style, style, content)
    assert done.returncode == 2
    assert "--style took every path after it" in done.stderr and "put CONTENT before" in done.stderr


def test_an_output_folder_gets_the_directory_message(files, tmp_path):
    content, style = files
    done = run_main(content, style, "-o", tmp_path)
    assert done.returncode == 2 and "the output path is a directory" in done.stderr


def test_figure_without_a_number_says_how_to_give_one():
    done = run_main("figure")
    assert done.returncode == 2
    assert done.stderr.strip() == "nst-keras figure: error: which figure? give its number: " \
                                  "nst-keras figure 1, 2 or 3"


def test_the_bar_ends_at_the_evaluations_spent_and_counts_read_well(files, tmp_path):
    from nst_keras.commands.console import ProgressBar, plural

    assert plural(1, "iteration") == "1 iteration" and plural(2, "iteration") == "2 iterations"
    with ProgressBar(quiet=False, total_evals=10) as bar:
        bar.done(7)
        assert bar.n == 7
    content, style = files
    done = run_main(content, style, "-o", tmp_path / "o.png", *sum(
        ([f"--{k.replace('_', '-')}", str(v)] for k, v in TINY.items() if k != "weights"), []),
        "--weights", "none")
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 0 and " 1 iterations" not in last and "6 evaluations" in last


def test_an_offline_download_names_its_url_once(monkeypatch):
    import keras

    url = "https://example.org/a.jpg"

    def no_network(*args, **kwargs):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -2] no network")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(OSError) as caught:
        images.fetch(url)
    assert str(caught.value).count(url) == 1 and "no network" in str(caught.value)


def test_refused_runs_leave_no_empty_folders(files, tmp_path):
    content, style = files
    report = tmp_path / "report"
    done = run_main(tmp_path / "missing.png", style, "-o", tmp_path / "o.png", "--weights",
                    "none", "--report", report)
    assert done.returncode == 2 and not report.exists()
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    out = tmp_path / "figure"
    done = run_main("figure", "2", "--images", images_dir, "--out", out, "--weights", "none")
    assert done.returncode == 2 and not out.exists()


def test_a_signal_inside_a_critical_block_waits_for_its_end():
    with console.SignalGuard() as guard:
        finished = []
        with pytest.raises(KeyboardInterrupt):
            with guard.critical():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # Delivered here, but held.
                finished.append(True)
        assert finished == [True] and guard.received == [signal.SIGINT]


def test_a_delivered_run_writes_its_image_record_and_plot_together(files, tmp_path):
    content, style = files
    job = plan.plan(content, style, config=StyleConfig(**TINY))
    out = tmp_path / "panels" / "p.png"  # The folder is made only when the files go in.
    with console.SignalGuard() as guard:
        result = console.render_job(job, guard, quiet=True)
        console.deliver(result, job, guard, prog="nst-keras", output=str(out),
                        report=str(out.parent), extra={"panel": "p"})
    record = json.loads((out.parent / "p.json").read_text())
    assert sorted(os.listdir(out.parent)) == ["p-loss.png", "p.json", "p.png"]
    assert record["panel"] == "p" and record["loss"] == result.loss
    assert record["job_key"] == job.key and len(job.key) == 64 and record["stopped"] is None


def test_notebook_one_names_todays_objects_and_every_default_departure():
    text = (ROOT / "notebooks" / "01_book_8_3_today.ipynb").read_text()
    assert "problem.loss_and_grad" not in text
    assert "Pixels stay in range" in text and "Edge padding" in text
