"""The run record: every setting, the versions, the hardware and each iteration, as JSON; and
the loss plot.

`run_record(result)` is a plain dict (JSON-ready); `loss_figure(result)` a matplotlib
`Figure` (no pyplot state, so it works in any backend and thread); `write_report` writes
both. The command line (`--report DIR`) and every figure panel use the same functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from typing import Optional, Sequence

#: The record's format; bumped when a key changes meaning.
RECORD_VERSION = 1


def versions() -> dict:
    """The versions of nst_keras, Python and the libraries that decide the numbers."""
    import keras
    import numpy
    import scipy
    import tensorflow

    from nst_keras import __version__

    return {
        "nst_keras": __version__, "python": platform.python_version(),
        "tensorflow": tensorflow.__version__, "keras": keras.__version__,
        "numpy": numpy.__version__, "scipy": scipy.__version__,
    }


def settings_dict(config) -> dict:
    """A `StyleConfig` as JSON-ready values (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(config).items()}


def run_record(result, *, argv: Optional[Sequence[str]] = None, inputs: Optional[dict] = None,
               output: Optional[str] = None, extra: Optional[dict] = None) -> dict:
    """Everything needed to compare or repeat a run, as a JSON-ready dict.

    Args:
        result: A `render.Result`.
        argv: The command line, if the run came from one.
        inputs: What the images were (e.g. {"content": path, "styles": [paths]}).
        output: Where the image was written.
        extra: Keys put first (a figure panel's place, a batch job's name and hash).

    Returns:
        A dict: settings (after presets), versions, device, precision, hardware (CPU flags
        or GPU name), the final losses (total, by kind, by term), iterations, evaluations,
        timings, the stop reason, every iteration's record and every evaluation's loss and
        time, the inputs, the output and the command line.
    """
    from nst_keras import runtime

    height, width = (int(d) for d in result.image.shape[:2])
    return {
        **(extra or {}),
        "record_version": RECORD_VERSION,
        "settings": settings_dict(result.config),
        "versions": versions(),
        "device": result.device,
        "precision": result.precision,
        "hardware": result.hardware,
        "cpu_flags": sorted(runtime.cpu_flags()),
        "size": [height, width],
        "loss": result.loss,
        "content_loss": result.content_loss,
        "style_loss": result.style_loss,
        "tv_loss": result.tv_loss,
        "kind_losses": dict(result.kind_losses),
        "layer_losses": dict(result.layer_losses),
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
        "setup_seconds": round(result.setup_seconds, 3),
        "seconds_per_evaluation": round(result.seconds / max(1, result.evaluations), 4),
        "stop_reason": result.stop_reason,
        "stages": [dict(stage) for stage in result.stages],
        "history": [dict(h) for h in result.history],
        "losses": list(result.losses),
        "times": [round(t, 4) for t in result.times],
        "inputs": inputs or {},
        "output": output,
        "argv": list(argv) if argv is not None else None,
    }


def loss_figure(result):
    """The total loss and each weighted term against evaluations, log scale.

    Returns:
        A `matplotlib.figure.Figure` (render it with `savefig`).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    ax = figure.add_subplot()
    evaluations = [h["evaluations"] for h in result.history]
    ax.plot(range(1, len(result.losses) + 1), result.losses, lw=0.6, alpha=0.4,
            color="black", label="total, every evaluation")
    if result.history:
        ax.plot(evaluations, [h["loss"] for h in result.history], lw=2, color="black",
                label="total")
        for name in result.history[0]["terms"]:
            values = [h["terms"][name] for h in result.history]
            if any(v > 0 for v in values):
                ax.plot(evaluations, values, lw=1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("loss-and-gradient evaluations")
    ax.set_ylabel("weighted loss")
    config = result.config
    ax.set_title(f"{config.optimizer}, {result.precision}, {result.image.shape[1]}x"
                 f"{result.image.shape[0]}: final loss {result.loss:.4g}", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def write_report(result, folder: str, *, stem: str = "run", argv=None, inputs=None,
                 output=None, extra=None) -> tuple:
    """Writes `STEM.json` (`run_record`) and `STEM-loss.png` (`loss_figure`) into `folder`.

    Both are written atomically, the plot first; the folder is created if missing.

    Returns:
        (json_path, plot_path).
    """
    os.makedirs(folder, exist_ok=True)
    json_path = os.path.join(folder, f"{stem}.json")
    plot_path = os.path.join(folder, f"{stem}-loss.png")
    # The plot first: a record on disk means its plot is there too.
    write_plot(plot_path, result)
    write_json(json_path, run_record(result, argv=argv, inputs=inputs, output=output,
                                     extra=extra))
    return json_path, plot_path


def write_plot(path: str, result) -> None:
    """Writes `loss_figure(result)` as a PNG atomically."""
    from nst_keras.images import atomic_write

    with atomic_write(path) as f:
        loss_figure(result).savefig(f, format="png")


def write_json(path: str, data) -> None:
    """Writes `data` as indented JSON atomically (see `images.atomic_write`)."""
    from nst_keras.images import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
