"""Per-layer weights and the other style losses (W2, MRF, histogram) against numpy."""

import numpy as np
import pytest

from conftest import make_image, run_main


# --- Per-layer weights -------------------------------------------------------------------

def test_gatys_layer_weights_are_1e3_over_channels_squared_normalised():
    from nst_keras.engine import objective
    from nst_keras.config import BOOK_STYLE_LAYERS, StyleConfig

    config = StyleConfig(style_layer_weights="gatys", style_weight=10.0)
    terms = {t.name: t.weight for t in objective.make_terms(config)}
    # 1e3/64^2 : 1e3/128^2 : 1e3/256^2 : 1e3/512^2 : 1e3/512^2 = 64 : 16 : 4 : 1 : 1 (sum 86).
    expected = [64 / 86, 16 / 86, 4 / 86, 1 / 86, 1 / 86]
    for layer, share in zip(BOOK_STYLE_LAYERS, expected):
        assert terms[f"style/{layer}"] == pytest.approx(10.0 * share, rel=1e-12)
    raw = {n: 1e3 / c ** 2 for n, c in zip(BOOK_STYLE_LAYERS, (64, 128, 256, 512, 512))}
    shares = objective.layer_shares("gatys", list(BOOK_STYLE_LAYERS), BOOK_STYLE_LAYERS)
    assert shares == pytest.approx({n: v / sum(raw.values()) for n, v in raw.items()})


def test_explicit_layer_weights_follow_the_layers_order_and_are_normalised():
    from nst_keras.engine import objective
    from nst_keras.config import StyleConfig

    config = StyleConfig(style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                         style_layer_weights="256:64:16:4:1", style_weight=2.0,
                         content_layers=("block4_conv2", "block5_conv2"),
                         content_layer_weights=(3, 1), content_weight=0.5)
    assert config.style_layer_weights == (256.0, 64.0, 16.0, 4.0, 1.0)
    terms = {t.name: t.weight for t in objective.make_terms(config)}
    assert terms["style/block1_conv1"] == pytest.approx(2.0 * 256 / 341)
    assert terms["style/block5_conv1"] == pytest.approx(2.0 * 1 / 341)
    assert terms["content/block4_conv2"] == pytest.approx(0.375)
    assert terms["content/block5_conv2"] == pytest.approx(0.125)
    # Equal (the default) is the book's 1/n, masked terms too.
    masks = [np.ones((32, 32), np.float32)]
    equal = objective.make_terms(StyleConfig(style_weight=5.0), masks=masks)
    assert {t.weight for t in equal if t.kind == "style"} == {1.0}


