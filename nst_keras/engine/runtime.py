"""Where and in what precision a run computes: device and precision scopes, the memory check.

Machines of one kind differ in CPU here (some have AMX-BF16 or AVX512-BF16, some only AVX2),
so the choice of precision is made from the CPU's flags (`/proc/cpuinfo`), never assumed,
and every run says what it used (`describe_hardware`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import sys
from typing import FrozenSet, Optional

from nst_keras.engine import features, normalize

#: The CPU flags that decide (or explain) the speed of bfloat16 and float32 convolutions.
RELEVANT_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")

#: Flags with which oneDNN runs bfloat16 convolutions natively. Measured here on a CPU with
#: AVX512-BF16 and no AMX: VGG19's forward + input gradient at 400x533 takes 0.51x the float32
#: time (the objective 0.54x), and in time to quality at 400x300 bfloat16 reached 1.1x the
#: 1000-evaluation float32 reference in 73 s against float32's 110, its judged loss 0.75 %
#: above float32's at the same 300 evaluations: it gains more per second than it loses, so
#: `auto` picks it (see docs/benchmarks.md). Without either flag bfloat16 is
#: emulated and slower.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_info() -> tuple:
    """(model name, frozenset of the relevant flags) of this machine's CPU, from /proc/cpuinfo.

    Unknown values (no /proc, another OS) give ("unknown CPU", frozenset()).
    """
    name, flags = "unknown CPU", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown CPU":
                    name = " ".join(value.split())
                elif key == "flags" and not flags:
                    flags = frozenset(value.split()) & frozenset(RELEVANT_CPU_FLAGS)
    except OSError:
        pass
    return name, flags


def cpu_flags() -> FrozenSet[str]:
    """The relevant flags (`RELEVANT_CPU_FLAGS`) this CPU has."""
    return cpu_info()[1]


def gpu_names() -> list:
    """The names of the GPUs TensorFlow sees (empty on a CPU-only machine)."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


def resolve_device(device: str) -> str:
    """`"cpu"` or `"gpu"`: what `device` (`"auto"`, `"cpu"` or `"gpu"`) means on this machine.

    Raises:
        ValueError: If `"gpu"` is asked for and TensorFlow sees none.
    """
    if device == "cpu":
        return "cpu"
    visible = bool(gpu_names())
    if device == "gpu" and not visible:
        raise ValueError(
            "no GPU is visible to TensorFlow on this machine; use `device` cpu or auto. "
            "Received: device='gpu'"
        )
    return "gpu" if visible else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """`"float32"` or `"bfloat16"`: what `precision` means on `device` (`"cpu"` or `"gpu"`).

    `"auto"` is bfloat16 on a CPU with AMX-BF16 or AVX512-BF16 and float32 elsewhere. On a
    GPU it is float32: bfloat16 has not been measured on a GPU with TensorFlow here.
    """
    if precision != "auto":
        return precision
    if device == "cpu" and cpu_flags() & frozenset(BF16_CPU_FLAGS):
        return "bfloat16"
    return "float32"


def describe_hardware(device: str) -> str:
    """One line naming the hardware a run uses: the GPU's name, or the CPU and its flags."""
    if device == "gpu":
        names = gpu_names()
        return f"GPU {names[0] if names else 'unknown'}"
    name, flags = cpu_info()
    shown = " ".join(f for f in RELEVANT_CPU_FLAGS if f in flags) or "none of " + "/".join(
        RELEVANT_CPU_FLAGS
    )
    return f"CPU {name} ({os.cpu_count()} cores; {shown})"


def device_scope(device: str):
    """A `tf.device` scope for `"cpu"` or `"gpu"` (resolved names, see `resolve_device`)."""
    import tensorflow as tf

    return tf.device("/GPU:0" if device == "gpu" else "/CPU:0")


#: Address space TensorFlow takes before any image (measured: ~2.2 GB of VmSize on TF 2.21).
_TF_ADDRESS_SPACE = 2.5 * 2**30

