"""The VGG feature model: weights, truncation after the deepest layer used, pooling, names.

Keras names its VGG layers `block4_conv2`; the paper and Caffe name the same activations
`conv4_2` or `relu4_2`. A Keras conv layer applies its ReLU itself, so `block4_conv2` *is*
Caffe's `relu4_2` (there is no separate ReLU layer), and both names map to it.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import warnings
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

from nst_keras.config import PADDINGS

#: Conv layers per block (VGG19's "E" configuration and VGG16's "D").
BLOCK_CONVS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3),
               # Gatys et al.'s rescaled networks (`nst_keras.engine.normalize`): the same layers.
               "vgg19-normalized": (2, 2, 4, 4, 4), "vgg16-normalized": (2, 2, 3, 3, 3)}

#: Gatys et al.'s normalised networks (`nst_keras.engine.normalize`) and the VGG each rescales.
NORMALIZED = {"vgg19-normalized": "vgg19", "vgg16-normalized": "vgg16"}


def architecture(model: str) -> str:
    """The VGG a model name builds: `vgg19` for `vgg19` and `vgg19-normalized`."""
    return NORMALIZED.get(model, model)


#: What `keras.applications` downloads for `weights="imagenet", include_top=False`.
IMAGENET_NOTOP_FILES = {
    "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    # The normalised networks are computed from these (`nst_keras.engine.normalize`).
    "vgg19-normalized": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16-normalized": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
}


def layer_names(model: str = "vgg19") -> List[str]:
    """The Keras names of a VGG's feature layers, in order (convs and pools)."""
    names = []
    for block, convs in enumerate(BLOCK_CONVS[model], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)]
        names.append(f"block{block}_pool")
    return names


def resolve_layer_name(name: str, model: str = "vgg19") -> str:
    """Maps a Keras or paper layer name to the Keras name.

    `conv4_2`, `relu4_2` and `block4_conv2` all name the post-ReLU output of the second
    conv of block 4; `pool3` and `block3_pool` the third pooling layer.

    Args:
        name: A layer name.
        model: `"vgg19"` or `"vgg16"`.

    Returns:
        The Keras layer name.

    Raises:
        ValueError: If the layer does not exist in `model`, with the closest names.
    """
    known = layer_names(model)
    match = re.fullmatch(r"(?:conv|relu)(\d)_(\d)", name)
    keras_name = name
    if match:
        keras_name = f"block{match.group(1)}_conv{match.group(2)}"
    elif re.fullmatch(r"pool(\d)", name):
        keras_name = f"block{name[4:]}_pool"
    if keras_name not in known:
        aliases = known + [
            n.replace("block", "conv").replace("_conv", "_") for n in known if "conv" in n
        ]
        close = difflib.get_close_matches(name, aliases, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown layer for {model}.{hint} Received: layer={name!r}"
        )
    return keras_name


def minimum_size(layers: Sequence[str], model: str = "vgg19") -> int:
    """The smallest height and width (pixels) for which every layer in `layers` exists.

    Each of VGG's 2x2 poolings halves the size (rounding down), so a conv layer of block b
    needs at least 2**(b-1) pixels and the pooling layer of block b 2**b.
    """
    smallest = 1
    for name in layers:
        keras_name = resolve_layer_name(name, model)
        block = int(keras_name[5])
        smallest = max(smallest, 2 ** (block if keras_name.endswith("pool") else block - 1))
    return smallest


def layer_shape(name: str, height: int, width: int, model: str = "vgg19") -> Tuple[int, int, int]:
    """(h, w, C) of a layer's output for a `height` x `width` input, from arithmetic alone.

    Convolutions keep the size ('same' padding); each 2x2 pooling of stride 2 halves it,
    rounding down.
    """
    keras_name = resolve_layer_name(name, model)
    block = int(keras_name[5])
    pools = block if keras_name.endswith("pool") else block - 1
    return height // 2**pools, width // 2**pools, min(64 * 2 ** (block - 1), 512)


