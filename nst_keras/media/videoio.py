"""Reading and writing video frames: a video file, a folder of images, or a glob of them.

Video goes through PyAV (``av``), whose wheels bundle FFmpeg's libraries with the libx264
encoder, so nothing is downloaded at run time. PyAV rather than ``imageio-ffmpeg`` (a bundled
``ffmpeg`` executable driven through pipes) because it reads the frame rate and frame count
from the container as numbers, not from parsed log text, and copies an audio track packet
by packet in the same process.

Frames are RGB uint8 arrays of shape (H, W, 3) throughout. PyAV and Pillow are imported
inside the functions, so importing this module costs nothing and works without the ``video``
extra (``pip install 'nst-keras[video]'``).
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import shutil
from typing import Iterable, Iterator, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]

#: The frame rate a folder or glob of images gets; images carry none. The CLI says so.
DEFAULT_FPS = 25.0

#: Output containers `write_video` writes H.264 into, with the FFmpeg muxer of each.
#: WebM is absent: it takes VP8/VP9/AV1 only, not H.264.
VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

#: Audio codecs MP4 and MOV take as they are; any other is re-encoded to AAC there.
#: Matroska takes any codec, so its audio is always copied.
MP4_AUDIO_CODECS = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")

#: Bytes per pixel reserved for a PNG frame: raw RGB. Noise-like frames (stylised ones
#: are close) compress little, and PNG's filters and headers add a few bytes per row.
PNG_BYTES_PER_PIXEL = 3
#: Per-frame slack for the PNG header, chunks and file-system block rounding.
PNG_BYTES_PER_FRAME = 8192


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds in a frame source.

    Attributes:
        source: The source as given (a video file, a folder, or a glob pattern).
        kind: ``"video"`` for a video file, ``"images"`` for a folder or glob of images.
        frame_count: The number of frames (for a video: the container's count, or the
            number of packets when the container does not say).
        fps: Frames per second of a video; None for images (use `DEFAULT_FPS`).
        width: Frame width in pixels.
        height: Frame height in pixels.
        has_audio: Whether a video file has an audio stream (always False for images).
        files: The image files in order (empty for a video).
    """

    source: str
    kind: str
    frame_count: int
    fps: Optional[float]
    width: int
    height: int
    has_audio: bool
    files: Tuple[str, ...] = dataclasses.field(default=(), repr=False)


def _av():
    """PyAV, or an ImportError that says which extra installs it."""
    try:
        import av
    except ImportError as error:
        raise ImportError("Reading and writing video needs PyAV: pip install 'nst-keras[video]' "
                          "(or pip install av)") from error
    return av


def _image_files(source: str):
    """The image files of a folder or glob, in natural order, or None for anything else
    (`images.find_images`, whose extensions are `images.IMAGE_EXTENSIONS`)."""
    from nst_keras.media import images  # Here: it imports Pillow, which a video does not need.

    files = images.find_images(source)
    if files is not None and not files:
        if os.path.isdir(source):
            raise ValueError("The folder holds no images (" + ", ".join(images.IMAGE_EXTENSIONS)
                             + f"). Received: source={source}")
        raise ValueError(f"The pattern matches no images. Received: source={source}")
    return files


def _image_sizes(files, source):
    """The (width, height) of the first image; every other must match it."""
    from PIL import Image

    size = None
    for path in files:
        try:
            # Opening reads the header only; the pixels wait for `read_frames`.
            with Image.open(path) as image:
                this = image.size
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read the image {path}: {error}. "
                             f"Received: source={source}") from None
        if size is None:
            size, first = this, path
        elif this != size:
            raise ValueError(
                f"All frames must have one size: {path} is {this[0]}x{this[1]} but {first} "
                f"is {size[0]}x{size[1]}. Received: source={source}")
    return size


def _open_video(av, source, name="source"):
    """An open input container with a video stream, or a ValueError naming the source."""
    if not os.path.exists(source):
        raise ValueError(f"There is no such video file, folder or pattern. "
                         f"Received: {name}={source}")
    try:
        container = av.open(source)
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ValueError(f"Cannot read the video ({reason}). Received: {name}={source}") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"The file holds no video frames. Received: {name}={source}")
    return container