#: Resident memory of the process before any image: Python, TensorFlow, Keras, the run's
#: code, as a run through the command line has it (fitted with `BYTES_PER_ACTIVATION`).
BASE_BYTES = 940_000_000

#: Peak bytes per activation of one loss-and-gradient evaluation, by (precision, padding is
#: not zeros): the forward values kept for the backward pass, their gradients, oneDNN's
#: reorders, the float32 copies the losses take, and with edge padding the padded copy of
#: every conv's input. Edge padding: fitted (`benchmarks/memory.py fit`, every constant of
#: this block free, see docs/benchmarks.md, Memory) to the peak resident memory (VmHWM) of 12 runs
#: through the command line on TF 2.21 / Keras 3.15, CPU, VGG19 to block5_conv2, 4:3
#: images: untiled 512 to 1856 px, tiled 512 and 1024 px, and the largest tiled runs of
#: this machine (L-BFGS at 4358 px, Adam at 5093 px), least squares, plus 3 % (6.9 / 5.57
#: fitted). The earlier fit (6.0 / 4.6) held L-BFGS-B's arrays at 200 bytes a value, which
#: put the largest L-BFGS run's estimate 39 % above its peak, and the tiled whole-image
#: arrays at 32, which let a tiled Adam run at 8002 px be killed by the kernel (its
#: estimate 23.05 GiB; it was killed at 23.2 GiB resident, still growing). Zero padding: the
#: earlier fit (ru_maxrss, 256-768 px), not re-measured.
BYTES_PER_ACTIVATION = {
    ("float32", False): 7.1, ("bfloat16", False): 4.7,
    ("float32", True): 7.1, ("bfloat16", True): 5.7,
}


#: Bytes per pixel value (H x W x 3) that a tiled evaluation keeps at the whole image's size
#: besides the other parts: the gradient the tiles add into (float32), its tensor copy, the
#: whole image as a tensor and total variation's differences and their gradients on the
#: whole image. Fitted with `BYTES_PER_ACTIVATION` (44.6, plus 3 %); the two largest tiled
#: runs (75.97 and 103.8 million values) are what fix it.
TILED_BYTES_PER_VALUE = 46

#: A tile's bytes per activation as a share of a whole image's (`BYTES_PER_ACTIVATION`), by
#: precision: fitted with it (a tile's bytes per activation fitted apart: 7.04 in float32,
#: 4.12 in bfloat16). A whole-image evaluation's coefficient includes its whole-image
#: temporaries, which in a tiled run `TILED_BYTES_PER_VALUE` and the images count. The
#: float32 share rests on one tiled run (Adam, 1024 px).
TILE_ACTIVATION_SHARE = {"float32": 1.02, "bfloat16": 0.74}

#: Bytes per pixel value of L-BFGS-B besides its history: SciPy's work arrays (5 float64),
#: x and the gradient, the bounds, the int32 work arrays, and the float64 copies of the
#: image and gradient the objective hands SciPy. Fitted with `BYTES_PER_ACTIVATION` (89,
#: plus 3 %); the largest L-BFGS run (4358 px, 76 million values) is what fixes it.
LBFGS_BYTES_PER_VALUE = 92

#: Bytes per activation of a forward pass alone (a style image's targets), by (precision,
#: padding is not zeros): Keras keeps every layer's output until the call returns (and with
#: edge padding every padded conv input); the style layers' outputs are cast to float32.
#: bfloat16 with edge padding fitted with `BYTES_PER_ACTIVATION` (3.36, plus 3%) to the runs
#: with a style of 4x the content's pixels (untiled) and height (tiled); float32 scaled from
#: it as `BYTES_PER_ACTIVATION`; zero padding a guess (the outputs without the padded
#: copies), not measured.
FORWARD_BYTES_PER_ACTIVATION = {
    ("float32", False): 4.5, ("bfloat16", False): 2.5,
    ("float32", True): 4.5, ("bfloat16", True): 3.5,
}

