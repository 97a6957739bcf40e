"""The tiled objective: the same loss and gradient as the untiled one, in the memory of a tile.

Random weights, small images (96 x 130, cores of 48 px) and layers up to block4_conv1 (halo
40 px, grid 8), so that there are several tiles with interior edges and an odd edge tile, in
three tile shapes only (each shape is traced once: the tests' cost).
"""

import dataclasses

import numpy as np
import pytest

from conftest import make_image, run_main

#: Layers up to block4: a 40 px halo, so that a 96 x 130 image has interior tile edges.
LAYERS = dict(content_layers=("block4_conv1",),
              style_layers=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"))


def test_receptive_fields_and_halos_come_from_the_layer_arithmetic():
    from nst_keras.engine import features

    # VGG19: 156 px at conv5_1 (radius 78), 188 at conv5_2 (radius 94), as the issue says.
    assert features.receptive_field("block1_conv1") == 3
    assert (features.receptive_field("conv5_1"), features.receptive_radius("conv5_1")) == (156, 78)
    assert (features.receptive_field("conv5_2"), features.receptive_radius("conv5_2")) == (188, 94)
    # A pooling layer widens by its jump (1 px after block1's two convs: 5 + 1).
    assert features.receptive_field("block1_pool") == 6
    # The halo is the deepest radius rounded up to the pooling grid (16 up to block5's convs).
    assert features.pooling_grid(["conv1_1", "conv5_2"]) == 16
    assert features.tile_halo(["conv1_1", "conv5_1"]) == 80
    assert features.tile_halo(["conv5_2", "conv1_1"]) == 96
    assert features.pooling_grid(["block5_pool"]) == 32
    assert features.tile_halo(LAYERS["style_layers"]) == 40  # radius 34, grid 8.


def test_tile_corners_fall_on_the_pooling_grid_and_cores_cover_the_image_once():
    from nst_keras.engine import tiling

    tiles = tiling.layout(96, 130, LAYERS["style_layers"], core=30)
    assert (tiles.core, tiles.halo, tiles.grid) == (32, 40, 8)  # Core rounded up to the grid.
    for spans, length in ((tiles.rows, 96), (tiles.cols, 130)):
        assert spans[0][1] == 0 and spans[-1][2] == length
        for (t0, c0, c1, t1), following in zip(spans, spans[1:] + ((None, length),)):
            assert t0 % 8 == 0 and c0 % 8 == 0  # Every corner on the grid.
            assert c1 == following[1]  # Cores meet: each pixel in exactly one core.
            assert t0 == max(0, c0 - 40) and t1 == min(length, c1 + 40)
    assert tiles.count == 3 * 4
    # The last 2 columns (130 - 128) are fewer than the grid: merged into the core before,
    # so that no core is empty at the deepest layer; an odd edge core of 34.
    assert tiles.cols[-1][1:] == (96, 130, 130)
    assert tiles.largest == (96, 106)
    assert tiling.spans(100, 32, 40, 8)[-1] == (24, 64, 100, 100)  # 4 < 8: merged.
    assert tiling.spans(104, 32, 40, 8)[-1] == (56, 96, 104, 104)  # 8: kept.


def test_a_halo_smaller_than_the_derived_one_is_refused_and_a_larger_one_widened_to_the_grid():
    from nst_keras.engine import tiling

    with pytest.raises(ValueError, match=r"smaller than the receptive radius.*Received: halo=24"):
        tiling.layout(96, 130, LAYERS["style_layers"], core=32, halo=24)
    assert tiling.layout(96, 130, LAYERS["style_layers"], core=32, halo=41).halo == 48


def test_the_gram_surrogate_has_the_gradient_of_the_gram_loss():
    # G = F^T F  =>  dL/dF = F (D + D^T) with D = dL/dG, also when D is not symmetric.
    import tensorflow as tf

    from nst_keras.engine import tiling

    rng = np.random.default_rng(0)
    f = tf.constant(rng.normal(size=(5, 7, 4)), tf.float32)
    d = tf.constant(rng.normal(size=(4, 4)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(f)
        flat = tf.reshape(f, (-1, 4))
        direct = tf.reduce_sum(d * tf.matmul(flat, flat, transpose_a=True))
        surrogate = tiling.gram_surrogate(f, d)
    expected = (f.numpy().reshape(-1, 4) @ (d.numpy() + d.numpy().T)).reshape(5, 7, 4)
    np.testing.assert_allclose(tape.gradient(direct, f).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(surrogate, f).numpy(), expected, rtol=1e-5,
                               atol=1e-5)


def whole_config(padding, precision="float32", normalization="book"):
    from nst_keras.config import StyleConfig

    return StyleConfig(weights=None, seed=0, padding=padding, precision=precision,
                       normalization=normalization, tv_weight=1e-3, **LAYERS)


def _objectives(padding, styles, masks=None, precision="float32", normalization="book"):
    from nst_keras.engine import objective, runtime, tiling

    config = whole_config(padding, precision, normalization)
    content = make_image(96, 130, seed=1)
    terms = objective.make_terms(config, masks=masks)
    model = runtime.MODELS.for_config(config, objective.term_layers(terms),
                                      runtime.placement(config))
    whole = objective.build_objective(model, terms, content, styles, config)
    tiled = tiling.build_tiled_objective(model, terms, content, styles, config, core=48)
    return whole, tiled


def _compare(whole, tiled, x):
    l0, g0, v0 = whole(x)
    l1, g1, v1 = tiled(x)
    g0, g1 = g0.numpy(), g1.numpy()
    values = {n: abs(float(v1[n]) - float(v0[n])) / max(abs(float(v0[n])), 1e-12) for n in v0}
    return (abs(float(l1) - float(l0)) / abs(float(l0)),
            float(np.linalg.norm(g1 - g0) / np.linalg.norm(g0)), values, list(v1))


HALF = np.zeros((96, 130), np.float32)
HALF[:, :61] = 1.0


# The symmetric case has the structure of the run tests below, so they reuse its traces.
@pytest.mark.parametrize("padding, styles, masked, normalization", [
    ("zeros", 2, False, "paper"),  # Two styles blended.
    ("symmetric", 1, False, "book"),
    ("reflect", 2, True, "jcjohnson"),  # Guided Gram matrices; the content term's mean.
])
def test_tiled_loss_and_gradient_equal_the_untiled_ones(padding, styles, masked,
                                                       normalization):
    from nst_keras.engine import objective, tiling
    from nst_keras.media.images import preprocess

    style_rgbs = [make_image(60, 50, seed=2), make_image(40, 44, seed=3)][:styles]
    masks = [HALF, 1.0 - HALF] if masked else None
    whole, tiled = _objectives(padding, style_rgbs, masks, normalization=normalization)
    rows, cols = tiled.tiles.rows, tiled.tiles.cols
    assert tiled.tiles.count == 6 and any(0 < t0 for t0, *_ in rows + cols)
    assert any(t1 < 96 for *_, t1 in rows)  # Interior edges: the halo is what makes it exact.
    assert cols[-1][2] - cols[-1][1] == 34  # An odd edge core.
    # The targets, computed tile by tile (the style images in tiles too), are the same.
    for name, target in whole.targets.items():
        np.testing.assert_allclose(np.asarray(tiled.targets[name]), np.asarray(target),
                                   rtol=2e-5, atol=1e-6 * float(np.abs(target).max()))
    for seed in (5, 6):
        x = preprocess(make_image(96, 130, seed=seed).astype(np.float32))
        loss_error, grad_error, values, names = _compare(whole, tiled, x)
        assert loss_error <= 1e-5 and grad_error <= 1e-4
        assert max(values.values()) <= 1e-5, values
        assert names == [t.name for t in whole.terms]
    if padding == "zeros":
        # With too small a halo the tiles' features are not the image's: the halo matters.
        from nst_keras.engine import features, runtime

        model = runtime.MODELS.for_config(whole_config(padding, normalization=normalization),
                                          objective.term_layers(whole.terms),
                                          runtime.placement(whole_config(padding)))
        exact = features.features_of(model, x)["block4_conv1"][0].numpy()
        for halo, worst in ((40, 1e-5), (8, 1e-2)):
            tiles = tiling.Tiles(48, halo, 8, tiling.spans(96, 48, halo, 8),
                                 tiling.spans(130, 48, halo, 8))
            cores = tiling.tiled_cores(model, x, ["block4_conv1"], "vgg19", tiles)
            error = np.abs(cores["block4_conv1"] - exact).max() / np.abs(exact).max()
            assert (error <= worst) if halo == 40 else (error > worst)
        # Other weights without a retrace, as `Objective.with_weights`.
        heavier = {t.name: 2 * t.weight for t in tiled.terms}
        l0, _, _ = whole.with_weights(heavier)(x)
        l1, _, _ = tiled.with_weights(heavier)(x)
        assert abs(float(l1) - float(l0)) <= 1e-5 * abs(float(l0))
        # The judged loss of an RGB image, as a saved image is judged.
        rgb = make_image(96, 130, seed=7)
        assert objective.evaluate_image(tiled, rgb) == pytest.approx(
            objective.evaluate_image(whole, rgb), rel=1e-5)


# A video frame's temporal term (Ruder et al.): a per-pixel sum, split over the cores.
@pytest.mark.parametrize("padding, styles, masked, normalization, reliability", [
    ("symmetric", 1, False, "book", True),  # Reliability weights c, some pixels 0.
    ("reflect", 2, True, "jcjohnson", False),  # Guided Gram matrices; no weights (c = 1).
])
def test_tiled_temporal_term_equals_the_untiled_one(padding, styles, masked, normalization,
                                                    reliability):
    from nst_keras.engine import objective, runtime, tiling
    from nst_keras.media.images import preprocess

    config = whole_config(padding, normalization=normalization)
    content = make_image(96, 130, seed=1)
    style_rgbs = [make_image(60, 50, seed=2), make_image(40, 44, seed=3)][:styles]
    masks = [HALF, 1.0 - HALF] if masked else None
    rng = np.random.default_rng(0)
    c = (rng.uniform(size=(96, 130)) > 0.3).astype(np.float32)
    warped = make_image(96, 130, seed=8).astype(np.float32)
    term, target = objective.Temporal(warped, c, 30.0).term_and_target(96, 130)
    if not reliability:
        term = dataclasses.replace(term, mask=None)
    terms = objective.make_terms(config, masks=masks) + (term,)
    model = runtime.MODELS.for_config(config, objective.term_layers(terms),
                                      runtime.placement(config))
    extra = {"temporal": target}
    whole = objective.build_objective(model, terms, content, style_rgbs, config,
                                      extra_targets=extra)
    tiled = tiling.build_tiled_objective(model, terms, content, style_rgbs, config, core=48,
                                         extra_targets=extra)
    assert tiled.tiles.count == 6 and any(t1 < 96 for *_, t1 in tiled.tiles.rows)
    x = preprocess(make_image(96, 130, seed=5).astype(np.float32))
    loss_error, grad_error, values, names = _compare(whole, tiled, x)
    assert loss_error <= 1e-5 and grad_error <= 1e-4
    assert max(values.values()) <= 1e-5, values
    assert names == [t.name for t in whole.terms] and names[-1] == "temporal"
    # The temporal term alone against numpy: normalised by the whole image's H * W * 3, its
    # gradient on the pixels (2/D) c (x - w), zero where c is 0, halos counted once.
    alone = tiled.with_weights({t.name: 1.0 if t.kind == "temporal" else 0.0
                                for t in tiled.terms})
    loss, grad, found = alone(x)
    weight = c[None, ..., None] if reliability else 1.0
    diff = x - target
    np.testing.assert_allclose(float(found["temporal"]),
                               np.sum(weight * diff ** 2) / (96 * 130 * 3), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(found["temporal"]), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), 2 * weight * diff / (96 * 130 * 3), rtol=1e-4,
                               atol=1e-7)


def test_tiled_bfloat16_is_exact_to_bfloat16_rounding():
    # On AMX-BF16 oneDNN picks the tiles' kernels by shape, so they round in bfloat16
    # differently from the whole image's (see the next test), so the tolerance is bfloat16's:
    # loss 1e-4, gradient and terms 1e-3 (measured on AVX512-BF16, one kernel for every
    # shape: loss 0, gradient 5e-5, terms 3e-7).
    from nst_keras.media.images import preprocess

    whole, tiled = _objectives("symmetric", [make_image(60, 50, seed=2)],
                               precision="bfloat16")
    x = preprocess(make_image(96, 130, seed=5).astype(np.float32))
    loss_error, grad_error, values, _ = _compare(whole, tiled, x)
    assert loss_error <= 1e-4 and grad_error <= 1e-3 and max(values.values()) <= 1e-3


def _bfloat16_steps(found, expected):
    """How far `found` is from `expected`: (largest difference in bfloat16 steps at
    `expected`'s largest magnitude, 2**(floor(log2 max|expected|) - 7); the difference's
    norm relative to `expected`'s)."""
    scale = float(np.abs(expected).max())
    step = 2.0 ** (np.floor(np.log2(scale)) - 7)
    difference = np.asarray(found, np.float64) - np.asarray(expected, np.float64)
    return (float(np.abs(difference).max() / step),
            float(np.linalg.norm(difference) / np.linalg.norm(expected)))


def test_bfloat16_targets_round_as_the_objective_and_the_tiles_do():
    # Random weights have zero biases, which round the same fused or not; real weights do
    # not. Eager execution rounds a bfloat16 convolution and its bias separately, a traced
    # graph once (fused), so targets computed eagerly missed the objective's own features
    # (issue 26: loss 3e-3 apart tiled/untiled at 427x320, the content loss of the content
    # image 295 instead of 0). Now both are traced.
    #
    # What tiled bfloat16 promises on every CPU: the targets agree with the whole image's to
    # bfloat16 rounding, not bit for bit. oneDNN picks its kernels by shape on AMX-BF16, so
    # a tile's features and the whole image's round differently (an AMX Xeon, issue: 11.6 %
    # of the content target's elements differ, by 0.031 at most, e.g. 0.4941 against
    # 0.4922: one bfloat16 step). On AVX512-BF16 (AMD EPYC, brg_conv_fwd:avx512_core_bf16
    # for every shape) the features are identical and the Gram matrices differ by float32
    # summation order only (1e-6 relative at most). A rounding step does not scale with each
    # element's own magnitude: a near-zero activation comes from large products that cancel,
    # so its difference is a step of the layer's larger values (emulated, see below: up to
    # 254 of its own steps). Hence two bounds, per target (features and Gram matrices):
    # * no element more than 4 bfloat16 steps at the target's largest magnitude (a seam or a
    #   short halo is a local error: it fails this). The 0.031 is 2 steps at this
    #   model's largest content feature (3.97, a step of 2**-6); emulated 1;
    # * the difference's norm at most 2**-8 of the target's: one step in every element would
    #   be 2**-8 to 2**-7 (5.8e-3 measured), so this allows a step in up to about half the
    #   elements. A flipped rounding in a fraction p gives ~ sqrt(p) * 5.8e-3: emulated
    #   (every tile on another kernel, ONEDNN_MAX_CPU_ISA=AVX512_CORE against
    #   avx512_core_bf16) 22.9 % of elements, 2.9e-3; AMX's 11.6 % ~2.0e-3. It fails float32
    #   features for bfloat16 ones (6.3e-3), eagerly rounded biases (7.1e-3) and two steps
    #   off everywhere (1.2e-2).
    # Exact on every CPU: the content loss of the content image, untiled and tiled (the
    # target and the image go through the same tiles, so the same kernels).
    # The terms then agree to bfloat16's tolerance, as in the test above (emulated: 4.6e-4
    # at most, loss 1e-7, Gram targets 0.22 steps and 6e-4; AVX512-BF16: 3e-7 and 0). The gradients differ by the tiles'
    # partial sums too, each rounded to bfloat16 in the halos before they are added
    # (measured with the stand-in at 427x320: 1.1e-3 to 2e-3 relative, against 3e-2 between
    # bfloat16 and float32).
    import keras

    from nst_keras.engine import features, objective, tiling
    from nst_keras.media.images import preprocess

    config = whole_config("symmetric", "bfloat16")
    terms = objective.make_terms(config)
    keras.utils.set_random_seed(0)  # The figures above are this model's.
    model = features.build_feature_model(objective.term_layers(terms), weights=None,
                                         precision="bfloat16", padding="symmetric")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape).astype(np.float32))
    content, styles = make_image(96, 130, seed=1), [make_image(60, 50, seed=2)]
    whole = objective.build_objective(model, terms, content, styles, config)
    tiled = tiling.build_tiled_objective(model, terms, content, styles, config, core=48)
    for name, target in whole.targets.items():
        worst, norm = _bfloat16_steps(tiled.targets[name], target)
        assert worst <= 4 and norm <= 2**-8, (name, worst, norm)
    content_x = preprocess(content.astype(np.float32))
    for evaluated in (whole, tiled):  # The target is its own features.
        assert float(evaluated(content_x)[2]["content/block4_conv1"]) == 0.0
    x = preprocess(make_image(96, 130, seed=5).astype(np.float32))
    loss_error, grad_error, values, _ = _compare(whole, tiled, x)
    assert loss_error <= 1e-4 and max(values.values()) <= 1e-3, values
    assert grad_error <= 5e-3


