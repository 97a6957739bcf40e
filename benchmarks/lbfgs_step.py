#!/usr/bin/env python
"""L-BFGS-B's step with and without the pixel box, and a bounded parametrisation instead.

Run from the repository root:

    python benchmarks/lbfgs_step.py synthetic            # the step's cost, 400 x 533, m = 5
    python benchmarks/lbfgs_step.py quality              # real runs: box against tanh
    python benchmarks/lbfgs_step.py synthetic --variants box,free,tanh,tf
    python benchmarks/lbfgs_step.py quality --variants box,tf

Issue 36: SciPy's L-BFGS-B step costs several times more with the (n, 2) box than without
(the Cauchy point's breakpoints and the subspace minimisation, in `setulb`'s own scalar
loops). One way out keeps the pixels in 0-255 by construction instead:
pixels = 127.5 (1 + tanh(u)) per value, the box's lower end added in `preprocess`'s space,
with unbounded L-BFGS-B on u; the gradient is chained through (x 127.5 (1 - tanh(u)^2)).

``synthetic``: the step alone, on a separable quadratic of n = H x W x 3 values whose
minimum lies outside the box for about a quarter of them (pixels pressed against 0 or 255,
as in a run), driven by `nst_keras.engine.lbfgsb` (SciPy's `setulb`, one BLAS thread, as
`solve` runs it). Three variants, interleaved round by round: ``box`` (bounds on: today's
default), ``free`` (no bounds) and ``tanh`` (no bounds, the parametrisation's transform and
chain rule in NumPy float64 counted in). Each is timed after m + 2 evaluations (the history
full); the wall and the thread's CPU time of `setulb` per evaluation, and of the transform.

``quality``: real runs, Tübingen x The Starry Night with the VGG16 stand-in of
``../shared`` (as `evaluation_speed.py --mode quality`: book normalisation, init content,
style weight 10), bfloat16 by default: ``box`` is `solve`'s own L-BFGS-B with bounds; ``tanh``
is the same `solvers.lbfgs` on u without bounds. The image each would save (its lowest own
loss so far, RGB uint8) is judged at the budgets given by one float32 objective
(`nst_keras.engine.objective.evaluate_image`), and each run's seconds per evaluation and step
are given. Nothing in the package changes: this measures, it does not choose.

``tf`` (both modes): a projected L-BFGS written here in TensorFlow, every vector on the
objective's device in float32 (the image and gradient the objective takes and gives; a GPU's
float64 is slow): m pairs, the free set (not at a bound with the gradient pushing out), the
two-loop recursion on the gradient zeroed on the fixed set (steepest descent where that is not
a descent direction, or the projection makes the trial no descent: the history dropped), a
projected backtracking line search (clip(x + a d), Armijo with c1 = 1e-4, a = 1 halving;
1 / ||g|| while the history is empty, or 1 with --tf-first unit) and a pair kept when
s.y > 1e-10 y.y. Its step is everything between two evaluations (wall; CPU: the process's,
all TensorFlow's threads), host round trips of the loss and a few scalars included. In
synthetic mode its quadratic runs in TensorFlow too (the loss summed in float64).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS = ("box", "free", "tanh", "tf")
EPS = 1e-3  # Starting pixels at 0 or 255 start at tanh(u) = -+(1 - EPS).


class SetulbTimer:
    """Wraps the `setulb` a driver calls; wall and thread CPU seconds since `take()`."""

    def __init__(self):
        from scipy.optimize import _lbfgsb

        self.real = getattr(_lbfgsb.setulb, "__wrapped__", _lbfgsb.setulb)
        self.wall = self.cpu = 0.0

    def __call__(self, *args):
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.real(*args)
        finally:
            self.wall += time.perf_counter() - start
            self.cpu += time.thread_time() - cpu

    def take(self):
        out = (self.wall, self.cpu)
        self.wall = self.cpu = 0.0
        return out


def tanh_transform(lower, span=255.0):
    """(to_x, to_u, chain): x = lower + span/2 (1 + tanh u); chain(u, g_x) = g_u."""
    half = span / 2

    def to_x(u):
        return lower + half * (1.0 + np.tanh(u))

    def to_u(x):
        return np.arctanh(np.clip((x - lower) / half - 1.0, -1 + EPS, 1 - EPS))

    def chain(u, g):
        t = np.tanh(u)
        return g * (half * (1.0 - t * t))

    return to_x, to_u, chain


class BudgetSpent(Exception):
    """The projected L-BFGS's budget is spent (the point is not evaluated)."""


