"""What a new user hit (issue 26): messages that name the problem and what to do."""

import h5py
import pytest
from PIL import Image

from conftest import make_image, run_main
from nst_keras import errors, plan
from nst_keras.engine import features
from nst_keras.config import StyleConfig

TINY = dict(weights=None, height=48, max_evals=6, seed=0)


def fake_vgg_weights(path, model, names="keras3"):
    """A weights file with one 3x3 kernel per convolution of `model` (no data stored)."""
    with h5py.File(path, "w") as handle:
        channels, index = 3, 0
        for block, count in enumerate(features.BLOCK_CONVS[model]):
            out = min(64 * 2 ** block, 512)
            for conv in range(count):
                name = (f"layers/conv2d_{index}/vars" if names == "keras3"
                        else f"block{block + 1}_conv{conv + 1}/block{block + 1}_conv{conv + 1}")
                handle.create_dataset(f"{name}/0", shape=(3, 3, channels, out), dtype="f4")
                handle.create_dataset(f"{name}/1", shape=(out,), dtype="f4")
                channels, index = out, index + 1
    return path


@pytest.mark.parametrize("names", ["keras3", "legacy"])
def test_a_weights_files_kernels_say_which_vgg_it_is_for(tmp_path, names):
    assert features.weights_file_model(fake_vgg_weights(tmp_path / "a.h5", "vgg16",
                                                        names)) == "vgg16"
    assert features.weights_file_model(fake_vgg_weights(tmp_path / "b.h5", "vgg19",
                                                        names)) == "vgg19"
    (tmp_path / "c.h5").write_bytes(b"not hdf5")
    assert features.weights_file_model(tmp_path / "c.h5") is None


def test_a_vgg16_file_without_model_vgg16_says_to_add_it(tmp_path, image_files):
    content, style = image_files
    weights = fake_vgg_weights(tmp_path / "vgg16.weights.h5", "vgg16")
    done = run_main(content, style, "-o", tmp_path / "o.png", "--weights", weights)
    assert done.returncode == 2
    assert done.stderr == (f"nst-keras: error: the weights file is for vgg16, not vgg19; use "
                           f"--model vgg16. Received: --weights {weights}\n")
    with pytest.raises(ValueError, match="use model=vgg16. Received: weights="):
        plan.check_network(StyleConfig(weights=str(weights)))
    plan.check_network(StyleConfig(weights=str(weights), model="vgg16"))  # The right one.


def test_the_stand_in_file_is_recognised_as_vgg16(stand_in_weights):
    assert features.weights_file_model(stand_in_weights) == "vgg16"


def test_data_that_is_no_image_says_so_and_what_to_use(image_files):
    content, style = image_files
    with pytest.raises(errors.InputError) as caught:
        plan.plan(b"not an image at all\n", [style], config=StyleConfig(**TINY))
    assert str(caught.value) == ("cannot read the content image (20 bytes): it is not an "
                                 "image file; use a JPEG, PNG, WebP, BMP, TIFF or GIF image")
    truncated = Image.fromarray(make_image(48, 64))
    import io

    buffer = io.BytesIO()
    truncated.save(buffer, format="PNG")
    with pytest.raises(errors.InputError, match=r"cannot read the style image \(\d+ bytes\): "):
        plan.plan(content, [buffer.getvalue()[:200]], config=StyleConfig(**TINY))
