"""Exact resume: L-BFGS-B's own loop, Adam's and SGD's state, the monitor, checkpoints."""

import inspect
import os
import pathlib
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import checkpoint as ckpt
from nst_keras.engine import keras_state, lbfgsb, solvers
from nst_keras.engine.objective import Term

TESTS = pathlib.Path(__file__).resolve().parent

#: Tests of the exact driver; skipped where SciPy's private call differs (SciPy < 1.15 on
#: Python 3.9), where the fallback tests still run.
exact = pytest.mark.skipif(not lbfgsb.EXACT, reason=str(lbfgsb.FALLBACK_NOTICE))

#: The Fortran-era (SciPy < 1.15) signature of the private call, for the fallback tests.
OLD_SIGNATURE = ("setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,iprint,csave,lsave,isave,"
                 "dsave,maxls,[n])")


def quadratic(n=60, seed=1):
    """A seeded, ill-conditioned, slightly non-quadratic function (numpy), its bounds, a start."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    a = a @ a.T / n + np.diag(np.geomspace(0.01, 10, n))
    b = rng.normal(size=n)

    def fun(x):
        return (float(0.5 * x @ a @ x - b @ x + 0.1 * np.sum(np.cos(3 * x))),
                a @ x - b - 0.3 * np.sin(3 * x))

    box = np.stack([np.full(n, -0.5), np.full(n, 0.7)], axis=1)
    return fun, box, rng.uniform(-1, 1, n)


def recording(fun):
    points = []

    def wrapped(x):
        points.append(np.array(x))
        return fun(x)

    return wrapped, points


# --- The driver against SciPy's own loop. ---

@exact
@pytest.mark.parametrize("n, bounded, memory, iterations, ends", [
    (60, True, 10, 40, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"),
    (60, False, 5, 25, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"),
    (40, True, 10, 40, "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"),
])
def test_driver_makes_the_same_calls_as_fmin_l_bfgs_b(n, bounded, memory, iterations, ends):
    from scipy.optimize import fmin_l_bfgs_b

    fun, box, x0 = quadratic(n, seed=0 if n == 40 else 1)
    box = box if bounded else None
    theirs, their_points = recording(fun)
    ours, our_points = recording(fun)
    x, _, info = fmin_l_bfgs_b(theirs, x0, bounds=box, m=memory, maxiter=iterations,
                               maxfun=10_000, factr=0.0, pgtol=0.0)
    state, reason = lbfgsb.minimize(ours, x0, box, iterations=iterations, memory=memory)
    assert len(our_points) == len(their_points) > 20
    assert all(np.array_equal(p, q) for p, q in zip(our_points, their_points))
    assert np.array_equal(state.x, x)
    assert reason == info["task"] == ends
    assert state.iterations == info["nit"]
    assert state.evaluations == info["funcalls"]
    assert state.finished == ends.startswith("CONVERGENCE")


@exact
def test_state_size_is_228_bytes_a_value_at_m10():
    state = lbfgsb.start(np.zeros(100_000), memory=10)
    assert lbfgsb.bytes_per_value(10) == 228
    per_value = state.nbytes / state.size
    assert 228 <= per_value < 228.1  # The m^2 terms and the save vectors are the rest.
    # The checkpoint adds the best image (float32): 232 bytes a value, as the docs say.
    assert ckpt.checkpoint_bytes((1, 100, 1000, 1)) == state.nbytes + 4 * 100_000


def test_state_from_arrays_checks_the_sizes():
    state = lbfgsb.start(np.arange(7.0), memory=3)
    again = lbfgsb.LbfgsbState.from_arrays(state.to_arrays())
    assert np.array_equal(again.x, state.x) and again.memory == 3 and again.repeat is False
    arrays = state.to_arrays()
    arrays["wa"] = arrays["wa"][:-1]
    with pytest.raises(ValueError, match=r"needs wa float64 .*Received: float64"):
        lbfgsb.LbfgsbState.from_arrays(arrays)
    del arrays["isave"]
    with pytest.raises(ValueError, match="needs isave"):
        lbfgsb.LbfgsbState.from_arrays(arrays)


@exact
@pytest.mark.parametrize("stop_at", [0, 1, 9, 23])
def test_lbfgsb_resumes_bit_for_bit_in_a_fresh_process(tmp_path, stop_at):
    fun, box, x0 = quadratic()
    full, full_reason = lbfgsb.minimize(fun, x0, box, iterations=40)
    calls = []

    def counted(x):
        calls.append(1)
        return fun(x)

    state, reason = lbfgsb.minimize(counted, x0, box, iterations=40,
                                    should_stop=lambda: len(calls) >= stop_at)
    assert reason == "stopped" and state.evaluations == stop_at
    np.savez(tmp_path / "state.npz", **state.to_arrays())
    # The resuming process imports only numpy, SciPy and the driver (no TensorFlow).
    (tmp_path / "resume_quadratic.py").write_text(
        "import numpy as np\n\n\n" + inspect.getsource(quadratic))
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        from resume_quadratic import quadratic
        from nst_keras.engine import lbfgsb
        fun, box, _ = quadratic()
        with np.load({str(tmp_path / 'state.npz')!r}) as data:
            state = lbfgsb.LbfgsbState.from_arrays(dict(data))
        done, reason = lbfgsb.minimize(fun, None, box, iterations=40, state=state)
        np.savez({str(tmp_path / 'done.npz')!r}, reason=np.array(reason), **done.to_arrays())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with np.load(tmp_path / "done.npz") as done:
        assert str(done["reason"]) == full_reason
        for name in lbfgsb.LbfgsbState._ARRAYS:
            assert np.array_equal(done[name], getattr(full, name)), name
        assert int(done["evaluations"]) == full.evaluations


@exact
def test_more_iterations_continue_exactly():
    fun, box, x0 = quadratic()
    first, reason = lbfgsb.minimize(fun, x0, box, iterations=12)
    assert reason == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT" and not first.finished
    more, _ = lbfgsb.minimize(fun, None, box, iterations=30, state=first)
    straight, _ = lbfgsb.minimize(fun, x0, box, iterations=30)
    assert np.array_equal(more.x, straight.x) and np.array_equal(more.wa, straight.wa)
    assert more.evaluations == straight.evaluations


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@exact
def test_the_step_runs_with_one_blas_thread_and_the_caller_keeps_its_own():
    from threadpoolctl import threadpool_limits

    fun, box, x0 = quadratic()
    seen = []

    def counted(x):
        seen.append(_blas_threads())
        return fun(x)

    # Whatever the caller set outside (2 here, even on a 1-core runner), the driver's loop
    # runs with one BLAS thread, and the caller's setting is back afterwards.
    with threadpool_limits(limits=2, user_api="blas"):
        outside = _blas_threads()
        lbfgsb.minimize(counted, x0, box, iterations=3)
        after = _blas_threads()
    assert outside and all(n == 2 for n in outside)
    assert seen and all(n == [1] * len(outside) for n in seen)
    assert after == outside


@exact
def test_state_is_refused_between_two_boundaries():
    # An interrupt right after `setulb` returns (before the driver has read its task) leaves
    # arrays that are no boundary's: `state()` says so instead of saving them.
    fun, box, x0 = quadratic()
    driver = lbfgsb.Lbfgsb(lbfgsb.start(x0, box), box)
    real, calls = driver._setulb, []

    def interrupted(*args):
        real(*args)
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt

    driver._setulb = interrupted
    with pytest.raises(KeyboardInterrupt):
        driver.run(fun, iterations=40)
    assert not driver.at_boundary
    with pytest.raises(RuntimeError, match="evaluation boundary"):
        driver.state()


@exact
def test_captured_state_is_the_drivers_own_arrays_unless_copied():
    fun, box, x0 = quadratic()
    driver = lbfgsb.Lbfgsb(lbfgsb.start(x0, box), box)
    seen = []

    def at_boundary(d):
        seen.append((d.state(copy=False), d.state(copy=True)))

    driver.run(fun, iterations=3, at_boundary=at_boundary)
    view, copy = seen[-1]
    assert np.shares_memory(view.wa, driver.wa) and not np.shares_memory(copy.wa, driver.wa)
    assert len(seen) == driver.evaluations  # One boundary before each evaluation.


# --- solvers.lbfgs on the new driver, against today's public path. ---

class Valley:
    """A TF objective on (1, 4, 4, 3): a conditioned bowl with a ripple; records its points."""

    def __init__(self):
        rng = np.random.default_rng(3)
        self.scale = tf.constant(np.geomspace(1.0, 300.0, 48).reshape(1, 4, 4, 3), tf.float32)
        self.centre = tf.constant(rng.uniform(-150, 150, (1, 4, 4, 3)), tf.float32)
        self.points = []

    def __call__(self, x):
        self.points.append(np.array(x))
        x = tf.constant(x)
        d = x - self.centre
        loss = tf.reduce_sum(self.scale * tf.square(d) + 50.0 * tf.cos(x / 7.0))
        grad = 2.0 * self.scale * d - 50.0 / 7.0 * tf.sin(x / 7.0)
        return loss, grad, {"tv": loss}


TERMS = (Term("tv", "tv", None, 1.0),)
SHAPE = (1, 4, 4, 3)


def _bounds():
    return (np.full(SHAPE, -100.0, np.float32), np.full(SHAPE, 120.0, np.float32))


@exact
@pytest.mark.parametrize("max_evals, iterations", [(60, 1000), (500, 25)])
def test_lbfgs_equals_the_public_fmin_l_bfgs_b_path(max_evals, iterations):
    x0 = np.zeros(SHAPE, np.float32)
    runs = []
    for path in (solvers.lbfgs, solvers._lbfgs_public):
        valley, seen = Valley(), []
        monitor = solvers.Monitor(valley, TERMS, SHAPE, max_evals, seen.append)
        if path is solvers.lbfgs:
            outcome = path(monitor, x0, iterations=iterations, bounds=_bounds())
        else:
            box = np.stack([np.ravel(b) for b in _bounds()], axis=1).astype(np.float64)
            outcome = path(monitor, x0, iterations=iterations, box=box, memory=10)
        runs.append((outcome, valley.points, [p.iteration for p in seen]))
    (ours, our_points, our_calls), (theirs, their_points, their_calls) = runs
    assert np.array_equal(ours.x, theirs.x)
    assert np.array_equal(ours.losses, theirs.losses)
    assert len(our_points) == len(their_points) == ours.evaluations
    assert all(np.array_equal(p, q) for p, q in zip(our_points, their_points))
    assert (ours.iterations, ours.stop_reason) == (theirs.iterations, theirs.stop_reason)
    assert our_calls == their_calls == list(range(1, ours.iterations + 1))
    if max_evals == 60:
        assert ours.evaluations == 60 and ours.stop_reason == "max_evals reached (60)"
    else:
        assert ours.iterations == 25 and "ITERATIONS REACHED LIMIT" in ours.stop_reason


def _run_lbfgs(max_evals, resume=None, save_at=None):
    """solvers.lbfgs on `Valley`; returns (outcome, the checkpoint taken at `save_at`)."""
    monitor = solvers.Monitor(Valley(), TERMS, SHAPE, max_evals)
    if resume is not None:
        ckpt.restore_monitor(monitor, resume.monitor)
    taken = []

    def at_boundary(capture):
        if monitor.evaluations == save_at:
            taken.append(ckpt.Checkpoint("lbfgsb", capture(copy=True),
                                         ckpt.monitor_state(monitor)))

    outcome = solvers.lbfgs(monitor, np.zeros(SHAPE, np.float32), iterations=1000,
                            bounds=_bounds(), resume=None if resume is None else resume.solver,
                            at_boundary=at_boundary)
    return outcome, (taken[0] if taken else None)


def _same_run(a, b):
    assert np.array_equal(a.x, b.x)
    assert np.array_equal(a.losses, b.losses)
    assert (a.iterations, a.evaluations, a.stop_reason) == (b.iterations, b.evaluations,
                                                             b.stop_reason)
    assert a.best.loss == b.best.loss and a.best.weighted == b.best.weighted
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in o.history] for o in (a, b)]
    assert strip[0] == strip[1]


@exact
def test_lbfgs_checkpoint_saved_and_loaded_goes_on_exactly(tmp_path):
    straight, _ = _run_lbfgs(50)
    stopped, taken = _run_lbfgs(23, save_at=23)
    assert stopped.evaluations == 23 and taken.evaluations == 23
    path = tmp_path / "run.ckpt.npz"
    written = ckpt.save_checkpoint(path, taken)
    assert written == path.stat().st_size and abs(written - taken.nbytes) < 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt.npz"]  # No temporary left.
    resumed, _ = _run_lbfgs(50, resume=ckpt.load_checkpoint(path))
    _same_run(resumed, straight)


# --- Adam and SGD. ---

def _run_keras(name, max_evals, resume=None, save_at=None):
    monitor = solvers.Monitor(Valley(), TERMS, SHAPE, max_evals,
                              divergence=solvers.DivergenceRule())
    if resume is not None:
        ckpt.restore_monitor(monitor, resume.monitor)
    taken = []

    def at_boundary(capture):
        if monitor.evaluations == save_at:
            taken.append(ckpt.Checkpoint("keras", capture(), ckpt.monitor_state(monitor)))

    if name == "adam":
        optimizer = solvers.keras_optimizer("adam", 3.0, decay=0.7, decay_steps=4)
    else:  # SGD's learning rate is chosen from its first gradient, and decays.
        def optimizer(gradient):
            return solvers.keras_optimizer("sgd", None, decay=0.8, decay_steps=5,
                                           gradient=gradient)
    outcome = solvers.gradient_descent(monitor, np.zeros(SHAPE, np.float32),
                                       optimizer=optimizer, iterations=30, bounds=_bounds(),
                                       resume=None if resume is None else resume.solver,
                                       at_boundary=at_boundary)
    return outcome, (taken[0] if taken else None)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_keras_optimizer_15_saved_restored_15_equals_30(tmp_path, name):
    straight, _ = _run_keras(name, 30)
    assert straight.evaluations == 30 and straight.losses[-1] < straight.losses[0]
    stopped, taken = _run_keras(name, 15, save_at=15)
    assert stopped.evaluations == 15
    variables = taken.solver.variables
    assert int(variables["iteration"]) == 15  # The counter that drives the decay.
    if name == "adam":
        assert {"image_0_momentum", "image_0_velocity"} <= set(variables)
    else:
        config = keras_state.json.loads(taken.solver.config)["config"]
        lr = config["learning_rate"]["config"]["initial_learning_rate"]
        first = Valley()(np.zeros(SHAPE, np.float32))[1]
        assert lr == solvers.sgd_learning_rate(first.numpy())  # The one chosen at the start.
    ckpt.save_checkpoint(tmp_path / "k.npz", taken)
    resumed, _ = _run_keras(name, 30, resume=ckpt.load_checkpoint(tmp_path / "k.npz"))
    _same_run(resumed, straight)


def test_sgd_checkpoint_before_its_first_step_has_no_optimizer_yet():
    _, taken = _run_keras("sgd", 0, save_at=0)
    assert taken.solver.config == "" and taken.solver.variables == {}
    straight, _ = _run_keras("sgd", 30)
    resumed, _ = _run_keras("sgd", 30, resume=taken)
    _same_run(resumed, straight)


# --- The real problem, resumed in a fresh process. ---

@exact
@pytest.mark.slow
def test_a_real_problem_resumes_bit_for_bit_in_a_fresh_process(tmp_path):
    sys.path.insert(0, str(TESTS))
    import resume_case

    problem = resume_case.build()
    prefix = str(tmp_path / "case")
    straight = {}
    for optimizer in resume_case.OPTIMIZERS:
        straight[optimizer] = resume_case.run_case(problem, optimizer, 24)
        stopped = resume_case.run_case(problem, optimizer, 10, save_at=10,
                                       save_to=f"{prefix}-{optimizer}.npz")
        assert stopped.evaluations == 10
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, str(TESTS / "resume_case.py"), prefix, "24"], check=True,
                   env=env, timeout=600)
    for optimizer in resume_case.OPTIMIZERS:
        expected = resume_case.summary(straight[optimizer])
        assert expected["counts"][1] == 24
        with np.load(f"{prefix}-{optimizer}-resumed.npz") as resumed:
            for name, value in expected.items():
                assert np.array_equal(resumed[name], value), (optimizer, name)


# --- The fallback where SciPy's private call differs. ---

def test_a_differing_interface_is_found_at_import_in_a_fresh_process():
    script = textwrap.dedent(f"""
        from scipy.optimize import _lbfgsb
        real = _lbfgsb.setulb
        def setulb(*args):
            return real(*args)
        setulb.__doc__ = {OLD_SIGNATURE!r} + "\\n\\nWrapper for setulb."
        _lbfgsb.setulb = setulb
        from nst_keras.engine import lbfgsb
        assert not lbfgsb.EXACT
        print(lbfgsb.FALLBACK_NOTICE)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "differs" in lines[0] and "iprint,csave" in lines[0] and "restart" in lines[0]