@pytest.mark.parametrize("args, words", [
    (("--style-layer-weights", "1,2"), "needs one weight per layer (5). Received: "
                                       "--style-layer-weights 1.0,2.0"),
    (("--style-layer-weights", "1,-2,1,1,1"), "--style-layer-weights"),
    (("--content-layer-weights", "0"), "not all 0"),
    (("--content-layer-weights", "heavy"), "expected equal, gatys or numbers"),
])
def test_bad_layer_weights_exit_2_in_one_line(tmp_path, args, words):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    from PIL import Image

    Image.fromarray(make_image(32, 32)).save(content)
    Image.fromarray(make_image(32, 32, seed=1)).save(style)
    result = run_main(content, style, "--weights", "none", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr


# --- The losses against float64 numpy renderings of their formulas ------------------------

def np_gaussian(x, weights, eps):
    f = x.reshape(-1, x.shape[-1]).astype(np.float64)
    w = np.ones(len(f)) if weights is None else weights.reshape(-1).astype(np.float64)
    mean = (w[:, None] * f).sum(0) / w.sum()
    centred = f - mean
    cov = (w[:, None] * centred).T @ centred / w.sum()
    return mean, cov + eps * np.eye(f.shape[1])


def np_w2(style, combination, weights=None):
    from scipy.linalg import sqrtm

    from nst_keras.engine.losses import W2_EPSILON

    eps = W2_EPSILON  # 1e-4 in crowsonkb's feature units (see its comment): 0.332 in ours.
    ms, cs = np_gaussian(style, None, eps)
    m, c = np_gaussian(combination, weights, eps)
    root = np.real(sqrtm(cs))
    trace = np.trace(cs + c - 2 * np.real(sqrtm(root @ c @ root)))
    return (np.sum((m - ms) ** 2) + trace) / style.shape[-1]


def w2_tf(style, combination, weights=None):
    import tensorflow as tf

    from nst_keras.engine import losses

    total, first, second = losses.feature_moments(tf.constant(style))
    target = losses.w2_target(first / total, second / total)
    return losses.w2_style_loss(target, combination, weights=weights)


@pytest.mark.parametrize("shape, style_shape", [
    ((6, 7, 5), (8, 9, 5)),
    ((2, 2, 8), (3, 2, 8)),  # Fewer positions than channels: singular without epsilon.
])
def test_w2_loss_matches_scipy_sqrtm_with_the_same_epsilon(shape, style_shape):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    style = np.maximum(rng.normal(1.0, 1.0, style_shape), 0).astype(np.float32)
    x = np.maximum(rng.normal(0.5, 1.5, shape), 0).astype(np.float32)
    weights = rng.uniform(0.2, 1.0, shape[:2]).astype(np.float32)
    for w in (None, weights):
        expected = np_w2(style, x, w)
        assert float(w2_tf(style, x, w)) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # The gradient: central differences of the float64 formula at a few entries.
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = w2_tf(style, variable, weights)
    gradient = tape.gradient(value, variable).numpy()
    for index in [(0, 0, 0), (1, 1, shape[2] - 1), (shape[0] - 1, 0, 2)]:
        step = np.zeros(shape)
        step[index] = 1e-4
        numeric = (np_w2(style, x + step, weights) - np_w2(style, x - step, weights)) / 2e-4
        assert gradient[index] == pytest.approx(numeric, rel=2e-3, abs=1e-4)


def test_w2_of_a_style_with_itself_is_zero_and_the_mean_term_is_the_mean_shift():
    rng = np.random.default_rng(4)
    style = rng.normal(size=(5, 6, 4)).astype(np.float32)
    assert abs(float(w2_tf(style, style))) < 1e-5
    # Shifting every feature by d moves only the mean: L = sum(d^2) / C.
    shift = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    assert float(w2_tf(style, style + shift)) == pytest.approx(5.25 / 4, rel=1e-4)


def np_patches(x):
    h, w, c = x.shape
    return np.array([x[i:i + 3, j:j + 3].reshape(-1) for i in range(h - 2)
                     for j in range(w - 2)], np.float64)


def test_mrf_loss_matches_brute_force_patch_matching_under_a_fixed_assignment():
    import tensorflow as tf

    from nst_keras.engine import losses

    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 8, 4)).astype(np.float32)
    style = rng.normal(size=(6, 9, 4)).astype(np.float32)
    patches, style_patches = np_patches(x), np_patches(style)
    np.testing.assert_allclose(losses.extract_patches(x).numpy(), patches, rtol=1e-6)
    similarity = patches @ (style_patches / np.linalg.norm(style_patches, axis=1,
                                                           keepdims=True)).T
    nearest = similarity.argmax(1)
    found = losses.mrf_match(tf.constant(patches, tf.float32),
                             tf.constant(style_patches, tf.float32)).numpy()
    top2 = np.sort(similarity, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4 * np.abs(top2[:, 1])
    assert clear.mean() > 0.9 and np.array_equal(found[clear], nearest[clear])
    # Chunked (3 patches per chunk, the last one padded) finds the same matches.
    small = losses.mrf_match(tf.constant(patches, tf.float32),
                             tf.constant(style_patches, tf.float32),
                             chunk_bytes=3 * 4 * len(style_patches)).numpy()
    assert np.array_equal(small, found)
    # The loss under numpy's assignment, with and without centre weights.
    weights = rng.uniform(0, 1, (7, 8)).astype(np.float32)
    squared = np.sum((patches - style_patches[nearest]) ** 2, axis=1)
    centre = weights[1:-1, 1:-1].reshape(-1).astype(np.float64)
    for w, expected in ((None, squared.mean() / 36),
                        (weights, np.sum(centre * squared) / (centre.sum() * 36))):
        value = losses.mrf_loss(style_patches.astype(np.float32), x, weights=w,
                                assignment=tf.constant(nearest, tf.int32))
        assert float(value) == pytest.approx(expected, rel=1e-5)
    # Its gradient pulls each patch towards its match: 2 (P_i - S_NN(i)) summed over the
    # patches that contain a value.
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = losses.mrf_loss(style_patches.astype(np.float32), variable,
                                assignment=tf.constant(nearest, tf.int32))
    expected = np.zeros(x.shape)
    for k, (i, j) in enumerate((i, j) for i in range(5) for j in range(6)):
        expected[i:i + 3, j:j + 3] += (2 * (patches[k] - style_patches[nearest[k]])
                                       .reshape(3, 3, 4) / (len(patches) * 36))
    np.testing.assert_allclose(tape.gradient(value, variable).numpy(), expected, rtol=1e-4,
                               atol=1e-7)


def np_histogram(style, x, weights=None):
    s = np.sort(style.reshape(-1, style.shape[-1]).astype(np.float64), axis=0)
    f = x.reshape(-1, x.shape[-1]).astype(np.float64)
    w = np.ones(len(f)) if weights is None else weights.reshape(-1).astype(np.float64)
    grid = (np.arange(len(s)) + 0.5) / len(s)
    total = 0.0
    for c in range(f.shape[1]):
        order = np.argsort(f[:, c], kind="stable")
        wc = w[order]
        positions = (np.cumsum(wc) - wc / 2) / w.sum()
        matched = np.interp(positions, grid, s[:, c])
        total += np.sum(wc * (f[order, c] - matched) ** 2)
    return total / (f.shape[1] * w.sum())


def test_histogram_loss_matches_numpy_sorted_value_matching():
    import tensorflow as tf

    from nst_keras.engine import losses

    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 7, 3)).astype(np.float32)
    style = rng.gamma(2.0, 1.0, size=(9, 5, 3)).astype(np.float32)
    weights = rng.uniform(0, 1, (6, 7)).astype(np.float32)
    # Without weights each rank's position is a point of the resampled grid: no
    # interpolation error, and the value is the formula's exactly.
    quantiles = losses.sorted_quantiles(style, 42)
    assert float(losses.histogram_loss(quantiles, x)) == pytest.approx(np_histogram(style, x),
                                                                      rel=1e-5)
    # With weights the positions fall between: a fine grid (the style's own 45 values
    # resampled at 4500) agrees to interpolation error.
    fine = losses.sorted_quantiles(style, 4500)
    assert float(losses.histogram_loss(fine, x, weights=weights)) == pytest.approx(
        np_histogram(style, x, weights), rel=1e-3)
    # A feature map matched to itself has no loss; a sorted-value shift by 1 costs 1.
    assert abs(float(losses.histogram_loss(losses.sorted_quantiles(x, 42), x))) < 1e-10
    assert float(losses.histogram_loss(losses.sorted_quantiles(x + 1.0, 42), x)) == \
        pytest.approx(1.0, rel=1e-5)
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = losses.histogram_loss(quantiles, variable)
    s = np.sort(style.reshape(-1, 3).astype(np.float64), axis=0)
    expected = np.zeros((42, 3))
    for c in range(3):
        order = np.argsort(x.reshape(-1, 3)[:, c])
        matched = np.interp((np.arange(42) + 0.5) / 42, (np.arange(45) + 0.5) / 45, s[:, c])
        expected[order, c] = 2 * (x.reshape(-1, 3)[order, c] - matched) / (3 * 42)
    np.testing.assert_allclose(tape.gradient(value, variable).numpy().reshape(-1, 3), expected,
                               rtol=1e-4, atol=1e-7)