def activation_floats(height: int, width: int, layers: Sequence[str], model: str = "vgg19") -> int:
    """How many float32 activations one forward pass keeps, up to the deepest of `layers`.

    Every conv and pooling layer's output, (h_l * w_l * C_l) summed, for an input of
    `height` x `width`; the basis of `runtime.estimate_memory`.
    """
    names = layer_names(model)
    deepest = max(names.index(resolve_layer_name(n, model)) for n in layers)
    total, h, w = 0, height, width
    for name in names[: deepest + 1]:
        if name.endswith("pool"):
            h, w = h // 2, w // 2
        total += h * w * min(64 * 2 ** (int(name[5]) - 1), 512)  # 64, 128, 256, 512, 512.
    return total


def weight_count(layers: Sequence[str], model: str = "vgg19") -> int:
    """The parameters (kernels and biases) of the network up to the deepest of `layers`."""
    names = layer_names(model)
    deepest = max(names.index(resolve_layer_name(n, model)) for n in layers)
    total, channels = 0, 3
    for name in names[: deepest + 1]:
        if "conv" in name:
            out = min(64 * 2 ** (int(name[5]) - 1), 512)
            total += 9 * channels * out + out
            channels = out
    return total


def imagenet_weights_path(model: str = "vgg19") -> str:
    """Where Keras caches the ImageNet weights of `model` (they may not be there)."""
    # The same rule as Keras' cache: $KERAS_HOME, else ~/.keras.
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", IMAGENET_NOTOP_FILES[model])


#: Where `keras.applications` downloads `IMAGENET_NOTOP_FILES` from (its `WEIGHTS_PATH_NO_TOP`).
IMAGENET_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{file}"


def imagenet_weights_url(model: str = "vgg19") -> str:
    """The URL `keras.applications` downloads the ImageNet weights of `model` from."""
    arch = architecture(model)
    return IMAGENET_WEIGHTS_URL.format(arch=arch, file=IMAGENET_NOTOP_FILES[arch])


def imagenet_unavailable(model: str, reason: Optional[str] = None) -> OSError:
    """The error for ImageNet weights that are neither cached nor downloadable (the one
    `build_feature_model` raises; the command line turns it into its advice)."""
    because = f" ({reason})" if reason else ""
    return OSError(
        f"cannot download the ImageNet weights of {model} (no network?){because}; put "
        f"{IMAGENET_NOTOP_FILES[model]} in ~/.keras/models/ or pass the path of a weights "
        "file. Received: weights='imagenet'")


def check_weights(weights: Optional[str], model: str = "vgg19", *, timeout: float = 10.0) -> None:
    """Checks that `build_feature_model` can have `weights`, without building a model or
    downloading anything (a dry run's check).

    `None` needs nothing. A weights file must be readable, and one named `.h5` / `.hdf5`
    must open as HDF5 (what Keras reads it with). `"imagenet"` must be in the Keras cache
    (then it is checked as a file), or its download server must answer a HEAD request for
    it within `timeout` seconds.

    Args:
        weights: `"imagenet"`, None or the path of a weights file (as `build_feature_model`).
        model: `"vgg19"` or `"vgg16"` (a normalised model's weights are its own file).
        timeout: Seconds to wait for the download server.

    Raises:
        OSError: If the ImageNet weights can be neither found nor downloaded (the error
            `build_feature_model` raises then), or a file cannot be read.
        ValueError: If a path names no file.
    """
    if weights is None:
        return
    if weights == "imagenet":
        path = imagenet_weights_path(model)
        if not os.path.isfile(path):
            import urllib.error
            import urllib.request

            from nst_keras.media.images import download_failure

            url = imagenet_weights_url(model)
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                            timeout=timeout):
                    return
            except (urllib.error.URLError, OSError) as error:
                raise imagenet_unavailable(model, download_failure(url, error)) from None
        weights = path
    if not os.path.isfile(os.fspath(weights)):
        raise ValueError("`weights` must be 'imagenet', None or the path of a weights file. "
                         f"Received: weights={weights}")
    with open(weights, "rb") as handle:  # An OSError (permissions, I/O) says why.
        handle.read(1)
    if os.fspath(weights).lower().endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(weights, "r"):
            pass


