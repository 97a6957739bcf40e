"""The controls beyond the book: several styles, style scale, starting images, Adam and SGD,
presets, the run record. Each against a hand-computed or numpy reference."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_keras import delivery, errors, record, run
from nst_keras.commands import cli
from nst_keras.engine import features, objective, runtime
from nst_keras.config import PRESETS, StyleConfig
from nst_keras.media.images import IMAGENET_MEAN_BGR, preprocess

from conftest import make_image, prepared, run_main

F32 = dict(weights=None, height=48, seed=0, precision="float32")


def test_the_blended_gram_target_is_the_weighted_sum_of_single_targets(content_rgb):
    config = StyleConfig(**F32)
    terms = objective.make_terms(config)
    model = runtime.MODELS.get(objective.term_layers(terms), weights=None, seed=0)
    a, b = make_image(40, 40, seed=2), make_image(30, 70, seed=3)
    x = preprocess(content_rgb)
    hw = content_rgb.shape[:2]
    only_a = objective.compute_targets(model, terms, x, [preprocess(a)], hw)
    only_b = objective.compute_targets(model, terms, x, [preprocess(b)], hw)
    blended = objective.compute_targets(model, terms, x, [preprocess(a), preprocess(b)], hw,
                                        blend=[0.7, 0.3])
    for term in terms:
        if term.kind == "style":
            np.testing.assert_allclose(
                blended[term.name].numpy(),
                0.7 * only_a[term.name].numpy() + 0.3 * only_b[term.name].numpy(), rtol=1e-5)
        elif term.kind == "content":
            np.testing.assert_array_equal(blended[term.name].numpy(), only_a[term.name].numpy())


def test_two_identical_styles_blended_give_the_single_style_result(content_rgb, style_rgb):
    settings = dict(F32, max_evals=6)
    one = run.transfer_style(content_rgb, style_rgb, **settings)
    two = run.transfer_style(content_rgb, [style_rgb, style_rgb],
                             style_blend_weights=(2.0, 5.0), **settings)
    assert two.loss == pytest.approx(one.loss, rel=1e-5)
    assert np.abs(two.image.astype(int) - one.image.astype(int)).max() <= 1


def test_blend_weights_are_normalised_and_must_fit_the_styles():
    config = StyleConfig(style_blend_weights=(3, 1))
    assert run.blend_weights(config, 2) == [0.75, 0.25]
    assert run.blend_weights(StyleConfig(), 4) == [0.25] * 4
    with pytest.raises(ValueError, match="one weight per style \\(3\\)"):
        run.blend_weights(config, 3)


def test_style_scale_sets_each_style_height_and_feature_size(content_rgb):
    a, b = make_image(80, 40, seed=2), make_image(60, 120, seed=3)
    # Shallow layers, so that small styles are large enough for them.
    config = StyleConfig(height=48, style_scale=(0.5, 2.0), content_layers=("conv2_1",),
                         style_layers=("conv1_1", "conv2_1"))
    content, styles = prepared(content_rgb, [a, b], config)
    assert content.shape[:2] == (48, 64)
    assert styles[0].shape[:2] == (24, 12) and styles[1].shape[:2] == (96, 192)  # Aspect kept.
    one = prepared(content_rgb, [a, b], config.replace(style_scale=0.25))[1]
    assert [s.shape[0] for s in one] == [12, 12]
    model = runtime.MODELS.get(["conv2_1"], weights=None, seed=0)
    out = features.features_of(model, preprocess(styles[1]))["block2_conv1"]
    assert tuple(out.shape[1:3]) == (48, 96) == features.layer_shape("conv2_1", 96, 192)[:2]
    stretched = prepared(content_rgb, [a, b], config.replace(style_scale=None,
                                                                style_resize="stretch"))[1]
    assert all(s.shape == content.shape for s in stretched)
    with pytest.raises(ValueError, match="one value or one per style"):
        prepared(content_rgb, [a, b, a], config)


@pytest.mark.parametrize("init", ["content", "noise", "style", "mean", "path"])
def test_each_init_gives_the_expected_starting_image(init, tmp_path, content_rgb, style_rgb):
    source = init
    if init == "path":
        source = str(tmp_path / "start.png")
        Image.fromarray(make_image(24, 32, seed=7)).save(source)
    problem = run.build_problem(content_rgb, style_rgb, StyleConfig(**F32, init=source))
    rgb = (problem.x0[0] + IMAGENET_MEAN_BGR)[..., ::-1]  # Back to RGB floats.
    size = (content_rgb.shape[1], content_rgb.shape[0])
    if init == "content":
        np.testing.assert_allclose(rgb, content_rgb, atol=1e-4)
    elif init == "noise":
        assert rgb.min() >= -1e-3 and rgb.max() <= 255 + 1e-3 and 100 < rgb.mean() < 155
        assert rgb.std() > 60  # Uniform in 0-255: std 73.6.
    elif init == "mean":
        np.testing.assert_allclose(rgb, np.broadcast_to(IMAGENET_MEAN_BGR[::-1], rgb.shape),
                                   atol=0.01)
    else:
        image = style_rgb if init == "style" else make_image(24, 32, seed=7)
        expected = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS), np.float32)
        np.testing.assert_allclose(rgb, expected, atol=1e-3)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd"])
def test_every_optimizer_lowers_the_loss_through_the_same_callback(optimizer, content_rgb,
                                                                   style_rgb):
    seen = []
    lr = {"adam": 10.0, "sgd": 1e-3, "lbfgs": 10.0}[optimizer]  # SGD's step is lr x gradient.
    problem = run.build_problem(content_rgb, style_rgb, StyleConfig(
        **F32, max_evals=12, optimizer=optimizer, learning_rate=lr, style_weight=100.0))
    result = run.solve(problem, callback=seen.append)
    assert result.loss < result.losses[0]
    assert result.evaluations == 12 == len(result.losses)
    assert [p.iteration for p in seen] == list(range(1, result.iterations + 1))
    if optimizer != "lbfgs":  # One evaluation per step.
        assert [p.evaluations for p in seen] == list(range(1, 13))
    lower, upper = problem.bounds
    x = preprocess(result.image)
    assert np.all(x >= lower - 0.5) and np.all(x <= upper + 0.5)


def test_adam_projects_every_step_into_the_pixel_box(content_rgb, style_rgb):
    # A huge learning rate throws Adam's steps far outside 0-255; the projection holds them.
    from nst_keras.engine import solvers

    problem = run.build_problem(content_rgb, style_rgb, StyleConfig(**F32, style_weight=1e4))
    points = []

    def recording(x):
        points.append(np.array(x))
        return problem.objective(x)

    monitor = solvers.Monitor(recording, problem.objective.terms, problem.x0.shape, 6)
    try:
        solvers.gradient_descent(monitor, problem.x0, iterations=6, bounds=problem.bounds,
                                 optimizer=solvers.keras_optimizer("adam", 1e4))
    except errors.DivergedError:  # Steps this large may never improve on the start.
        pass
    lower, upper = problem.bounds
    assert len(points) == 6
    assert all(np.all(p >= lower - 1e-3) and np.all(p <= upper + 1e-3) for p in points)
    assert any(np.mean(p <= lower + 1e-3) > 0.1 for p in points[1:])  # It did hit the walls.


def test_sgd_learning_rate_decays_exponentially():
    from nst_keras.engine.solvers import keras_optimizer

    optimizer = keras_optimizer("sgd", 100.0, decay=0.96, decay_steps=100)
    optimizer.iterations.assign(200)
    assert float(optimizer.learning_rate) == pytest.approx(100.0 * 0.96 ** 2)
    assert float(keras_optimizer("adam", 5.0).learning_rate) == pytest.approx(5.0)


DOCUMENTED = {
    "book": dict(content_layers=("block5_conv2",), content_weight=0.025, style_weight=1.0,
                 tv_weight=1e-4, optimizer="lbfgs", bounds=True, tv_edges="all", height=400,
                 max_evals=400),
    "book-exact": dict(tv_edges="book", bounds=False, style_resize="stretch",
                       precision="float32", content_weight=0.025, style_weight=1.0),
    "book-2e": dict(content_weight=2.5e-8, style_weight=1e-6, tv_weight=1e-6, optimizer="sgd",
                    learning_rate=100.0, lr_decay=0.96, lr_decay_steps=100, iterations=4000,
                    max_evals=4000, height=400, tv_edges="book", bounds=False,
                    style_resize="stretch", init="content"),
    "gatys2015": dict(content_layers=("block4_conv2",), normalization="paper", pooling="avg",
                      init="noise", content_weight=1.0, style_weight=1e3, tv_weight=0.0),
    "jcjohnson": dict(content_layers=("relu4_2",), normalization="jcjohnson",
                      content_weight=5.0, style_weight=500.0, tv_weight=5e-4, tv_power=1.0,
                      tv_edges="book", init="mean", iterations=1000, max_evals=1250,
                      lbfgs_memory=100, height=512, pooling="max", model="vgg19"),
    # crowsonkb/style-transfer-pytorch's StyleTransfer.stylize defaults (README's table).
    "crowsonkb": dict(content_layers=("relu4_2",), style_loss="w2",
                      style_layer_weights=(256.0, 64.0, 16.0, 4.0, 1.0),
                      normalization="jcjohnson", content_weight=0.015, style_weight=1.0,
                      optimizer="adam", learning_rate=5.1, init="content", height=512,
                      scales=3, pooling="max"),
    # chuanli11/CNNMRF's run_trans.lua parameters.
    "cnnmrf": dict(style_loss="mrf", style_layers=("relu3_1", "relu4_1"),
                   content_layers=("relu4_2",), content_weight=20.0, tv_weight=5e-4,
                   tv_power=1.0, height=384, scales=3, iterations=100, optimizer="lbfgs",
                   padding="zeros"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_presets_hold_their_documented_values_and_options_override_them(name):
    # As a run uses them: `book` leaves its weights and style layers to its style loss.
    config = PRESETS[name].resolved()
    for field, value in DOCUMENTED[name].items():
        assert getattr(config, field) == value, (name, field)
    args = cli.build_parser(PRESETS[name], name).parse_args(
        ["--content-weight", "7", "--height", "64"])
    overridden = cli.config_from_args(args).resolved()
    assert overridden.content_weight == 7.0 and overridden.height == 64
    untouched = {f: v for f, v in DOCUMENTED[name].items() if f not in ("content_weight", "height")}
    for field, value in untouched.items():
        assert getattr(overridden, field) == value, (name, field)


def test_preset_help_shows_that_presets_values():
    text = " ".join(run_main("--preset", "jcjohnson", "--help").stdout.split())
    assert "(default: 5.0)" in text and "(default: 1250)" in text and "(default: jcjohnson)" in text
    # Booleans show their value too: this preset has no bounds, the book's has.
    assert "when saving) (default: off)" in text
    assert "when saving) (default: on)" in " ".join(run_main("--help").stdout.split())


def _np_gram(f):
    flat = f.reshape(-1, f.shape[-1]).astype(np.float64)
    return flat.T @ flat


def test_book_exact_loss_equals_a_numpy_rendering_of_the_books_formulas(content_rgb, style_rgb):
    config = PRESETS["book-exact"].replace(weights=None, height=48, seed=0)
    content, styles = prepared(content_rgb, style_rgb, config)
    assert styles[0].shape == content.shape  # Stretched, as the book's load_img(target_size).
    problem = run.build_problem(content, styles, config)
    rng = np.random.default_rng(1)
    x = problem.x0 + rng.normal(0, 20, problem.x0.shape).astype(np.float32)
    loss = float(problem.objective(x)[0])

    model = runtime.MODELS.get(objective.term_layers(problem.objective.terms), weights=None,
                                seed=0)
    feats = {k: v.numpy()[0].astype(np.float64) for k, v in features.features_of(model, x).items()}
    base = {k: v.numpy()[0].astype(np.float64)
            for k, v in features.features_of(model, preprocess(content)).items()}
    style = {k: v.numpy()[0].astype(np.float64)
             for k, v in features.features_of(model, preprocess(styles[0])).items()}
    h, w = content.shape[:2]
    # The book: content_loss = sum((comb - base)^2); style_loss = sum((S - C)^2) /
    # (4 * 3^2 * (h*w)^2); total_variation_loss over rows and columns 0..n-2, power 1.25.
    expected = 0.025 * np.sum((feats["block5_conv2"] - base["block5_conv2"]) ** 2)
    for layer in ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                  "block5_conv1"):
        diff = _np_gram(style[layer]) - _np_gram(feats[layer])
        expected += (1.0 / 5) * np.sum(diff ** 2) / (4.0 * 9 * (h * w) ** 2)
    img = x[0].astype(np.float64)
    a = np.square(img[:h - 1, :w - 1, :] - img[1:, :w - 1, :])
    b = np.square(img[:h - 1, :w - 1, :] - img[:h - 1, 1:, :])
    expected += 1e-4 * np.sum((a + b) ** 1.25)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_jcjohnson_normalization_against_numpy():
    from nst_keras.engine import losses

    rng = np.random.default_rng(3)
    style, comb = rng.uniform(0, 3, (5, 4, 6)), rng.uniform(0, 3, (5, 4, 6))
    c, m = 6, 20
    expected = np.mean((_np_gram(comb) / (c * m) - _np_gram(style) / (c * m)) ** 2)
    got = losses.style_loss(style.astype(np.float32), comb.astype(np.float32),
                            normalization="jcjohnson")
    assert float(got) == pytest.approx(expected, rel=1e-4)
    assert float(losses.content_loss(style, comb, normalization="jcjohnson")) == pytest.approx(
        np.mean((comb - style) ** 2), rel=1e-5)


def test_the_run_record_round_trips_and_lists_every_iteration(tmp_path, content_rgb, style_rgb):
    result = run.transfer_style(content_rgb, style_rgb, **F32, max_evals=8)
    json_path, plot_path = delivery.write_report(result, str(tmp_path / "report"), stem="x",
                                                 argv=["a", "b"], inputs={"content": "c.png"})
    data = json.loads(open(json_path).read())
    assert data == json.loads(json.dumps(record.run_record(result, argv=["a", "b"],
                                                           inputs={"content": "c.png"})))
    assert [h["iteration"] for h in data["history"]] == list(range(1, result.iterations + 1))
    assert data["history"][-1]["evaluations"] == data["evaluations"] == 8
    assert data["losses"] == list(result.losses) and len(data["times"]) == 8
    assert set(data["history"][0]["terms"]) == {t.name for t in objective.make_terms(result.config)}
    assert data["settings"]["height"] == 48 and data["precision"] == "float32"
    assert {"nst_keras", "tensorflow", "keras", "scipy"} <= set(data["versions"])
    assert data["hardware"].startswith("CPU") and data["argv"] == ["a", "b"]
    assert StyleConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in data["settings"].items()}) == result.config
    with open(plot_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert Image.open(plot_path).size == (800, 450)


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, seed in (("c.png", 1), ("a.png", 2), ("b.png", 3)):
        paths[name] = tmp_path / name
        Image.fromarray(make_image(48, 64, seed=seed)).save(paths[name])
    paths["text.png"] = tmp_path / "text.png"
    paths["text.png"].write_text("not an image")
    return paths


@pytest.mark.parametrize("args, needle", [
    (["--style-blend-weights", "1", "2", "3"], "--style-blend-weights needs one weight per style (2)"),
    (["--style-blend-weights", "1", "-2"], "argument --style-blend-weights"),
    (["--style-scale", "0.5", "1", "2"], "--style-scale needs one value or one per style (2)"),
    (["--init", "missing.png"], "the init image does not exist"),
    (["--init", "TEXT"], "cannot read the init image"),
    (["--preset", "neural-style"], "Received: --preset neural-style"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--learning-rate", "0"], "argument --learning-rate"),
])
def test_bad_controls_exit_2_before_any_model_is_built(files, tmp_path, args, needle):
    args = [str(files["text.png"]) if a == "TEXT" else a for a in args]
    done = run_main(files["c.png"], "--style", files["a.png"], files["b.png"], "-o",
                    tmp_path / "o.png", "--weights", "none", "--height", "48", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-keras: error:") and needle in lines[0]
    assert "Building" not in done.stderr and not (tmp_path / "o.png").exists()


def test_positional_style_and_style_option_together_are_refused(files, tmp_path, capsys):
    code = cli.main([str(files["c.png"]), str(files["a.png"]), "--style", str(files["b.png"]),
                     "-o", str(tmp_path / "o.png")])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_two_styles_and_a_report_from_the_command_line(files, tmp_path):
    report = tmp_path / "report"
    code = cli.main([str(files["c.png"]), "--style", str(files["a.png"]), str(files["b.png"]),
                     "--style-blend-weights", "0.5", "0.5", "--style-scale", "0.75",
                     "-o", str(tmp_path / "out.png"), "--weights", "none", "--height", "48",
                     "--max-evals", "4", "--optimizer", "adam", "--report", str(report), "-q"])
    assert code == 0
    data = json.loads((report / "out.json").read_text())
    assert data["inputs"]["styles"] == [str(files["a.png"]), str(files["b.png"])]
    assert data["settings"]["style_blend_weights"] == [0.5, 0.5]
    assert data["settings"]["optimizer"] == "adam" and data["evaluations"] == 4
    assert (report / "out-loss.png").is_file()


@pytest.mark.slow
def test_figure_panels_carry_the_same_run_record(tmp_path):
    from nst_keras.commands import figures

    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(figures.images_needed(2)):
        Image.fromarray(make_image(40, 44, seed=i)).save(images / name)
    out = tmp_path / "fig"
    assert cli.main(["figure", "2", "--images", str(images), "--out", str(out), "--height", "32",
                     "--max-evals", "2", "--weights", "none", "--model", "vgg16", "-q"]) == 0
    summary = json.loads((out / "figure2.json").read_text())
    panel = json.loads((out / f"{summary['panels'][0]}.json").read_text())
    for key in ("settings", "versions", "history", "losses", "times", "precision", "hardware",
                "stop_reason", "record_version"):
        assert key in panel, key
    assert (out / f"{summary['panels'][0]}-loss.png").is_file()


def test_numpy_settings_make_a_plain_json_record(tmp_path, content_rgb, style_rgb):
    config = StyleConfig(**dict(F32, max_evals=3), content_weight=np.float32(0.5),
                         style_scale=np.array([0.5]))
    result = run.transfer_style(content_rgb, style_rgb, config=config)
    json_path, _ = delivery.write_report(result, str(tmp_path))
    data = json.loads(open(json_path).read())
    assert data["settings"]["content_weight"] == 0.5 and data["settings"]["style_scale"] == [0.5]
