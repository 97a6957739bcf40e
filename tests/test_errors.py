"""`errors.first_line`: the one way an error becomes one line of a report."""

import pathlib
import re

from nst_keras.errors import first_line


def test_the_first_non_blank_line_stripped_or_nothing():
    assert first_line(ValueError("cannot read x\nTraceback ...\n  more")) == "cannot read x"
    assert first_line(RuntimeError("\n  \n  OOM when allocating  \nmore")) == "OOM when allocating"
    assert first_line(KeyError()) == "" and first_line(OSError("")) == ""
    assert first_line(KeyError("block9_conv1")) == "'block9_conv1'"  # As str() shows it.
    assert first_line(UserWarning("one\ntwo")) == "one"  # A warning's message too.


def test_no_module_cuts_a_message_to_its_first_line_another_way():
    package = pathlib.Path(__file__).resolve().parents[1] / "nst_keras"
    own = []
    for path in sorted(package.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"splitlines\(\)\[0\]|split\(['\"]\\n['\"]\)\[0\]", line):
                own.append(f"{path.name}:{number}")
    assert own == []