def weights_file_model(path) -> Optional[str]:
    """Which VGG a weights file is for, from its 3x3 convolution kernels, or None.

    Keras 3 `.weights.h5` files name their layers by position (`conv2d_7`) and legacy `.h5`
    files by the model's names; both hold one 4-D kernel per convolution, with the
    channel counts of `BLOCK_CONVS`. A file that cannot be read, or whose kernels match
    neither network, gives None.

    Args:
        path: A weights file (HDF5).

    Returns:
        `"vgg16"`, `"vgg19"` or None.
    """
    try:
        import h5py

        kernels = []
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, item: kernels.append(item.shape) if (
                isinstance(item, h5py.Dataset) and len(item.shape) == 4
                and item.shape[:2] == (3, 3)) else None)
    except Exception:  # Not HDF5, unreadable: the loader's own error says so.
        return None
    # Sorted by (in, out) channels, so that neither the file's order nor its names matter.
    found = sorted((shape[2], shape[3]) for shape in kernels)
    for model, convs in BLOCK_CONVS.items():
        expected, channels = [], 3
        for block, count in enumerate(convs):
            out = min(64 * 2 ** block, 512)
            for _ in range(count):
                expected.append((channels, out))
                channels = out
        if found == sorted(expected):
            return model
    return None


def build_feature_model(
    layers: Sequence[str],
    *,
    model: str = "vgg19",
    weights: Optional[str] = "imagenet",
    pooling: str = "max",
    precision: str = "float32",
    padding: str = "zeros",
):
    """Builds a Keras model that outputs the activations of `layers`, and nothing deeper.

    The ImageNet VGG is built with `include_top=False`, then re-wired layer by layer up
    to the deepest layer asked for: the rest of the network is never computed. With
    `pooling="avg"` each max-pooling layer is replaced by an average-pooling layer of the
    same size and stride, as Gatys et al. did ("improves the gradient flow").

    Args:
        layers: Layer names (Keras or paper names); duplicates are removed, order kept.
        model: `"vgg19"` or `"vgg16"`, or `"vgg19-normalized"` / `"vgg16-normalized"`
            with `weights` the normalised weights file (`normalize.resolve` finds it;
            `runtime.MODELS` does that for a config).
        weights: `"imagenet"` (downloaded once into the Keras cache), `None` (random
            initialisation; seed with `keras.utils.set_random_seed`) or the path of a
            weights file for `include_top=False`.
        pooling: `"max"` or `"avg"`.
        precision: `"float32"`, or `"bfloat16"` to compute in bfloat16 (Keras'
            `mixed_bfloat16` policy; the weights stay float32, the outputs are bfloat16).
        padding: How each 3x3 conv pads its input by 1 pixel: `"zeros"` (Keras' VGG, the
            book, Caffe), `"symmetric"` (the edge pixel repeated) or `"reflect"`. Zeros
            make the border a special place: the optimised image grows a band of
            saturated dashes along the top and a dark line down the left; `"symmetric"`
            removes both (measured: top row 29% saturated pixels with zeros, 9% with
            symmetric, 7-8% in the interior) for 1-2% more time per evaluation.

    Returns:
        A `keras.Model` taking a (batch, H, W, 3) 'caffe'-preprocessed float32 tensor and
        returning a dict of activations keyed by Keras layer name (see `features_of`).

    Raises:
        ValueError: If a layer, the model, the pooling or the precision is unknown, or a
            weights path does not exist.
        OSError: If the ImageNet weights are neither in the Keras cache nor downloadable.
    """
    import keras

    applications = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}
    if architecture(model) not in applications:
        raise ValueError(f"`model` must be one of {', '.join(BLOCK_CONVS)}. "
                         f"Received: model={model!r}")
    if model in NORMALIZED:
        if weights in ("imagenet", None):
            raise ValueError("a normalised model is built from its normalised weights file "
                             "(`normalize.resolve` finds it). Received: "
                             f"model={model}, weights={weights}")
        model = NORMALIZED[model]
    if pooling not in ("max", "avg"):
        raise ValueError(f"`pooling` must be max or avg. Received: pooling={pooling!r}")
    if weights not in ("imagenet", None) and not os.path.isfile(os.fspath(weights)):
        raise ValueError(
            "`weights` must be 'imagenet', None or the path of a weights file. "
            f"Received: weights={weights}"
        )
    names = list(dict.fromkeys(resolve_layer_name(n, model) for n in layers))
    if not names:
        raise ValueError(f"At least one layer is needed. Received: layers={list(layers)}")

    if precision not in ("float32", "bfloat16"):
        raise ValueError(
            f"`precision` must be float32 or bfloat16. Received: precision={precision!r}"
        )
    if padding not in PADDINGS:
        raise ValueError(
            f"`padding` must be one of {', '.join(PADDINGS)}. Received: padding={padding!r}"
        )

    with warnings.catch_warnings(), precision_scope(precision):
        # A weights file of another architecture fails with a ValueError anyway; Keras first
        # warns once per unmatched layer, which buries that message.
        warnings.filterwarnings("ignore", message="Skipping nested container")
        try:
            base = applications[model](
                include_top=False, weights=weights, input_shape=(None, None, 3)
            )
        except Exception as error:  # Keras raises a bare Exception when a download fails.
            if weights == "imagenet" and "URL fetch failure" in str(error):
                raise imagenet_unavailable(model) from None
            raise
        deepest = max(layer_names(model).index(n) for n in names)
        inputs = keras.Input(shape=(None, None, 3), name="image")
        x = inputs
        outputs = {}
        # base.layers[0] is the input layer; the feature layers follow in order.
        for layer in base.layers[1 : deepest + 2]:
            if pooling == "avg" and isinstance(layer, keras.layers.MaxPooling2D):
                # Departure from the book (and Keras' VGG): the paper's average pooling.
                layer = keras.layers.AveragePooling2D(
                    pool_size=layer.pool_size, strides=layer.strides, padding=layer.padding,
                    name=layer.name,
                )
            if padding != "zeros" and isinstance(layer, keras.layers.Conv2D):
                # Departure: pad by repeating (or mirroring) the edge instead of with zeros,
                # then the same conv, unpadded: the same output size and weights.
                x = keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode=padding)
                unpadded = keras.layers.Conv2D.from_config(
                    {**layer.get_config(), "padding": "valid"})
                x = unpadded(x)
                unpadded.set_weights(layer.get_weights())
                layer = unpadded
            else:
                x = layer(x)
            outputs[layer.name] = x
        feature_model = keras.Model(
            inputs, {n: outputs[n] for n in names}, name=f"{model}_features"
        )
    feature_model.trainable = False
    return feature_model


