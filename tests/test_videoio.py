"""Reading and writing frames (`nst_keras.media.videoio`): round trips, selection, audio, bad input.

Every video here is generated in the test (PyAV, numpy), a few dozen pixels across.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from nst_keras.media import videoio  # noqa: E402
from synthetic_video import pan  # noqa: E402

HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def frames():
    return pan(frames=12, height=HEIGHT, width=WIDTH, dx=2, dy=1)


def mean_abs_diff(a, b):
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def make_video_with_audio(path, frames, codec="aac", sample_format="fltp", seconds=2.0,
                          fps=12, rate=44100):
    """A video with a 440 Hz mono sine track, written with PyAV directly."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="mono")
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)
        for start in range(0, samples.size, 1024):
            chunk = samples[None, start:start + 1024]
            chunk = (chunk * 32767).astype(np.int16) if sample_format == "s16" else \
                chunk.astype(np.float32)
            sound = av.AudioFrame.from_ndarray(chunk, format=sample_format, layout="mono")
            sound.sample_rate, sound.pts = rate, start
            container.mux(audio.encode(sound))
        container.mux(audio.encode(None))


def audio_codecs(path):
    with av.open(str(path)) as container:
        return [stream.codec_context.name for stream in container.streams.audio]


# --- The wheel ships its codecs -------------------------------------------------------------

def test_the_av_wheel_ships_libx264_and_aac():
    # Encoders compiled into the bundled FFmpeg; nothing is fetched at run time.
    assert {"libx264", "aac"} <= set(av.codecs_available)
    assert av.Codec("libx264", "w").name == "libx264"


def test_importing_videoio_imports_neither_av_nor_pil():
    code = "import sys, nst_keras.media.videoio; print('av' in sys.modules, 'PIL' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "False"]


# --- Round trips ----------------------------------------------------------------------------

def test_mp4_round_trip_keeps_count_size_fps_and_pixels(tmp_path, frames):
    path = tmp_path / "pan.mp4"
    assert videoio.write_video(path, iter(frames), fps=12) == 12
    info = videoio.probe(path)
    assert (info.kind, info.frame_count, info.fps, info.width, info.height, info.has_audio) \
        == ("video", 12, 12.0, WIDTH, HEIGHT, False)
    back = list(videoio.read_frames(path))
    assert len(back) == 12 and all(f.shape == (HEIGHT, WIDTH, 3) and f.dtype == np.uint8
                                   for f in back)
    # Lossy (crf 18, 4:2:0 colour) on a busy texture: a few grey levels on average.
    assert max(mean_abs_diff(a, b) for a, b in zip(back, frames)) < 8
    # And frame order is kept: each frame matches its own original best.
    assert mean_abs_diff(back[5], frames[5]) < mean_abs_diff(back[5], frames[6])
    assert not [name for name in os.listdir(tmp_path) if name != "pan.mp4"]  # no temp left


def test_the_video_gets_the_mode_open_would_give_and_a_failure_leaves_nothing(tmp_path,
                                                                             frames):
    previous = os.umask(0o027)
    try:
        path = tmp_path / "pan.mp4"
        videoio.write_video(path, frames[:3], fps=12)
        assert path.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, not 0o600.
        os.chmod(path, 0o604)
        videoio.write_video(path, frames[:4], fps=12)
        assert path.stat().st_mode & 0o777 == 0o604  # Overwriting keeps the file's mode.
        assert videoio.probe(path).frame_count == 4
        with pytest.raises(ValueError, match="no frames to write"):
            videoio.write_video(path, [], fps=12)
        assert videoio.probe(path).frame_count == 4  # The old video, untouched.
        assert os.listdir(tmp_path) == ["pan.mp4"]  # No temporary file left.
    finally:
        os.umask(previous)


def test_ntsc_frame_rate_and_matroska_count(tmp_path, frames):
    path = tmp_path / "pan.mkv"
    videoio.write_video(path, frames[:5], fps=30000 / 1001)
    info = videoio.probe(path)
    assert info.fps == pytest.approx(29.97, abs=0.005)
    assert info.frame_count == 5  # Matroska stores no count: counted from its packets


