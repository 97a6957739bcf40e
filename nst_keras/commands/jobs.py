"""A batch's jobs: which content goes with which styles and settings, named and keyed.

Pure bookkeeping, no TensorFlow: the inputs given as files, folders or globs
(`collect`), paired as every content with every style (`"product"`), one to one
(`"zip"`), or as the rows of a CSV file (`read_jobs_csv`, where a row may also override
settings); each job's output name, made from its inputs' stems so that a person can find
it and sanitised so that it cannot leave the output folder (`job_name`); and its key, a
hash of everything that decides its image (`job_key`), which is how a rerun knows that an
existing output was made with the same settings.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import List, Optional, Sequence, Tuple

from nst_keras.media import images as _images
from nst_keras.config import StyleConfig
from nst_keras.keys import file_digest  # noqa: F401  (re-exported)

#: The file extensions `collect` takes from a folder or a pattern (`images.IMAGE_EXTENSIONS`).
IMAGE_EXTENSIONS = _images.IMAGE_EXTENSIONS

#: CSV columns that are not `StyleConfig` fields.
CSV_INPUT_COLUMNS = ("content", "style", "mask")

#: How several styles or masks are written in one CSV cell.
CSV_LIST_SEPARATOR = ";"

PAIRINGS = ("product", "zip")


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One job of a batch.

    Attributes:
        name: The output's file stem, unique in the batch and safe as a file name.
        content: The content image's path.
        styles: The style images' paths.
        masks: One mask path per style, or None.
        config: The job's settings.
    """

    name: str
    content: str
    styles: Tuple[str, ...]
    masks: Optional[Tuple[str, ...]]
    config: StyleConfig


def collect(sources: Sequence[str], label: str) -> List[str]:
    """The image files that files, folders and glob patterns name, in order, each once.

    A file is taken as it is; a folder gives its image files and a glob pattern its
    matching image files (`images.find_images`: by extension, not recursive, in natural
    order, so `photo2` comes before `photo10`).

    Raises:
        ValueError: If a source matches nothing, naming it (`label` says which input).
    """
    found = []
    for source in sources:
        source = os.fspath(source)
        matches = [source] if os.path.isfile(source) else _images.find_images(source) or []
        if not matches:
            raise ValueError(f"no {label} image found: no such file, no image in that folder "
                             f"or nothing matches that pattern. Received: {label}={source}")
        found += matches
    return list(dict.fromkeys(found))


