"""MkDocs hook: two touches to the pages' HTML, after Markdown (and mkdocstrings) made it.

- A repository path of a documentation page written as plain text (`docs/presets.md` in a
  command's help, which the options reference shows, or `docs/benchmarks.md` in a docstring,
  which the API page shows) becomes a link to that page. Text inside code, links and `<pre>`
  is left as it is.
- In the gallery's table each word of a command stays whole: a line breaks between words,
  never inside `--style-weight` (the words are wrapped in `<span class="nst-word">`,
  docs/stylesheets/extra.css); copying the command gives the same text.

Registered under `hooks:` in mkdocs.yml.
"""

from __future__ import annotations

import re

#: A documentation page's repository path in running text (not in an attribute or in code).
REPO_PATH = re.compile(r"(?<![\w/.\"'=>-])docs/((?:[\w-]+/)*[\w-]+)\.md\b")
#: Where text may not become a link: inside these elements.
SKIPPED = re.compile(r"(<(pre|code|a)\b.*?</\2>)", re.S)
GALLERY_PAGE = "gallery/index.md"
GALLERY_CELL = re.compile(r"(<td><code>)(.*?)(</code></td>)", re.S)


def on_page_content(html, page, config, files):  # noqa: ARG001 (MkDocs' signature)
    """MkDocs' hook: repository paths linked; the gallery's commands kept word by word."""
    html = link_repo_paths(html, page, files)
    if page.file.src_uri == GALLERY_PAGE:
        html = GALLERY_CELL.sub(
            lambda m: m.group(1) + whole_words(m.group(2)) + m.group(3), html)
    return html


def link_repo_paths(html: str, page, files) -> str:
    """`docs/X.md` in running text made a link to page X, where the site has it."""
    parts = SKIPPED.split(html)  # text, element, its tag name, text, element, tag name, ...
    return "".join(
        REPO_PATH.sub(lambda m: _link(m, page, files), part) if i % 3 == 0 else part
        for i, part in enumerate(parts) if i % 3 != 2)


def _link(match, page, files) -> str:
    target = files.get_file_from_path(f"{match.group(1)}.md")
    if target is None:
        return match.group(0)
    url = target.url_relative_to(page.file)
    return f'<a href="{url}">{match.group(0)}</a>'


def whole_words(code: str) -> str:
    """A command's words, each in a span that does not break."""
    return " ".join(f'<span class="nst-word">{word}</span>' if word else word
                    for word in code.split(" "))


__all__ = ["on_page_content", "link_repo_paths", "whole_words"]