def test_each_tile_shape_is_traced_once():
    from nst_keras.media.images import preprocess

    _, tiled = _objectives("symmetric", [make_image(60, 50, seed=2)])
    x = preprocess(make_image(96, 130, seed=5).astype(np.float32))
    tiled(x)
    tiled(x + 1.0)
    shapes = {(r[3] - r[0], c[3] - c[0]) for r, c in tiled.tiles}
    pass1, pass2 = tiled.passes
    assert 1 < len(shapes) < tiled.tiles.count
    assert pass1.experimental_get_tracing_count() == len(shapes)
    assert pass2.experimental_get_tracing_count() == len(shapes)


def test_a_tiled_run_and_an_untiled_run_from_the_same_seed_reach_the_same_losses():
    from nst_keras import plan, render

    content, style = make_image(96, 130, seed=1), make_image(60, 50, seed=2)
    losses, tiles = {}, {}
    for tile in ("off", "48"):
        job = plan.plan(content, style, weights=None, seed=0, height=96, max_evals=5,
                        init="noise", tile=tile, precision="float32", padding="symmetric",
                        style_scale=0.625, **LAYERS)  # The style at its own 60 px.
        starts = []
        result = render.render(job, on_stage=starts.append)
        losses[tile], tiles[tile] = np.array(result.losses), starts[0].problem.tiles
    assert tiles["off"] is None and tiles["48"].count == 6
    assert len(losses["off"]) == len(losses["48"]) == 5
    np.testing.assert_allclose(losses["48"], losses["off"], rtol=1e-4)