def pair(contents: Sequence[str], styles: Sequence[str], config: StyleConfig,
         pairing: str = "product") -> List[BatchJob]:
    """The jobs of every content with every style (`"product"`), or one to one (`"zip"`).

    Raises:
        ValueError: If the pairing is unknown, or `"zip"` gets lists of different lengths.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"`pairs` must be one of {', '.join(PAIRINGS)}. Received: pairs={pairing}")
    if pairing == "zip":
        if len(contents) != len(styles):
            raise ValueError(f"zip pairs the n-th content with the n-th style, so both need as "
                             f"many images; there are {len(contents)} contents and "
                             f"{len(styles)} styles. Received: pairs=zip")
        pairs = list(zip(contents, styles))
    else:
        pairs = [(c, s) for c in contents for s in styles]
    return unique_names([BatchJob(job_name(c, [s]), c, (s,), None, config) for c, s in pairs])


def read_jobs_csv(jobs_file: str, config: StyleConfig) -> List[BatchJob]:
    """The jobs of a CSV file: one per row, with a header row.

    Columns: `content` and `style` (required), `mask` (optional); several styles or masks
    in one cell are separated by `;`. Any other column names a `StyleConfig` field
    (`style_weight`, `height`, `preserve_color`, ...) whose value overrides `config` for
    that row; an empty cell keeps `config`'s. Relative paths in cells (content, style,
    mask, an `init` image, a `weights` file) are relative to the CSV's folder; `config`'s
    own paths are left as they are.

    Errors are in the file's words (its column names, which are the fields' names) and
    end with `Received: jobs_file=...`.

    Raises:
        ValueError: If the file cannot be read, a column is unknown, a cell's value is not
            valid for its field, or a row has no content or style; naming the row.
    """
    fields = {f.name: f for f in dataclasses.fields(StyleConfig)}
    folder = os.path.dirname(os.path.abspath(jobs_file))
    received = f"Received: jobs_file={jobs_file}"
    try:
        with open(jobs_file, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            columns = list(rows[0].keys()) if rows else []
    except OSError as error:
        raise ValueError(f"cannot read the jobs file: {error.strerror}. {received}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read the jobs file: {error}. {received}") from None
    if not rows:
        raise ValueError(f"the jobs file has no rows under its header. {received}")
    unknown = [c for c in columns if c not in CSV_INPUT_COLUMNS and c not in fields]
    if unknown or "content" not in columns or "style" not in columns:
        raise ValueError(
            "the jobs file needs the columns content and style, and may have mask and any "
            f"setting's name (style_weight, height, preserve_color, ...); unknown: "
            f"{', '.join(unknown) or 'none'}. {received}")

    def paths(cell):
        return tuple(os.path.join(folder, p.strip()) for p in (cell or "").split(
            CSV_LIST_SEPARATOR) if p.strip())

    jobs = []
    for number, row in enumerate(rows, start=2):  # Row 1 is the header.
        where = f"row {number} of the jobs file"
        content, styles, masks = paths(row["content"]), paths(row["style"]), paths(row.get("mask"))
        if len(content) != 1 or not styles:
            raise ValueError(f"{where} needs one content and at least one style. {received}")
        changes = {}
        for name in columns:
            if name in CSV_INPUT_COLUMNS or not (row[name] or "").strip():
                continue
            try:
                changes[name] = parse_setting(fields[name], row[name].strip())
            except ValueError as error:
                raise ValueError(f"{where}: {error}. {received}") from None
        for name in ("init", "weights"):  # A file named in a cell, as content and style.
            if name in changes and _is_file_setting(name, changes[name]):
                changes[name] = os.path.join(folder, changes[name])
        try:
            job_config = config.replace(**changes)
        except ValueError as error:
            raise ValueError(f"{where}: {_in_column_words(error)}. {received}") from None
        jobs.append(BatchJob(job_name(content[0], styles), content[0], styles, masks or None,
                             job_config))
    return unique_names(jobs)


def _is_file_setting(name: str, value) -> bool:
    """Whether an `init` or `weights` value names a file (not a named start, `imagenet`,
    None or a URL)."""
    from nst_keras.config import INITS

    named = INITS if name == "init" else ("imagenet",)
    return isinstance(value, str) and value not in named and not _images.is_url(value)


def _in_column_words(error: ValueError) -> str:
    """A `StyleConfig` error in a jobs file's words: the fields are its column names.

    "`height` must be ... Received: height=0" becomes "height must be ...; got height 0",
    with no backquotes and no `name=`, which `console.as_usage` would turn into options.
    """
    text, _, got = str(error).rstrip(".").partition(". Received: ")
    text = re.sub(r"`(\w+)`", r"\1", text).rstrip(" .")
    text = text[:1].lower() + text[1:] if text[1:2].islower() else text
    got = re.sub(r"(\w+)=", r"\1 ", got)
    return f"{text}; got {got}" if got else text


#: What a cell of each `kind` of `StyleConfig` field must hold, in words.
KIND_WORDS = {
    "bool": "true or false, 1 or 0, yes or no",
    "int>=1": "an integer >= 1",
    "int>=0": "an integer >= 0",
    "height": "an integer >= 1; auto is for a single run",
    "float>0": "a number > 0",
    "float>=0": "a number >= 0",
    "floats>0": "numbers > 0, separated by spaces",
    "floats>=0": "numbers >= 0, separated by spaces",
}


def parse_setting(field, text: str):
    """A CSV cell as the value of a `StyleConfig` field, by the field's metadata kind.

    Raises:
        ValueError: If the text is not a value of that kind or not one of the field's
            choices: "'abc' is not a valid height (an integer >= 1 ...)".
    """
    import math

    kind = field.metadata.get("kind", "str")
    choices = field.metadata.get("choices")

    def number(part, integer):
        value = int(part) if integer else float(part)
        minimum = 1 if kind in ("int>=1", "height") else 0
        if not math.isfinite(value) or value < minimum or (kind.endswith(">0") and value == 0):
            raise ValueError(part)
        return value

    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind.startswith("int") or kind == "height":
            return number(text, integer=True)
        if kind.startswith("floats"):
            values = tuple(number(v, integer=False) for v in text.split())
            if not values:
                raise ValueError(text)
            return values
        if kind.startswith("float"):
            return number(text, integer=False)
        if kind == "layers":
            return tuple(p.strip() for p in text.split(",") if p.strip())
        if kind == "weights":
            return None if text.lower() == "none" else text
        value = None if text.lower() == "none" and field.default is None else text
        if choices and value is not None and value not in choices:
            raise ValueError(text)
        return value
    except ValueError:
        expected = KIND_WORDS.get(kind) or (f"one of {', '.join(map(str, choices))}"
                                            if choices else "")
        raise ValueError(f"{text!r} is not a valid {field.name}"
                         + (f" ({expected})" if expected else "")) from None


def job_name(content: str, styles: Sequence[str]) -> str:
    """The output stem of a job: `CONTENT__STYLE` (styles joined by `+`), from the inputs'
    file stems, with anything but letters, digits, `.`, `-` and `_` replaced.

    Only the stems are used (never a folder part), and a name cannot start with a dot, so
    an input named `../../x.jpg` gives `x__...`, inside the output folder.
    """
    stems = [_safe(os.path.splitext(os.path.basename(os.fspath(p)))[0])
             for p in [content, *styles]]
    return f"{stems[0]}__{'+'.join(stems[1:])}"[:120]


def unique_names(jobs: List[BatchJob]) -> List[BatchJob]:
    """The jobs, a repeated name (same stems from other folders) numbered `-2`, `-3`...

    Names are compared without case (a case-blind filesystem would merge them), and a
    numbered name that another job already has is skipped.
    """
    used = set()
    unique = []
    for job in jobs:
        name, count = job.name, 1
        while name.lower() in used:
            count += 1
            name = f"{job.name}-{count}"
        used.add(name.lower())
        unique.append(job if name == job.name else dataclasses.replace(job, name=name))
    return unique


def job_key(job: BatchJob, digest=None) -> str:
    """What decides a job's image, hashed: every setting and the bytes of every input
    (`keys.job_key`, the key every record carries).

    An existing output whose record holds the same key was made from the same images with
    the same settings, so a rerun skips it. The paths themselves are not part of it: a
    folder moved elsewhere keeps its results.

    Args:
        job: The job.
        digest: Hashes an input (a shared `keys.Digests` hashes each file once).
    """
    from nst_keras.keys import job_key as key_of

    # Resolved, as `plan` keys a run: the same key as the same run from the command line.
    return key_of(job.config.resolved(), job.content, job.styles, job.masks, digest=digest)


def _safe(stem: str) -> str:
    """A file stem with only letters, digits, `.`, `-` and `_`, not starting with a dot."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:50] or "image"
