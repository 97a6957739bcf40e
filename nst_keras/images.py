"""Loading, resizing, saving, and the 'caffe' preprocessing of VGG with its inverse.

Every function here takes and returns plain numpy arrays (or paths) and never mutates its
input: Keras' own `preprocess_input` overwrites a float numpy array in place, which has
bitten more than one style-transfer script (the content image silently changes under you).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.parse
import urllib.request
import warnings
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps

#: Per-channel means of the ImageNet training set in BGR order, as used by the Caffe VGG
#: models and by `keras.applications.vgg19.preprocess_input` ('caffe' mode).
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

#: The Gatys demo pair, downloaded once into the Keras cache when no images are given.
#: Neckarfront in Tübingen, photograph by Andreas Praefcke, CC BY 3.0:
#: https://commons.wikimedia.org/wiki/File:Tuebingen_Neckarfront.jpg
DEMO_CONTENT_URL = "https://upload.wikimedia.org/wikipedia/commons/0/00/Tuebingen_Neckarfront.jpg"
#: Vincent van Gogh, The Starry Night (1889), public domain:
#: https://commons.wikimedia.org/wiki/File:Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg
DEMO_STYLE_URL = (
    "https://upload.wikimedia.org/wikipedia/commons/thumb/e/ea/"
    "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
    "1280px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg"
)

#: Wikimedia refuses anonymous library user agents; a descriptive one is its policy.
USER_AGENT = "nst_keras/0.1 (neural style transfer; https://pypi.org/project/nst-keras/)"

ImageSource = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]


def is_url(source) -> bool:
    """Whether `source` is an http(s) URL string."""
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


@contextlib.contextmanager
def _descriptive_user_agent():
    # `keras.utils.get_file` downloads with `urllib.request.urlretrieve`, which uses the
    # process-wide opener; install one with a descriptive User-Agent for the duration of
    # the download only, and put the previous one back.
    previous = urllib.request._opener  # pylint: disable=protected-access
    opener = urllib.request.build_opener()
    opener.addheaders = [("User-Agent", USER_AGENT)]
    urllib.request.install_opener(opener)
    try:
        yield
    finally:
        urllib.request.install_opener(previous)


def fetch(url: str, *, cache_subdir: str = "nst_keras") -> str:
    """Downloads `url` once into the Keras cache (`~/.keras/nst_keras`) and returns the path.

    Args:
        url: An http(s) URL.
        cache_subdir: Folder under the Keras cache directory (`$KERAS_HOME` or `~/.keras`).

    Returns:
        The local path of the cached file.

    Raises:
        OSError: If the download fails, naming the URL and what to do instead.
    """
    import keras  # Deferred: importing Keras loads TensorFlow.

    fname = _cache_name(url)
    try:
        with _descriptive_user_agent():
            return keras.utils.get_file(fname, origin=url, cache_subdir=cache_subdir)
    except Exception as error:  # Keras raises a bare Exception for a failed download.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        # Keras' message names the URL again; once is enough.
        reason = reason.replace(f"URL fetch failure on {url}", "").strip(" :-") or reason
        raise OSError(
            f"cannot download {url} (no network?); pass a local file instead ({reason})"
        ) from None


def _cache_name(url: str) -> str:
    """The file name `fetch` caches `url` under."""
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path)) or "image"
    # Two URLs may end in the same file name; a short hash of the URL keeps them apart.
    return f"{hashlib.sha1(url.encode()).hexdigest()[:8]}-{name}"


def cached_path(url: str, *, cache_subdir: str = "nst_keras") -> Optional[str]:
    """Where `fetch` put `url` in the Keras cache, if it is there; downloads nothing.

    Returns:
        The local path, or None when the file is not in the cache.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, cache_subdir, _cache_name(url))
    return path if os.path.isfile(path) else None