def test_odd_sizes_are_padded_to_even(tmp_path, frames):
    path = tmp_path / "odd.mov"
    odd = [f[:63, :95] for f in frames[:4]]
    videoio.write_video(path, odd, fps=12)
    info = videoio.probe(path)
    assert (info.height, info.width) == (64, 96)
    back = next(iter(videoio.read_frames(path)))
    assert mean_abs_diff(back[:63, :95], odd[0]) < 8


def write_pngs(folder, frames, name="frame{}.png"):
    folder.mkdir(exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name.format(index))
    return folder


def test_folder_and_glob_of_pngs_in_natural_order(tmp_path, frames):
    # frame2.png must come before frame10.png: names are not zero-padded on purpose.
    folder = write_pngs(tmp_path / "frames", frames)
    (folder / "notes.txt").write_text("not a frame")
    info = videoio.probe(folder)
    assert (info.kind, info.frame_count, info.fps, info.width, info.height) == \
        ("images", 12, None, WIDTH, HEIGHT)
    for source in (folder, str(folder / "*.png"), str(folder / "frame?.png")):
        back = list(videoio.read_frames(source))
        expected = frames if "?" not in str(source) else frames[:10]
        assert len(back) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(back, expected))


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_start_end_every_select_frames(tmp_path, frames, kind):
    if kind == "video":
        source = tmp_path / "pan.mp4"
        videoio.write_video(source, frames, fps=12)
    else:
        source = write_pngs(tmp_path / "frames", frames)
    everything = list(videoio.read_frames(source))
    for start, end, every in [(0, None, 1), (3, None, 1), (2, 9, 3), (10, 50, 1), (0, 4, 2)]:
        picked = list(videoio.read_frames(source, start=start, end=end, every=every))
        expected = everything[start:end:every]
        assert len(picked) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(picked, expected))


def test_read_frames_rejects_bad_ranges(tmp_path, frames):
    folder = write_pngs(tmp_path / "frames", frames[:2])
    with pytest.raises(ValueError, match=r"Received: start=-1$"):
        videoio.read_frames(folder, start=-1)
    with pytest.raises(ValueError, match=r"Received: every=0$"):
        videoio.read_frames(folder, every=0)
    with pytest.raises(ValueError, match=r"Received: end=3$"):
        videoio.read_frames(folder, start=3, end=3)


# --- Audio ----------------------------------------------------------------------------------

def test_audio_track_is_copied(tmp_path, frames):
    source = tmp_path / "with_audio.mp4"
    make_video_with_audio(source, frames)
    assert videoio.probe(source).has_audio
    out = tmp_path / "styled.mp4"
    videoio.write_video(out, frames, fps=12, audio_from=source)
    assert videoio.probe(out).has_audio and audio_codecs(out) == ["aac"]
    with av.open(str(out)) as container:
        # The 2 s of sound are cut to the 1 s of video (to within a packet).
        assert container.duration / 1e6 == pytest.approx(1.0, abs=0.1)


def test_audio_mp4_cannot_hold_is_reencoded_to_aac(tmp_path, frames):
    source = tmp_path / "pcm.mkv"
    make_video_with_audio(source, frames, codec="pcm_s16le", sample_format="s16")
    videoio.write_video(tmp_path / "out.mp4", frames, fps=12, audio_from=source)
    assert audio_codecs(tmp_path / "out.mp4") == ["aac"]
    videoio.write_video(tmp_path / "out.mkv", frames, fps=12, audio_from=source)
    assert audio_codecs(tmp_path / "out.mkv") == ["pcm_s16le"]  # Matroska copies as is


def test_an_unreadable_audio_source_is_rejected_before_any_frame(tmp_path):
    def never():
        raise AssertionError("a frame was requested")
        yield

    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match=r"Received: audio_from=.*bad\.mp4$"):
        videoio.write_video(tmp_path / "out.mp4", never(), fps=12, audio_from=bad)
    assert os.listdir(tmp_path) == ["bad.mp4"]


