"""Shared fixtures: tiny seeded images, random-weight settings, and the optional real data.

Every test runs offline: `weights=None` (seeded random initialisation) on small images.
Tests that need the ImageNet weights or ../shared skip when those are absent.
"""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_IMAGES = SHARED / "images"
STAND_IN_WEIGHTS = SHARED / "weights" / "vgg16_hed_notop.weights.h5"

# Keep TensorFlow's C++ logging quiet in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_image(height, width, seed=0):
    """A structured RGB uint8 test image: smooth gradients, a disc and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * xx / max(1, width - 1)
    g = 255 * yy / max(1, height - 1)
    b = 128 + 100 * np.sin(xx / 3.0 + seed) * np.cos(yy / 4.0)
    disc = (yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (min(height, width) / 4) ** 2
    image = np.stack([r, g, b], axis=-1)
    image[disc] = [240, 30, 60]
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def content_rgb():
    return make_image(48, 64, seed=1)


@pytest.fixture
def style_rgb():
    return make_image(40, 40, seed=2)


@pytest.fixture
def image_files(tmp_path, content_rgb, style_rgb):
    """A content PNG and a style JPEG on disk."""
    from PIL import Image

    content = tmp_path / "content.png"
    style = tmp_path / "style.jpg"
    Image.fromarray(content_rgb).save(content)
    Image.fromarray(style_rgb).save(style)
    return content, style


@pytest.fixture
def tiny_settings():
    """Settings for a fast offline run: random seeded weights, small image, few evaluations."""
    return dict(weights=None, height=48, max_evals=12, seed=0)


@pytest.fixture
def stand_in_weights():
    if not STAND_IN_WEIGHTS.is_file():
        pytest.skip("the offline stand-in weights in ../shared/weights are absent")
    return str(STAND_IN_WEIGHTS)


@pytest.fixture
def shared_images():
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is absent")
    return SHARED_IMAGES


def prepared(content, styles, config):
    """(content, styles) as a plan loads them: the arrays a run of `config` starts from."""
    from nst_keras.plan import plan

    job = plan(content, styles, config=config)
    return job.content, list(job.styles)


def run_main(*args):
    """`cli.main(args)` in this process, as a subprocess would report it: returncode, stdout
    and stderr. For the cases where the process boundary is not the point (usage errors):
    no TensorFlow import per case."""
    import contextlib
    import io
    import types

    from nst_keras.commands import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exit_:  # --help and --version end in argparse's exit.
            code = exit_.code or 0
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
