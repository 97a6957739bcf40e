"""The notebooks in notebooks/ run top to bottom, offline, with tiny settings.

Each notebook has one code cell tagged `parameters`; the test replaces its assignments (tiny
images written here, a handful of evaluations, `WEIGHTS = None`) and executes the notebook in
a fresh kernel with nbclient. Any cell error fails the test. Nothing touches the network.
"""

import re

import pytest
from conftest import ROOT, make_image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = ROOT / "notebooks"

#: Per notebook: the parameters to replace (the right-hand side is Python source). CONTENT
#: and STYLE are added by `_substitute`, pointing at images in tmp_path.
TINY = {
    "01_book_8_3_today.ipynb": {
        "HEIGHT": "32",
        "MAX_EVALS": "4",
        "WEIGHTS": "None",
        "RESULT_PATH": '"result.png"',
    },
    "02_lbfgs_vs_sgd.ipynb": {
        "HEIGHT": "32",
        "EVALUATIONS": "4",
        "WEIGHTS": "None",
    },
    "03_what_the_network_sees.ipynb": {
        "HEIGHT": "32",
        "MAX_EVALS": "2",
        "WEIGHTS": "None",
        "BLOCKS": "5",
        "UNITS_PER_BLOCK": "2",
        "PATTERN_SIZE": "32",
        "ASCENT_STEPS": "2",
        "GRAM_CHANNELS": "8",
    },
    "04_beyond_the_book.ipynb": {
        "STYLE_2": "STYLE",
        "HEIGHT": "32",
        "MAX_EVALS": "3",
        "WEIGHTS": "None",
    },
    "05_style_losses.ipynb": {
        "HEIGHT": "32",
        "MAX_EVALS": "3",
        "WEIGHTS": "None",
    },
    "06_fast_networks.ipynb": {
        "PHOTOS": "[CONTENT, STYLE]",
        "HEIGHT": "32",
        "SIZE": "32",
        "STEPS": "3",
        "BATCH_SIZE": "2",
        "WIDTH": "4",
        "MAX_EVALS": "3",
        "WEIGHTS": "None",
    },
}


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    assert cells[0].cell_type == "code"
    return cells[0]


def _substitute(nb, values):
    """Replaces `NAME = ...` lines of the parameters cell; each NAME must be there."""
    cell = _parameters_cell(nb)
    source = cell.source
    for name, value in values.items():
        pattern = re.compile(rf"^{name} = .*$", re.MULTILINE)
        assert len(pattern.findall(source)) == 1, f"no single `{name} = ...` in the parameters cell"
        source = pattern.sub(lambda _: f"{name} = {value}", source)
    cell.source = source
    return nb


def _tiny_images(directory):
    from PIL import Image

    content = directory / "content.png"
    style = directory / "style.png"
    Image.fromarray(make_image(40, 56, seed=1)).save(content)
    Image.fromarray(make_image(36, 36, seed=2)).save(style)
    return content, style


def _execute(nb, directory):
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(directory)}}
    )
    client.execute()
    return nb


def test_every_notebook_is_covered():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_committed_notebook_has_no_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown", "a notebook starts with its title"
    _parameters_cell(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"committed outputs in {name}"
            assert cell.execution_count is None, f"committed execution count in {name}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_settings(name, tmp_path):
    content, style = _tiny_images(tmp_path)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    values = {"CONTENT": repr(str(content)), "STYLE": repr(str(style)), **TINY[name]}
    _execute(_substitute(nb, values), tmp_path)  # raises CellExecutionError on a cell error
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    images = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, "the notebook shows no figure"


def test_a_broken_notebook_fails(tmp_path):
    """The harness itself: a cell that raises must fail the run."""
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("X = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("assert X == 2, 'broken on purpose'"),
        ]
    )
    _substitute(nb, {"X": "3"})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken on purpose"):
        _execute(nb, tmp_path)


def test_substitution_requires_the_parameter():
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("HEIGHT = 400", metadata={"tags": ["parameters"]})]
    )
    with pytest.raises(AssertionError, match="MAX_EVALS"):
        _substitute(nb, {"MAX_EVALS": "2"})
    assert _substitute(nb, {"HEIGHT": "32"}).cells[0].source == "HEIGHT = 32"