def test_the_installed_interface_is_the_tested_one():
    import scipy

    major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
    if (major, minor) >= (1, 15):  # The C port: a change here must be noticed.
        assert lbfgsb.EXACT and lbfgsb.FALLBACK_NOTICE is None
    else:  # Python 3.9's SciPy: the Fortran wrapper.
        assert not lbfgsb.EXACT and "restart" in lbfgsb.FALLBACK_NOTICE
    assert lbfgsb.check_interface(lambda: None) is not None  # No signature: not driven.


@pytest.mark.parametrize("resumed", [False, True])
def test_fallback_run_completes_with_a_one_line_notice(monkeypatch, resumed):
    # Runs on any SciPy: on one whose private call differs, this is the real path.
    monkeypatch.setattr(lbfgsb, "EXACT", False)
    monkeypatch.setattr(lbfgsb, "FALLBACK_NOTICE", lbfgsb.FALLBACK_NOTICE or "simulated")
    start = np.full(SHAPE, 20.0 if resumed else 0.0, np.float32)
    resume = lbfgsb.start(start) if resumed else None
    valley = Valley()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = solvers.lbfgs(solvers.Monitor(valley, TERMS, SHAPE, 30),
                                np.zeros(SHAPE, np.float32), iterations=1000,
                                bounds=_bounds(), resume=resume)
    notices = [w for w in caught if issubclass(w.category, lbfgsb.FallbackWarning)]
    assert len(notices) == 1 and "\n" not in str(notices[0].message)
    assert outcome.evaluations == 30 and outcome.losses[-1] < outcome.losses[0]
    assert np.array_equal(valley.points[0], start)  # A restart from the saved image.