def test_the_estimate_of_a_tiled_stage_counts_one_tile_and_what_tiling_does_not_shrink():
    from nst_keras.engine import features, runtime
    from nst_keras.config import StyleConfig

    config = StyleConfig().resolved()
    whole = runtime.estimate_memory(3000, 4000, config, "float32")
    tiled = runtime.estimate_memory(3000, 4000, config, "float32", tile=512)
    layers = config.content_layers + config.style_layers
    assert tiled["activations"] == int(runtime.BYTES_PER_ACTIVATION["float32", True]
                                       * runtime.TILE_ACTIVATION_SHARE["float32"]
                                       * features.activation_floats(704, 704, layers))
    # The largest tile is the layout's: at 800 x 1000 the tiles are (0, 608) and (416, 800)
    # high, (0, 608) and (416, 1000) wide, so 608 x 608, not core + 2 halos (704).
    smaller = runtime.estimate_memory(800, 1000, config, "float32", tile=512)
    assert smaller["activations"] == int(runtime.BYTES_PER_ACTIVATION["float32", True]
                                         * runtime.TILE_ACTIVATION_SHARE["float32"]
                                         * features.activation_floats(608, 608, layers))
    for part in ("base", "weights", "history", "optimizer", "images"):
        assert tiled[part] == whole[part]
    assert tiled["tiling"] == runtime.TILED_BYTES_PER_VALUE * 3000 * 4000 * 3
    assert tiled["total"] == sum(v for k, v in tiled.items() if k != "total")
    # 16.8 of 36.2 GiB with the fitted constants: tiling removes all but one tile's
    # activations, the largest part of the untiled estimate.
    assert tiled["total"] < 0.5 * whole["total"]
    assert whole["total"] - tiled["total"] > 0.9 * (whole["activations"] - tiled["activations"]
                                                    - tiled["tiling"])
    # At print sizes L-BFGS-B's history (2m float64 per value) and arrays are the largest
    # part left.
    assert tiled["history"] == 2 * config.lbfgs_memory * 8 * 3000 * 4000 * 3
    assert tiled["history"] + tiled["optimizer"] > max(
        v for k, v in tiled.items() if k not in ("total", "history", "optimizer"))


