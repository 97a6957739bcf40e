#!/usr/bin/env python
"""Seconds per loss+gradient evaluation: the hardware's lower bound, nst_keras, the book.

Run from the repository root:

    python benchmarks/evaluation_speed.py                  # the table, height 400
    python benchmarks/evaluation_speed.py --mode scaling   # time per evaluation vs height

Rows of the table (each timed on the same random images, the same layers, float32):

* ``lower bound``: one forward pass of the same truncated feature model
  (`nst_keras.features.build_feature_model`, VGG19 up to block5_conv2) on the generated image
  alone, and the gradient of a trivial loss (the sum of the outputs) with respect to that
  image: what the hardware must do at least. Timed without XLA and, when nst_keras uses
  XLA, also compiled the same way (``lower bound, XLA``).
* ``nst_keras``: the real objective of `stylize`: `nst_keras.optimize.build_problem` and
  `nst_keras.optimize.minimize` itself (one `fmin_l_bfgs_b` call), imported, not copied. The
  time of one evaluation runs from the start of one evaluation to the start of the next, so
  it includes the float64 -> float32 copy, the copy of the gradient back, `minimize`'s
  bookkeeping and SciPy's L-BFGS step.
* ``book``: Chollet's *Deep Learning with Python* 8.3 rebuilt faithfully: content, style
  and generated images concatenated into a batch of 3 through the full
  ``include_top=False`` VGG19 at every evaluation, the book's losses (its Gram matrix of the
  permuted features, its normalisation, its total variation on rows and columns 0..n-2),
  its `Evaluator` and `fmin_l_bfgs_b` restarted every 20 evaluations (the restarts cost
  quality, not time per evaluation: L-BFGS forgets its curvature pairs). Like the book's
  TF1 graph, it is not XLA-compiled.

The methods are interleaved in one process (A B C A B C ...: each runs in its own thread,
and a token lets exactly one evaluate at a time), so a noisy machine slows all alike. The
first `--warmup` evaluations of each (tracing, XLA compilation) are not counted; the table
gives the median of the next `--evals`, and every ratio is the median over rounds of the
ratio of two methods' times within one round, so that a slow spell cancels out.

Peak memory is measured in a separate subprocess per method (the peak RSS of a process
only grows, so methods sharing a process cannot be told apart): each child builds one
method, runs one evaluation, and reports its peak RSS (VmHWM) and,
on a GPU, TensorFlow's peak device memory.

FLOPs are analytic: 2 x multiply-adds of every conv layer up to the deepest layer used.
The gradient is taken with respect to the image only (the weights are frozen), so the
backward pass of each conv computes its input gradient (as many multiply-adds as the
forward pass) and no weight gradient: forward + backward = 2 x forward (3 x with weight
gradients, as in training). ReLU, pooling and copies are not counted; the Gram matrices
are (2 M C^2 per product: nst_keras does one forward and one in the gradient; the book one
for the style image, one for the generated image and two in TF's generic MatMul gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Method keys: the kind, "+xla" when compiled with XLA.
KINDS = ("lower", "nst", "book")
LABELS = {"lower": "lower bound", "nst": "nst_keras", "book": "book (DLwP 8.3)"}
SCALING_HEIGHTS = (128, 256, 400, 512, 768, 1024)
#: VGG's output channels per block.
CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


class _Done(Exception):
    """Raised inside a method's loop once it has done its evaluations."""


# ---------------------------------------------------------------------------------------
# Interleaving: one token, passed round-robin between the methods' threads.