#: Bytes per pixel value of a style image at its network size while its targets are
#: computed: the resized uint8 array, its preprocessed float32 copy and that as a tensor.
STYLE_BYTES_PER_VALUE = 9

#: Bytes per pixel value a video frame adds (`objective.Temporal`): the previous frame and
#: its result, the two optical flows and the reliability weights, the warped result and the
#: start image (float32), the temporal target preprocessed, and the term's difference and
#: gradient in each evaluation. Counted from the arrays, not fitted.
TEMPORAL_BYTES_PER_VALUE = 40


def _seen(height: int, width: int, layers, model: str, tile: Optional[int],
          patch_layers=()) -> tuple:
    """(h, w) the network sees at once: the whole image, or the largest tile of
    `tiling.layout` (the one place the core and halo are worked out)."""
    if tile is None:
        return height, width
    from nst_keras.engine import tiling

    return tiling.layout(height, width, layers, model, tile,
                         patch_layers=patch_layers).largest


def estimate_style(height: int, width: int, config, precision: str,
                   tile: Optional[int] = None) -> int:
    """The estimated bytes of one style image's targets at its network size.

    Args:
        height, width: The style image's size as the network sees it (`style_height`,
            `style_scale` or the content's size, at the stage).
        config: The settings (layers, model, padding).
        precision: `"float32"` or `"bfloat16"`.
        tile: Computed tile by tile (`tiling.tiled_targets`) in tiles of this core size;
            None: the whole image in one forward pass.

    Returns:
        The resized array and its copies (`STYLE_BYTES_PER_VALUE` per value) plus one
        forward pass's activations (`FORWARD_BYTES_PER_ACTIVATION`) of the whole image or of
        its largest tile.
    """
    config = config.resolved()
    layers = config.content_layers + config.style_layers
    seen_h, seen_w = _seen(height, width, layers, config.model, tile)
    forward = FORWARD_BYTES_PER_ACTIVATION[precision, config.padding != "zeros"]
    return int(STYLE_BYTES_PER_VALUE * height * width * 3
               + forward * features.activation_floats(seen_h, seen_w, layers, config.model))


