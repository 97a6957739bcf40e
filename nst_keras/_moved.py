"""Today's import paths of the modules that moved into the layer folders.

`nst_keras.losses` is `nst_keras.engine.losses`, `nst_keras.cli` is
`nst_keras.commands.cli`, and so on: the same module object under both names, imported
only when asked for (nothing is imported ahead). The README, the notebooks and users' code
keep working; new code imports the new paths.
"""

import importlib
import importlib.abc
import importlib.util
import sys

#: Old module name (under nst_keras) -> its place now.
MOVED = {
    "app": "commands.app",
    "bars": "commands.bars",
    "batch": "commands.batch",
    "cli": "commands.cli",
    "color": "engine.color",
    "console": "commands.console",
    "contact_sheet": "commands.contact_sheet",
    "control": "engine.control",
    "engines": "commands.engines",
    "features": "engine.features",
    "figures": "commands.figures",
    "flow": "engine.flow",
    "guard": "commands.guard",
    "icc": "media.icc",
    "images": "media.images",
    "jobs": "commands.jobs",
    "keras_state": "engine.keras_state",
    "lbfgsb": "engine.lbfgsb",
    "losses": "engine.losses",
    "normalize": "engine.normalize",
    "normalize_command": "commands.normalize_command",
    "objective": "engine.objective",
    "runtime": "engine.runtime",
    "solvers": "engine.solvers",
    "tiling": "engine.tiling",
    "video": "commands.video",
    "videoio": "media.videoio",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `nst_keras.OLD` and gives the module at its new path, unchanged."""

    def __init__(self):
        self.specs = {}

    def find_spec(self, name, path=None, target=None):
        prefix, _, old = name.rpartition(".")
        if prefix == "nst_keras" and old in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module("nst_keras." + MOVED[spec.name.rpartition(".")[2]])
        self.specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        # The import system gave the module the old name's spec: it keeps its own.
        module.__spec__ = self.specs.pop(module.__name__, module.__spec__)


def install() -> None:
    """Puts the finder on `sys.meta_path`, once."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())  # Only the moved names; before any other.