def open_image(source: ImageSource, reduce_to=None) -> Image.Image:
    """Opens a path, URL, array or PIL image as an RGB PIL image, upright.

    Any Pillow mode is accepted: alpha is composited onto white, palettes are expanded,
    16-bit and float images are scaled to 8 bits, CMYK is converted. The EXIF orientation
    is applied. Of an animated image, the first frame is used (with a warning).

    Args:
        source: A file path, an http(s) URL (downloaded once into the Keras cache), a
            file's bytes, a numpy array (H, W), (H, W, 3) or (H, W, 4) with values in
            0-255, or a PIL image.
        reduce_to: (width, height) the image will be resized to, or None. A file is then
            decoded reduced: a JPEG at 1/2, 1/4 or 1/8 of its size by its decoder (Pillow's
            `draft`), any image reduced by whole factors (`Image.reduce`, a box filter)
            before it is converted; never below `reduce_to`. What a 48 Mpx mask takes on a
            small run is then what its reduced decode takes (see `decoded_size`).

    Returns:
        A PIL image in mode RGB.

    Raises:
        ValueError: If an array has an unsupported shape.
        OSError: If the file cannot be read as an image.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(source))
    path = _openable(source)
    with Image.open(path) as image:
        if getattr(image, "n_frames", 1) > 1:
            warnings.warn(
                f"{path} has {image.n_frames} frames; using the first.", stacklevel=2
            )
            image.seek(0)
        raw = None if reduce_to is None else _raw_size(image, reduce_to)
        if raw is not None:
            image.draft(None, raw)  # JPEG only; other formats ignore it.
        image.load()
        if raw is not None:
            factor = min(image.size[0] // raw[0], image.size[1] // raw[1])
            if factor >= 2:
                with contextlib.suppress(ValueError):  # Modes `reduce` lacks: as decoded.
                    reduced = image.reduce(factor)
                    reduced.info, reduced.getexif()[0x0112] = image.info, \
                        image.getexif().get(0x0112, 1)
                    image = reduced
        return _to_rgb(ImageOps.exif_transpose(image))


def _raw_size(image: Image.Image, size) -> tuple:
    """`size` (width, height of the upright image) in the file's own orientation."""
    orientation = image.getexif().get(0x0112, 1)
    width, height = max(1, int(size[0])), max(1, int(size[1]))
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


#: Bytes per decoded pixel while a file is read: Pillow's 4-byte pixels (RGB is stored as
#: RGBX), the reduced copy and the decoder's buffers.
DECODE_BYTES_PER_PIXEL = 8