def probe(source: PathLike) -> VideoInfo:
    """Frame count, frame rate, size and audio of a video file, folder or glob of images.

    A video's first frame is decoded too, so that a file with a valid header but no
    decodable frame is caught here, before any work.

    Args:
        source: A video file (any container FFmpeg reads), a folder of images (read in
            natural order: frame2 before frame10), or a glob pattern such as
            ``"frames/*.png"``.

    Returns:
        A `VideoInfo`.

    Raises:
        ValueError: If the source does not exist, cannot be read, has no frames, or holds
            images of different sizes (naming the first that differs).
        ImportError: If PyAV is not installed and the source is a video.
    """
    source = os.fspath(source)
    files = _image_files(source)
    if files is not None:
        width, height = _image_sizes(files, source)
        return VideoInfo(source=source, kind="images", frame_count=len(files), fps=None,
                         width=width, height=height, has_audio=False, files=tuple(files))

    av = _av()
    with _open_video(av, source) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        has_audio = bool(container.streams.audio)
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as error:
            raise ValueError(f"Cannot decode the video ({error}). "
                             f"Received: source={source}") from None
        if first is None:
            raise ValueError(f"The video holds no frames. Received: source={source}")
        width, height = first.width, first.height
        count = stream.frames
        if not count:
            # Matroska and WebM do not store a count; counting packets needs no decoding.
            container.seek(0)
            count = sum(1 for packet in container.demux(stream) if packet.size)
    return VideoInfo(source=source, kind="video", frame_count=int(count), fps=fps,
                     width=width, height=height, has_audio=has_audio)


def read_frames(source: PathLike, start: int = 0, end: Optional[int] = None,
                every: int = 1, info: Optional["VideoInfo"] = None) -> Iterator[np.ndarray]:
    """The frames of a video file, a folder or a glob of images, as RGB uint8 arrays.

    Frames ``start, start + every, ...`` before ``end`` (0-based, as Python's
    ``range(start, end, every)``) are yielded one at a time, so a long video never sits in
    memory. The source is checked (`probe`) when this is called, not at the first frame.

    Args:
        source: See `probe`.
        start: Index of the first frame to yield.
        end: Index one past the last frame; None reads to the end.
        every: Yield every ``every``-th frame (1: all of them).
        info: The source's `VideoInfo` when the caller probed it already (a container with
            no frame count is demuxed whole to count them), or None to probe it here.

    Returns:
        An iterator of RGB uint8 arrays (H, W, 3). A video's frames are decoded in order
        from the beginning (no seeking, which lands on key frames only).

    Raises:
        ValueError: As `probe`, or if ``start < 0``, ``every < 1`` or ``end <= start``.
        ImportError: If PyAV is not installed and the source is a video.
    """
    if not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"`start` must be an integer >= 0. Received: start={start!r}")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"`every` must be an integer >= 1. Received: every={every!r}")
    if end is not None and (not isinstance(end, (int, np.integer)) or end <= start):
        raise ValueError(f"`end` must be an integer above `start` ({start}). "
                         f"Received: end={end!r}")
    info = info or probe(source)  # A caller that probed already passes it: no second demux.
    if info.kind == "images":
        return _read_images(info.files[start:end:every])
    return _read_video(info.source, start, end, every)


def _read_images(files) -> Iterator[np.ndarray]:
    from PIL import Image

    for path in files:
        with Image.open(path) as image:
            yield np.asarray(image.convert("RGB"))


def _read_video(source, start, end, every) -> Iterator[np.ndarray]:
    av = _av()
    with _open_video(av, source) as container:
        stream = container.streams.video[0]
        # Frame-level threads: several cores decode in parallel.
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if end is not None and index >= end:
                break
            if index >= start and (index - start) % every == 0:
                yield frame.to_ndarray(format="rgb24")


