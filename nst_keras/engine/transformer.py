"""The feed-forward style network: Johnson et al.'s transformer, trained once per style.

Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer" (2016),
supplementary material, with two later fixes that became standard:

- instance normalisation (Ulyanov et al. 2016) in place of batch normalisation: each image's
  channels are normalised over its own positions, so the output does not depend on the
  other images of a batch, and contrast is normalised per image. In Keras 3,
  `GroupNormalization(groups=-1)` is instance normalisation;
- resize-convolution upsampling (Odena et al. 2016, "Deconvolution and Checkerboard
  Artifacts") in place of Johnson's fractionally-strided convolutions: nearest-neighbour
  upsampling by 2, then a 3x3 convolution, so that every output pixel is computed by the same
  number of kernel taps and no checkerboard appears.

Every convolution pads its input by reflection (as pytorch/examples' `fast_neural_style`),
not with zeros: zeros make the border a special place that the network learns to paint.

The layout (`width` = 32, Johnson's):

    9x9 conv, width            stride 1    + instance norm + ReLU
    3x3 conv, 2 x width        stride 2    + instance norm + ReLU
    3x3 conv, 4 x width        stride 2    + instance norm + ReLU
    5 residual blocks, 4 x width: 3x3 conv + IN + ReLU, 3x3 conv + IN, plus the input
    upsample x2, 3x3 conv, 2 x width       + instance norm + ReLU
    upsample x2, 3x3 conv, width           + instance norm + ReLU
    9x9 conv, 3                            (no normalisation)

The input is RGB in 0-255; the output is RGB in 0-255: the photo changed by the last
convolution's `y`, `127.5 * (1 + tanh(atanh(p) + y))` with `p` the photo's level in (-1, 1).
Departure from Johnson et al., whose output is a scaled tanh of `y` alone: the network
learns a change to the photo, as the optimisation changes the photo it starts from (the
book's `init="content"`). With the book's loss, whose content term is one deep layer
(`block5_conv2`), a network that must also learn to reproduce the photo lost its
details: after 300 steps its output was as far from the photo at `block5_conv2` as a grey
image is, and only the silhouettes of the town were left. Measured with
`benchmarks/fast.py`. The network downsamples by 4 (`STRIDE`): `stylize` pads any image
to a multiple of it by reflection and crops the result back.

The network carries its record (`StyleNetwork.record`: the style image's hash and thumbnail,
the losses and weights, the steps, the photos, the precision), saved in the `.keras` file's
configuration, so that a file says what it paints.
"""

from __future__ import annotations

import base64
import io
from typing import Dict, Optional

import numpy as np

#: The network's total downsampling: an input's sides are padded to a multiple of it.
STRIDE = 4

#: Johnson's width: the channels of the first convolution.
WIDTH = 32

#: The residual blocks at the lowest resolution.
RESIDUAL_BLOCKS = 5

#: What `StyleNetwork.record` must hold for a file to be one of ours.
RECORD_KEYS = ("kind", "style", "steps")

#: `StyleNetwork.record["kind"]`: how a file says it is one of ours.
NETWORK_KIND = "nst_keras style network"

_PACKAGE = "nst_keras"


def _layers():
    """The Keras layer classes, made once (Keras is imported lazily: no work at import)."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package=_PACKAGE)
    class ReflectionPad(keras.layers.Layer):
        """Pads height and width by `pad` pixels on each side, by reflection."""

        def __init__(self, pad: int, **kwargs):
            super().__init__(**kwargs)
            self.pad = int(pad)

        def call(self, x):
            p = self.pad
            return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

        def compute_output_shape(self, shape):
            grow = lambda d: None if d is None else d + 2 * self.pad  # noqa: E731
            return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

        def get_config(self):
            return {**super().get_config(), "pad": self.pad}

    @keras.saving.register_keras_serializable(package=_PACKAGE)
    class PhotoPlusChange(keras.layers.Layer):
        """127.5 * (1 + tanh(atanh(p) + y)), p the photo in (-1, 1): the photo changed by
        the network's last map `y`, always a pixel level in (0, 255), float32."""

        def call(self, inputs):
            y, photo = (ops.cast(t, "float32") for t in inputs)
            # The photo's levels pulled 1 % towards grey so that atanh stays finite at 0 and 255.
            p = 0.99 * (photo / 127.5 - 1.0)
            return 127.5 * (1.0 + ops.tanh(0.5 * ops.log((1.0 + p) / (1.0 - p)) + y))

        def compute_output_shape(self, shapes):
            return shapes[1]

    _CLASSES = {"ReflectionPad": ReflectionPad, "PhotoPlusChange": PhotoPlusChange}
    return _CLASSES


_CLASSES = None


