"""`nst-keras app`: a web page to stylise a photo, watch it paint, stop it and download it.

One more front-end on the one run path: the page's inputs (uploaded files as bytes, or the
name of an image in the configured example folders) and settings become a `StyleConfig`,
`plan.plan` checks and reads them (a refused input shows the command line's one-line
message on the page, `console.as_usage`), and `render.render` runs the job in a worker
thread whose callback hands the progress to the page. The feature model is built once at
start (`runtime.MODELS` keeps it for the app's life); one run at a time, a second page
waits in Gradio's queue and sees its place.

Stop works as Ctrl-C does: it sets the run's stop token (`control.StopToken`), the render
ends at its next evaluation boundary and returns its best image, and that result is
delivered like a finished one (`delivery`: the image, the loss plot and the same run record)
and offered for download. The progress text shows the rate and ETA the engine computed.

Offline and private by default: Gradio's analytics and version check are off, no share
link, fonts and scripts come from the installed package, the server binds to 127.0.0.1,
uploads above `--max-upload` MB are refused, and the server reads only what was uploaded
and the example folders (a name the page sends is looked up in the app's own table, never
used as a path). Temporary files live in one folder, removed when the app exits.
"""


import argparse
import dataclasses
import importlib.util
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

from nst_keras.commands import console
from nst_keras.config import COLOR_MODES, OPTIMIZERS, POOLINGS, PRESETS, StyleConfig, preset
from nst_keras.commands.console import EXIT_OK, UsageError
from nst_keras.engine.control import StopToken

PROG = f"{console.PROG} app"
INSTALL = "pip install 'nst-keras[app]'"
#: Hosts that only this machine can reach.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Send the current image to the page every this many iterations (and at the first):
#: encoding a PNG and streaming it costs time the run would otherwise have.
PREVIEW_EVERY = 5
#: How long Stop waits for the iteration in flight to end.
STOP_WAIT_SECONDS = 120.0
NO_COLOR = "off"

#: The page's controls, by StyleConfig field (main, then "advanced").
MAIN_FIELDS = ("height", "style_weight", "preserve_color", "max_evals", "seed")
ADVANCED_FIELDS = ("content_layers", "style_layers", "pooling", "optimizer", "tv_weight")
#: The model options of the command (the page cannot change the model it runs on).
MODEL_FIELDS = ("model", "weights", "device", "precision")


