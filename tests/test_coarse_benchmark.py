"""benchmarks/coarse_to_fine.py runs end to end on tiny settings (nothing about speed)."""

import subprocess
import sys

from conftest import ROOT


def test_coarse_to_fine_benchmark_prints_both_rows_and_the_verdict():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "coarse_to_fine.py"), "--heights", "64",
         "--evals", "6", "--weights", "none", "--judge-every", "2"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPU ") and "precision auto ->" in lines[0]
    one = [line for line in lines if line.startswith("one size")]
    staged = [line for line in lines if line.startswith("2 stages")]
    assert one and "[64]" in one[0] and staged and "[32, 64]" in staged[0]
    assert any(line.startswith("Target: the one-size final judged loss") for line in lines)
    assert done.stderr == ""