@exact
def test_fallback_takes_the_public_function_and_a_resume_restarts(monkeypatch):
    _, taken = _run_lbfgs(15, save_at=15)  # An exact checkpoint, from before the change.

    def old(*args):
        raise AssertionError("never called")

    old.__doc__ = OLD_SIGNATURE
    notice = lbfgsb.check_interface(old)
    monkeypatch.setattr(lbfgsb, "EXACT", False)
    monkeypatch.setattr(lbfgsb, "FALLBACK_NOTICE", notice)
    with pytest.raises(RuntimeError, match="differs"):
        lbfgsb.Lbfgsb(lbfgsb.start(np.zeros(3)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = solvers.Monitor(Valley(), TERMS, SHAPE, 40)
        ckpt.restore_monitor(monitor, taken.monitor)
        outcome = solvers.lbfgs(monitor, np.zeros(SHAPE, np.float32), iterations=1000,
                                bounds=_bounds(), resume=taken.solver)
    notices = [w for w in caught if issubclass(w.category, lbfgsb.FallbackWarning)]
    assert len(notices) == 1 and "\n" not in str(notices[0].message)
    assert outcome.evaluations == 40 and outcome.stop_reason == "max_evals reached (40)"
    # A restart from the saved point: its first evaluation is at the checkpoint's x.
    assert np.array_equal(monitor.losses[:15], taken.monitor.losses)
    restart = Valley()(np.asarray(taken.solver.x, np.float32).reshape(SHAPE))[0]
    assert monitor.losses[15] == float(restart)


# --- Checkpoint files and the policy. ---

@exact
def test_checkpoint_file_round_trip_and_errors(tmp_path, monkeypatch):
    _, taken = _run_lbfgs(9, save_at=9)
    earlier = ckpt.monitor_state(solvers.Monitor(Valley(), TERMS, SHAPE, 1))
    full = ckpt.Checkpoint("lbfgsb", taken.solver, taken.monitor, stage=2, earlier=(earlier,))
    path = tmp_path / "c.npz"
    ckpt.save_checkpoint(path, full)
    loaded = ckpt.load_checkpoint(path)
    assert (loaded.kind, loaded.stage, loaded.version, len(loaded.earlier)) == (
        "lbfgsb", 2, ckpt.FORMAT_VERSION, 1)
    for name in lbfgsb.LbfgsbState._ARRAYS:
        assert np.array_equal(getattr(loaded.solver, name), getattr(full.solver, name))
    assert loaded.monitor.history == full.monitor.history
    assert np.array_equal(loaded.monitor.best_x, full.monitor.best_x)
    assert loaded.earlier[0].best_x is None and loaded.evaluations == 9

    with pytest.raises(ValueError, match="holds a LbfgsbState. Received: KerasState"):
        ckpt.Checkpoint("lbfgsb", keras_state.KerasState(np.zeros(SHAPE, np.float32)),
                        taken.monitor)
    with pytest.raises(ValueError, match="Received: kind='lbfgs'"):
        ckpt.Checkpoint("lbfgs", taken.solver, taken.monitor)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable checkpoint.*junk.npz"):
        ckpt.load_checkpoint(tmp_path / "junk.npz")
    arrays = full.to_arrays()
    arrays["meta/version"] = np.asarray(ckpt.FORMAT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="version 2, this is 1"):
        ckpt.load_checkpoint(tmp_path / "future.npz")
    # A missing folder raises OSError and leaves nothing; an existing checkpoint survives
    # a failed write.
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "missing" / "c.npz", full)
    before = path.read_bytes()

    def disk_full(out, **arrays):
        out.write(b"PK" * 1000)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(ckpt.np, "savez", disk_full)
        with pytest.raises(OSError, match="No space left"):
            ckpt.save_checkpoint(path, full)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "future.npz", "junk.npz"]