def build_parser() -> argparse.ArgumentParser:
    """The `app` command's options: where to serve, the examples, the model options."""
    parser = console.Parser(
        prog=PROG,
        description="Serve a web page on this machine: upload a photo, pick a style, watch "
                    "it paint, stop it, download the PNG and its run record. Needs "
                    f"Gradio ({INSTALL}). Nothing is fetched from the internet.",
        formatter_class=console.HelpFormatter)
    serve = parser.add_argument_group("serving")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; anything but loopback exposes the page (and "
                            "this machine's compute) to the network")
    serve.add_argument("--port", type=console.positive_int, default=7860, help="port")
    serve.add_argument("--browser", action="store_true", help="open the page in a browser")
    serve.add_argument("--images", default=None, metavar="DIR",
                       help="a folder of images offered as example photos and styles (the "
                            "figure paintings in the Keras cache are offered too)")
    serve.add_argument("--networks", default=None, metavar="DIR",
                       help="a folder of style networks (nst-keras train's .keras files) "
                            "offered on the page for one-pass stylisation; read from this "
                            "machine only: an uploaded network file is never loaded (loading "
                            "one can run its code)")
    serve.add_argument("--max-upload", type=console.positive_float, default=20.0,
                       metavar="MB", help="refuse uploads larger than this")
    serve.add_argument("--preview-every", type=console.positive_int, default=PREVIEW_EVERY,
                       metavar="N", help="send the current image to the page every N "
                                         "iterations")
    model = parser.add_argument_group("model (built once, for every run)")
    console.add_config_options(parser, StyleConfig(), fields=MODEL_FIELDS,
                               groups={"method": model, "optimisation": model})
    parser.add_argument("-q", "--quiet", action="store_true", help="no messages")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `app`: checks the options, builds the model, serves until Ctrl-C.

    Returns:
        0 after Ctrl-C; 2 on bad usage, without Gradio, or when the port is taken.
    """
    return console.command(PROG, argv, _parse, _work)


def _parse(argv):
    from nst_keras.plan import check_network

    args = build_parser().parse_args(argv)
    if importlib.util.find_spec("gradio") is None:
        raise UsageError(f"the app needs Gradio: {INSTALL}")
    if args.images is not None and not os.path.isdir(args.images):
        raise UsageError(f"the --images folder does not exist. Received: --images "
                         f"{args.images}")
    args.network_files = networks_in(args.networks)
    args.base = console.planned(lambda: StyleConfig(**console.config_changes(args, MODEL_FIELDS)))
    console.planned(check_network, args.base)
    return args


def _work(args, guard) -> int:
    if args.host not in LOOPBACK:
        print(f"{PROG}: warning: --host {args.host} exposes this page to every machine that "
              f"can reach this one on port {args.port}: anyone there can upload images, run "
              "style transfers on this machine's CPU/GPU, stop runs, download the results "
              "and see the example images"
              + (f" in {args.images}" if args.images else "")
              + "; there is no login.", file=sys.stderr)
    return _serve(args, args.base)


def _serve(args, base: StyleConfig) -> int:
    workdir = tempfile.mkdtemp(prefix="nst_keras_app_")
    try:
        return _serve_in(args, base, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # Uploads, previews, results.


def _serve_in(args, base: StyleConfig, workdir: str) -> int:
    # Read by Gradio at import: its uploads and cached outputs go into our folder.
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(workdir, "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # No telemetry, no version check.

    app = App(base, gallery(args.images), workdir, preview_every=args.preview_every,
              networks=args.network_files)
    console.say(args.quiet, f"Building {base.model} ({base.weights or 'random weights'}) ...")
    console.load_model(app.model_config(base))
    demo = app.blocks()
    import gradio as gr

    try:
        demo.launch(server_name=args.host, server_port=args.port, share=False,
                    max_file_size=int(args.max_upload * 1e6), quiet=True, footer_links=[],
                    ssr_mode=False, show_error=False, inbrowser=args.browser,
                    prevent_thread_lock=True, theme=gr.themes.Default())
    except OSError as error:
        raise UsageError(f"cannot serve on {args.host}:{args.port} ({error}); try another "
                         f"--port. Received: --port {args.port}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{PROG}: serving on http://{host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the runs in flight stop too.
        for run in app.runs.values():
            run.stop.request("stopped")
    finally:
        demo.close()
    return EXIT_OK


def networks_in(folder: Optional[str]) -> Dict[str, str]:
    """name -> path of the style networks in `folder` (each checked to be one of ours).

    Raises:
        UsageError: If the folder is missing, holds no `.keras` file, or one that is not a
            style network (naming it).
    """
    if folder is None:
        return {}
    from nst_keras.engine import transformer

    if not os.path.isdir(folder):
        raise UsageError(f"the --networks folder does not exist. Received: --networks {folder}")
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith(".keras"):
            path = os.path.join(folder, name)
            try:
                transformer.read_record(path)
            except ValueError as error:
                raise console.as_usage(error) from None
            found[name[:-len(".keras")]] = path
    if not found:
        raise UsageError(f"the --networks folder holds no .keras network. Received: "
                         f"--networks {folder}")
    return found


def gallery(images_dir: Optional[str]) -> Dict[str, str]:
    """The example images: name -> path; the figure paintings already in the Keras cache
    (nothing is downloaded), then the images in `images_dir`, sorted by name."""
    from nst_keras.commands.figures import IMAGES
    from nst_keras.media.images import cached_path, is_image_file

    found = {}
    for name, source in IMAGES.items():
        path = cached_path(source.url)
        if path is not None:
            found[name] = path
    if images_dir:
        for entry in sorted(os.listdir(images_dir)):
            path = os.path.join(images_dir, entry)
            if is_image_file(path):
                found[entry] = path
    return found


def strength_to_weight(strength: float, preset_weight: float) -> float:
    """The style weight of a "style strength": 0 is the preset's weight, each step of 1 ten
    times more (or less) style."""
    return preset_weight * 10.0 ** float(strength)


@dataclasses.dataclass
class Run:
    """One run of one page (session): its stop token, its updates and its outcome."""

    stop: StopToken = dataclasses.field(default_factory=StopToken)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    updates: "queue.Queue" = dataclasses.field(default_factory=queue.Queue)
    folder: str = ""
    job: object = None
    latest: object = None
    curve: List[tuple] = dataclasses.field(default_factory=list)
    image: object = None
    result: object = None
    ending: str = ""
    files: tuple = (None, None)
    plan_seconds: float = 0.0
    delivered: object = None
    checkpoints: object = None


class App:
    """The page and its handlers.

    Args:
        base: The model options (`model`, `weights`, `device`, `precision`) every run uses.
        examples: name -> path of the example images (`gallery`).
        workdir: A folder for each run's files.
        preview_every: Send the image every this many iterations.
        networks: name -> path of the style networks offered (`networks_in`): the page
            names one, the server loads its own file.
    """

    def __init__(self, base: StyleConfig, examples: Dict[str, str], workdir: str,
                 preview_every: int = PREVIEW_EVERY, networks: Optional[Dict[str, str]] = None):
        self.base = base
        self.networks = dict(networks or {})
        self.examples = dict(examples)
        self.workdir = workdir
        self.preview_every = preview_every
        self.runs: Dict[str, Run] = {}

    # ------------------------------------------------------------------ settings and inputs

    def model_config(self, config: StyleConfig) -> StyleConfig:
        """The settings the feature model is looked up with: random weights are drawn once
        for the app, not per seed, so that the page's seed does not build a new model."""
        return config.replace(seed=None) if config.weights is None else config

    def config_of(self, preset_name, height, strength, preserve, max_evals, seed,
                  content_layers, style_layers, pooling, optimizer, tv_weight) -> StyleConfig:
        """The page's settings over the preset's, with the app's model options.

        Raises:
            ValueError: For a value `StyleConfig` refuses (naming the field).
        """
        start = preset(preset_name or "book").resolved()  # The page shows its layers.
        model = {name: getattr(self.base, name) for name in MODEL_FIELDS}
        return start.replace(
            height=_integer(height, "height"),
            style_weight=strength_to_weight(strength or 0.0, start.style_weight),
            preserve_color=None if preserve in (None, "", NO_COLOR) else preserve,
            max_evals=_integer(max_evals, "max_evals"),
            seed=None if seed in (None, "") else _integer(seed, "seed"),
            content_layers=_layers(content_layers, "content_layers"),
            style_layers=_layers(style_layers, "style_layers"),
            pooling=pooling, optimizer=optimizer, tv_weight=float(tv_weight), **model)

    def inputs_of(self, content_file, content_example, style_files, style_examples):
        """(content, styles): uploaded bytes, or example paths looked up by name.

        Raises:
            ValueError: If the content or every style is missing, or a name is unknown.
        """
        content = content_file if content_file is not None else self._example(content_example)
        styles = [f for f in (style_files or []) if f is not None]
        styles += [self._example(name) for name in (style_examples or [])]
        if content is None:
            raise ValueError("upload a content photo or pick an example. Received: content=None")
        if not styles:
            raise ValueError("upload a style image or pick one from the gallery. "
                             "Received: style=[]")
        return content, styles

    def network_inputs_of(self, content_file, content_example, style_files, style_examples,
                          network):
        """The content of a network's pass; the network is looked up by name among the
        server's own (never a client's file).

        Raises:
            ValueError: For an unknown network, a missing content, or styles given too.
        """
        if network not in self.networks:
            raise ValueError(f"no such network. Received: network={network!r}")
        if [f for f in (style_files or []) if f is not None] or style_examples:
            raise ValueError("a network paints its own style: pick a network or style images, "
                             f"not both. Received: network={network!r} and styles")
        content = content_file if content_file is not None else self._example(content_example)
        if content is None:
            raise ValueError("upload a content photo or pick an example. Received: content=None")
        return content

    def preview_content(self, content_file, content_example):
        """The content photo as the page shows it once picked: the upload, else the example."""
        source = content_file if content_file is not None else content_example
        if content_file is None and content_example in self.examples:
            source = self.examples[content_example]
        return thumbnail(source) if source else None

    def preview_styles(self, style_files, style_examples):
        """The picked styles as the page shows them: uploads, then examples, with names."""
        shown = [(thumbnail(f), f"upload {i}") for i, f in enumerate(style_files or [], 1)
                 if f is not None]
        shown += [(thumbnail(self.examples[n]), n) for n in (style_examples or [])
                  if n in self.examples]
        return [(image, name) for image, name in shown if image is not None]

    def _example(self, name):
        if not name:
            return None
        if name not in self.examples:  # Only the app's own table: never a client's path.
            raise ValueError(f"no such example image. Received: example={name!r}")
        return self.examples[name]

    # --------------------------------------------------------------------------- the run

    def start(self, session: str, job, folder: Optional[str] = None) -> Run:
        """Starts rendering `job` in a worker thread; returns its `Run`.

        Args:
            session: The page's session.
            job: The planned job.
            folder: The run's folder: the stopped run's to continue it (its checkpoint is
                there), or None for a new one (the page's previous run's is removed).
        """
        previous = self.runs.get(session)
        if previous is not None:
            previous.stop.request("stopped")
            # A run still going after the wait removes nothing: its own files are in use.
            if previous.done.wait(STOP_WAIT_SECONDS) and previous.folder != folder:
                shutil.rmtree(previous.folder, ignore_errors=True)
        run = Run(folder=folder or tempfile.mkdtemp(prefix="run_", dir=self.workdir), job=job)
        self.runs[session] = run
        threading.Thread(target=self._work, args=(run,), name="nst-render", daemon=True).start()
        return run

    def _work(self, run: Run) -> None:
        from nst_keras import delivery, render
        from nst_keras.errors import Interrupted, StyleTransferError, first_line
        from nst_keras.plan import NetworkJob

        job = run.job

        def on_stage(start):
            run.updates.put(("stage", start))

        def callback(progress):
            run.latest = progress
            run.curve.extend(curve_points(progress))
            # Only a reference: the page's thread encodes, and only every few iterations.
            run.updates.put(("progress", progress))

        # The run's checkpoint, in its folder: Stop writes it, Continue goes on from it
        # exactly (the same model in the same process, even with random weights).
        run.checkpoints = delivery.CheckpointFile(
            delivery.checkpoint_path(run.folder, "stylized", job.resume_key))
        try:
            if isinstance(job, NetworkJob):  # One pass: nothing to stop midway or continue.
                result = render.render_network(job, stop=run.stop)
            else:
                model = render.load_model(self.model_config(job.config), job.placement)
                result = render.render(job, callback, on_stage=on_stage, feature_model=model,
                                       stop=run.stop, checkpoints=run.checkpoints)
            if not result.stopped:
                run.checkpoints.remove()
            run.result, run.image = result, result.image
            run.ending = (f"done: one pass through the network in {result.seconds:.2f} s"
                          if isinstance(job, NetworkJob) else console.summary_line(
                              result, "stopped: the best image so far" if result.stopped
                              else "done"))
        except Interrupted:
            run.ending = "stopped before the first image"
        except StyleTransferError as error:
            run.image = error.best_image
            run.ending = f"error: {console.as_usage(error)}" + (
                "; the best image so far is kept" if run.image is not None else "")
        except Exception as error:  # One line on the page; the server keeps serving.
            run.ending = f"error: {type(error).__name__}: {first_line(error)}"
        finally:
            try:
                run.files = self._deliver(run)
            finally:
                run.done.set()
                run.updates.put(("done", None))

    def _deliver(self, run: Run) -> tuple:
        """Delivers the run into its folder (`delivery`: the image, the loss plot, the
        record); returns the paths of the image and the record."""
        import numpy as np

        from nst_keras import delivery
        from nst_keras.keys import bytes_digest

        if run.result is None:
            if run.image is None:
                return None, None
            # A failed run's least-bad image: the image only (there is no result to record).
            path = os.path.join(run.folder, "stylized.png")
            delivery.write_image(path, run.image)
            return path, None
        pixels = np.ascontiguousarray(run.result.image)
        extra = {"app": {"image_sha256": bytes_digest(pixels.tobytes()),
                         "image_shape": list(pixels.shape), "ending": run.ending,
                         "plan_seconds": round(run.plan_seconds, 3)}}
        outs = delivery.outputs(run.result, output="stylized.png", key=run.job.key,
                                inputs=run.job.sources, extra=extra)
        run.delivered = delivery.write_outputs(os.path.join(run.folder, "stylized.png"), outs,
                                               report=run.folder)
        return run.delivered.image, run.delivered.record

    # ----------------------------------------------------------------------- the handlers

    def stylize(self, content_file, content_example, style_files, style_examples, preset_name,
                height, strength, preserve, max_evals, seed, content_layers, style_layers,
                pooling, optimizer, tv_weight, network=None, request=None):
        """The Run button: a generator of the page's outputs (see `OUTPUTS`). With a
        `network` (a name from `--networks`), one pass through it instead of a run."""
        import gradio as gr

        from nst_keras.plan import plan, plan_network

        session = getattr(request, "session_hash", None) or "default"
        skip = gr.skip()
        try:
            config = self.config_of(preset_name, height, strength, preserve, max_evals, seed,
                                    content_layers, style_layers, pooling, optimizer,
                                    tv_weight)
            began = time.perf_counter()
            if network:
                content = self.network_inputs_of(content_file, content_example, style_files,
                                                 style_examples, network)
                job = plan_network(content, self.networks[network], config=config)
            else:
                content, styles = self.inputs_of(content_file, content_example, style_files,
                                                 style_examples)
                job = plan(content, styles, config=config)
        except ValueError as error:  # The command line's one line, on the page.
            yield (skip, f"error: {console.as_usage(error)}", skip, skip, skip, skip)
            return
        run = self.start(session, job)
        run.plan_seconds = time.perf_counter() - began
        notes = "".join(f"{console.as_usage(n)}\n" for n in job.notes)
        yield from self._stream(run, notes)

    def continue_run(self, request=None):
        """The Continue button: goes on with this page's stopped run, exactly where it
        stopped (its checkpoint: the optimiser's whole state), to the end of its budget."""
        import gradio as gr

        session = getattr(request, "session_hash", None) or "default"
        previous = self.runs.get(session)
        stopped = (previous is not None and previous.result is not None
                   and previous.result.stopped and previous.checkpoints is not None
                   and os.path.isfile(previous.checkpoints.path))
        if not stopped:
            skip = gr.skip()
            yield (skip, "nothing to continue: Continue goes on with a run that Stop ended",
                   skip, skip, skip, skip)
            return
        run = self.start(session, previous.job, folder=previous.folder)
        yield from self._stream(run, f"continuing from evaluation "
                                     f"{previous.result.evaluations}\n")

    def _stream(self, run: Run, notes: str):
        """The page's outputs while `run` goes: the start, the progress, the end."""
        import gradio as gr

        from nst_keras.media.images import deprocess

        job, skip = run.job, gr.skip()
        yield (None, f"{notes}setting up {job.size[1]}x{job.size[0]} ...", None,
               gr.DownloadButton(visible=False), None, None)
        sent = 0
        try:
            while True:
                kind, item = run.updates.get()
                if kind == "done":
                    break
                if kind == "stage":
                    # The starting image at once: the page shows an image as soon as the
                    # setup is done, not only after the first iteration's evaluations.
                    start = deprocess(item.problem.x0) if item.number == 1 else skip
                    yield (start, notes + _stage_text(item, job), skip, skip, skip, skip)
                    continue
                text = notes + _progress_text(item)
                if item.iteration == 1 or item.iteration - sent >= self.preview_every:
                    sent = item.iteration
                    yield (item.image, text, _curve_frame(run.curve), skip, skip, skip)
                elif run.updates.empty():  # Text only, and only when not behind.
                    yield (skip, text, skip, skip, skip, skip)
        finally:
            if not run.done.is_set():  # The page went away (closed, cancelled): stop.
                run.stop.request("stopped")
        yield self.final_outputs(run, notes)

    def final_outputs(self, run: Run, notes: str = "") -> tuple:
        """The outputs after a run: its image, how it ended, the plot, the downloads."""
        import gradio as gr
        import numpy as np

        png, record_path = run.files
        before_after = None
        if run.image is not None:
            from nst_keras.media.images import to_uint8  # A 16-bit upload is float.

            content = run.job.content
            if content.dtype != np.uint8:
                content = to_uint8(content)
            before_after = np.concatenate([content, run.image], axis=1)
        curve = run.curve
        if run.result is not None:  # Every evaluation, the last line search's included.
            curve = list(enumerate(run.result.losses, start=1))
        return (run.image, notes + run.ending, _curve_frame(curve),
                gr.DownloadButton(value=png, visible=png is not None), record_path,
                before_after)

    def stop(self, request=None):
        """The Stop button: ends this page's run as Ctrl-C does and offers its best image."""
        import gradio as gr

        run = self.runs.get(getattr(request, "session_hash", None) or "default")
        if run is None:
            return tuple(gr.skip() for _ in range(6))
        run.stop.request("stopped")
        run.done.wait(STOP_WAIT_SECONDS)
        return self.final_outputs(run)

    def on_preset(self, name):
        """The preset's values in the controls (the page's values override the preset)."""
        config = preset(name or "book").resolved()
        return (config.height, 0.0, config.preserve_color or NO_COLOR, config.max_evals,
                ",".join(config.content_layers), ",".join(config.style_layers),
                config.pooling, config.optimizer, config.tv_weight)

    # -------------------------------------------------------------------------- the page

    def blocks(self):
        """The Gradio `Blocks` of the page (queued: one run at a time)."""
        import gradio as gr

        d = StyleConfig().resolved()
        names = sorted(self.examples)
        with gr.Blocks(title="nst-keras", analytics_enabled=False,
                       delete_cache=(3600, 6 * 3600)) as demo:
            gr.Markdown("## Neural style transfer\nUpload a photo and one or more styles (or "
                        "pick examples), then Run. Stop keeps the best image so far.")
            with gr.Row():
                with gr.Column():
                    content_file = gr.File(label="Content photo", type="binary",
                                           elem_id="content")
                    content_example = gr.Dropdown([""] + names, value="",
                                                  label="or an example photo",
                                                  elem_id="content_example")
                    # What was picked, as pictures (an upload alone shows its file name).
                    content_preview = gr.Image(label="photo", type="numpy", format="png",
                                               interactive=False, height=160,
                                               elem_id="content_preview")
                    style_files = gr.File(label="Style image(s)", type="binary",
                                          file_count="multiple", elem_id="style")
                    style_examples = gr.Dropdown(names, value=[], multiselect=True,
                                                 label="or styles from the gallery",
                                                 elem_id="style_examples")
                    style_preview = gr.Gallery(label="styles", columns=4, height=160,
                                               allow_preview=False, elem_id="style_preview")
                    network = gr.Dropdown([""] + sorted(self.networks), value="",
                                          label="or a trained network (one pass, no styles)",
                                          elem_id="network", visible=bool(self.networks))
                    if names:
                        gr.Gallery([(self.examples[n], n) for n in names], label="gallery",
                                   columns=4, height=200, allow_preview=False)
                with gr.Column():
                    preset_name = gr.Dropdown(sorted(PRESETS), value="book", label="preset",
                                              elem_id="preset")
                    height = gr.Number(d.height, precision=0, label="height (pixels)",
                                       elem_id="height")
                    strength = gr.Slider(-4, 4, value=0, step=0.5, elem_id="strength",
                                         label="style strength: 0 is the preset's style "
                                               "weight, +1 ten times more style")
                    preserve = gr.Dropdown([NO_COLOR, *COLOR_MODES], value=NO_COLOR,
                                           label="preserve colour", elem_id="preserve")
                    max_evals = gr.Number(d.max_evals, precision=0, label="evaluations",
                                          elem_id="evals")
                    seed = gr.Number(None, precision=0, label="seed (empty: random)",
                                     elem_id="seed")
                    with gr.Accordion("advanced", open=False):
                        content_layers = gr.Textbox(",".join(d.content_layers),
                                                    label="content layers", elem_id="clayers")
                        style_layers = gr.Textbox(",".join(d.style_layers),
                                                  label="style layers", elem_id="slayers")
                        pooling = gr.Dropdown(list(POOLINGS), value=d.pooling, label="pooling")
                        optimizer = gr.Dropdown(list(OPTIMIZERS), value=d.optimizer,
                                                label="optimiser")
                        tv_weight = gr.Number(d.tv_weight, label="total-variation weight")
            with gr.Row():
                run_button = gr.Button("Run", variant="primary", elem_id="run")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
                continue_button = gr.Button("Continue", elem_id="continue")
            status = gr.Textbox(label="progress", interactive=False, elem_id="status")
            with gr.Row():
                result = gr.Image(label="result", type="numpy", format="png",
                                  interactive=False, elem_id="result", height=320)
                curve = gr.LinePlot(x="evaluation", y="log10 loss", label="loss",
                                    elem_id="curve")
            with gr.Row():
                png = gr.DownloadButton("Download PNG", visible=False, elem_id="dl_png")
                record_file = gr.File(label="run record (JSON)", interactive=False,
                                      elem_id="dl_json")
            before_after = gr.Image(label="before / after", type="numpy", format="png",
                                    interactive=False, elem_id="before_after")
            inputs = [content_file, content_example, style_files, style_examples, preset_name,
                      height, strength, preserve, max_evals, seed, content_layers,
                      style_layers, pooling, optimizer, tv_weight, network]
            outputs = [result, status, curve, png, record_file, before_after]

            def stylize(content_file, content_example, style_files, style_examples,
                        preset_name, height, strength, preserve, max_evals, seed,
                        content_layers, style_layers, pooling, optimizer, tv_weight,
                        network, request: gr.Request):  # Gradio passes the request by type.
                yield from self.stylize(content_file, content_example, style_files,
                                        style_examples, preset_name, height, strength,
                                        preserve, max_evals, seed, content_layers,
                                        style_layers, pooling, optimizer, tv_weight,
                                        network=network or None, request=request)

            def stop(request: gr.Request):
                return self.stop(request)

            def continue_run(request: gr.Request):
                yield from self.continue_run(request)

            event = run_button.click(stylize, inputs, outputs, concurrency_limit=1,
                                     api_name="stylize")
            # queue=False: Stop runs at once, even while the queue is busy; cancels: a page
            # still waiting in the queue leaves it.
            stop_button.click(stop, None, outputs, cancels=[event], queue=False,
                              api_name="stop")
            continue_button.click(continue_run, None, outputs, concurrency_limit=1,
                                  api_name="continue")
            for picker in (content_file, content_example):
                picker.change(self.preview_content, [content_file, content_example],
                              content_preview, queue=False)
            for picker in (style_files, style_examples):
                picker.change(self.preview_styles, [style_files, style_examples],
                              style_preview, queue=False)
            preset_name.change(self.on_preset, preset_name,
                               [height, strength, preserve, max_evals, content_layers,
                                style_layers, pooling, optimizer, tv_weight], queue=False)
        demo.queue(default_concurrency_limit=1, max_size=16)
        return demo


