"""`python -m nst_keras figure {1,2,3}`: each figure rendered tiny, offline, from stand-in images.

Random seeded weights (`--weights none`), height 32 (the least that conv5_x allows is 16),
2 evaluations per panel, generated images under the file names of the catalogue.
"""

import json

import pytest
from PIL import Image

from conftest import make_image
from nst_keras.commands import figures
from nst_keras.commands.cli import main as cli_main
from nst_keras.engine.features import resolve_layer_name
from nst_keras.media.images import load_image

HEIGHT = 32
PANEL_KEYS = {"figure", "panel", "image", "size", "settings", "layer_losses", "content_loss",
              "style_loss", "evaluations", "iterations", "seconds", "stop_reason",
              "paper_alpha_over_beta"}


@pytest.fixture(scope="module")
def stand_in_dir(tmp_path_factory):
    """Every catalogue file as a small generated image (landscape and portrait)."""
    folder = tmp_path_factory.mktemp("images")
    for i, name in enumerate(figures.IMAGES):
        width = 44 if i % 2 == 0 else 28
        Image.fromarray(make_image(40, width, seed=i)).save(folder / name)
    return folder


def _run(number, images, out, *extra):
    return cli_main(["figure", str(number), "--images", str(images), "--out", str(out),
                     "--height", str(HEIGHT), "--max-evals", "2", "--weights", "none",
                     "--model", "vgg16", "--seed", "0", "-q", *extra])


def test_layouts():
    assert figures.layout(1) == (2, 6)
    assert figures.layout(2) == (3, 2)
    assert figures.layout(3) == (5, 4)
    spec3 = figures.figure_spec(3)
    assert [p.ratio for p in spec3.panels[:4]] == [1e-5, 1e-4, 1e-3, 1e-2]
    assert [len(p.style_layers) for p in spec3.panels[::4]] == [1, 2, 3, 4, 5]
    for number in (1, 2, 3):
        spec = figures.figure_spec(number)
        cells = {(p.row, p.col) for p in spec.panels}
        assert len(cells) == len(spec.panels) <= spec.rows * spec.cols


def test_panel_weights_keep_the_papers_ratio():
    base = figures.preset("gatys2015")
    spec = figures.figure_spec(3)
    config = figures.panel_config(spec.panels[0], base)  # alpha/beta = 1e-5
    assert config.content_weight / config.style_weight == pytest.approx(1e-5)
    scaled = figures.panel_config(spec.panels[0], base.replace(style_weight=1e5))
    assert scaled.style_weight == pytest.approx(100 * config.style_weight)
    recon = figures.figure_spec(1).panels[2]  # content from conv1_2 alone
    config = figures.panel_config(recon, base)
    assert config.style_layers == () and config.style_weight == 0


@pytest.mark.slow
@pytest.mark.parametrize("number", [1, 2, 3])
def test_figure_renders_grid_and_records(number, stand_in_dir, tmp_path):
    out = tmp_path / f"fig{number}"
    assert _run(number, stand_in_dir, out) == 0
    spec = figures.figure_spec(number)
    generated = [p for p in spec.panels if p.generated]

    summary = json.loads((out / f"figure{number}.json").read_text())
    assert summary["layout"] == list(figures.layout(number))
    assert summary["status"] == "done"
    assert summary["panels"] == [p.name for p in generated]

    records = sorted(p for p in out.glob("*.json") if p.name != f"figure{number}.json")
    assert len(records) == len(generated)
    for path in records:
        record = json.loads(path.read_text())
        assert PANEL_KEYS <= set(record)
        assert record["evaluations"] <= 2
        assert record["size"][0] == HEIGHT
        assert (out / record["image"]).is_file()
        assert Image.open(out / record["image"]).size[1] == HEIGHT
        panel = next(p for p in generated if p.name == record["panel"])
        expected = {f"content/{resolve_layer_name(n, 'vgg16')}" for n in panel.content_layers}
        expected |= {f"style/{resolve_layer_name(n, 'vgg16')}" for n in panel.style_layers}
        assert set(record["layer_losses"]) == expected
        assert record["settings"]["height"] == HEIGHT

    # The grid: its pixel size follows from the layout and the largest panel.
    shapes = [Image.open(out / f"{p.name}.png").size for p in generated]
    shapes += [load_image(stand_in_dir / p.show, HEIGHT).shape[1::-1]
               for p in spec.panels if p.show]
    cell_hw = (max(h for _, h in shapes), max(w for w, _ in shapes))
    geometry = figures.grid_geometry(spec, cell_hw)
    assert Image.open(out / f"figure{number}.png").size == geometry["size"]


