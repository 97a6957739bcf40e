"""16-bit output, the sRGB profile in every image written, and ICC-tagged inputs converted
to sRGB; each against numpy (or OpenCV, which reads PNG and TIFF independently of us)."""

import struct

import numpy as np
import pytest
from PIL import Image

from nst_keras.media import icc, images

from conftest import make_image, run_main

cv2 = pytest.importorskip("cv2")

#: Adobe RGB (1998): its primaries adapted to D50 (the ICC PCS; Bradford), as in Adobe's
#: own profile, and its gamma 563/256.
ADOBE_RGB_D50 = np.array([[0.6097, 0.2053, 0.1492],
                          [0.3111, 0.6257, 0.0632],
                          [0.0195, 0.0609, 0.7446]])
ADOBE_GAMMA = 563 / 256
#: sRGB's primaries adapted to D50 (Bradford): IEC 61966-2-1 through the ICC PCS.
SRGB_D50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                     [0.2225045, 0.7168786, 0.0606169],
                     [0.0139322, 0.0971045, 0.7141733]])


def s15(value):
    return struct.pack(">i", int(round(value * 65536)))


def adobe_rgb_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC display profile of Adobe RGB (1998), built by hand."""
    def xyz(values):
        return b"XYZ \0\0\0\0" + b"".join(s15(v) for v in values)

    text = b"Adobe RGB (1998) test"
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0"
                 + b"\0" * 8 + b"\0" * 3 + b"\0" * 67,
        b"wtpt": xyz((0.9642, 1.0, 0.8249)),
        b"rXYZ": xyz(ADOBE_RGB_D50[:, 0]), b"gXYZ": xyz(ADOBE_RGB_D50[:, 1]),
        b"bXYZ": xyz(ADOBE_RGB_D50[:, 2]),
        b"rTRC": b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0",
        b"cprt": b"text\0\0\0\0" + b"none\0",
    }
    tags[b"gTRC"] = tags[b"bTRC"] = tags[b"rTRC"]
    table_size = 4 + 12 * len(tags)
    offset, entries, data = 128 + table_size, b"", b""
    for sig, body in tags.items():
        body += b"\0" * (-len(body) % 4)
        entries += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = 128 + table_size + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + data


def stored_primaries(profile: bytes, tags=(b"rXYZ", b"gXYZ", b"bXYZ")):
    """The (3, 3) matrix of a profile's primaries as stored (s15Fixed16), columns r, g, b."""
    count = struct.unpack(">I", profile[128:132])[0]
    table = {profile[132 + 12 * i:136 + 12 * i]: struct.unpack(
        ">II", profile[136 + 12 * i:144 + 12 * i]) for i in range(count)}
    return np.stack([np.array(struct.unpack(">3i", profile[table[t][0] + 8:table[t][0] + 20]))
                     / 65536.0 for t in tags], axis=1)


def adobe_to_srgb(rgb, exact_profiles=False):
    """numpy, float64: Adobe RGB values in 0-255 -> sRGB values in 0-255 (clipped).

    With `exact_profiles`, the primaries as the two profiles store them (s15Fixed16: off by
    up to 1.5e-5, which sRGB's slope of 12.92 near black makes 0.3 levels), not the
    standards' values."""
    adobe, srgb = ADOBE_RGB_D50, SRGB_D50
    if exact_profiles:
        adobe = stored_primaries(adobe_rgb_profile())
        srgb = stored_primaries(icc.srgb_profile())
    linear = np.power(np.asarray(rgb, np.float64) / 255.0, ADOBE_GAMMA)
    srgb_linear = np.clip(linear @ adobe.T @ np.linalg.inv(srgb).T, 0, 1)
    encoded = np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear,
                       1.055 * srgb_linear ** (1 / 2.4) - 0.055)
    return encoded * 255.0


