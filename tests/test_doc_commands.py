"""Every command line the README and the documentation show parses with the real parsers.

The command lines are those in fenced code blocks that start with `nst-keras` or
`python -m nst_keras` (after an optional `$ ` prompt), with `\\` continuations joined and
comments dropped. UPPER-CASE words (`CONTENT`, `OUT.png`, `DIR`, `N`) are placeholders: each
becomes a plausible value of the option it follows (a number where the option takes one), and
`[options]` is dropped. Each line is then parsed as the command would parse it
(`nst_keras.commands.parsers.parse`): an unknown option, a missing argument or an invalid
choice or value fails. Nothing is run.
"""

import json
import pathlib
import re
import shlex

import pytest

from nst_keras.commands import console, parsers

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: A placeholder: an upper-case word, maybe with a lower-case extension (`OUT.png`).
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(?::\d+)?(?:\.[a-z0-9]+)?$")
#: What a placeholder may stand for, tried in order against the option's type.
SAMPLES = ("2", "0.5", "auto")


def documents():
    """The README and every Markdown page under docs/."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def fenced_blocks(text):
    """The contents of the fenced code blocks of a Markdown text (``` or ~~~, any
    indentation)."""
    blocks, current, fence = [], None, None
    for line in text.splitlines():
        stripped = line.strip()
        if current is None:
            match = re.match(r"(```|~~~)", stripped)
            if match:
                current, fence = [], match.group(1)
        elif stripped.startswith(fence):
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(stripped)
    return blocks


def command_lines(text):
    """The `nst-keras` / `python -m nst_keras` lines of the fenced blocks, continuations
    joined."""
    lines = []
    for block in fenced_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"^\$\s+", "", line.strip())
            if line.startswith(("nst-keras", "python -m nst_keras")):
                lines.append(line)
    return lines


def command_words(line):
    """The words after `nst-keras` or `python -m nst_keras`, without the comment."""
    words = shlex.split(line, comments=True)
    words = words[3:] if words[:3] == ["python", "-m", "nst_keras"] else words[1:]
    return [w for w in words if not re.fullmatch(r"\[[^\]]*\]", w)]  # `[options]`


def substituted(words):
    """`words` with each placeholder replaced by a value the option it follows accepts."""
    parser_of = parsers.parser(words[0] if words and words[0] in parsers.builders() else
                               parsers.PLAIN)
    options = parser_of._option_string_actions  # argparse's option -> action table.
    out, action = [], None
    for word in words:
        if word.startswith("-") and word.split("=")[0] in options:
            action = options[word.split("=")[0]]
            out.append(word)
            continue
        if PLACEHOLDER.match(word):
            out.append(_sample(word, action))
        else:
            out.append(word)
    return out


def _sample(word, action):
    if action is None or action.nargs == 0:  # A positional argument: a path.
        return word.lower() if "." in word else word.lower() + ".jpg"
    if action.choices:
        return str(list(action.choices)[0])
    kind = action.type
    if kind is None or kind is str:
        return word.lower()
    for sample in SAMPLES:
        try:
            kind(sample)
            return sample
        except Exception:  # argparse types raise ArgumentTypeError, ValueError, TypeError.
            continue
    return word.lower()


def parse_line(line):
    """Parses one documented command line; raises `console.UsageError` when it is wrong."""
    return parsers.parse(substituted(command_words(line)))


def documented_lines():
    found = []
    for path in documents():
        for line in command_lines(path.read_text("utf-8")):
            found.append((str(path.relative_to(ROOT)), line))
    return found


def test_the_readme_and_the_docs_show_commands_of_every_kind():
    lines = documented_lines()
    files = {path for path, _ in lines}
    assert "README.md" in files and len(files) >= 8, sorted(files)
    commands = {command_words(line)[0] if command_words(line) else "" for _, line in lines}
    # Every command's guide shows it at work.
    assert {"figure", "batch", "video", "app", "normalize-vgg"} <= commands, commands
    assert len(lines) > 40


@pytest.mark.parametrize("path,line", documented_lines(),
                         ids=lambda value: value if "/" in str(value) or value.endswith(".md")
                         else None)
def test_every_documented_command_line_parses(path, line):
    try:
        parse_line(line)
    except console.UsageError as error:
        pytest.fail(f"{path}: {line!r} does not parse: {error}")


@pytest.mark.parametrize("line", [
    "nst-keras tubingen.jpg starry_night.jpg --style-loos w2 -o out.png",  # a misspelt option
    "nst-keras tubingen.jpg starry_night.jpg --style-los w2 -o out.png",  # abbreviated
    "nst-keras tubingen.jpg starry_night.jpg --style-loss w3 -o out.png",  # an invalid choice
    "python -m nst_keras CONTENT STYLE --preserve-color sepia -o OUT.png",
    "nst-keras figure 4",
    "nst-keras video IN.mp4 STYLE.jpg -o OUT.mp4 --warp bicubic",
    "nst-keras batch photos/ --style paintings/ --out styled/ --engine spark",
    "nst-keras normalize-vgg photos/ --model vgg19",
    "nst-keras app --port PORT --no-such-flag",
    "nst-keras tubingen.jpg starry_night.jpg --max-evals many",
])
def test_a_wrong_line_fails(line):
    with pytest.raises(console.UsageError):
        parse_line(line)


def test_the_extraction_joins_continuations_and_substitutes_placeholders():
    text = ("Some text `nst-keras --nope` outside a block.\n\n```bash\n"
            "$ nst-keras CONTENT STYLE -o OUT.png \\\n    --height H --max-evals N   # a comment\n"
            "pip install -e .\n```\n")
    [line] = command_lines(text)
    assert command_words(line) == ["CONTENT", "STYLE", "-o", "OUT.png", "--height", "H",
                                   "--max-evals", "N"]
    assert substituted(command_words(line)) == ["content.jpg", "style.jpg", "-o", "out.png",
                                                "--height", "2", "--max-evals", "2"]
    assert parse_line(line).max_evals == 2


def test_the_readmes_pictures_are_the_gallerys_with_the_gallerys_commands():
    """Issue 33's rule: a documented picture's command is its gallery example's command."""
    gallery = json.loads((ROOT / "docs" / "gallery" / "gallery.json").read_text())
    by_picture = {e["picture"]: e for e in gallery["examples"]}
    readme = (ROOT / "README.md").read_text("utf-8")
    shown = re.findall(r"\]\(docs/gallery/([\w.-]+\.jpg)\)", readme)
    assert 6 <= len(set(shown)) <= 10, shown
    for picture in shown:
        assert picture in by_picture, picture
        assert by_picture[picture]["command"] in readme, (picture, by_picture[picture]["command"])