class RoundRobin:
    """Lets the threads in `names` run one at a time, in order, round after round."""

    def __init__(self, names):
        self._order = list(names)
        self._turn = 0
        self._cond = threading.Condition()

    def _holder(self):
        return self._order[self._turn] if self._order else None

    def wait(self, name):
        with self._cond:
            self._cond.wait_for(lambda: self._holder() == name)

    def advance(self, name):
        """`name` hands the token to the next method."""
        with self._cond:
            if self._holder() == name:
                self._turn = (self._turn + 1) % len(self._order)
                self._cond.notify_all()

    def leave(self, name):
        """`name` is done; the token goes to the next method if it held it."""
        with self._cond:
            index = self._order.index(name)
            del self._order[index]
            if index < self._turn:
                self._turn -= 1  # The holder moved down one place.
            if self._order:
                self._turn %= len(self._order)  # The last one left: the first goes next.
            self._cond.notify_all()


class Clock:
    """Called at the start of each evaluation: times the previous one, then waits its turn.

    The time of an evaluation runs from its start to the start of the next one, so whatever
    the method does between evaluations (copies, bookkeeping, L-BFGS) is counted.
    """

    def __init__(self, schedule, name, total):
        self.schedule, self.name, self.total = schedule, name, total
        self.times = []
        self.cpu_times = []
        self._start = self._cpu_start = None

    def __call__(self):
        if self._start is not None:
            self.times.append(time.perf_counter() - self._start)
            # The process's CPU time: only this method runs meanwhile, on all its threads.
            self.cpu_times.append(time.process_time() - self._cpu_start)
            self.schedule.advance(self.name)
        if len(self.times) >= self.total:
            raise _Done
        self.schedule.wait(self.name)
        self._start, self._cpu_start = time.perf_counter(), time.process_time()


# ---------------------------------------------------------------------------------------
# The three methods. Each `build_*` does the setup and returns `run(clock)`, which evaluates
# until `clock()` raises `_Done`.


def _layers(config):
    from nst_keras.optimize import _layout

    union, _ = _layout(config)
    return union


def build_lower(config, content_rgb, style_rgb, feature_model, xla):
    """Forward + input gradient of the truncated model on one image, loss = sum of outputs."""
    import tensorflow as tf

    from nst_keras import images as images_lib
    from nst_keras.optimize import features_of

    x = tf.constant(images_lib.preprocess(content_rgb))

    @tf.function(input_signature=[tf.TensorSpec(x.shape, tf.float32)], jit_compile=xla)
    def loss_and_grad(x):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            loss = tf.add_n([tf.reduce_sum(o) for o in features_of(feature_model, x)])
        return loss, tape.gradient(loss, x)

    loss_and_grad.get_concrete_function()

    def run(clock):
        while True:
            clock()
            loss, grad = loss_and_grad(x)
            float(loss), grad.numpy()  # The results on the host, as an optimiser needs them.

    return run


def build_nst(config, content_rgb, style_rgb, feature_model, xla):
    """nst_keras's own `build_problem` and `minimize`, with a clock at each evaluation."""
    from nst_keras.optimize import build_problem, device_scope, minimize

    problem = build_problem(
        content_rgb, style_rgb, config.replace(jit_compile=xla), feature_model=feature_model
    )

    def run(clock):
        def timed(x):
            clock()
            return problem.loss_and_grad(x)

        with device_scope(config.device):
            minimize(
                timed, problem.x0, iterations=10**6, max_evals=10**6,
                term_names=problem.term_names, weights=problem.term_weights,
            )

    return run


