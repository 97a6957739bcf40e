"""MkDocs hook: the site's home page is the README, read when the site builds.

The README links into `docs/` (`docs/guides/video.md`, `docs/gallery/blend.jpg`) so that it
reads on its own; on the site those links are relative to `docs/` itself, and the two links
that leave `docs/` (the notebooks' folder, `docs/` itself) become code. Nothing is written to
`docs/`, so the first page is written once.

Registered under `hooks:` in mkdocs.yml.
"""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
HOME = "index.md"


def home_page(readme: str) -> str:
    """The README's text with its links made relative to `docs/`.

    Raises:
        ValueError: If a link leaves `docs/` other than to the notebooks or `docs/` itself,
            where the site has nothing to link to.
    """
    text = readme.replace("](docs/", "](")
    text = text.replace("[`notebooks/`](notebooks)", "`notebooks/`")
    text = text.replace("[`docs/`](docs)", "`docs/`")
    for target in re.findall(r"\]\(([^)#]+)[^)]*\)", text):
        if not re.match(r"[a-z]+:", target) and not (
                README.parent / "docs" / target).exists():
            raise ValueError(f"the README links to a file the site does not have. "
                             f"Received: {target}")
    return text


def on_files(files, config):
    """MkDocs' hook: adds the home page, made from the README."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, HOME, content=home_page(README.read_text("utf-8"))))
    return files


def on_config(config):
    """MkDocs' hook: rebuild the home page when the README changes (`mkdocs serve`)."""
    config.watch.append(str(README))
    return config
