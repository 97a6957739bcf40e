"""Loading, resizing, saving, and the 'caffe' preprocessing of VGG with its inverse.

Every function here takes and returns plain numpy arrays (or paths) and never mutates its
input: Keras' own `preprocess_input` overwrites a float numpy array in place, which has
bitten more than one style-transfer script (the content image silently changes under you).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import re
import urllib.parse
import urllib.request
import warnings
from typing import List, Optional, Union

import numpy as np
from PIL import Image, ImageOps

from nst_keras.errors import first_line

#: Per-channel means of the ImageNet training set in BGR order, as used by the Caffe VGG
#: models and by `keras.applications.vgg19.preprocess_input` ('caffe' mode).
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

#: The files taken as images from a folder or a glob pattern (case-insensitive): a batch's
#: inputs, a video's frames, the app's examples. Formats Pillow reads without extra
#: libraries; of an animated GIF, the first frame is used.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm")

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
        OSError: If the download fails, in one line naming the URL and the reason:
            "cannot download URL: host HOST: name or service not known", "... HTTP 404
            Not Found".
    """
    import keras  # Deferred: importing Keras loads TensorFlow.

    fname = _cache_name(url)
    try:
        with _descriptive_user_agent():
            return keras.utils.get_file(fname, origin=url, cache_subdir=cache_subdir)
    except Exception as error:  # Keras raises a bare Exception for a failed download.
        raise OSError(f"cannot download {url}: {download_failure(url, error)}") from None


def download_failure(url: str, error: BaseException) -> str:
    """Why a download failed, in words: "host HOST: name or service not known",
    "host HOST: connection refused", "HTTP 404 Not Found".

    Keras' `get_file` raises a bare `Exception("URL fetch failure on URL: ERRNO -- REASON")`
    (ERRNO None for a host that cannot be reached), raised while handling urllib's error:
    that error is taken when it is there, else Keras' text is read.

    Args:
        url: The URL.
        error: The exception the download raised.

    Returns:
        The reason, without the URL, Keras' "None --" or an "[Errno -2]" prefix.
    """
    import socket
    import urllib.error

    host = urllib.parse.urlparse(url).hostname or url
    cause, seen = error, set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, urllib.error.HTTPError):
            return f"HTTP {cause.code} {cause.reason}".strip()
        if isinstance(cause, urllib.error.URLError):
            reason = cause.reason
            if isinstance(reason, (OSError, socket.timeout)):
                text = reason.strerror or first_line(reason) or type(reason).__name__
                return f"host {host}: {_sentence_case(text)}"
            return f"host {host}: {_sentence_case(str(reason))}"
        cause = cause.__cause__ or cause.__context__
    text = first_line(error) or type(error).__name__
    keras_text = re.match(r"URL fetch failure on .*?: (\S+) -- (.*)$", text)
    if keras_text is None:
        return text.replace(url, "").strip(" :-") or text
    code, reason = keras_text.groups()
    if code.isdigit():
        return f"HTTP {code} {reason}".strip()
    reason = re.sub(r"^(<urlopen error )?\[Errno -?\d+\] ", "", reason).rstrip(">")
    return f"host {host}: {_sentence_case(reason)}"


def _sentence_case(text: str) -> str:
    """A reason that follows a colon, its first letter lowered: "Name or service not known"
    becomes "name or service not known"; "SSL: ..." stays."""
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) == 1 else text


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


def is_image_file(path: Union[str, os.PathLike]) -> bool:
    """Whether `path` is a file with one of `IMAGE_EXTENSIONS`."""
    path = os.fspath(path)
    return path.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path)


def find_images(source: Union[str, os.PathLike]) -> Optional[List[str]]:
    """The image files a folder or a glob pattern names, in natural order; None otherwise.

    A folder gives its image files (by extension, not recursive); a pattern such as
    `"frames/*.png"` its matches that are image files. Natural order: digit runs compare as
    numbers, so `frame_2.png` comes before `frame_10.png` (and `img9` before `img10`),
    case-blind. The one way a batch's inputs and a video's frames are listed.

    Returns:
        The paths (possibly none), or None when `source` is neither a folder nor a pattern
        (a file, or nothing there).
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        found = [os.path.join(source, name) for name in os.listdir(source)]
    elif not os.path.exists(source) and glob.has_magic(source):
        found = glob.glob(source)
    else:
        return None
    return sorted((path for path in found if is_image_file(path)), key=natural_key)


def natural_key(path: Union[str, os.PathLike]) -> tuple:
    """A sort key that orders `frame2.png` before `frame10.png`: digit runs as numbers,
    letters without case (the path itself breaks ties, so the order is total)."""
    path = os.fspath(path)
    parts = re.split(r"(\d+)", path)
    return [int(part) if part.isdigit() else part.lower() for part in parts], path


def open_image(source: ImageSource, reduce_to=None) -> Image.Image:
    """Opens a path, URL, array or PIL image as an RGB PIL image, upright.

    Any Pillow mode is accepted: alpha is composited onto white, palettes are expanded,
    16-bit and float images are scaled to 8 bits (`read_pixels` keeps their depth), CMYK
    is converted. An embedded ICC profile other than sRGB is converted to sRGB (LittleCMS,
    `icc.pil_to_srgb`), as crowsonkb/style-transfer-pytorch does. The EXIF orientation is
    applied. Of an animated image, the first frame is used (with a warning).

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
        return _to_rgb(_in_srgb(ImageOps.exif_transpose(source)))
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
        return _to_rgb(_in_srgb(ImageOps.exif_transpose(image)))