@exact
def test_restored_monitor_reports_and_counts_on():
    seen = []
    monitor = solvers.Monitor(Valley(), TERMS, SHAPE, 100, offset=solvers.Offset(
        iterations=7, evaluations=9, seconds=3.0, stage=2, stages=2))
    outcome = solvers.lbfgs(monitor, np.zeros(SHAPE, np.float32), iterations=5)
    state = ckpt.monitor_state(monitor)
    fresh = solvers.Monitor(Valley(), TERMS, SHAPE, 100, seen.append)
    ckpt.restore_monitor(fresh, state)
    assert fresh.offset == monitor.offset and fresh.iterations == outcome.iterations
    assert fresh.best.kind_sums() == monitor.best.kind_sums()
    assert fresh.history == monitor.history and fresh.losses == monitor.losses
    fresh.evaluate(np.zeros(SHAPE, np.float32))
    fresh.end_iteration()
    assert seen[0].iteration == 7 + outcome.iterations + 1 and seen[0].stage == 2
    assert seen[0].evaluations == 9 + outcome.evaluations + 1
    rng = np.random.default_rng(5)
    rng.normal(size=3)
    saved = ckpt.monitor_state(monitor, rng=rng)
    other = np.random.default_rng(0)
    ckpt.restore_monitor(solvers.Monitor(Valley(), TERMS, SHAPE, 1), saved, rng=other)
    assert np.array_equal(other.normal(size=4), rng.normal(size=4))
    with pytest.raises(ValueError, match="image is"):
        ckpt.restore_monitor(solvers.Monitor(Valley(), TERMS, (1, 2, 2, 3), 1), state)


