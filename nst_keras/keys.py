"""What decides a result, hashed: the job key.

A result is "done already" when a record on disk holds the same key as the job at hand:
the same settings and the same inputs' *bytes*, wherever the files are now. A style
replaced at the same path changes the key, and a folder moved elsewhere keeps it. Every
front-end asks the same question the same way: `batch` before it plans a job, `video`
before it resumes a frames folder, and every record carries the key of its run.

Inputs may be paths, URLs, bytes, numpy arrays or PIL images: a file is hashed by
streaming it (a multi-GB video is read once, in 1 MiB blocks), an array by its shape,
dtype and bytes, a URL by its downloaded file when that is cached (else by its text).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Dict, Optional, Sequence

#: Settings whose value may name a file whose bytes, not its path, decide the result.
FILE_SETTINGS = ("init", "weights")


def file_digest(path: str) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bytes_digest(data: bytes) -> str:
    """The SHA-256 of bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def input_digest(source) -> str:
    """A digest of one input's data, whatever its kind.

    Args:
        source: A path, an http(s) URL, bytes, a numpy array or a PIL image.

    Returns:
        A hex SHA-256 (of the file's bytes, the bytes, or the array's shape, dtype and
        bytes), or `url:` and the URL when a URL's file is not cached.
    """
    import numpy as np

    from nst_keras.media import images

    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes_digest(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if images.is_url(source):
            cached = images.cached_path(source)
            return file_digest(cached) if cached else f"url:{source}"
        try:
            return file_digest(source)
        except OSError as error:  # Reading it is the plan's to refuse, in its own words.
            return f"unreadable:{source}:{error.errno}"
    array = np.ascontiguousarray(np.asarray(source))
    digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


class Digests:
    """Each input hashed once per process run, however many jobs share it.

    Call it on a source; paths are remembered by (path, size, mtime), so a file replaced
    during a long batch is hashed again.
    """

    def __init__(self):
        self.known: Dict[tuple, str] = {}

    def __call__(self, source) -> str:
        if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
            stat = os.stat(source)
            known = (os.path.abspath(source), stat.st_size, stat.st_mtime_ns)
            if known not in self.known:
                self.known[known] = input_digest(source)
            return self.known[known]
        return input_digest(source)


#: The settings that bound a run's work without changing its path: a checkpoint's key leaves
#: them out, so asking for more evaluations continues a stopped run exactly.
BUDGET_SETTINGS = ("max_evals", "iterations")


def job_key(config, content, styles: Sequence, masks: Optional[Sequence] = None,
            init=None, extra: Optional[dict] = None,
            digest: Optional[Callable[[object], str]] = None,
            ignore: Sequence[str] = ()) -> str:
    """The key of one run: every setting and every input's bytes, hashed.

    Args:
        config: The `StyleConfig`. An `init` or `weights` setting that names a file counts
            by the file's bytes, not its path.
        content: The content image (any kind `input_digest` takes).
        styles: The style images.
        masks: The masks, or None.
        init: The init image's data when it is not the `init` setting's path (a batch
            worker's bytes), or None.
        extra: More JSON-ready things that decide the result (a video's own settings).
        digest: The function that hashes an input (a shared `Digests` caches them), or a
            mapping from source to digest (others hashed as they come).
        ignore: Settings left out (`BUDGET_SETTINGS` for a checkpoint's key).

    Returns:
        A hex SHA-256.
    """
    from collections.abc import Mapping

    from nst_keras.record import settings_dict

    if isinstance(digest, Mapping):
        known = digest
        digest = lambda source: known[source] if source in known else input_digest(source)  # noqa: E731
    digest = digest or input_digest
    settings = settings_dict(config)
    for name in ignore:
        settings.pop(name, None)
    for name in FILE_SETTINGS:
        value = settings.get(name)
        if isinstance(value, str) and os.path.isfile(value):
            settings[name] = digest(value)
    if init is not None:
        settings["init"] = digest(init)
    if getattr(config, "style_loss", None) == "mrf":
        # The style's patches were every one before they were every 2nd: another loss.
        from nst_keras.engine.features import MRF_STYLE_STRIDE

        settings["mrf_style_stride"] = MRF_STYLE_STRIDE
    described = {
        "settings": settings,
        "content": digest(content),
        "styles": [digest(s) for s in styles],
        "masks": None if masks is None else [digest(m) for m in masks],
        **({"extra": extra} if extra else {}),
    }
    return bytes_digest(json.dumps(described, sort_keys=True, default=str).encode())
