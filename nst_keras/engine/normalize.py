"""Gatys et al.'s normalised VGG: each filter's mean activation over a set of photos is 1.

"We normalized the network by scaling the weights such that the mean activation of each
convolutional filter over images and positions is equal to one. Such re-scaling can be done
for the VGG network without changing its output, because it contains only rectifying linear
activation functions and no normalization or pooling over feature maps." (Gatys, Ecker and
Bethge 2015, Methods.)

`nst-keras normalize-vgg DIR` (`normalize_command`) computes it once from a weights file (the ImageNet weights by
default) and the photos in DIR, and writes it into the Keras cache keyed by both (the
weights file's SHA-256 and every photo's bytes); `--model vgg19-normalized` (or
`vgg16-normalized`) then uses it (`resolve`). Nothing else ever switches to it.

The rescaling, with m_l[c] the mean of filter c of conv layer l in the *original* network
over the photos and their positions, and s_l[c] = m_l[c] (or 1 for a filter that never
fires on them, or only at float32's noise level (`FIRING`), which keeps its scale):

    W'_l[:, :, i, o] = W_l[:, :, i, o] * s_{l-1}[i] / s_l[o],    b'_l[o] = b_l[o] / s_l[o]

(s_0 = 1 for the image). By induction, layer l of the new network outputs exactly the
original layer's features divided by s_l per filter: ReLU(x / s) = ReLU(x) / s for s > 0,
and max or average pooling and any padding commute with a positive per-channel scale. So
each firing filter's mean over the photos is 1, the new network's features are the old
ones rescaled per filter and nothing else, and only the *relative* weights of the loss
terms change: what the paper's normalisation is for.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from nst_keras.engine import features

#: The normalised models and the architecture each rescales.
NORMALIZED = features.NORMALIZED

#: Changes when the recipe changes, so an old cache entry is never taken for a new one.
RECIPE = "gatys-mean-1/v1"

#: Each photo is resized so that its shorter side is this, then centre-cropped to a square:
#: every photo counts equally, at the scale VGG was trained at (ImageNet's 224 crop).
PHOTO_SIZE = 224

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def cache_folder() -> str:
    """Where normalised weights are kept: `$KERAS_HOME/models/nst_keras_normalized`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", "nst_keras_normalized")


def base_identity(architecture_name: str, weights: Optional[str], seed: Optional[int]) -> str:
    """What the base weights are, for the cache key: the file's SHA-256, or `random-seed-N`.

    Raises:
        ValueError: If random weights have no seed (they could not be built again), or the
            ImageNet weights are not in the Keras cache.
    """
    if weights is None:
        if seed is None:
            raise ValueError("random weights are normalised only with a seed (they must be "
                             "built again identically). Received: weights=None, seed=None")
        return f"random-seed-{int(seed)}"
    path = features.imagenet_weights_path(architecture_name) if weights == "imagenet" else weights
    if not os.path.isfile(path):
        raise ValueError(f"the weights of {architecture_name} are not on this machine ({path}); "
                         f"pass the path of a weights file. Received: weights={weights}")
    return "sha256-" + _file_digest(path)


def imagenet_weights(architecture_name: str) -> str:
    """The ImageNet weights file of a VGG, downloaded once into the Keras cache if it is not
    there yet (as `keras.applications` does): `normalize-vgg PHOTOS` works on a fresh machine.

    Raises:
        Exception: Keras' own when they cannot be downloaded ("URL fetch failure ...").
    """
    path = features.imagenet_weights_path(architecture_name)
    if not os.path.isfile(path):
        import keras

        applications = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}
        applications[architecture_name](include_top=False, weights="imagenet")
    return path


def _file_digest(path: str) -> str:
    """The file's SHA-256, hashed once per process while its size and time are unchanged
    (the plan and the model cache both ask for an 80 MB weights file's)."""
    stat = os.stat(path)
    return _digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(path)


