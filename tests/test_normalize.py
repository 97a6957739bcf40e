"""Gatys et al.'s normalised VGG (`nst_keras.engine.normalize`): each firing filter's mean is 1 on
the photos, every layer is the original rescaled per filter and nothing else, the cache is
keyed by what it was computed from, and nothing switches to it by itself."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_keras.engine import features, normalize, runtime
from nst_keras.config import StyleConfig
from nst_keras.media.images import preprocess

from conftest import make_image, run_main

SIZE = 32  # Photos cropped to 32x32: block5 is 2x2, enough for every layer.


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A Keras cache of the test's own: nothing is read from, or left in, the user's."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for seed, (h, w) in enumerate([(40, 60), (50, 50), (64, 40)]):
        path = folder / f"photo{seed}.png"
        Image.fromarray(make_image(h, w, seed=seed + 10)).save(path)
        paths.append(str(path))
    return folder, paths


def _layer_outputs(weights, model="vgg16", seed=None, pooling="max", padding="zeros"):
    import keras

    if weights is None:
        keras.utils.set_random_seed(seed)
    return features.build_feature_model(normalize.conv_layers(model), model=model,
                                        weights=weights, pooling=pooling, padding=padding)


def test_each_firing_filter_has_mean_activation_1_on_its_photos(keras_home, photos):
    _, paths = photos
    path = normalize.normalize("vgg16-normalized", None, paths, seed=3, size=SIZE)
    assert path.startswith(str(keras_home))
    normalized = _layer_outputs(path)
    crops = normalize.read_photos(paths, SIZE)
    means = normalize.filter_means(normalized, crops)
    original = normalize.filter_means(_layer_outputs(None, seed=3), crops)
    firing = 0
    for name, mean in means.items():
        fires = normalize.firing(original[name])
        np.testing.assert_allclose(mean[fires], 1.0, atol=1e-3, err_msg=name)
        # Silent filters keep their scale: the original's mean, 0 or nearly.
        np.testing.assert_allclose(mean[~fires], original[name][~fires], rtol=1e-2, atol=1e-7)
        firing += int(fires.sum())
    assert firing > 1000  # Most of VGG16's 4224 filters fire on these photos.
    # The record says what it was computed from.
    record = normalize.record_of(path)
    assert record["base"] == "random-seed-3" and len(record["photos"]) == 3
    assert sum(layer["filters"] for layer in record["layers"].values()) == 4224


@pytest.mark.parametrize("pooling, padding", [("max", "zeros"), ("avg", "symmetric")])
def test_every_layer_is_the_original_rescaled_per_filter_and_nothing_else(
        keras_home, photos, pooling, padding):
    _, paths = photos
    path = normalize.normalize("vgg16-normalized", None, paths, seed=3, size=SIZE)
    scales = normalize.scales_of(normalize.record_means(path))
    x = tf.constant(preprocess(make_image(48, 40, seed=99)))  # Not one of the photos.
    new = features.features_of(_layer_outputs(path, pooling=pooling, padding=padding), x)
    old = features.features_of(_layer_outputs(None, seed=3, pooling=pooling, padding=padding),
                               x)
    for name in normalize.conv_layers("vgg16"):
        expected = old[name].numpy() / scales[name]
        scale = np.abs(expected).max()
        np.testing.assert_allclose(new[name].numpy(), expected, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)
        assert np.abs(scales[name] - 1).max() > 1e-2  # The test can fail: real rescaling.


def test_the_cache_is_keyed_by_the_weights_and_the_photos_bytes(keras_home, photos):
    folder, paths = photos
    import os

    first = normalize.normalize("vgg16-normalized", None, paths, seed=3, size=SIZE)
    stamp = os.stat(first).st_mtime_ns
    assert normalize.normalize("vgg16-normalized", None, paths, seed=3, size=SIZE) == first
    assert os.stat(first).st_mtime_ns == stamp  # Found, not computed again.
    other_seed = normalize.normalize("vgg16-normalized", None, paths, seed=4, size=SIZE)
    assert other_seed != first
    Image.fromarray(make_image(40, 60, seed=77)).save(paths[0])  # Same name, new bytes.
    other_photos = normalize.normalize("vgg16-normalized", None, paths, seed=3, size=SIZE)
    assert other_photos not in (first, other_seed)


def test_the_normalised_model_is_used_only_when_named_and_found(keras_home, photos,
                                                              image_files, tmp_path):
    content, style = image_files
    base = ["--weights", "none", "--seed", "3", "--height", "32", "--max-evals", "3",
            "--model", "vgg16-normalized", "--tile", "off", "-q"]
    # Not computed yet: one line, exit 2, before anything is built.
    result = run_main(content, style, "-o", tmp_path / "a.png", *base)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert ("normalize-vgg PHOTOS --model vgg16-normalized --weights none --seed 3"
            in result.stderr)
    folder, _ = photos
    made = run_main("normalize-vgg", folder, "--model", "vgg16-normalized", "--weights",
                    "none", "--seed", "3", "--size", SIZE)
    assert made.returncode == 0, made.stderr
    path = made.stdout.split(": ", 1)[1].split(" (")[0]
    assert normalize.record_of(path)["base"] == "random-seed-3"
    result = run_main(content, style, "-o", tmp_path / "b.png", *base)
    assert result.returncode == 0, result.stderr
    # The same run with --model vgg16 builds the original network: a cache file changes
    # nothing unless the model names it.
    model = runtime.MODELS.get(["block1_conv1"], model="vgg16", weights=None, seed=3)
    original = _layer_outputs(None, seed=3)
    x = tf.constant(preprocess(make_image(32, 32)))
    np.testing.assert_allclose(features.features_of(model, x)["block1_conv1"].numpy(),
                               features.features_of(original, x)["block1_conv1"].numpy(),
                               rtol=1e-6)
    # Two normalisations of the same weights (other photos): refused, naming both.
    Image.fromarray(make_image(40, 60, seed=77)).save(folder / "photo0.png")
    assert run_main("normalize-vgg", folder, "--model", "vgg16-normalized", "--weights",
                    "none", "--seed", "3", "--size", SIZE).returncode == 0
    with pytest.raises(ValueError, match="2 normalised vgg16s of these weights"):
        normalize.resolve("vgg16-normalized", None, seed=3)
    assert normalize.resolve("vgg16-normalized", path) == path  # One named explicitly.


def test_the_gatys2015_preset_names_the_normalised_network():
    from nst_keras.config import PRESETS

    assert PRESETS["gatys2015"].model == "vgg19-normalized"
    assert StyleConfig().model == "vgg19"


def test_a_folder_without_photos_is_one_line(tmp_path, keras_home):
    result = run_main("normalize-vgg", tmp_path, "--weights", "none", "--seed", "1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "has no photos" in result.stderr


def test_a_normalised_model_runs_from_a_weights_file_normalised_or_base(keras_home, photos,
                                                                         image_files, tmp_path):
    # A weights *file* (not random weights): the file's kernels say "vgg16", which the check
    # of the network must take as the architecture of vgg16-normalized, not as a mismatch.
    import keras

    keras.utils.set_random_seed(5)
    base = str(tmp_path / "vgg16_random.weights.h5")
    keras.applications.VGG16(include_top=False, weights=None,
                             input_shape=(None, None, 3)).save_weights(base)
    assert features.weights_file_model(base) == "vgg16"
    folder, _ = photos
    made = run_main("normalize-vgg", folder, "--model", "vgg16-normalized", "--weights", base,
                    "--size", SIZE)
    assert made.returncode == 0, made.stderr
    path = made.stdout.split(": ", 1)[1].split(" (")[0]
    assert made.stdout.rstrip().endswith(f"--model vgg16-normalized --weights {path}.")
    assert normalize.record_of(path)["base"].startswith("sha256-")
    content, style = image_files
    common = ["--height", "32", "--max-evals", "2", "--tile", "off", "--seed", "0", "-q"]
    # (1) normalize-vgg's own advice: the normalised file; (2) the README's: the base file.
    for name, weights in (("normalised", path), ("base", base)):
        output = tmp_path / f"{name}.png"
        result = run_main(content, style, "-o", output, "--model", "vgg16-normalized",
                          "--weights", weights, *common)
        assert result.returncode == 0, (name, result.stderr)
        assert output.is_file()
    # Both name the same network: the normalised one, whose features are the base's divided
    # by each filter's mean (not the base's).
    x = tf.constant(preprocess(make_image(32, 32, seed=4)))
    by_file = runtime.MODELS.get(["block1_conv1"], model="vgg16-normalized", weights=path)
    by_base = runtime.MODELS.get(["block1_conv1"], model="vgg16-normalized", weights=base)
    plain = runtime.MODELS.get(["block1_conv1"], model="vgg16", weights=base)
    new = features.features_of(by_base, x)["block1_conv1"].numpy()
    np.testing.assert_array_equal(features.features_of(by_file, x)["block1_conv1"].numpy(), new)
    scale = normalize.scales_of(normalize.record_means(path))["block1_conv1"]
    np.testing.assert_allclose(new, features.features_of(plain, x)["block1_conv1"].numpy()
                               / scale, rtol=1e-4, atol=1e-4)
    assert np.abs(scale - 1).max() > 1e-2
    # A file of the other VGG is still refused, in one line, naming the model that fits it.
    result = run_main(content, style, "-o", tmp_path / "x.png", "--model", "vgg19-normalized",
                      "--weights", base, *common)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "for vgg16, not vgg19-normalized; use --model vgg16-normalized" in result.stderr
    assert f"Received: --weights {base}" in result.stderr


def test_normalising_the_imagenet_vgg_downloads_it_first(keras_home, photos, monkeypatch):
    # A fresh machine: the ImageNet weights are not in the Keras cache yet. normalize-vgg
    # asks Keras for them (here: no network) instead of refusing weights "not on this
    # machine", and a failed download is one line saying where to put the file.
    import keras

    asked = []

    def offline(include_top=True, weights="imagenet", **kwargs):
        asked.append((include_top, weights))
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/"
                        "keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_"
                        "notop.h5: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    folder, _ = photos
    result = run_main("normalize-vgg", folder, "--size", SIZE)
    assert asked == [(False, "imagenet")]
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot download the ImageNet weights of vgg19-normalized (no network?)" in \
        result.stderr
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in result.stderr
    # And a run on it, before normalize-vgg: one line naming what to run.
    with pytest.raises(ValueError, match="normalize-vgg PHOTOS --model vgg19-normalized "
                                         "--weights imagenet. Received"):
        normalize.resolve("vgg19-normalized", "imagenet")