@pytest.fixture
def big_content(tmp_path):
    """A 1024 x 768 content image on disk (only its header is read by a plan)."""
    from PIL import Image

    path = tmp_path / "content.png"
    Image.new("RGB", (1024, 768), (90, 120, 200)).save(path)
    style = tmp_path / "style.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(style)
    return path, style


def test_max_memory_below_the_untiled_estimate_makes_auto_tile_the_large_stages(big_content):
    from nst_keras import plan
    from nst_keras.engine import runtime
    from nst_keras.config import StyleConfig, parse_size

    content, style = big_content
    config = StyleConfig(weights=None, height=2000, scales=2, precision="float32")
    free = plan.plan(content, style, config=config, load=False)
    untiled = runtime.estimate_memory(2000, 2667, config, "float32")["total"]
    assert free.memory["budget"] > untiled or free.stages[-1].tiles is not None
    capped = plan.plan(content, style, config=config.replace(max_memory="12G"), load=False)
    assert capped.memory["budget"] == min(parse_size("12G"), free.memory["budget"])
    first, final = capped.stages
    assert untiled > parse_size("12G") >= final.memory["total"]
    assert first.tiles is None  # Coarse to fine: the small stage untiled, the large tiled.
    assert final.tiles is not None and final.tiles.core == 512 and final.tiles.halo == 96
    assert final.tiles.count == 4 * 6
    # `tile="off"` keeps the old behaviour: the size is refused.
    with pytest.raises(ValueError, match="out of memory"):
        plan.plan(content, style, config=config.replace(max_memory="12G", tile="off"))
    # --height auto plans with tiles: higher than the largest untiled height.
    auto = plan.plan(content, style, config=config.replace(max_memory="3G", scales=1),
                     fit_height=True, load=False)
    assert auto.config.height == 768 > runtime.largest_height(config, 4 / 3, "float32",
                                                              parse_size("3G"))
    assert auto.stages[-1].tiles is not None