def build_book(config, content_rgb, style_rgb, feature_model, xla):
    """Chollet's DLwP (1st ed.) 8.3, in TF2: a batch of 3 through the full VGG19 each time."""
    import keras
    import tensorflow as tf
    from scipy.optimize import fmin_l_bfgs_b

    from nst_keras import images as images_lib

    img_height, img_width = content_rgb.shape[:2]
    # The book resizes both images to the generated image's size.
    if style_rgb.shape[:2] != (img_height, img_width):
        from PIL import Image

        style_rgb = np.asarray(Image.fromarray(style_rgb).resize((img_width, img_height)))
    target_image = tf.constant(images_lib.preprocess(content_rgb))
    style_reference_image = tf.constant(images_lib.preprocess(style_rgb))
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    model = keras.applications.VGG19(
        include_top=False, weights=config.weights, input_shape=(img_height, img_width, 3)
    )
    outputs_dict = {layer.name: layer.output for layer in model.layers[1:]}
    extractor = keras.Model(model.inputs, outputs_dict)

    def content_loss(base, combination):
        return tf.reduce_sum(tf.square(combination - base))

    def gram_matrix(x):
        features = tf.reshape(tf.transpose(x, (2, 0, 1)), (tf.shape(x)[2], -1))
        return tf.matmul(features, features, transpose_b=True)

    def style_loss(style, combination):
        s, c = gram_matrix(style), gram_matrix(combination)
        channels, size = 3, img_height * img_width
        return tf.reduce_sum(tf.square(s - c)) / (4.0 * (channels**2) * (size**2))

    def total_variation_loss(x):
        a = tf.square(
            x[:, : img_height - 1, : img_width - 1, :] - x[:, 1:, : img_width - 1, :]
        )
        b = tf.square(
            x[:, : img_height - 1, : img_width - 1, :] - x[:, : img_height - 1, 1:, :]
        )
        return tf.reduce_sum(tf.pow(a + b, 1.25))

    content_layer = "block5_conv2"
    style_layers = list(_layers(config.replace(content_layers=())))
    total_variation_weight, style_weight, content_weight = 1e-4, 1.0, 0.025

    @tf.function(
        input_signature=[tf.TensorSpec((1, img_height, img_width, 3), tf.float32)],
        jit_compile=xla,
    )
    def fetch_loss_and_grads(combination_image):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(combination_image)
            input_tensor = tf.concat(
                [target_image, style_reference_image, combination_image], axis=0
            )
            layer_features = extractor(input_tensor, training=False)
            features = layer_features[content_layer]
            loss = content_weight * content_loss(features[0], features[2])
            for layer_name in style_layers:
                features = layer_features[layer_name]
                sl = style_loss(features[1], features[2])
                loss += (style_weight / len(style_layers)) * sl
            loss += total_variation_weight * total_variation_loss(combination_image)
        return loss, tape.gradient(loss, combination_image)

    fetch_loss_and_grads.get_concrete_function()

    def run(clock):
        class Evaluator:
            def __init__(self):
                self.loss_value = None
                self.grad_values = None

            def loss(self, x):
                assert self.loss_value is None
                x = x.reshape((1, img_height, img_width, 3))
                clock()
                outs = fetch_loss_and_grads(tf.constant(x, dtype=tf.float32))
                self.loss_value = float(outs[0])
                self.grad_values = outs[1].numpy().flatten().astype("float64")
                return self.loss_value

            def grads(self, x):
                assert self.loss_value is not None
                grad_values = np.copy(self.grad_values)
                self.loss_value = None
                self.grad_values = None
                return grad_values

        evaluator = Evaluator()
        x = target_image.numpy().flatten()
        for _ in range(10**6):  # The book: 20 restarts of 20 evaluations each.
            x, _, _ = fmin_l_bfgs_b(evaluator.loss, x, fprime=evaluator.grads, maxfun=20)

    return run


BUILDERS = {"lower": build_lower, "nst": build_nst, "book": build_book}


# ---------------------------------------------------------------------------------------
# FLOPs.


def conv_flops(height, width, deepest, model="vgg19"):
    """2 x the multiply-adds of VGG's conv layers up to `deepest`, forward, one image."""
    from nst_keras.features import layer_names

    h, w, cin, total = height, width, 3, 0
    for name in layer_names(model):
        if name.endswith("pool"):
            h, w = h // 2, w // 2
        else:
            cout = CHANNELS[int(name[5])]
            total += 2 * h * w * 9 * cin * cout
            cin = cout
        if name == deepest:
            break
    return total