def _in_srgb(image: Image.Image) -> Image.Image:
    """`image` converted to sRGB when it carries another ICC profile (see
    `nst_keras.media.icc`)."""
    from nst_keras.media import icc

    profile = image.info.get("icc_profile")
    if icc.is_srgb(profile) or image.mode.startswith(("I", "F")):
        return image  # LittleCMS takes no 32-bit or 16-bit modes; `read_pixels` does those.
    return icc.pil_to_srgb(image, profile)


def read_pixels(source: ImageSource, reduce_to=None) -> np.ndarray:
    """The RGB pixels of `source` at their own depth, in sRGB, upright.

    As `open_image`, but a 16-bit (or float) image is not cut to 8 bits: 8-bit images
    give uint8, deeper ones float32 in 0-255 (65535 -> 255, so 257 per level), unrounded.
    A 16-bit RGB file is decoded by OpenCV (Pillow reads only its top 8 bits); without
    OpenCV it is read at 8 bits, with a warning. A 16-bit image's ICC profile is converted
    in float when it is a matrix/TRC profile (`icc.float_to_srgb`), and at 8 bits by
    LittleCMS otherwise (with a warning).

    Args:
        source: See `open_image`; a float array is kept as float (clipped to 0-255).
        reduce_to: See `open_image`: an 8-bit file is decoded reduced towards this size (a
            deep one is read whole: OpenCV has no reduced decode).

    Returns:
        A (H, W, 3) uint8 or float32 array.
    """
    if isinstance(source, np.ndarray):
        if source.dtype.kind == "f":
            return _float_array_to_rgb(source)
        return np.asarray(_array_to_rgb(source))
    if not isinstance(source, Image.Image):
        path = _openable(source)
        with Image.open(path) as image:
            if _is_deep(image):
                deep = _deep_pixels(image, path)
                if deep is not None:
                    return deep
    return np.asarray(open_image(source, reduce_to))


def _is_deep(image: Image.Image) -> bool:
    """Whether Pillow would cut this image's samples to 8 bits (16-bit RGB, 16/32-bit grey)."""
    if image.mode.startswith(("I", "F")):
        return True
    rawmode = image.tile[0][3] if image.tile else ""
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    return image.mode in ("RGB", "RGBA") and ";16" in str(rawmode)