def check_video_output(path: PathLike) -> str:
    """Check, before any work, that `write_video` can write this file.

    Args:
        path: The output video file.

    Returns:
        The FFmpeg container (muxer) name for the file's extension.

    Raises:
        ValueError: If the extension is not one H.264 can go in (.mp4, .m4v, .mov, .mkv),
            the path is a folder, or its folder does not exist.
    """
    text = os.fspath(path)
    extension = os.path.splitext(text)[1].lower()
    if extension not in VIDEO_CONTAINERS:
        kind = f"a '{extension}' file" if extension else "a file without an extension"
        raise ValueError(f"Cannot write an H.264 video as {kind}; use one of "
                         + ", ".join(VIDEO_CONTAINERS) + f". Received: path={text}")
    if os.path.isdir(text):
        raise ValueError(f"The output video is a folder. Received: path={text}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise ValueError(f"The output video's folder does not exist. Received: path={text}")
    return VIDEO_CONTAINERS[extension]


def _even_size(frame):
    """The frame padded to an even height and width by repeating its last row or column.

    yuv420p stores colour at half resolution, so H.264 in it needs even sizes. Padding
    (rather than cropping) keeps every pixel; the video is then at most 1 px larger.
    """
    height, width = frame.shape[:2]
    if height % 2 or width % 2:
        frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return frame


def _check_frame(frame, index, shape):
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"Frames must be RGB uint8 arrays (H, W, 3). "
                         f"Received: frames[{index}] of shape {frame.shape}, dtype {frame.dtype}")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"All frames must have one size, {shape}. "
                         f"Received: frames[{index}] of shape {frame.shape}")
    return frame


def _frame_rate(fps):
    """fps as an exact fraction: 29.97002997 becomes 30000/1001, 12.0 becomes 12."""
    try:
        rate = fractions.Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError):
        rate = None
    if rate is None or rate <= 0:
        raise ValueError(f"`fps` must be a number above 0. Received: fps={fps!r}")
    return rate