def _conv_block(x, filters, kernel, *, stride=1, upsample=False, norm=True, relu=True, name):
    """Reflection pad, (upsample,) convolution, instance norm, ReLU: one layer of the net."""
    import keras

    layers = _layers()
    if upsample:
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    x = layers["ReflectionPad"](kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                            name=f"{name}_conv")(x)
    if norm:
        # groups=-1: one group per channel, i.e. instance normalisation.
        x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_in")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def build_transformer(width: int = WIDTH, *, seed: Optional[int] = None, record=None):
    """Johnson et al.'s image transformation network (see the module's docstring).

    Args:
        width: The first convolution's channels (Johnson: 32); the others are 2x and 4x it.
        seed: Seeds the initial weights (`keras.utils.set_random_seed`), or None.
        record: The network's record (see `StyleNetwork`), or None for an empty one.

    Returns:
        A `StyleNetwork` (a `keras.Model`) from (batch, H, W, 3) RGB float in 0-255 to the
        same shape, H and W multiples of `STRIDE`.

    Raises:
        ValueError: If `width` is not a positive integer.
    """
    import keras

    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"`width` must be an integer >= 1. Received: width={width!r}")
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    network_class = style_network_class()
    inputs = keras.Input((None, None, 3), name="photo")
    # The photo's levels to about [-1, 1]: the first convolution's input scale.
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    x = _conv_block(x, width, 9, name="down1")
    x = _conv_block(x, 2 * width, 3, stride=2, name="down2")
    x = _conv_block(x, 4 * width, 3, stride=2, name="down3")
    for k in range(1, RESIDUAL_BLOCKS + 1):
        y = _conv_block(x, 4 * width, 3, name=f"res{k}a")
        y = _conv_block(y, 4 * width, 3, relu=False, name=f"res{k}b")
        x = keras.layers.Add(name=f"res{k}")([x, y])
    x = _conv_block(x, 2 * width, 3, upsample=True, name="up1")
    x = _conv_block(x, width, 3, upsample=True, name="up2")
    x = _conv_block(x, 3, 9, norm=False, relu=False, name="out")
    outputs = _layers()["PhotoPlusChange"](name="rgb", dtype="float32")([x, inputs])
    return network_class(inputs=inputs, outputs=outputs, name="style_network",
                         record=dict(record or {}))


def style_network_class():
    """The `StyleNetwork` class (a functional `keras.Model` that carries its record)."""
    global _NETWORK
    if _NETWORK is not None:
        return _NETWORK
    import keras

    @keras.saving.register_keras_serializable(package=_PACKAGE)
    class StyleNetwork(keras.Model):
        """A trained style's transformer, with its record saved in its configuration.

        Attributes:
            record: JSON-able dict: `kind` (`NETWORK_KIND`), `style` (the style image's
                name, SHA-256 and a small JPEG thumbnail, base64), `settings` (the losses,
                layers and weights it was trained with), `steps`, `photos` (how many),
                `size`, `batch_size`, `precision`, `width`, and the last losses.
        """

        def __init__(self, *args, record=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.record = dict(record or {})

        def get_config(self):
            return {**super().get_config(), "record": self.record}

        @classmethod
        def from_config(cls, config, custom_objects=None):
            config = dict(config)
            record = config.pop("record", {})
            model = keras.Model.from_config.__func__(cls, config, custom_objects)
            model.record = dict(record or {})
            return model

    _NETWORK = StyleNetwork
    return _NETWORK


_NETWORK = None


#: The least side an image is padded to: the first 9x9 convolution's reflection padding (4
#: pixels) needs a side of at least 5, and the lowest resolution (a quarter) at least 2.
MIN_SIDE = 8


def pad_to_stride(rgb: np.ndarray, stride: int = STRIDE):
    """Pads an (H, W, 3) image to sides that are multiples of `stride`, and at least
    `MIN_SIDE`, by reflection (symmetric, the edge repeated, where a side is too short to
    reflect).

    The padding goes to the bottom and right (half of it each side would shift the image by
    up to a pixel once cropped back in odd cases; one side keeps the crop trivial).

    Returns:
        (padded, (H, W)): the padded float32 image and the original size to crop back to.
    """
    rgb = np.asarray(rgb, np.float32)
    h, w = rgb.shape[:2]
    ph = max(MIN_SIDE, h + (-h) % stride) - h
    pw = max(MIN_SIDE, w + (-w) % stride) - w
    if ph or pw:
        # numpy reflects repeatedly when a pad exceeds the side; a side of 1 has nothing to
        # reflect: its edge is repeated.
        mode = "reflect" if min(h, w) > 1 else "symmetric"
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode=mode)
    return rgb, (h, w)