def gram_flops(height, width, style_layers, model="vgg19"):
    """2 M C^2 per layer of `style_layers`: the FLOPs of one (M, C) x (C, M) product."""
    from nst_keras.features import layer_names

    h, w, total = height, width, 0
    for name in layer_names(model):
        if name.endswith("pool"):
            h, w = h // 2, w // 2
        elif name in style_layers:
            total += 2 * h * w * CHANNELS[int(name[5])] ** 2
    return total


def method_flops(kind, config, height, width):
    """FLOPs of one evaluation of `kind` (convs forward + input gradient, Gram matrices)."""
    from nst_keras.features import layer_names

    union = _layers(config)
    names = layer_names(config.model)
    deepest = max(union, key=names.index)
    style = [n for n in union if n in _layers(config.replace(content_layers=()))]
    network = 2 * conv_flops(height, width, deepest, config.model)
    if kind == "lower":
        return network
    gram = gram_flops(height, width, style, config.model)
    if kind == "nst":
        # One product forward, one in the gradient (`_gram_matrix_symmetric_grad`).
        return network + 2 * gram
    # The book: three images forward and backward (the batch's gradient is sliced after the
    # last conv's backward pass); the style image's Gram matrices forward, the generated
    # image's forward and TF's generic MatMul gradient (two products).
    # Layers after block5_conv2 feed no loss; TF prunes them (as the book's TF1 session did).
    return 3 * network + 4 * gram


# ---------------------------------------------------------------------------------------
# Running.


def parse_methods(text, xla):
    if text:
        methods = [m.strip() for m in text.split(",") if m.strip()]
    elif xla:
        methods = ["lower", "lower+xla", "nst+xla", "book"]
    else:
        methods = ["lower", "nst", "book"]
    for method in methods:
        if method.split("+")[0] not in KINDS or method.count("+") > 1 or (
            "+" in method and not method.endswith("+xla")
        ):
            raise SystemExit(f"unknown method {method!r}; use lower, nst, book, each +xla or not")
    return methods


def label(method):
    kind = method.split("+")[0]
    return LABELS[kind] + (", XLA" if method.endswith("+xla") else "")


def make_inputs(height, aspect, seed):
    """Random content and style images, RGB uint8, height x round(height * aspect)."""
    width = max(1, round(height * aspect))
    rng = np.random.default_rng(seed)
    content = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return content, style


def make_config(args, height):
    from nst_keras.config import StyleConfig

    return StyleConfig(height=height, weights=args.weights, seed=args.seed, device=args.device)


def time_methods(args, methods, height):
    """Builds `methods` at `height` and times them interleaved; returns {method: [s, ...]}."""
    import keras

    from nst_keras.features import build_feature_model
    from nst_keras.optimize import device_scope

    config = make_config(args, height)
    content, style = make_inputs(height, args.aspect, args.seed)
    runs = {}
    with device_scope(config.device):
        keras.utils.set_random_seed(args.seed)
        feature_model = build_feature_model(
            _layers(config), model=config.model, weights=config.weights, pooling=config.pooling
        )
        for method in methods:
            kind = method.split("+")[0]
            runs[method] = BUILDERS[kind](
                config, content, style, feature_model, method.endswith("+xla")
            )
    schedule = RoundRobin(methods)
    clocks = {m: Clock(schedule, m, args.warmup + args.evals) for m in methods}
    errors = {}

    def work(method):
        try:
            with device_scope(config.device):
                runs[method](clocks[method])
        except _Done:
            pass
        except BaseException as error:  # Reported by the main thread.
            errors[method] = error
        finally:
            schedule.leave(method)

    threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in methods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        method, error = next(iter(errors.items()))
        raise RuntimeError(f"{label(method)} failed: {error!r}") from error
    return (
        {m: clocks[m].times[args.warmup :] for m in methods},
        {m: clocks[m].cpu_times[args.warmup :] for m in methods},
    )


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a child
    # spawned by a big parent would report the parent's peak.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux.