def _sha256(path: str) -> str:
    """A file's SHA-256, read now (a photo's: never from a cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Photos:
    """The photos a normalisation is computed from: their names, bytes' digests and pixels.

    Attributes:
        names: File names (for the record).
        digests: SHA-256 of each file's bytes, in name order (for the cache key).
        pixels: Each photo as `PHOTO_SIZE` x `PHOTO_SIZE` RGB uint8 (see `PHOTO_SIZE`).
    """

    names: tuple
    digests: tuple
    pixels: tuple = dataclasses.field(repr=False)


def read_photos(paths: Sequence[str], size: int = PHOTO_SIZE) -> Photos:
    """Reads the photos (in sRGB, 8-bit), each resized and centre-cropped to `size`.

    Raises:
        ValueError: If there are none.
    """
    from PIL import Image

    from nst_keras.media import images

    paths = sorted(paths, key=os.path.basename)
    if not paths:
        raise ValueError("no photos to normalise with. Received: photos=[]")
    pixels = []
    for path in paths:
        image = images.open_image(path)
        scale = size / min(image.size)
        w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((w, h), Image.LANCZOS)
        left, top = (w - size) // 2, (h - size) // 2
        pixels.append(np.asarray(image.crop((left, top, left + size, top + size)), np.uint8))
    return Photos(tuple(os.path.basename(p) for p in paths),
                  tuple(_sha256(p) for p in paths), tuple(pixels))


def photos_in(folder: str) -> List[str]:
    """The image files directly in `folder` (by extension).

    Raises:
        ValueError: If it is not a folder or holds none.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"not a folder of photos. Received: folder={folder}")
    found = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
             if n.lower().endswith(PHOTO_EXTENSIONS) and not n.startswith(".")]
    if not found:
        raise ValueError(f"the folder has no photos ({', '.join(PHOTO_EXTENSIONS)}). "
                         f"Received: folder={folder}")
    return found


def conv_layers(architecture_name: str) -> List[str]:
    """The conv layers of a VGG, in order."""
    return [n for n in features.layer_names(architecture_name) if "conv" in n]


def original_network(architecture_name: str, weights: Optional[str], seed: Optional[int]):
    """The VGG as trained (max pooling, zero padding, float32), every conv layer an output."""
    import keras

    if weights is None and seed is not None:
        keras.utils.set_random_seed(seed)
    return features.build_feature_model(conv_layers(architecture_name),
                                        model=architecture_name, weights=weights,
                                        pooling="max", precision="float32", padding="zeros")


def filter_means(network, photos: Photos) -> Dict[str, np.ndarray]:
    """Each conv filter's mean activation over the photos and their positions, float64.

    Every photo has the same size, so this is the mean over all their positions.
    """
    import tensorflow as tf

    from nst_keras.media import images

    sums: Dict[str, np.ndarray] = {}
    for rgb in photos.pixels:
        outputs = features.features_of(network, tf.constant(images.preprocess(rgb)))
        for name, value in outputs.items():
            mean = np.mean(np.asarray(value, np.float64), axis=(0, 1, 2))
            sums[name] = sums.get(name, 0.0) + mean
    return {name: total / len(photos.pixels) for name, total in sums.items()}


#: A filter "fires" when its mean is above this fraction of its layer's median mean. Below
#: it, its few positive values are float32 rounding as much as signal (measured: a filter
#: of random VGG16's block4_conv3 at 6e-5 of its layer's median came out at 0.996 instead
#: of 1), and dividing by its mean would make that noise count as much as a real filter in
#: every Gram matrix; so it keeps its scale, as one that never fires.
FIRING = 1e-3


def firing(means: np.ndarray) -> np.ndarray:
    """Which filters of a layer fire on the photos (see `FIRING`), as booleans."""
    positive = means[means > 0]
    floor = FIRING * np.median(positive) if positive.size else np.inf
    return means > floor


