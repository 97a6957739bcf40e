"""Every command's argument parser, found by the command's name: the plain run's and each
command that `cli.COMMANDS` dispatches (so a new command is found without a change here).

The documentation's options reference (`docs/hooks/options_reference.py`) is written from these
parsers when the site builds, and `tests/test_doc_commands.py` parses every documented command
line with them, so the documentation and `--help` cannot disagree. Nothing here runs a command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
from typing import Callable, Dict, Sequence

from nst_keras.config import StyleConfig
from nst_keras.commands import console

#: The plain run's name in `builders()`: `nst-keras CONTENT STYLE ...` has no command word.
PLAIN = ""


def builders() -> Dict[str, Callable]:
    """Each command's `build_parser`, by name: the plain run (`PLAIN`) first, then every
    command of `cli.COMMANDS` in its order.

    Raises:
        ValueError: If a command's module has no `build_parser`.
    """
    from nst_keras.commands import cli

    found = {PLAIN: cli.build_parser}
    for name, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        if not callable(getattr(module, "build_parser", None)):
            raise ValueError(f"every command needs a build_parser() for the documentation; "
                             f"{module_name} has none. Received: command={name!r}")
        found[name] = module.build_parser
    return found


def takes_a_preset(build_parser: Callable) -> bool:
    """Whether `build_parser` takes (a preset's `StyleConfig`, the preset's name), so that
    its defaults are a preset's (`console.parse_with_preset`)."""
    required = [p for p in inspect.signature(build_parser).parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return bool(required) or "preset_name" in inspect.signature(build_parser).parameters


def parser(name: str, preset: str = "book") -> argparse.ArgumentParser:
    """The parser of command `name` (`PLAIN` for a plain run) with `preset`'s defaults where
    the command's defaults are a preset's.

    Raises:
        ValueError: If there is no such command or preset.
    """
    from nst_keras.config import preset as preset_config

    found = builders()
    if name not in found:
        raise ValueError(f"no such command; use one of {', '.join(n for n in found if n)}. "
                         f"Received: command={name!r}")
    build = found[name]
    if takes_a_preset(build):
        config = StyleConfig() if preset == "book" else preset_config(preset)
        return build(config, preset)
    return build()


def parse(words: Sequence[str], *, exact: bool = True) -> argparse.Namespace:
    """Parses the words of a command line after `nst-keras` (or `python -m nst_keras`) as the
    command would, and runs nothing. `--help` and `--version` print nothing and return an
    empty namespace.

    Args:
        words: The command line's words, the command's name (`figure`, ...) first if any.
        exact: Refuse an abbreviated option (`--style-los` for `--style-loss`), which
            argparse accepts on the command line: documentation spells options out.

    Raises:
        console.UsageError: For an unknown (or, with `exact`, abbreviated) option, a missing
            argument or an invalid choice or value.
    """
    words = list(words)
    found = builders()
    name = words[0] if words and words[0] in found and words[0] != PLAIN else PLAIN
    argv = words[1:] if name else words
    build = found[name]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            if takes_a_preset(build):
                preset_name, defaults = console.preset_in(argv)  # As parse_with_preset.
                command = build(defaults, preset_name)
            else:
                command = build()
            command.allow_abbrev = not exact
            return command.parse_args(argv)
        except SystemExit as done:  # --help, --version; an argparse error raises UsageError.
            if done.code not in (0, None):
                raise console.UsageError(f"exit {done.code}. Received: {words}") from None
            return argparse.Namespace()