def _without(stand_in_dir, folder, *missing):
    """`folder` holding every catalogue file but `missing`."""
    folder.mkdir()
    for name in figures.IMAGES:
        if name not in missing:
            (folder / name).write_bytes((stand_in_dir / name).read_bytes())
    return folder


KANDINSKY_LEFT_OUT = ("Figure 2: composition_vii.jpg (Kandinsky, Composition VII) is not in "
                      "--images {}: panel F_composition_vii is left out")


def test_a_missing_painting_leaves_out_its_panels_only(stand_in_dir, tmp_path, monkeypatch,
                                                        capsys):
    from nst_keras.commands import console

    partial = _without(stand_in_dir, tmp_path / "partial", "composition_vii.jpg")
    out = tmp_path / "fig2"
    argv = ["figure", "2", "--images", str(partial), "--out", str(out), "--height",
            str(HEIGHT), "--max-evals", "1", "--weights", "none", "--model", "vgg16",
            "--seed", "0"]
    assert cli_main(argv) == 0
    err = capsys.readouterr().err
    assert err.count(KANDINSKY_LEFT_OUT.format(partial)) == 1, err
    assert err.count("left out") == 1, err  # Only for the painting missing.
    assert "Figure 2: 4 panels" in err

    summary = json.loads((out / "figure2.json").read_text())
    assert summary["status"] == "done"
    assert summary["left_out"] == {"F_composition_vii": "composition_vii.jpg not in --images"}
    generated = [p.name for p in figures.figure_spec(2).panels if p.generated]
    assert summary["panels"] == generated[:4]
    assert "composition_vii.jpg" not in summary["images"]
    assert not (out / "F_composition_vii.png").exists()
    assert not (out / "F_composition_vii.json").exists()
    assert all((out / f"{name}.png").is_file() for name in generated[:4])
    # The grid keeps F's cell (empty): the same size as with every panel.
    shapes = [Image.open(out / f"{name}.png").size for name in generated[:4]]
    shapes.append(load_image(partial / figures.CONTENT, HEIGHT).shape[1::-1])
    cell_hw = (max(h for _, h in shapes), max(w for w, _ in shapes))
    geometry = figures.grid_geometry(figures.figure_spec(2), cell_hw)
    assert Image.open(out / "figure2.png").size == geometry["size"]

    # Again: every panel that can be done is done already; nothing is computed.
    def no_render(*args, **kwargs):
        raise AssertionError("a panel done already was computed again")

    monkeypatch.setattr(console, "render_job", no_render)
    assert cli_main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("done already") == 4, err
    assert err.count(KANDINSKY_LEFT_OUT.format(partial)) == 1
    assert json.loads((out / "figure2.json").read_text())["left_out"] == summary["left_out"]