def child(args):
    """Runs one method (setup and one evaluation) and prints its peak memory as JSON."""
    import tensorflow as tf

    import keras  # noqa: F401  (its import is part of the baseline)

    baseline = _rss_mb()
    gpu = bool(tf.config.list_physical_devices("GPU")) and args.device != "cpu"
    # One evaluation: what it allocates (activations, gradients, XLA's buffers, SciPy's
    # L-BFGS memory of 2 x 10 vectors) is all allocated by then.
    args.warmup, args.evals = 0, 1
    time_methods(args, [args.child], args.height)
    result = {"peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": baseline}
    if gpu:
        result["peak_device_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print("MEMORY " + json.dumps(result), flush=True)


def measure_memory(args, argv, methods):
    """Peak memory of each method, each in its own subprocess."""
    out = {}
    for method in methods:
        command = [sys.executable, os.path.abspath(__file__), *argv, "--child", method]
        done = subprocess.run(command, capture_output=True, text=True)
        line = [l for l in done.stdout.splitlines() if l.startswith("MEMORY ")]
        if done.returncode or not line:
            print(f"warning: memory of {label(method)} not measured:\n{done.stderr[-2000:]}")
            continue
        out[method] = json.loads(line[-1][len("MEMORY ") :])
    return out


def describe(args, height, width):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = "GPU" if gpus and args.device != "cpu" else f"CPU ({os.cpu_count()} cores)"
    weights = args.weights if args.weights else "random (weights=None)"
    return (
        f"height {height} x width {width}, VGG19, weights {weights}, float32, {device}, "
        f"TF {tf.__version__}; median of {args.evals} evaluations after {args.warmup} "
        "warm-up, methods interleaved"
    )


def table(args, argv):
    from nst_keras.features import layer_names

    methods = parse_methods(args.methods, args.xla)
    height = args.height
    width = max(1, round(height * args.aspect))
    config = make_config(args, height)
    start = time.perf_counter()
    times, cpu_times = time_methods(args, methods, height)
    memory = measure_memory(args, argv, methods) if args.memory else {}
    seconds = {m: statistics.median(t) for m, t in times.items()}

    def ratio(a, b):
        """Median over rounds of a's time / b's time in the same round (A B C A B C ...):
        paired, so a slow spell of a shared machine cancels out."""
        if a not in times or b not in times:
            return None
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    union = _layers(config)
    deepest = max(union, key=layer_names(config.model).index)
    forward = conv_flops(height, width, deepest, config.model)
    print(describe(args, height, width))
    print(
        f"Truncated forward pass (VGG19 up to {deepest}), analytic: {forward / 1e9:.1f} GFLOP; "
        f"forward + input gradient: {2 * forward / 1e9:.1f} GFLOP"
    )
    book = next((m for m in methods if m.startswith("book")), None)
    mem_key = "peak_device_mb" if any("peak_device_mb" in v for v in memory.values()) else (
        "peak_rss_mb"
    )
    header = (
        f"{'method':<22}{'s/eval':>8}{'min':>8}{'max':>8}{'CPU s':>8}{'x lower':>9}{'x lower':>9}"
        f"{'book /':>8}{'GFLOP':>8}{'GFLOP/s':>9}{'peak MB':>9}{'x lower':>9}"
    )
    print()
    print(header)
    print(
        f"{'':<22}{'median':>8}{'':>8}{'':>8}{'median':>8}{'(plain)':>9}{'(same)':>9}{'this':>8}"
        f"{'':>8}{'':>9}"
        f"{'RSS' if mem_key == 'peak_rss_mb' else 'device':>9}{'(same)':>9}"
    )
    rows = {}
    for method in methods:
        kind, xla = method.split("+")[0], method.endswith("+xla")
        same = "lower+xla" if xla else "lower"
        flops = method_flops(kind, config, height, width)
        mem = memory.get(method, {}).get(mem_key)
        same_mem = memory.get("lower+xla" if xla else "lower", {}).get(mem_key)
        row = {
            "seconds": seconds[method],
            "cpu_seconds": statistics.median(cpu_times[method]),
            "vs_lower": ratio(method, "lower"),
            "vs_lower_same": ratio(method, same),
            "book_over_this": ratio(book, method),
            "gflops": flops / 1e9,
            "gflop_per_s": flops / 1e9 / seconds[method],
            "peak_mb": mem,
            "peak_vs_lower_same": mem / same_mem if mem and same_mem else None,
        }
        rows[method] = row
        fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(  # noqa: E731
            int(spec.split(".")[0] or 0)
        )
        print(
            f"{label(method):<22}{row['seconds']:>8.3f}{min(times[method]):>8.3f}"
            f"{max(times[method]):>8.3f}{row['cpu_seconds']:>8.2f}{fmt(row['vs_lower'], '9.2f')}"
            f"{fmt(row['vs_lower_same'], '9.2f')}{fmt(row['book_over_this'], '8.2f')}"
            f"{row['gflops']:>8.1f}{row['gflop_per_s']:>9.1f}{fmt(mem, '9.0f')}"
            f"{fmt(row['peak_vs_lower_same'], '9.2f')}"
        )
    print()
    print(
        "CPU s: process CPU seconds per evaluation (both cores; only that method runs "
        "meanwhile). x lower (plain): time / the lower bound's without XLA; x lower (same): "
        "time / the lower bound's compiled the same way (XLA or not); book / this: how many "
        "times faster than the book's method; all ratios are medians over rounds of the "
        "ratio within a round (A B C A B C ...), so a slow spell cancels out; GFLOP: analytic "
        "work of one evaluation (convs forward + input gradient, Gram matrices); peak MB: peak "
        + (
            "device memory (TensorFlow's allocator)"
            if mem_key == "peak_device_mb"
            else "resident memory of a process running only that method (TensorFlow's own "
            "~baseline included: "
            + ", ".join(f"{label(m)} {v['baseline_rss_mb']:.0f} MB" for m, v in memory.items())
            + ")"
        )
        + "."
    )
    if memory and mem_key == "peak_rss_mb":
        print(
            "Peak RSS above that baseline: "
            + ", ".join(
                f"{label(m)} {v['peak_rss_mb'] - v['baseline_rss_mb']:.0f} MB"
                for m, v in memory.items()
            )
        )
    for nst in (m for m in methods if m.startswith("nst")):
        checks = []
        r = rows[nst]
        if r["vs_lower"] is not None:
            checks.append(("<= 1.00 x lower bound without XLA", r["vs_lower"] <= 1.0))
        if r["vs_lower_same"] is not None:
            checks.append(("<= 1.10 x lower bound compiled the same way", r["vs_lower_same"] <= 1.10))
        if r["book_over_this"] is not None:
            checks.append((">= 3.5 x faster than the book", r["book_over_this"] >= 3.5))
        if r["peak_vs_lower_same"] is not None:
            checks.append(("peak memory <= 1.3 x the lower bound's", r["peak_vs_lower_same"] <= 1.3))
        if checks:
            print(f"Targets for {label(nst)}: "
                  + "; ".join(f"{t}: {'met' if ok else 'NOT met'}" for t, ok in checks))
    print(f"(benchmark wall time {time.perf_counter() - start:.0f} s)")
    return rows


def scaling(args, argv):
    methods = parse_methods(args.methods, args.xla) if args.methods else (
        ["lower+xla", "nst+xla"] if args.xla else ["lower", "nst"]
    )
    heights = [int(h) for h in args.heights.split(",")]
    start = time.perf_counter()
    results, paired = {}, {}
    for height in heights:
        times = time_methods(args, methods, height)[0]
        results[height] = {m: statistics.median(t) for m, t in times.items()}
        # The last method's time / the first's, paired within rounds as in the table.
        paired[height] = statistics.median(
            b / a for a, b in zip(times[methods[0]], times[methods[-1]])
        )
        print(f"  height {height}: " + ", ".join(
            f"{label(m)} {s:.3f} s" for m, s in results[height].items()), flush=True)
    reference = 400 if 400 in heights else heights[len(heights) // 2]

    def per_pixel(height, method):
        """Seconds per pixel at `height` relative to `reference`: 1.00 is linear."""
        pixels = height * max(1, round(height * args.aspect))
        ref_pixels = reference * max(1, round(reference * args.aspect))
        return (results[height][method] / pixels) / (results[reference][method] / ref_pixels)

    print()
    print(describe(args, "H", "round(H * %.4g)" % args.aspect))
    header = f"{'height':>7}{'width':>7}{'Mpixel':>8}"
    for m in methods:
        header += f"  {label(m) + ' s/eval':>26}{'per pixel':>10}{'GFLOP/s':>9}"
    if len(methods) > 1:
        header += f"{'ratio':>8}"
    print(header)
    for height in heights:
        width = max(1, round(height * args.aspect))
        config = make_config(args, height)
        line = f"{height:>7}{width:>7}{height * width / 1e6:>8.3f}"
        for m in methods:
            s = results[height][m]
            gflops = method_flops(m.split("+")[0], config, height, width) / 1e9 / s
            line += f"  {s:>26.3f}{per_pixel(height, m):>10.2f}{gflops:>9.1f}"
        if len(methods) > 1:
            line += f"{paired[height]:>8.2f}"
        print(line)
    off = [
        f"{h} ({label(m)} {per_pixel(h, m):.2f})"
        for h in heights for m in methods if abs(per_pixel(h, m) - 1) > 0.15
    ]
    print()
    print("Not linear in pixels (per pixel off by more than 15%): " + (", ".join(off) or "none"))
    print(
        f"per pixel: seconds per pixel relative to height {reference} (1.00 = linear in pixels); "
        f"ratio: {label(methods[-1])} / {label(methods[0])} (median over rounds). "
        f"(benchmark wall time {time.perf_counter() - start:.0f} s)"
    )
    return results


def build_parser():
    parser = argparse.ArgumentParser(
        description="Seconds per loss+gradient evaluation: the lower bound, nst_keras and the "
        "book's method, interleaved in one process.",
    )
    parser.add_argument("--mode", choices=("table", "scaling"), default="table",
                        help="table: the three methods at --height; scaling: time per "
                        "evaluation against the image height")
    parser.add_argument("--height", type=int, default=400, help="image height (table mode)")
    parser.add_argument("--heights", default=",".join(map(str, SCALING_HEIGHTS)),
                        help="comma-separated heights (scaling mode)")
    parser.add_argument("--aspect", type=float, default=4 / 3,
                        help="width / height (Tübingen's photograph: 4/3)")
    parser.add_argument("--evals", type=int, default=None,
                        help="timed evaluations per method (default 10; 2 in scaling mode)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed evaluations first")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                        help="nst_keras compiled with XLA (default: StyleConfig's default)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated, of lower, nst, book, each optionally +xla "
                        "(default: lower,lower+xla,nst+xla,book with XLA; lower,nst,book without)")
    parser.add_argument("--weights", default=None,
                        help="none (random, the default), imagenet, or a weights file")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each method's peak memory in a subprocess (table mode)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.weights in (None, "none", "None"):
        args.weights = None
    if args.xla is None:
        from nst_keras.config import StyleConfig

        args.xla = StyleConfig().jit_compile
    if args.evals is None:
        args.evals = 2 if args.mode == "scaling" else 10
    if args.evals < 1 or args.warmup < 0:
        raise SystemExit("--evals must be >= 1 and --warmup >= 0")
    if args.child:
        return child(args)
    if args.mode == "scaling":
        return scaling(args, argv)
    return table(args, argv)


if __name__ == "__main__":
    main()
