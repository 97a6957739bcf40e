"""The evaluation-speed benchmark still runs: a tiny configuration, nothing about speed."""

import importlib.util
import json
import math
import re

import numpy as np
import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "evaluation_speed.py"


def _load():
    spec = importlib.util.spec_from_file_location("evaluation_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(output, label):
    """The one table row of `label`: the label, then its precision column."""
    pattern = re.compile(re.escape(label) + r" +(float32|bfloat16) ")
    lines = [line for line in output.splitlines() if pattern.match(line)]
    assert len(lines) == 1, f"no single row {label!r} in:\n{output}"
    return lines[0]


def _row(output, label):
    """The numbers of the table row of `label` (text columns skipped)."""
    rest = _line(output, label)[len(label):].split()
    return [float(v) for v in rest if re.fullmatch(r"[-+.0-9e]+", v) and v != "-"]


def _precision(output, label):
    """The precision column of the row of `label`."""
    return _line(output, label)[len(label):].split()[0]


@pytest.mark.slow
def test_table_runs_and_prints_float32_and_bfloat16_rows(capsys):
    benchmark = _load()
    rows = benchmark.main(
        ["--height", "64", "--evals", "2", "--weights", "none", "--methods",
         "lower,lower-bf16,obj,obj-bf16,nst,nst-bf16,book", "--no-memory", "--runs", "2"]
    )
    output = capsys.readouterr().out
    assert set(rows) == {"lower", "lower-bf16", "obj", "obj-bf16", "nst", "nst-bf16", "book"}
    expected = {"lower bound": "float32", "lower bound bf16": "bfloat16",
                "nst_keras objective": "float32", "nst_keras objective bf16": "bfloat16",
                "nst_keras": "float32", "nst_keras bf16": "bfloat16",
                "book (DLwP 8.3)": "float32"}
    # Two runs of the whole table, then the median of each target over them.
    assert output.count("--- run 2 of 2 ---") == 1 and "Median over 2 runs" in output
    # The optimiser's step, timed inside the nst rows' own runs, as a share of the bfloat16
    # objective's evaluation; the objective against its own precision's bound.
    step = re.search(r"optimizer step in nst_keras bf16's run .*?: ([0-9.]+) ms per "
                     r"evaluation \(([0-9.]+) ms of CPU\)", output)
    assert step and 0 < float(step.group(1)) < 1e4 and float(step.group(2)) >= 0
    assert re.search(r"Target: nst_keras objective <= 1\.08 x the float32 lower bound: "
                     r"[0-9.]+ (met|NOT met)", output)
    assert re.search(r"Target: optimizer step .* <= 10% of a nst_keras objective bf16 "
                     r"evaluation: [0-9.]+ (met|NOT met)", output)
    last = output.split("--- run 2 of 2 ---")[1]  # The second run's table.
    for label, precision in expected.items():
        assert _precision(last, label) == precision
        numbers = _row(last, label)
        assert len(numbers) >= 7 and all(math.isfinite(v) and v > 0 for v in numbers)
    assert rows["nst-bf16"]["precision"] == "bfloat16"
    # The CPU's name and the flags that decide bfloat16's speed, first.
    assert re.match(r"CPU: .+; relevant flags present: .*; absent: ", output)
    assert re.search(r"Truncated forward pass .*: \d+\.\d GFLOP", output)
    assert "bfloat16 vs float32" in output and "TARGET_BF16_VS_LOWER" not in output
    # Issue 36: the full evaluation's target, and every target both ways over the runs.
    assert re.search(r"Target: nst_keras bf16's full evaluation .* <= 1\.25 x the bfloat16 "
                     r"lower bound: [0-9.]+ (met|NOT met)", output)
    summary = output.split("Each target both ways, over 2 run(s) of 2 rounds")[1]
    assert re.search(r"\nobjective +bfloat16 +1\.12 +[0-9.]+ +(met|NOT met) +[0-9.]+ ", summary)
    assert re.search(r"\nfull evaluation .* +bfloat16 +1\.25 +[0-9.]+ ", summary)
    assert re.search(r"\nfull evaluation .* +float32 +- +[0-9.]+ ", summary)
    for row in rows.values():
        assert math.isfinite(row["seconds"]) and row["seconds"] > 0


def test_targets_are_summed_up_as_paired_medians_over_runs_and_as_minimums(capsys):
    benchmark = _load()
    # Two runs of three rounds; a slow spell in run 1's second round slows both alike.
    runs = [
        {"lower-bf16": [1.0, 2.0, 1.0], "obj-bf16": [1.1, 2.2, 1.1],
         "nst-bf16": [1.3, 2.6, 1.2], "lower": [2.0, 2.0, 2.0], "obj": [2.1, 2.2, 2.3],
         "book": [5.0, 5.0, 5.0]},
        {"lower-bf16": [0.9, 1.0, 1.0], "obj-bf16": [1.2, 1.2, 1.2],
         "nst-bf16": [1.2, 1.4, 1.3], "lower": [2.0, 1.9, 2.0], "obj": [2.0, 2.0, 2.0],
         "book": [5.0, 5.0, 5.0]},
    ]
    summary = benchmark.summarize_targets(runs)
    assert set(summary) == {"obj-bf16", "nst-bf16", "obj"}  # No book, no bound of its own.
    obj = summary["obj-bf16"]
    assert obj["bound"] == "lower-bf16" and obj["target"] == 1.12
    assert obj["paired_runs"] == pytest.approx([1.1, 1.2])
    assert obj["paired"] == pytest.approx(1.15)
    assert obj["by_minimums"] == pytest.approx(1.1 / 0.9)  # Over all rounds and runs.
    assert obj["by_minimums_runs"] == pytest.approx([1.1, 1.2 / 0.9])
    full = summary["nst-bf16"]
    assert full["target"] == 1.25 and full["paired_runs"] == pytest.approx([1.3, 1.2 / 0.9])
    assert full["by_minimums"] == pytest.approx(1.2 / 0.9)
    assert summary["obj"]["target"] == 1.08
    output = capsys.readouterr().out
    assert re.search(r"\nobjective +bfloat16 +1\.12 +1\.150 +NOT met +1\.222 +NOT met", output)
    assert re.search(r"\nfull evaluation .* +bfloat16 +1\.25 +1\.317 +NOT met +1\.333 ", output)


@pytest.mark.slow
def test_quality_mode_runs_end_to_end(capsys, tmp_path):
    benchmark = _load()
    path = tmp_path / "curves.json"
    argv = ["--mode", "quality", "--height", "64", "--evals", "4", "--weights", "none",
            "--judge-every", "2", "--book-round", "2", "--json", str(path),
            "--methods", "book,nst,nst-bf16,c2f50-bf16", "--reference-evals", "6",
            "--cache", str(tmp_path / "cache")]
    rows = benchmark.main(argv)
    output = capsys.readouterr().out
    assert set(rows) == {"book", "nst", "nst-bf16", "c2f50-bf16"}
    # The reference: computed once, then read from the cache (the same value).
    assert "Computing the reference" in output
    cached = list((tmp_path / "cache").glob("reference-64-*.json"))
    assert len(cached) == 1
    reference = json.loads(cached[0].read_text())
    assert reference["evaluations"] == 6 and reference["judged_loss"] > 0
    for row in rows.values():
        assert row["judged_vs_reference"] == pytest.approx(
            row["final_judged_loss"] / reference["judged_loss"])
    # Coarse to fine: half the budget at half the height, then the rest at full size.
    assert rows["c2f50-bf16"]["evaluations"] == 4
    assert _precision(output, "coarse to fine 50% bf16") == "bfloat16"
    # A second run finds it in the cache: a changed value there is what it reports.
    cached[0].write_text(json.dumps({**reference, "judged_loss": 1.0}))
    short = argv[:argv.index("--json")] + argv[argv.index("--reference-evals"):]
    short[short.index("4")] = "2"  # --evals 2: the reference's key does not include it.
    again = benchmark.main(short + ["--methods", "book,nst"])
    assert "Computing the reference" not in capsys.readouterr().out
    assert again["nst"]["judged_vs_reference"] == pytest.approx(
        again["nst"]["final_judged_loss"])
    assert "generated images" in output and "random (weights=None)" in output
    for label, precision in (("book (DLwP 8.3)", "float32"), ("nst_keras", "float32"),
                             ("nst_keras bf16", "bfloat16")):
        assert _precision(output, label) == precision
    assert rows["book"]["judged_vs_book"] == pytest.approx(1.0)
    for row in rows.values():
        assert math.isfinite(row["final_judged_loss"]) and row["final_judged_loss"] > 0
        assert row["seconds_per_eval"] > 0
    assert rows["nst"]["evaluations"] == rows["nst-bf16"]["evaluations"] == 4
    assert "Targets for nst_keras bf16" in output and "x sooner" in output
    assert "to 1.1 x ref" in output
    curves = json.loads(path.read_text())["curves"]
    assert set(curves) == {"book", "nst", "nst-bf16", "c2f50-bf16"}
    assert all(any(p["judged_loss"] is not None for p in c) for c in curves.values())
    # c2f50: its first half of the budget at half the height (the share its name gives).
    heights = [(p["evaluations"], p["height"]) for p in curves["c2f50-bf16"]]
    assert {h for e, h in heights if e <= 2} == {32}
    assert {h for e, h in heights if e > 2} == {64}
    assert benchmark.builder_options("c2f10-bf16", None) == {"share": 0.1}


@pytest.mark.slow
def test_profile_mode_breaks_the_gap_down_by_op_type(capsys, tmp_path):
    benchmark = _load()
    results = benchmark.main(["--mode", "profile", "--height", "48", "--evals", "1",
                              "--weights", "none", "--json", str(tmp_path / "p.json")])
    output = capsys.readouterr().out
    assert set(results) == {"lower", "obj", "lower-bf16", "obj-bf16"}
    for precision in ("float32", "bfloat16"):
        assert re.search(rf"^{precision}: wall \d+ ms \(lower bound\)", output, re.M)
    # The Gram matrices' products are the objective's own: in its breakdown, not the bound's.
    for method in ("obj", "obj-bf16"):
        ops = results[method]["by_op"]
        assert any("MatMul" in op and ms > 0 for op, ms in ops.items())
    for method in ("lower", "lower-bf16"):
        assert not any("MatMul" in op for op in results[method]["by_op"])
    assert "op type" in output and "nodes by time, of the op types" in output


def test_method_names_parse():
    benchmark = _load()
    assert benchmark.parse_method("nst-bf16+xla") == ("nst", "bfloat16", True)
    assert benchmark.parse_method("lower") == ("lower", "float32", False)
    assert benchmark.float32_twin("nst-bf16+xla") == "nst+xla"
    assert benchmark.lower_twin("nst-bf16") == "lower-bf16"
    with pytest.raises(SystemExit):
        benchmark.parse_method("book-bf16")
    with pytest.raises(SystemExit):
        benchmark.parse_method("nst+bf16")


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


def test_the_tables_warmup_fills_lbfgs_history_before_the_step_is_timed():
    """With an nst row the step is timed once L-BFGS-B holds its m pairs (m + 2 warm-up)."""
    from nst_keras.config import StyleConfig

    benchmark = _load()
    assert benchmark.table_warmup(None, ["lower", "nst-bf16"]) == StyleConfig().lbfgs_memory + 2
    assert benchmark.table_warmup(None, ["lower", "obj-bf16"]) == 1
    assert benchmark.table_warmup(3, ["nst"]) == 3


def test_lbfgs_step_benchmark_times_the_box_and_the_tanh_parametrisation(capsys):
    spec = importlib.util.spec_from_file_location("lbfgs_step",
                                                  ROOT / "benchmarks" / "lbfgs_step.py")
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    # The transform keeps every value inside the box, and its chain rule is the derivative.
    lower = -np.array([103.939, 116.779, 123.68])
    to_x, to_u, chain = step.tanh_transform(lower)
    u = np.array([-30.0, 0.3, 30.0])
    x = to_x(u)
    assert np.all(x >= lower) and np.all(x <= lower + 255)
    assert to_x(to_u(lower + [10.0, 128.0, 250.0])) == pytest.approx(lower + [10, 128, 250])
    h = 1e-6
    numeric = (to_x(u + h) - to_x(u - h)) / (2 * h)
    assert chain(u, np.ones(3)) == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    rows = step.main(["synthetic", "--height", "8", "--evals", "3", "--runs", "1"])
    assert set(rows) == {"box", "free", "tanh"}
    assert all(r["step_ms"] >= 0 for r in rows.values())
    assert rows["tanh"]["at_bounds"] == 0 and 0 < rows["box"]["at_bounds"] < 1
    assert "step ms" in capsys.readouterr().out


def test_lbfgs_step_benchmark_projected_lbfgs_in_tensorflow_matches_numpy():
    """The `tf` variant's pieces against NumPy: the free set, the projected trial point and
    its slope; and the whole step reaches the box's minimum of a separable quadratic."""
    import tensorflow as tf

    spec = importlib.util.spec_from_file_location("lbfgs_step",
                                                  ROOT / "benchmarks" / "lbfgs_step.py")
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    rng = np.random.default_rng(1)
    n = 600
    lower, upper = -rng.uniform(100, 125, n), np.full(n, 130.0)
    x = np.clip(rng.uniform(-140, 160, n), lower, upper).astype(np.float32)
    g = rng.normal(size=n).astype(np.float32)
    solver = step.ProjectedLbfgs(lower, upper, memory=5)
    masked, mask, norm, finite = solver._free(tf.constant(x), tf.constant(g))
    lo, hi = lower.astype(np.float32), upper.astype(np.float32)
    fixed = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
    assert fixed.any() and not fixed.all()
    assert np.array_equal(masked.numpy(), np.where(fixed, 0, g))
    assert float(norm) == pytest.approx(np.linalg.norm(np.where(fixed, 0, g)), rel=1e-5)
    assert bool(finite)
    d = -masked.numpy()
    xa, change = solver._trial(tf.constant(x), tf.constant(g), tf.constant(d),
                               tf.constant(50.0))
    expected = np.clip(x + 50 * d, lo, hi)
    assert np.allclose(xa.numpy(), expected)
    assert float(change) == pytest.approx(float(np.dot(g, expected - x)), rel=1e-4)
    assert float(change) < 0  # Projected steepest descent descends.
    direction, slope = solver._direction(masked, mask, [], [], [])
    assert np.array_equal(direction.numpy(), d) and float(slope) < 0

    centre = rng.uniform(-160, 170, n).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, n).astype(np.float32)
    seen = {"n": 0, "f": np.inf, "x": None}

    def quadratic(z):
        if seen["n"] >= 60:
            raise step.BudgetSpent()
        seen["n"] += 1
        diff = z - centre
        f = 0.5 * float(tf.reduce_sum(scale * diff * diff))
        if f < seen["f"]:
            seen["f"], seen["x"] = f, z.numpy()
        return f, scale * diff

    solver.trace()
    try:
        solver.run(quadratic, np.zeros(n, np.float32))
    except step.BudgetSpent:
        pass
    best = np.clip(centre, lo, hi)
    assert solver.iterations > solver.memory
    optimum = 0.5 * float(np.sum(scale * (best - centre) ** 2))
    assert seen["f"] == pytest.approx(optimum, rel=1e-6)
    assert np.allclose(seen["x"], best, atol=0.1)