class ProjectedLbfgs:
    """A projected L-BFGS in TensorFlow: x, g and the history stay tensors on one device.

    `evaluate(x)` takes a float32 tensor of the bounds' shape and returns (loss as a Python
    float, gradient as a float32 tensor); it raises `BudgetSpent` to end the run. `run`
    returns (x, f) at the last accepted point; the caller keeps the lowest-loss point seen.
    """

    def __init__(self, lower, upper, memory, c1=1e-4, halvings=30, first="norm"):
        import tensorflow as tf

        self.tf = tf
        self.first = first  # The first trial with no history: "norm" 1 / ||g||, "unit" 1.
        self.lower = tf.constant(np.asarray(lower, np.float32))
        self.upper = tf.constant(np.asarray(upper, np.float32))
        self.memory, self.c1, self.halvings = memory, c1, halvings
        self.s, self.y, self.rho = [], [], []
        self.restarts = 0  # Times the history was dropped (no descent).
        self.iterations = 0  # Accepted steps.

        def dot(a, b):
            return tf.reduce_sum(a * b)

        @tf.function
        def free(x, g):
            fixed = ((x <= self.lower) & (g > 0)) | ((x >= self.upper) & (g < 0))
            mask = tf.cast(tf.logical_not(fixed), tf.float32)
            masked = g * mask
            finite = tf.reduce_all(tf.math.is_finite(g))
            return masked, mask, tf.sqrt(dot(masked, masked)), finite

        @tf.function
        def direction(masked, mask, s, y, rho):
            q, alphas = masked, []
            for i in reversed(range(len(s))):
                a = rho[i] * dot(s[i], q)
                alphas.append(a)
                q = q - a * y[i]
            if s:
                q = q * (dot(s[-1], y[-1]) / dot(y[-1], y[-1]))
            for i, a in zip(range(len(s)), reversed(alphas)):
                b = rho[i] * dot(y[i], q)
                q = q + s[i] * (a - b)
            d = -q * mask
            return d, dot(masked, d)

        @tf.function
        def trial(x, g, d, a):
            xa = tf.clip_by_value(x + a * d, self.lower, self.upper)
            return xa, dot(g, xa - x)

        @tf.function
        def pair(x_new, x, g_new, g):
            s, y = x_new - x, g_new - g
            return s, y, dot(s, y), dot(y, y)

        self._free, self._direction, self._trial, self._pair = free, direction, trial, pair

    def trace(self):
        """Traces the direction for every history length, so no step pays a trace."""
        tf = self.tf
        tf.get_logger().setLevel("ERROR")  # The m + 1 traces are meant: no retracing warning.
        v = tf.ones_like(self.lower)
        for k in range(self.memory + 1):
            self._direction(v, v, [v] * k, [v] * k, [tf.constant(1.0)] * k)
        self._trial(v, v, v, tf.constant(1.0))
        self._pair(v, v, v, v)
        self._free(v, v)

    def _first(self, norm):
        """The first trial step along -g with no history: a unit step in x's norm (as
        L-BFGS-B's unbounded start), or x - g projected ("unit": L-BFGS-B's start where every
        value has both bounds, its Cauchy point with theta = 1)."""
        return 1.0 if self.first == "unit" else 1.0 / max(float(norm), 1e-30)

    def run(self, evaluate, x0):
        tf = self.tf
        x = tf.clip_by_value(tf.convert_to_tensor(x0, tf.float32), self.lower, self.upper)
        f, g = evaluate(x)
        while True:
            masked, mask, norm, finite = self._free(x, g)
            if not bool(finite):
                raise FloatingPointError("the gradient is not finite")
            d, slope = self._direction(masked, mask, self.s, self.y, self.rho)
            if not float(slope) < 0:
                self.s, self.y, self.rho = [], [], []
                self.restarts += 1
                d = -masked
            a = 1.0 if self.s else self._first(norm)
            for _ in range(self.halvings):
                xa, change = self._trial(x, g, d, tf.constant(a, tf.float32))
                change = float(change)
                if not change < 0 and self.s:  # The projection made it no descent.
                    self.s, self.y, self.rho = [], [], []
                    self.restarts += 1
                    d, a = -masked, self._first(norm)
                    continue
                fa, ga = evaluate(xa)
                if fa <= f + self.c1 * change:
                    break
                a *= 0.5
            else:
                return x, f  # No decrease found: stationary as far as float32 sees.
            s, y, sy, yy = self._pair(xa, x, ga, g)
            sy, yy = float(sy), float(yy)
            if sy > 1e-10 * yy:
                self.s.append(s)
                self.y.append(y)
                self.rho.append(tf.constant(1.0 / sy, tf.float32))
                if len(self.s) > self.memory:
                    del self.s[0], self.y[0], self.rho[0]
            x, f, g = xa, fa, ga
            self.iterations += 1