def features_of(feature_model, x) -> Dict[str, object]:
    """The feature model's activations of `x`, as a dict keyed by Keras layer name.

    Computed by a traced forward pass (one `tf.function` per model, traced once per input
    size), as every objective evaluates its image: in bfloat16 the graph runs each
    convolution, its bias and its ReLU as one fused op that rounds once, while eager
    execution rounds after the convolution and again after the bias. Targets computed
    eagerly therefore differed from the same image's features in the objective (the content
    loss of the content image was not 0) and from the tiled objective's targets, which are
    traced (measured at 427x320 in bfloat16: 3e-3 relative loss, 1e-2 on a style term).
    """
    import tensorflow as tf

    forward = _FORWARD.get(feature_model)
    if forward is None:
        model_ref = weakref.ref(feature_model)
        forward = tf.function(lambda image: model_ref()(image, training=False),
                              reduce_retracing=False)
        _FORWARD[feature_model] = forward
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # One trace per input size is by design, not a retrace warning.
    try:
        return dict(forward(x))
    finally:
        logger.setLevel(level)


#: Feature model -> its traced forward pass (weak keys: dropped with the model).
_FORWARD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def model_precision(feature_model) -> str:
    """`"bfloat16"` if the model's layers compute in bfloat16, else `"float32"`."""
    dtypes = {getattr(layer.dtype_policy, "compute_dtype", "float32") for layer in feature_model.layers}
    return "bfloat16" if "bfloat16" in dtypes else "float32"