def estimate_memory(height: int, width: int, config, precision: str,
                    tile: Optional[int] = None, *, styles=(), temporal: bool = False) -> dict:
    """The estimated peak resident memory of a run at one size, in bytes, by part.

    Args:
        height, width: The generated image's size.
        config: The settings (layers, model, optimiser and its memory).
        precision: `"float32"` or `"bfloat16"` (resolved).
        tile: Evaluate in tiles of this core size (see `nst_keras.engine.tiling`); None: untiled.
        styles: (height, width) of each style image as the network sees it; their targets
            are computed whole, or tile by tile with `tile` (`estimate_style`).
        temporal: A video frame's temporal term and the previous frame
            (`TEMPORAL_BYTES_PER_VALUE` per value).

    Returns:
        A dict: `base` (Python and TensorFlow), `weights` (float32 kernels, plus their
        bfloat16 copies in bfloat16), `activations` (one evaluation's,
        `BYTES_PER_ACTIVATION` each, by precision and padding), `history` (L-BFGS-B's 2 m
        correction vectors, float64 per pixel value; 0 for Adam and SGD), `optimizer`
        (L-BFGS-B's work arrays and SciPy's copies, `LBFGS_BYTES_PER_VALUE`; Adam/SGD: the
        variable and 2 moments in float32, and with `ema` the float64 average), `images` (the image, its gradient and bounds as float64
        and float32 copies), `tiling` (with `tile`: `TILED_BYTES_PER_VALUE` per value),
        `temporal` (with `temporal`), `styles` and `total` (their sum). The style targets
        are computed before the optimiser's arrays exist, so `styles` is what their peak
        adds beyond an evaluation's (activations, history, optimizer, tiling and temporal),
        usually 0. With `tile` the activations are those of the largest tile (core + 2
        halos, the halo derived from the layers; `TILE_ACTIVATION_SHARE` of the bytes per
        activation when it is smaller than the image; the halo widened for MRF layers); the
        other parts do not shrink. With the MRF style loss an `mrf` part is added
        (`mrf_memory`).
    """
    config = config.resolved()
    layers = config.content_layers + config.style_layers
    patch_layers = (tuple(config.style_layers)
                    if getattr(config, "style_loss", "gram") == "mrf" else ())
    n = height * width * 3
    weights = features.weight_count(layers, config.model) * (6 if precision == "bfloat16" else 4)
    seen_h, seen_w = _seen(height, width, layers, config.model, tile, patch_layers)
    parts = {
        "base": BASE_BYTES,
        "weights": weights,
        "activations": int(BYTES_PER_ACTIVATION[precision, config.padding != "zeros"]
                           * (1 if (seen_h, seen_w) == (height, width)
                              else TILE_ACTIVATION_SHARE[precision])
                           * features.activation_floats(seen_h, seen_w, layers, config.model)),
        "history": 2 * config.lbfgs_memory * 8 * n if config.optimizer == "lbfgs" else 0,
        "optimizer": (LBFGS_BYTES_PER_VALUE * n if config.optimizer == "lbfgs"
                      else 3 * 4 * n + (8 * n if config.ema is not None else 0)),  # EMA: float64.
        "images": 6 * 8 * n,
    }
    if tile is not None:
        parts["tiling"] = TILED_BYTES_PER_VALUE * n
    if patch_layers:
        parts["mrf"] = mrf_memory(height, width, (seen_h, seen_w), config)
    if temporal:
        parts["temporal"] = TEMPORAL_BYTES_PER_VALUE * n
    evaluation = sum(parts[k] for k in ("activations", "history", "optimizer", "tiling",
                                        "temporal") if k in parts)
    setup = max([estimate_style(h, w, config, precision, tile) for h, w in styles], default=0)
    parts["styles"] = max(0, setup - evaluation)
    parts["total"] = sum(parts.values())
    return parts


def mrf_memory(height: int, width: int, seen, config) -> int:
    """The MRF loss's own bytes: at each of its layers, the style's patches (raw and
    normalised) and the generated patches (the patches, their matches and the gradient,
    over the tile `seen` = (h, w) when tiled), 9 C float32 each, plus one chunk of the
    similarity matrix (`features.MRF_CHUNK_BYTES`; unchunked it would be patches x style
    patches floats: 0.66 GB at 400 x 533 on relu3_1 with every style patch, a quarter with
    the style's every 2nd). The style is taken at the generated image's size times the largest `style_scale` (or `style_height` / `height`)."""
    config = config.resolved()
    scale = 1.0
    if config.style_scale is not None:
        scale = max(config.style_scale)
    elif config.style_height is not None:
        scale = config.style_height / max(1, height)
    total = 0
    for layer in dict.fromkeys(config.style_layers):
        h, w, c = features.layer_shape(layer, height, width, config.model)
        sh, sw, _ = features.layer_shape(layer, *seen, config.model)
        # The style's patches every `MRF_STYLE_STRIDE`-th row and column (CNNMRF's).
        style = (features.strided_count(round(h * scale) - 2, features.MRF_STYLE_STRIDE)
                 * features.strided_count(round(w * scale) - 2, features.MRF_STYLE_STRIDE))
        total += 4 * 9 * c * (2 * style + 3 * max(0, sh - 2) * max(0, sw - 2))
        total += min(features.MRF_CHUNK_BYTES, 4 * style * max(0, sh - 2) * max(0, sw - 2))
    return total


