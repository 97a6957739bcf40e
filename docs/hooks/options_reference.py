"""MkDocs hook: writes the options reference into `reference/options.md` when the site builds.

The page in the repository holds only its introduction (with a note for readers on GitHub,
`GITHUB_ONLY`, which the site leaves out) and the marker `REFERENCE_MARKER`; this hook replaces
the marker with one section per command, read from the command's real parser
(`nst_keras.commands.parsers`: the plain run and every command `cli.COMMANDS` dispatches, so a
new command appears without a change here), each option's help being `StyleConfig`'s field
metadata where the option sets a field; then a table of what each preset sets. Nothing it
writes is committed, so the reference and `--help` cannot disagree.

Registered under `hooks:` in mkdocs.yml.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import re
from typing import List

REFERENCE_PAGE = "reference/options.md"
REFERENCE_MARKER = "<!-- the options reference is written here when the site builds -->"
#: A note for readers of the file on GitHub (where the marker is all there is), left out of
#: the site.
GITHUB_ONLY = re.compile(r"<!-- github-only\b.*?<!-- end github-only -->\n?", re.S)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (MkDocs' signature)
    """MkDocs' hook: the reference page's marker replaced by the generated reference."""
    if page.file.src_uri != REFERENCE_PAGE:
        return markdown
    if REFERENCE_MARKER not in markdown:
        raise ValueError(f"{REFERENCE_PAGE} lost its marker. Received: no {REFERENCE_MARKER!r}")
    return GITHUB_ONLY.sub("", markdown).replace(REFERENCE_MARKER, reference())


def reference() -> str:
    """The whole generated reference: every command's options, then the presets' table."""
    from nst_keras.commands import parsers

    sections = [command_section(name) for name in parsers.builders()]
    return "\n\n".join(sections + [presets_section()]) + "\n"


def command_section(name: str) -> str:
    """One command's section: its description, usage and its options by group."""
    from nst_keras.commands import parsers

    parser = parsers.parser(name)
    anchor = name or "run"
    title = f"nst-keras {name}" if name else "nst-keras (a plain run)"
    lines = [f"## `{title}` {{#{anchor}}}", ""]
    if parser.description:
        lines += [_text(parser.description), ""]
    if parsers.takes_a_preset(parsers.builders()[name]):
        lines += ["Defaults are the `book` preset's; `--preset NAME` changes them (see "
                  "[what each preset sets](#presets)), and `nst-keras "
                  + (f"{name} " if name else "") + "--preset NAME --help` shows them.", ""]
    # The usage block wraps on narrow screens (`nst-usage`, docs/stylesheets/extra.css).
    lines += ["```{.text .nst-usage}", parser.format_usage().strip(), "```", ""]
    fields = _config_fields()
    for group in parser._action_groups:  # argparse keeps its groups there, in order.
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        lines += [f"### {_group_title(group.title)} {{#{anchor}-{_slug(group.title)}}}", "",
                  "| option | default | what | `StyleConfig` field |", "|---|---|---|---|"]
        for action in actions:
            field = action.dest if action.dest in fields and action.option_strings else ""
            lines.append(f"| {_cell(_names(action))} | {_cell(_default(action))} | "
                         f"{_cell(_help(action))} | {f'`{field}`' if field else ''} |")
        lines.append("")
    if parser.epilog:
        lines += [_text(parser.epilog), ""]
    return "\n".join(lines).rstrip("\n")


#: Presets per table beside `book`'s column: seven columns do not fit the page's width.
PRESETS_PER_TABLE = 3


def presets_section() -> str:
    """Tables of what each preset sets: every option some preset changes from `book`'s
    default, with each preset's value where it differs; `book`'s column, then
    `PRESETS_PER_TABLE` presets per table (each table has the rows its presets change)."""
    from nst_keras.config import PRESETS

    others = [n for n in PRESETS if n != "book"]
    groups = [others[i:i + PRESETS_PER_TABLE] for i in range(0, len(others), PRESETS_PER_TABLE)]
    lines = ["## What each preset sets {#presets}", "",
             "`--preset NAME` starts from these values; every option given after it overrides "
             "the preset's value. Each table's first column is `book`'s value (`StyleConfig()`'s "
             "default); a blank cell is `book`'s value too, and an option no preset of a table "
             "changes is not in it. Where each value comes from: [Presets](../presets.md).", ""]
    for group in groups:
        lines += [_presets_table(["book"] + group), ""]
    return "\n".join(lines).rstrip("\n")