def test_a_figure_with_every_panel_left_out_is_refused_in_one_line(stand_in_dir, tmp_path,
                                                                   capsys):
    partial = _without(stand_in_dir, tmp_path / "partial", "composition_vii.jpg")
    assert _run(3, partial, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nst-keras figure: error: Figure 3 needs composition_vii.jpg "
                          "(Kandinsky, Composition VII) for its panels; it is not in the "
                          "--images folder, so no panel can be computed.")
    assert f"Received: --images {partial}" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_content_photo_is_refused_in_one_line(stand_in_dir, tmp_path, capsys):
    partial = _without(stand_in_dir, tmp_path / "partial", figures.CONTENT)
    assert _run(2, partial, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nst-keras figure: error: Figure 2 needs tubingen.jpg")
    assert not (tmp_path / "out").exists()


def test_a_missing_painting_leaves_out_its_input_panel_too(stand_in_dir, tmp_path):
    # Figure 1 without The Starry Night: its style row, the painting's own cell included.
    partial = _without(stand_in_dir, tmp_path / "partial", "starry_night.jpg")
    args = figures.build_parser().parse_args(["1", "--images", str(partial)])
    spec = figures.figure_spec(1)
    paths, left_out = figures._local_images(args, spec)
    assert set(paths) == {figures.CONTENT}
    assert list(left_out) == [p.name for p in spec.panels if p.row == 1]
    assert set(left_out.values()) == {"starry_night.jpg not in --images"}
    grid = tmp_path / "grid.png"
    loaded = {figures.CONTENT: load_image(partial / figures.CONTENT, HEIGHT)}
    figures.render_grid(spec, str(tmp_path), {}, loaded, str(grid), left_out=left_out)
    assert Image.open(grid).size == figures.grid_geometry(spec, loaded[figures.CONTENT].shape)[
        "size"]


def test_bad_figure_number_is_usage_error(capsys):
    assert cli_main(["figure", "4"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_out_of_memory_in_a_later_panel_keeps_the_finished_panels(stand_in_dir, tmp_path,
                                                                   monkeypatch, capsys):
    # Panel 1 of Figure 2 takes 1 trace + 2 evaluations; the 5th call is in panel 2.
    import tensorflow as tf

    from nst_keras.engine import objective

    evaluate = objective.Objective.__call__
    calls = []

    def failing(self, x):
        calls.append(1)
        if len(calls) == 5:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")
        return evaluate(self, x)

    monkeypatch.setattr(objective.Objective, "__call__", failing)
    out = tmp_path / "fig2"
    assert _run(2, stand_in_dir, out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0] and "panel" in err[0]
    assert "1 of 5 panels written" in err[0]
    summary = json.loads((out / "figure2.json").read_text())
    assert summary["status"] == "stopped" and len(summary["panels"]) == 1
    assert (out / "figure2.png").is_file() and (out / f"{summary['panels'][0]}.png").is_file()


PLAIN_NOTE = ("Using the plain vgg19: the paper's normalised network needs `--model "
              "vgg19-normalized` (see normalize-vgg)")


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    """A fresh machine's Keras cache: no ImageNet weights, no normalised VGG."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.mark.parametrize("number", [pytest.param(1, marks=pytest.mark.slow), 2,
                                    pytest.param(3, marks=pytest.mark.slow)])
def test_without_model_a_figure_runs_on_the_plain_vgg_and_says_so(number, stand_in_dir,
                                                                   tmp_path, empty_keras_home,
                                                                   capsys):
    # The preset names vgg19-normalized, and nothing is normalised: the figure still runs.
    assert figures.PRESETS["gatys2015"].model == "vgg19-normalized"
    out = tmp_path / f"fig{number}"
    code = cli_main(["figure", str(number), "--images", str(stand_in_dir), "--out", str(out),
                     "--height", str(HEIGHT), "--max-evals", "1", "--weights", "none",
                     "--seed", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count(PLAIN_NOTE) == 1
    summary = json.loads((out / f"figure{number}.json").read_text())
    assert summary["model"] == "vgg19" and summary["normalized_network"] is False
    assert summary["network_note"] == PLAIN_NOTE
    for name in summary["records"]:
        assert json.loads((out / name).read_text())["settings"]["model"] == "vgg19"


def test_the_figures_network_is_the_presets_plain_vgg_unless_model_names_one(tmp_path):
    def network(*extra):
        args = figures.build_parser().parse_args(["2", *extra])
        run = figures.FigureRun(args, figures.figure_spec(2), figures.base_config(args),
                                str(tmp_path))
        return run.base.model, run.note

    assert network() == ("vgg19", PLAIN_NOTE)
    assert network("--preset", "book") == ("vgg19", PLAIN_NOTE)
    assert network("--model", "vgg19-normalized") == ("vgg19-normalized", None)
    assert network("--model", "vgg16") == ("vgg16", None)  # Named: nothing to say.


@pytest.mark.parametrize("number", [1, 2, 3])
@pytest.mark.parametrize("weights", ["none", "imagenet"])
def test_the_normalised_vgg_not_computed_yet_is_one_line_naming_what_to_run(
        number, weights, stand_in_dir, tmp_path, empty_keras_home, monkeypatch, capsys):
    def no_download(spec):
        raise AssertionError("the images were downloaded before the network was checked")

    monkeypatch.setattr(figures, "_download_images", no_download)
    out = tmp_path / "out"
    images = [] if weights == "imagenet" else ["--images", str(stand_in_dir)]
    code = cli_main(["figure", str(number), *images, "--out", str(out), "--model",
                     "vgg19-normalized", "--weights", weights, "--seed", "0", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("nst-keras figure: error: no normalised vgg19 of these weights yet")
    seeded = " --seed 0" if weights == "none" else ""
    assert (f"nst-keras normalize-vgg PHOTOS --model vgg19-normalized --weights {weights}"
            f"{seeded}. Received:") in err
    assert not out.exists()
