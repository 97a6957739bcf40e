"""The memory plan sees every input, and the dry run answers when a run does not fit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import run_main


@pytest.fixture
def photo_pair(tmp_path):
    """A 1024 x 768 content and a 64 x 64 style on disk (a plan reads only their headers)."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.new("RGB", (1024, 768), (90, 120, 200)).save(content)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(style)
    return content, style


def test_a_dry_run_that_does_not_fit_prints_the_table_the_largest_height_and_why(photo_pair):
    from nst_keras import plan
    from nst_keras.engine import runtime
    from nst_keras.config import StyleConfig, parse_size

    content, style = photo_pair
    done = run_main(content, style, "--weights", "none", "--height", "1400", "--max-memory",
                    "2.5G", "--precision", "float32", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    rows = [line for line in lines if line.split()[:2] == ["1/1", "1867x1400"]]
    assert len(rows) == 2 and sum("<- this run" in row for row in rows) == 1
    config = StyleConfig(weights=None, height=1400, precision="float32", max_memory="2.5G")
    fits = plan.fitting_height(config, 1024 / 768, "float32", parse_size("2.5G"), ((64, 64),))
    assert 0 < fits < 1400
    assert f"Largest height that fits in float32: {fits} " in done.stdout
    need = runtime.estimate_memory(1400, 1867, config, "float32", 512)["total"]
    reason = [line for line in lines if line.startswith("This run does not fit:")]
    assert len(reason) == 1 and f"needs about {need / 2**30:.1f} GiB" in reason[0]
    assert "about 2.5 GiB is available" in reason[0]
    advice = [line for line in lines if line.startswith("What would fit:")]
    # The largest height printed is the one the advice gives (the plan's aspect).
    assert len(advice) == 1 and f"--height {fits} or less" in advice[0]
    # L-BFGS-B's history has its own column, and the suggestion says how large Adam (and a
    # third of the history) reach in the same budget, from the same estimate.
    header = lines[1].split()
    history = float(rows[0].split()[header.index("history")].rstrip("G"))
    assert history == pytest.approx(2 * config.lbfgs_memory * 8 * 1400 * 1867 * 3 / 2**30, abs=0.006)
    for setting, value in (("optimizer", "adam"), ("lbfgs_memory", 3)):
        reach = plan.fitting_height(config.replace(**{setting: value}), 1024 / 768, "float32",
                                    parse_size("2.5G"))
        assert reach > fits
        assert f"--{setting.replace('_', '-')} {value} fits up to --height {reach}" in advice[0]
    # The same run without --dry-run is refused in one line, exit 2.
    done = run_main(content, style, "--weights", "none", "--height", "1400", "--max-memory",
                    "2.5G", "--precision", "float32", "-o", content.parent / "out.png")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (content.parent / "out.png").exists()


def test_a_style_too_large_for_the_memory_is_refused_before_it_is_resized(image_files,
                                                                         monkeypatch):
    from nst_keras.media import images

    content, style = image_files  # 64 x 48 and 40 x 40.
    decoded = []
    monkeypatch.setattr(images, "load_image", lambda *a, **k: decoded.append(a) or 1 / 0)
    common = [content, style, "--weights", "none", "--height", "48", "--tile", "off",
              "--precision", "float32", "--max-memory", "2G"]
    for option, value in (("--style-scale", "60"), ("--style-height", "2880")):
        done = run_main(*common, option, value, "-o", content.parent / "out.png")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "the style image is 2880x2880 as the network sees it" in lines[0]
        assert f"Received: {option} {value}" in lines[0]
        suggested = lines[0].split(f"try {option} ")[1].split(" ")[0]
        assert float(suggested) < float(value)
        # The value it suggests fits; the dry run of the refused one says why, exit 0.
        done = run_main(*common, option, suggested, "--dry-run")
        assert done.returncode == 0 and "does not fit" not in done.stdout, done.stdout
        done = run_main(*common, option, value, "--dry-run")
        assert done.returncode == 0 and "the style image is 2880x2880" in done.stdout
        assert f"What would fit: try {option} {suggested} or less." in done.stdout
    assert decoded == []  # Refused from the header alone: nothing decoded or resized.


def test_a_style_that_fits_only_tiled_makes_auto_tile_the_stage(image_files):
    from nst_keras import plan

    content, style = image_files
    job = plan.plan(content, style, weights=None, height=48, precision="float32",
                    style_scale=(60,), max_memory="2G", load=False)
    assert job.memory["need"] <= job.memory["budget"]
    assert job.stages[-1].tiles is not None and job.stages[-1].styles == ((2880, 2880),)


def _half_mask(size, path):
    """A mask of `size` (w, h), white on its left half, saved to `path`."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    mask.save(path, quality=95)
    return path


@pytest.fixture
def huge_files(tmp_path, content_rgb, style_rgb):
    """A 64 x 48 content and, 125 x its size each way, a mask (JPEG and PNG) and an init;
    `budget`: a --max-memory the run fits in, but not a full decode of those files."""
    from nst_keras import plan
    from nst_keras.engine import runtime
    from nst_keras.media import images

    content = tmp_path / "content.png"
    Image.fromarray(content_rgb).save(content)
    init = tmp_path / "init.jpg"
    Image.new("RGB", (8000, 6000), (20, 200, 40)).save(init, quality=95)
    need = plan.plan(content, style_rgb, weights=None, height=48, load=False).memory["need"]
    full = runtime.BASE_BYTES + images.DECODE_BYTES_PER_PIXEL * 8000 * 6000
    assert full > need + 2**25
    return {"content": content, "init": init, "budget": f"{(need + full) // 2**21}M",
            "mask": _half_mask((8000, 6000), tmp_path / "mask.jpg"),
            "mask_png": _half_mask((8000, 6000), tmp_path / "mask.png")}


def test_masks_and_init_images_far_larger_than_the_run_are_decoded_reduced_and_used(
        huge_files, style_rgb, monkeypatch):
    from nst_keras import plan
    from nst_keras.engine import runtime
    from nst_keras.media import images

    # A full decode of the 48 Mpx files would not fit in this budget; the reduced one does.
    from nst_keras.config import parse_size

    budget = huge_files["budget"]
    full = runtime.BASE_BYTES + images.DECODE_BYTES_PER_PIXEL * 8000 * 6000
    assert full > parse_size(budget)
    assert images.decoded_size(str(huge_files["mask"]), (64, 48)) == (1000, 750)
    assert images.decoded_size(str(huge_files["mask_png"]), (64, 48)) == (8000, 6000)
    from PIL import ImageFile

    decoded = []  # The size of every image decoded (header reads decode nothing).
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    job = plan.plan(huge_files["content"], style_rgb, masks=[str(huge_files["mask"])],
                    init=str(huge_files["init"]), weights=None, height=48, max_memory=budget)
    assert (1000, 750) in decoded and max(w for w, _ in decoded) == 1000  # At 1/8.
    assert job.masks[0].shape == (48, 64) and job.init.shape == (48, 64, 3)
    assert job.masks[0][:, :30].min() > 0.95 and job.masks[0][:, 34:].max() < 0.05
    np.testing.assert_allclose(job.init.reshape(-1, 3).mean(0), (20, 200, 40), atol=3)


def test_a_run_with_a_huge_mask_and_init_completes_and_a_png_that_cannot_decode_is_refused(
        huge_files, tmp_path):
    style = tmp_path / "style.png"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(style)
    out = tmp_path / "out.png"
    common = [huge_files["content"], style, "--weights", "none", "--height", "48",
              "--max-evals", "2", "--max-memory", huge_files["budget"], "-q"]
    done = run_main(*common, "--style-mask", huge_files["mask"], "--init", huge_files["init"],
                    "-o", out)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (64, 48)
    # A PNG has no reduced decode: its full 48 Mpx does not fit, refused in one line.
    done = run_main(*common, "--style-mask", huge_files["mask_png"], "-o", out.with_name("b.png"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "style mask 1" in lines[0] and "decodes at 8000x6000 even reduced" in lines[0]
    assert f"Received: --style-mask {huge_files['mask_png']}" in lines[0]
    assert not out.with_name("b.png").exists()


def test_a_video_frame_counts_the_previous_frame_and_is_tiled_like_a_still(image_files):
    from nst_keras import plan
    from nst_keras.engine import runtime

    content, style = image_files
    still = plan.plan(content, style, weights=None, height=48, tile="32", load=False)
    frame = plan.plan(content, style, weights=None, height=48, tile="32", load=False,
                      temporal=True)
    # The tiled objective carries the temporal term, so a frame is tiled as a still is.
    assert still.stages[-1].tiles == frame.stages[-1].tiles is not None
    parts = frame.stages[-1].memory
    assert parts["temporal"] == runtime.TEMPORAL_BYTES_PER_VALUE * 48 * 64 * 3
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")


class _Device:
    """A stand-in for one of `device_lib.list_local_devices()`'s `DeviceAttributes`."""

    def __init__(self, device_type, memory_limit):
        self.device_type, self.memory_limit = device_type, memory_limit


def test_the_gpu_budget_is_the_memory_limit_tensorflow_reports_for_the_device(
        monkeypatch, photo_pair):
    """No GPU here: TensorFlow's device list is substituted. The budget is the GPU's
    allocator limit, not the host's RAM, and `--max-memory` still lowers it; the plan's
    largest height on that GPU is the one that fits in it."""
    from tensorflow.python.client import device_lib

    from nst_keras import plan
    from nst_keras.engine import runtime
    from nst_keras.config import StyleConfig, parse_size

    gpu_limit = 40 * 2**30 + 12345
    monkeypatch.setattr(device_lib, "list_local_devices",
                        lambda *a: [_Device("CPU", 268435456), _Device("GPU", gpu_limit)])
    monkeypatch.setattr(runtime, "nvidia_smi_free_bytes", lambda: pytest.fail("not needed"))
    assert runtime.gpu_memory_bytes() == gpu_limit
    assert runtime.memory_budget("gpu") == gpu_limit
    config = StyleConfig(weights=None, height=768, precision="float32", device="gpu")
    assert runtime.run_budget(config, "gpu") == gpu_limit
    assert runtime.run_budget(config.replace(max_memory="8G"), "gpu") == parse_size("8G")
    assert runtime.run_budget(config.replace(max_memory="64G"), "gpu") == gpu_limit

    # The plan on a (substituted) GPU: `--height auto` takes the largest that fits in the
    # GPU's limit, and the host's RAM (24 GB here) plays no part in it.
    monkeypatch.setattr(runtime, "placement",
                        lambda c: runtime.Placement("gpu", "float32", "GPU stand-in"))
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: (2**30, None))
    content, style = photo_pair
    big = plan.plan(str(content), str(style), config=config.replace(tile="off"), load=False,
                    fit_height=True)
    fits = plan.fitting_height(config.replace(tile="off"), 1024 / 768, "float32", gpu_limit,
                               [(64, 64)])
    assert big.memory["budget"] == gpu_limit
    assert big.stages[-1].height == min(fits, 768) and fits > 768
    assert big.memory["fits"] == fits


def test_the_gpu_budget_falls_back_to_nvidia_smi_then_to_16_gib(monkeypatch):
    import subprocess

    from tensorflow.python.client import device_lib

    from nst_keras.engine import runtime

    def broken(*args):
        raise RuntimeError("no GPU")

    monkeypatch.setattr(device_lib, "list_local_devices", broken)
    calls = []

    def smi(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="81559\n", stderr="")

    monkeypatch.setattr(subprocess, "run", smi)
    assert runtime.gpu_memory_bytes() == 81559 * 2**20
    assert calls[0][0] == "nvidia-smi" and "--query-gpu=memory.free" in calls[0]
    # A device list without a GPU, or with a zero limit, is not a budget either.
    monkeypatch.setattr(device_lib, "list_local_devices", lambda *a: [_Device("GPU", 0)])
    assert runtime.memory_budget("gpu") == 81559 * 2**20

    def missing(argv, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(subprocess, "run", missing)
    assert runtime.gpu_memory_bytes() is None
    assert runtime.memory_budget("gpu") == runtime.GPU_FALLBACK_BYTES == 16 * 2**30