def _presets_table(names: List[str]) -> str:
    from nst_keras.config import PRESETS, StyleConfig, option_name

    book = StyleConfig()
    changed = [f.name for f in dataclasses.fields(StyleConfig)
               if any(getattr(PRESETS[n], f.name) != getattr(book, f.name) for n in names)]
    lines = ['<div class="nst-wide" markdown>', "",
             "| option | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for field in changed:
        cells = []
        for n in names:
            value = getattr(PRESETS[n], field)
            shown = ""
            if n == "book" or value != getattr(book, field):
                shown = (_flag(field, value) if isinstance(value, bool)
                         else _breakable(_value(value)))
            cells.append(_cell(shown))
        lines.append(f"| `{option_name(field)}` | " + " | ".join(cells) + " |")
    lines += ["", "</div>"]
    return "\n".join(lines)


def _flag(field: str, value: bool) -> str:
    """A switch's value as the flag that sets it (`--bounds`, `--no-bounds`)."""
    from nst_keras.config import option_name

    name = option_name(field)
    return f"`{name}`" if value else f"`--no-{name[2:]}`"


def _breakable(shown: str) -> str:
    """A code span that may wrap after its commas (a list of layers), as HTML: the text and
    a copy of it stay the same."""
    if not (shown.startswith("`") and shown.endswith("`") and "," in shown):
        return shown
    return ('<code class="nst-list">' + html.escape(shown[1:-1]).replace(",", ",<wbr>")
            + "</code>")


def _config_fields() -> dict:
    from nst_keras.config import StyleConfig

    return {f.name: f for f in dataclasses.fields(StyleConfig)}


def _names(action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        if action.choices and not action.metavar:
            metavar = ""
        else:
            metavar = " " + str(action.metavar or action.dest.upper())
            if action.nargs in ("+", "*"):
                metavar += " …"
    return " / ".join(f"`{o}{metavar}`" for o in action.option_strings)


def _default(action) -> str:
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
        return ""
    default = action.default
    if default is argparse.SUPPRESS:
        return "the preset's"
    if isinstance(action, argparse.BooleanOptionalAction):
        return "on" if default else "off"
    if action.nargs == 0:
        return "off" if not default else "on"
    if default is None:
        return "—"
    return _value(default)


def _value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return "`" + ",".join(map(str, value)) + "`"
    return f"`{value}`"


def _help(action) -> str:
    text = (action.help or "").replace("%%", "%")
    if action.choices and action.option_strings:
        text += ("; " if text else "") + "one of " + ", ".join(f"`{c}`" for c in action.choices)
    return _text(text)


CODE_SPAN = re.compile(r"(`[^`]*`|<code>.*?</code>)")


def _text(text: str) -> str:
    """Help text as Markdown: one line, `*` and `<` taken literally (outside code spans, whose
    text is shown as it is)."""
    parts = CODE_SPAN.split(" ".join(text.split()))
    return "".join(part if i % 2 else part.replace("*", "\\*").replace("<", "&lt;")
                   for i, part in enumerate(parts))


def _cell(text: str) -> str:
    """Text for a table cell: a `|` would end the cell. Outside code it is written `&#124;`;
    a code span with one becomes HTML `<code>` with `&#124;` (in a Markdown code span
    `\\|` or `&#124;` would be shown as typed)."""
    parts = CODE_SPAN.split(text)
    for i, part in enumerate(parts):
        if "|" not in part:
            continue
        if i % 2 and part.startswith("`"):
            part = "<code>" + html.escape(part[1:-1], quote=False) + "</code>"
        parts[i] = part.replace("|", "&#124;")
    return "".join(parts)


def _group_title(title) -> str:
    titles = {"positional arguments": "arguments", "options": "general"}
    return str(titles.get(title, title)).capitalize()


def _slug(title) -> str:
    return "".join(c if c.isalnum() else "-" for c in _group_title(title).lower()).strip("-")


__all__: List[str] = ["on_page_markdown", "reference"]