def colour_patches():
    """Saturated and neutral colours, where Adobe RGB and sRGB differ most and least."""
    values = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 150, 40], [40, 160, 200],
                       [128, 128, 128], [250, 250, 250], [10, 10, 10]], np.float64)
    return np.repeat(values[None], 4, axis=0)  # (4, 8, 3)


# --- Writing ----------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["png", "tif"])
def test_a_16_bit_round_trip_keeps_more_than_256_levels(tmp_path, extension):
    ramp = np.linspace(0.0, 255.0, 3000, dtype=np.float32)  # Steps of 0.085 levels.
    rgb = np.stack([np.tile(ramp, (4, 1)), np.tile(ramp[::-1], (4, 1)),
                    np.full((4, 3000), 99.37, np.float32)], axis=-1)
    path = tmp_path / f"deep.{extension}"
    images.save_float_image(path, rgb, bit_depth=16)
    # OpenCV's decoder, not ours: the file holds round(x * 65535 / 255) in 16 bits.
    written = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, np.rint(rgb.astype(np.float64) * 257))
    back = images.load_image(path, keep_depth=True)
    assert back.dtype == np.float32 and len(np.unique(back[..., 0])) > 256
    np.testing.assert_allclose(back, rgb, atol=0.5 / 257 + 1e-4)
    # At 8 bits the same ramp has 256 levels at most: what the old path kept.
    assert len(np.unique(images.load_image(path)[..., 0])) <= 256


def test_every_format_we_write_carries_the_srgb_profile(tmp_path):
    rgb = make_image(20, 30)
    for name, depth in (("a.png", 8), ("a.jpg", 8), ("a.tif", 8), ("a.webp", 8),
                        ("b.png", 16), ("b.tif", 16)):
        images.save_float_image(tmp_path / name, rgb, bit_depth=depth)
        with Image.open(tmp_path / name) as image:
            assert image.info.get("icc_profile") == icc.srgb_profile(), name
    images.save_image(tmp_path / "c.png", rgb)  # The 8-bit writer every front-end uses.
    with Image.open(tmp_path / "c.png") as image:
        assert image.info["icc_profile"] == icc.srgb_profile()
        np.testing.assert_array_equal(np.asarray(image), rgb)
    # The profile is sRGB's (LittleCMS reads it so), and the same bytes every time.
    assert "sRGB" in icc.description(icc.srgb_profile())
    icc.srgb_profile.cache_clear()
    images.save_image(tmp_path / "d.png", rgb)
    assert (tmp_path / "d.png").read_bytes() == (tmp_path / "c.png").read_bytes()


def test_16_bits_are_refused_for_formats_without_them(tmp_path):
    assert images.output_bit_depth("x.tif") == 16 and images.output_bit_depth("x.png") == 8
    assert images.output_bit_depth("x.png", 16) == 16 and images.output_bit_depth("x.tif", 8) == 8
    with pytest.raises(ValueError, match="Received: bit_depth=16, output=x.jpg"):
        images.output_bit_depth("x.jpg", 16)
    result = run_main("a.png", "b.png", "-o", tmp_path / "out.jpg", "--bit-depth", "16")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "need a .png or .tif output. Received: --bit-depth 16, -o" in result.stderr


# --- Reading ----------------------------------------------------------------------------


def test_an_adobe_rgb_input_is_converted_to_srgb(tmp_path):
    patches = colour_patches()
    path = tmp_path / "adobe.jpg"
    Image.fromarray(patches.astype(np.uint8)).save(path, quality=100, subsampling=0,
                                                   icc_profile=adobe_rgb_profile())
    with Image.open(path) as image:
        stored = np.asarray(image, np.float64)  # What the JPEG holds (Adobe RGB values).
    loaded = images.load_image(path)
    expected = adobe_to_srgb(stored)
    # LittleCMS at 8 bits against numpy in float64: within rounding.
    assert np.abs(loaded - expected).max() <= 1.5
    # Our float conversion (the 16-bit path) agrees with LittleCMS's on the same values.
    assert np.abs(loaded - icc.float_to_srgb(stored, adobe_rgb_profile())).max() <= 1.0
    # The test can fail: unconverted, the saturated colours are far off.
    assert np.abs(stored - expected).max() > 30
    # An sRGB-tagged input is left as it is.
    srgb_path = tmp_path / "srgb.png"
    Image.fromarray(patches.astype(np.uint8)).save(srgb_path, icc_profile=icc.srgb_profile())
    np.testing.assert_array_equal(images.load_image(srgb_path), patches.astype(np.uint8))


