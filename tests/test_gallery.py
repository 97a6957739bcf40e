"""The gallery (`benchmarks/gallery.py`): its commands parse, its table is its JSON's, and the
sky mask it derives from the photo is the sky."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gallery():
    spec = importlib.util.spec_from_file_location("gallery", ROOT / "benchmarks" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gallery"] = module  # Its dataclasses look their module up.
    spec.loader.exec_module(module)
    return module


def test_every_example_is_a_command_the_real_parsers_accept(gallery):
    from nst_keras.commands import batch, cli, console, figures, video

    examples = gallery._examples()
    assert len({e.name for e in examples}) == len(examples)
    for example in examples:
        words = gallery.command_words(gallery._documented(example)) + list(example.added)
        if words[0] == "figure":
            figures.build_parser().parse_args(words[1:])
        elif words[0] == "video":
            console.parse_with_preset(video.build_parser, words[1:])
        elif words[0] == "batch":
            console.parse_with_preset(batch.build_parser, words[1:])
        else:
            console.parse_with_preset(cli.build_parser, words)
        if example.before:  # The training a network's example runs first.
            from nst_keras.commands import train

            before = gallery.command_words(example.before)
            assert before[0] == "train"
            console.parse_with_preset(train.build_parser, before[1:])
    # A wrong option fails the same parsers.
    with pytest.raises(console.UsageError):
        console.parse_with_preset(cli.build_parser, ["a.jpg", "b.jpg", "--no-such-option", "w2"])


def test_the_committed_table_is_written_from_gallery_json(gallery):
    folder = ROOT / "docs" / "gallery"
    if not (folder / "gallery.json").is_file():
        pytest.skip("no committed gallery")
    data = json.loads((folder / "gallery.json").read_text())
    assert (folder / "gallery.md").read_text() == gallery.gallery_table(data)
    for entry in data["examples"]:
        assert (folder / entry["picture"]).is_file(), entry["picture"]
        assert entry["command"].startswith(("nst-keras ", "python -m nst_keras "))


def test_the_table_shows_each_examples_judged_figures(gallery):
    data = {"model": "vgg16", "weights": "w.h5", "size": 64, "examples": [
        {"name": "a", "title": "A", "command": "nst-keras x.jpg y.jpg -o a.png",
         "added": ["--height", "64"], "picture": "a.jpg", "seconds": 3.2,
         "verdict": {"stylisation": 0.0123, "content_kept": 0.456}},
        {"name": "b", "title": "B", "command": "nst-keras figure 1", "added": [],
         "picture": "b.jpg", "seconds": None, "verdict": None}]}
    table = gallery.gallery_table(data)
    assert "| ![a](a.jpg) | A | `nst-keras x.jpg y.jpg -o a.png` | `--height 64` | 0.012 | " \
           "0.46 | 3 |" in table
    assert "| ![b](b.jpg) | B | `nst-keras figure 1` | `` | — | — | — |" in table


def test_table_only_rewrites_the_table_from_gallery_json(gallery, tmp_path):
    data = {"model": "vgg16", "weights": "w.h5", "size": 64, "examples": [
        {"name": "a", "title": "A", "command": "nst-keras x.jpg y.jpg -o a.png",
         "added": ["--model", "vgg16", "--weights", "../shared/weights/w.h5"],
         "picture": "a.jpg", "seconds": 1.0, "verdict": None}]}
    (tmp_path / "gallery.json").write_text(json.dumps(data))
    assert gallery.main(["--table-only", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "gallery.md").read_text()
    assert table == gallery.gallery_table(data)
    # The weights file by its name, as the page's text gives it, not the machine's path.
    assert "`--model vgg16 --weights w.h5`" in table and "../shared" not in table
    assert gallery.main(["--table-only", "--out", str(tmp_path / "none")]) == 2


def test_the_sky_mask_follows_the_skyline(gallery):
    # A blue sky over a dark town whose roofline steps from row 10 to row 20.
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :] = (40, 50, 45)
    image[:10, :30] = (170, 200, 240)
    image[:20, 30:] = (170, 200, 240)
    mask = gallery.sky_mask(image)
    assert mask[2, 5] > 0.95 and mask[15, 5] < 0.05
    assert mask[15, 50] > 0.95 and mask[25, 50] < 0.05
