"""Colour profiles: the sRGB profile every written image carries, and inputs converted to sRGB.

VGG was trained on sRGB photographs, and a viewer shows untagged pixels as sRGB; an input
tagged with another ICC profile (Adobe RGB, Display P3, ProPhoto, a CMYK press profile) has
its pixel values in another space, so it is converted to sRGB on load, as
crowsonkb/style-transfer-pytorch does (relative colorimetric; colours outside sRGB clip).

Eight-bit images go through LittleCMS (Pillow's `ImageCms`), whatever the profile. Sixteen-
bit images cannot (Pillow has no 16-bit RGB mode); for them the conversion is computed here
in float64 from a matrix/TRC profile's own tags (`MatrixShaper`: three tone curves and the
primaries' D50 XYZ, what RGB working spaces and camera profiles are), and a LUT-based
profile falls back to LittleCMS at 8 bits with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import struct
import warnings
from typing import Callable, Optional, Tuple

import numpy as np

#: The header's creation date written into our sRGB profile, instead of the time of day
#: LittleCMS puts there: the same run gives the same file, byte for byte.
_FIXED_DATE = (2024, 1, 1, 0, 0, 0)


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The ICC profile (v4) of sRGB (IEC 61966-2-1) that every image we write embeds.

    Built by LittleCMS (`ImageCms.createProfile("sRGB")`), its creation date fixed.
    """
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", *_FIXED_DATE)
    return bytes(data)


def description(profile: bytes) -> str:
    """The profile's description ("sRGB IEC61966-2.1", "Adobe RGB (1998)"), or ""."""
    from PIL import ImageCms

    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        return ""


def is_srgb(profile: Optional[bytes]) -> bool:
    """Whether pixels tagged with `profile` are sRGB already: no profile (untagged pixels
    are sRGB by convention), ours, or one whose description names sRGB (every maker's
    sRGB profile differs in its bytes, not in its colours)."""
    if not profile:
        return True
    return profile == srgb_profile() or "srgb" in description(profile).lower()


def pil_to_srgb(image, profile: bytes):
    """A PIL image tagged with `profile` converted to sRGB by LittleCMS (mode RGB, or RGBA
    when it has alpha); the image unchanged, with a warning, if LittleCMS refuses it."""
    from PIL import ImageCms

    if image.mode in ("P", "PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA" if image.mode != "P" or "transparency" in image.info
                              else "RGB")
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        return ImageCms.profileToProfile(image, io.BytesIO(profile),
                                         io.BytesIO(srgb_profile()), outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        name = description(profile) or "unnamed"
        warnings.warn(f"cannot convert the image's colour profile ({name}) to sRGB "
                      f"({error}); its pixels are used as they are", stacklevel=3)
        return image


@dataclasses.dataclass(frozen=True)
class MatrixShaper:
    """An RGB matrix/TRC ICC profile: RGB -> linear (three tone curves) -> D50 XYZ.

    Attributes:
        curves: The red, green and blue tone curves, each mapping [0, 1] to linear [0, 1].
        matrix: (3, 3): linear RGB (columns r, g, b) to the PCS's D50 XYZ.
    """

    curves: Tuple[Callable[[np.ndarray], np.ndarray], ...] = dataclasses.field(repr=False)
    matrix: np.ndarray

    def to_xyz(self, rgb01: np.ndarray) -> np.ndarray:
        """(..., 3) RGB in [0, 1] -> (..., 3) D50 XYZ, float64."""
        linear = np.stack([curve(rgb01[..., c]) for c, curve in enumerate(self.curves)], -1)
        return linear @ self.matrix.T


def matrix_shaper(profile: bytes) -> Optional[MatrixShaper]:
    """The profile's `MatrixShaper`, or None when it is not an RGB matrix/TRC profile.

    Reads the tags rXYZ, gXYZ, bXYZ (s15Fixed16 XYZ) and rTRC, gTRC, bTRC (`curv`: identity,
    a gamma or a sampled table; `para`: ICC parametric functions 0-4).
    """
    try:
        if profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
            return None
        (count,) = struct.unpack(">I", profile[128:132])
        tags = {}
        for i in range(count):
            sig, offset, size = struct.unpack(">4sII", profile[132 + 12 * i:144 + 12 * i])
            tags[sig] = profile[offset:offset + size]
        if not all(t in tags for t in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
            return None
        columns = [np.array(struct.unpack(">3i", tags[t][8:20]), np.float64) / 65536.0
                   for t in (b"rXYZ", b"gXYZ", b"bXYZ")]
        curves = tuple(_curve(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC"))
    except struct.error:
        return None
    if any(c is None for c in curves):
        return None
    return MatrixShaper(curves, np.stack(columns, axis=1))


def _curve(tag: bytes) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """A `curv` or `para` tag as a function on [0, 1]; None for another type."""
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack(">H", tag[12:14])[0] / 256.0
            return lambda x: np.power(np.clip(x, 0, 1), gamma)
        table = np.array(struct.unpack(f">{n}H", tag[12:12 + 2 * n]), np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        (function,) = struct.unpack(">H", tag[8:10])
        counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if function not in counts:
            return None
        params = [v / 65536.0 for v in struct.unpack(f">{counts[function]}i",
                                                      tag[12:12 + 4 * counts[function]])]
        g, a, b, c, d, e, f = (params + [0.0] * 7)[:7]  # Each function uses its own.
        if function in (1, 2) and a == 0:
            return None
        if function == 0:
            return lambda x: np.power(np.clip(x, 0, 1), g)

        def parametric(x):
            x = np.clip(x, 0.0, 1.0)
            base = np.power(np.maximum(a * x + b, 0.0), g)
            if function == 1:
                return np.where(x >= -b / a, base, 0.0)
            if function == 2:
                return np.where(x >= -b / a, base + c, c)
            if function == 3:
                return np.where(x >= d, base, c * x)
            return np.where(x >= d, base + e, c * x + f)

        return parametric
    return None


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB in [0, 1] -> sRGB values in [0, 1] (IEC 61966-2-1's tone curve)."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(linear, 1 / 2.4) - 0.055)


def float_to_srgb(rgb: np.ndarray, profile: bytes) -> Optional[np.ndarray]:
    """A float RGB image in 0-255 tagged with `profile`, converted to sRGB in float64.

    Through the PCS (D50 XYZ) from the profile's matrix and curves to ours (relative
    colorimetric, LittleCMS's choice for matrix/TRC profiles); colours outside sRGB are
    clipped. None when `profile` is not a matrix/TRC profile.

    Returns:
        A float32 (H, W, 3) array in 0-255, or None.
    """
    source, target = matrix_shaper(profile), matrix_shaper(srgb_profile())
    if source is None:
        return None
    xyz = source.to_xyz(np.asarray(rgb, np.float64) / 255.0)
    linear = xyz @ np.linalg.inv(target.matrix).T
    return (srgb_encode(linear) * 255.0).astype(np.float32)
