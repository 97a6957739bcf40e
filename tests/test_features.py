"""The VGG feature model: truncation, outputs, pooling, layer names."""

import os

import numpy as np
import pytest

from nst_keras.engine import features, runtime


@pytest.mark.parametrize(
    "name, expected",
    [
        ("conv4_2", "block4_conv2"),
        ("relu4_2", "block4_conv2"),  # Keras convs are post-ReLU: relu4_2 is block4_conv2.
        ("block4_conv2", "block4_conv2"),
        ("conv1_1", "block1_conv1"),
        ("pool3", "block3_pool"),
        ("block5_pool", "block5_pool"),
    ],
)
def test_layer_aliases_resolve(name, expected):
    assert features.resolve_layer_name(name) == expected


def test_unknown_layers_suggest_close_names():
    with pytest.raises(ValueError, match=r"Did you mean conv4_2.*Received: layer='conv4_22'"):
        features.resolve_layer_name("conv4_22")
    # VGG16 has no fourth conv in block 4.
    with pytest.raises(ValueError, match="Received: layer='conv4_4'"):
        features.resolve_layer_name("conv4_4", model="vgg16")


def test_layer_names_count_the_convs():
    assert sum("conv" in n for n in features.layer_names("vgg19")) == 16
    assert sum("conv" in n for n in features.layer_names("vgg16")) == 13


def test_minimum_size():
    assert features.minimum_size(["conv1_1"]) == 1
    assert features.minimum_size(["conv1_1", "conv5_1"]) == 16
    assert features.minimum_size(["pool5"]) == 32


def test_feature_model_ends_at_the_deepest_requested_layer():
    model = features.build_feature_model(["conv3_1", "block1_conv1", "relu2_1"], weights=None)
    names = [layer.name for layer in model.layers]
    assert names[-1] == "block3_conv1"
    assert "block3_conv2" not in names and "block5_conv1" not in names
    outputs = features.features_of(model, np.zeros((1, 32, 40, 3), dtype=np.float32))
    # One output per layer, keyed by its Keras name; shapes as `layer_shape` computes them.
    assert {name: tuple(o.shape) for name, o in outputs.items()} == {
        "block3_conv1": (1, 8, 10, 256),
        "block1_conv1": (1, 32, 40, 64),
        "block2_conv1": (1, 16, 20, 128),
    }
    for name, output in outputs.items():
        assert features.layer_shape(name, 32, 40) == tuple(output.shape[1:])
    assert features.layer_shape("pool2", 33, 41) == (8, 10, 128)


def test_duplicate_layers_give_one_output():
    model = features.build_feature_model(["conv1_1", "block1_conv1", "relu1_1"], weights=None)
    assert len(model.outputs) == 1


def test_average_pooling_replaces_max_pooling():
    import keras

    model = features.build_feature_model(["conv3_1"], weights=None, pooling="avg")
    kinds = {type(layer) for layer in model.layers}
    assert keras.layers.AveragePooling2D in kinds and keras.layers.MaxPooling2D not in kinds
    # Average pooling of a constant image keeps the activations finite and non-negative.
    out = model(np.ones((1, 16, 16, 3), dtype=np.float32))["block3_conv1"].numpy()
    assert np.all(np.isfinite(out)) and out.min() >= 0


def test_feature_model_shares_weights_with_keras_vgg():
    import keras

    keras.utils.set_random_seed(3)
    model = features.build_feature_model(["conv1_1"], weights=None)
    kernel = model.get_layer("block1_conv1").kernel.numpy()
    keras.utils.set_random_seed(3)
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    np.testing.assert_array_equal(kernel, vgg.get_layer("block1_conv1").kernel.numpy())


def test_bad_weights_and_pooling_are_refused():
    with pytest.raises(ValueError, match="Received: weights=/no/such/file.h5"):
        features.build_feature_model(["conv1_1"], weights="/no/such/file.h5")
    with pytest.raises(ValueError, match="Received: pooling='min'"):
        features.build_feature_model(["conv1_1"], weights=None, pooling="min")