def decoded_size(source: ImageSource, reduce_to) -> tuple:
    """(width, height) a file is decoded at by `open_image(source, reduce_to)`, from its
    header: a JPEG's largest of 1/1, 1/2, 1/4, 1/8 not below `reduce_to`, any other
    format's full size (`Image.reduce` works on the decoded image). An array or a PIL
    image: its size (already decoded)."""
    if isinstance(source, (np.ndarray, Image.Image)):
        return image_size(source)
    with Image.open(_openable(source)) as image:
        raw = _raw_size(image, reduce_to)
        width, height = image.size
        if image.format == "JPEG" and len(image.tile) == 1:
            scale = min(width // raw[0], height // raw[1])
            scale = next(s for s in (8, 4, 2, 1) if scale >= s)
            width, height = -(-width // scale), -(-height // scale)
        return width, height


def image_size(source: ImageSource) -> tuple:
    """(width, height) of an image as `open_image` would give it, from its header alone.

    Nothing is decoded: a file's size is read before its pixels, so that a size too large
    for the memory can be refused before decoding or resizing it takes the memory. The
    EXIF orientation is applied (a rotated photograph's width and height swap).

    Args:
        source: See `open_image`.

    Raises:
        OSError: If the file cannot be read as an image.
        PIL.Image.DecompressionBombError: If it has more than twice Pillow's
            `MAX_IMAGE_PIXELS`.
    """
    if isinstance(source, np.ndarray):
        return int(source.shape[1]), int(source.shape[0])
    if isinstance(source, Image.Image):
        return _upright_size(source)
    with Image.open(_openable(source)) as image:
        return _upright_size(image)


def _openable(source):
    """What `Image.open` takes for a path, a URL (downloaded once) or a file's bytes (how a
    batch's inputs travel to its workers)."""
    import io

    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    return fetch(source) if is_url(source) else os.fspath(source)


def _upright_size(image: Image.Image) -> tuple:
    """The size after the EXIF orientation is applied (orientations 5-8 swap the sides)."""
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def resize_float(rgb: np.ndarray, size) -> np.ndarray:
    """A float image (H, W, C) resized to `size` (width, height), Lanczos, kept as float32.

    How one coarse-to-fine stage hands its image to the next: no rounding to uint8 between
    stages.
    """
    rgb = np.asarray(rgb, np.float32)
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb.copy()
    channels = [Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F").resize(
        tuple(size), Image.LANCZOS) for c in range(rgb.shape[-1])]
    return np.stack([np.asarray(c, np.float32) for c in channels], axis=-1)


def _array_to_rgb(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            "An image array must have shape (H, W), (H, W, 3) or (H, W, 4). "
            f"Received: shape={array.shape}"
        )
    array = np.clip(np.asarray(array, dtype=np.float64), 0, 255).round().astype(np.uint8)
    return _to_rgb(Image.fromarray(array))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0 if values.max(initial=0) <= 65535 else values / values.max()
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # A float image in 0-1.
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def resize_to_height(image: Image.Image, height: int) -> Image.Image:
    """Resizes to `height`, the width following the aspect ratio (at least 1 pixel).

    Departure from the book: the book lets `keras.utils.load_img` resize with nearest-
    neighbour interpolation and stretches the style image to the content's height *and
    width*; we use Lanczos filtering (no aliasing) and keep every image's aspect ratio.
    """
    width = max(1, round(image.width * height / image.height))
    if (width, height) == image.size:
        return image.copy()
    return image.resize((width, height), Image.LANCZOS)


def load_image(source: ImageSource, height: int = None, *, size=None,
               reduced: bool = False) -> np.ndarray:
    """Loads `source` as an RGB uint8 array, resized to `height` or to `size` if given.

    Args:
        source: See `open_image`.
        height: Target height in pixels, the width following the aspect ratio; `None`
            keeps the size.
        size: (width, height) to resize to exactly (Lanczos), ignoring the aspect ratio.
        reduced: Decode a file reduced towards `size` first (`open_image`'s `reduce_to`):
            how an init image far larger than the run is read.

    Returns:
        A (H, W, 3) uint8 array.
    """
    image = open_image(source, size if reduced and size is not None else None)
    if size is not None:
        image = image.resize(tuple(size), Image.LANCZOS)
    elif height is not None:
        image = resize_to_height(image, height)
    return np.asarray(image, dtype=np.uint8).copy()


def load_mask(source: ImageSource, size, reduced: bool = False) -> np.ndarray:
    """Loads a mask as float32 (H, W) in [0, 1], white (or 1) where it applies.

    Args:
        source: A file path, URL or PIL image (its luminance, 255 = 1); or an array: bool
            (True = 1), integers (0-255), or floats in [0, 1]; (H, W) or (H, W, 3|4) (the
            luminance of its RGB).
        size: (width, height) to resize to (Lanczos, clipped back to [0, 1]).
        reduced: Decode a file reduced towards `size` first (`open_image`'s `reduce_to`).

    Returns:
        A (height, width) float32 array.

    Raises:
        ValueError: If a float array has values outside [0, 1], or an array's shape is not
            (H, W) or (H, W, 3|4).
    """
    if isinstance(source, np.ndarray):
        values = np.asarray(source)
        if values.ndim == 3 and values.shape[-1] in (3, 4):
            values = values[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            values = values.astype(source.dtype) if source.dtype.kind != "f" else values
        if values.ndim != 2:
            raise ValueError("A mask array must have shape (H, W) or (H, W, 3). "
                             f"Received: shape={source.shape}")
        if values.dtype == bool:
            values = values.astype(np.float32)
        elif values.dtype.kind in "iu":
            values = values.astype(np.float32) / 255.0
        elif values.min(initial=0) < 0 or values.max(initial=0) > 1:
            raise ValueError("A float mask must have values in [0, 1]. Received: values "
                             f"from {values.min():.3g} to {values.max():.3g}")
        image = Image.fromarray(np.asarray(values, np.float32), mode="F")
    else:
        opened = open_image(source, size if reduced else None)
        grey = np.asarray(opened.convert("L"), np.float32) / 255.0
        image = Image.fromarray(grey, mode="F")
    return np.clip(np.asarray(image.resize(tuple(size), Image.LANCZOS), np.float32), 0.0, 1.0)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """'caffe' preprocessing for VGG: RGB to BGR, ImageNet mean subtracted, no scaling.

    Equal to `keras.applications.vgg19.preprocess_input` on a copy of the input, but never
    mutates `rgb` and always returns a new float32 array with a batch axis.

    Args:
        rgb: (H, W, 3) or (N, H, W, 3) array, RGB, values in 0-255.

    Returns:
        A new (1, H, W, 3) (or (N, H, W, 3)) float32 array.
    """
    x = np.array(rgb, dtype=np.float32, copy=True)
    if x.ndim == 3:
        x = x[None]
    return x[..., ::-1] - IMAGENET_MEAN_BGR


def pixel_bounds(shape) -> tuple:
    """The box of valid pixels, 0-255 per RGB channel, in `preprocess`'s space.

    Args:
        shape: Shape of a preprocessed image or batch, (..., H, W, 3).

    Returns:
        (lower, upper): float32 arrays of `shape`, `-mean` and `255 - mean` per BGR channel.
    """
    lower = np.broadcast_to(-IMAGENET_MEAN_BGR, shape).astype(np.float32)
    return lower, lower + np.float32(255.0)


def deprocess_float(x: np.ndarray) -> np.ndarray:
    """The inverse of `preprocess` without rounding: RGB float32 (H, W, 3), not clipped."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    return np.ascontiguousarray((x + IMAGENET_MEAN_BGR)[..., ::-1])


def deprocess(x: np.ndarray) -> np.ndarray:
    """The inverse of `preprocess`: adds the mean, BGR to RGB, rounds and clips to uint8.

    Args:
        x: (1, H, W, 3) or (H, W, 3) array in 'caffe' space.

    Returns:
        A new (H, W, 3) uint8 array.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    rgb = (x + IMAGENET_MEAN_BGR)[..., ::-1]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb"):
    """Opens a temporary file beside `path` and renames it to `path` once fully written.

    A crash (or Ctrl-C) never leaves a half-written file, and an existing file is replaced
    only by a complete new one. The file gets the mode a plain `open()` would give: an
    existing file's mode is kept, a new file's is 0o666 less the umask (`mkstemp` alone
    would make every file 0600).

    Args:
        path: The file to write.
        mode: `"wb"` or `"w"`.

    Yields:
        The open temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nst-", suffix=os.path.splitext(path)[1], dir=directory)
    try:
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mode_for(path: str) -> int:
    """The permission bits `open(path, "w")` would leave: the existing file's, or the umask's."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)  # Reading the umask means setting it; put it straight back.
        os.umask(umask)
        return 0o666 & ~umask


def save_image(path: Union[str, os.PathLike], rgb: np.ndarray) -> None:
    """Writes an RGB uint8 array to `path` atomically (see `atomic_write`).

    The format follows the extension (PNG, JPEG, ...).
    """
    image_format = image_format_for(path)
    with atomic_write(path) as f:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(f, format=image_format)


def image_format_for(path: Union[str, os.PathLike]) -> str:
    """The Pillow format that writes `path`'s extension.

    Raises:
        ValueError: If Pillow cannot write that extension.
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    Image.init()
    image_format = Image.EXTENSION.get(extension)
    if image_format is None or image_format not in Image.SAVE:
        raise ValueError(
            "Unknown image extension; use .png, .jpg, .webp, .tif or .bmp. "
            f"Received: output={os.fspath(path)}"
        )
    return image_format