def _integer(value, field: str) -> int:
    if value is None or float(value) != int(float(value)):
        raise ValueError(f"`{field}` must be an integer. Received: {field}={value!r}")
    return int(float(value))


def _layers(text, field: str):
    layers = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    return layers


def _progress_text(progress) -> str:
    """The page's progress line: what the engine computed (`Progress.rate`, `.eta`)."""
    stage = f"stage {progress.stage}/{progress.stages} · " if progress.stages > 1 else ""
    eta = "?" if progress.eta is None else f"{progress.eta:.0f} s"
    return (f"{stage}iteration {progress.iteration} · evaluations {progress.evaluations}/"
            f"{progress.max_evals} · loss {progress.loss:.4g} · {progress.rate:.2f} "
            f"evaluations/s · ETA {eta}")


def _stage_text(start, job) -> str:
    """The command line's "Running ..." line, and the stage's setup time."""
    return (f"{console.running_line(job.config.optimizer, start)} Setup "
            f"{start.problem.setup_seconds:.1f} s.")


def thumbnail(source, size: int = 256):
    """An image file (bytes or a path) as an RGB uint8 array at most `size` pixels wide and
    high, for a preview; None when it cannot be read (the run then says why, in one line)."""
    import io

    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray))
                        else source) as opened:
            if opened.size[0] * opened.size[1] > (Image.MAX_IMAGE_PIXELS or float("inf")):
                return None  # Too large to decode for a preview; the plan refuses it.
            opened.draft("RGB", (size, size))  # A JPEG decodes at a reduced scale.
            opened.thumbnail((size, size))
            return np.asarray(opened.convert("RGB"))
    except Exception:  # Pillow raises many kinds; each means "no preview".
        return None


def curve_points(progress) -> List[tuple]:
    """(evaluation, loss) of every evaluation a `Progress` reports, so the plot starts at
    evaluation 1 (an iteration's line search may spend several before its report)."""
    losses = progress.evaluation_losses or (progress.loss,)
    first = progress.evaluations - len(losses) + 1
    return [(first + i, loss) for i, loss in enumerate(losses)]


def _curve_frame(curve):
    import math

    import pandas as pd

    rows = [(e, math.log10(loss)) for e, loss in curve if loss > 0]
    return pd.DataFrame(rows, columns=["evaluation", "log10 loss"])