def scales_of(means: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """s_l: each filter's mean where it fires (`firing`), 1 (its own scale) elsewhere."""
    return {name: np.where(firing(m), m, 1.0) for name, m in means.items()}


def rescaled_weights(network, scales: Dict[str, np.ndarray], layers: Sequence[str]):
    """Each conv layer's (kernel, bias) rescaled (see the module's docstring), by name."""
    rescaled, previous = {}, np.ones(3)
    for name in layers:
        kernel, bias = network.get_layer(name).get_weights()
        scale = scales[name]
        kernel = kernel.astype(np.float64) * previous[None, None, :, None] / scale
        rescaled[name] = (kernel.astype(np.float32), (bias / scale).astype(np.float32))
        previous = scale
    return rescaled


def normalize(model: str, weights: Optional[str], photo_paths: Sequence[str], *,
              seed: Optional[int] = None, size: int = PHOTO_SIZE) -> str:
    """Computes the normalised weights of `model` and caches them; returns the file's path.

    Computed once: a second call with the same weights and photos (their bytes) returns the
    cached file. Next to it, `<file>.json` records what it was computed from and each
    layer's filter means.

    Args:
        model: `"vgg19-normalized"` or `"vgg16-normalized"`.
        weights: The base weights: `"imagenet"` (downloaded once if missing), a weights
            file, or None (random, with `seed`: for tests).
        photo_paths: The photos' files.
        seed: The seed of random base weights.
        size: Each photo's side after resizing and cropping.

    Raises:
        ValueError: For an unknown model, no photos, or base weights that cannot be found.
        Exception: Keras' own when the ImageNet weights cannot be downloaded.
    """
    import keras

    if model not in NORMALIZED:
        raise ValueError(f"`model` must be one of {', '.join(NORMALIZED)}. "
                         f"Received: model={model!r}")
    if size < 32:  # Block 5 needs 16 pixels; 32 keeps its pooled layers non-empty.
        raise ValueError(f"`size` must be at least 32 pixels. Received: size={size}")
    arch = NORMALIZED[model]
    if weights == "imagenet":
        imagenet_weights(arch)  # Downloaded first: the cache key holds its digest.
    identity = base_identity(arch, weights, seed)
    photos = read_photos(photo_paths, size)
    key_text = json.dumps([RECIPE, arch, identity, size, sorted(photos.digests)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    path = os.path.join(cache_folder(), f"{model}-{key}.weights.h5")
    if os.path.isfile(path) and os.path.isfile(path + ".json"):
        return path
    network = original_network(arch, weights, seed)
    layers = conv_layers(arch)
    means = filter_means(network, photos)
    rescaled = rescaled_weights(network, scales_of(means), layers)
    base = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}[arch](
        include_top=False, weights=None, input_shape=(None, None, 3))
    for name in layers:
        base.get_layer(name).set_weights(list(rescaled[name]))
    from nst_keras.media.images import atomic_write

    os.makedirs(cache_folder(), exist_ok=True)
    # Written beside, then renamed: a crash never leaves half a file under the key's name
    # (Keras writes only to a path ending in .weights.h5, so not through `atomic_write`).
    temporary = os.path.join(cache_folder(), f".tmp-{os.getpid()}-{key}.weights.h5")
    try:
        base.save_weights(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    record = {
        "recipe": RECIPE, "model": model, "architecture": arch, "base": identity,
        "base_weights": weights, "photo_size": size,
        "photos": [{"name": n, "sha256": d} for n, d in zip(photos.names, photos.digests)],
        "layers": {name: {"filters": int(means[name].size),
                          "never_fire": int(np.sum(~firing(means[name]))),
                          "mean_min": float(means[name][firing(means[name])].min(
                              initial=np.inf)),
                          "mean_max": float(means[name].max()),
                          "means": [float(v) for v in means[name]]} for name in layers},
    }
    with atomic_write(path + ".json", "w") as f:
        json.dump(record, f, indent=1)
    return path


def record_of(path: str) -> Optional[dict]:
    """The record written next to normalised weights, or None if `path` is not such a file."""
    try:
        with open(path + ".json", encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("recipe") == RECIPE else None


def record_means(path: str) -> Dict[str, np.ndarray]:
    """Each conv layer's filter means (over the photos, in the original network) as recorded
    next to normalised weights.

    Raises:
        ValueError: If `path` has no record.
    """
    record = record_of(path)
    if record is None:
        raise ValueError(f"not a normalised weights file (no record beside it). "
                         f"Received: weights={path}")
    return {name: np.array(layer["means"], np.float64)
            for name, layer in record["layers"].items()}


def resolve(model: str, weights: Optional[str], seed: Optional[int] = None) -> str:
    """The normalised weights file that `model` with `weights` names.

    `weights` is the path of normalised weights (written by `normalize`), or the base
    weights (`"imagenet"`, a file, None with a seed): then the one cached normalisation of
    them is taken. None cached, or several (from different photos), is an error naming what
    to do: nothing is computed here, and nothing is chosen by which file is newest.

    Raises:
        ValueError: If there is not exactly one, naming `model` and `weights`.
    """
    arch = NORMALIZED[model]
    if weights not in ("imagenet", None):
        record = record_of(weights)
        if record is not None:
            if record.get("architecture") != arch:
                raise ValueError(f"the weights file is a normalised {record.get('architecture')}"
                                 f", not {arch}. Received: model={model}, weights={weights}")
            return weights
    if weights == "imagenet" and not os.path.isfile(features.imagenet_weights_path(arch)):
        identity = None  # Not downloaded yet, so not normalised yet either: say what to run.
    else:
        identity = base_identity(arch, weights, seed)
    folder = cache_folder()
    found = sorted(os.path.join(folder, n) for n in (os.listdir(folder) if os.path.isdir(folder)
                                                    else ()) if n.startswith(model + "-")
                   and n.endswith(".weights.h5"))
    found = [p for p in found if identity and (record_of(p) or {}).get("base") == identity]
    shown = "none" if weights is None else weights
    if not found:
        seeded = f" --seed {seed}" if weights is None else ""
        raise ValueError(f"no normalised {arch} of these weights yet; compute it once from a "
                         f"folder of photos: nst-keras normalize-vgg PHOTOS --model {model} "
                         f"--weights {shown}{seeded}. Received: model={model}, weights={shown}")
    if len(found) > 1:
        raise ValueError(f"{len(found)} normalised {arch}s of these weights (from different "
                         f"photos): pass one as weights ({', '.join(found)}). "
                         f"Received: model={model}, weights={shown}")
    return found[0]