def test_a_16_bit_adobe_rgb_input_is_converted_in_float(tmp_path):
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, size=(16, 24, 3)).astype(np.uint16)
    path = tmp_path / "adobe16.png"
    path.write_bytes(images._png16(deep, adobe_rgb_profile()))
    loaded = images.load_image(path, keep_depth=True)
    assert loaded.dtype == np.float32
    expected = adobe_to_srgb(deep.astype(np.float64) / 257.0, exact_profiles=True)
    np.testing.assert_allclose(loaded, expected, atol=0.01)
    # Against the standards' primaries: within the profiles' rounding.
    assert np.abs(loaded - adobe_to_srgb(deep / 257.0)).max() < 0.5
    assert len(np.unique(loaded)) > 256


def test_a_16_bit_content_keeps_its_depth_through_the_plan(tmp_path):
    from nst_keras.plan import plan

    ramp = np.linspace(100.0, 110.0, 64)  # 10 levels of 8 bits, 2570 of 16.
    deep = np.stack([np.tile(ramp, (48, 1))] * 3, axis=-1)
    path = tmp_path / "content16.png"
    path.write_bytes(images._png16(np.rint(deep * 257).astype(np.uint16), icc.srgb_profile()))
    job = plan(path, make_image(40, 40), weights=None, height=48, tile="off")
    assert job.content.dtype == np.float32 and len(np.unique(job.content[..., 0])) > 20
    np.testing.assert_allclose(job.content, deep, atol=0.01)


# --- The command line --------------------------------------------------------------------


@pytest.mark.parametrize("output, extra", [("out.tif", []), ("out.png", ["--bit-depth", "16"])])
def test_the_command_line_writes_16_bits_from_the_float_result(tmp_path, image_files, output,
                                                                extra):
    content, style = image_files
    out = tmp_path / output
    result = run_main(content, style, "-o", out, "--weights", "none", "--height", "48",
                      "--max-evals", "6", "--seed", "0", "--precision", "float32", "-q",
                      *extra)
    assert result.returncode == 0, result.stderr
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (48, 64, 3)
    # Not 8-bit values scaled up: most pixels fall between two 8-bit levels.
    assert np.mean(written % 257 != 0) > 0.5
    with Image.open(out) as image:
        assert image.info["icc_profile"] == icc.srgb_profile()


@pytest.mark.parametrize("mode", [None, "luminance", "histogram", "swap"])
def test_a_16_bit_content_renders_under_every_colour_mode(tmp_path, mode):
    from nst_keras import render
    from nst_keras.plan import plan

    deep = make_image(32, 40, seed=5).astype(np.float64) * 257 + 100  # Not multiples of 257.
    path = tmp_path / "content16.png"
    path.write_bytes(images._png16(np.clip(deep, 0, 65535).astype(np.uint16),
                                   icc.srgb_profile()))
    job = plan(path, make_image(32, 32), weights=None, height=32, tile="off", seed=0,
               max_evals=2, preserve_color=mode, precision="float32")
    assert job.content.dtype == np.float32
    result = render.render(job)
    assert result.pixels.dtype == np.float32 and result.pixels.shape == (32, 40, 3)
    np.testing.assert_array_equal(result.image, images.to_uint8(result.pixels))
    assert 0.0 <= result.pixels.min() and result.pixels.max() <= 255.0