def stylize(network, rgb: np.ndarray, *, precision: str = "float32") -> np.ndarray:
    """One image through a trained network: any size, padded to the stride and cropped back.

    Args:
        network: A `StyleNetwork` (from `build_transformer` or `load_network`).
        rgb: The photo, RGB (H, W, 3), uint8 or float in 0-255.
        precision: `"float32"`, or `"bfloat16"` to run the network's convolutions in
            bfloat16 (the network is cloned once under Keras' mixed policy; see
            `features.precision_scope`).

    Returns:
        The stylised image, RGB float32 (H, W, 3) in 0-255 (not rounded).
    """
    padded, (h, w) = pad_to_stride(rgb)
    out = _forward(network, precision)(padded[None])
    return np.asarray(out)[0, :h, :w, :]


def _forward(network, precision: str):
    """The network's traced forward pass in `precision` (cached on the network object)."""
    import tensorflow as tf

    cache = network.__dict__.setdefault("_nst_forward", {})
    if precision in cache:
        return cache[precision]
    model = network
    if precision == "bfloat16":
        from nst_keras.engine.features import precision_scope

        # Rebuilt, not cloned: a clone keeps each layer's saved float32 policy.
        with precision_scope("bfloat16"):
            model = build_transformer(int(network.get_layer("down1_conv").filters))
    function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def forward(x):
        if model is not network:  # The network's weights as they are now (a few ms).
            model.set_weights(network.get_weights())
        return function(tf.constant(x, tf.float32)).numpy()

    cache[precision] = forward
    return forward


def thumbnail_base64(rgb: np.ndarray, side: int = 96) -> str:
    """A small JPEG of an image (its longer side `side` px), base64: the style the file
    carries, for contact sheets and the app."""
    from PIL import Image

    image = Image.fromarray(np.asarray(rgb, np.uint8))
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return base64.b64encode(out.getvalue()).decode("ascii")


def thumbnail_of(record: Dict) -> Optional[np.ndarray]:
    """The style thumbnail a network's record carries, RGB uint8, or None."""
    from PIL import Image

    data = (record.get("style") or {}).get("thumbnail")
    if not data:
        return None
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image.convert("RGB"))


def load_network(path):
    """Reads a network file that `nst-keras train` wrote.

    Keras' safe mode stays on: a file's configuration may only name registered layers, and
    no Python code (a `Lambda`'s) is deserialised.

    Args:
        path: The `.keras` file.

    Returns:
        The `StyleNetwork`, its `record` filled.

    Raises:
        ValueError: If the file is not a readable `.keras` file, or is one but not a
            network of ours (the message names the file).
    """
    import os

    import keras

    path = os.fspath(path)
    read_record(path)  # A missing, foreign or damaged file: one line, before Keras.
    style_network_class()
    _layers()
    try:
        network = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many kinds for a damaged or foreign file.
        import re

        from nst_keras.errors import first_line

        text = first_line(error)
        # "<class 'a.b.<locals>.StyleNetwork'> could not be ...": the class's own name.
        text = re.sub(r"<class '(?:[\w<>]+\.)*(\w+)'>", r"\1", text)
        reason = text.split(". ")[0][:160] or type(error).__name__
        raise ValueError(f"not a readable network file ({reason}; written by another version "
                         f"of nst_keras?). Received: network={path!r}") from None
    record = getattr(network, "record", None)
    if not isinstance(record, dict) or record.get("kind") != NETWORK_KIND or any(
            key not in record for key in RECORD_KEYS):
        raise ValueError("a Keras model, but not a style network that nst-keras train "
                         f"wrote. Received: network={path!r}")
    return network


def read_record(path) -> Dict:
    """A network file's record, read from its configuration without building the network.

    Cheap (no TensorFlow): what a plan checks before anything is built.

    Raises:
        ValueError: If the file is missing, not a `.keras` archive, or not a network of
            ours (the message names the file).
    """
    import json
    import os
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"the network file does not exist. Received: network={path!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise ValueError(f"not a .keras network file ({type(error).__name__}: "
                         f"{str(error)[:120]}). Received: network={path!r}") from None
    record = (config.get("config") or {}).get("record") if isinstance(config, dict) else None
    if not isinstance(record, dict) or record.get("kind") != NETWORK_KIND or any(
            key not in record for key in RECORD_KEYS):
        raise ValueError("a Keras model file, but not a style network that nst-keras train "
                         f"wrote. Received: network={path!r}")
    return record


def inference_bytes(height: int, width: int, channels: int = WIDTH,
                    precision: str = "float32") -> int:
    """An estimate of one image's peak memory through the network, in bytes.

    A forward pass keeps few maps alive at once: at the full size the padded input of the
    first and last 9x9 convolutions and their outputs (`channels` wide), the upsampled map
    and its normalisation; about 6 maps of `channels` x H x W at the peak, plus the input
    and output images (the plan adds the process's base, `runtime.BASE_BYTES`).
    """
    element = 2 if precision == "bfloat16" else 4
    pad = 8
    full = (height + pad) * (width + pad)
    return int(6 * channels * full * element + 4 * 3 * full * 4)