# --- Tiled equals untiled; the halo the MRF patches need ----------------------------------

TILE_LAYERS = dict(content_layers=("block4_conv1",),
                   style_layers=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"))
HALF = np.zeros((96, 130), np.float32)
HALF[:, :61] = 1.0


def _pair(style_loss, styles, masks, **settings):
    from nst_keras.engine import objective, runtime, tiling
    from nst_keras.config import StyleConfig

    layers = dict(TILE_LAYERS)
    if style_loss == "mrf":
        layers["style_layers"] = ("block3_conv1", "block4_conv1")
    # The style terms alone (content and TV are tiled as before, tests/test_tiling.py), so
    # that the gradient compared is theirs.
    config = StyleConfig(weights=None, seed=0, style_loss=style_loss, precision="float32",
                         padding="symmetric", content_weight=0.0, tv_weight=0.0,
                         **{**layers, **settings})
    terms = objective.make_terms(config, masks=masks)
    model = runtime.MODELS.for_config(config, objective.term_layers(terms),
                                      runtime.placement(config))
    content = make_image(96, 130, seed=1)
    style_rgbs = [make_image(60, 50, seed=2), make_image(40, 44, seed=3)][:styles]
    return (objective.build_objective(model, terms, content, style_rgbs, config),
            tiling.build_tiled_objective(model, terms, content, style_rgbs, config, core=48))


def _errors(whole, tiled, x):
    l0, g0, v0 = whole(x)
    l1, g1, v1 = tiled(x)
    values = max(abs(float(v1[n]) - float(v0[n])) / max(abs(float(v0[n])), 1e-12) for n in v0)
    return (abs(float(l1) - float(l0)) / abs(float(l0)),
            float(np.linalg.norm(g1.numpy() - g0.numpy()) / np.linalg.norm(g0.numpy())), values)


@pytest.mark.parametrize("style_loss, styles, masked", [
    ("w2", 2, False),  # Two styles blended: means and second moments summed over tiles.
    ("mrf", 2, True),  # Each style within its mask: patches weighted at their centres.
])
def test_tiled_w2_and_mrf_equal_the_untiled_ones(style_loss, styles, masked):
    from nst_keras.engine import tiling
    from nst_keras.media.images import preprocess

    whole, tiled = _pair(style_loss, styles, [HALF, 1.0 - HALF] if masked else None)
    assert tiled.tiles.count == 6 and any(0 < s[0] for s in tiled.tiles.rows + tiled.tiles.cols)
    import tensorflow as tf

    for name, target in whole.targets.items():  # The style images in tiles too.
        # W2: the mean and covariance (the covariance's square root amplifies float32
        # rounding along its epsilon-sized eigenvalues; the losses below agree).
        for a, b in list(zip(tf.nest.flatten(tiled.targets[name]),
                             tf.nest.flatten(target)))[:2]:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                                       atol=1e-5 * float(np.abs(np.asarray(b)).max()))
    x = preprocess(make_image(96, 130, seed=5).astype(np.float32))
    loss_error, grad_error, values = _errors(whole, tiled, x)
    assert loss_error <= 1e-5 and grad_error <= 1e-4 and values <= 1e-5
    if style_loss == "mrf":
        # The patches centred on a core's edge read one relu4_1 pixel (8 px) beyond it:
        # the halo is widened from relu4_1's radius 34 (40 on the grid) to 34 + 8 (48).
        # (Measured with 40: the terms still agree to 1e-7, since only the outermost 2 px of
        # that pixel's receptive field are missing; the arithmetic is what is checked.)
        assert tiled.tiles.halo == 48
        assert tiling.layout(96, 130, TILE_LAYERS["style_layers"], core=48).halo == 40
        with pytest.raises(ValueError, match="smaller than the receptive radius"):
            tiling.layout(96, 130, TILE_LAYERS["style_layers"], core=48, halo=40,
                          patch_layers=("block3_conv1", "block4_conv1"))