def test_the_stand_in_weights_load_into_vgg16(stand_in_weights):
    model = features.build_feature_model(["conv1_1"], model="vgg16", weights=stand_in_weights)
    kernel = model.get_layer("block1_conv1").kernel.numpy()
    assert kernel.shape == (3, 3, 3, 64) and np.abs(kernel).sum() > 0


@pytest.mark.imagenet
def test_imagenet_weights_load_from_the_keras_cache():
    if not os.path.isfile(features.imagenet_weights_path("vgg19")):
        pytest.skip("the ImageNet VGG19 weights are not in the Keras cache")
    model = features.build_feature_model(["conv5_1"], weights="imagenet")
    assert tuple(model(np.zeros((1, 32, 32, 3), np.float32))["block5_conv1"].shape) == (1, 2, 2, 512)


def test_the_cache_builds_once_per_settings_and_drops_the_oldest():
    cache = runtime.ModelCache(capacity=2)
    a = cache.get(["conv1_1", "conv2_1"], weights=None, seed=0)
    assert cache.get(["relu2_1", "block1_conv1"], weights=None, seed=0) is a  # Same set.
    assert cache.builds == 1
    b = cache.get(["conv1_1"], weights=None, seed=0)
    c = cache.get(["conv1_1"], weights=None, seed=0, precision="bfloat16")
    assert len({id(a), id(b), id(c)}) == 3 and cache.builds == 3
    assert features.model_precision(c) == "bfloat16" and features.model_precision(b) == "float32"
    cache.get(["conv1_1", "conv2_1"], weights=None, seed=0)  # `a` was dropped: rebuilt.
    assert cache.builds == 4


def test_offline_imagenet_weights_raise_one_clear_oserror(monkeypatch, tmp_path):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", no_network)
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(OSError, match="cannot download the ImageNet weights of vgg19.*"
                                      "Received: weights='imagenet'"):
        features.build_feature_model(["conv1_1"], weights="imagenet")


@pytest.mark.parametrize("padding", ["symmetric", "reflect"])
def test_edge_padding_changes_only_the_border(padding):
    import keras

    x = np.random.default_rng(0).uniform(-100, 100, (1, 32, 40, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    zeros = features.build_feature_model(["conv1_1", "conv2_1"], weights=None)
    keras.utils.set_random_seed(0)
    padded = features.build_feature_model(["conv1_1", "conv2_1"], weights=None, padding=padding)
    a, b = features.features_of(zeros, x), features.features_of(padded, x)
    for name in a:
        a_, b_ = a[name].numpy()[0], b[name].numpy()[0]
        assert a_.shape == b_.shape  # The same sizes: the pad is undone by a valid conv.
        np.testing.assert_allclose(a_[4:-4, 4:-4], b_[4:-4, 4:-4], rtol=1e-5, atol=1e-4)
        assert not np.allclose(a_[0], b_[0])
    # By hand at the first layer's corner: symmetric padding repeats the edge pixel.
    kernel = padded.get_layer("block1_conv1").kernel.numpy()
    bias = padded.get_layer("block1_conv1").bias.numpy()
    mode = {"symmetric": "edge", "reflect": "reflect"}[padding]
    patch = np.pad(x[0], ((1, 1), (1, 1), (0, 0)), mode=mode)[:3, :3]
    expected = np.maximum(np.einsum("ijc,ijcd->d", patch, kernel) + bias, 0)
    np.testing.assert_allclose(b["block1_conv1"].numpy()[0, 0, 0], expected, rtol=1e-4, atol=1e-3)


def test_padding_is_part_of_the_cache_key_and_presets_reproducing_tools_pad_with_zeros():
    from nst_keras.config import PRESETS, StyleConfig

    cache = runtime.ModelCache()
    a = cache.get(["conv1_1"], weights=None, seed=0)
    assert cache.get(["conv1_1"], weights=None, seed=0, padding="symmetric") is not a
    assert StyleConfig().padding == "symmetric"
    for name in ("book-exact", "book-2e", "gatys2015", "jcjohnson"):
        assert PRESETS[name].padding == "zeros", name
    with pytest.raises(ValueError, match="Received: padding='wrap'"):
        features.build_feature_model(["conv1_1"], weights=None, padding="wrap")
