"""Gatys et al. 2017's controls: colour, where each style goes (masks), coarse to fine."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_keras import plan, run
from nst_keras.commands import cli
from nst_keras.engine import color
from nst_keras.config import StyleConfig
from nst_keras.media.images import load_image

from conftest import make_image, run_main

F32 = dict(weights=None, height=48, seed=0, precision="float32")


@pytest.fixture
def images():
    return make_image(48, 64, seed=1), make_image(40, 40, seed=2), make_image(30, 60, seed=3)


def _noisy_x(problem):
    rng = np.random.default_rng(0)
    return problem.x0 + rng.normal(0, 10, problem.x0.shape).astype(np.float32)


def test_an_all_one_mask_reproduces_the_unmasked_loss(images):
    content, style, _ = images
    config = StyleConfig(**F32)
    plain = run.build_problem(content, [style], config)
    masked = run.build_problem(content, [style], config, masks=[np.ones((48, 64), np.float32)])
    x = _noisy_x(plain)
    plain_loss, _, plain_values = plain.objective(x)
    masked_loss, _, masked_values = masked.objective(x)
    assert float(masked_loss) == pytest.approx(float(plain_loss), rel=1e-5)
    for layer in ("block1_conv1", "block3_conv1", "block5_conv1"):
        assert float(masked_values[f"style/1/{layer}"]) == pytest.approx(
            float(plain_values[f"style/{layer}"]), rel=1e-4)


def test_an_all_zero_mask_makes_its_styles_loss_zero(images):
    content, style, other = images
    problem = run.build_problem(content, [style, other], StyleConfig(**F32), masks=[
        np.ones((48, 64), np.float32), np.zeros((48, 64), np.float32)])
    _, grad, values = problem.objective(_noisy_x(problem))
    second = [float(v) for name, v in values.items() if name.startswith("style/2/")]
    first = [float(v) for name, v in values.items() if name.startswith("style/1/")]
    assert len(second) == 5 and all(v == 0.0 for v in second)
    assert all(v > 0 for v in first[:3])


def test_half_masks_split_the_style_by_region(images):
    # Left half one style, right half the other: each region's guided Gram is compared with
    # its style's Gram rescaled to the region's size; the gradient of style 2's terms alone
    # is zero in the left half at the first layer.
    content, style, other = images
    left = np.zeros((48, 64), np.float32)
    left[:, :32] = 1.0
    config = StyleConfig(**F32, content_weight=0.0, tv_weight=0.0,
                         style_layers=("block1_conv1",))
    only_second = run.build_problem(content, [style, other], config.replace(), masks=[
        np.zeros_like(left), 1.0 - left])
    _, grad, _ = only_second.objective(_noisy_x(only_second))
    grad = np.abs(grad.numpy()[0])
    assert grad[:, :30].max() == 0.0 and grad[:, 34:].max() > 0  # 3x3 conv: 1-pixel halo.


def test_mask_checks(images, tmp_path):
    content, style, other = images
    config = StyleConfig(**F32)
    with pytest.raises(ValueError, match="one style mask per style \\(2\\)"):
        plan.check_mask_count([np.ones((48, 64))], 2, config)
    with pytest.raises(ValueError, match="aspect"):
        plan.load_masks([np.ones((48, 48), np.float32)], (48, 64))
    with pytest.raises(ValueError, match="every style mask is black"):
        plan.load_masks([np.zeros((48, 64), np.float32)] * 2, (48, 64))
    with pytest.raises(ValueError, match="do not combine"):
        plan.check_mask_count([np.ones((48, 64))] * 2, 2, config.replace(style_blend_weights=(1, 1)))
    with pytest.raises(ValueError, match="cannot read the style mask 1"):
        plan.load_masks([str(tmp_path / "missing.png")], (48, 64))
    # A grey PNG of another size but the same aspect ratio: resized, values in [0, 1].
    path = tmp_path / "mask.png"
    Image.fromarray(np.full((96, 128), 128, np.uint8)).save(path)
    (mask,) = plan.load_masks([str(path)], (48, 64))
    assert mask.shape == (48, 64) and np.allclose(mask, 128 / 255, atol=1e-3)


def _bad_mask_run(tmp_path, files, *extra):
    return run_main(files["c"], "--style", files["a"], files["b"], "-o", tmp_path / "o.png",
                    "--weights", "none", "--height", "48", *extra)


@pytest.fixture
def files(tmp_path, images):
    paths = {}
    for name, image in zip("cab", images):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(image).save(paths[name])
    for name, (h, w, value) in {"white": (48, 64, 255), "black": (48, 64, 0),
                                "square": (50, 50, 255)}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(np.full((h, w), value, np.uint8)).save(paths[name])
    return paths


@pytest.mark.parametrize("masks, needle", [
    (("square", "white"), "style mask 1 is 50x50 (aspect 1) but the content is 64x48"),
    (("white",), "give one style mask per style (2)"),
    (("black", "black"), "every style mask is black"),
])
def test_bad_masks_exit_2_in_one_line(tmp_path, files, masks, needle):
    done = _bad_mask_run(tmp_path, files, "--style-mask", *[files[m] for m in masks])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Building" not in done.stderr


def _unclipped(out_rgb, content_rgb):
    """Pixels where the output's luminance with the content's chroma needs no clipping."""
    yiq = color.rgb_to_yiq(content_rgb)
    yiq[..., 0] = color.luminance(out_rgb)
    raw = color.yiq_to_rgb(yiq)
    return np.all((raw >= 0) & (raw <= 255), axis=-1)


@pytest.mark.parametrize("mode", ["luminance", "swap"])
def test_luminance_and_swap_keep_the_contents_colour_channels(images, mode):
    content, style, _ = images
    result = run.transfer_style(content, style, **F32, max_evals=5, preserve_color=mode)
    keep = _unclipped(result.image, content)
    assert keep.mean() > 0.5
    iq_out = color.rgb_to_yiq(result.image)[..., 1:][keep]
    iq_content = color.rgb_to_yiq(content)[..., 1:][keep]
    assert np.abs(iq_out - iq_content).max() < 1.0  # Rounding to uint8 only.
    plain = run.transfer_style(content, style, **F32, max_evals=5)
    assert np.abs(color.rgb_to_yiq(plain.image)[..., 1:] - color.rgb_to_yiq(content)[..., 1:]
                  ).max() > 5  # Without the mode, the style's colours come in.


def test_luminance_mode_feeds_the_network_grey_images(images):
    content, style, _ = images
    grey_content, (grey_style,) = run.color_inputs(content, [style], "luminance")
    for image in (grey_content, grey_style):
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
            image[..., 1], image[..., 2])
    lum_c, lum_s = color.luminance(content), grey_style[..., 0].astype(np.float64)
    assert lum_s.mean() == pytest.approx(lum_c.mean(), abs=1.0)
    assert lum_s.std() == pytest.approx(lum_c.std(), rel=0.05)


def test_histogram_mode_gives_the_style_the_contents_colour_statistics():
    # Images away from 0 and 255 so clipping does not bend the statistics.
    rng = np.random.default_rng(4)
    content = np.clip(rng.normal([150, 90, 60], [20, 15, 10], (40, 50, 3)), 0, 255).astype(np.uint8)
    style = np.clip(rng.normal([70, 110, 170], [10, 25, 15], (30, 30, 3)), 0, 255).astype(np.uint8)
    _, (recoloured,) = run.color_inputs(content, [style], "histogram")
    flat_c = content.reshape(-1, 3).astype(np.float64)
    flat_r = recoloured.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(flat_r.mean(0), flat_c.mean(0), atol=1.0)
    cov_c, cov_r = np.cov(flat_c.T), np.cov(flat_r.T)
    assert np.linalg.norm(cov_r - cov_c) < 0.05 * np.linalg.norm(cov_c)


def test_coarse_to_fine_ends_at_the_requested_size_and_each_stage_starts_from_the_last(
        images, monkeypatch):
    from nst_keras import render
    from nst_keras.media.images import preprocess, resize_float

    content, style, _ = images
    big = load_image(content, 96)
    config = StyleConfig(weights=None, height=96, seed=0, max_evals=9, scales=3,
                         precision="float32")
    solved, problems = [], []
    original = render._solve
    monkeypatch.setattr(render, "_solve", lambda p, cb, offset, stop=None, **kw: solved.append(
        original(p, cb, offset, stop, **kw)) or solved[-1])
    seen = []
    result = run.render(run.plan(big, [load_image(style, 96)], config=config),
                        callback=seen.append, on_stage=lambda start: problems.append(start.problem))
    assert [p.x0.shape[1] for p in problems] == [24, 48, 96] == run.stage_heights(config)
    assert result.image.shape == big.shape
    assert [s["evaluations"] for s in result.stages] == [3, 3, 3] and result.evaluations == 9
    for (_, previous_best, _), problem in zip(solved, problems[1:]):
        # Each stage starts from the last one's best image as a float, upsampled: no uint8
        # rounding between stages.
        h, w = problem.x0.shape[1:3]
        np.testing.assert_allclose(problem.x0, preprocess(resize_float(previous_best, (w, h))),
                                   atol=1e-3)
        assert not np.allclose(problem.x0, np.round(problem.x0))
    # The targets are recomputed at each size.
    assert [p.objective.image_hw for p in problems] == [(24, 32), (48, 64), (96, 128)]
    assert [p.stage for p in seen][-1] == 3 and seen[-1].stages == 3
    assert [p.evaluations for p in seen] == sorted(p.evaluations for p in seen)
    assert seen[-1].evaluations <= 9 and result.history[-1]["evaluations"] == seen[-1].evaluations


def test_stage_sizes_and_budgets():
    assert run.stage_heights(StyleConfig(height=800, scales=3)) == [200, 400, 800]
    assert run.stage_heights(StyleConfig(height=768, start_height=100)) == [100, 200, 400, 768]
    assert run.stage_heights(StyleConfig(height=512, scales=3, start_height=128)) == [128, 256, 512]
    assert run.stage_budgets(400, 3) == [133, 133, 134]
    with pytest.raises(ValueError, match="at least the number of stages"):
        run.stage_budgets(2, 3)
    config = StyleConfig(height=48, scales=3)
    with pytest.raises(ValueError, match="content image would be 12 pixels on its shorter side "
                                         "at the first stage"):
        plan.check_stage_sizes(config, run.stage_heights(config), (64, 48), [(64, 48)])
    config = StyleConfig(height=64, scales=2, style_scale=0.4)  # Styles 26 high, 13 at first.
    with pytest.raises(ValueError, match="style image would be 13 pixels on its shorter side at "
                                         "the first stage.*Received: scales=2"):
        plan.check_stage_sizes(config, run.stage_heights(config), (85, 64), [(40, 26)])
    with pytest.raises(ValueError, match="Received: style_scale=0.1"):
        plan.check_stage_sizes(StyleConfig(height=64, style_scale=0.1), [64], (85, 64),
                               [(40, 26)])
    assert run.stage_heights(StyleConfig(height=400, start_height=399, scales=5)) == [399, 400]


def test_coarse_to_fine_from_the_command_line(files, tmp_path, capsys):
    code = cli.main([str(files["c"]), str(files["a"]), "-o", str(tmp_path / "o.png"),
                     "--weights", "none", "--height", "64", "--start-height", "32",
                     "--max-evals", "4", "--preserve-color", "luminance", "-q"])
    assert code == 0 and capsys.readouterr().err == ""
    assert Image.open(tmp_path / "o.png").size == (85, 64)
    code = cli.main([str(files["c"]), str(files["a"]), "-o", str(tmp_path / "o.png"),
                     "--weights", "none", "--height", "48", "--scales", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "at the first stage" in err and "Received: --scales 3" in err


def test_dry_run_prints_the_estimate_per_stage_and_precision_and_computes_nothing(
        files, tmp_path, capsys):
    out = tmp_path / "o.png"
    code = cli.main([str(files["c"]), str(files["a"]), "-o", str(out), "--height", "64",
                     "--scales", "2", "--dry-run", "--weights", "none"])
    text = capsys.readouterr().out
    assert code == 0 and not out.exists()
    rows = [line for line in text.splitlines() if "/2" in line.split()[0:1][0]]
    assert len(rows) == 4  # 2 stages x 2 precisions.
    assert "43x32" in text and "85x64" in text and "Largest height that fits in bfloat16" in text
    assert sum(" <- this run" in row for row in rows) == 2


def test_height_auto_takes_the_largest_that_fits_or_refuses(files, tmp_path, capsys,
                                                           monkeypatch):
    from nst_keras.engine import runtime

    config = StyleConfig()
    budget = runtime.estimate_memory(40, 53, config, "float32")["total"]
    monkeypatch.setattr(runtime, "memory_budget", lambda device: budget)
    code = cli.main([str(files["c"]), str(files["a"]), "-o", str(tmp_path / "o.png"),
                     "--height", "auto", "--dry-run", "--precision", "float32",
                     "--weights", "none"])  # (A dry run checks the weights too.)
    assert code == 0
    err = capsys.readouterr().err
    assert "--height auto: 40 (the largest that fits" in err
    monkeypatch.setattr(runtime, "memory_budget", lambda device: 2**20)
    code = cli.main([str(files["c"]), str(files["a"]), "-o", str(tmp_path / "o.png"),
                     "--height", "auto"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not even the smallest size fits" in err[0]


def test_largest_height_is_the_largest_that_fits():
    from nst_keras.engine import runtime

    config = StyleConfig()
    for budget_gib in (1.0, 3.0, 12.0):
        budget = int(budget_gib * 2**30)
        h = runtime.largest_height(config, 4 / 3, "bfloat16", budget)
        assert runtime.estimate_memory(h, round(h * 4 / 3), config, "bfloat16")["total"] <= budget
        assert runtime.estimate_memory(h + 1, round((h + 1) * 4 / 3), config, "bfloat16")[
            "total"] > budget


@pytest.mark.slow
def test_the_estimate_is_within_25_percent_of_a_measured_peak(tmp_path, files):
    # A real run in a fresh process at a small size; its peak resident memory against the
    # estimate. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child of
    # this (large) test process would report the parent's peak.
    from nst_keras.engine import runtime

    child = ("import sys\nfrom nst_keras.commands import cli\ncode = cli.main(sys.argv[1:])\n"
             "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
             "print(int(hwm.split()[1]) * 1024, code)\n")
    big = tmp_path / "big.png"
    Image.fromarray(make_image(192, 256, seed=5)).save(big)
    peaks = []
    for _ in range(2):  # The smaller of two.
        done = subprocess.run([sys.executable, "-c", child, str(big), str(files["a"]), "-o",
                               str(tmp_path / "o.png"), "--weights", "none", "--height", "192",
                               "--max-evals", "2", "--precision", "float32", "-q"],
                              capture_output=True, text=True, timeout=300)
        peak, code = (int(v) for v in done.stdout.split())
        assert code == 0, done.stderr
        peaks.append(peak)
    peak = min(peaks)
    estimate = runtime.estimate_memory(192, 256, StyleConfig(), "float32")["total"]
    assert abs(estimate / peak - 1) < 0.25, (estimate, peak)


def test_mask_arrays_follow_one_convention():
    from nst_keras.media.images import load_mask

    size = (8, 6)
    half = np.zeros((6, 8), bool)
    half[:, :4] = True
    for array in (half, half.astype(np.uint8) * 255, half.astype(np.float32),
                  np.repeat(half.astype(np.float64)[..., None], 3, axis=-1)):
        mask = load_mask(array, size)
        assert mask[:, 0].min() > 0.95 and mask[:, -1].max() < 0.05, array.dtype
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        load_mask(half.astype(np.float32) * 255, size)


def test_a_failure_in_a_later_stage_keeps_the_earlier_stages_image(images, monkeypatch):
    from nst_keras import errors, render

    content, style, _ = images
    big = load_image(content, 64)
    original, calls = render._solve, []

    def failing(problem, callback, offset, stop=None, **checkpointing):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt()  # Ctrl-C as the second stage starts (the Python API).
        return original(problem, callback, offset, stop, **checkpointing)

    monkeypatch.setattr(render, "_solve", failing)
    config = StyleConfig(weights=None, height=64, seed=0, max_evals=4, scales=2,
                         preserve_color="swap")
    with pytest.raises(errors.Interrupted) as caught:
        run.render(run.plan(big, [load_image(style, 64)], config=config))
    image = caught.value.best_image
    assert image is not None and image.shape == big.shape  # Upsampled to the final size.
    keep = _unclipped(image, big)
    np.testing.assert_array_less(  # And its colours finished as the mode says.
        np.abs(color.rgb_to_yiq(image)[..., 1:][keep] - color.rgb_to_yiq(big)[..., 1:][keep]), 1.0)


def test_iterations_count_on_across_stages(images):
    content, style, _ = images
    seen = []
    job = run.plan(load_image(content, 64), [load_image(style, 64)],
                   config=StyleConfig(weights=None, height=64, seed=0, max_evals=6, scales=2))
    result = run.render(job, callback=seen.append)
    assert [p.iteration for p in seen] == list(range(1, len(seen) + 1))
    assert [h["iteration"] for h in result.history] == [p.iteration for p in seen]
    assert [p.stage for p in seen][0] == 1 and seen[-1].stage == 2