def test_the_memory_plan_counts_the_mrf_patches_and_one_similarity_chunk():
    from nst_keras.engine import features, runtime
    from nst_keras.config import StyleConfig

    config = StyleConfig(style_loss="mrf", style_layers=("relu3_1", "relu4_1"))
    parts = runtime.estimate_memory(400, 533, config, "float32")
    plain = runtime.estimate_memory(400, 533, config.replace(style_loss="gram"), "float32")
    assert "mrf" not in plain and parts["total"] == plain["total"] + parts["mrf"]
    # relu3_1: 100 x 133 x 256, 98 x 131 patches of 9 x 256; relu4_1: 50 x 66 x 512.
    expected = 0
    for (h, w, c) in ((100, 133, 256), (50, 66, 512)):
        patches = (h - 2) * (w - 2)
        # The style's every 2nd row and column: 49 x 66 of relu3_1's 98 x 131.
        style = -(-(h - 2) // 2) * -(-(w - 2) // 2)
        expected += (4 * 9 * c * (2 * style + 3 * patches)
                     + min(features.MRF_CHUNK_BYTES, 4 * style * patches))
    assert parts["mrf"] == expected
    # Unchunked, relu3_1's similarity matrix alone would be 0.66 GB.
    assert 4 * (98 * 131) ** 2 == pytest.approx(0.66e9, rel=0.01)


# --- Everything the new terms must work with; refusals --------------------------------------

@pytest.mark.parametrize("style_loss", ["w2", "mrf"])
def test_each_loss_runs_coarse_to_fine_with_masks_two_styles_bfloat16_and_histogram(style_loss):
    from nst_keras import plan, render

    content = make_image(64, 80, seed=1)
    styles = [make_image(60, 50, seed=2), make_image(40, 44, seed=3)]
    mask = np.zeros((64, 80), np.uint8)
    mask[:, :40] = 255
    layers = ("relu3_1", "relu4_1") if style_loss == "mrf" else ("relu1_1", "relu2_1")
    job = plan.plan(content, styles, masks=[mask, 255 - mask], weights=None, seed=0,
                    height=64, scales=2, max_evals=6, style_loss=style_loss,
                    histogram_weight=1e3, precision="bfloat16", style_layers=layers,
                    content_layers=("relu2_2",), style_weight=1e3)
    starts = []
    result = render.render(job, on_stage=starts.append)
    names = [t.name for t in starts[-1].problem.objective.terms]
    assert f"style/2/{'block4_conv1' if style_loss == 'mrf' else 'block2_conv1'}" in names
    assert "histogram/1/block1_conv1" in names and "histogram/2/block4_conv1" in names
    kinds = {t.kind for t in starts[-1].problem.objective.terms}
    assert {style_loss, "histogram"} <= kinds
    assert len(starts) == 2 and np.all(np.isfinite(result.losses))
    assert result.losses[-1] < result.losses[0]
    assert result.style_loss > 0  # The new kinds count as the style loss in reports.


@pytest.mark.parametrize("args, words", [
    (("--histogram-weight", "1", "--tile", "64"),
     "cannot be tiled"),
    (("--style-loss", "mrf", "--style-blend-weights", "1", "3"),
     "cannot weigh the styles"),
    (("--style-loss", "wasserstein"), "invalid choice: 'wasserstein'"),
    # A 3 x 3 patch at relu5_1 needs 48 px (32 given): refused before anything runs.
    (("--style-loss", "mrf", "--style-layers", "relu5_1"), "need at least 48x48"),
    (("--histogram-weight", "-1"), "--histogram-weight"),
])
def test_combinations_that_cannot_be_exact_exit_2_in_one_line(tmp_path, args, words):
    from PIL import Image

    paths = []
    for name, seed in (("c.png", 1), ("s1.png", 2), ("s2.png", 3)):
        Image.fromarray(make_image(32, 32, seed=seed)).save(tmp_path / name)
        paths.append(tmp_path / name)
    styles = ("--style", *paths[1:]) if "--style-blend-weights" in args else paths[1:2]
    result = run_main(paths[0], *styles, "--weights", "none", "--height", "32", *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr


def test_dry_run_shows_the_mrf_part(tmp_path):
    from PIL import Image

    from nst_keras.engine import runtime
    from nst_keras.config import PRESETS

    Image.fromarray(make_image(96, 128, seed=1)).save(tmp_path / "c.png")
    Image.fromarray(make_image(64, 64, seed=2)).save(tmp_path / "s.png")
    result = run_main(tmp_path / "c.png", tmp_path / "s.png", "--preset", "cnnmrf",
                      "--dry-run", "--weights", "none", "--height", "96", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[-2:] == ["mrf", "tiles"]
    final = next(line for line in lines if line.split()[:3] == ["3/3", "128x96", "float32"])
    parts = runtime.estimate_memory(96, 128, PRESETS["cnnmrf"].replace(height=96), "float32")
    assert parts["mrf"] > 0 and f"{parts['mrf'] / 2**30:.2f}G  untiled" in final