@contextlib.contextmanager
def precision_scope(precision: str):
    """Builds Keras layers in `precision` inside the scope, and restores the policy after.

    `"bfloat16"` sets Keras' global `mixed_bfloat16` policy: layers built inside compute in
    bfloat16 and keep float32 weights. Keras' VGG constructors take no `dtype`, so the global
    policy is the only way in; restoring it keeps it from leaking into models a user builds
    afterwards.
    """
    import keras

    previous = keras.config.dtype_policy()
    if precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def receptive_field(layer: str, model: str = "vgg19") -> int:
    """The receptive field of one unit of `layer`, in input pixels along each axis.

    From the conv/pool arithmetic alone: a 3x3 conv of stride 1 widens the field by
    2 x the layer's jump (the input pixels between two neighbouring units), a 2x2 pooling
    of stride 2 by 1 x the jump, and then doubles the jump. For VGG19: 156 pixels at
    conv5_1, 188 at conv5_2; 3 at conv1_1.
    """
    names = layer_names(model)
    deepest = names.index(resolve_layer_name(layer, model))
    size, jump = 1, 1
    for name in names[: deepest + 1]:
        if name.endswith("pool"):
            size += jump
            jump *= 2
        else:
            size += 2 * jump
    return size


def receptive_radius(layer: str, model: str = "vgg19") -> int:
    """How far from a unit's centre its receptive field reaches, rounded up, in pixels:
    ceil((receptive_field - 1) / 2): 78 for VGG19's conv5_1, 94 for conv5_2.

    A unit's value changes only when an input pixel within this radius changes, so a
    crop of the image with a margin of at least the radius around a region gives that
    region's features exactly (see `tile_halo`).
    """
    return -(-(receptive_field(layer, model) - 1) // 2)


def layer_pools(layer: str, model: str = "vgg19") -> int:
    """How many 2x2 poolings come before (and including) `layer`: its size is the
    input's // 2**pools."""
    keras_name = resolve_layer_name(layer, model)
    block = int(keras_name[5])
    return block if keras_name.endswith("pool") else block - 1


def pooling_grid(layers: Sequence[str], model: str = "vgg19") -> int:
    """2**pools of the deepest of `layers`: tiles whose corners are multiples of it see the
    same pooling windows as the whole image (16 up to block5's convs, 32 for block5_pool)."""
    return 2 ** max(layer_pools(n, model) for n in layers)


#: The bytes of one chunk of the MRF loss's similarity matrix (generated patches x style
#: patches) computed at a time (`losses.mrf_match`); here, without TensorFlow, for the plan.
MRF_CHUNK_BYTES = 64 * 2**20


def tile_halo(layers: Sequence[str], model: str = "vgg19",
              patch_layers: Sequence[str] = ()) -> int:
    """The margin a tile is read with so that its core's features are exact: the largest
    receptive radius of `layers`, rounded up to the pooling grid (80 up to conv5_1 and 96
    up to conv5_2 in VGG19, where the grid is 16).

    `patch_layers` (the MRF loss's) are read as 3 x 3 patches centred in the core, so their
    features must be exact one layer pixel beyond it: their radius is widened by the patch
    radius (1) times the layer's stride (2**pools: 8 px at relu4_1)."""
    grid = pooling_grid(list(layers) + list(patch_layers), model)
    radius = max([receptive_radius(n, model) for n in layers]
                 + [receptive_radius(n, model) + 2 ** layer_pools(n, model)
                    for n in patch_layers])
    return -(-radius // grid) * grid


#: The style's MRF patches are taken every this-many rows and columns (CNNMRF's
#: `target_sample_stride`; `losses.extract_patches`); here, without TensorFlow, for the plan.
MRF_STYLE_STRIDE = 2


def strided_count(positions: int, stride: int) -> int:
    """How many of `positions` places (0, stride, 2 stride, ...) a stride takes."""
    return 0 if positions <= 0 else (positions - 1) // stride + 1