def test_dry_run_shows_the_tiles_and_a_refusal_names_the_optimizer(big_content):
    content, style = big_content
    common = [content, style, "--weights", "none", "--height", "2000", "--precision", "float32"]
    done = run_main(*common, "--scales", "2", "--max-memory", "12G", "--dry-run")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "2667x2000" in line]
    assert any("24 tiles (core 512 px, halo 96 px) <- this run" in line for line in rows)
    assert any("x1000" in line and "untiled <- this run" in line
               for line in done.stdout.splitlines())
    # Even tiled it does not fit in 2G: L-BFGS-B's history is the part that dominates.
    done = run_main(*common, "--max-memory", "2G", "-o", content.parent / "out.png")
    assert done.returncode == 2
    assert "even in 24 tiles" in done.stderr and "are the largest part" in done.stderr
    assert "--optimizer adam fits up to --height" in done.stderr
    assert "--lbfgs-memory 3 fits up to --height" in done.stderr
    assert "Received: --height 2000" in done.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--tile", "big", "--tile must be off, auto or a core size"),
    ("--tile", "0", "--tile must be off, auto or a core size"),
    ("--max-memory", "6Q", "--max-memory must be a size such as 6G"),
])
def test_bad_tile_and_max_memory_values_exit_2_naming_the_option(image_files, option, value,
                                                                 message):
    content, style = image_files
    done = run_main(content, style, option, value, "--dry-run")
    assert done.returncode == 2 and message in done.stderr


