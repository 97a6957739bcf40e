"""The evaluation-speed benchmark still runs: a tiny configuration, nothing about speed."""

import importlib.util
import math
import re

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "evaluation_speed.py"


def _load():
    spec = importlib.util.spec_from_file_location("evaluation_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(output, label):
    """The numbers of the table row that starts with `label`."""
    lines = [line for line in output.splitlines() if line.startswith(label + " ")]
    assert len(lines) == 1, f"no single row {label!r} in:\n{output}"
    rest = lines[0][len(label):].split()
    return [float(v) for v in rest if v != "-"]


@pytest.mark.slow
def test_table_runs_and_prints_the_three_rows(capsys):
    benchmark = _load()
    rows = benchmark.main(
        ["--height", "64", "--evals", "2", "--weights", "none", "--methods",
         "lower,nst,book", "--no-memory"]
    )
    output = capsys.readouterr().out
    assert set(rows) == {"lower", "nst", "book"}
    for label in ("lower bound", "nst_keras", "book (DLwP 8.3)"):
        numbers = _row(output, label)
        assert len(numbers) >= 7 and all(math.isfinite(v) and v > 0 for v in numbers)
    assert re.search(r"Truncated forward pass .*: \d+\.\d GFLOP", output)
    for row in rows.values():
        assert math.isfinite(row["seconds"]) and row["seconds"] > 0


@pytest.mark.slow
def test_scaling_mode_runs(capsys):
    benchmark = _load()
    results = benchmark.main(
        ["--mode", "scaling", "--heights", "32,48", "--evals", "1", "--methods", "lower,nst"]
    )
    output = capsys.readouterr().out
    assert set(results) == {32, 48}
    assert all(math.isfinite(s) and s > 0 for r in results.values() for s in r.values())
    assert "per pixel" in output and "Not linear in pixels" in output


def test_flops_are_the_analytic_vgg19_count():
    benchmark = _load()
    # VGG19 up to block5_conv2 at 400 x 533: 78.6 G multiply-adds.
    assert benchmark.conv_flops(400, 533, "block5_conv2") == pytest.approx(157.2e9, rel=2e-3)
    # The first conv alone: 3 -> 64 channels, 3 x 3, every pixel.
    assert benchmark.conv_flops(4, 5, "block1_conv1") == 2 * 4 * 5 * 9 * 3 * 64


def test_round_robin_interleaves_and_survives_leavers():
    benchmark = _load()
    import threading

    schedule = benchmark.RoundRobin(["a", "b", "c"])
    order = []
    counts = {"a": 2, "b": 3, "c": 1}

    def work(name):
        clock = benchmark.Clock(schedule, name, counts[name])
        try:
            while True:
                clock()
                order.append(name)
        except benchmark._Done:
            pass
        finally:
            schedule.leave(name)

    threads = [threading.Thread(target=work, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert order == ["a", "b", "c", "a", "b", "b"]
