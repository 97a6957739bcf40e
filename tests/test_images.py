"""Loading, resizing, saving, and the 'caffe' preprocessing with its inverse."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from nst_keras.media import images


def test_preprocess_equals_keras_on_a_copy_and_does_not_mutate(content_rgb):
    import keras

    original = content_rgb.astype(np.float32)
    before = original.copy()
    ours = images.preprocess(original)
    theirs = keras.applications.vgg19.preprocess_input(original.copy()[None])
    np.testing.assert_array_equal(original, before)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert ours.shape == (1, *content_rgb.shape) and ours.dtype == np.float32


def test_deprocess_inverts_preprocess_and_does_not_mutate(content_rgb):
    x = images.preprocess(content_rgb)
    before = x.copy()
    np.testing.assert_array_equal(images.deprocess(x), content_rgb)
    np.testing.assert_array_equal(x, before)


def test_deprocess_clips_to_uint8():
    x = np.full((1, 2, 2, 3), 1000.0, dtype=np.float32)
    x[0, 0, 0] = -1000.0
    out = images.deprocess(x)
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [255, 255, 255]


def _png(tmp_path, image, name="x.png"):
    path = tmp_path / name
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_loads_as_rgb(tmp_path, content_rgb, mode):
    source = Image.fromarray(content_rgb)
    if mode in ("I;16", "I", "F"):
        gray = np.asarray(source.convert("L"), dtype=np.float64)
        scale = {"I;16": 257.0, "I": 257.0, "F": 1.0}[mode]
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        image = Image.fromarray((gray * scale).astype(dtype))
        if mode == "I;16":
            image = image.convert("I;16") if image.mode != "I;16" else image
        path = tmp_path / "x.tif"
        image.save(path)
        loaded = images.load_image(path)
        # The grey levels come back (within rounding).
        assert np.abs(loaded[..., 0].astype(int) - gray).max() <= 1
    else:
        image = source.convert(mode)
        fmt = "x.jpg" if mode == "CMYK" else "x.png"
        loaded = images.load_image(_png(tmp_path, image, fmt))
    assert loaded.shape == content_rgb.shape and loaded.dtype == np.uint8


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # Red, fully transparent on the left half.
    rgba[:, 4:, 3] = 255
    loaded = images.load_image(_png(tmp_path, Image.fromarray(rgba, "RGBA")))
    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 7].tolist() == [200, 0, 0]


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "Rotate 90 CW to display upright".
    path = tmp_path / "rotated.jpg"
    wide.save(path, exif=exif.tobytes())
    assert images.load_image(path).shape == (40, 20, 3)


def test_resize_to_height_keeps_the_aspect_ratio(content_rgb):
    loaded = images.load_image(content_rgb, height=24)
    assert loaded.shape == (24, 32, 3)


def test_arrays_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"Received: shape=\(4, 4, 5\)"):
        images.load_image(np.zeros((4, 4, 5)))


def test_save_image_is_atomic_and_replaces(tmp_path, content_rgb):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    images.save_image(path, content_rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), content_rgb)
    assert os.listdir(tmp_path) == ["out.png"]  # No temporary file left behind.


def test_save_image_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    with pytest.raises(Exception):
        images.save_image(path, np.zeros((2, 2, 7), dtype=np.uint8))  # Not an image.
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_unknown_extension_is_refused():
    with pytest.raises(ValueError, match="Received: output=out.xyz"):
        images.image_format_for("out.xyz")


def test_fetch_uses_the_keras_cache_and_a_descriptive_user_agent(monkeypatch, tmp_path):
    import urllib.request

    import keras

    seen = {}

    def fake_get_file(fname, origin, cache_subdir):
        seen.update(fname=fname, origin=origin, cache_subdir=cache_subdir,
                    agent=dict(urllib.request._opener.addheaders).get("User-Agent"))
        return str(tmp_path / fname)

    before = urllib.request._opener
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    path = images.fetch("https://example.org/a/Some%20Image.jpg")
    assert seen["origin"] == "https://example.org/a/Some%20Image.jpg"
    assert seen["fname"].endswith("-Some Image.jpg") and seen["cache_subdir"] == "nst_keras"
    assert seen["agent"].startswith("nst_keras/")
    assert path.endswith("Some Image.jpg")
    assert urllib.request._opener is before  # The process-wide opener is put back.


def test_animated_images_use_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="2 frames"):
        loaded = images.load_image(path)
    assert loaded[0, 0].tolist() == [255, 0, 0]


def test_truncated_file_raises_oserror(tmp_path, content_rgb):
    buffer = io.BytesIO()
    Image.fromarray(content_rgb).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(OSError):
        images.load_image(path)


def test_written_files_get_the_mode_open_would_give(tmp_path, content_rgb):
    previous = os.umask(0o027)
    try:
        new = tmp_path / "new.png"
        images.save_image(new, content_rgb)
        assert new.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, not mkstemp's 0o600.
        existing = tmp_path / "existing.png"
        existing.write_bytes(b"old")
        os.chmod(existing, 0o604)
        images.save_image(existing, content_rgb)
        assert existing.stat().st_mode & 0o777 == 0o604  # Overwriting keeps the file's mode.
        os.chmod(existing, 0o444)
        images.save_image(existing, content_rgb)  # A read-only file is replaced, as by `mv`.
        assert existing.stat().st_mode & 0o777 == 0o444
    finally:
        os.umask(previous)


def test_atomic_write_never_changes_the_umask_and_threads_get_its_modes(tmp_path, monkeypatch):
    import threading

    previous = os.umask(0o027)
    try:
        def no_umask(*args):
            raise AssertionError("os.umask called: it changes the umask of every thread")

        monkeypatch.setattr(os, "umask", no_umask)
        errors = []

        def writer(n):
            try:
                for i in range(20):
                    with images.atomic_write(tmp_path / f"{n}-{i}.json", "w") as f:
                        f.write("{}")
            except BaseException as error:  # noqa: BLE001  (reported by the main thread)
                errors.append(error)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        written = sorted(tmp_path.iterdir())
        assert len(written) == 80  # No temporary file left.
        assert {p.stat().st_mode & 0o777 for p in written} == {0o640}
        assert all(p.read_text() == "{}" for p in written)
    finally:
        monkeypatch.undo()
        os.umask(previous)


def test_atomic_write_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        mode = os.fstat(fd).st_mode
        events.append("folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "?")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with images.atomic_write(tmp_path / "a.bin") as f:
        f.write(b"abc")
    assert events == ["file", "rename", "folder"]
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    # A writer that takes a path (the video muxer) goes through the same steps.
    events.clear()
    with images.atomic_path(tmp_path / "b.bin") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and not (tmp_path / "b.bin").exists()
        with open(tmp, "wb") as f:
            f.write(b"xyz")
    assert events == ["file", "rename", "folder"]
    assert (tmp_path / "b.bin").read_bytes() == b"xyz"
    # A failure renames nothing and leaves no temporary file.
    events.clear()
    with pytest.raises(RuntimeError):
        with images.atomic_path(tmp_path / "b.bin") as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("the writer failed")
    assert events == [] and (tmp_path / "b.bin").read_bytes() == b"xyz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_folders_and_patterns_list_images_in_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("frame_10.png", "frame_2.png", "Frame_3.PNG", "frame_1.jpg", "notes.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()  # A folder, whatever its name, is not an image.
    names = ["frame_1.jpg", "frame_2.png", "Frame_3.PNG", "frame_10.png"]
    assert images.find_images(folder) == [str(folder / n) for n in names]
    assert images.find_images(str(folder / "*")) == [str(folder / n) for n in names]
    assert images.find_images(str(folder / "frame_?*.png")) == [str(folder / "frame_2.png"),
                                                                 str(folder / "frame_10.png")]
    assert images.find_images(str(folder / "none*.png")) == []
    assert images.find_images(folder / "frame_2.png") is None  # A file is not a listing.
    assert images.find_images(tmp_path / "missing") is None
    assert sorted(["b10", "b9", "a100", "A2"], key=images.natural_key) == ["A2", "a100", "b9",
                                                                          "b10"]


def test_a_batch_a_video_and_the_app_take_the_same_image_files(tmp_path):
    from nst_keras.commands import app, jobs
    from nst_keras.media import videoio

    folder = tmp_path / "mixed"
    folder.mkdir()
    picture = Image.fromarray(np.full((8, 8, 3), 90, np.uint8))
    for extension in images.IMAGE_EXTENSIONS:
        picture.save(folder / f"image{extension}")
    (folder / "notes.txt").write_text("not an image")
    (folder / "clip.mp4").write_bytes(b"not an image either")
    expected = sorted(f"image{extension}" for extension in images.IMAGE_EXTENSIONS)
    assert sorted(os.path.basename(p) for p in jobs.collect([str(folder)], "content")) == expected
    assert sorted(os.path.basename(p) for p in videoio.probe(folder).files) == expected
    assert sorted(name for name, path in app.gallery(str(folder)).items()
                  if os.path.dirname(path) == str(folder)) == expected


def test_pixel_bounds_are_0_to_255_in_preprocessed_space():
    lower, upper = images.pixel_bounds((1, 2, 3, 3))
    np.testing.assert_array_equal(images.deprocess(lower), 0)
    np.testing.assert_array_equal(images.deprocess(upper), 255)
    np.testing.assert_allclose(preprocess_of(0), lower[0, 0, 0])


def preprocess_of(value):
    return images.preprocess(np.full((1, 1, 3), value, np.uint8))[0, 0, 0]


def test_an_unreachable_url_names_the_host_and_the_reason_only(tmp_path, monkeypatch):
    import re

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "http://nonexistent.invalid/x.jpg"  # .invalid never resolves (RFC 2606): offline.
    with pytest.raises(OSError) as caught:
        images.fetch(url)
    message = str(caught.value)
    # "name or service not known" here; "temporary failure in name resolution" without DNS.
    assert re.fullmatch(r"cannot download http://nonexistent\.invalid/x\.jpg: host "
                        r"nonexistent\.invalid: [a-z][a-z ]+", message), message
    assert "None" not in message and "Errno" not in message


def test_a_failed_download_says_why_from_urllibs_error_or_keras_text(monkeypatch):
    import socket
    import urllib.error

    import keras

    url = "https://example.org/a.jpg"

    def failing(cause):
        def get_file(*args, **kwargs):  # As Keras does: its own text, urllib's as context.
            try:
                raise cause
            except urllib.error.HTTPError as error:
                raise Exception(f"URL fetch failure on {url}: {error.code} -- {error.msg}")
            except urllib.error.URLError as error:
                raise Exception(f"URL fetch failure on {url}: {error.errno} -- {error.reason}")
        return get_file

    for cause, reason in [
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
         "host example.org: name or service not known"),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
         "host example.org: connection refused"),
        (urllib.error.HTTPError(url, 404, "Not Found", {}, None), "HTTP 404 Not Found"),
    ]:
        monkeypatch.setattr(keras.utils, "get_file", failing(cause))
        with pytest.raises(OSError) as caught:
            images.fetch(url)
        assert str(caught.value) == f"cannot download {url}: {reason}"
    # Keras' text alone (no urllib error behind it) reads the same.
    for text, reason in [(f"URL fetch failure on {url}: None -- [Errno -2] Name or service "
                          "not known", "host example.org: name or service not known"),
                         (f"URL fetch failure on {url}: 403 -- Forbidden", "HTTP 403 Forbidden")]:
        monkeypatch.setattr(keras.utils, "get_file",
                            lambda *a, text=text, **k: (_ for _ in ()).throw(Exception(text)))
        with pytest.raises(OSError) as caught:
            images.fetch(url)
        assert str(caught.value) == f"cannot download {url}: {reason}"


def test_the_command_line_names_the_input_that_cannot_be_downloaded_once(image_files, tmp_path,
                                                                         monkeypatch):
    from conftest import run_main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _, style = image_files
    done = run_main("http://nonexistent.invalid/x.jpg", style, "-o", tmp_path / "o.png",
                    "--weights", "none", "-q")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "nst-keras: error: cannot download the content image http://nonexistent.invalid/x.jpg: "
        "host nonexistent.invalid: "), lines
    assert lines[0].count("nonexistent.invalid/x.jpg") == 1 and "Errno" not in lines[0]
