"""The memory plan sees every input, and the dry run answers when a run does not fit."""

from __future__ import annotations

import pytest
from PIL import Image

from conftest import run_main


@pytest.fixture
def photo_pair(tmp_path):
    """A 1024 x 768 content and a 64 x 64 style on disk (a plan reads only their headers)."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.new("RGB", (1024, 768), (90, 120, 200)).save(content)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(style)
    return content, style


def test_a_dry_run_that_does_not_fit_prints_the_table_the_largest_height_and_why(photo_pair):
    from nst_keras import plan, runtime
    from nst_keras.config import StyleConfig, parse_size

    content, style = photo_pair
    done = run_main(content, style, "--weights", "none", "--height", "1400", "--max-memory",
                    "4G", "--precision", "float32", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    rows = [line for line in lines if "1867x1400" in line and "float" in line]
    assert len(rows) == 2 and sum("<- this run" in row for row in rows) == 1
    config = StyleConfig(weights=None, height=1400, precision="float32", max_memory="4G")
    fits = plan.fitting_height(config, 1024 / 768, "float32", parse_size("4G"))
    assert 0 < fits < 1400
    assert f"Largest height that fits in float32: {fits} " in done.stdout
    need = runtime.estimate_memory(1400, 1867, config, "float32", 512)["total"]
    reason = [line for line in lines if line.startswith("This run does not fit:")]
    assert len(reason) == 1 and f"needs about {need / 2**30:.1f} GiB" in reason[0]
    assert "about 4.0 GiB is available" in reason[0]
    advice = [line for line in lines if line.startswith("What would fit:")]
    assert len(advice) == 1 and f"--height {fits} or less" in advice[0]
    # The same run without --dry-run is refused in one line, exit 2.
    done = run_main(content, style, "--weights", "none", "--height", "1400", "--max-memory",
                    "4G", "--precision", "float32", "-o", content.parent / "out.png")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (content.parent / "out.png").exists()