def synthetic(args):
    from nst_keras.config import StyleConfig
    from nst_keras.engine import lbfgsb

    memory = args.memory or StyleConfig().lbfgs_memory
    height, width = args.height, round(args.height * args.aspect)
    n = height * width * 3
    rng = np.random.default_rng(0)
    mean = np.tile(np.array([103.939, 116.779, 123.68]), n // 3)
    lower, upper = -mean, 255.0 - mean
    # The minimum: inside the box for most values, beyond 0 or 255 for about a quarter.
    centre = lower + rng.uniform(-40, 295, n)
    scale = rng.uniform(0.5, 2.0, n)
    x0 = lower + rng.uniform(20, 235, n)
    box = np.stack([lower, upper], axis=1)
    to_x, to_u, chain = tanh_transform(lower)
    warm, timed = memory + 2, args.evals

    def quadratic(x):
        d = x - centre
        return 0.5 * float(np.dot(scale * d, d)), scale * d

    results = {v: {"wall": [], "cpu": [], "transform": [], "active": [], "loss": []}
               for v in VARIANTS}
    order = [v for v in args.variants.split(",")]
    optimum = quadratic(np.clip(centre, lower, upper))[0]  # The box's minimum: separable.
    if "tf" in order:
        tf_quadratic = _tf_quadratic(centre, scale)
    print(f"n = {n} ({height} x {width} x 3), m = {memory}; {warm} evaluations untimed, then "
          f"{timed}; {args.runs} round(s) of {', '.join(order)}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    for run in range(args.runs):
        for variant in order:
            timer = SetulbTimer()
            count = {"n": 0}
            out = results[variant]
            if variant == "tf":
                _synthetic_tf(tf_quadratic, x0, lower, upper, memory, warm, timed, out,
                              args.tf_first)
                continue
            best = {"f": np.inf}

            def evaluate(z, variant=variant, timer=timer, count=count, out=out, best=best):
                wall, cpu = timer.take()
                count["n"] += 1
                if count["n"] > warm + 1:  # The steps before this evaluation, history full.
                    out["wall"].append(wall)
                    out["cpu"].append(cpu)
                if variant != "tanh":
                    f, g = quadratic(z)
                    best["f"] = min(best["f"], f)
                    return f, g
                start = time.thread_time()
                x = to_x(z)
                f, g = quadratic(x)
                g = chain(z, g)
                if count["n"] > warm + 1:
                    out["transform"].append(time.thread_time() - start)
                best["f"] = min(best["f"], f)
                return f, g

            start_z = to_u(x0) if variant == "tanh" else x0
            bounds = box if variant == "box" else None
            state = lbfgsb.start(start_z, bounds, memory=memory)
            driver = lbfgsb.Lbfgsb(state, bounds, setulb=timer)
            stop = {"n": warm + timed + 1}
            driver.run(evaluate, iterations=10**6,
                       should_stop=lambda count=count, stop=stop: count["n"] >= stop["n"])
            x = to_x(driver.x) if variant == "tanh" else driver.x
            out["active"].append(float(np.mean((x <= lower + 1e-9) | (x >= upper - 1e-9))))
            out["loss"].append(best["f"])
    print(f"\n{'variant':<8}{'step ms':>9}{'min':>8}{'CPU ms':>9}{'transform ms':>14}"
          f"{'at bounds':>11}{'final loss':>13}{'/ box optimum - 1':>19}")
    rows = {}
    for variant in order:
        r = results[variant]
        rows[variant] = {
            "step_ms": 1e3 * statistics.median(r["wall"]), "min_ms": 1e3 * min(r["wall"]),
            "cpu_ms": 1e3 * statistics.median(r["cpu"]),
            "transform_ms": 1e3 * statistics.median(r["transform"]) if r["transform"] else 0.0,
            "at_bounds": statistics.median(r["active"]),
            "loss": statistics.median(r["loss"]), "optimum": optimum,
        }
        row = rows[variant]
        print(f"{variant:<8}{row['step_ms']:>9.1f}{row['min_ms']:>8.1f}{row['cpu_ms']:>9.1f}"
              f"{row['transform_ms']:>14.1f}{row['at_bounds']:>11.3f}{row['loss']:>13.6g}"
              f"{row['loss'] / optimum - 1:>19.2e}")
    print("step ms: SciPy's `setulb` per evaluation, median (min) over all rounds, wall; CPU "
          "ms: the thread's CPU time in it (one BLAS thread); transform ms: tanh's forward "
          "and chain rule in NumPy float64 (thread CPU); tf: everything between two "
          "evaluations, wall, and the process's CPU time (all TensorFlow's threads); at "
          "bounds: share of values on 0 or 255 at the end; final loss: the lowest seen "
          f"(median over rounds), against the box's minimum {optimum:.6g} (free and tanh may "
          "go below it outside the box). Load average now "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    return rows


def _tf_quadratic(centre, scale):
    """The synthetic quadratic in TensorFlow: float32 x and gradient, the loss in float64."""
    import tensorflow as tf

    c, w = tf.constant(centre.astype(np.float32)), tf.constant(scale.astype(np.float32))

    @tf.function
    def quadratic(x):
        d = x - c
        g = w * d
        return 0.5 * tf.reduce_sum(tf.cast(g, tf.float64) * tf.cast(d, tf.float64)), g

    return quadratic


def _synthetic_tf(quadratic, x0, lower, upper, memory, warm, timed, out, first="norm"):
    """One synthetic round of `ProjectedLbfgs`: the step timed between evaluations."""
    import tensorflow as tf

    solver = ProjectedLbfgs(lower, upper, memory, first=first)
    solver.trace()
    quadratic(tf.constant(x0, tf.float32))  # Traced before the run, as the others' NumPy.
    state = {"n": 0, "end": None, "cpu": None, "f": np.inf, "x": None}

    def evaluate(x):
        now, cpu = time.perf_counter(), time.process_time()
        if state["n"] >= warm + timed + 1:
            raise BudgetSpent()
        state["n"] += 1
        if state["n"] > warm + 1:
            out["wall"].append(now - state["end"])
            out["cpu"].append(cpu - state["cpu"])
        f, g = quadratic(x)
        f = float(f)
        if f < state["f"]:
            state["f"], state["x"] = f, x
        state["end"], state["cpu"] = time.perf_counter(), time.process_time()
        return f, g

    try:
        solver.run(evaluate, x0)
    except BudgetSpent:
        pass
    x = state["x"].numpy().astype(np.float64)
    out["active"].append(float(np.mean((x <= lower + 1e-4) | (x >= upper - 1e-4))))
    out["loss"].append(state["f"])


def quality(args):
    import dataclasses

    import tensorflow as tf

    import evaluation_speed as es
    from nst_keras.config import BOOK_STYLE_LAYERS, StyleConfig
    from nst_keras.engine import runtime, solvers
    from nst_keras.engine.objective import evaluate_image
    from nst_keras.media import images as images_lib
    from nst_keras.render import build_problem

    qargs = argparse.Namespace(weights="auto", model="auto", height=args.height,
                               aspect=4 / 3, seed=0)
    content, style, weights, model, source = es.quality_inputs(qargs)
    device = runtime.resolve_device("auto")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    config = StyleConfig(
        content_layers=("block5_conv2",), style_layers=BOOK_STYLE_LAYERS,
        content_weight=0.025, style_weight=10.0, tv_weight=1e-4, normalization="book",
        init="content", height=content.shape[0], max_evals=budgets[-1], iterations=10**6,
        model=model, weights=weights, seed=0, device=device, precision="float32",
        bounds=True, tv_edges="book",
    )
    print(es.cpu_line(device))
    print(f"{source}; {content.shape[1]}x{content.shape[0]}, {model}, "
          f"{es.weights_text(weights)}; {args.precision}; m = {config.lbfgs_memory}; "
          f"budgets {budgets}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    with runtime.device_scope(device):
        judge_objective = build_problem(content, style, config.replace(bounds=False)).objective
        problem = build_problem(content, style, config.replace(precision=args.precision))
    lower = np.ravel(problem.bounds[0]).astype(np.float64)
    to_x, to_u, chain = tanh_transform(lower)
    shape = problem.x0.shape

    def to_quality(saved, host):
        """(own seconds, evaluations) until the saved image's judged loss first reaches
        `--near` x `--reference` (judged every 25 evaluations, then bisected between), or
        None; without `--reference`, None."""
        if not args.reference or not saved:
            return None
        target = args.near * args.reference
        cache = {}

        def judged(i):
            if i not in cache:
                rgb = images_lib.deprocess(np.asarray(host(saved[i][2]), np.float32))
                cache[i] = evaluate_image(judge_objective, rgb)
            return cache[i]

        marks = [i for i in range(len(saved))
                 if i == len(saved) - 1 or saved[i][0] // 25 < saved[i + 1][0] // 25]
        index = es.first_reaching_index(marks, judged, target)
        return None if index is None else (saved[index][1], saved[index][0])

    def run_tf():
        """`ProjectedLbfgs` on the objective's device: the image never leaves it but when
        judged."""
        lower32, upper32 = (np.asarray(b, np.float32) for b in problem.bounds)
        times, steps, cpus, saved = [], [], [], []
        best = {"loss": np.inf, "x": None}
        kept = {}
        state = {"start": None, "end": None, "cpu": None, "n": 0}
        objective = problem.objective

        def evaluate(x):
            now, cpu = time.perf_counter(), time.process_time()
            if state["n"] >= budgets[-1]:
                raise BudgetSpent()
            if state["start"] is not None:
                times.append(now - state["start"])
                steps.append(now - state["end"])
                cpus.append(cpu - state["cpu"])
            state["start"] = now
            state["n"] += 1
            loss, grad, _ = objective(x)
            loss = float(loss)
            if not np.isfinite(loss):
                raise FloatingPointError(f"the loss is not finite after {state['n']}")
            if loss < best["loss"]:  # The image `solve` would save: a tensor, no copy.
                best["loss"], best["x"] = loss, x
                if args.reference:
                    saved.append((state["n"], time.perf_counter() - state["run"], x))
            if state["n"] in budgets:
                kept[state["n"]] = images_lib.deprocess(best["x"].numpy())
            state["end"], state["cpu"] = time.perf_counter(), time.process_time()
            return loss, grad

        with runtime.device_scope(problem.device):
            solver = ProjectedLbfgs(lower32, upper32, config.lbfgs_memory, first=args.tf_first)
            solver.trace()
            start = state["run"] = time.perf_counter()
            try:
                solver.run(evaluate, problem.x0)
            except BudgetSpent:
                pass
            wall = time.perf_counter() - start
        warm = config.lbfgs_memory + 2
        with runtime.device_scope(device):
            judged = {b: evaluate_image(judge_objective, rgb) for b, rgb in kept.items()}
            near = to_quality(saved, lambda x: x.numpy())
        final = best["x"].numpy()
        at_bounds = float(np.mean((final <= problem.bounds[0] + 1e-3)
                                  | (final >= problem.bounds[1] - 1e-3)))
        print(f"  tf: {state['n']} evaluations, {solver.iterations} steps accepted, history "
              f"dropped {solver.restarts} time(s)")
        return {
            "wall": wall, "s_per_eval": statistics.median(times[warm:]),
            "step_ms": 1e3 * statistics.median(steps[warm:]),
            "step_cpu_ms": 1e3 * statistics.median(cpus[warm:]), "transform_ms": 0.0,
            "judged": judged, "own_loss": best["loss"], "at_bounds": at_bounds, "images": kept,
            "to_quality": near,
        }

    def run(variant):
        if variant == "tf":
            return run_tf()
        timer = SetulbTimer()
        import scipy.optimize._lbfgsb as scipy_lbfgsb

        scipy_lbfgsb.setulb = timer  # `lbfgsb.Lbfgsb` looks it up when it starts.
        times, steps, transform, saved = [], [], [], []
        best = {"loss": np.inf, "x": None}
        kept = {}
        state = {"start": None, "n": 0}
        objective = problem.objective

        def timed(x):
            now = time.perf_counter()
            if state["start"] is not None:
                times.append(now - state["start"])
                steps.append(timer.take())
            else:
                timer.take()
            state["start"] = now
            state["n"] += 1
            if variant == "tanh":
                t0 = time.thread_time()
                u = np.asarray(x, np.float64).reshape(-1)
                px = to_x(u).astype(np.float32).reshape(shape)
                transform.append(time.thread_time() - t0)
                loss, grad, values = objective(px)
                t0 = time.thread_time()
                g = chain(u, grad.numpy().reshape(-1).astype(np.float64))
                transform[-1] += time.thread_time() - t0
                grad = _Host(g.astype(np.float32).reshape(shape))
            else:
                px = np.asarray(x)
                loss, grad, values = objective(x)
            # The image `solve` would save: the lowest own loss so far.
            if float(loss) < best["loss"]:
                best["loss"], best["x"] = float(loss), np.array(px, np.float32)
                if args.reference:
                    saved.append((state["n"], time.perf_counter() - start, best["x"]))
            if state["n"] in budgets:
                kept[state["n"]] = images_lib.deprocess(best["x"])
            return loss, grad, values

        monitor = solvers.Monitor(timed, problem.objective.terms, shape, budgets[-1])
        x0 = (to_u(np.ravel(problem.x0).astype(np.float64)).reshape(shape) if variant == "tanh"
              else problem.x0)
        start = time.perf_counter()
        with runtime.device_scope(problem.device):
            solvers.lbfgs(monitor, x0, iterations=10**6,
                          bounds=problem.bounds if variant == "box" else None,
                          memory=config.lbfgs_memory)
        wall = time.perf_counter() - start
        scipy_lbfgsb.setulb = timer.real
        warm = config.lbfgs_memory + 2
        with runtime.device_scope(device):
            judged = {b: evaluate_image(judge_objective, rgb) for b, rgb in kept.items()}
            near = to_quality(saved, np.asarray)
        final = best["x"]
        at_bounds = float(np.mean((final <= problem.bounds[0] + 1e-3)
                                  | (final >= problem.bounds[1] - 1e-3)))
        return {
            "wall": wall, "s_per_eval": statistics.median(times[warm:]),
            "step_ms": 1e3 * statistics.median(w for w, _ in steps[warm:]),
            "step_cpu_ms": 1e3 * statistics.median(c for _, c in steps[warm:]),
            "transform_ms": 1e3 * statistics.median(transform) if transform else 0.0,
            "judged": judged, "own_loss": best["loss"], "at_bounds": at_bounds, "images": kept,
            "to_quality": near,
        }

    results = {}
    for variant in args.variants.split(","):
        results[variant] = run(variant)
        r = results[variant]
        if args.images:
            from PIL import Image

            folder = pathlib.Path(args.images)
            folder.mkdir(parents=True, exist_ok=True)
            for b, rgb in r.pop("images").items():
                Image.fromarray(rgb).save(folder / f"{variant}-{b}.png")
        r.pop("images", None)
        print(f"  {variant}: {budgets[-1]} evaluations in {r['wall']:.0f} s; judged "
              + ", ".join(f"{b}: {v:.5g}" for b, v in sorted(r["judged"].items())), flush=True)
    print(f"\n{'variant':<8}{'s/eval':>8}{'step ms':>9}{'CPU ms':>8}{'tanh ms':>9}"
          + "".join(f"{'judged @' + str(b):>15}" for b in budgets) + f"{'at bounds':>11}"
          + (f"{'to ' + format(args.near, 'g') + ' x ref':>16}" if args.reference else ""))
    for variant, r in results.items():
        print(f"{variant:<8}{r['s_per_eval']:>8.3f}{r['step_ms']:>9.1f}{r['step_cpu_ms']:>8.1f}"
              f"{r['transform_ms']:>9.1f}"
              + "".join(f"{r['judged'].get(b, float('nan')):>15.5g}" for b in budgets)
              + f"{r['at_bounds']:>11.4f}"
              + ((f"{r['to_quality'][0]:>9.1f} s @{r['to_quality'][1]}" if r["to_quality"]
                  else "  not reached") if args.reference else ""))
    print("s/eval: median from one evaluation's start to the next once the history is full "
          "(objective, step, transform, monitor; tf: objective and step, no monitor); step "
          "ms: SciPy's `setulb` per evaluation (wall; CPU: the thread's); tf: everything "
          "between two evaluations (wall; CPU: the process's, all threads); tanh ms: the "
          "transform and chain rule in NumPy (thread CPU); judged @N: the float32 judged loss of the image it would save after N "
          "evaluations; at bounds: share of the saved image's values within 1e-3 of 0 or "
          f"255. Load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    if args.reference:
        print(f"to {args.near:g} x ref: own seconds (@ evaluations) from the run's start until "
              f"the saved image's judged loss first reaches {args.near:g} x {args.reference:.5g} "
              "(--reference: e.g. evaluation_speed.py's 1000-evaluation float32 reference).")
    del tf, dataclasses
    return results


class _Host:
    """A gradient already on the host, with the `.numpy()` the monitor calls."""

    def __init__(self, array):
        self._array = array

    def numpy(self):
        return self._array


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("synthetic", "quality"))
    parser.add_argument("--height", type=int, default=None,
                        help="synthetic: 400 (n = 400 x 533 x 3); quality: 300")
    parser.add_argument("--aspect", type=float, default=4 / 3)
    parser.add_argument("--memory", type=int, default=None,
                        help="L-BFGS's m (default: StyleConfig's)")
    parser.add_argument("--evals", type=int, default=30, help="synthetic: timed evaluations")
    parser.add_argument("--runs", type=int, default=3, help="synthetic: rounds of the variants")
    parser.add_argument("--variants", default=None,
                        help="comma-separated of box,free,tanh,tf (default synthetic: "
                             "box,free,tanh; quality: box,tanh)")
    parser.add_argument("--budgets", default="50,200,400",
                        help="quality: evaluations at which the saved image is judged")
    parser.add_argument("--reference", type=float, default=None,
                        help="quality: a reference judged loss; gives each variant's time to "
                             "--near x it")
    parser.add_argument("--near", type=float, default=1.1)
    parser.add_argument("--tf-first", default="norm", choices=("norm", "unit"),
                        help="tf: the first step with no history along -g: 1 / ||g|| (norm) "
                             "or 1, x - g projected (unit, as L-BFGS-B with every value boxed)")
    parser.add_argument("--images", default=None,
                        help="quality: a folder for each variant's saved image at each budget "
                             "(VARIANT-N.png)")
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    args = parser.parse_args(argv)
    if args.mode == "synthetic":
        args.height = args.height or 400
        args.variants = args.variants or "box,free,tanh"
        return synthetic(args)
    args.height = args.height or 300
    args.variants = args.variants or "box,tanh"
    return quality(args)


if __name__ == "__main__":
    main()