def largest_height(config, aspect: float, precision: str, budget: int,
                   tile: Optional[int] = None, *, styles=None, temporal: bool = False) -> int:
    """The largest height whose estimated peak (`estimate_memory`) fits in `budget` bytes.

    Args:
        config: The settings.
        aspect: Width over height of the content image.
        precision: `"float32"` or `"bfloat16"`.
        budget: Bytes available for the whole process.
        tile: Evaluate in tiles of this core size (None: untiled).
        styles: A function of the height giving the styles' (height, width) at that size
            (see `estimate_memory`), or None.
        temporal: Count a video frame's temporal part.

    Returns:
        The height, or 0 if not even 1 pixel fits.
    """
    low, high = 0, 1
    fits = lambda h: estimate_memory(h, max(1, round(h * aspect)), config, precision, tile,
                                     styles=styles(h) if styles else (),
                                     temporal=temporal)["total"] <= budget
    while fits(high) and high < 2**16:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


#: The GPU budget when neither TensorFlow nor `nvidia-smi` reports the device's memory.
GPU_FALLBACK_BYTES = 16 * 2**30


def memory_budget(device: str) -> int:
    """The bytes a run may use: on a GPU the memory TensorFlow may allocate on the first one
    (`gpu_memory_bytes`), or on a CPU what is available now plus this process's own resident
    memory (TensorFlow is already counted in the estimate), under any address-space limit."""
    if device == "gpu":
        return gpu_memory_bytes() or GPU_FALLBACK_BYTES
    available, headroom = available_memory_bytes()
    resident = _resident_bytes()
    limits = [a + resident for a in (available,) if a]
    if headroom is not None:
        limits.append(int(headroom / 1.5) + BASE_BYTES)
    return min(limits) if limits else 8 * 2**30


def gpu_memory_bytes() -> Optional[int]:
    """The bytes TensorFlow may allocate on the first GPU, None where nothing reports them.

    TensorFlow 2.21's public calls do not say: `tf.config.experimental.get_memory_info`
    has only `current` and `peak`, `get_device_details` only the name and compute
    capability. The device's `memory_limit` (`device_lib.list_local_devices`) does: the
    limit of its allocator, which is the free memory when TensorFlow first takes the GPU,
    less what it reserves, or the `memory_limit` of a logical device configured by the
    user. Listing the devices initialises the GPU, which the run does next anyway (by
    default TensorFlow then takes the whole device). Where that fails, the free memory
    `nvidia-smi` reports.
    """
    try:
        from tensorflow.python.client import device_lib

        limits = [int(d.memory_limit) for d in device_lib.list_local_devices()
                  if d.device_type == "GPU"]
        if limits and limits[0] > 0:
            return limits[0]
    except Exception:  # noqa: BLE001 - any failure: the next source.
        pass
    return nvidia_smi_free_bytes()


def nvidia_smi_free_bytes() -> Optional[int]:
    """The first GPU's free memory as `nvidia-smi` reports it (bytes), None where it cannot
    be run or read."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits",
             "--id=0"], capture_output=True, text=True, timeout=20, check=True).stdout
        return int(float(out.split()[0]) * 2**20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_budget(config, device: str) -> int:
    """The bytes a run of `config` may use: the machine's (`memory_budget`), or
    `config.max_memory` when that is lower."""
    budget = memory_budget(device)
    if getattr(config, "max_memory", None) is not None:
        from nst_keras.config import parse_size

        budget = min(budget, parse_size(config.max_memory))
    return budget


def _resident_bytes() -> int:
    """This process's resident memory (VmRSS), 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def meminfo_bytes(field: str) -> Optional[int]:
    """A field of /proc/meminfo (`"MemAvailable"`, `"MemTotal"`) in bytes; None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory_bytes() -> tuple:
    """(MemAvailable, address-space headroom under RLIMIT_AS), each None where unknown."""
    import resource

    available = meminfo_bytes("MemAvailable")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    headroom = None if soft == resource.RLIM_INFINITY else soft - _TF_ADDRESS_SPACE
    return available, headroom


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where and in what precision a run computes, resolved once per job.

    Attributes:
        device: `"cpu"` or `"gpu"`.
        precision: `"float32"` or `"bfloat16"`.
        hardware: One line naming the CPU (and its relevant flags) or the GPU.
    """

    device: str
    precision: str
    hardware: str


