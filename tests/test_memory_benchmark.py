"""benchmarks/memory.py: `largest` end to end on a tiny budget (nothing about speed), and
`run`'s check of the memory available now."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import memory  # noqa: E402


@pytest.mark.slow
def test_largest_runs_the_largest_tiled_height_that_fits_and_records_its_peak(tmp_path):
    from nst_keras.config import parse_size

    out = tmp_path / "largest.jsonl"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory.py"), "largest", "--budget",
         "1.4G", "--max-evals", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPU ") and "MemTotal" in lines[0]
    entry, = [json.loads(line) for line in out.read_text().splitlines()]
    budget = parse_size("1.4G")
    assert entry["budget"] == budget and entry["code"] == 0 and entry["peak"] > 0
    options = dict(zip(entry["options"][::2], entry["options"][1::2]))
    assert options["--tile"] == "512" and options["--max-memory"] == str(budget)
    assert options["--optimizer"] == "lbfgs" and options["--lbfgs-memory"] == "2"
    # The largest: the plan's estimate of the same command line fits in the budget, and
    # one pixel higher it does not.
    height = int(options["--height"])
    assert memory.estimate(entry["options"], 1)["total"] == entry["estimate"] <= budget
    higher = [str(height + 1) if o == str(height) else o for o in entry["options"]]
    assert memory.estimate(higher, 1)["total"] > budget
    assert lines[-1].startswith(entry["case"] + ": peak ")
    assert f"budget {budget / 2**30:.2f} GiB" in lines[-1]


def test_run_skips_a_case_whose_estimate_is_above_the_memory_available_now(
        monkeypatch, tmp_path, capsys):
    table = dict(list(memory.cases().items())[:2])
    small, large = table
    needs = {small: 2**30, large: 30 * 2**30}
    monkeypatch.setattr(memory, "cases", lambda: table)
    monkeypatch.setattr(memory, "estimates", lambda todo, evals: {n: needs[n] for n in todo})
    monkeypatch.setattr(memory, "mem_available", lambda: 20 * 2**30)
    ran = []

    def measure(argv, timeout):
        ran.append(argv)
        return {"peak": 2**30 + 5, "code": 0}, 1.0, ""

    monkeypatch.setattr(memory, "measure", measure)
    out = tmp_path / "runs.jsonl"
    args = memory.argparse.Namespace(out=str(out), only=None, max_evals=3, timeout=60)
    assert memory.run(args) == 0
    assert len(ran) == 1 and ran[0][-len(table[small]):] == table[small]
    entry, = [json.loads(line) for line in out.read_text().splitlines()]
    assert entry["case"] == small and entry["peak"] == 2**30 + 5
    printed = capsys.readouterr().out.splitlines()
    skipped = [line for line in printed if line.startswith(f"{large}: skipped")]
    assert len(skipped) == 1 and "30.00 GiB" in skipped[0] and "20.00 GiB" in skipped[0]
    # Resumed: the case done is not run again; the one skipped is tried again.
    monkeypatch.setattr(memory, "mem_available", lambda: 40 * 2**30)
    assert memory.run(args) == 0
    assert len(ran) == 2 and ran[1][-len(table[large]):] == table[large]


def test_a_killed_run_is_reported_as_a_miss_and_not_fitted(monkeypatch, tmp_path, capsys):
    """The kernel killed a run the plan let through: `report` names it and fails; `fit`
    leaves it out (it has no peak); `measure` tells a killed child from a failed one."""
    out = tmp_path / "runs.jsonl"
    killed = {"case": "largest tiled adam bfloat16 8002 (core 512, m = 2)", "options": [],
              "killed": -9, "estimate": 23 * 2**30, "budget": 23 * 2**30, "seconds": 1990.0}
    out.write_text(json.dumps(killed) + "\n")
    measured, missed = memory.recorded(out)
    assert measured == [] and missed == [killed]
    args = memory.argparse.Namespace(out=str(out), markdown=False)
    assert memory.report(args) == 1
    printed = capsys.readouterr().out
    assert "killed by signal 9 after 1990 s at an estimate of 23.00 GiB" in printed
    assert "1 killed" in printed

    class Child:
        stdout, stderr, returncode = "", "", -9

    monkeypatch.setattr(memory.subprocess, "run", lambda *a, **k: Child())
    assert memory.measure(["x"], 5)[0] == {"peak": None, "code": -9}
    Child.returncode = 1
    assert memory.measure(["x"], 5)[0] is None