class _AudioSource:
    """The audio packets of `audio_from`, re-stamped for the output, in time order.

    MP4 and MOV get the packets as they are when the codec is one they hold (no loss);
    otherwise the audio is decoded and re-encoded to AAC. Matroska always copies.
    """

    def __init__(self, av, path, output, muxer):
        self.av = av
        self.input = _open_video(av, path, "audio_from") if path is not None else None
        self.stream = None
        self.held = None
        if self.input is None or not self.input.streams.audio:
            return
        self.in_stream = self.input.streams.audio[0]
        codec = self.in_stream.codec_context.name
        self.copy = muxer == "matroska" or codec in MP4_AUDIO_CODECS
        if self.copy:
            self.stream = output.add_stream_from_template(self.in_stream)
        else:
            self.stream = output.add_stream("aac", rate=self.in_stream.codec_context.sample_rate)
        self.pending = self._packets()

    def _packets(self):
        """Output packets, each with its start time in seconds."""
        for packet in self.input.demux(self.in_stream):
            if self.copy:
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                seconds = float(packet.pts * packet.time_base) if packet.pts is not None else 0
                packet.stream = self.stream
                yield seconds, packet
            else:
                for frame in packet.decode():
                    for out in self.stream.encode(frame):
                        yield float(out.pts * out.time_base), out
        if not self.copy:
            for out in self.stream.encode(None):
                yield float(out.pts * out.time_base), out

    def mux_until(self, output, seconds):
        """Mux the packets that start before `seconds` (the video's end so far)."""
        if self.stream is None:
            return
        while True:
            if self.held is None:
                self.held = next(self.pending, None)
                if self.held is None:
                    return
            start, packet = self.held
            if start >= seconds:
                return  # held for a later call, when the video has grown past it
            output.mux(packet)
            self.held = None

    def close(self):
        if self.input is not None:
            self.input.close()


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps,
                audio_from: Optional[PathLike] = None, crf: int = 18) -> int:
    """Encode frames as an H.264 video (yuv420p), keeping the audio of another video.

    The file is written under a temporary name in the same folder and renamed when
    complete (`images.atomic_path`), so a failure never leaves a half-written video at
    ``path``; it gets the mode ``open()`` would give (the umask's, or the replaced file's).

    Args:
        path: The output file: .mp4, .m4v, .mov or .mkv (checked first, see
            `check_video_output`).
        frames: RGB uint8 arrays (H, W, 3), all of one size; any iterable, consumed once.
            Odd heights or widths are padded by one repeated row or column to even sizes,
            which yuv420p needs; the video is then 1 px taller or wider than the frames.
        fps: Frames per second (a float such as 29.97 or 30000/1001 as a Fraction).
        audio_from: A video whose first audio stream is copied into the output (see
            `_AudioSource` for when it is re-encoded to AAC instead), trimmed to the
            video's length. Nothing happens when it has no audio.
        crf: libx264's constant rate factor: 0 lossless, 18 visually lossless, 23 its default.

    Returns:
        The number of frames written.

    Raises:
        ValueError: If the path, fps, a frame or ``audio_from`` is bad, or there are no
            frames.
        ImportError: If PyAV is not installed.
        RuntimeError: If this PyAV build lacks the libx264 encoder.
    """
    muxer = check_video_output(path)
    rate = _frame_rate(fps)
    av = _av()
    if "libx264" not in av.codecs_available:
        raise RuntimeError("This PyAV build has no libx264 encoder; install the PyPI wheel: "
                           "pip install --force-reinstall av")
    from nst_keras.media.images import atomic_path

    path = os.fspath(path)
    count = 0
    with atomic_path(path) as partial, av.open(partial, mode="w", format=muxer) as output:
        # Opened before the first frame so that a bad `audio_from` stops the work early.
        audio = _AudioSource(av, None if audio_from is None else os.fspath(audio_from),
                             output, muxer)
        try:
            video = None
            shape = None
            for count, frame in enumerate(frames, start=1):
                frame = _check_frame(frame, count - 1, shape)
                if video is None:
                    shape = frame.shape
                    height, width = _even_size(frame).shape[:2]
                    video = output.add_stream("libx264", rate=rate)
                    video.width, video.height = width, height
                    video.pix_fmt = "yuv420p"
                    video.time_base = 1 / rate
                    video.options = {"crf": str(int(crf))}
                picture = av.VideoFrame.from_ndarray(_even_size(frame), format="rgb24")
                picture.pts = count - 1
                for packet in video.encode(picture):
                    output.mux(packet)
                audio.mux_until(output, float(count / rate))
            if video is None:
                raise ValueError(f"There are no frames to write. Received: path={path}")
            for packet in video.encode(None):
                output.mux(packet)
            audio.mux_until(output, float(count / rate))
        finally:
            audio.close()
    return count


def disk_space_needed(frame_count: int, height: int, width: int) -> int:
    """A conservative estimate of the bytes a folder of PNG frames takes.

    Args:
        frame_count: Number of frames.
        height: Frame height in pixels.
        width: Frame width in pixels.

    Returns:
        ``frame_count * (3 * height * width + 8192)``: raw RGB per frame, which PNG rarely
        exceeds, plus slack for headers and block rounding.
    """
    return int(frame_count) * (PNG_BYTES_PER_PIXEL * int(height) * int(width)
                               + PNG_BYTES_PER_FRAME)


def check_disk_space(folder: PathLike, frame_count: int, height: int, width: int) -> int:
    """Check that a folder's disk can hold the PNG frames, before any frame is computed.

    Args:
        folder: Where the frames go; it need not exist yet (its nearest existing parent's
            disk is checked).
        frame_count: Number of frames.
        height: Frame height in pixels.
        width: Frame width in pixels.

    Returns:
        The bytes needed (see `disk_space_needed`).

    Raises:
        ValueError: If the disk has less free space than that, with both numbers.
    """
    needed = disk_space_needed(frame_count, height, width)
    existing = os.path.abspath(os.fspath(folder))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(
            f"{frame_count} frames of {width}x{height} need about {needed / 2**20:,.0f} MiB "
            f"({needed:,} bytes) but the disk has {free / 2**20:,.0f} MiB ({free:,} bytes) "
            f"free. Received: folder={os.fspath(folder)}")
    return needed