def _deep_pixels(image: Image.Image, path) -> Optional[np.ndarray]:
    """A deep image's RGB float32 pixels in 0-255 (see `read_pixels`), or None to read it
    at 8 bits instead."""
    from nst_keras.media import icc

    profile = image.info.get("icc_profile")
    orientation = image.getexif().get(0x0112, 1)
    if image.mode.startswith(("I", "F")):
        values = np.asarray(image, np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0 if values.max(initial=0) <= 65535 else (
                values * 255.0 / values.max())
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # A float image in 0-1.
        rgb = np.repeat(np.clip(values, 0, 255)[..., None], 3, axis=-1)
        if not icc.is_srgb(profile):
            warnings.warn(f"{_named(path)} is a deep grey image with a colour profile; the "
                          "profile is not applied", stacklevel=3)
    else:
        try:
            import cv2
        except ImportError:
            warnings.warn(f"{_named(path)} has 16 bits per channel; read at 8 bits (install "
                          "opencv-python-headless to keep them)", stacklevel=3)
            return None
        if hasattr(path, "getvalue"):
            data = path.getvalue()
        else:
            with open(path, "rb") as f:
                data = f.read()
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3:
            return None
        values = decoded[..., [2, 1, 0]].astype(np.float64) / 257.0  # BGR(A) to RGB.
        if decoded.shape[-1] == 4:
            alpha = decoded[..., 3:].astype(np.float64) / 65535.0
            values = values * alpha + 255.0 * (1.0 - alpha)  # Onto white, as `_to_rgb`.
        rgb = values
        if not icc.is_srgb(profile):
            rgb = icc.float_to_srgb(rgb, profile)
            if rgb is None:
                warnings.warn(f"{_named(path)}'s colour profile is not a matrix/TRC profile; "
                              "converted at 8 bits", stacklevel=3)
                return None
    return np.ascontiguousarray(_oriented(np.asarray(rgb, np.float32), orientation))


def _named(path) -> str:
    return "the image data" if hasattr(path, "getvalue") else os.fspath(path)


def _oriented(array: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W, C) array turned upright by its EXIF orientation, as `ImageOps.exif_transpose`."""
    return {
        2: lambda a: a[:, ::-1],  # Mirrored left-right.
        3: lambda a: a[::-1, ::-1],  # Turned 180 degrees.
        4: lambda a: a[::-1],  # Mirrored top-bottom.
        5: lambda a: a.transpose(1, 0, 2),  # Transposed.
        6: lambda a: np.rot90(a, -1),  # Turned 90 degrees clockwise (PIL's ROTATE_270).
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # Transversed.
        8: lambda a: np.rot90(a, 1),  # Turned 90 degrees anticlockwise (PIL's ROTATE_90).
    }.get(orientation, lambda a: a)(array)


def _float_array_to_rgb(array: np.ndarray) -> np.ndarray:
    """A float array (H, W), (H, W, 3) or (H, W, 4) in 0-255 as RGB float32, alpha onto white."""
    values = np.asarray(array, np.float64)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=-1)
    if values.ndim != 3 or values.shape[-1] not in (3, 4):
        raise ValueError(
            "An image array must have shape (H, W), (H, W, 3) or (H, W, 4). "
            f"Received: shape={array.shape}"
        )
    if values.shape[-1] == 4:
        alpha = np.clip(values[..., 3:], 0, 255) / 255.0
        values = values[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(values, 0, 255).astype(np.float32)


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
               keep_depth: bool = False, reduced: bool = False) -> np.ndarray:
    """Loads `source` as an RGB array in sRGB, resized to `height` or to `size` if given.

    Args:
        source: See `open_image`.
        height: Target height in pixels, the width following the aspect ratio; `None`
            keeps the size.
        size: (width, height) to resize to exactly (Lanczos), ignoring the aspect ratio.
        keep_depth: Keep a 16-bit (or float) source's depth: float32 in 0-255, resized
            as a float image (`resize_float`), not rounded (see `read_pixels`); 8-bit
            sources stay uint8. False: always uint8.
        reduced: Decode a file reduced towards `size` first (`open_image`'s `reduce_to`):
            how an init image far larger than the run is read.

    Returns:
        A (H, W, 3) uint8 array (or float32 with `keep_depth` and a deep source).
    """
    reduce_to = size if reduced and size is not None else None
    pixels = read_pixels(source, reduce_to) if keep_depth else None
    if pixels is not None and pixels.dtype != np.uint8:
        if size is None and height is not None:
            size = (max(1, round(pixels.shape[1] * height / pixels.shape[0])), height)
        if size is not None:
            pixels = np.clip(resize_float(pixels, tuple(size)), 0, 255)
        return np.ascontiguousarray(pixels, np.float32)
    image = open_image(source, reduce_to) if pixels is None else Image.fromarray(pixels)
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


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """A float image in 0-255 rounded to the nearest level and clipped, as uint8."""
    return np.clip(np.rint(np.asarray(rgb, np.float32)), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]):
    """A temporary path beside `path`, renamed to `path` once the block ends without error.

    For a writer that takes a path (the video muxer); `atomic_write` opens the file for
    you. A crash (or Ctrl-C) never leaves a half-written file, and an existing file is
    replaced only by a complete new one: the file's bytes go to the disk (`fsync`) before
    the rename, and the folder's entry after it, so that the rename survives a power cut
    too. On an error the temporary file is removed and `path` is untouched.

    The file gets the mode a plain `open()` would give: an existing file's mode is kept, a
    new file's is 0o666 less the umask. The temporary file is created with mode 0o666 and
    the kernel applies the umask: the umask is never read by setting it, which would race
    with another thread creating a file (the app saves from a worker thread).

    Args:
        path: The file to write.

    Yields:
        The temporary file's path (an empty file to overwrite).
    """
    with _replacing(path) as (_, tmp):
        yield tmp


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb"):
    """Opens a temporary file beside `path` and renames it to `path` once fully written.

    See `atomic_path`: never a half-written file, the bytes and the rename on the disk, the
    mode `open()` would give.

    Args:
        path: The file to write.
        mode: `"wb"` or `"w"` (UTF-8).

    Yields:
        The open temporary file.
    """
    with _replacing(path) as (fd, _):
        with os.fdopen(fd, mode, closefd=False,
                       **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


@contextlib.contextmanager
def _replacing(path):
    """The one temporary-file-and-rename of `atomic_path` and `atomic_write`: yields the
    temporary file's (fd, path); the fd stays open to the end, so that the file can be
    synced (and written) whatever mode it ends with."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_beside(path, directory)
    try:
        yield fd, tmp
        with contextlib.suppress(FileNotFoundError):  # Overwriting keeps the file's mode.
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            if fd is not None:
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(directory)


def _create_beside(path: str, directory: str):
    """(fd, name) of a new empty file `.nst-XXXXXXXX.EXT` in `directory`, mode 0o666 less the
    umask (the kernel applies it; `mkstemp` would make it 0o600)."""
    import secrets

    extension = os.path.splitext(path)[1]
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    for _ in range(100):
        tmp = os.path.join(directory, f".nst-{secrets.token_hex(6)}{extension}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 48 random bits: another writer's name, try another.
            continue
    raise FileExistsError(f"cannot create a temporary file in {directory}")


def _fsync_folder(directory: str) -> None:
    """Flushes a folder's entries (a rename into it) to the disk, where the system can.

    Windows cannot open a folder; some file systems refuse to fsync one (EINVAL): the
    rename is then as durable as that file system makes it.
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_image(path: Union[str, os.PathLike], rgb: np.ndarray) -> None:
    """Writes an RGB uint8 array to `path` atomically (see `atomic_write`), at 8 bits.

    The format follows the extension (PNG, JPEG, ...); see `encode_image` for the profile
    and the JPEG and WebP quality.
    """
    save_float_image(path, rgb, bit_depth=8)


#: The formats we embed the sRGB ICC profile in (Pillow writes none into BMP or GIF).
PROFILE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")

#: The formats that take 16 bits per channel, and the extensions that mean 16 by default.
DEEP_FORMATS = ("PNG", "TIFF")
DEEP_EXTENSIONS = (".tif", ".tiff")


def output_bit_depth(path: Union[str, os.PathLike], bit_depth: Optional[int] = None) -> int:
    """The bits per channel an output gets: `bit_depth`, or 16 for .tif/.tiff and 8 otherwise.

    Raises:
        ValueError: If `bit_depth` is not 8 or 16, or 16 is asked of a format that has no
            16-bit RGB (only PNG and TIFF do).
    """
    if bit_depth is None:
        return 16 if os.path.splitext(os.fspath(path))[1].lower() in DEEP_EXTENSIONS else 8
    if bit_depth not in (8, 16):
        raise ValueError(f"`bit_depth` must be 8 or 16. Received: bit_depth={bit_depth!r}")
    if bit_depth == 16 and image_format_for(path) not in DEEP_FORMATS:
        raise ValueError("16 bits per channel need a .png or .tif output. "
                         f"Received: bit_depth=16, output={os.fspath(path)}")
    return bit_depth


def save_float_image(path: Union[str, os.PathLike], rgb: np.ndarray, bit_depth: int = 8) -> None:
    """Writes an RGB image, float in 0-255 or uint8, to `path` at 8 or 16 bits, atomically.

    Rounded once, here: to the nearest of 256 levels, or of 65536 (x * 257, so that 8-bit
    values stay exact). The sRGB ICC profile is embedded (see `encode_image`).

    Args:
        path: The file; its extension gives the format.
        rgb: (H, W, 3), float (clipped to 0-255) or uint8.
        bit_depth: 8, or 16 for PNG and TIFF.

    Raises:
        ValueError: If the extension is unknown or the format has no 16-bit RGB.
    """
    data = encode_image(rgb, image_format_for(path), bit_depth)
    with atomic_write(path) as f:
        f.write(data)


def encode_image(rgb: np.ndarray, image_format: str = "PNG", bit_depth: int = 8) -> bytes:
    """An RGB image as the bytes of an image file, with the sRGB ICC profile.

    Every PNG, JPEG, TIFF and WebP carries the sRGB profile (`icc.srgb_profile`): the
    pixels are sRGB, and a colour-managed viewer then shows them as such. JPEG is written
    at quality 95 without chroma subsampling and WebP at quality 95, as
    crowsonkb/style-transfer-pytorch does (Pillow's defaults, 75 and 4:2:0, smear the
    colours of fine brush strokes). 8-bit TIFF is deflate-compressed. 16 bits: PNG and TIFF
    only, written here (Pillow has no 16-bit RGB mode).

    Args:
        rgb: (H, W, 3), float in 0-255 (clipped) or uint8.
        image_format: A Pillow format name (`image_format_for`).
        bit_depth: 8 or 16.

    Raises:
        ValueError: If `bit_depth` is 16 and the format is not PNG or TIFF.
    """
    from nst_keras.media import icc

    rgb = np.asarray(rgb)
    if bit_depth == 16:
        if image_format not in DEEP_FORMATS:
            raise ValueError("16 bits per channel need PNG or TIFF. "
                             f"Received: bit_depth=16, format={image_format}")
        scale = 257.0 if rgb.dtype == np.uint8 else 65535.0 / 255.0
        deep = np.clip(np.rint(rgb.astype(np.float64) * scale), 0, 65535).astype(np.uint16)
        writer = _png16 if image_format == "PNG" else _tiff16
        return writer(deep, icc.srgb_profile())
    options = {"icc_profile": icc.srgb_profile()} if image_format in PROFILE_FORMATS else {}
    if image_format == "JPEG":
        options.update(quality=95, subsampling=0)
    elif image_format == "WEBP":
        options.update(quality=95)
    elif image_format == "TIFF":
        options.update(compression="tiff_deflate")
    pixels = rgb if rgb.dtype == np.uint8 else to_uint8(rgb)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _png16(rgb16: np.ndarray, profile: bytes) -> bytes:
    """A 16-bit RGB PNG (colour type 2), its rows "Up"-filtered, with an iCCP chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    height, width = rgb16.shape[:2]
    rows = rgb16.astype(">u2").view(np.uint8).reshape(height, width * 6)
    up = rows.copy()
    up[1:] -= rows[:-1]  # Filter type 2 (Up): each byte minus the one above, mod 256.
    raw = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(profile))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def _tiff16(rgb16: np.ndarray, profile: bytes) -> bytes:
    """A 16-bit RGB baseline TIFF (little-endian, deflate with the horizontal predictor, in
    strips of about 256 KiB), with the ICC profile in tag 34675."""
    import struct
    import zlib

    height, width = rgb16.shape[:2]
    rows_per_strip = max(1, (256 * 1024) // (width * 6))
    samples = rgb16.astype(np.int32)
    samples[:, 1:] -= rgb16[:, :-1].astype(np.int32)  # Predictor 2: each sample minus the
    samples = (samples & 0xFFFF).astype("<u2")  # one to its left, per channel, mod 2**16.
    strips = [zlib.compress(samples[top:top + rows_per_strip].tobytes(), 6)
              for top in range(0, height, rows_per_strip)]
    # (tag, type, values): 3 SHORT, 4 LONG, 5 RATIONAL, 7 UNDEFINED; sorted by tag.
    entries = [(256, 4, [width]), (257, 4, [height]), (258, 3, [16, 16, 16]), (259, 3, [8]),
               (262, 3, [2]), (273, 4, [0] * len(strips)), (277, 3, [3]),
               (278, 4, [rows_per_strip]), (279, 4, [len(s) for s in strips]),
               (282, 5, [72, 1]), (283, 5, [72, 1]), (284, 3, [1]), (296, 3, [2]),
               (317, 3, [2]), (34675, 7, profile)]
    formats = {3: "H", 4: "I", 5: "I", 7: "B"}

    def packed(kind, values):
        return struct.pack(f"<{len(values)}{formats[kind]}", *values)

    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    # Where each value goes: inline when it fits in 4 bytes, else after the IFD.
    extra = b""
    data_at = extra_at + sum(len(packed(k, v)) + (len(packed(k, v)) % 2)
                             for _, k, v in entries if len(packed(k, v)) > 4)
    offsets, at = [], data_at
    for strip in strips:
        offsets.append(at)
        at += len(strip)
    if at >= 2**32:
        raise ValueError(f"a 16-bit TIFF over 4 GiB is not written. Received: size={width}x{height}")
    entries[5] = (273, 4, offsets)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, values in entries:
        count = len(values) // 2 if kind == 5 else len(values)
        data = packed(kind, values)
        if len(data) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += data + b"\x00" * (len(data) % 2)  # Values start on a word boundary.
    ifd += struct.pack("<I", 0)  # No next IFD.
    return b"II*\x00" + struct.pack("<I", 8) + ifd + extra + b"".join(strips)


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