def test_policy_waits_fifty_times_the_last_write():
    policy = ckpt.CheckpointPolicy(every=0.0, factor=50.0, first=10.0, start=100.0)
    assert not policy.due(now=109.0) and policy.due(now=110.0)
    policy.wrote(0.5, now=111.0)
    assert policy.wait() == 25.0
    assert not policy.due(now=135.9) and policy.due(now=136.0)
    slow = ckpt.CheckpointPolicy(every=60.0, start=0.0)
    assert not slow.due(now=59.0) and slow.due(now=60.0)
    slow.wrote(2.0, now=61.0)  # 50 x 2 s beats the 60 s floor.
    assert not slow.due(now=160.0) and slow.due(now=161.0)
    assert slow.writes == 1 and slow.seconds == 2.0
    with pytest.raises(ValueError, match="Received: every=-1"):
        ckpt.CheckpointPolicy(every=-1)


def test_checkpoint_size_formula_matches_the_file(tmp_path):
    shape = (1, 30, 40, 3)
    state = lbfgsb.start(np.zeros(shape))
    monitor = ckpt.MonitorState(0, 0, 0, 0.0, np.zeros(0), np.zeros(0), "[]", "{}",
                                best_x=np.zeros(shape, np.float32))
    path = tmp_path / "s.npz"
    size = ckpt.save_checkpoint(path, ckpt.Checkpoint("lbfgsb", state, monitor))
    expected = ckpt.checkpoint_bytes(shape)
    assert expected <= size <= expected + 10_000  # The .npy and zip headers.
    started = time.perf_counter()
    ckpt.load_checkpoint(path)
    assert time.perf_counter() - started < 30