def placement(config) -> Placement:
    """Resolves `config.device` and `config.precision` on this machine, once.

    Raises:
        ValueError: If `device="gpu"` is asked for and TensorFlow sees none.
    """
    device = resolve_device(config.device)
    return Placement(device, resolve_precision(config.precision, device),
                     describe_hardware(device))


class ModelCache:
    """The feature models of this process: one per (model, weights, pooling, layers, ...).

    Building VGG from its weights takes seconds; every run, figure panel, batch job and
    notebook call with the same settings reuses the model instead. A model with random
    weights (`weights=None`) is keyed by its seed too, so a seeded run always sees the same
    network. The least recently used model is dropped beyond `capacity` (each holds VGG's
    weights).

    Attributes:
        builds: How many models were built (for tests and curious users).
    """

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self.builds = 0
        self._models = collections.OrderedDict()

    def get(self, layers, *, model="vgg19", weights="imagenet", pooling="max",
            precision="float32", device="cpu", seed=None, padding="zeros"):
        """The cached model for these settings (see `features.build_feature_model`), built
        if new."""
        import keras

        names = tuple(sorted(set(features.resolve_layer_name(n, model) for n in layers),
                             key=features.layer_names(model).index))
        weights_key = os.path.abspath(weights) if weights not in ("imagenet", None) else weights
        key = (model, weights_key, pooling, names, precision, device, padding,
               seed if weights is None else None)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        if model in normalize.NORMALIZED:  # Found, never computed, here (see `normalize`).
            weights = normalize.resolve(model, weights, seed)
            model = normalize.NORMALIZED[model]
        if weights is None and seed is not None:
            keras.utils.set_random_seed(seed)
        with device_scope(device):
            built = features.build_feature_model(names, model=model, weights=weights,
                                                 pooling=pooling, precision=precision,
                                                 padding=padding)
        self.builds += 1
        self._models[key] = built
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return built

    def for_config(self, config, layers, where: Placement):
        """The cached model for a config's network settings, `layers` and placement."""
        return self.get(layers, model=config.model, weights=config.weights,
                        pooling=config.pooling, precision=where.precision, device=where.device,
                        seed=config.seed, padding=config.padding)

    def clear(self) -> None:
        """Drops every cached model."""
        self._models.clear()


#: The process's feature models (see `ModelCache`).
MODELS = ModelCache()


class NetworkCache:
    """The trained style networks of this process, by file path and modification time.

    Loading a `.keras` network and tracing its forward pass take a second or two; a batch's
    jobs, a video's frames and the app's requests with the same network reuse them. A
    rewritten file (a longer training) is loaded again. The least recently used network is
    dropped beyond `capacity`.
    """

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self.loads = 0
        self._networks = collections.OrderedDict()

    def get(self, path):
        """The network in the file at `path` (`transformer.load_network`)."""
        from nst_keras.engine import transformer

        path = os.path.abspath(os.fspath(path))
        key = (path, os.path.getmtime(path), os.path.getsize(path))
        if key in self._networks:
            self._networks.move_to_end(key)
            return self._networks[key]
        network = transformer.load_network(path)
        self.loads += 1
        self._networks[key] = network
        while len(self._networks) > self.capacity:
            self._networks.popitem(last=False)
        return network


#: The process's trained style networks (see `NetworkCache`).
NETWORKS = NetworkCache()


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null: TensorFlow's C++ start-up lines bypass Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras without their start-up lines (oneDNN, CUDA, cuInit).

    TF_CPP_MIN_LOG_LEVEL=3 silences TensorFlow's later C++ logging; the lines printed while
    it loads come before its logging is set up and go straight to file descriptor 2, so
    that is pointed at /dev/null for the import. A user's TF_CPP_MIN_LOG_LEVEL is kept.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA's probe prints once, here.