def test_audio_from_a_silent_video_writes_no_audio(tmp_path, frames):
    silent = tmp_path / "silent.mp4"
    videoio.write_video(silent, frames[:3], fps=12)
    videoio.write_video(tmp_path / "out.mp4", frames[:3], fps=12, audio_from=silent)
    assert not videoio.probe(tmp_path / "out.mp4").has_audio


# --- Bad input ------------------------------------------------------------------------------

def test_a_text_file_named_mp4_is_rejected(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video")
    with pytest.raises(ValueError, match=r"Cannot read the video .*Received: source=.*notes\.mp4$"):
        videoio.probe(path)
    with pytest.raises(ValueError, match=r"Received: source=.*notes\.mp4$"):
        videoio.read_frames(path)


def test_a_zero_frame_video_is_rejected(tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()
    with pytest.raises(ValueError, match=r"no video frames\. Received: source=.*empty\.mp4$"):
        videoio.probe(path)


def test_missing_sources_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"no such .*Received: source=.*nothing\.mp4$"):
        videoio.probe(tmp_path / "nothing.mp4")
    with pytest.raises(ValueError, match=r"matches no images\. Received: source=.*\*\.png$"):
        videoio.probe(str(tmp_path / "*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no images .*Received: source=.*empty$"):
        videoio.probe(tmp_path / "empty")


def test_frames_of_two_sizes_name_the_first_that_differs(tmp_path, frames):
    folder = write_pngs(tmp_path / "frames", frames[:4], name="f{}.png")
    Image.fromarray(frames[4][:40, :50]).save(folder / "f2.png")
    Image.fromarray(frames[5][:30, :30]).save(folder / "f3.png")
    with pytest.raises(ValueError) as caught:
        videoio.read_frames(folder)
    message = str(caught.value)
    assert "f2.png is 50x40" in message and "f0.png is 96x64" in message
    assert "f3.png" not in message and message.endswith(f"Received: source={folder}")


@pytest.mark.parametrize("name", ["out.xyz", "out.webm", "out.gif", "out"])
def test_unwritable_extensions_are_rejected_before_any_work(tmp_path, name):
    def never():
        raise AssertionError("a frame was requested")
        yield

    with pytest.raises(ValueError, match=r"Received: path=.*out(\.\w+)?$"):
        videoio.check_video_output(tmp_path / name)
    with pytest.raises(ValueError, match=r"Cannot write an H\.264 video"):
        videoio.write_video(tmp_path / name, never(), fps=12)
    assert os.listdir(tmp_path) == []


def test_write_video_rejects_bad_fps_frames_and_folders(tmp_path, frames):
    with pytest.raises(ValueError, match=r"Received: fps=0$"):
        videoio.write_video(tmp_path / "a.mp4", frames, fps=0)
    with pytest.raises(ValueError, match=r"does not exist\. Received: path="):
        videoio.check_video_output(tmp_path / "missing" / "a.mp4")
    with pytest.raises(ValueError, match=r"no frames to write"):
        videoio.write_video(tmp_path / "a.mp4", [], fps=12)
    mixed = [frames[0], frames[1][:32]]
    with pytest.raises(ValueError, match=r"Received: frames\[1\] of shape \(32, 96, 3\)"):
        videoio.write_video(tmp_path / "a.mp4", mixed, fps=12)
    # No half-written video and no temporary file is left behind.
    assert os.listdir(tmp_path) == []


def test_disk_space_estimate_and_check(tmp_path):
    assert videoio.disk_space_needed(10, 100, 200) == 10 * (3 * 100 * 200 + 8192)
    target = tmp_path / "not" / "yet" / "there"
    assert videoio.check_disk_space(target, 10, 100, 200) == videoio.disk_space_needed(10, 100, 200)
    with pytest.raises(ValueError, match=r"need about [\d,]+ MiB .* free\. Received: folder=") \
            as caught:
        videoio.check_disk_space(target, 10**7, 4000, 4000)
    assert "10000000 frames of 4000x4000" in str(caught.value)


def test_missing_pyav_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'nst-keras\[video\]'"):
        videoio.write_video(tmp_path / "a.mp4", [], fps=12)
