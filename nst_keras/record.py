"""The run record: every setting, the versions, the hardware and each iteration, as JSON; and
the loss plot.

`run_record(result)` is a plain dict (JSON-ready); `loss_figure(result)` a matplotlib
`Figure` (no pyplot state, so it works in any backend and thread), `loss_plot_png` its
bytes; `clip_figure` a video's one plot. Nothing here writes a file: `delivery` does, for
every front-end (`delivery.write_report` is the API's way to write a record and its plot).
"""

from __future__ import annotations

import dataclasses
import platform
from typing import Mapping, Optional, Sequence

#: The record's format; bumped when a key changes meaning. 2: every record has `job_key`
#: and `stopped`; a video's frames are JSON Lines (`frames.jsonl`), one per frame.
RECORD_VERSION = 2


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
               output: Optional[str] = None, extra: Optional[dict] = None,
               key: Optional[str] = None) -> dict:
    """Everything needed to compare or repeat a run, as a JSON-ready dict.

    Every front-end's record is this one (through `delivery`), with the same fields.

    Args:
        result: A `render.Result`.
        argv: The command line, if the run came from one.
        inputs: What the images were (e.g. {"content": path, "styles": [paths]}).
        output: Where the image was written.
        extra: Keys put first (a figure panel's place, a batch job's name).
        key: The job key (`keys.job_key`): what decides the image, hashed.

    Returns:
        A dict: settings (after presets), versions, device, precision, hardware (CPU flags
        or GPU name), the final losses (total, by kind, by term), iterations, evaluations,
        timings, the stop reason and whether a stop request ended the run (`stopped`), the
        job key, every iteration's record and every evaluation's loss and
        time, the inputs, the output and the command line.
    """
    from nst_keras.engine import runtime

    height, width = (int(d) for d in result.image.shape[:2])
    return {
        **(extra or {}),
        "record_version": RECORD_VERSION,
        "job_key": key,
        "settings": settings_dict(result.config),
        "versions": versions(),
        "device": result.device,
        "precision": result.precision,
        "hardware": result.hardware,
        "cpu_flags": sorted(runtime.cpu_flags()),
        "size": [height, width],
        # None, not NaN (which is not JSON), for a network's pass: it has no loss.
        "loss": _finite(result.loss),
        "content_loss": _finite(result.content_loss),
        "style_loss": _finite(result.style_loss),
        "tv_loss": _finite(result.tv_loss),
        "kind_losses": dict(result.kind_losses),
        "layer_losses": dict(result.layer_losses),
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
        "setup_seconds": round(result.setup_seconds, 3),
        "seconds_per_evaluation": round(result.seconds / max(1, result.evaluations), 4),
        "stop_reason": result.stop_reason,
        "stopped": getattr(result, "stopped", None),
        "resumed_from": getattr(result, "resumed_from", 0),
        "stages": [dict(stage) for stage in result.stages],
        "history": [dict(h) for h in result.history],
        "losses": list(result.losses),
        "times": [round(t, 4) for t in result.times],
        "inputs": inputs or {},
        "output": output,
        "argv": list(argv) if argv is not None else None,
    }


def _finite(value) -> Optional[float]:
    """A float, or None when it is NaN (no loss)."""
    return None if value != value else value


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


def training_figure(losses: Sequence[float], kinds: Mapping[str, Sequence[float]],
                    network_record: Mapping):
    """A style network's training: the total loss and each kind's weighted loss against
    steps, log scale, each smoothed over 1 % of the steps beside its raw values.

    Args:
        losses: The total loss of every step.
        kinds: Each kind's weighted loss of every step (`training.Trainer.kind_losses`).
        network_record: The network's record (`StyleNetwork.record`), for the title.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    ax = figure.add_subplot()
    window = max(1, len(losses) // 100)

    def smooth(values):
        values = np.asarray(values, np.float64)
        if window == 1 or len(values) < window:
            return values
        return np.convolve(values, np.ones(window) / window, mode="valid")

    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.3, color="black")
    ax.plot(steps[window - 1:], smooth(losses), lw=2, color="black", label="total")
    for name, values in kinds.items():
        if len(values) == len(losses) and any(v > 0 for v in values):
            ax.plot(steps[window - 1:], smooth(values), lw=1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training steps")
    ax.set_ylabel("weighted loss (batch mean)")
    style = (network_record.get("style") or {}).get("name", "?")
    ax.set_title(f"network for {style}: batch {network_record.get('batch_size')} of "
                 f"{network_record.get('size')} px, {network_record.get('precision')}",
                 fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def figure_png(figure) -> bytes:
    """A matplotlib `Figure` as PNG bytes."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_plot_png(result) -> bytes:
    """`loss_figure(result)` as PNG bytes."""
    return figure_png(loss_figure(result))


def clip_figure(frames: Sequence[dict]):
    """A video's one loss plot: each frame's final loss, and its terms, against the frame.

    Args:
        frames: The frames' records (`number`, `loss`, `kind_losses`), in order.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    ax = figure.add_subplot()
    numbers = [f["number"] for f in frames]
    ax.plot(numbers, [f["loss"] for f in frames], lw=2, color="black", label="total")
    kinds = dict.fromkeys(k for f in frames for k in (f.get("kind_losses") or {}))
    for kind in kinds:
        values = [(f.get("kind_losses") or {}).get(kind, 0.0) for f in frames]
        if any(v > 0 for v in values):
            ax.plot(numbers, values, lw=1.2, label=kind)
    ax.set_yscale("log")
    ax.set_xlabel("frame")
    ax.set_ylabel("final weighted loss")
    ax.set_title(f"{len(frames)} frames", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def network_record(config, trainer, style_rgb: np.ndarray, *,
                   style_name: str, style_sha256: str, photos: int, precision: str,
                   hardware: str, seconds: float, extra: Optional[dict] = None) -> dict:
    """The record a trained network carries (`StyleNetwork.record`; the command line's and
    the Python API's alike).

    Args:
        config: The training's settings.
        trainer: The finished training.
        style_rgb: The style image (a thumbnail goes in).
        style_name, style_sha256: Its name and the SHA-256 of its bytes.
        photos: How many photos it was trained on.
        precision: VGG's precision in training (the network itself trains in float32).
        hardware: One line naming the machine.
        seconds: The training's wall time in this process.
        extra: More JSON-ready keys.
    """
    from nst_keras.engine import transformer

    return {
        "kind": transformer.NETWORK_KIND,
        "style": {"name": style_name, "sha256": style_sha256,
                  "thumbnail": transformer.thumbnail_base64(style_rgb)},
        "settings": settings_dict(config.loss_config),
        "steps": trainer.step, "size": config.size, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "width": config.width, "zoom": config.zoom,
        "seed": trainer.seed, "seed_given": config.style.seed is not None,
        "photos": photos, "precision": precision, "network_precision": "float32",
        "hardware": hardware, "seconds": round(seconds, 3),
        "final_loss": trainer.losses[-1] if trainer.losses else None,
        "final_losses": {k: v[-1] for k, v in trainer.kind_losses.items() if v},
        "versions": versions(),
        **(extra or {}),
    }