def test_tile_and_max_memory_settings_are_stored_plainly():
    from nst_keras.config import StyleConfig, parse_size, tile_size

    assert StyleConfig().tile == "auto" and StyleConfig().max_memory is None
    assert StyleConfig(tile=512).tile == "512" and tile_size(StyleConfig(tile=" 0512")) == 512
    assert StyleConfig(tile="OFF").tile == "off" and tile_size(StyleConfig(tile="off")) is None
    assert parse_size("6G") == 6 * 2**30 and parse_size("512M") == 512 * 2**20
    assert parse_size("1.5GiB") == int(1.5 * 2**30) and parse_size(4096) == 4096


def test_the_progress_line_says_a_stage_is_tiled(tmp_path):
    from PIL import Image

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(make_image(96, 130, seed=1)).save(content)
    Image.fromarray(make_image(60, 50, seed=2)).save(style)
    done = run_main(content, style, "-o", tmp_path / "out.png", "--weights", "none",
                    "--seed", "0", "--height", "96", "--max-evals", "2", "--tile", "48",
                    "--style-scale", "0.625",
                    "--content-layers", "block4_conv1", "--style-layers",
                    ",".join(LAYERS["style_layers"]), "--precision", "float32")
    assert done.returncode == 0, done.stderr
    assert "tiled: 6 tiles (core 48 px, halo 40 px)" in done.stderr + done.stdout
